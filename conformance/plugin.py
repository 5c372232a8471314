"""The pytest plugin behind ``pytest conformance``: the implementation under test, the profile, the seed,
the truth, the records and the header.

``pytest conformance`` runs the very suites ``conformance verify`` runs, through the same driver:
conformance/test_suites.py holds one test, parametrized over :func:`conformance.kinds.suites` for the
implementation's capabilities and the profile's cases per suite (:data:`conformance.driver.PROFILES`),
one test item per suite (``test_suite[op add]``, ``test_suite[scalar graphs]``), and suite ``i`` is
seeded with ``seed + i`` as in every command. So ``pytest conformance --conformance-profile ci
--hypothesis-seed 1`` judges the cases of ``conformance verify --profile ci --seed 1``.

It is registered for every pytest session of an environment where this package is installed (the
``pytest11`` entry point), so it minds its own business: outside the suite's own tests it changes
nothing. Only its options are visible everywhere, all prefixed (group "conformance"):

* ``--conformance-impl NAME`` (default: ``$CONFORMANCE_IMPL`` or ``refimpl``);
* ``--conformance-profile dev|ci|nightly``: cases per suite, as ``conformance verify --profile``
  (default: ``ci`` when ``$CI`` is set, else ``dev``). ``--hypothesis-profile`` naming one of these is
  read the same way when ``--conformance-profile`` is not given (it is what people typed before);
* ``--conformance-truth auto|arbitrate|always`` (auto: always in the nightly profile);
* ``--conformance-strict``: a suite fails on a ``robustness`` verdict too (a case outside the working
  range that would be charged: conformance/verdict/robustness.py), as ``conformance verify --strict``;
* ``--conformance-report DIR``: records of every judged case in ``DIR/<run-id>/``, as ``conformance
  verify --report`` (conformance/records.py), the same suite names, seeds and indices; under
  pytest-xdist each worker writes its own journal and the controller writes the tables at the end.

The seed: ``--hypothesis-seed N`` when given (hypothesis's own option: it is what repeats a run),
otherwise one the plugin draws and prints in the header. The suite's cases are drawn by the driver
from that seed alone, never from hypothesis's global settings or example database; under pytest-xdist
the controller sends its seed to the workers, so every process parametrizes the same suites alike.

The plugin's state lives on the session's config (``config.stash``): nothing is kept in a module.
What belongs to the suite is decided by where a test lives, not by the session's state:

* the suite's tests are the modules of this package's directory (``conformance/test_*.py``, however
  they are reached: ``pytest conformance``, ``--pyargs conformance``, the repository's testpaths);
* the header line (``conformance: impl=…, torch …, profile=…, seed=…``) and ``--conformance-report``
  only when the session's arguments name the suite, since the header is written before collection:
  a path inside this package's directory, ``--pyargs conformance[.…]``, or a directory that contains
  it when the package is a source checkout (the repository's ``pytest``), not an installed copy in a
  virtualenv under the project being tested;
* the ``impl`` and ``conformance`` fixtures serve only the suite's modules; another project's own
  fixtures of those names take precedence anyway (a conftest's fixtures override a plugin's);
* hypothesis is left alone: no profile loaded, no seed forced. The one exception is a name the user
  gives ``--hypothesis-profile`` that is one of the suite's profiles and that hypothesis does not know:
  it is registered as a copy of hypothesis's current profile, so that hypothesis's own plugin can
  load it without changing anything.
"""

from __future__ import annotations

import functools
import os
import random
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conformance.driver import OnCase
    from conformance.impls import Implementation
    from conformance.kinds.kind import Suite
    from conformance.records import Recorder

SUITE_DIR = Path(__file__).resolve().parent  # the suite's test modules: conformance/test_*.py
#: the suite's profiles, the keys of :data:`conformance.driver.PROFILES` (tests/test_plugin_scope.py
#: checks they agree; the driver is not imported here, so that another project's session stays light)
PROFILE_NAMES = ("dev", "ci", "nightly")

