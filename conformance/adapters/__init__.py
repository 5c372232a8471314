"""Adapters: implementations under test that do not speak the harness's protocol themselves.

For example :mod:`conformance.adapters.micrograd`: any module with micrograd's scalar ``Value``
API (PyPI ``micrograd`` and its many clones), its capabilities found by probing.
"""
