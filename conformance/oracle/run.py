"""Running a graph case: in refimpl (any number system), in torch, and the finite-difference truth.

Leaves are tensors (a scalar is shape ``()``); a node is an elementwise op of refimpl's op table,
applied with broadcasting, or a tensor op of :mod:`conformance.case.tensor_ops`.
"""

from __future__ import annotations

from typing import Any

from conformance.case import dtypes
from conformance.case.dtypes import DTYPES
from conformance.case.graph import GraphCase, GraphResult, Tensor
from conformance.case.tensor_ops import TENSOR_OPS, infinite_fills, torch_arguments, torch_kwargs
from conformance.oracle import names as oracle
from refimpl import OPS, Value, grad, mpmath_system
from refimpl.gradcheck import richardson
from refimpl.tensor import Tensor as RTensor
from refimpl.tensor import elementwise
from refimpl.tensor import grad as tensor_grad

REFIMPL_SYSTEMS = {name: d.system for name, d in DTYPES.items()}  # refimpl in each dtype


def refimpl_system(case: GraphCase) -> Any:
    """refimpl's number system for ``case``: its dtype's emulation, reducing as the case's claim says
    (accumulated in a wider dtype, summed pairwise) if it was declared under one."""
    return dtypes.emulation(case.dtype, case.claim)


def evaluate(case: GraphCase, leaves: dict[str, RTensor]) -> dict[str, RTensor]:
    """Every node of the case computed by refimpl, given the leaf tensors (of any number system)."""
    env = dict(leaves)
    for n in case.nodes:
        args = [env[i] for i in n.inputs]
        if n.op in OPS:
            env[n.name] = elementwise(OPS[n.op], *args, **n.attrs)
        else:
            env[n.name] = TENSOR_OPS[n.op].refimpl(*args, **n.attrs)
    return env


def node_values(case: GraphCase) -> dict[str, Tensor]:
    """Every node's forward value in refimpl, in the case's dtype (what cutting a node into a leaf
    needs: conformance/case/reduce.py)."""
    env = evaluate(case, leaf_tensors(case, refimpl_system(case), requires_grad=False))
    return {n.name: Tensor(tuple(env[n.name].shape), tuple(float(_data(v)) for v in env[n.name].elements))
            for n in case.nodes}


def leaf_tensors(case: GraphCase, system: Any, requires_grad: bool = True) -> dict[str, RTensor]:
    return {k: RTensor.from_flat(t.values, t.shape, system=system, requires_grad=requires_grad)
            for k, t in case.leaves.items()}


def run_refimpl(case: GraphCase, system: Any = None) -> GraphResult:
    """The case through refimpl: value, gradient of ⟨cotangent, output⟩, and the HVP if asked."""
    value, grads, hvp = refimpl_raw(case, system or refimpl_system(case))
    out_shape = case.cotangent.shape
    shapes = {k: t.shape for k, t in case.leaves.items()}
    return GraphResult(value=Tensor(out_shape, tuple(float(v) for v in value)),
                       grads={k: Tensor(shapes[k], tuple(float(x) for x in g)) for k, g in grads.items()},
                       hvp=None if hvp is None else
                       {k: Tensor(shapes[k], tuple(float(x) for x in h)) for k, h in hvp.items()})


def refimpl_raw(case: GraphCase, system: Any) -> tuple[list[Any], dict[str, list[Any]], dict[str, list[Any]] | None]:
    """Like :func:`run_refimpl`, but the entries stay numbers of ``system`` (mpf, Bounded, …)."""
    leaves = leaf_tensors(case, system)
    out = evaluate(case, leaves)[case.output]
    grads, hvp = differentiate(case, leaves, out, system)
    return [v.data for v in out.elements], grads, hvp


def differentiate(case: GraphCase, leaves: dict[str, RTensor], out: RTensor,
                  system: Any) -> tuple[dict[str, list[Any]], dict[str, list[Any]] | None]:
    """The backward half of :func:`refimpl_raw` on a graph already built (``out`` from ``leaves``):
    the gradient of ⟨cotangent, out⟩ and the HVP if asked, as numbers of ``system``. Run again on
    the same graph, it reads the graph as it is then (the valid sets at kinks change a node's
    local derivative between runs: conformance/verdict/kinks.py)."""
    names = list(case.leaves)
    so = case.second_order is not None
    ct = RTensor.from_flat(case.cotangent.values, case.cotangent.shape, system=system, requires_grad=False)
    gs = tensor_grad(out, [leaves[k] for k in names], ct, create_graph=so, allow_unused=True)
    zero = system.zero
    grads = {k: [zero] * len(case.leaves[k].values) if g is None else [_data(v) for v in g.elements]
             for k, g in zip(names, gs)}
    if not so:
        return grads, None
    terms = [e * vv for k, g in zip(names, gs) if g is not None
             for e, vv in zip(g.elements, case.second_order[k].values) if isinstance(e, Value) and e.requires_grad]
    flat = [v for k in names for v in leaves[k].elements]
    hs: tuple[Any, ...] = (None,) * len(flat)
    if terms:
        dot = terms[0]
        for t in terms[1:]:
            dot = dot + t
        hs = grad(dot, flat, allow_unused=True)
    it = iter(hs)  # the list first: zip must not take one item too many from the iterator
    hvp = {k: [zero if h is None else h for _, h in zip(leaves[k].elements, it)] for k in names}
    return grads, hvp


def _data(g: Any) -> Any:
    return g.data if isinstance(g, Value) else g


