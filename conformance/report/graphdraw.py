"""Pictures of a failing graph case, in the spirit of micrograd's ``draw_dot``: each node a box with
its op, value and gradient, leaves with theirs, and the entries the implementation got wrong marked
in red with the implementation's, torch's and the true value side by side.

Values and gradients are refimpl's (the reference, in the case's dtype); the marked entries carry
the run's own numbers. Graphviz draws the picture when ``dot`` is on PATH; otherwise (and always
when asked) :mod:`.layout` places the boxes and this module writes the SVG itself.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from conformance.case.entrykey import EntryKey
from conformance.case.graph import case_from_json
from conformance.oracle.run import REFIMPL_SYSTEMS, evaluate, leaf_tensors
from conformance.report.fmt import apart, esc, ratio, short
from conformance.report.layout import Edge, path_d, place
from conformance.verdict.outcomes import NONCONFORMING, Verdict
from refimpl.tensor import Tensor as RTensor
from refimpl.tensor import grad as tensor_grad

#: the report's caption under a failing graph case's picture
CAPTION = ("Leaves in blue, the output with a heavy border; data and grad are refimpl's (the reference) in the case's "
           "dtype. Red: the entries where the implementation disagrees — implementation / torch / truth.")

FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', 'Liberation Mono', monospace"
FONT_SIZE = 12.0
CHAR_W = 7.3  #: a monospace glyph at 12 px (0.6 em), with a little slack
LINE_H = 16.0
PAD_X, PAD_Y = 9.0, 7.0
MAX_CHARS = 52
MAX_ENTRIES = 4  #: disagreeing entries spelt out per box; the rest are counted
MAX_NODES = 40  #: nodes drawn; beyond, those nearest the output, the rest as one box
ELIDED = "\u22ef"

STYLE = {  # kind -> (fill, stroke, stroke width)
    "leaf": ("#eef4fb", "#6a8fb8", 1.2),
    "op": ("#ffffff", "#9a9a9a", 1.2),
    "output": ("#ffffff", "#333333", 2.2),
    "bad": ("#fff4f4", "#c62828", 2.6),
    "warn": ("#fff8e8", "#b26a00", 2.2),
}
INK = {"title": "#1a1a1a", "label": "#777777", "text": "#1a1a1a", "bad": "#b71c1c", "warn": "#8a5300",
       "note": "#666666"}


@dataclass
class Line:
    """One line of a box: (label, text) parts; the label is printed grey before the text."""

    text: str
    label: str = ""
    kind: str = "text"  # title | text | note


@dataclass
class Mark:
    """A disagreeing entry drawn in its box."""

    entry: str
    verdict: str
    impl: float
    torch: float
    truth: float
    ratio: float

    @property
    def severe(self) -> bool:
        return self.verdict in NONCONFORMING

    def lines(self) -> list[str]:
        """A head line, then the implementation's value, torch's and the truth's, aligned."""
        has_truth = not math.isnan(self.truth)
        x, t, tr = apart(self.impl, self.torch, self.truth)
        head = f"{'✗' if self.severe else '!'} {self.entry}  {self.verdict} · ratio {ratio(self.ratio)}"
        rows = [short(head, MAX_CHARS + 20), f"impl  {x}", f"torch {t}"]
        return rows + ([f"truth {tr}"] if has_truth else [])


@dataclass
class Box:
    name: str
    kind: str  # leaf | op | output
    lines: list[Line]
    marks: list[Mark] = field(default_factory=list)

    @property
    def style(self) -> str:
        if any(m.severe for m in self.marks):
            return "bad"
        return "warn" if self.marks else self.kind

    def text_rows(self) -> int:
        shown = sum(len(m.lines()) for m in self.marks[:MAX_ENTRIES])
        return len(self.lines) + shown + (1 if len(self.marks) > MAX_ENTRIES else 0)

    def size(self) -> tuple[float, float]:
        widths = [len(ln.label) + (1 if ln.label else 0) + len(ln.text) for ln in self.lines]
        widths += [len(s) + (2 if i else 0) for m in self.marks[:MAX_ENTRIES] for i, s in enumerate(m.lines())]
        return (max(widths, default=8) * CHAR_W + 2 * PAD_X, self.text_rows() * LINE_H + 2 * PAD_Y - 2)


# --- SVG, by hand ---------------------------------------------------------------------------------------

def _text(x: float, y: float, body: str, fill: str, bold: bool = False) -> str:
    weight = ' font-weight="600"' if bold else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" fill="{fill}"{weight}>{body}</text>'


