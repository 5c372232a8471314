"""Hypothesis strategies for graph cases, built valid by construction.

A graph is drawn node by node while refimpl evaluates it, so each new node's inputs are chosen
among the existing nodes whose *current values* lie inside the op's domain (and keep the result
finite); when none does, a fresh leaf is drawn inside the domain. Nothing is filtered after the
fact and every draw is local to its node. Expressions left apart are then joined by ``add`` (or
``mul``, ``sub``) into one output, so that no branch — nor a value two branches share — is cut off:
of 1,200 scalar graphs drawn as verify draws them, 855 hold an intermediate node used twice and 914
four ops or more (session 8; without the joins 506 and 734).

Reuse is the point: a node chosen by several later nodes (fan-out), the same node twice in one op
(x·x), one node reached by paths of different lengths. Rarely, on purpose: exact kink points
(relu/abs at 0, ties for maximum/minimum, clamp bounds), near-cancelling pairs (a − b with a ≈ b),
and large magnitudes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from conformance.case import geometry
from conformance.case.dtypes import DTYPES
from conformance.case.dtypes import dtype as dtype_of
from conformance.case.graph import GraphCase, Node, Tensor, case_to_json
from conformance.case.tensor_ops import TENSOR_OPS
from refimpl import OPS, Value, apply
from refimpl.ops import REALS, Interval, OpSpec
from refimpl.tensor import Tensor as RTensor
from refimpl.tensor import broadcast_shapes, elementwise

SYSTEMS = {name: d.system for name, d in DTYPES.items()}  # refimpl in each dtype (conformance/case/dtypes.py)
LIMIT = 1e4  # inputs beyond this magnitude are not reused (exp of them is not a gradient test)

ATTRS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "leaky_relu": st.fixed_dictionaries({"negative_slope": st.floats(0.0, 1.0)}),
    "elu": st.fixed_dictionaries({"alpha": st.floats(0.1, 3.0)}),
    "softplus": st.fixed_dictionaries({"beta": st.floats(0.5, 3.0), "threshold": st.floats(1.0, 20.0)}),
    "gelu": st.fixed_dictionaries({"approximate": st.sampled_from(["none", "tanh"])}),
    "clamp": st.one_of(
        st.fixed_dictionaries({"min": st.floats(-2.0, 0.0), "max": st.floats(0.0, 2.0)}),
        st.fixed_dictionaries({"min": st.floats(-2.0, 2.0)}),
        st.fixed_dictionaries({"max": st.floats(-2.0, 2.0)}),
    ),
    "pow_scalar": st.fixed_dictionaries({"exponent": st.floats(-3.0, 3.0)}),
    "pow_int": st.fixed_dictionaries({"exponent": st.integers(-3, 4)}),
}


def _pick(draw: st.DrawFn, items: list[Any]) -> Any:
    """``draw(st.sampled_from(items))`` without building a strategy per draw (it is the hot path);
    shrinks towards the first item."""
    return items[draw(st.integers(0, len(items) - 1))] if len(items) > 1 else items[0]


_SIGN = st.sampled_from([1.0, -1.0])
_KIND = st.integers(0, 10)  # 0–7 plain, 8 special point, 9 large magnitude, 10 tiny magnitude


@functools.cache
def in_domain(interval: Interval) -> st.SearchStrategy[float]:
    """A float inside ``interval`` (clipped to a moderate range), never one of its excluded points."""
    lo, hi = max(interval.lo, -4.0), min(interval.hi, 4.0)
    width = hi - lo
    return st.floats(0.0, 1.0).map(lambda t: _place(interval, lo + width * (0.02 + 0.96 * t)))


def _place(interval: Interval, x: float) -> float:
    return x if x in interval else (interval.lo + 1.0 if math.isfinite(interval.lo) else 0.5)


def _admissible(spec: OpSpec, arg: int, value: float) -> bool:
    return math.isfinite(value) and abs(value) <= LIMIT and value in spec.domain[arg]


def _finite_result(spec: OpSpec, inputs: list[Value], attrs: dict[str, Any]) -> bool:
    try:
        out = apply(spec, *inputs, **attrs)
    except (ArithmeticError, ValueError):
        return False
    return math.isfinite(out.data) and abs(out.data) <= 1e8


#: how an input is chosen: 0–4 the preferred existing value (:func:`_by_preference`; what shrinking
#: aims for), 5–8 a value already used (reuse, fan-out, x·x), 9 a fresh leaf
_REUSE = st.integers(0, 9)
_FRESH = 9
_MORE = st.integers(0, 4)  # 0 twice stops (what shrinking aims for): most graphs get several nodes


def _node_slots(draw: st.DrawFn, max_nodes: int) -> Iterable[int]:
    """Node indices, each behind its own "one more?" draw — the way ``st.lists`` draws elements —
    so that shrinking can delete any node (its whole span), not only the last ones."""
    j = 0
    while j < max_nodes and (j == 0 or draw(_MORE) > 0 or draw(_MORE) > 0):
        yield j
        j += 1


@st.composite
def leaf_value(draw: st.DrawFn, interval: Interval, special: Iterable[float] = (),
               dtype: str = "float64") -> float:
    """A leaf inside ``interval``; rarely a kink point, a large or a tiny magnitude (tiny for the
    dtype: down to 1e-300 in float64, 1e-40 — a subnormal — in float32, where 1e-300 is 0: ``DType.tiny``)."""
    kind = draw(_KIND)
    points = [p for p in special if p in interval]
    if kind == 8 and points:
        return _pick(draw, points)
    if kind == 9:  # half of them past exp's overflow (709.78): where softmax needs its max shift
        x = draw(st.floats(20.0, 800.0) | st.floats(709.0, 1000.0)) * draw(_SIGN)
        if x in interval:
            return x
    if kind == 10:  # tiny, not zero: where log1p, expm1 and friends differ from the naive formula
        x = SYSTEMS[dtype].convert(10.0 ** draw(st.floats(dtype_of(dtype).tiny, -4.0)) * draw(_SIGN))
        if x in interval:
            return x
    return draw(in_domain(interval))


def _widest_expression(nodes: list[Node]) -> list[Node]:
    """The nodes the output depends on, the output being the node that depends on the most (the
    latest of those): a drawn node whose inputs are all fresh leaves starts a new expression, and
    the output is the biggest one, not whichever came last. Nothing else is kept."""
    by_name = {n.name: n for n in nodes}
    below: dict[str, frozenset[str]] = {}
    for n in nodes:
        below[n.name] = frozenset({n.name}).union(*(below[i] for i in n.inputs if i in by_name))
    out = max(reversed(nodes), key=lambda n: len(below[n.name]))
    return [n for n in nodes if n.name in below[out.name]]


_JOINS = ("add", "mul", "sub")


def _joined(nodes: list[Node], env: dict[str, Value], names: list[str]) -> list[Node]:
    """The drawn expressions joined into one: while two nodes are used by no later node, the newest
    two are combined by ``add`` (or ``mul``, ``sub``: the first of them the ops allow), so that no
    branch — and no value it shares with another — is cut off the output. Without such an op, the
    widest expression alone is kept (:func:`_widest_expression`)."""
    join = next((op for op in _JOINS if op in names), None)
    if join is None:
        return nodes
    nodes = list(nodes)
    k = 1 + max(int(n.name[1:]) for n in nodes)  # node names are n0, n1, …: the next free one
    while True:
        used = {i for n in nodes for i in n.inputs}
        open_ = [n.name for n in nodes if n.name not in used]
        if len(open_) < 2:
            return nodes
        a, b = open_[-2], open_[-1]
        value = apply(OPS[join], env[a], env[b])
        if not (math.isfinite(value.data) and abs(value.data) <= 1e8):
            return nodes
        name, k = f"n{k}", k + 1
        env[name] = value
        nodes.append(Node(name, join, (a, b), {}))


def _by_preference(env: dict[str, Value], leaves: dict[str, float], consumed: set[str]) -> list[str]:
    """Existing values in the order an input is chosen from (and shrinks towards): the nodes no
    later node uses yet, newest first — so the graph grows into one connected expression, not a
    forest of one-op trees of which the output sees only the last — then the other nodes, newest
    first, then the leaves."""
    nodes = [k for k in reversed(env) if k not in leaves]
    return [k for k in nodes if k not in consumed] + [k for k in nodes if k in consumed] + list(leaves)


@st.composite
def graph_cases(draw: st.DrawFn, ops: Iterable[str] | None = None, dtype: str = "float64",
                max_nodes: int = 8, second_order: bool = False) -> GraphCase:
    """A random DAG over ``ops`` (default: the whole op table)."""
    names = sorted(n for n in (ops if ops is not None else OPS) if n in OPS)  # elementwise ops only
    system = SYSTEMS[dtype]  # drawn in the dtype's own arithmetic: domain checks see its values
    leaves: dict[str, float] = {}
    env: dict[str, Value] = {}

    def new_leaf(interval: Interval, spec: OpSpec, attrs: dict[str, Any]) -> str:
        specials = [0.0] + [v for v in (attrs.get("min"), attrs.get("max")) if v is not None]
        if env and draw(st.integers(0, 9)) == 0:  # a near-twin of an existing value: cancellation
            base = env[_pick(draw, list(env))].data
            x = base * (1 + draw(st.floats(-1e-9, 1e-9)))
            if not (math.isfinite(x) and x in interval):
                x = draw(leaf_value(interval, specials, dtype))
        else:
            x = draw(leaf_value(interval, specials, dtype))
        name = f"x{len(leaves)}"
        leaves[name] = x
        env[name] = Value(x, False, system=system)
        return name

    nodes: list[Node] = []
    consumed: set[str] = set()
    for j in _node_slots(draw, max_nodes):
        spec = OPS[_pick(draw, names)]
        attrs = draw(ATTRS[spec.name]) if spec.name in ATTRS else {}
        inputs: list[str] = []
        for arg in range(spec.arity):
            candidates = [k for k in _by_preference(env, leaves, consumed) if _admissible(spec, arg, env[k].data)]
            how = draw(_REUSE) if candidates else _FRESH
            if how == _FRESH:
                inputs.append(new_leaf(spec.domain[arg], spec, attrs))
            elif how < 5:  # the arg-th preferred value: binary nodes join the two newest branches
                inputs.append(candidates[min(arg, len(candidates) - 1)])
            else:  # reuse: a node some other node already uses (fan-out), else any value
                reused = [k for k in candidates if k in consumed and k not in leaves]
                inputs.append(_pick(draw, reused or candidates))
        if not _finite_result(spec, [env[i] for i in inputs], attrs):
            inputs = [new_leaf(spec.domain[a], spec, attrs) for a in range(spec.arity)]
            if not _finite_result(spec, [env[i] for i in inputs], attrs):
                continue  # e.g. a large fresh leaf into exp: leave this node out
        name = f"n{j}"
        nodes.append(Node(name, spec.name, tuple(inputs), attrs))
        consumed.update(inputs)
        env[name] = apply(spec, *(env[i] for i in inputs), **attrs)
    if not nodes:
        x = new_leaf(OPS["neg"].domain[0], OPS["neg"], {})
        nodes.append(Node("n0", "neg", (x,), {}))
    nodes = _joined(nodes, env, names) if len(nodes) > 1 else nodes
    nodes = _widest_expression(nodes)
    used = {i for n in nodes for i in n.inputs}
    leaves = {k: v for k, v in leaves.items() if k in used}
    ct = draw(st.floats(0.5, 2.0)) * draw(_SIGN)
    so = None
    if second_order:
        so = {k: Tensor.scalar(draw(st.floats(-2.0, 2.0))) for k in leaves}
    case = GraphCase({k: Tensor.scalar(v) for k, v in leaves.items()}, tuple(nodes), nodes[-1].name,
                     Tensor.scalar(ct), dtype, so)
    return with_id(case)


DEEP_CHAIN_OPS = ("sin", "add", "tanh", "mul")


@st.composite
def deep_chains(draw: st.DrawFn, min_depth: int = 200, max_depth: int = 3000,
                dtype: str = "float64") -> GraphCase:
    """A long chain — z ← sin(z) + x, z ← tanh(z)·y — thousands of nodes deep, values bounded."""
    depth = draw(st.integers(min_depth, max_depth))
    x, y, z0 = draw(st.floats(-1, 1)), draw(st.floats(0.5, 1.5)), draw(st.floats(-1, 1))
    nodes, prev = [], "z"
    for j in range(depth):
        if j % 2 == 0:
            nodes += [Node(f"s{j}", "sin", (prev,)), Node(f"n{j}", "add", (f"s{j}", "x"))]
        else:
            nodes += [Node(f"t{j}", "tanh", (prev,)), Node(f"n{j}", "mul", (f"t{j}", "y"))]
        prev = f"n{j}"
    ct = draw(st.floats(0.5, 2.0))
    case = GraphCase({"x": Tensor.scalar(x), "y": Tensor.scalar(y), "z": Tensor.scalar(z0)},
                     tuple(nodes), prev, Tensor.scalar(ct), dtype)
    return with_id(case)


def representable(case: GraphCase) -> GraphCase:
    """Round every number of a case in a narrow dtype — inputs, attributes, cotangent — to its
    format: what an implementation receives is then exactly the case, and the truth is computed from
    the same. (The strategies already evaluate such cases in refimpl's emulation of the dtype, so
    the domain checks made while drawing saw these very values.)"""
    if case.dtype == "float64":
        return case
    cast = dtype_of(case.dtype).cast

    def r(t: Tensor) -> Tensor:
        return Tensor(t.shape, tuple(cast(v) for v in t.values))

    def attrs(a: dict[str, Any]) -> dict[str, Any]:
        return {k: cast(v) if isinstance(v, float) else v for k, v in a.items()}

    nodes = tuple(Node(n.name, n.op, n.inputs, attrs(n.attrs)) for n in case.nodes)
    return replace(case, leaves={k: r(t) for k, t in case.leaves.items()}, nodes=nodes, cotangent=r(case.cotangent),
                   second_order=None if case.second_order is None else
                   {k: r(t) for k, t in case.second_order.items()})


def with_id(case: GraphCase) -> GraphCase:
    """Name a case by the hash of its content, so the same case has the same id everywhere."""
    case = representable(case)
    doc = case_to_json(case)
    doc.pop("id")
    digest = hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]
    return replace(case, id=f"g-{digest}")


def _all_admissible(spec: OpSpec, arg: int, t: RTensor) -> bool:
    return all(_admissible(spec, arg, v.data) for v in t.elements)


def _finite_tensor(t: RTensor) -> bool:
    return all(math.isfinite(v.data) and abs(v.data) <= 1e8 for v in t.elements)


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


@st.composite
def _partner_shape(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts against ``shape``: itself, a suffix, or with some sizes set to 1."""
    kind = draw(st.integers(0, 3))
    if kind == 0 or not shape:
        return shape
    if kind == 1:
        return shape[draw(st.integers(0, len(shape))):]
    return tuple(1 if draw(st.booleans()) else s for s in shape)


