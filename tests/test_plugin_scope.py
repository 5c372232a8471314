"""The pytest plugin (registered for every pytest session of the environment by the ``pytest11``
entry point) minds its own business: another project's hypothesis tests run exactly as they do with
the plugin switched off (``-p no:conformance``), with ``$CI`` set or not — same profile, same
settings, no forced seed, no header line — and the plugin's options carry the suite's prefix, so the
other project may define ``--impl`` (and an ``impl`` fixture) itself. The suite itself keeps its
header, its profile (ci when ``$CI`` is set) and a seed, and its test items are verify's suites."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import hypothesis._settings
import pytest

ROOT = Path(__file__).resolve().parents[1]

THEIR_TEST = '''
import json, os, sys

from hypothesis import core, given, settings, strategies as st


@given(st.integers())
def test_their_property(request, x):
    s = settings()  # inside a @given test: the settings this test runs with
    record = dict(profile=settings.get_current_profile_name(), max_examples=s.max_examples,
                  derandomize=s.derandomize, deadline=repr(s.deadline), database=s.database is None,
                  health_checks=sorted(h.name for h in s.suppress_health_check), print_blob=s.print_blob,
                  force_seed=core.global_force_seed, seed_option=request.config.getoption("hypothesis_seed"),
                  suite_loaded=sorted(m for m in ("conformance.assertions", "conformance.driver",
                                                                  "conformance.kinds", "conformance.records")
                                      if m in sys.modules))
    with open(os.environ["RECORD"], "w") as f:
        json.dump(record, f)
'''

# another project with its own --impl option, impl fixture and "dev" profile
THEIR_CONFTEST = '''
import pytest
from hypothesis import settings

settings.register_profile("dev", max_examples=7)


def pytest_addoption(parser):
    parser.addoption("--impl", default="theirs")
    parser.addoption("--report", default=None)


@pytest.fixture
def impl(request):
    return request.config.getoption("impl")
'''

THEIR_OWN_OPTIONS = '''
from hypothesis import given, settings, strategies as st


def test_their_impl(impl, pytestconfig):
    assert impl == "mine" and pytestconfig.getoption("report") == "out"


@given(st.integers())
def test_their_dev_profile(x):
    assert settings().max_examples == 7
'''

_CI_VARS = set(getattr(hypothesis._settings, "_CI_VARS", {"CI": None}))  # every variable hypothesis reads as CI


def _env(ci: bool, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in _CI_VARS and k not in ("CONFORMANCE_IMPL", "HYPOTHESIS_DATABASE", "PYTEST_ADDOPTS")}
    if ci:
        env["CI"] = "true"
    return {**env, **extra}


def _pytest(cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def their_project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "someone-elses-framework"\n\n'
                                             '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_theirs.py").write_text(THEIR_TEST)
    return tmp_path


def test_the_plugin_is_registered_for_every_session():
    """What makes the rest matter: any pytest run in this environment loads the plugin."""
    assert "conformance.plugin" in {ep.value for ep in entry_points(group="pytest11")}


@pytest.mark.parametrize("ci", [False, True], ids=["no-CI", "CI=true"])
def test_another_projects_hypothesis_run_is_unchanged(their_project, ci):
    runs = {}
    for plugin in ("on", "off"):
        record = their_project / f"record-{plugin}.json"
        off = ["-p", "no:conformance"] if plugin == "off" else []
        proc = _pytest(their_project, _env(ci, RECORD=str(record)), "-v", *off)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        header = [line for line in proc.stdout.splitlines() if line.startswith(("hypothesis profile", "plugins:"))]
        runs[plugin] = json.loads(record.read_text()), header, proc.stdout
    (on, on_header, on_out), (off, off_header, _) = runs["on"], runs["off"]
    assert "backprop-conformance" in on_header[-1]  # the plugin was loaded ...
    assert on == off  # ... and changed nothing: profile, settings, seed
    assert on_header[0] == off_header[0]  # hypothesis's own header line (its profile), the same
    assert on["force_seed"] is None and on["seed_option"] is None  # no seed forced on their tests
    assert on["suite_loaded"] == []  # the suite's driver, assertions and records were not even imported
    if ci:  # hypothesis's own CI profile (where it has one)
        assert on["profile"] == off["profile"]
    else:
        assert on["profile"] == "default" and on["max_examples"] == 100 and not on["derandomize"]
    assert not any(line.startswith("conformance") for line in on_out.splitlines())  # no header line


def test_the_suites_options_are_prefixed(their_project):
    env = _env(False, RECORD=str(their_project / "record.json"))
    for option in ("--impl", "--truth", "--report"):
        proc = _pytest(their_project, env, option, "x")
        assert proc.returncode == 4 and "unrecognized arguments" in proc.stderr, (option, proc.stderr[-2000:])
    helptext = _pytest(their_project, env, "--help").stdout
    assert all(o in helptext for o in ("--conformance-impl", "--conformance-truth", "--conformance-report"))
    assert not re.search(r"^\s+--(impl|truth|report)\b", helptext, re.M)


def test_another_project_may_define_impl_and_its_own_dev_profile(their_project):
    """Their --impl/--report options, their impl fixture and their "dev" profile: no clash with the
    suite's (before, adding --impl failed with "option names {'--impl'} already added")."""
    (their_project / "tests" / "conftest.py").write_text(THEIR_CONFTEST)
    (their_project / "tests" / "test_their_options.py").write_text(THEIR_OWN_OPTIONS)
    proc = _pytest(their_project, _env(True, RECORD=str(their_project / "record.json")),
                   "tests/test_their_options.py", "--impl", "mine", "--report", "out", "--hypothesis-profile", "dev")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 passed" in proc.stdout


