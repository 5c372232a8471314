"""The pytest plugin behind ``pytest conformance``: the implementation under test and the header.

Options (group "conformance"): ``--impl NAME`` (default: ``$CONFORMANCE_IMPL`` or ``refimpl``).
The report header names the implementation, its version, torch's, the hypothesis profile and seed.
"""

from __future__ import annotations

import os

import pytest

from . import profiles  # noqa: F401  (registers the hypothesis profiles)
from .impls import Implementation, load


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "backprop conformance")
    group.addoption("--impl", default=os.environ.get("CONFORMANCE_IMPL", "refimpl"),
                    help="implementation under test (default: $CONFORMANCE_IMPL or refimpl)")


def pytest_configure(config: pytest.Config) -> None:
    from hypothesis import settings

    if not config.getoption("hypothesis_profile", None):
        settings.load_profile("ci" if os.environ.get("CI") else "dev")


def _impl(config: pytest.Config) -> Implementation:
    cached = getattr(config, "_conformance_impl", None)
    if cached is None:
        try:
            cached = load(config.getoption("impl"))
        except LookupError as exc:
            raise pytest.UsageError(str(exc)) from None
        config._conformance_impl = cached  # type: ignore[attr-defined]
    return cached


def pytest_report_header(config: pytest.Config) -> str:
    import torch
    from hypothesis import settings

    impl = _impl(config)
    seed = config.getoption("hypothesis_seed", None)
    return (f"conformance: impl={impl.name} {impl.version}, torch {torch.__version__}, "
            f"hypothesis profile={settings._current_profile}, "
            f"seed={seed if seed is not None else ('derandomized' if settings().derandomize else 'random')}")


@pytest.fixture(scope="session")
def impl(request: pytest.FixtureRequest) -> Implementation:
    return _impl(request.config)
