"""Running a graph case: in refimpl (any number system), in torch, and the finite-difference truth."""

from __future__ import annotations

from typing import Any

import torch

from refimpl import FLOAT32, FLOAT64, Value, apply, grad, mpmath_system
from refimpl.gradcheck import richardson

from . import oracle
from .cases import GraphCase, GraphResult, Tensor

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}
REFIMPL_SYSTEMS = {"float64": FLOAT64, "float32": FLOAT32}


def forward_values(case: GraphCase, leaves: dict[str, Any]) -> dict[str, Any]:
    """Evaluate every node with refimpl ops, given the leaf Values (or Values of any system)."""
    env = dict(leaves)
    for n in case.nodes:
        env[n.name] = apply(n.op, *(env[i] for i in n.inputs), **n.attrs)
    return env


def run_refimpl(case: GraphCase, system: Any = None) -> GraphResult:
    """The case through refimpl: value, gradient of ⟨cotangent, output⟩, and the HVP if asked."""
    value, grads, hvp = refimpl_raw(case, system or REFIMPL_SYSTEMS[case.dtype])
    return GraphResult(value=Tensor.scalar(float(value)),
                       grads={k: Tensor.scalar(float(g)) for k, g in grads.items()},
                       hvp=None if hvp is None else {k: Tensor.scalar(float(h)) for k, h in hvp.items()})


def refimpl_raw(case: GraphCase, system: Any) -> tuple[Any, dict[str, Any], dict[str, Any] | None]:
    """Like :func:`run_refimpl`, but the entries stay numbers of ``system`` (mpf, Bounded, …)."""
    names = list(case.leaves)
    leaves = {k: Value(case.leaves[k].values[0], system=system) for k in names}
    out = forward_values(case, leaves)[case.output]
    so = case.second_order is not None
    gs = grad(out, [leaves[k] for k in names], case.cotangent.values[0], create_graph=so,
              allow_unused=True)
    grads = {k: system.zero if g is None else _data(g) for k, g in zip(names, gs)}
    if not so:
        return out.data, grads, None
    dot = sum((g * case.second_order[k].values[0] for k, g in zip(names, gs) if isinstance(g, Value)),
              start=Value(0.0, False, system=system))
    xs = [leaves[k] for k in names]
    hs = grad(dot, xs, allow_unused=True) if dot.requires_grad else (None,) * len(names)
    return out.data, grads, {k: system.zero if h is None else h for k, h in zip(names, hs)}


def _data(g: Any) -> Any:
    return g.data if isinstance(g, Value) else g


def run_torch(case: GraphCase, dtype: str | None = None) -> GraphResult:
    """The case through torch.autograd (``create_graph=True`` for the second-order request)."""
    dt = TORCH_DTYPES[dtype or case.dtype]
    names = list(case.leaves)
    leaves = {k: torch.tensor(case.leaves[k].values[0], dtype=dt, requires_grad=True) for k in names}
    env: dict[str, torch.Tensor] = dict(leaves)
    for n in case.nodes:
        env[n.name] = oracle.call(n.op, *(env[i] for i in n.inputs), **n.attrs)
    out = env[case.output]
    so = case.second_order is not None
    xs = [leaves[k] for k in names]
    gs = torch.autograd.grad(out, xs, torch.tensor(case.cotangent.values[0], dtype=dt), create_graph=so,
                             allow_unused=True, materialize_grads=True)
    result = GraphResult(value=Tensor.scalar(out.item()),
                         grads={k: Tensor.scalar(g.item()) for k, g in zip(names, gs)})
    if so:
        dot = sum(g * case.second_order[k].values[0] for k, g in zip(names, gs))
        if isinstance(dot, torch.Tensor) and dot.requires_grad:
            hs = torch.autograd.grad(dot, xs, allow_unused=True, materialize_grads=True)
            result.hvp = {k: Tensor.scalar(h.item()) for k, h in zip(names, hs)}
        else:
            result.hvp = {k: Tensor.scalar(0.0) for k in names}
    return result


def truth_gradient(case: GraphCase, dps: int = 50) -> tuple[dict[str, Tensor], dict[str, float]]:
    """∂⟨cotangent, output⟩/∂leaf by Richardson finite differences of the forward at ``dps`` digits.

    Shares no code with any backward pass: only the forward formulas. Returns the estimates and
    their own error estimates (large where the forward is not smooth near the point).
    """
    mp = mpmath_system(dps)
    names = list(case.leaves)
    point = [case.leaves[k].values[0] for k in names]
    ct = case.cotangent.values[0]

    def f(*vs: Value) -> Value:
        return forward_values(case, dict(zip(names, vs)))[case.output]

    grads, errors = {}, {}
    for i, k in enumerate(names):
        h = 1e-15 * max(abs(point[i]), 1.0)
        est = richardson(f, point, i, system=mp, h=h, levels=3)
        grads[k] = Tensor.scalar(float(est.value * ct))
        errors[k] = float(abs(est.error * ct))
    return grads, errors
