"""report.html: one self-contained page (inline CSS, embedded PNGs and SVGs, no script, no URL) that a
newcomer can read top to bottom: the verdict per implementation, what regressed, every failure with
a picture of its case, then the plots and the tables.

Every string from the records goes through :func:`.fmt.esc`: reasons, error messages, case ids,
implementation names and versions may all come from the implementation under test.
"""

from __future__ import annotations

import base64
import importlib
import json
import math
import sys
from collections.abc import Callable
from typing import Any

from conformance import kinds
from conformance.report import plots
from conformance.report.data import Failure
from conformance.report.facts import CARDS, Facts
from conformance.report.fmt import counts, esc, full, one_line, pct, ratio, short
from conformance.verdict.outcomes import NONCONFORMING, ORDER, Verdict

MAX_ROWS = 200  #: rows of the non-conforming table
MAX_ENTRY_ROWS = 40  #: disagreeing entries listed per failure
MAX_JSON = 40_000  #: characters of case JSON shown per failure

CSS = """
:root { --ok: #17703a; --ok-bg: #e8f5ec; --bad: #b3261e; --bad-bg: #fdecea; --warn: #8a5300; --warn-bg: #fff5e0;
  --ink: #1d1d1f; --muted: #5f6368; --line: #e3e3e3; --soft: #f6f7f8; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 20px; margin: 40px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 0; }
section > h3 { margin: 26px 0 8px; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace;
  font-size: 0.88em; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
  overflow: auto; max-height: 420px; white-space: pre; }
a { color: #1f5f99; }
.meta { color: var(--muted); font-size: 13.5px; margin: 0; }
.meta span + span::before { content: " · "; color: #b0b0b0; }
nav { margin: 18px 0 0; font-size: 14px; }
nav a { margin-right: 14px; text-decoration: none; }
.headline { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; margin-top: 22px; }
.verdict { border-radius: 10px; padding: 16px 18px; border: 1px solid; }
.verdict.ok { background: var(--ok-bg); border-color: #b7dfc4; }
.verdict.bad { background: var(--bad-bg); border-color: #f3b9b3; }
.verdict.none { background: var(--soft); border-color: var(--line); }
.verdict .impl { font-size: 17px; font-weight: 600; overflow-wrap: anywhere; }
.verdict .ver { color: var(--muted); font-weight: 400; font-size: 14px; }
.verdict .word { font-size: 25px; font-weight: 800; letter-spacing: 0.01em; margin: 4px 0 6px; white-space: nowrap; }
.verdict.ok .word { color: var(--ok); }
.verdict.bad .word { color: var(--bad); }
.verdict .facts { font-size: 14px; color: #333; }
.chips { margin-top: 8px; display: flex; flex-wrap: wrap; gap: 6px; }
.chip { font-size: 12.5px; padding: 1px 8px; border-radius: 999px; background: #fff; border: 1px solid var(--line);
  white-space: nowrap; }
.chip.nc { color: var(--bad); border-color: #f0b4ae; font-weight: 600; }
.chip.rep { color: var(--warn); border-color: #f0d29c; }
.banner { margin-top: 18px; padding: 10px 14px; border-radius: 8px; background: var(--warn-bg);
  border: 1px solid #f0d29c; }
.note { color: var(--muted); }
.good { padding: 10px 14px; border-radius: 8px; background: var(--ok-bg); border: 1px solid #b7dfc4; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; margin: 8px 0 4px; }
th, td { text-align: left; padding: 5px 9px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.reason { overflow-wrap: anywhere; min-width: 260px; }
td.mono { white-space: nowrap; }
tr.nc td.v { color: var(--bad); font-weight: 600; }
td.r-full { color: var(--ok); } td.r-mid { color: var(--warn); font-weight: 600; }
td.r-low { color: var(--bad); font-weight: 700; }
.table-wrap { overflow-x: auto; }
.failure { border: 1px solid var(--line); border-left: 5px solid var(--bad); border-radius: 8px;
  padding: 14px 18px; margin: 16px 0; }
.failure.soft { border-left-color: #e0a030; }
.failure header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px 12px; }
.failure .reason { margin: 8px 0 10px; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 13px; background: var(--bad-bg); padding: 8px 10px; border-radius: 6px; overflow-wrap: anywhere; }
.badge { font-size: 12px; font-weight: 700; padding: 1px 8px; border-radius: 4px; text-transform: uppercase;
  letter-spacing: 0.03em; background: var(--bad); color: #fff; }
.badge.regression { background: #6a1b9a; }
.badge.new { background: #1f5f99; }
.badge.still { background: #6b6b6b; }
.badge.min { background: #fff; color: var(--ink); border: 1px solid var(--line); }
figure { margin: 12px 0; }
figure.picture { overflow-x: auto; background: #fcfcfc; border: 1px solid var(--line); border-radius: 6px;
  padding: 10px; }
figure.picture svg { display: block; margin: 0 auto; max-width: 100%; height: auto; }
figcaption { font-size: 12.5px; color: var(--muted); margin-top: 6px; }
figure.plot img { max-width: 100%; height: auto; display: block; }
details { margin: 6px 0; }
summary { cursor: pointer; color: #1f5f99; font-size: 14px; }
footer { margin-top: 48px; color: var(--muted); font-size: 13px; border-top: 1px solid var(--line);
  padding-top: 12px; }
dl.verdicts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }
dl.verdicts dt { font-weight: 600; } dl.verdicts dd { margin: 0; }
"""


