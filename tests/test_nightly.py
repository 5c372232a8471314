"""conformance nightly / merge: resume after SIGKILL, shards that add up to the unsharded run, the
budget, history and bad usage — on real runs of refimpl and a planted-bug adapter (small suites)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conformance import records
from conformance.commands import cli

ROOT = Path(__file__).resolve().parent.parent
PLANTED = str(ROOT / "tests/fixtures/planted_adapter.py")
# small suites that still cover graph cases, a failing op, shrinking and a training run
SUITES = ["op tanh", "op exp", "op mul", "scalar graphs", "loss mse"]
SLOW = '''
import dataclasses, time
from conformance.impls import RefImpl
from refimpl import OPS

class Slow(RefImpl):
    """refimpl with tanh's derivative planted wrong, and a pause per case (room to kill it)."""
    name = "slow-planted"

    def run_graph(self, case):
        time.sleep(0.03)
        real = OPS["tanh"]
        OPS["tanh"] = dataclasses.replace(real, derivative=lambda m, x, out: (1 - out,))
        try:
            return super().run_graph(case)
        finally:
            OPS["tanh"] = real

adapter = Slow
'''


@pytest.fixture(autouse=True)
def _no_example_database(monkeypatch):
    """Runs here replay stored failures only where a test sets $HYPOTHESIS_DATABASE itself."""
    monkeypatch.delenv("HYPOTHESIS_DATABASE", raising=False)


def nightly(*argv: str) -> int:
    return cli.main(["nightly", *argv])


def run_dir(out: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The run directory a command just printed (``report: …``)."""
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("report: ")][-1]
    path = Path(line.removeprefix("report: "))
    assert path.parent == out
    return path


def cases(d: Path) -> pd.DataFrame:
    return pd.read_parquet(d / "records" / "cases.parquet")


def key_set(df: pd.DataFrame) -> set[tuple[str, str, int, str, str]]:
    return set(zip(df["impl"], df["suite"], df["index"], df["case_id"], df["verdict"]))


def tree_digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file()}


def test_bad_usage_is_one_line_and_exit_2(tmp_path, capsys):
    for argv, message in [
        (["--impl", "nosuch", "--out", str(tmp_path)], "cannot load --impl 'nosuch'"),
        (["--shard", "3/2", "--out", str(tmp_path)], "--shard must be i/n with 1 <= i <= n, got '3/2'"),
        (["--shard", "0/2", "--out", str(tmp_path)], "--shard must be i/n"),
        (["--budget", "soon", "--out", str(tmp_path)], "--budget must be a positive duration"),
        (["--max-examples", "0", "--out", str(tmp_path)], "--max-examples must be at least 1"),
        (["--resume", str(tmp_path / "nothing")], "is not a run directory"),
        (["--resume", str(tmp_path), "--seed", "3"], "drop --seed"),
    ]:
        assert nightly(*argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)
    assert list(tmp_path.iterdir()) == []  # no run directory for a command that was refused
    with pytest.raises(SystemExit) as e:
        nightly("--budget", "1m", "--max-examples", "3")
    assert e.value.code == 2


def test_kill_then_resume_records_every_case_once_and_spares_earlier_reports(tmp_path, capsys):
    out = tmp_path / "reports"
    adapter = tmp_path / "slow.py"
    adapter.write_text(SLOW)
    common = ["--impl", str(adapter), "--max-examples", "12", "--seed", "11", "--suites", *SUITES[:4],
              "--out", str(out)]
    assert nightly(*common) == 1  # the uninterrupted run, and an earlier report the kill must not touch
    whole = run_dir(out, capsys)
    before = tree_digest(out)  # every file of the earlier report, and the history

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "conformance", "nightly", *common], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    journal: list[Path] = []
    while time.monotonic() < deadline:
        journal = [p for p in out.glob("*/records/journal.jsonl") if whole.name not in str(p)]
        if journal and journal[0].read_text().count('"case"') >= 12:  # inside 'scalar graphs', after 9 op cases
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert journal, proc.stdout.read().decode()  # type: ignore[union-attr]
    killed = journal[0].parent.parent
    n_before = sum(1 for line in journal[0].read_text().splitlines() if '"case"' in line)
    assert not json.loads((killed / "run.json").read_text())["complete"]
    assert not (killed / "records" / "cases.parquet").exists()
    after = {k: v for k, v in tree_digest(out).items() if not k.startswith(killed.name)}
    assert after == before  # earlier reports and history: byte for byte

    assert nightly("--resume", str(killed)) == 1
    assert run_dir(out, capsys) == killed
    resumed, uninterrupted = cases(killed), cases(whole)
    assert not resumed.duplicated(["impl", "suite", "index"]).any()
    assert key_set(resumed) == key_set(uninterrupted)
    assert resumed["verdict"].value_counts().to_dict() == uninterrupted["verdict"].value_counts().to_dict()
    assert n_before < len(resumed)  # it was killed mid-way, and resuming finished it
    lines = journal[0].read_text().splitlines()
    assert sum('"case"' in line for line in lines) == len(resumed)  # no case judged twice
    assert sorted(p.name for p in (killed / "failures").iterdir()) == \
        sorted(p.name for p in (whole / "failures").iterdir())
    meta = json.loads((killed / "run.json").read_text())
    assert meta["complete"] and meta["finished"]
    hist = pd.read_parquet(out / "history.parquet")
    assert sorted(hist["run_id"]) == sorted([whole.name, killed.name])  # one row per (run, impl)
    print(f"killed after {n_before} cases; resumed to {len(resumed)}; uninterrupted {len(uninterrupted)}")


def test_two_shards_merged_equal_the_unsharded_run(tmp_path, capsys):
    out, shards = tmp_path / "reports", tmp_path / "shards"
    common = ["--impl", "refimpl", PLANTED, "--max-examples", "4", "--seed", "5", "--suites", *SUITES]
    assert nightly(*common, "--out", str(out)) == 1
    whole = run_dir(out, capsys)
    parts = []
    for i in (1, 2):
        nightly(*common, "--shard", f"{i}/2", "--out", str(shards))
        parts.append(run_dir(shards, capsys))
    assert not (shards / "history.parquet").exists()  # a shard is not a run of its own in the history
    a, b = cases(parts[0]), cases(parts[1])
    assert a.empty is False and b.empty is False
    assert not set(zip(a["impl"], a["suite"])) & set(zip(b["impl"], b["suite"]))  # each suite in one shard

    assert cli.main(["merge", str(parts[0]), str(parts[1]), "--out", str(out)]) == 1
    merged = run_dir(out, capsys)
    assert key_set(cases(merged)) == key_set(cases(whole))
    assert len(cases(merged)) == len(cases(whole))
    assert set(cases(merged)["run_id"]) == {merged.name}
    assert sorted(p.name for p in (merged / "failures").iterdir()) == \
        sorted(p.name for p in (whole / "failures").iterdir()) != []
    meta = json.loads((merged / "run.json").read_text())
    assert meta["merged_from"] == [p.name for p in parts] and meta["shard"] == "1/1" and meta["seed"] == 5
    hist = pd.read_parquet(out / "history.parquet")
    assert len(hist) == 4 and set(hist["impl"]) == {"refimpl", "planted-tanh"}
    assert hist.set_index(["run_id", "impl"]).loc[(merged.name, "planted-tanh"), "fail"] > 0
    assert records.previous_run(out, meta) == whole  # what the renderer lists regressions against

    # shards that are not one run: exit 2, one line
    other = tmp_path / "other"
    nightly("--impl", "refimpl", "--max-examples", "2", "--seed", "6", "--suites", "op exp", "op mul",
            "--shard", "2/2", "--out", str(other))
    odd = run_dir(other, capsys)
    for argv, message in [([parts[0], odd], "seed is 5"), ([parts[0], parts[0]], "exactly once"),
                          ([parts[0]], "exactly once"), ([tmp_path], "not a run directory")]:
        assert cli.main(["merge", *map(str, argv), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_budget_stops_starting_cases_and_still_writes_a_report(tmp_path, capsys):
    adapter = tmp_path / "slow.py"
    adapter.write_text(SLOW)
    out = tmp_path / "reports"
    assert nightly("--impl", str(adapter), "--budget", "1s", "--profile", "ci", "--seed", "2",
                   "--suites", "op *", "--out", str(out)) in (0, 1)
    d = run_dir(out, capsys)
    meta = json.loads((d / "run.json").read_text())
    assert meta["complete"] and meta["budget_seconds"] == 1 and meta["cut"]["impl"] == "slow-planted"
    n = len(cases(d))
    assert 0 < n < 39 * 10  # ci: 10 cases for each of the 39 op suites; the budget cut it short
    assert n == sum(1 for line in (d / "records" / "journal.jsonl").read_text().splitlines() if '"case"' in line)


def test_all_skips_implementations_that_do_not_load(tmp_path, capsys, monkeypatch):
    from conformance import impls
    from conformance.commands import nightly as nightly_module
    from conformance.impls import loading

    class Broken:  # one of this project's adapters whose library is missing: loaded in process, where it fails
        name = "broken"
        value = "conformance.impls.adapters.broken:BrokenImpl"

        def load(self):
            raise ImportError("no module named 'broken_lib'")

    found = {"refimpl": impls.RefImpl, "broken": Broken()}
    monkeypatch.setattr(impls, "available", lambda: found)
    monkeypatch.setattr(loading, "available", lambda: found)
    monkeypatch.setattr(nightly_module, "available", lambda: found)  # where nightly looks it up
    assert nightly("--max-examples", "1", "--seed", "1", "--suites", "op exp", "--out", str(tmp_path)) == 0
    captured = capsys.readouterr()
    assert "skipped broken: no module named 'broken_lib'" in captured.err
    meta = json.loads(next(tmp_path.glob("*/run.json")).read_text())
    assert meta["impls"] == ["refimpl"] and meta["skipped"][0]["impl"] == "broken"


def test_the_example_database_replays_past_failures_until_they_are_fixed(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HYPOTHESIS_DATABASE", str(tmp_path / "db"))
    fixed = tmp_path / "fixed.py"  # the same implementation after its tanh bug is fixed
    fixed.write_text("from conformance.impls import RefImpl\n\nclass Fixed(RefImpl):\n    name = 'planted-tanh'\n\n"
                     "adapter = Fixed\n")
    out = tmp_path / "reports"

    def replayed(impl: str, seed: int) -> pd.DataFrame:
        nightly("--impl", impl, "--max-examples", "1", "--seed", str(seed), "--suites", "op tanh", "--out", str(out))
        c = cases(run_dir(out, capsys))
        return c[c["suite"] == "op tanh (replayed)"]

    assert replayed(PLANTED, 1).empty  # nothing stored yet; its minimal failure is saved
    again = replayed(PLANTED, 2)  # another seed: the stored failure is judged first, and still fails
    assert len(again) == 1 and again["verdict"].tolist() == ["fail"]
    assert replayed(str(fixed), 3)["verdict"].tolist() == ["pass"]  # fixed: it passes, and is removed
    assert replayed(str(fixed), 4).empty
