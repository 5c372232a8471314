"""The pytest plugin behind ``pytest conformance``: the implementation under test, the seed and the header.

It is registered for every pytest session of an environment where this package is installed (the
``pytest11`` entry point), so it minds its own business: outside the suite's own tests it changes
nothing. Only its options are visible everywhere, all prefixed (group "conformance"):
``--conformance-impl NAME`` (default: ``$CONFORMANCE_IMPL`` or ``refimpl``),
``--conformance-truth auto|arbitrate|always`` and ``--conformance-report DIR`` (records of every
judged case in ``DIR/<run-id>/``, as ``conformance verify --report``: see conformance/records.py;
under pytest-xdist each worker writes its own journal and the controller writes the tables at the end).

What belongs to the suite is decided by where a test lives, not by the session's state:

* the suite's tests are the modules of this package's directory (``conformance/test_*.py``, however
  they are reached: ``pytest conformance``, ``--pyargs conformance``, the repository's testpaths);
* hypothesis settings: those modules take theirs explicitly from conformance/profiles.py (the
  profile of ``--hypothesis-profile``, or ``ci`` when ``$CI`` is set and ``dev`` if not). Hypothesis
  fixes a test's settings when the module is imported, and its global profile would reach every
  other test of the session, so the plugin never loads one; it only tells profiles.py which profile
  was asked for and, when that is one of the suite's names hypothesis does not know, registers it so
  that hypothesis's own plugin can load it (the user asked for it by name).
* the seed: without ``--hypothesis-seed`` the plugin draws one (like pytest-randomly: any run can be
  repeated with ``--hypothesis-seed``) and applies it to each of the suite's hypothesis tests, item by
  item (``hypothesis.seed``), instead of setting ``--hypothesis-seed``, which hypothesis would force on
  every test of the session. Under pytest-xdist the controller sends its seed to the workers. (A
  seeded hypothesis test does not use the example database, as with ``--hypothesis-seed``.)
* the header line (``conformance: impl=…, torch …, hypothesis profile=…, seed=…``) and
  ``--conformance-report`` only when the session's arguments name the suite, since the header is
  written before collection: a path inside this package's directory, ``--pyargs conformance[.…]``,
  or a directory that contains it when the package is a source checkout (the repository's
  ``pytest``), not an installed copy in a virtualenv under the project being tested;
* the ``impl`` fixture serves only the suite's modules; another project's own ``impl`` fixture
  takes precedence anyway (a conftest's fixtures override a plugin's).
"""

from __future__ import annotations

import functools
import os
import random
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .impls import Implementation

SUITE_DIR = Path(__file__).resolve().parent  # the suite's test modules: conformance/test_*.py


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "backprop conformance (the suite's tests only)")
    group.addoption("--conformance-impl", default=os.environ.get("CONFORMANCE_IMPL", "refimpl"),
                    help="implementation under test (default: $CONFORMANCE_IMPL or refimpl)")
    group.addoption("--conformance-truth", choices=["auto", "arbitrate", "always"], default="auto",
                    help="when to compute the high-precision truth: only to arbitrate disagreements with "
                         "torch, or for every entry (auto: always in the nightly profile)")
    group.addoption("--conformance-report", default=None, metavar="DIR",
                    help="write records of every judged case (and a report) to DIR/<run-id>/")


@functools.lru_cache(maxsize=1024)
def in_suite(path: str | os.PathLike) -> bool:
    """Whether a test module is one of the suite's."""
    return Path(path).resolve().is_relative_to(SUITE_DIR)


def _installed_copy() -> bool:
    """This package is installed in an environment (not a source checkout someone runs pytest in)."""
    return any(p.name in ("site-packages", "dist-packages") for p in SUITE_DIR.parents)


def targets_suite(config: pytest.Config) -> bool:
    """Whether the session's arguments (or the testpaths standing for them) name the suite."""
    pyargs = config.getoption("pyargs", False)
    for arg in config.args:
        name = arg.split("::")[0]
        if pyargs and (name == "conformance" or name.startswith("conformance.")):
            return True
        path = (config.invocation_params.dir / name).resolve()
        if path == SUITE_DIR or SUITE_DIR in path.parents:
            return True
        if path in SUITE_DIR.parents and not _installed_copy():
            return True
    return False


@pytest.hookimpl(tryfirst=True)  # before hypothesis's own plugin loads --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    profile = config.getoption("hypothesis_profile", None)
    if profile:
        from . import profiles

        profiles.register_missing(profile)
    worker = getattr(config, "workerinput", None)
    if config.getoption("hypothesis_seed", None) is not None:
        config._conformance_seed = None  # type: ignore[attr-defined]  # hypothesis forces it itself
    elif worker is not None and "conformance_seed" in worker:
        config._conformance_seed = worker["conformance_seed"]  # type: ignore[attr-defined]
    else:
        config._conformance_seed = random.randrange(2**32)  # type: ignore[attr-defined]
    config._conformance_targeted = targets_suite(config)  # type: ignore[attr-defined]
    if config._conformance_targeted:  # type: ignore[attr-defined]
        _ensure_suite(config)
        if config.getoption("conformance_report"):
            _start_report(config)


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> None:
    """Before one of the suite's modules is imported (its tests' settings are fixed then)."""
    if in_suite(module_path):
        _ensure_suite(parent.config)