def _num(x: float) -> str:
    return esc(ratio(x))


def _seconds(s: float) -> str:
    return f"{s:.2g} s" if s < 10 else f"{s:.0f} s" if s < 600 else f"{s / 60:.0f} min"


def _rate_class(r: float) -> str:
    if math.isnan(r):
        return ""
    return "r-full" if r >= 1 else "r-mid" if r >= 0.9 else "r-low"


def _table(head: list[tuple[str, bool]], rows: list[str]) -> str:
    ths = "".join(f'<th{" class=num" if num else ""}>{esc(h)}</th>' for h, num in head)
    return f'<div class="table-wrap"><table><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _headline(f: Facts) -> str:
    cards = []
    for i in f.impls:
        chips = []
        for v, n in i.verdicts.items():
            cls = "nc" if v in NONCONFORMING else "rep" if v != Verdict.PASS else ""
            chips.append(f'<span class="chip {cls}">{esc(v)} {n}</span>')
        if i.minimal_failures:
            chips.append(f'<span class="chip nc">minimal failures {i.minimal_failures}</span>')
        cards.append(
            f'<div class="verdict {"bad" if not i.conforms else "ok" if i.cases else "none"}">'
            f'<div class="impl">{esc(i.impl)} <span class="ver">{esc(i.version)}</span></div>'
            f'<div class="word">{esc(i.status)}</div>'
            f'<div class="facts">{i.cases} case{"" if i.cases == 1 else "s"} · worst error/tolerance '
            f'{_num(i.worst_ratio)} · {_seconds(i.seconds)} judging</div>'
            + (f'<div class="facts">claims: {esc(i.claims)}</div>' if i.claims else '')
            + f'<div class="chips">{"".join(chips)}</div></div>')
    if not cards:
        cards.append('<div class="verdict bad"><div class="word">NO CASES</div>'
                     '<div class="facts">The records hold no judged case.</div></div>')
    return f'<section class="headline" id="verdicts">{"".join(cards)}</section>'


def _entries_table(entries: list[dict[str, Any]]) -> str:
    bad = [e for e in entries if e.get("verdict") != Verdict.PASS]
    if not bad:
        return ""
    rows = []
    for e in bad[:MAX_ENTRY_ROWS]:
        x, t, tr = (full(float(e[k])) for k in ("implementation", "torch", "truth"))
        nc = " nc" if e["verdict"] in NONCONFORMING else ""
        tol = f"{float(e['tolerance']):.3g}"
        rows.append(f'<tr class="{nc}"><td class="mono">{esc(e["entry"])}</td><td class="num mono">{esc(x)}</td>'
                    f'<td class="num mono">{esc(t)}</td><td class="num mono">'
                    f'{"—" if math.isnan(float(e["truth"])) else esc(tr)}</td>'
                    f'<td class="num mono">{esc(tol)}</td>'
                    f'<td class="num">{_num(float(e["ratio"]))}</td><td class="v">{esc(e["verdict"])}</td></tr>')
    more = (f'<p class="note">… and {len(bad) - MAX_ENTRY_ROWS} more disagreeing entries (records/entries).</p>'
            if len(bad) > MAX_ENTRY_ROWS else "")
    head = [("entry", False), ("implementation", True), ("torch", True), ("truth", True), ("tolerance", True),
            ("ratio", True), ("verdict", False)]
    return (f"<details {'open' if len(bad) <= 12 else ''}><summary>{len(bad)} of {len(entries)} entries disagree"
            f" with torch</summary>{_table(head, rows)}{more}</details>")