# the session's state (config.stash)
SEED = pytest.StashKey[int | str]()  # the run's seed (a str only if --hypothesis-seed is not an integer)
PROFILE = pytest.StashKey[str]()  # one of PROFILE_NAMES
TRUTH = pytest.StashKey[str]()  # "arbitrate" or "always"
TARGETED = pytest.StashKey[bool]()  # the session's arguments name the suite
IMPL = pytest.StashKey["Implementation"]()  # resolved once, when first needed
RECORDER = pytest.StashKey["Recorder | None"]()  # this process's recorder under --conformance-report
REPORT_DIR = pytest.StashKey[Path]()  # the finished run directory, for the terminal summary


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "backprop conformance (the suite's tests only)")
    group.addoption("--conformance-impl", default=os.environ.get("CONFORMANCE_IMPL", "refimpl"),
                    help="implementation under test (default: $CONFORMANCE_IMPL or refimpl); any but this "
                         "project's own runs in a worker process, as with 'conformance verify'")
    group.addoption("--conformance-in-process", action="store_true", default=False,
                    help="run the implementation in pytest's process (for a debugger); a crash ends the session")
    group.addoption("--conformance-profile", choices=PROFILE_NAMES, default=None,
                    help="cases per suite, as 'conformance verify --profile' (default: ci when $CI is set, "
                         "else dev; --hypothesis-profile naming one of these is read too)")
    group.addoption("--conformance-truth", choices=["auto", "arbitrate", "always"], default="auto",
                    help="when to compute the high-precision truth: only to arbitrate disagreements with "
                         "torch, or for every entry (auto: always in the nightly profile)")
    group.addoption("--conformance-report", default=None, metavar="DIR",
                    help="write records of every judged case (and a report) to DIR/<run-id>/")
    group.addoption("--conformance-strict", action="store_true", default=False,
                    help="fail a suite on its robustness findings too (cases outside the working range), "
                         "as 'conformance verify --strict'")


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


def select_profile(option: str | None, hypothesis_profile: str | None) -> str:
    """The suite's profile: ``--conformance-profile``, else ``--hypothesis-profile`` when it names one of
    the suite's, else ``ci`` when ``$CI`` is set and ``dev`` if not."""
    if option:
        return option
    if hypothesis_profile in PROFILE_NAMES:
        return hypothesis_profile  # type: ignore[return-value]
    return "ci" if os.environ.get("CI") else "dev"


def _register_missing(name: str) -> None:
    """Let hypothesis's own plugin load ``--hypothesis-profile NAME`` for a name of the suite's that
    hypothesis does not know: a copy of its current profile (a project's own ``dev`` or hypothesis's
    ``ci`` stays as it is), so that naming the suite's profile this way changes nothing in hypothesis."""
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    try:
        settings.get_profile(name)
    except InvalidArgument:
        settings.register_profile(name)


@pytest.hookimpl(tryfirst=True)  # before hypothesis's own plugin loads --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    hypothesis_profile = config.getoption("hypothesis_profile", None)
    if hypothesis_profile in PROFILE_NAMES:
        _register_missing(hypothesis_profile)
    profile = select_profile(config.getoption("conformance_profile"), hypothesis_profile)
    truth = config.getoption("conformance_truth")
    config.stash[PROFILE] = profile
    config.stash[TRUTH] = ("always" if profile == "nightly" else "arbitrate") if truth == "auto" else truth
    config.stash[SEED] = _session_seed(config)
    config.stash[RECORDER] = None
    config.stash[TARGETED] = targets_suite(config)
    if config.stash[TARGETED] and config.getoption("conformance_report"):
        config.stash[RECORDER] = _start_report(config)


def _session_seed(config: pytest.Config) -> int | str:
    """``--hypothesis-seed``'s (an integer when it is one), the xdist controller's, or a new one."""
    given = config.getoption("hypothesis_seed", None)
    if given is not None:
        try:
            return int(given)
        except ValueError:
            return str(given)
    worker = getattr(config, "workerinput", None)
    if worker is not None and "conformance_seed" in worker:
        return int(worker["conformance_seed"])
    return random.randrange(2**32)


def seed(config: pytest.Config) -> int:
    """The run's seed; suite ``i`` is seeded with ``seed + i``."""
    value = config.stash[SEED]
    if not isinstance(value, int):
        raise pytest.UsageError(f"--hypothesis-seed {value!r}: the conformance suite's seed must be an integer "
                                "(suite i is seeded with seed + i, as in 'conformance verify --seed')")
    return value


def examples(config: pytest.Config) -> int:
    """Cases per suite: the profile's (:data:`conformance.driver.PROFILES`)."""
    from conformance.driver import PROFILES

    return PROFILES[config.stash[PROFILE]]


