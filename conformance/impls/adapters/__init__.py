"""Adapters: implementations under test that do not speak the harness's protocol themselves.

For example :mod:`conformance.impls.adapters.micrograd`: any module with micrograd's scalar ``Value``
API (PyPI ``micrograd`` and its many clones), its capabilities what the ``Value`` class has
(never judged: an op that is there but wrong fails its suite).
"""
