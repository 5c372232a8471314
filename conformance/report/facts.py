"""What the report says, computed once from the records: the Markdown and the HTML both render these.

Definitions used throughout: a case *conforms* when its verdict is ``pass``, ``convention`` or
``torch-deviates`` (:data:`conformance.verdict.graph.NONCONFORMING` are the others); an implementation
conforms when none of its cases and none of its minimal failures is non-conforming. Regressions
compare (implementation, case id) with the previous run — case ids are content hashes, so the
same seed gives the same ids.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from conformance.report.data import Failure, Run, one_line
from conformance.verdict.outcomes import NONCONFORMING, ORDER

TOP_WORST = 10
TREND_RUNS = 10
CARDS = 12  #: failures drawn in full (with a picture); the rest are listed


@dataclass
class ImplFacts:
    impl: str
    version: str
    cases: int
    verdicts: dict[str, int]  # in ORDER, only those present
    conforms: bool
    worst_ratio: float
    nonconforming: int
    minimal_failures: int
    seconds: float
    complete: bool = True  # the run judged everything it set out to
    claims: str = ""  # how it says it computes (mixed precision), which its tolerances follow

    @property
    def status(self) -> str:
        """The headline word: an implementation with no judged case neither conforms nor fails."""
        if not self.conforms:
            return "DOES NOT CONFORM"
        if not self.cases:
            return "NO CASES JUDGED"
        return "CONFORMS" if self.complete else "CONFORMS SO FAR"


@dataclass
class RateRow:
    impl: str
    family: str
    dtype: str
    cases: int
    conforming: int
    verdicts: dict[str, int]

    @property
    def rate(self) -> float:
        return self.conforming / self.cases if self.cases else math.nan


@dataclass
class TrendRow:
    run_id: str
    started: str
    impl: str
    version: str
    cases: int
    rate: float
    failures: int
    worst_ratio: float
    conforms: bool


@dataclass
class Facts:
    run: Run
    impls: list[ImplFacts]
    rates: list[RateRow]
    worst: pd.DataFrame  # the TOP_WORST cases by worst_ratio
    failures: list[Failure]  # minimal failures (failures/*.json), in file order
    nonconforming: list[Failure]  # every non-conforming row of the cases table, deduplicated
    regressions: list[Failure] = field(default_factory=list)
    new: list[Failure] = field(default_factory=list)  # failing now, not in the previous run
    still: list[Failure] = field(default_factory=list)  # failing in both runs
    fixed: list[tuple[str, str, str]] = field(default_factory=list)  # (impl, case id, suite) failing before only
    previous_id: str | None = None  # the previous run's id, when one was given
    previous_note: str = ""  # why the previous run could not be used
    trend: dict[str, list[TrendRow]] = field(default_factory=dict)
    history_runs: int = 0
    #: what the implementations wrote (warnings, stderr): (impl, line, cases it came from), most first
    output: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return bool(self.run.meta.get("complete", True)) and self.run.meta.get("finished", "") is not None


def conforming(verdict: str) -> bool:
    return verdict not in NONCONFORMING


def _counts(verdicts: Any) -> dict[str, int]:
    c = Counter(str(v) for v in verdicts)
    return {k: c[k] for k in (*ORDER, *sorted(set(c) - set(ORDER))) if c[k]}


def nanmax(values: Any) -> float:
    """The largest value, inf included; NaN only when there is nothing else (error cases have no ratio)."""
    vals = [float(v) for v in values if not math.isnan(float(v))]
    return max(vals) if vals else math.nan


def impl_facts(run: Run) -> list[ImplFacts]:
    out = []
    for impl in run.impls:
        mine = run.cases[run.cases["impl"] == impl]
        counts = _counts(mine["verdict"])
        bad = sum(n for v, n in counts.items() if not conforming(v))
        minimal = [f for f in run.failures if f.impl == impl and not conforming(f.verdict)]
        out.append(ImplFacts(impl, run.version(impl), len(mine), counts, bad == 0 and not minimal,
                             nanmax(mine["worst_ratio"]), bad, len(minimal), float(mine["seconds"].sum()),
                             claims=run.claims(impl)))
    return out


def rate_rows(cases: pd.DataFrame) -> list[RateRow]:
    out = []
    for (impl, family, dtype), g in cases.groupby(["impl", "family", "dtype"], sort=True):
        out.append(RateRow(str(impl), str(family), str(dtype), len(g),
                           int(sum(conforming(v) for v in g["verdict"])), _counts(g["verdict"])))
    return out


def worst_cases(cases: pd.DataFrame, n: int = TOP_WORST) -> pd.DataFrame:
    """The n cases farthest from passing; NaN ratios (errors: nothing was compared) last."""
    df = cases.assign(_r=cases["worst_ratio"].fillna(-1.0))
    return df.sort_values(["_r", "impl", "suite", "case_id"], ascending=[False, True, True, True],
                          kind="mergesort").head(n).drop(columns="_r")


def _entries_of(run: Run, impl: str, case_id: str) -> list[dict[str, Any]]:
    e = run.entries
    rows = e[(e["impl"] == impl) & (e["case_id"] == case_id)]
    return [dict(r) for r in rows.to_dict("records")]


def _case_obj(text: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(text)
    except (TypeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def nonconforming_rows(run: Run) -> list[Failure]:
    """Every non-conforming case of the cases table, once per (impl, case id), worst verdict kept."""
    bad = run.cases.loc[run.cases["verdict"].isin(NONCONFORMING)]
    bad = bad.assign(_o=bad["verdict"].map(lambda v: ORDER.index(v) if v in ORDER else -1))
    bad = bad.sort_values(["impl", "_o", "suite", "index", "case_id"], kind="mergesort")
    out: dict[tuple[str, str], Failure] = {}
    for r in bad.to_dict("records"):
        key = (r["impl"], r["case_id"])
        if key in out:
            continue
        script = run.path / "failures" / f"{r['case_id']}.py"
        out[key] = Failure(r["impl"], r["suite"], r["case_id"], r["kind"] or "graph", r["verdict"],
                           one_line(r["reason"]), _case_obj(r["case_json"]), _entries_of(run, *key),
                           repro=f"failures/{script.name}" if script.exists() else "")
    return list(out.values())


def _verdicts_by_case(run: Run) -> dict[tuple[str, str], str]:
    """(impl, case id) → the worst verdict it got in a run (cases table and minimal failures)."""
    out: dict[tuple[str, str], str] = {}

    def add(key: tuple[str, str], v: str) -> None:
        old = out.get(key)
        if old is None or (v in ORDER and (old not in ORDER or ORDER.index(v) < ORDER.index(old))):
            out[key] = v

    for impl, case_id, v in zip(run.cases["impl"], run.cases["case_id"], run.cases["verdict"]):
        add((impl, case_id), v)
    for f in run.failures:
        add(f.key, f.verdict)
    return out


def trend_rows(history: pd.DataFrame, impls: list[str], n: int = TREND_RUNS) -> dict[str, list[TrendRow]]:
    out: dict[str, list[TrendRow]] = {}
    for impl in impls:
        mine = history[history["impl"] == impl].sort_values(["started", "run_id"], kind="mergesort").tail(n)
        rows = []
        for r in mine.to_dict("records"):
            bad = int(sum(r[v] for v in NONCONFORMING))
            cases = int(r["cases"])
            rows.append(TrendRow(r["run_id"], r["started"], impl, r["impl_version"], cases,
                                 (cases - bad) / cases if cases else math.nan, bad, float(r["worst_ratio"]),
                                 bool(r["conforms"])))
        if rows:
            out[impl] = rows
    return out


def output_rows(cases: pd.DataFrame, n: int = 20) -> list[tuple[str, str, int]]:
    """Each implementation's distinct output lines with the number of cases that wrote them (column
    ``output``; a run recorded before the column existed has none)."""
    if "output" not in cases:
        return []
    seen: Counter[tuple[str, str]] = Counter()
    for impl, text in zip(cases["impl"], cases["output"]):
        if isinstance(text, str) and text:
            seen.update({(str(impl), line) for line in text.splitlines()})
    return [(impl, line, k) for (impl, line), k in seen.most_common(n)]


def gather(run: Run, previous: Run | None = None, previous_note: str = "",
           history: pd.DataFrame | None = None) -> Facts:
    f = Facts(run, impl_facts(run), rate_rows(run.cases), worst_cases(run.cases),
              list(run.failures), nonconforming_rows(run), previous_note=previous_note,
              output=output_rows(run.cases))
    for i in f.impls:
        i.complete = f.complete
    if previous is not None:
        f.previous_id = str(previous.meta.get("run_id") or previous.path.name)
        before = _verdicts_by_case(previous)
        now = _verdicts_by_case(run)
        suites = dict(zip(zip(previous.cases["impl"], previous.cases["case_id"]), previous.cases["suite"]))
        failing = [*[x for x in f.failures if not conforming(x.verdict)], *f.nonconforming]
        seen: set[tuple[str, str]] = set()
        for x in failing:
            x.previous = before.get(x.key, "")
            if x.key in seen:
                continue
            seen.add(x.key)
            (f.new if not x.previous else f.regressions if conforming(x.previous) else f.still).append(x)
        f.fixed = sorted((k[0], k[1], suites.get(k, "")) for k, v in before.items()
                         if not conforming(v) and k in now and conforming(now[k]))
    if history is not None and len(history):
        f.history_runs = int(history["run_id"].nunique())
        f.trend = trend_rows(history, run.impls)
    return f