def planned_suites(config: pytest.Config) -> list[tuple[Suite, int]]:
    """The suites the implementation runs, each with its seed: verify's list, verify's seeds."""
    from conformance import kinds

    base = seed(config)
    return [(s, base + i) for i, s in enumerate(kinds.suites(implementation(config).capabilities, examples(config)))]


def _start_report(config: pytest.Config) -> Recorder | None:
    """The recorder of this process: the controller (or a run without xdist) creates the run
    directory; an xdist worker writes its own journal in the directory the controller sent it."""
    from conformance.records import Recorder

    worker = getattr(config, "workerinput", None)
    if worker is not None:
        if "conformance_report" in worker:
            return Recorder.reopen(Path(worker["conformance_report"]), f"journal-{worker['workerid']}.jsonl")
        return None
    given = config.stash[SEED]
    return Recorder.create(
        Path(config.getoption("conformance_report")), command="pytest " + shlex.join(config.invocation_params.args),
        impls=[implementation(config)], profile=config.stash[PROFILE], seed=given if isinstance(given, int) else 0,
        max_examples=examples(config), truth=config.stash[TRUTH])


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's: the workers' seed and run directory
def pytest_configure_node(node: Any) -> None:
    config, workerinput = node.config, node.workerinput
    if isinstance(config.stash.get(SEED, None), int):
        workerinput["conformance_seed"] = config.stash[SEED]
    recorder = config.stash.get(RECORDER, None)
    if recorder is not None:
        workerinput["conformance_report"] = str(recorder.run_dir)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    rec = config.stash.get(RECORDER, None)
    if rec is None:
        return
    config.stash[RECORDER] = None
    if hasattr(config, "workerinput"):
        rec.journal.close()  # the controller builds the tables from every worker's journal
    else:
        from conformance.report import render_or_note

        config.stash[REPORT_DIR] = rec.finish(render=render_or_note)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    run_dir = config.stash.get(REPORT_DIR, None)
    if run_dir is not None:
        terminalreporter.write_line(f"conformance report: {run_dir}")


def implementation(config: pytest.Config) -> Implementation:
    """The implementation under test (``--conformance-impl``), resolved once per session."""
    impl = config.stash.get(IMPL, None)
    if impl is None:
        from conformance.impls.loading import resolve

        try:
            impl = resolve(config.getoption("conformance_impl"),
                           isolate=False if config.getoption("conformance_in_process") else None)
        except LookupError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.stash[IMPL] = impl
    return impl


def pytest_report_header(config: pytest.Config) -> str | None:
    if not config.stash.get(TARGETED, False):
        return None
    import torch

    impl, given = implementation(config), config.stash[SEED]
    return (f"conformance: impl={impl.name} {impl.version}, torch {torch.__version__}, "
            f"profile={config.stash[PROFILE]} ({examples(config)} cases per suite), seed={given} "
            f"(repeat with --hypothesis-seed {given}), truth={config.stash[TRUTH]}")


def _only_the_suite(request: pytest.FixtureRequest, name: str) -> None:
    if not in_suite(request.path):
        pytest.fail(f"the fixture {name!r} belongs to the conformance suite ({SUITE_DIR}), not to {request.path}",
                    pytrace=False)


@pytest.fixture(scope="module")
def impl(request: pytest.FixtureRequest) -> Implementation:
    """The implementation under test, for the suite's modules only."""
    _only_the_suite(request, "impl")
    return implementation(request.config)


@dataclass(frozen=True)
class Judging:
    """How the suite's tests judge and record in this session (the ``conformance`` fixture)."""

    always_truth: bool  # compute the truth for every entry, not only to arbitrate
    on_case: OnCase | None  # the driver's hook recording each judged case (--conformance-report), or None
    recorder: Recorder | None
    strict: bool = False  # --conformance-strict: a robustness finding fails the suite too

    def failure(self, impl: Any, suite: str, v: Any) -> None:
        """Record a suite's minimal failing case (failures/), under --conformance-report."""
        if self.recorder is not None:
            self.recorder.failure(impl.name, suite, v)


@pytest.fixture(scope="module")
def conformance(request: pytest.FixtureRequest, impl: Implementation) -> Judging:
    """The truth mode and the records hook of this session, for the suite's modules only."""
    _only_the_suite(request, "conformance")
    config = request.config
    recorder = config.stash.get(RECORDER, None)
    return Judging(always_truth=config.stash[TRUTH] == "always",
                   on_case=None if recorder is None else recorder.on_case(impl), recorder=recorder,
                   strict=config.getoption("conformance_strict"))
