"""Report records (conformance/records.py): rows that match the verdicts, failures as files, durable
and atomic writes, and the same records from ``conformance verify --report`` and
``pytest --conformance-report``."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from conformance import records
from conformance.case import graph as cases
from conformance.case.graph import GraphCase, Node, Tensor
from conformance.commands import cli
from conformance.commands import verify as ver
from conformance.verdict.graph import CaseVerdict, Entry

ROOT = Path(__file__).resolve().parent.parent
SMALL = '''
import dataclasses
from conformance.impls import Capabilities, RefImpl
from refimpl import OPS

class Small(RefImpl):
    """refimpl on four ops, float64 only, with tanh's derivative planted wrong (1 - t for 1 - t^2)."""
    name = "small-planted"
    capabilities = Capabilities(frozenset({"tanh", "exp", "mul", "add"}), ("float64",))

    def run_graph(self, case):
        real = OPS["tanh"]
        OPS["tanh"] = dataclasses.replace(real, derivative=lambda m, x, out: (1 - out,))
        try:
            return super().run_graph(case)
        finally:
            OPS["tanh"] = real

adapter = Small
'''


def digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file()}


# --- rows -----------------------------------------------------------------------------------------------

def test_ulps_are_those_of_the_cases_dtype():
    assert records.ulp(1.0, "float64") == 2.0**-52
    assert records.ulp(1.0, "float32") == 2.0**-23
    assert records.ulp(-3.0, "float32") == 2.0**-22
    assert records.ulp(0.0, "float32") == 2.0**-149
    e = Entry("grad[x]", 1.0 + 2.0**-20, 1.0, 1e-6, "fail", truth=1.0)
    assert records.errors(e, "float32") == (2.0**-20, 2.0**-20, 8.0)
    assert records.errors(e, "float64") == (2.0**-20, 2.0**-20, 2.0**32)


def test_errors_use_the_truth_when_computed_and_keep_non_finite_values():
    assert records.errors(Entry("v", 2.0, 1.0, 0.1, "fail"), "float64")[0] == 1.0  # against torch
    assert records.errors(Entry("v", 2.0, 1.0, 0.1, "fail", truth=1.5), "float64")[0] == 0.5  # the truth
    assert records.errors(Entry("v", math.inf, 1.0, 0.1, "nonfinite-mismatch"), "float64")[0] == math.inf
    assert math.isnan(records.errors(Entry("v", math.nan, 1.0, 0.1, "nonfinite-mismatch"), "float64")[1])
    assert records.errors(Entry("v", math.inf, math.inf, 0.1, "pass"), "float64") == (0.0, 0.0, 0.0)


def test_a_case_row_and_its_entries():
    case = GraphCase({"x": Tensor.scalar(0.5)}, (Node("n0", "tanh", ("x",)), Node("n1", "mul", ("n0", "x"))),
                     "n1", Tensor.scalar(1.0), id="g-test")
    v = CaseVerdict(case, "fail", [Entry("value", 0.25, 0.25, 1e-16, "pass"),
                                   Entry("grad[x]", 1.0, 0.9, 1e-16, "fail", truth=0.8)], reason="grad[x]: …\nmore")
    ctx = dict(run_id="r", started="s", impl="i", impl_version="1", torch_version="t", shard="1/1",
               suite="scalar graphs", family="graphs", seed=7, index=3, seconds=0.5)
    row, entries = records.rows(v, **ctx)
    assert list(row) == list(records.CASE_COLUMNS)
    assert (row["kind"], row["ops"], row["nodes"], row["depth"], row["entries"]) == ("graph", "mul tanh", 2, 2, 2)
    assert row["max_abs_error"] == pytest.approx(0.2) and row["reason"] == "grad[x]: …"
    assert row["worst_ratio"] == pytest.approx(0.2 / 1e-16)
    assert cases.loads(row["case_json"]).id == "g-test"
    assert [e["entry"] for e in entries] == ["value", "grad[x]"] and math.isnan(entries[0]["truth"])
    assert records.rows(CaseVerdict(case, "pass", v.entries[:1]), **ctx)[1] == []  # no entries rows for a pass
    assert records.family_of(case) == "graphs"


# --- durable files --------------------------------------------------------------------------------------

def test_atomic_and_exclusive_writes(tmp_path):
    p = tmp_path / "a.json"
    records.atomic_write(p, "one")
    records.atomic_write(p, "two")
    assert p.read_text() == "two"
    assert not records.write_new(p, "three") and p.read_text() == "two"  # never replaced
    assert [x.name for x in tmp_path.iterdir()] == ["a.json"]  # no temporary file left behind
    a, b = records.new_run_dir(tmp_path / "r"), records.new_run_dir(tmp_path / "r")
    assert a != b and not any(a.iterdir())


def test_a_journal_cut_mid_line_keeps_its_complete_lines(tmp_path):
    j = records.Journal(tmp_path / "records" / "journal.jsonl")
    j.append({"event": {"n": 1}})
    j.close()
    with open(j.path, "a") as f:
        f.write('{"event": {"n": 2')  # a kill in the middle of a line
    assert [o["event"]["n"] for o in records.read_journals(tmp_path)] == [1]
    j2 = records.Journal(j.path)
    j2.append({"event": {"n": 3}})  # a resumed run appends after the last complete line
    j2.close()
    assert [o["event"]["n"] for o in records.read_journals(tmp_path)] == [1, 3]


# --- conformance verify --report ------------------------------------------------------------------------

def test_verify_report_records_match_the_verdicts(tmp_path, capsys, monkeypatch):
    adapter = tmp_path / "small.py"
    adapter.write_text(SMALL)
    seen: list[list[ver.SuiteResult]] = []
    real = ver.verify
    monkeypatch.setattr(ver, "verify", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    out = tmp_path / "reports"
    assert cli.main(["verify", "--impl", str(adapter), "--max-examples", "6", "--seed", "4",
                     "--report", str(out)]) == 1
    printed = capsys.readouterr().out.splitlines()[-1]
    d = Path(printed.removeprefix("report: "))
    assert d.parent == out and printed.startswith("report: ")
    results = seen[0]

    c = pd.read_parquet(d / "records" / "cases.parquet")
    assert list(c.columns) == list(records.CASE_COLUMNS)
    total: Counter[str] = sum((r.verdicts for r in results), Counter())
    assert c["verdict"].value_counts().to_dict() == dict(total)
    for r in results:
        mine = c[c["suite"] == r.suite.name]
        assert mine["verdict"].value_counts().to_dict() == dict(r.verdicts)
        assert list(mine["index"]) == list(range(len(mine))) and set(mine["family"]) == {r.suite.family}
    assert set(c["seed"]) == {4 + i for i in range(len(results))}  # suite i has seed + i, as verify

    e = pd.read_parquet(d / "records" / "entries.parquet")
    bad = c[c["verdict"] != "pass"]
    assert "fail" in set(bad["verdict"]) and set(e["case_id"]) == set(bad["case_id"])
    assert len(e) == bad["entries"].sum()  # every entry of every non-pass case, and nothing else
    assert (e["verdict"] == "fail").any() and (e[e["verdict"] == "fail"]["ratio"] > 1).all()
    assert len(pd.read_csv(d / "records" / "cases.csv")) == len(c)

    failing = [r for r in results if r.failure]
    assert failing and len(list((d / "failures").glob("*.json"))) == len(failing)
    # the same minimal case may end two suites: failures/<case_id>.json, then <case_id>-2.json
    docs = {json.loads(p.read_text())["suite"]: p for p in (d / "failures").glob("*.json")}
    for r in failing:
        path = docs[r.suite.name]
        assert path.name.startswith(r.failure.case.id)
        doc = json.loads(path.read_text())
        assert (doc["impl"], doc["verdict"], doc["kind"]) == ("small-planted", "fail", "graph")
        assert cases.case_from_json(doc["case"]) == r.failure.case
        assert any(x["verdict"] == "fail" for x in doc["entries"])
        compile(path.with_suffix(".py").read_text(), "repro", "exec")
    meta = json.loads((d / "run.json").read_text())
    assert meta["complete"] and meta["seed"] == 4 and meta["impls"] == ["small-planted"] and meta["finished"]
    assert (d / "summary.md").exists() and (d / "report.html").exists()  # rendered from the records

    before = digest(d)  # a second report: a new directory, the first one untouched
    assert cli.main(["verify", "--impl", str(adapter), "--max-examples", "2", "--seed", "4",
                     "--report", str(out)]) == 1
    assert digest(d) == before and len([p for p in out.iterdir() if p.is_dir()]) == 2
    hist = pd.read_parquet(out / "history.parquet")
    assert len(hist) == 2 and not hist["conforms"].any() and hist["cases"].iloc[0] == len(c)


# --- pytest --conformance-report ------------------------------------------------------------------------

SUITES = "conformance/test_suites.py::test_suite"


def _pytest(tmp_path: Path, *argv: str) -> Path:
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--conformance-profile", "dev", "--conformance-report", str(out), *argv],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(dirs) == 1, proc.stdout + proc.stderr
    assert f"conformance report: {dirs[0]}" in proc.stdout
    return dirs[0]


def _verify_suite(impl, name: str, seed: int) -> tuple[str, list[tuple]]:
    """What ``conformance verify --profile dev --seed SEED`` judges in the suite ``name``: its family
    and (index, seed, case id, verdict) of each case, from the same driver call verify makes."""
    from conformance import driver, kinds

    planned = kinds.suites(impl.capabilities, driver.PROFILES["dev"])
    i = next(i for i, s in enumerate(planned) if s.name == name)
    seen: list[tuple] = []
    driver.run_suite(impl, planned[i], seed + i, shrink=False,
                     on_case=lambda s, sd, index, v, t: seen.append((index, sd, v.case.id, str(v.verdict))))
    return planned[i].family, seen


def test_pytest_report_writes_verifys_records(tmp_path):
    """The suite's records under pytest are verify's: the suite's name, its family, seed + i, every case
    of the suite with its index and verdict, and its minimal failing case in failures/."""
    from conformance.impls.loading import resolve

    planted = str(ROOT / "tests/fixtures/planted_adapter.py")
    d = _pytest(tmp_path, f"{SUITES}[op tanh]", "--conformance-impl", planted, "--hypothesis-seed", "3")
    c = pd.read_parquet(d / "records" / "cases.parquet")
    assert list(c.columns) == list(records.CASE_COLUMNS) and set(c["impl"]) == {"planted-tanh"}
    family, expected = _verify_suite(resolve(planted), "op tanh", 3)
    assert set(c["suite"]) == {"op tanh"} and set(c["family"]) == {family} == {"trig-sigmoid"}
    assert list(zip(c["index"], c["seed"], c["case_id"], c["verdict"], strict=True)) == expected
    assert "fail" in set(c["verdict"])
    [failure] = (d / "failures").glob("*.json")
    doc = json.loads(failure.read_text())
    assert doc["suite"] == "op tanh" and doc["verdict"] == "fail"
    assert len(cases.case_from_json(doc["case"]).nodes) == 1  # shrunk
    meta = json.loads((d / "run.json").read_text())
    assert meta["complete"] and meta["seed"] == 3 and meta["profile"] == "dev" and meta["truth"] == "arbitrate"
    assert (d / "summary.md").exists()
    hist = pd.read_parquet(d.parent / "history.parquet")
    assert hist["impl"].tolist() == ["planted-tanh"] and hist["cases"].tolist() == [len(c)]


def test_pytest_report_records_the_worked_examples_as_their_own_suite(tmp_path):
    d = _pytest(tmp_path, "conformance/test_worked_examples.py", "--conformance-impl", "refimpl")
    c = pd.read_parquet(d / "records" / "cases.parquet")
    assert set(c["suite"]) == {"worked examples"} and set(c["verdict"]) == {"pass"}
    assert sorted(c["index"]) == list(range(len(c))) and len(c) == 7


def test_pytest_report_under_xdist_merges_the_workers_journals(tmp_path):
    d = _pytest(tmp_path, f"{SUITES}[op sin]", f"{SUITES}[op sqrt]", "--conformance-impl", "refimpl",
                "--hypothesis-seed", "5", "-p", "xdist", "-n", "2")
    assert sorted(p.name for p in (d / "records").glob("journal*")) == ["journal-gw0.jsonl", "journal-gw1.jsonl"]
    c = pd.read_parquet(d / "records" / "cases.parquet")
    assert sorted(c["suite"].unique()) == ["op sin", "op sqrt"]
    assert set(c["verdict"]) == {"pass"}
    per_worker = sum(1 for p in (d / "records").glob("journal*") for line in p.read_text().splitlines()
                     if '"case"' in line)
    assert len(c) == per_worker > 0 and not c.duplicated(["suite", "index"]).any()
    from conformance.impls import RefImpl

    for name in ("op sin", "op sqrt"):  # each worker drew verify's cases for its suite
        mine = c[c["suite"] == name].sort_values("index")
        assert list(mine["case_id"]) == [case_id for _, _, case_id, _ in _verify_suite(RefImpl(), name, 5)[1]]
    assert json.loads((d / "run.json").read_text())["complete"]


def test_a_history_written_before_a_verdict_existed_gets_that_count_as_zero(tmp_path):
    """history.parquet keeps growing across releases: rows written before ``known-cause`` existed
    read back (and are rewritten) with 0 in its column, as integers, next to the new rows."""
    row = {c: (0 if t == "int64" else 0.0 if t == "float64" else False if t == "bool" else "x")
           for c, t in records.HISTORY_COLUMNS.items()}
    old = records.frame([dict(row, run_id="old")], records.HISTORY_COLUMNS).drop(columns=["known-cause"])
    old.to_parquet(tmp_path / records.HISTORY, index=False)
    records.append_history(tmp_path, [dict(row, run_id="new", **{"known-cause": 3})])
    df = pd.read_parquet(tmp_path / records.HISTORY)
    assert list(df["run_id"]) == ["old", "new"]
    assert list(df["known-cause"]) == [0, 3] and str(df["known-cause"].dtype) == "int64"