SUITES = "conformance/test_suites.py::test_suite"


def test_the_suite_keeps_its_header_profile_and_seed():
    """The suite's own run: the header names the implementation, the profile (ci when $CI is set, with
    its cases per suite) and a random seed."""
    proc = _pytest(ROOT, _env(True), f"{SUITES}[op tanh]", "--conformance-impl", "refimpl")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [header] = [line for line in proc.stdout.splitlines() if line.startswith("conformance: ")]
    assert re.match(r"conformance: impl=refimpl \S+, torch \S+, profile=ci \(40 cases per suite\), seed=(\d+) "
                    r"\(repeat with --hypothesis-seed \1\), truth=arbitrate$", header), header
    assert "1 passed" in proc.stdout


@pytest.mark.parametrize("argv, profile", [((), "dev"), (("--conformance-profile", "nightly"), "nightly"),
                                           (("--hypothesis-profile", "ci"), "ci"),
                                           (("--hypothesis-profile", "nightly", "--conformance-profile", "dev"),
                                            "dev")])
def test_the_profile_comes_from_the_suites_option_or_hypothesis_profile(argv, profile):
    """--conformance-profile names the profile; --hypothesis-profile naming one of the suite's is read
    when it is not given (hypothesis can load it: an unknown one is registered as its current profile)."""
    proc = _pytest(ROOT, _env(False), SUITES, "--co", "--conformance-impl", "refimpl", *argv)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [header] = [line for line in proc.stdout.splitlines() if line.startswith("conformance: ")]
    assert f"profile={profile} (" in header, header


def test_the_profiles_are_the_drivers():
    from conformance import plugin
    from conformance.driver import PROFILES

    assert plugin.PROFILE_NAMES == tuple(PROFILES)


def test_the_suites_test_items_are_verifys_suites():
    """One test item per suite of verify's list (kinds.suites for the implementation's capabilities
    at the profile's size), in its order, named after it."""
    from conformance import kinds
    from conformance.driver import PROFILES
    from conformance.impls import RefImpl

    proc = _pytest(ROOT, _env(True), SUITES, "--co", "-q", "--conformance-impl", "refimpl")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    items = re.findall(r"^conformance/test_suites\.py::test_suite\[(.*)\]$", proc.stdout, re.M)
    assert items == [s.name for s in kinds.suites(RefImpl.capabilities, PROFILES["ci"])]
    assert len(items) > 50


def test_the_suites_seed_repeats_a_run(tmp_path):
    """--hypothesis-seed N repeats the run whose header printed seed=N: the same cases, in the same order
    (suite i is seeded with N + i, as in verify)."""
    import pandas as pd

    argv = (f"{SUITES}[op tanh]", f"{SUITES}[scalar graphs]", "--conformance-impl", "refimpl")

    def run(*extra: str) -> tuple[str, list[tuple]]:
        out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        proc = _pytest(ROOT, _env(False), *argv, "--conformance-report", str(out), *extra)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        seed = re.search(r"^conformance: .* seed=(\d+) ", proc.stdout, re.M).group(1)
        [cases] = out.glob("*/records/cases.parquet")
        c = pd.read_parquet(cases)
        return seed, list(zip(c["suite"], c["seed"], c["index"], c["case_id"]))

    seed, first = run()
    again_seed, again = run("--hypothesis-seed", seed)
    assert again_seed == seed and len(first) >= 10 and first == again
    from conformance import kinds
    from conformance.driver import PROFILES
    from conformance.impls import RefImpl

    names = [s.name for s in kinds.suites(RefImpl.capabilities, PROFILES["dev"])]
    assert {(suite, s) for suite, s, _, _ in first} == {(n, int(seed) + names.index(n))
                                                       for n in ("op tanh", "scalar graphs")}