def _box_svg(b: Box, x: float, y: float) -> str:
    w, h = b.size()
    fill, stroke, sw = STYLE[b.style]
    out = [f'<g class="node {esc(b.kind)}{" marked" if b.marks else ""}" data-node="{esc(b.name)}">',
           f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="6" ry="6" fill="{fill}" '
           f'stroke="{stroke}" stroke-width="{sw}"/>']
    ty = y + PAD_Y + FONT_SIZE
    tx = x + PAD_X
    for ln in b.lines:
        if ln.kind == "title":
            out.append(_text(tx, ty, esc(ln.text), INK["title"], bold=True))
        elif ln.label:
            out.append(f'<text x="{tx:.1f}" y="{ty:.1f}" fill="{INK["text"]}"><tspan fill="{INK["label"]}">'
                       f'{esc(ln.label)}</tspan> {esc(ln.text)}</text>')
        else:
            out.append(_text(tx, ty, esc(ln.text), INK["note" if ln.kind == "note" else "text"]))
        ty += LINE_H
    for m in b.marks[:MAX_ENTRIES]:
        ink = INK["bad"] if m.severe else INK["warn"]
        head, *values = m.lines()
        out.append(f'<g class="bad-entry" data-entry="{esc(m.entry)}" data-verdict="{esc(m.verdict)}">')
        out.append(_text(tx, ty, esc(head), ink, bold=True))
        for v in values:
            ty += LINE_H
            out.append(f'<text x="{tx + 2 * CHAR_W:.1f}" y="{ty:.1f}" fill="{ink}" xml:space="preserve">'
                       f"{esc(v)}</text>")
        out.append("</g>")
        ty += LINE_H
    if len(b.marks) > MAX_ENTRIES:
        out.append(_text(tx, ty, esc(f"+{len(b.marks) - MAX_ENTRIES} more disagreeing entries (table below)"),
                         INK["bad"]))
    out.append("</g>")
    return "\n".join(out)


def svg(boxes: list[Box], edges: list[Edge], uid: str, label: str = "") -> str:
    """The picture as an inline SVG element (no XML prolog, no namespace URL: it lives in HTML)."""
    by = {b.name: b for b in boxes}
    placed = place([b.name for b in boxes], edges, {b.name: b.size() for b in boxes})
    w, h = placed.width, placed.height
    marker = f"{uid}-arrow"
    out = [f'<svg class="graph" width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.0f} {h:.0f}" role="img" '
           f'aria-label="{esc(label)}" font-family="{esc(FONT)}" font-size="{FONT_SIZE:g}">',
           f'<defs><marker id="{esc(marker)}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8a8a8a"/></marker>'
           "</defs>", '<g class="edges" fill="none" stroke="#9a9a9a" stroke-width="1.3">']
    for e, pts in zip(edges, placed.routes):
        out.append(f'<path class="edge" data-from="{esc(e.src)}" data-to="{esc(e.dst)}" d="{path_d(pts)}" '
                   f'marker-end="url(#{esc(marker)})"/>')
    out.append("</g>")
    for name, (x, y) in placed.boxes.items():
        out.append(_box_svg(by[name], x, y))
    out.append("</svg>")
    return "\n".join(out)


# --- Graphviz, when it is there ------------------------------------------------------------------------