def torch_unreliable(case: GraphCase) -> bool:
    """Whether torch's kernel of an op of the case may crash the process, or return numbers it never
    computed, in the case's dtype
    (:attr:`conformance.case.tensor_ops.TensorOp.torch_unreliable`)."""
    return any(case.dtype in TENSOR_OPS[n.op].torch_unreliable for n in case.nodes if n.op in TENSOR_OPS)


def _rounded(r: GraphResult, cast: Any) -> GraphResult:
    """Every number of a result rounded by ``cast`` (float32 to the case's format)."""
    def each(t: Tensor) -> Tensor:
        return Tensor(t.shape, tuple(cast(x) for x in t.values))
    return GraphResult(value=None if r.value is None else each(r.value), grads={k: each(t) for k, t in r.grads.items()},
                       hvp=None if r.hvp is None else {k: each(t) for k, t in r.hvp.items()}, error=r.error)


def run_torch(case: GraphCase, dtype: str | None = None) -> GraphResult:
    """The case through torch.autograd (``create_graph=True`` for the second-order request). torch is
    imported here, not with the module: a worker serving another implementation never needs it."""
    import torch

    if dtype is None and torch_unreliable(case):
        return _rounded(run_torch(case, "float32"), dtypes.dtype(case.dtype).cast)
    dt = getattr(torch, dtypes.dtype(dtype or case.dtype).name)
    names = list(case.leaves)
    leaves = {k: torch.tensor(t.values, dtype=dt).reshape(t.shape).requires_grad_() for k, t in case.leaves.items()}
    env: dict[str, Any] = dict(leaves)
    for n in case.nodes:
        args = [env[i] for i in n.inputs]
        if n.op in OPS:
            env[n.name] = oracle.call(n.op, *args, **n.attrs)
        else:
            pos, named = torch_arguments(n.op, args)
            kw = torch_kwargs(n.op, n.attrs, lambda v, dtype: torch.tensor(v, dtype=getattr(torch, dtype)))
            env[n.name] = oracle.resolve(TENSOR_OPS[n.op].torch)(*pos, **named, **kw)
    out = env[case.output]
    so = case.second_order is not None
    xs = [leaves[k] for k in names]
    ct = torch.tensor(case.cotangent.values, dtype=dt).reshape(case.cotangent.shape)
    gs = torch.autograd.grad(out, xs, ct, create_graph=so, allow_unused=True, materialize_grads=True)
    result = GraphResult(value=_tensor(out), grads={k: _tensor(g) for k, g in zip(names, gs)})
    if so:
        dot = sum((g * torch.tensor(case.second_order[k].values, dtype=dt).reshape(g.shape)).sum()
                  for k, g in zip(names, gs))
        if isinstance(dot, torch.Tensor) and dot.requires_grad:
            hs = torch.autograd.grad(dot, xs, allow_unused=True, materialize_grads=True)
            result.hvp = {k: _tensor(h) for k, h in zip(names, hs)}
        else:
            result.hvp = {k: Tensor(x.shape, (0.0,) * x.numel()) for k, x in zip(names, xs)}
    return result


def _tensor(t: Any) -> Tensor:
    # clone: double backward can hand back special zero tensors whose storage is not allocated
    return Tensor(tuple(t.shape), tuple(t.detach().clone().reshape(-1).tolist()))


def truth_gradient(case: GraphCase, leaf: str, index: int, dps: int = 50) -> tuple[float, float]:
    """∂⟨cotangent, output⟩/∂leaf[index] by Richardson finite differences of the forward.

    Shares no code with any backward pass: only the forward formulas. Returns the estimate and an
    honest bound on its error: the extrapolation's own estimate plus the *resolution* of the
    difference — a gradient of 1e-314 on a function of size 1 is invisible at 50 digits — and the
    precision is raised (50, 100, 200, 400, 800 digits) until the difference resolves the estimate.
    One entry at a time: the truth is only asked for where an implementation and torch disagree.
    """
    shape = case.leaves[leaf].shape
    x0 = case.leaves[leaf].values[index]
    ct = case.cotangent.values
    output = next((n for n in case.nodes if n.name == case.output), None)
    masked = infinite_fills(output.op, output.attrs) if output is not None else frozenset()
    # a step well inside |x0| when x0 is tiny: log, sqrt and pow's base are defined only on one side of 0
    while True:
        mp = mpmath_system(dps)
        ax = mp.ctx.mpf(abs(x0))  # in mpmath: |x0|·1e-6 underflows binary64 below 5e-318
        h = min(mp.ctx.mpf("1e-15") * max(ax, 1), ax * mp.ctx.mpf("1e-6")) if x0 else mp.ctx.mpf("1e-15")
        base = leaf_tensors(case, mp, requires_grad=False)

        def f(x: Value, mp: Any = mp, base: dict[str, RTensor] = base) -> Value:
            elements = list(base[leaf].elements)
            elements[index] = x
            out = evaluate(case, {**base, leaf: RTensor(elements, shape, mp)})[case.output]
            total = Value(0, False, system=mp)
            for c, o in zip(ct, out.elements):
                if not any(o.data == m for m in masked):  # a position the output's own −∞ fill masks: a constant
                    total = total + c * o
            return total

        est = richardson(f, [x0], 0, system=mp, h=h, levels=2)
        size = abs(f(Value(x0, False, system=mp)).data)
        resolution = size * mp.ctx.mpf(10) ** (5 - dps) / h
        if resolution <= abs(est.value) * mp.ctx.mpf(10) ** -20 or dps >= 800:
            return float(est.value), float(est.error + resolution)
        dps *= 2
