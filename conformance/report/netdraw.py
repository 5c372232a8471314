"""A compact picture of a failing training run: the layer stack (sizes, activations), the loss and the
optimizer, with the parameter and loss entries the implementation got wrong marked in their box."""

from __future__ import annotations

import textwrap
from itertools import pairwise
from typing import Any

from conformance.case.entrykey import EntryKey
from conformance.case.network import case_from_json
from conformance.report.fmt import short
from conformance.report.graphdraw import MAX_CHARS, Box, Edge, Line, draw, marks

#: the report's caption under a failing training run's picture
CAPTION = ("The training run: input, layer stack, loss and optimizer. Red: parameters or losses where the "
           "implementation disagrees with torch (step after @; anchored = from the implementation's own "
           "previous step).")

def _shape(t: Any) -> str:
    return "×".join(map(str, t.shape))


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, MAX_CHARS, break_long_words=True) or [""]


def network_boxes(case: Any, entries: list[dict[str, Any]]) -> tuple[list[Box], list[Edge]]:
    b0 = case.batches[0]
    x = " × ".join(map(str, b0.x.shape[1:])) if case.features else case.sizes[0]
    boxes = [Box("input", "leaf", [Line(f"input · batch {b0.x.shape[0]} × {x}", kind="title"),
                                   Line(f"{_shape(b0.y)}", "targets"),
                                   Line(f"{case.steps} step(s), {case.dtype}", "run")])]
    for i, f in enumerate(case.features):  # a CNN's feature layers, then flatten
        attrs = ", ".join(f"{k}={v}" for k, v in f.attrs.items())
        lines = [Line(short(f"layer{i} · {f.kind}", MAX_CHARS), kind="title")]
        lines += [Line(t, "attrs") for t in (_wrap(attrs) if attrs else [])]
        lines += [Line(f"{p} {_shape(t)}", "weight") for p, t in f.params.items() if t is not None]
        boxes.append(Box(f"layer{i}", "op", lines))
    for i, la in enumerate(case.layers):
        act = la.activation + "".join(f", {k}={v}" for k, v in la.attrs.items())
        name = case.linear_name(i)
        lines = [Line(short(f"{name} · Linear {la.in_features}→{la.out_features} · {act}", MAX_CHARS),
                      kind="title"),
                 Line(f"{_shape(la.weight)}" + (f", bias {_shape(la.bias)}" if la.bias is not None else ", no bias"),
                      "weight")]
        boxes.append(Box(name, "op", lines))
    if case.head != "none":
        boxes.append(Box("head", "op", [Line(f"{case.head} over classes", kind="title")]))
    attrs = ", ".join(f"{k}={list(v.values) if hasattr(v, 'values') else v}" for k, v in case.loss_attrs.items())
    loss = Box("loss", "output", [Line(f"loss · {case.loss} ({case.reduction})", kind="title")])
    loss.lines += [Line(t, "attrs") for t in (_wrap(attrs) if attrs else [])]
    boxes.append(loss)
    if case.gradients_only:
        opt = Box("optimizer", "op", [Line("no optimizer · gradients only", kind="title"),
                                      Line(f"the gradients of {case.n_params} parameters", kind="note")])
    else:
        hyper = ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v}" for k, v in case.hyper.items())
        opt = Box("optimizer", "op", [Line(f"optimizer · {case.optimizer}", kind="title")])
        opt.lines += [Line(t, kind="note") for t in _wrap(hyper)]
        opt.lines.append(Line(f"{case.n_params} parameters updated after each backward", kind="note"))
    boxes.append(opt)
    by = {b.name: b for b in boxes}
    for m in marks(entries):
        layer = (EntryKey.parse(m.entry).target or "").partition(".")[0]  # grad[layer0.weight] → layer0
        target = layer if layer in by else "loss"
        by[target].marks.append(m)
    names = [b.name for b in boxes]
    edges = [Edge(a, b) for a, b in pairwise(names)]
    return boxes, edges


def draw_network_case(case_obj: dict[str, Any], entries: list[dict[str, Any]], uid: str,
                      engine: str = "auto") -> tuple[str, str]:
    """(SVG, note) for a failing network case given as its JSON object and its entry rows."""
    case = case_from_json(case_obj)
    boxes, edges = network_boxes(case, entries)
    label = f"training run {case.id}: {case.summary()}"
    return draw(boxes, edges, uid, label, engine), ""
