"""The pytest plugin behind ``pytest conformance``: the implementation under test and the header.

Options (group "conformance"): ``--impl NAME`` (default: ``$CONFORMANCE_IMPL`` or ``refimpl``) and
``--truth auto|arbitrate|always``. The report header names the implementation, its version,
torch's, the hypothesis profile and the run's seed.
"""

from __future__ import annotations

import os
import random

import pytest

from . import assertions, profiles  # noqa: F401  (profiles registers the hypothesis profiles)
from .impls import Implementation
from .loading import resolve


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "backprop conformance")
    group.addoption("--impl", default=os.environ.get("CONFORMANCE_IMPL", "refimpl"),
                    help="implementation under test (default: $CONFORMANCE_IMPL or refimpl)")
    group.addoption("--truth", choices=["auto", "arbitrate", "always"], default="auto",
                    help="when to compute the high-precision truth: only to arbitrate disagreements with "
                         "torch, or for every entry (auto: always in the nightly profile)")


@pytest.hookimpl(tryfirst=True)  # before hypothesis's own plugin reads --hypothesis-seed
def pytest_configure(config: pytest.Config) -> None:
    from hypothesis import settings

    if not config.getoption("hypothesis_profile", None):
        settings.load_profile("ci" if os.environ.get("CI") else "dev")
    if config.getoption("hypothesis_seed", None) is None:
        # like pytest-randomly: every run has a seed, printed in the header, so any run can be
        # repeated with --hypothesis-seed; failures still replay first from the example database
        config.option.hypothesis_seed = str(random.randrange(2**32))
    truth = config.getoption("truth")
    if truth == "auto":
        truth = "always" if settings._current_profile == "nightly" else "arbitrate"
    assertions.TRUTH = truth


def _impl(config: pytest.Config) -> Implementation:
    cached = getattr(config, "_conformance_impl", None)
    if cached is None:
        try:
            cached = resolve(config.getoption("impl"))
        except LookupError as exc:
            raise pytest.UsageError(str(exc)) from None
        config._conformance_impl = cached  # type: ignore[attr-defined]
    return cached


def pytest_report_header(config: pytest.Config) -> str:
    import torch
    from hypothesis import settings

    impl = _impl(config)
    return (f"conformance: impl={impl.name} {impl.version}, torch {torch.__version__}, "
            f"hypothesis profile={settings._current_profile}, seed={config.getoption('hypothesis_seed')} "
            f"(repeat with --hypothesis-seed), truth={assertions.TRUTH}")


@pytest.fixture(scope="session")
def impl(request: pytest.FixtureRequest) -> Implementation:
    return _impl(request.config)
