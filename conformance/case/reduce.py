"""Smaller cases: what the shrinker tries, per kind, the most reducing first.

A failing case is made minimal by trying smaller versions of *it* — never another draw — and keeping
the first that still fails the same way (``conformance.driver.shrink``). So a minimal case only ever
holds ops, layers, samples and knobs of the case that failed: it cannot wander off to another bug
of the implementation, and it gets there in tens of runs, not thousands.

* A **graph** gets smaller by taking the sub-expression at one node as the output (one node first),
  by cutting a node off into a leaf holding its value, by dropping the second-order request, and by
  simpler leaf values and cotangent (fewer significant digits).
* A **training run** gets smaller by fewer steps, fewer samples, one layer (or a few) alone — with
  inputs or targets made for the new widths —, narrower layers, each optimizer knob off, each loss
  attribute off, reduction ``mean``, the identity for each activation, no bias, simpler numbers.

Every candidate is valid by construction (a network candidate that is not is skipped by
:func:`~conformance.case.network.check_case`); each has its own id.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from conformance.case import dtypes
from conformance.case.graph import GraphCase, Node, Tensor
from conformance.case.layerkinds import LAYER_KINDS, scale
from conformance.case.network import (
    CLASS_LOSSES,
    TENSOR_ATTRS,
    Batch,
    Feature,
    InvalidCase,
    NetworkCase,
    check_case,
)
from conformance.case.network import with_id as network_id
from conformance.case.strategies import with_id as graph_id

#: how many sub-expressions (or cuts) of one size class a round tries on a big graph: every one on a
#: graph of up to this many nodes, else a geometric ladder of sizes (a 2,000-node chain is not
#: searched node by node)
LADDER = 48


# --- graphs -------------------------------------------------------------------------------------------

def _ancestors(case: GraphCase, name: str) -> set[str]:
    """The nodes ``name`` is computed from, itself included (leaves excluded)."""
    nodes = {n.name: n for n in case.nodes}
    seen: set[str] = set()
    todo = [name]
    while todo:
        k = todo.pop()
        if k in seen or k not in nodes:
            continue
        seen.add(k)
        todo.extend(nodes[k].inputs)
    return seen


def _prune(case: GraphCase, output: str, nodes: tuple[Node, ...], leaves: dict[str, Tensor],
           cotangent: Tensor) -> GraphCase:
    """The case with ``output`` as its output, keeping only what it is computed from."""
    keep = _ancestors(replace(case, nodes=nodes), output)
    kept = tuple(n for n in nodes if n.name in keep)
    used = {i for n in kept for i in n.inputs}
    new_leaves = {k: t for k, t in leaves.items() if k in used}
    so = None if case.second_order is None else {k: v for k, v in case.second_order.items() if k in new_leaves}
    return graph_id(GraphCase(new_leaves, kept, output, cotangent, case.dtype, so, claim=case.claim))


def _cotangent(case: GraphCase, shape: tuple[int, ...]) -> Tensor:
    """The case's cotangent for an output of ``shape``: itself, or its values repeated to fill it."""
    if shape == case.cotangent.shape:
        return case.cotangent
    n = math.prod(shape)
    vals = case.cotangent.values or (1.0,)
    return Tensor(shape, tuple(vals[i % len(vals)] for i in range(n)))