def _picture(x: Failure, uid: str, engine: str) -> str:
    if x.case is None:
        return '<p class="note">No picture: the case could not be read.</p>'
    try:
        module, _, function = kinds.named(x.kind).picture.partition(":")
        drawer = importlib.import_module(module)
        svg, note = getattr(drawer, function)(x.case, x.entries, uid, engine)
        cap = drawer.CAPTION
    except Exception as exc:  # a case the drawing cannot handle must not cost the report
        return f'<p class="note">No picture: {esc(type(exc).__name__)}: {esc(exc)}</p>'
    extra = f" {esc(note)}" if note else ""
    return f'<figure class="picture">{svg}<figcaption>{esc(cap)}{extra}</figcaption></figure>'


def _card(x: Failure, f: Facts, uid: str, engine: str) -> str:
    badges = [f'<span class="badge">{esc(x.verdict)}</span>']
    if f.previous_id is not None:
        if not x.previous:
            badges.append('<span class="badge new">new</span>')
        elif x.previous in NONCONFORMING:
            badges.append(f'<span class="badge still">still failing · was {esc(x.previous)}</span>')
        else:
            badges.append(f'<span class="badge regression">regression · was {esc(x.previous)}</span>')
    if x.minimal:
        badges.append('<span class="badge min">minimal case</span>')
    soft = "" if x.verdict in NONCONFORMING else " soft"
    repro = ""
    if x.repro:
        script = ""
        try:
            script = (f.run.path / x.repro).read_text(encoding="utf-8")
        except OSError:
            pass
        repro = (f'<p>Reproduce with torch: <a href="{esc(x.repro)}"><code>{esc(x.repro)}</code></a> '
                 f'(<code>python {esc(x.repro)}</code> prints torch\'s numbers)</p>'
                 + (f"<details><summary>torch script</summary><pre>{esc(script)}</pre></details>" if script else ""))
    case_json = ""
    if x.case is not None:
        text = json.dumps(x.case, indent=1)
        cut = f"\n… ({len(text) - MAX_JSON} more characters in the records)" if len(text) > MAX_JSON else ""
        case_json = f"<details><summary>case JSON</summary><pre>{esc(text[:MAX_JSON] + cut)}</pre></details>"
    return (f'<article class="failure{soft}" id="{esc(uid)}"><header>{"".join(badges)}'
            f'<h3>{esc(x.impl)} · {esc(x.suite)}</h3><code>{esc(x.case_id)}</code></header>'
            f'<div class="reason">{esc(x.reason) or "(no reason given)"}</div>'
            f'{_picture(x, uid, engine)}{_entries_table(x.entries)}{repro}{case_json}</article>')


def _status(x: Failure, f: Facts) -> str:
    if f.previous_id is None:
        return ""
    if not x.previous:
        return "new"
    return "still failing" if x.previous in NONCONFORMING else f"regression (was {x.previous})"


def _nonconforming_table(items: list[Failure], f: Facts) -> str:
    rows = []
    for x in items[:MAX_ROWS]:
        rows.append(f'<tr class="nc"><td>{esc(x.impl)}</td><td>{esc(x.suite)}</td><td class="mono">'
                    f'{esc(x.case_id)}</td><td class="v">{esc(x.verdict)}</td>'
                    + (f"<td>{esc(_status(x, f))}</td>" if f.previous_id is not None else "")
                    + f'<td class="reason">{esc(short(x.reason, 400))}</td></tr>')
    head = [("implementation", False), ("suite", False), ("case", False), ("verdict", False)]
    head += [("since previous run", False)] if f.previous_id is not None else []
    head += [("reason", False)]
    more = (f'<p class="note">… and {len(items) - MAX_ROWS} more in records/cases.</p>'
            if len(items) > MAX_ROWS else "")
    return _table(head, rows) + more


