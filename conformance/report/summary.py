"""summary.md: the report as text — what a terminal, a CI log or a pull request shows."""

from __future__ import annotations

from conformance.report.data import Failure
from conformance.report.facts import Facts
from conformance.report.fmt import code, counts, md, pct, ratio
from conformance.verdict.outcomes import COLUMNS

MAX_LISTED = 50  #: non-conforming cases listed one by one; the rest are counted
#: verdict columns, as `conformance verify` prints them


def _table(head: list[str], rows: list[list[str]], right: set[int] | None = None) -> list[str]:
    if not rows:
        return ["No cases.", ""]
    right = right or set()
    align = ["---:" if i in right else "---" for i in range(len(head))]
    return ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |",
            *["| " + " | ".join(r) + " |" for r in rows], ""]


def _repro(f: Failure) -> str:
    return code(f.repro) if f.repro else "— (not a minimal case: its JSON is in records/cases)"


def _failure_line(f: Failure, was: bool = False) -> str:
    prev = f" (was {md(f.previous)})" if was and f.previous else ""
    return (f"- {code(f.impl)} · {md(f.suite)} · {code(f.case_id)} — **{md(f.verdict)}**{prev}: {md(f.reason)}"
            f" — repro: {_repro(f)}")


def _list(title: str, items: list[Failure], was: bool = False) -> list[str]:
    lines = [f"## {title} ({len(items)})", ""]
    lines += [_failure_line(f, was) for f in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        lines.append(f"- … and {len(items) - MAX_LISTED} more (records/cases)")
    return [*lines, ""]


def render_summary(f: Facts) -> str:
    meta = f.run.meta
    run_id = meta.get("run_id") or f.run.path.name
    out = [f"# Conformance report — run {code(run_id)}", ""]
    info = [("started", meta.get("started")), ("finished", meta.get("finished")), ("profile", meta.get("profile")),
            ("seed", meta.get("seed")), ("shard", meta.get("shard")), ("torch", meta.get("torch_version"))]
    line = " · ".join(f"{k} {md(v)}" for k, v in info if v not in (None, ""))
    out += [line, ""] if line else []
    if meta.get("command"):
        out += [f"Command: {code(meta['command'])}", ""]
    if not f.complete:
        out += ["> **This run is incomplete**: it was stopped before all its cases were judged; the counts "
                "cover the cases judged so far.", ""]

    out += ["## At a glance", ""]
    rows = [[code(i.impl), md(i.version) or "—", f"**{i.status}**",
             str(i.cases), *[str(i.verdicts.get(v, 0)) for v in COLUMNS], str(i.minimal_failures),
             ratio(i.worst_ratio)] for i in f.impls]
    out += _table(["implementation", "version", "verdict", "cases", *COLUMNS, "minimal failures", "worst ratio"],
                  rows, right=set(range(3, 5 + len(COLUMNS))))
    out += ["A case conforms when its verdict is pass, convention, torch-deviates, known-cause, unchecked "
            "(an entry within a tolerance that checks nothing: not a pass) or robustness (charged only by "
            "verify --strict); the worst ratio is the largest error/tolerance (1 is the edge of passing).", ""]
    claimed = [f"{code(i.impl)}: {md(i.claims)}" for i in f.impls if i.claims]
    if claimed:
        out += ["Claims the tolerances follow (mixed precision: a case in that dtype is judged by the "
                "bound of the claimed accumulation, docs/precision.md): " + "; ".join(claimed) + ".", ""]

    if f.previous_id is not None:
        out += _list(f"Regressions: conformed in run {md(f.previous_id)}, fail now", f.regressions, was=True)
        out += _list("New failures: cases not in the previous run", f.new)
        if f.still:
            out += _list("Still failing", f.still, was=True)
        if f.fixed:
            out += [f"## Fixed since the previous run ({len(f.fixed)})", ""]
            out += [f"- {code(i)} · {md(s)} · {code(c)}" for i, c, s in f.fixed[:MAX_LISTED]]
            out += [""]
    elif f.previous_note:
        out += [f"_No regressions computed: {md(f.previous_note)}_", ""]

    out += [f"## Failures: minimal cases ({len(f.failures)})", ""]
    if not f.failures:
        out += ["None.", ""]
    else:
        out += ["Each failing suite's smallest failing case. Paths are relative to this run's directory; "
                "`python failures/<case>.py` prints torch's numbers.", ""]
    for x in f.failures:
        out += [f"### {md(x.impl)} · {md(x.suite)} · {code(x.case_id)} — {md(x.verdict)}", "",
                md(x.reason) or "(no reason given)", "", f"Reproduce with torch: {_repro(x)}", ""]
    if f.nonconforming and f.previous_id is None:
        out += _list("Non-conforming cases", f.nonconforming)

    out += ["## Pass rates by implementation, family and dtype", ""]
    out += _table(["implementation", "family", "dtype", "cases", "conforming", "rate", "verdicts"],
                  [[code(r.impl), md(r.family), md(r.dtype), str(r.cases), str(r.conforming), pct(r.rate),
                    md(counts(r.verdicts))] for r in f.rates], right={3, 4, 5})

    out += [f"## Worst cases (top {len(f.worst)} by error/tolerance)", ""]
    out += _table(["implementation", "case", "suite", "dtype", "ratio", "verdict"],
                  [[code(r["impl"]), code(r["case_id"]), md(r["suite"]), md(r["dtype"]), ratio(r["worst_ratio"]),
                    md(r["verdict"])] for r in f.worst.to_dict("records")], right={4})

    if f.output:
        out += ["## What the implementations wrote", "",
                "Warnings and stderr while a case ran: kept out of the verdicts (each case's own are in the "
                "cases table, column `output`).", ""]
        out += _table(["implementation", "cases", "line"], [[code(i), str(n), code(line)] for i, line, n in f.output],
                      right={1})
    if f.trend:
        out += [f"## Trend (last {max(len(v) for v in f.trend.values())} runs per implementation)", ""]
        rows = [[code(t.impl), code(t.run_id), md(t.started), md(t.version), str(t.cases), pct(t.rate),
                 str(t.failures), ratio(t.worst_ratio), "yes" if t.conforms else "**no**"]
                for ts in f.trend.values() for t in ts]
        out += _table(["implementation", "run", "started", "version", "cases", "conforming", "failures",
                       "worst ratio", "conforms"], rows, right={4, 5, 6, 7})
    return "\n".join(out).rstrip() + "\n"
