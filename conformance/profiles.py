"""Hypothesis profiles, registered in one place: ``dev`` (fast), ``ci`` (CI's default), ``nightly``.

Select one with ``--hypothesis-profile``; without it the plugin picks ``ci`` when the environment
variable ``CI`` is set and ``dev`` otherwise. None is derandomized (that would switch the example
database off): every run gets a seed, printed in the report header, and failures persist in the
example database (``.hypothesis/``, or the directory in ``$HYPOTHESIS_DATABASE``) and replay first.
"""

import os

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

_COMMON: dict = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
if os.environ.get("HYPOTHESIS_DATABASE"):  # a shared directory: past failures replay first everywhere
    _COMMON["database"] = DirectoryBasedExampleDatabase(os.environ["HYPOTHESIS_DATABASE"])

settings.register_profile("dev", max_examples=25, **_COMMON)
settings.register_profile("ci", max_examples=120, print_blob=True, **_COMMON)
settings.register_profile("nightly", max_examples=5000, print_blob=True, **_COMMON)