def _rates_table(f: Facts) -> str:
    rows = [f'<tr><td>{esc(r.impl)}</td><td>{esc(r.family)}</td><td>{esc(r.dtype)}</td><td class="num">{r.cases}'
            f'</td><td class="num">{r.conforming}</td><td class="num {_rate_class(r.rate)}">{esc(pct(r.rate))}</td>'
            f"<td>{esc(counts(r.verdicts))}</td></tr>" for r in f.rates]
    return _table([("implementation", False), ("family", False), ("dtype", False), ("cases", True),
                   ("conforming", True), ("rate", True), ("verdicts", False)], rows)


def _worst_table(f: Facts) -> str:
    rows = []
    for r in f.worst.to_dict("records"):
        nc = "nc" if r["verdict"] in NONCONFORMING else ""
        rows.append(f'<tr class="{nc}"><td>{esc(r["impl"])}</td><td class="mono">{esc(r["case_id"])}</td>'
                    f'<td>{esc(r["suite"])}</td><td>{esc(r["dtype"])}</td><td class="num">{r["nodes"]}</td>'
                    f'<td class="num">{_num(r["worst_ratio"])}</td><td class="v">{esc(r["verdict"])}</td></tr>')
    return _table([("implementation", False), ("case", False), ("suite", False), ("dtype", False),
                   ("nodes / layers", True), ("ratio", True), ("verdict", False)], rows)


def _trend_table(f: Facts) -> str:
    rows = [f'<tr><td>{esc(t.impl)}</td><td class="mono">{esc(t.run_id)}</td><td>{esc(t.started)}</td>'
            f'<td>{esc(t.version)}</td><td class="num">{t.cases}</td>'
            f'<td class="num {_rate_class(t.rate)}">{esc(pct(t.rate))}</td><td class="num">{t.failures}</td>'
            f'<td class="num">{_num(t.worst_ratio)}</td><td>{"yes" if t.conforms else "<b>no</b>"}</td></tr>'
            for ts in f.trend.values() for t in ts]
    return _table([("implementation", False), ("run", False), ("started", False), ("version", False),
                   ("cases", True), ("conforming", True), ("failures", True), ("worst ratio", True),
                   ("conforms", False)], rows)


def _img(png: bytes, alt: str) -> str:
    return (f'<figure class="plot"><img alt="{esc(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode("ascii")}"></figure>')


def _plots(f: Facts) -> str:
    cases = f.run.cases
    if not len(cases):
        return '<p class="note">No cases, no plots.</p>'
    try:
        parts = [
            "<h3>Error/tolerance per case, by family and implementation</h3>",
            _img(plots.ratio_distribution(cases), "worst error/tolerance ratio of each case, per op family"),
            '<p class="note">Each dot is a case (its worst entry); × marks a non-conforming case. Left edge: '
            "exactly 0 (bit-identical to the reference); right edge: infinite (a non-finite mismatch).</p>",
            "<h3>Share of cases that conform, implementation × family</h3>",
            _img(plots.pass_heatmap(cases), "heat map of the share of conforming cases per implementation and family"),
        ]
        if f.trend and max(len(v) for v in f.trend.values()) >= 2:
            parts += [f"<h3>Trend over the last {max(len(v) for v in f.trend.values())} runs</h3>",
                      _img(plots.trend(f.trend), "trend of conforming share, failures and worst ratio per run")]
    except Exception as exc:  # matplotlib missing or a plot failing must not cost the report its page
        why = str(exc) if isinstance(exc, plots.PlotsUnavailable) else one_line(exc)
        sys.stderr.write(f"conformance report: no plots in report.html: {why}\n")
        return f'<p class="banner">Plots are not shown: {esc(why)}. The tables below hold the same numbers.</p>'
    return "".join(parts)