@st.composite
def tensor_graph_cases(draw: st.DrawFn, ops: Iterable[str] | None = None, dtype: str = "float64",
                       max_nodes: int = 6, second_order: bool = False) -> GraphCase:
    """A random DAG of tensors: elementwise ops with broadcasting, reductions, matmul, the softmax
    family, transpose and reshape, over small shapes (sizes 1–4, non-square on purpose)."""
    allowed = set(ops) if ops is not None else set(OPS) | set(TENSOR_OPS)
    elementwise_ops = sorted(n for n in OPS if n in allowed)
    tensor_ops = sorted(n for n in TENSOR_OPS if n in allowed and not TENSOR_OPS[n].layer)
    system = SYSTEMS[dtype]
    leaves: dict[str, tuple[tuple[int, ...], list[float]]] = {}
    env: dict[str, RTensor] = {}
    rows, cols = draw(st.integers(1, 4)), draw(st.integers(1, 4))

    def new_leaf(shape: tuple[int, ...], interval: Interval) -> str:
        n = math.prod(shape)
        values = [draw(leaf_value(interval, (0.0,), dtype)) for _ in range(n)]
        name = f"x{len(leaves)}"
        leaves[name] = (shape, values)
        env[name] = RTensor.from_flat(values, shape, system=system, requires_grad=False)
        return name

    nodes: list[Node] = []
    consumed: set[str] = set()
    for j in _node_slots(draw, max_nodes):
        use_tensor_op = tensor_ops and (not elementwise_ops or draw(st.integers(0, 2)) == 0)
        if use_tensor_op:
            top = TENSOR_OPS[_pick(draw, tensor_ops)]
            candidates = [k for k in env if top.accepts(env[k].shape) and env[k].numel() <= 64]
            x = _pick(draw, candidates) if candidates and draw(st.integers(0, 3)) > 0 \
                else new_leaf(_pick(draw, [(rows, cols), (cols,), (rows, cols)]), REALS)
            if not top.accepts(env[x].shape):
                x = new_leaf((rows, cols), REALS)
            inputs = [x]
            if top.name == "matmul":
                k = env[x].shape[-1]
                p = draw(st.integers(1, 4))
                inputs.append(new_leaf(_pick(draw, [(k, p), (k, p), (k,), (2, k, p)]), REALS))
            attrs = draw(top.attrs(env[x].shape))
            out = top.refimpl(*(env[i] for i in inputs), **attrs)
            if not _finite_tensor(out):
                continue
            name = f"n{j}"
            nodes.append(Node(name, top.name, tuple(inputs), attrs))
            env[name] = out
            continue
        if not elementwise_ops:
            break
        spec = OPS[_pick(draw, elementwise_ops)]
        attrs = draw(ATTRS[spec.name]) if spec.name in ATTRS else {}
        inputs = []
        for arg in range(spec.arity):
            first = env[inputs[0]].shape if inputs else None
            candidates = [k for k in env if _all_admissible(spec, arg, env[k])
                          and (first is None or _broadcastable(first, env[k].shape))]
            if candidates and draw(st.integers(0, 3)) > 0:
                inputs.append(_pick(draw, candidates))
            else:
                shape = draw(_partner_shape(first)) if first is not None else \
                    _pick(draw, [(rows, cols), (cols,), (), (rows, 1)])
                inputs.append(new_leaf(shape, spec.domain[arg]))
        out = elementwise(spec, *(env[i] for i in inputs), **attrs)
        if not _finite_tensor(out):
            continue
        name = f"n{j}"
        nodes.append(Node(name, spec.name, tuple(inputs), attrs))
        consumed.update(inputs)
        env[name] = out
    if not nodes:
        x = new_leaf((rows, cols), REALS)
        nodes.append(Node("n0", "sum", (x,), {"dim": 0, "keepdim": False}) if "sum" in allowed
                     else Node("n0", "neg", (x,), {}))
        env["n0"] = evaluate_node(nodes[-1], env)
    out_shape = env[nodes[-1].name].shape
    ct = [draw(st.floats(0.5, 2.0)) * draw(_SIGN) for _ in range(math.prod(out_shape))]
    so = None
    if second_order:
        so = {k: Tensor(shape, tuple(draw(st.floats(-2.0, 2.0)) for _ in values))
              for k, (shape, values) in leaves.items()}
    case = GraphCase({k: Tensor(shape, tuple(values)) for k, (shape, values) in leaves.items()}, tuple(nodes),
                     nodes[-1].name, Tensor(out_shape, tuple(ct)), dtype, so)
    return with_id(case)