def _ensure_suite(config: pytest.Config) -> None:
    """The suite's state, once per session with the suite in it: the profile its modules take their
    settings from, and when to compute the truth."""
    if getattr(config, "_conformance_ready", False):
        return
    from . import assertions, profiles

    profiles.select(config.getoption("hypothesis_profile", None), config.getoption("hypothesis_verbosity", None))
    truth = config.getoption("conformance_truth")
    if truth == "auto":
        truth = "always" if profiles.active_name() == "nightly" else "arbitrate"
    assertions.TRUTH = truth
    config._conformance_ready = True  # type: ignore[attr-defined]


def _seed(config: pytest.Config) -> str:
    """The run's seed: ``--hypothesis-seed``'s, or the one the plugin drew."""
    given = config.getoption("hypothesis_seed", None)
    return str(given) if given is not None else str(config._conformance_seed)  # type: ignore[attr-defined]


def _start_report(config: pytest.Config) -> None:
    """The recorder of this process: the controller (or a run without xdist) creates the run
    directory; an xdist worker writes its own journal in the directory the controller sent it."""
    from . import assertions, profiles, records

    worker = getattr(config, "workerinput", None)
    if worker is not None:
        if "conformance_report" in worker:
            records.ACTIVE = records.Recorder.reopen(Path(worker["conformance_report"]),
                                                     f"journal-{worker['workerid']}.jsonl")
        return
    seed = _seed(config)
    records.ACTIVE = records.Recorder.create(
        Path(config.getoption("conformance_report")), command="pytest " + shlex.join(config.invocation_params.args),
        impls=[_impl(config)], profile=profiles.active_name(), seed=int(seed) if seed.isdigit() else 0,
        hypothesis_seed=seed, truth=assertions.TRUTH)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's: the workers' seed and run directory
def pytest_configure_node(node: object) -> None:
    workerinput = node.workerinput  # type: ignore[attr-defined]
    seed = getattr(node.config, "_conformance_seed", None)  # type: ignore[attr-defined]
    if seed is not None:
        workerinput["conformance_seed"] = seed
    records = _records()
    if records is not None and records.ACTIVE is not None:
        workerinput["conformance_report"] = str(records.ACTIVE.run_dir)


def _records():  # conformance.records if the suite has loaded it (nothing to do otherwise)
    import sys

    return sys.modules.get(f"{__package__}.records")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The run's seed on each of the suite's hypothesis tests (not on anyone else's)."""
    seed = getattr(config, "_conformance_seed", None)
    if seed is None:
        return
    done: set[int] = set()
    for item in items:
        fn = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        if fn is None or id(fn) in done or not in_suite(item.path):
            continue
        done.add(id(fn))
        from hypothesis import is_hypothesis_test
        from hypothesis import seed as hypothesis_seed

        if is_hypothesis_test(fn):
            hypothesis_seed(seed)(fn)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> object:
    records = _records() if in_suite(item.path) else None
    if records is None:
        return (yield)
    records.SUITE = item.nodeid  # the suite name of the cases this test records
    try:
        return (yield)
    finally:
        records.SUITE = ""


def pytest_sessionfinish(session: pytest.Session) -> None:
    records = _records()
    rec = records.ACTIVE if records is not None else None
    if rec is None:
        return
    if hasattr(session.config, "workerinput"):
        rec.journal.close()  # the controller builds the tables from every worker's journal
    else:
        from .report import render_or_note

        session.config._conformance_report = rec.finish(render=render_or_note)  # type: ignore[attr-defined]
    records.ACTIVE = None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    run_dir = getattr(config, "_conformance_report", None)
    if run_dir is not None:
        terminalreporter.write_line(f"conformance report: {run_dir}")


def _impl(config: pytest.Config) -> Implementation:
    cached = getattr(config, "_conformance_impl", None)
    if cached is None:
        from .loading import resolve

        try:
            cached = resolve(config.getoption("conformance_impl"))
        except LookupError as exc:
            raise pytest.UsageError(str(exc)) from None
        config._conformance_impl = cached  # type: ignore[attr-defined]
    return cached


def pytest_report_header(config: pytest.Config) -> str | None:
    if not getattr(config, "_conformance_targeted", False):
        return None
    import torch

    from . import assertions, profiles

    impl = _impl(config)
    return (f"conformance: impl={impl.name} {impl.version}, torch {torch.__version__}, "
            f"hypothesis profile={profiles.active_name()}, seed={_seed(config)} "
            f"(repeat with --hypothesis-seed), truth={assertions.TRUTH}")


@pytest.fixture(scope="module")  # not per function: hypothesis's health check forbids those with @given
def impl(request: pytest.FixtureRequest) -> Implementation:
    """The implementation under test, for the suite's modules only."""
    if not in_suite(request.path):
        pytest.fail(f"the fixture 'impl' belongs to the conformance suite ({SUITE_DIR}), not to {request.path}",
                    pytrace=False)
    return _impl(request.config)