def render_page(f: Facts, engine: str = "auto") -> str:
    meta = f.run.meta
    run_id = str(meta.get("run_id") or f.run.path.name)
    info = [("run", run_id), ("started", meta.get("started")), ("finished", meta.get("finished")),
            ("profile", meta.get("profile")), ("seed", meta.get("seed")), ("shard", meta.get("shard")),
            ("torch", meta.get("torch_version"))]
    meta_line = "".join(f"<span>{esc(k)} <b>{esc(v)}</b></span>" for k, v in info if v not in (None, ""))
    body: list[str] = [f"<header><h1>Backprop conformance report</h1><p class=meta>{meta_line}</p>"]
    if meta.get("command"):
        body.append(f'<p class="meta">command <code>{esc(meta["command"])}</code></p>')
    nav = [("verdicts", "Verdicts"), ("regressions", "Regressions"), ("failures", "Failures"), ("plots", "Plots"),
           ("tables", "Tables"), ("reading", "How to read this")]
    body.append("<nav>" + "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in nav) + "</nav></header>")
    body.append(_headline(f))
    if not f.complete:
        body.append('<p class="banner"><b>This run is incomplete:</b> it stopped before every case was judged; '
                    "the counts cover the cases judged so far.</p>")

    uid = _ids()
    drawn: set[tuple[str, str]] = set()
    body.append('<section id="regressions"><h2>Regressions</h2>')
    if f.previous_id is None:
        body.append(f'<p class="note">{esc(f.previous_note or "No previous run was given: nothing to compare.")}</p>')
    elif not f.regressions:
        body.append(f'<p class="good">No regressions: every case that conformed in run <code>{esc(f.previous_id)}'
                    "</code> still conforms.</p>")
    else:
        body.append(f"<p>{len(f.regressions)} case(s) conformed in run <code>{esc(f.previous_id)}</code> and fail "
                    "now.</p>")
        for x in f.regressions[:CARDS]:
            body.append(_card(x, f, uid(), engine))
            drawn.add(x.key)
        if len(f.regressions) > CARDS:
            body.append(_nonconforming_table(f.regressions[CARDS:], f))
    if f.fixed:
        body.append(f'<p class="note">Fixed since the previous run: {len(f.fixed)} case(s) — '
                    + ", ".join(f"<code>{esc(c)}</code>" for _, c, _ in f.fixed[:20])
                    + (" …" if len(f.fixed) > 20 else "") + "</p>")
    body.append("</section>")

    body.append('<section id="failures"><h2>Failures</h2>')
    if f.previous_id is not None:
        body.append(f"<p>{len(f.new)} new, {len(f.still)} still failing since run <code>{esc(f.previous_id)}"
                    "</code>.</p>")
    if not f.failures and not f.nonconforming:
        body.append('<p class="good">No failures.</p>')
    minimal = [x for x in f.failures if x.key not in drawn]
    if minimal:
        body.append("<p>Each failing suite's minimal case (shrunk by hypothesis), with the reason, a picture of the "
                    "case and a torch script that reproduces it.</p>")
    for x in minimal:
        body.append(_card(x, f, uid(), engine))
    if f.nonconforming:
        body.append(f"<h3>All non-conforming cases ({len(f.nonconforming)})</h3>")
        body.append(f"<details {'open' if len(f.nonconforming) <= 20 else ''}><summary>show the list</summary>"
                    f"{_nonconforming_table(f.nonconforming, f)}</details>")
    body.append("</section>")

    body.append(f'<section id="plots"><h2>Plots</h2>{_plots(f)}</section>')
    body.append('<section id="tables"><h2>Tables</h2><h3>Pass rates by implementation, family and dtype</h3>'
                + _rates_table(f) + f"<h3>Worst cases (top {len(f.worst)} by error/tolerance)</h3>" + _worst_table(f))
    if f.trend:
        body.append("<h3>Trend</h3>" + _trend_table(f))
    if f.output:
        rows = [f'<tr><td>{esc(i)}</td><td class="num">{n}</td><td class="mono">{esc(line)}</td></tr>'
                for i, line, n in f.output]
        body.append("<h3>What the implementations wrote (warnings, stderr; not part of any verdict)</h3>"
                    + _table([("implementation", False), ("cases", True), ("line", False)], rows))
    body.append("</section>")
    verdicts = "".join(f"<dt>{esc(v)}</dt><dd>{esc(v.help)}</dd>" for v in ORDER[::-1])
    body.append('<footer id="reading"><p><b>How to read this.</b> Every entry (the value, each gradient entry, '
                "each HVP component, each loss, gradient and parameter of a training run) is compared with torch "
                "against its own tolerance; <i>error/tolerance</i> is how far it is from passing (1 is the edge). "
                "An implementation conforms when no case is fail, nonfinite-mismatch, error or timeout.</p>"
                f'<dl class="verdicts">{verdicts}</dl></footer>')
    title = f"Conformance report · {run_id}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body><main>\n"
            + "\n".join(body) + "\n</main></body></html>\n")


def _ids() -> Callable[[], str]:
    n = [0]

    def next_id() -> str:
        n[0] += 1
        return f"failure-{n[0]}"
    return next_id