#: the values a tie-prone input is drawn from: small integers, so that window maxima tie
TIE_VALUES = (-1.0, 0.0, 1.0, 2.0)


@st.composite
def layer_op_cases(draw: st.DrawFn, name: str, dtype: str = "float64", off: geometry.Off = geometry.NONE) -> GraphCase:
    """One layer op (``TENSOR_OPS[name].geometry``: convolution, pooling) alone, on its hostile
    geometry, with a cotangent that differs entry by entry. Its inputs are seeded tensors (one drawn
    seed each, expanded by :class:`random.Random`: a conv's input holds hundreds of numbers, more
    than a draw apiece would shrink), uniform in [-1, 1] — or, for a tie-prone input, small integers.
    ``off``: the knobs of :data:`conformance.case.geometry.KNOBS` the implementation does not take."""
    op = TENSOR_OPS[name]
    assert op.geometry is not None, f"{name} is not a layer op"
    shapes, attrs, ties = draw(op.geometry(off) if off else op.geometry())
    cast = dtype_of(dtype).cast
    leaves = {}
    for i, shape in enumerate(shapes):
        rng = random.Random(draw(st.integers(0, 2**32 - 1)))
        n = math.prod(shape)
        values = [rng.choice(TIE_VALUES) for _ in range(n)] if ties and i == 0 else \
            [cast(rng.uniform(-1.0, 1.0)) for _ in range(n)]
        leaves[f"x{i}"] = Tensor(shape, tuple(values))
    return _one_node_case(name, leaves, attrs, random.Random(draw(st.integers(0, 2**32 - 1))), dtype)


