"""The suite's hypothesis profiles, ``dev`` (fast), ``ci`` (CI's default) and ``nightly``, and the
settings each of the suite's tests takes from them.

They are the suite's own, not hypothesis's global ones: a test module of the suite decorates its tests
with :func:`suite` (``@suite()`` or ``@suite(max_examples=3)``), which is the selected profile of
:data:`PROFILES`. Nothing here loads a profile or registers one at import, so a session that only
has this package installed (another project's tests) keeps its own hypothesis settings.

The selected profile: the one named with ``--hypothesis-profile`` (the plugin passes it to
:func:`select`), otherwise ``ci`` when the environment variable ``CI`` is set and ``dev`` if not.
A name given to ``--hypothesis-profile`` that is not one of these is looked up among hypothesis's
registered profiles. The profiles are built on hypothesis's ``default`` profile, not on whatever is
loaded (hypothesis loads its own derandomized ``ci`` profile when it detects CI): none is
derandomized, and every run of the suite gets a seed, printed in the report header (the plugin).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Verbosity, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import InvalidArgument

_COMMON: dict = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
if os.environ.get("HYPOTHESIS_DATABASE"):  # a shared directory: past failures replay first everywhere
    _COMMON["database"] = DirectoryBasedExampleDatabase(os.environ["HYPOTHESIS_DATABASE"])

_BASE = settings.get_profile("default")
PROFILES: dict[str, settings] = {
    "dev": settings(_BASE, max_examples=25, **_COMMON),
    "ci": settings(_BASE, max_examples=120, print_blob=True, **_COMMON),
    "nightly": settings(_BASE, max_examples=5000, print_blob=True, **_COMMON),
}

_selected: str | None = None  # --hypothesis-profile, when given
_verbosity: str | None = None  # --hypothesis-verbosity, when given


def select(profile: str | None, verbosity: str | None = None) -> None:
    """The profile (and verbosity) given on pytest's command line; None: the default."""
    global _selected, _verbosity
    _selected, _verbosity = profile or None, verbosity or None


def active_name() -> str:
    return _selected or ("ci" if os.environ.get("CI") else "dev")


def active() -> settings:
    """The settings of the selected profile."""
    name = active_name()
    chosen = PROFILES[name] if name in PROFILES else settings.get_profile(name)
    return settings(chosen, verbosity=Verbosity[_verbosity]) if _verbosity else chosen


def suite(**changes) -> settings:
    """The settings (a decorator) of one of the suite's tests: the selected profile with ``changes``."""
    return settings(active(), **changes)


def register_missing(name: str | None) -> None:
    """Let hypothesis's own plugin load ``--hypothesis-profile NAME`` for one of these profiles:
    registered under NAME only when nothing else is (a project's own ``dev`` or hypothesis's
    ``ci`` stays as it is; the suite takes its settings from :data:`PROFILES` either way)."""
    if name not in PROFILES:
        return
    try:
        settings.get_profile(name)
    except InvalidArgument:
        settings.register_profile(name, PROFILES[name])