def _dot_id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_source(boxes: list[Box], edges: list[Edge]) -> str:
    """The same boxes as Graphviz HTML-like labels (every string escaped)."""
    lines = ["digraph G {", '  graph [rankdir=TB, nodesep=0.35, ranksep=0.45, bgcolor="transparent"];',
             f'  node [shape=plain, fontname="DejaVu Sans Mono", fontsize={FONT_SIZE - 1:g}];',
             '  edge [color="#9a9a9a", arrowsize=0.7];']
    for b in boxes:
        fill, stroke, sw = STYLE[b.style]
        rows = []
        for ln in b.lines:
            text = esc(ln.text)
            if ln.kind == "title":
                text = f"<b>{text}</b>"
            elif ln.label:
                text = f'<font color="{INK["label"]}">{esc(ln.label)}</font> {text}'
            rows.append(f'<tr><td align="left">{text}</td></tr>')
        for m in b.marks[:MAX_ENTRIES]:
            ink = INK["bad"] if m.severe else INK["warn"]
            head, *values = m.lines()
            rows.append(f'<tr><td align="left"><font color="{ink}"><b>{esc(head)}</b></font></td></tr>')
            rows += [f'<tr><td align="left"><font color="{ink}">  {esc(v)}</font></td></tr>' for v in values]
        if len(b.marks) > MAX_ENTRIES:
            rows.append(f'<tr><td align="left"><font color="{INK["bad"]}">+{len(b.marks) - MAX_ENTRIES} more'
                        "</font></td></tr>")
        table = (f'<table border="{max(1, round(sw))}" cellborder="0" cellspacing="0" cellpadding="2" '
                 f'color="{stroke}" bgcolor="{fill}" style="rounded">{"".join(rows)}</table>')
        lines.append(f"  {_dot_id(b.name)} [label=<{table}>];")
    for e in edges:
        lines.append(f"  {_dot_id(e.src)} -> {_dot_id(e.dst)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


class DotUnavailable(RuntimeError):
    """Graphviz could not draw a picture: ``dot`` is not on PATH, or it failed (the message says how)."""


#: why Graphviz did not draw pictures it was asked for, since render() cleared the list: render() says
#: so in one line on stderr (not once per picture); each such picture is drawn by the built-in layout
DOT_PROBLEMS: list[str] = []


def dot_svg(boxes: list[Box], edges: list[Edge], label: str = "") -> str:
    """Graphviz's SVG, made inline (prolog, comments and namespace URLs removed); raises
    :class:`DotUnavailable` when ``dot`` is not on PATH or fails."""
    exe = shutil.which("dot")
    if exe is None:
        raise DotUnavailable("Graphviz `dot` is not on PATH")
    try:
        done = subprocess.run([exe, "-Tsvg"], input=dot_source(boxes, edges), capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired as exc:
        raise DotUnavailable("Graphviz `dot` took over 30 s") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise DotUnavailable(f"Graphviz `dot` could not run ({type(exc).__name__}: {exc})") from exc
    if done.returncode != 0 or "<svg" not in done.stdout:
        why = (done.stderr.strip().splitlines() or ["no SVG on its output"])[0][:200]
        raise DotUnavailable(f"Graphviz `dot` failed (exit status {done.returncode}: {why})")
    out = done.stdout[done.stdout.index("<svg"):]
    out = re.sub(r"<!--.*?-->", "", out, flags=re.S)
    out = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", out)
    out = re.sub(r"\s+xlink:href=\"[^\"]*\"", "", out)
    return out.replace("<svg", f'<svg class="graph" role="img" aria-label="{esc(label)}"', 1)


def draw(boxes: list[Box], edges: list[Edge], uid: str, label: str = "", engine: str = "auto") -> str:
    """``engine``: ``auto`` (Graphviz if installed, else Python), ``dot`` or ``python``. Graphviz
    asked for and failing (``dot``; ``auto`` with ``dot`` on PATH): Python, and why in DOT_PROBLEMS."""
    if engine == "dot" or (engine == "auto" and shutil.which("dot") is not None):
        try:
            return dot_svg(boxes, edges, label)
        except DotUnavailable as exc:
            DOT_PROBLEMS.append(str(exc))
    return svg(boxes, edges, uid, label)


# --- a graph case as boxes -------------------------------------------------------------------------------

def _values(t: Any, n: int = 4) -> str:
    """A tensor's numbers for a box: a scalar as is, a tensor as (shape) and its first few values."""
    vals = [float(v) for v in t[1]]
    if not t[0]:
        return f"{vals[0]:.6g}"
    head = ", ".join(f"{v:.4g}" for v in vals[:n]) + (", …" if len(vals) > n else "")
    return f"({'×'.join(map(str, t[0]))}) [{head}]"


def _evaluate(case: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every node's value and gradient (of ⟨cotangent, output⟩) by refimpl, as (shape, flat values)."""

    system = REFIMPL_SYSTEMS.get(case.dtype, REFIMPL_SYSTEMS["float64"])
    env = evaluate(case, leaf_tensors(case, system))
    names = [*case.leaves, *(n.name for n in case.nodes)]
    values = {k: (tuple(env[k].shape), [e.data for e in env[k].elements]) for k in names}
    ct = RTensor.from_flat(case.cotangent.values, case.cotangent.shape, system=system, requires_grad=False)
    wrt = [k for k in names if env[k].requires_grad]
    grads: dict[str, Any] = {}
    for k, g in zip(wrt, tensor_grad(env[case.output], [env[k] for k in wrt], ct, allow_unused=True)):
        if g is not None:
            grads[k] = (tuple(g.shape), [float(getattr(e, "data", e)) for e in g.elements])
    return values, grads


def _attrs(attrs: dict[str, Any]) -> str:
    return "".join(f", {k}={v}" for k, v in attrs.items())


def entry_target(name: str, case: Any) -> str:
    """The node an entry belongs to: values to the output, gradients and HVPs to their leaf."""
    target = EntryKey.parse(name).target
    return target if target in case.leaves else str(case.output)


def marks(entries: list[dict[str, Any]]) -> list[Mark]:
    """The entries that disagree with torch (any verdict but pass), as marks."""
    return [Mark(str(e["entry"]), str(e["verdict"]), float(e["implementation"]), float(e["torch"]),
                 float(e["truth"]), float(e["ratio"])) for e in entries if e.get("verdict") != Verdict.PASS]


def graph_boxes(case: Any, entries: list[dict[str, Any]]) -> tuple[list[Box], list[Edge], str]:
    """The boxes and edges of a graph case, and a note when the values could not be computed."""
    note = ""
    try:
        values, grads = _evaluate(case)
    except Exception as exc:  # an odd case must not cost the whole report its picture
        values, grads, note = {}, {}, f"values not shown: refimpl could not evaluate the case ({exc})"
    leaf_set = set(case.leaves)
    boxes: dict[str, Box] = {}
    for k, t in case.leaves.items():
        title = f"{k} · leaf" + (f" ({'×'.join(map(str, t.shape))})" if t.shape else "")
        boxes[k] = Box(k, "leaf", [Line(title, kind="title")])
    for n in case.nodes:
        kind = "output" if n.name == case.output else "op"
        title = short(f"{n.name} = {n.op}({', '.join(n.inputs)}{_attrs(n.attrs)})", MAX_CHARS)
        boxes[n.name] = Box(n.name, kind, [Line(title + (" · output" if kind == "output" else ""), kind="title")])
    for name, b in boxes.items():
        if name in values:
            b.lines.append(Line(_values(values[name]), "data"))
            b.lines.append(Line(_values(grads[name]) if name in grads else "0 (unused: no path to the output)", "grad"))
        elif name in leaf_set:
            b.lines.append(Line(_values((case.leaves[name].shape, case.leaves[name].values)), "data"))
        if case.second_order and name in case.second_order:  # the direction of the HVP
            b.lines.append(Line(_values((case.second_order[name].shape, case.second_order[name].values)), "hvp v"))
    for m in marks(entries):
        boxes[entry_target(m.entry, case)].marks.append(m)
    keep = _near_output(case, MAX_NODES)
    elided = len(case.nodes) - len(keep)
    shown = [b for name, b in boxes.items()
             if name in keep or (name in leaf_set and (b.marks or any(name in n.inputs for n in case.nodes
                                                                      if n.name in keep)))]
    edges = []
    if elided:
        shown.insert(0, Box(ELIDED, "op", [Line(f"⋯ {elided} earlier nodes", kind="title"),
                                           Line("not drawn: the whole case is in its JSON", kind="note")]))
    names = {b.name for b in shown}
    for n in case.nodes:
        if n.name in keep:
            for i, src in enumerate(n.inputs):
                edges.append(Edge(src if src in names else ELIDED, n.name, i, len(n.inputs)))
    return shown, edges, note


def _near_output(case: Any, limit: int) -> set[str]:
    """All nodes if there are at most ``limit``; else the ``limit`` nearest the output (a deep chain's
    minimal case still has hundreds of nodes: its last ones are the picture)."""
    if len(case.nodes) <= limit:
        return {n.name for n in case.nodes}
    inputs = {n.name: n.inputs for n in case.nodes}
    keep: list[str] = []
    frontier = [case.output]
    while frontier and len(keep) < limit:
        nxt = []
        for name in frontier:
            if name in inputs and name not in keep and len(keep) < limit:
                keep.append(name)
                nxt += list(inputs[name])
        frontier = nxt
    return set(keep)


def draw_graph_case(case_obj: dict[str, Any], entries: list[dict[str, Any]], uid: str,
                    engine: str = "auto") -> tuple[str, str]:
    """(SVG, note) for a failing graph case given as its JSON object and its entry rows."""
    case = case_from_json(case_obj)
    boxes, edges, note = graph_boxes(case, entries)
    label = f"graph of case {case.id}: {len(case.leaves)} leaves, {len(case.nodes)} nodes"
    return draw(boxes, edges, uid, label, engine), note
