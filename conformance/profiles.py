"""Hypothesis profiles, registered in one place: ``dev`` (fast), ``ci`` (CI's default), ``nightly``.

Select one with ``--hypothesis-profile``; without it the plugin picks ``ci`` when the environment
variable ``CI`` is set and ``dev`` otherwise. Failures persist in the example database
(``.hypothesis/``) and replay first.
"""

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

settings.register_profile("dev", max_examples=25, **_COMMON)
settings.register_profile("ci", max_examples=120, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("nightly", max_examples=5000, print_blob=True, **_COMMON)
