"""The pytest plugin behind ``pytest conformance``: the implementation under test and the header.

Options (group "conformance"): ``--impl NAME`` (default: ``$CONFORMANCE_IMPL`` or ``refimpl``),
``--truth auto|arbitrate|always`` and ``--report DIR`` (records of every judged case in
``DIR/<run-id>/``, as ``conformance verify --report``: see conformance/records.py; under pytest-xdist
each worker writes its own journal and the controller writes the tables at the end). The report
header names the implementation, its version, torch's, the hypothesis profile and the run's seed.
"""

from __future__ import annotations

import os
import random
import shlex

import pytest

from . import assertions, profiles, records  # noqa: F401  (profiles registers the hypothesis profiles)
from .impls import Implementation
from .loading import resolve


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "backprop conformance")
    group.addoption("--impl", default=os.environ.get("CONFORMANCE_IMPL", "refimpl"),
                    help="implementation under test (default: $CONFORMANCE_IMPL or refimpl)")
    group.addoption("--truth", choices=["auto", "arbitrate", "always"], default="auto",
                    help="when to compute the high-precision truth: only to arbitrate disagreements with "
                         "torch, or for every entry (auto: always in the nightly profile)")
    group.addoption("--report", default=None, metavar="DIR",
                    help="write records of every judged case (and a report) to DIR/<run-id>/")


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
    if truth == "auto":  # hypothesis's plugin loads --hypothesis-profile after this hook: read the option
        profile = config.getoption("hypothesis_profile", None) or settings._current_profile
        truth = "always" if profile == "nightly" else "arbitrate"
    assertions.TRUTH = truth
    if config.getoption("report"):
        _start_report(config)


def _start_report(config: pytest.Config) -> None:
    """The recorder of this process: the controller (or a run without xdist) creates the run
    directory; an xdist worker writes its own journal in the directory the controller sent it."""
    from pathlib import Path

    from hypothesis import settings

    worker = getattr(config, "workerinput", None)
    if worker is not None:
        if "conformance_report" in worker:
            records.ACTIVE = records.Recorder.reopen(Path(worker["conformance_report"]),
                                                     f"journal-{worker['workerid']}.jsonl")
        return
    seed = str(config.getoption("hypothesis_seed"))
    profile = config.getoption("hypothesis_profile", None) or settings._current_profile  # loaded after us
    records.ACTIVE = records.Recorder.create(
        Path(config.getoption("report")), command="pytest " + shlex.join(config.invocation_params.args),
        impls=[_impl(config)], profile=str(profile), seed=int(seed) if seed.isdigit() else 0,
        hypothesis_seed=seed, truth=assertions.TRUTH)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's: tell each worker where the run directory is
def pytest_configure_node(node: object) -> None:
    if records.ACTIVE is not None:
        node.workerinput["conformance_report"] = str(records.ACTIVE.run_dir)  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> object:
    records.SUITE = item.nodeid  # the suite name of the cases this test records
    try:
        return (yield)
    finally:
        records.SUITE = ""


def pytest_sessionfinish(session: pytest.Session) -> None:
    rec = records.ACTIVE
    if rec is None:
        return
    if hasattr(session.config, "workerinput"):
        rec.journal.close()  # the controller builds the tables from every worker's journal
    else:
        session.config._conformance_report = rec.finish()  # type: ignore[attr-defined]
    records.ACTIVE = None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    run_dir = getattr(config, "_conformance_report", None)
    if run_dir is not None:
        terminalreporter.write_line(f"conformance report: {run_dir}")


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