def _ladder(items: list[Any]) -> list[Any]:
    """All of ``items`` (sorted by size, smallest first) if few, else a geometric selection of them."""
    if len(items) <= LADDER:
        return items
    picks, i = [], 1
    while i <= len(items):
        picks.append(items[i - 1])
        i *= 2
    return [*picks, items[len(items) // 2], items[3 * len(items) // 4]]


def _simpler(x: float, digits: int, dtype: str) -> float:
    """``x`` to ``digits`` significant digits (a narrow dtype's cases stay numbers of its format)."""
    if not math.isfinite(x) or x == 0:
        return x
    y = float(f"{x:.{digits}g}")
    return dtypes.dtype(dtype).cast(y)


def graph_candidates(case: GraphCase, values: Callable[[GraphCase], dict[str, Tensor]]) -> Iterator[GraphCase]:
    """Smaller versions of a graph case, the most reducing first. ``values(case)`` gives every node's
    forward value (refimpl in the case's dtype), needed to cut a node into a leaf."""
    shapes_values: dict[str, Tensor] | None = None
    others = [n for n in case.nodes if n.name != case.output]
    # 1. the sub-expression at one node, smallest first
    sizes = sorted(others, key=lambda n: len(_ancestors(case, n.name)))
    for n in _ladder(sizes):
        if shapes_values is None:
            shapes_values = values(case)
        shape = shapes_values[n.name].shape
        yield _prune(case, n.name, case.nodes, case.leaves, _cotangent(case, shape))
    # 2. a node cut off into a leaf holding its value, the cut that removes most first
    if shapes_values is None and others:
        shapes_values = values(case)
    cuts = sorted(others, key=lambda n: -len(_ancestors(case, n.name)))
    for n in _ladder(cuts):
        assert shapes_values is not None
        t = shapes_values[n.name]
        if not all(math.isfinite(v) for v in t.values):
            continue
        leaf = next(f"x{i}" for i in range(len(case.leaves) + len(case.nodes) + 1) if f"x{i}" not in case.leaves
                    and all(m.name != f"x{i}" for m in case.nodes))
        nodes = tuple(Node(m.name, m.op, tuple(leaf if i == n.name else i for i in m.inputs), m.attrs)
                      for m in case.nodes if m.name != n.name)
        cut = case if case.second_order is None else replace(
            case, second_order={**case.second_order, leaf: Tensor(t.shape, (1.0,) * len(t.values))})
        yield _prune(cut, case.output, nodes, {**case.leaves, leaf: t}, case.cotangent)
    # 3. no second-order request
    if case.second_order is not None:
        yield graph_id(replace(case, second_order=None))
    # 4. simpler numbers: each leaf, then the cotangent, to 1 then 2 significant digits
    for digits in (1, 2):
        for k, t in case.leaves.items():
            simple = Tensor(t.shape, tuple(_simpler(v, digits, case.dtype) for v in t.values))
            if simple != t:
                yield graph_id(replace(case, leaves={**case.leaves, k: simple}))
        ct = case.cotangent
        simple = Tensor(ct.shape, tuple(_simpler(v, digits, case.dtype) for v in ct.values))
        if simple != ct:
            yield graph_id(replace(case, cotangent=simple))


# --- training runs ------------------------------------------------------------------------------------

#: each optimizer knob and the value that turns it off (lr, betas and eps have none)
KNOBS_OFF: dict[str, Any] = {
    "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False, "maximize": False,
    "amsgrad": False, "decoupled_weight_decay": False, "centered": False, "lr_decay": 0.0,
    "initial_accumulator_value": 0.0,
}
LOSS_ATTRS_OFF: dict[str, Any] = {"weight": None, "pos_weight": None, "label_smoothing": 0.0}


def _cast(case: NetworkCase) -> Callable[[float], float]:
    return dtypes.dtype(case.dtype).cast


def _fresh(case: NetworkCase, salt: str, shape: tuple[int, ...], lo: float, hi: float) -> Tensor:
    """New values for a tensor whose shape changed, from the case's id and ``salt`` (deterministic)."""
    rng = random.Random(f"{case.id}/{salt}")
    cast = _cast(case)
    return Tensor(shape, tuple(cast(rng.uniform(lo, hi)) for _ in range(math.prod(shape))))


def _columns(t: Tensor, keep: int) -> Tensor:
    """The first ``keep`` columns of a (rows, cols) tensor."""
    rows, cols = t.shape
    return Tensor((rows, keep), tuple(t.values[r * cols + c] for r in range(rows) for c in range(keep)))


def _rows(t: Tensor, keep: int) -> Tensor:
    """The first ``keep`` rows (or entries, for a vector)."""
    per = math.prod(t.shape[1:])
    return Tensor((keep, *t.shape[1:]), t.values[:keep * per])


def _targets_for(case: NetworkCase, y: Tensor, n_out: int, salt: str) -> Tensor:
    """Targets ``y`` made valid for ``n_out`` outputs: class indices folded into range, columns kept
    where there are enough, fresh values in the target's range otherwise."""
    if case.loss in CLASS_LOSSES:
        ignore = case.loss_attrs.get("ignore_index", -100)
        return Tensor(y.shape, tuple(v if v == ignore else float(int(v) % n_out) for v in y.values))
    if y.shape[1] >= n_out:
        return _columns(y, n_out)
    lo, hi = (0.0, 1.0) if case.loss in ("bce", "bce_with_logits") else (-1.0, 1.0)
    return _fresh(case, salt, (y.shape[0], n_out), lo, hi)


def _loss_attrs_for(case: NetworkCase, n_out: int) -> dict[str, Any]:
    out = dict(case.loss_attrs)
    for k in TENSOR_ATTRS & set(out):
        t = out[k]
        if t is not None and t.shape != (n_out,):
            out[k] = _rows(t, n_out) if t.shape[0] >= n_out else _fresh(case, k, (n_out,), 0.2, 2.0)
    return out


def _layers(case: NetworkCase, i: int, j: int) -> NetworkCase:
    """Layers ``i`` to ``j − 1`` alone: fresh inputs when the first is dropped, targets remade when
    the last is."""
    layers = case.layers[i:j]
    n_in, n_out = layers[0].in_features, layers[-1].out_features
    batches = []
    for t, b in enumerate(case.batches):
        x = b.x if i == 0 else _fresh(case, f"x{t}/{i}", (b.x.shape[0], n_in), -1.0, 1.0)
        y = b.y if j == len(case.layers) else _targets_for(case, b.y, n_out, f"y{t}/{j}")
        batches.append(Batch(x, y))
    return replace(case, layers=layers, batches=tuple(batches), loss_attrs=_loss_attrs_for(case, n_out),
                   features=case.features if i == 0 else ())


def _refit(case: NetworkCase, features: tuple[Feature, ...], salt: str) -> NetworkCase | None:
    """``case`` with these feature layers: every parameter whose shape the new stack changes made
    fresh (in its kind's range), the first Linear layer's columns cut (or made fresh) to the new
    flattened width; None where the geometry no longer fits."""
    shape, out = tuple(case.batches[0].x.shape[1:]), []
    try:
        for i, f in enumerate(features):
            kind = LAYER_KINDS[f.kind]
            like = {p: t.shape for p, t in f.params.items() if t is not None}
            want = kind.shapes(shape, f.attrs, like)
            params = {p: t if t is None or t.shape == want[p] else
                      _fresh(case, f"{salt}/{i}.{p}", want[p], *(v * scale(kind, want, p) for v in kind.init[p]))
                      for p, t in f.params.items()}
            out.append(replace(f, params=params))
            shape = kind.out(shape, f.attrs, want)
    except (ValueError, KeyError):
        return None
    width, first = math.prod(shape), case.layers[0]
    if width != first.in_features:
        weight = (_columns(first.weight, width) if width < first.in_features else
                  _fresh(case, f"{salt}/w", (first.out_features, width), -1 / width**0.5, 1 / width**0.5))
        first = replace(first, in_features=width, weight=weight)
    return replace(case, features=tuple(out), layers=(first, *case.layers[1:]))


def _crop(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    """The leading block of ``shape`` of a tensor of the same rank."""
    strides = [math.prod(t.shape[a + 1:]) for a in range(len(t.shape))]
    return Tensor(shape, tuple(t.values[sum(i * s for i, s in zip(idx, strides))]
                               for idx in itertools.product(*(range(n) for n in shape))))


def _feature_candidates(case: NetworkCase) -> Iterator[NetworkCase]:
    """A CNN's or an RNN's smaller versions: the Linear layers alone (fresh inputs), each feature layer
    left out, a smaller input (one channel or step, one channel, step, row, column or input feature
    fewer), each attribute of a feature layer at its plainest (conformance/case/layerkinds.py)."""
    if not case.features:
        return
    yield replace(case, features=(), batches=tuple(Batch(_fresh(case, f"x{t}/mlp", (b.x.shape[0], case.sizes[0]),
                                                                -1.0, 1.0), b.y) for t, b in enumerate(case.batches)))
    for k in range(len(case.features)):
        smaller = _refit(case, case.features[:k] + case.features[k + 1:], f"drop{k}")
        if smaller is not None:
            yield smaller
    full = case.batches[0].x.shape
    # the first axis of a sample (channels, steps) at 1, then every axis one less
    crops = [(*full[:1], 1, *full[2:])] + [(*full[:a], full[a] - 1, *full[a + 1:]) for a in range(1, len(full))]
    for shape in dict.fromkeys(crops):
        if min(shape) >= 1 and shape != full:
            cropped = replace(case, batches=tuple(Batch(_crop(b.x, shape), b.y) for b in case.batches))
            smaller = _refit(cropped, case.features, f"crop{shape}")
            if smaller is not None:
                yield smaller
    for k, f in enumerate(case.features):
        for name, plain in LAYER_KINDS[f.kind].plain.items():
            if name in f.attrs and f.attrs[name] != plain:
                feats = (*case.features[:k], replace(f, attrs={**f.attrs, name: plain}), *case.features[k + 1:])
                smaller = _refit(case, feats, f"plain{k}.{name}")
                if smaller is not None:
                    yield smaller


def _narrow(case: NetworkCase, k: int, keep: int) -> NetworkCase:
    """Layer ``k``'s output (``k = −1``: the input) cut to its first ``keep`` units."""
    layers = list(case.layers)
    batches = list(case.batches)
    if k == -1:
        layers[0] = replace(layers[0], in_features=keep, weight=_columns(layers[0].weight, keep))
        batches = [Batch(_columns(b.x, keep), b.y) for b in batches]
        return replace(case, layers=tuple(layers), batches=tuple(batches))
    la = layers[k]
    layers[k] = replace(la, out_features=keep, weight=_rows(la.weight, keep),
                        bias=None if la.bias is None else _rows(la.bias, keep))
    if k + 1 < len(layers):
        nxt = layers[k + 1]
        layers[k + 1] = replace(nxt, in_features=keep, weight=_columns(nxt.weight, keep))
        return replace(case, layers=tuple(layers))
    batches = [Batch(b.x, _targets_for(case, b.y, keep, f"y{t}/narrow")) for t, b in enumerate(batches)]
    return replace(case, layers=tuple(layers), batches=tuple(batches), loss_attrs=_loss_attrs_for(case, keep))


def _swap(layers: tuple[Any, ...], i: int, layer: Any) -> tuple[Any, ...]:
    return (*layers[:i], layer, *layers[i + 1:])


def _network_steps(case: NetworkCase) -> Iterator[NetworkCase]:
    n = len(case.layers)
    for keep in (1, 2):  # fewer steps
        if case.steps > keep:
            yield replace(case, batches=case.batches[:keep])
    for keep in (1, 2):  # fewer samples
        if case.batches[0].x.shape[0] > keep:
            yield replace(case, batches=tuple(Batch(_rows(b.x, keep), _rows(b.y, keep)) for b in case.batches))
    yield from _feature_candidates(case)
    for length in range(1, n):  # fewer layers: each alone, then runs of two, …
        for i in range(n - length, -1, -1):
            yield _layers(case, i, i + length)
    for k in range(-1 if not case.features else 0, n):  # narrower layers (and input: an MLP's)
        width = case.sizes[k + 1]
        for keep in (1, 2):
            if width > keep:
                yield _narrow(case, k, keep)
    for i, la in enumerate(case.layers):  # a square layer narrowed on both sides at once: still square
        if la.in_features == la.out_features > 2 and not (i == 0 and case.features):  # (a transposed
            # gradient fails only there; a CNN's input is not narrowed)
            for keep in (2, 3):
                if la.in_features > keep:
                    yield _narrow(_narrow(case, i - 1, keep), i, keep)
    for name, off in KNOBS_OFF.items():  # each optimizer knob off
        if name in case.hyper and case.hyper[name] != off:
            hyper = {**case.hyper, name: off}
            if name == "momentum":
                hyper["nesterov"] = False
            yield replace(case, hyper=hyper)
    for name, off in LOSS_ATTRS_OFF.items():  # each loss attribute off
        if name in case.loss_attrs and case.loss_attrs[name] != off:
            yield replace(case, loss_attrs={**case.loss_attrs, name: off})
    if case.reduction != "mean":
        yield replace(case, reduction="mean")
    for i, la in enumerate(case.layers):  # the identity for each activation, then no bias
        if la.activation != "identity":
            yield replace(case, layers=_swap(case.layers, i, replace(la, activation="identity", attrs={})))
    for i, la in enumerate(case.layers):
        if la.bias is not None:
            yield replace(case, layers=_swap(case.layers, i, replace(la, bias=None)))
    yield from _network_numbers(case)


def _network_numbers(case: NetworkCase) -> Iterator[NetworkCase]:
    """Simpler numbers, to 1 then 2 significant digits: the hyperparameters, the loss's numbers,
    the parameters, the inputs, the (non-class) targets — each group as one candidate."""
    def simple(t: Tensor | None, digits: int) -> Tensor | None:
        return None if t is None else Tensor(t.shape, tuple(_simpler(v, digits, case.dtype) for v in t.values))

    def number(v: Any, digits: int) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float, tuple)):
            return v
        if isinstance(v, tuple):
            return tuple(number(x, digits) for x in v)
        return _simpler(float(v), digits, case.dtype) if isinstance(v, float) else v

    for digits in (1, 2):
        yield replace(case, hyper={k: number(v, digits) for k, v in case.hyper.items()})
        yield replace(case, loss_attrs={k: simple(v, digits) if isinstance(v, Tensor) else number(v, digits)
                                        for k, v in case.loss_attrs.items()})
        yield replace(case, layers=tuple(replace(la, weight=simple(la.weight, digits), bias=simple(la.bias, digits))
                                         for la in case.layers),
                      features=tuple(replace(f, params={p: simple(t, digits) for p, t in f.params.items()})
                                     for f in case.features))
        yield replace(case, batches=tuple(Batch(simple(b.x, digits), b.y) for b in case.batches))  # type: ignore[arg-type]
        if case.loss not in CLASS_LOSSES:
            yield replace(case, batches=tuple(Batch(b.x, simple(b.y, digits)) for b in case.batches))  # type: ignore[arg-type]


def network_candidates(case: NetworkCase) -> Iterator[NetworkCase]:
    """Smaller versions of a training run, the most reducing first; each valid and new (others are
    skipped)."""
    for candidate in _network_steps(case):
        if candidate == case:
            continue
        try:
            yield network_id(check_case(candidate))
        except InvalidCase:  # e.g. bce whose new last layer is not a sigmoid
            continue