def layer_fixed_cases(name: str, dtype: str = "float64", off: geometry.Off = geometry.NONE) -> tuple[GraphCase, ...]:
    """The layer op's fixed hostile cases (:data:`conformance.case.geometry.FIXED`), the same at every
    seed: values given, or uniform in [-1, 1] from seed 0; the cotangent from seed 1. Those that use a
    knob in ``off`` are left out."""
    cast = dtype_of(dtype).cast
    out = []
    for shapes, attrs, first in geometry.FIXED.get(name, []):
        if geometry.uses(name, attrs, shapes) & off:
            continue
        rng = random.Random(0)
        leaves = {f"x{i}": Tensor(shape, tuple(first if i == 0 and first is not None else
                                               (cast(rng.uniform(-1.0, 1.0)) for _ in range(math.prod(shape)))))
                  for i, shape in enumerate(shapes)}
        out.append(_one_node_case(name, leaves, attrs, random.Random(1), dtype))
    return tuple(out)


def _one_node_case(name: str, leaves: dict[str, Tensor], attrs: dict[str, Any], ct_rng: random.Random,
                   dtype: str) -> GraphCase:
    """The case of one node ``name`` over ``leaves``, its cotangent in ±[0.5, 2] entry by entry from ``ct_rng``."""
    cast = dtype_of(dtype).cast
    node = Node("n0", name, tuple(leaves), attrs)
    env = {k: RTensor.from_flat(list(t.values), t.shape, system=SYSTEMS[dtype], requires_grad=False)
           for k, t in leaves.items()}
    shape = evaluate_node(node, env).shape
    ct = tuple(cast(ct_rng.uniform(0.5, 2.0) * ct_rng.choice((1.0, -1.0))) for _ in range(math.prod(shape)))
    return with_id(GraphCase(leaves, (node,), "n0", Tensor(shape, ct), dtype))


def evaluate_node(node: Node, env: dict[str, RTensor]) -> RTensor:
    args = [env[i] for i in node.inputs]
    if node.op in OPS:
        return elementwise(OPS[node.op], *args, **node.attrs)
    return TENSOR_OPS[node.op].refimpl(*args, **node.attrs)
