"""Every scalar op at its special points: fixed cases, the same in every run and at every seed.

A random draw reaches an op's kink, its exponent 0 or its clamp bound only now and then, so a bug
that lives exactly there — micrograd's ``x**0`` at x = 0 computing ``0 · 0**-1`` and raising, a
relu′(0) of 1, a clamp that blocks the gradient at its own bound — would be caught at some seeds
and missed at others. These cases are not drawn: each op is evaluated at 0, ±1, ±½, ±2, at its
kinks, with the special values of its attributes (exponent 0 and 1, slope 0 and 1, clamp
bounds), alone and with one leaf on both sides of a binary op, and at the ordinary inputs where a
naive formula breaks (:data:`EXTRA_POINTS`: tanh at 0.01 and 400, log at 1e-8…).

Only points where refimpl's value and gradient are finite are kept: an input whose true gradient
is infinite (sqrt at 0, log at 0) is a question of numerical robustness, not of whether the
derivative is right, and is not asked here. The cotangent alternates between 1.5 and −0.75, so
an implementation that ignores it or its sign is caught too.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from conformance.case.graph import GraphCase, Node, Tensor
from conformance.case.strategies import with_id
from refimpl import OPS, Value, apply

POINTS = (0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0)
PAIRS = (0.0, 1.0, -1.0, 2.0, -0.5)  # each binary op at every pair of these (ties included)
COTANGENTS = (1.5, -0.75)

#: per op: points of the working range where a naive formula breaks, found on public engines — a
#: log or sqrt clamped at 1e-7, tanh as (e²ˣ − 1)/(e²ˣ + 1) (cancels near 0, overflows past 354),
#: log1p as log(1 + x), expm1 as exp(x) − 1, sigmoid and exp far from 0 but finite
EXTRA_POINTS: dict[str, tuple[float, ...]] = {
    "log": (1e-8, 1e6), "sqrt": (1e-8, 1e6), "log1p": (1e-10, -0.5), "expm1": (1e-10, -1e-10),
    "tanh": (0.01, -0.01, 400.0, -400.0), "sigmoid": (0.01, 40.0, -40.0), "exp": (40.0, -40.0),
    "reciprocal": (1e-8, 1e8), "div": (), "softplus": (-40.0, 40.0),
}

#: per op: the attribute sets tried besides the defaults, and the points each adds (its kinks)
ATTR_CASES: dict[str, list[tuple[dict[str, Any], tuple[float, ...]]]] = {
    "pow_int": [({"exponent": e}, ()) for e in (0, 1, -1, 2, 3)],
    "pow_scalar": [({"exponent": e}, ()) for e in (0.0, 1.0, 0.5, 2.0, -1.0, 1.5)],
    "leaky_relu": [({"negative_slope": s}, ()) for s in (0.01, 0.0, 1.0)],
    "elu": [({"alpha": a}, ()) for a in (1.0, 0.5)],
    "softplus": [({"beta": 1.0, "threshold": 20.0}, (20.0,)), ({"beta": 2.0, "threshold": 1.0}, (0.5,))],
    "gelu": [({"approximate": a}, ()) for a in ("none", "tanh")],
    "clamp": [({"min": -1.0, "max": 1.0}, ()), ({"min": 0.0}, ()), ({"max": 0.0}, ()),
              ({"min": 0.5, "max": 0.5}, ())],
}


def _finite(op: str, xs: tuple[float, ...], attrs: dict[str, Any], same_leaf: bool) -> bool:
    """refimpl's value and every gradient are finite (and the inputs are in the op's domain)."""
    spec = OPS[op]
    if not all(x in spec.domain[i] for i, x in enumerate(xs)):
        return False
    try:
        leaves = [Value(xs[0])] if same_leaf else [Value(x) for x in xs]
        out = apply(spec, *(leaves * spec.arity if same_leaf else leaves), **attrs)
        out.backward()
    except (ArithmeticError, ValueError):
        return False
    return math.isfinite(out.data) and all(v.grad is not None and math.isfinite(v.grad) for v in leaves)


def _case(op: str, xs: tuple[float, ...], attrs: dict[str, Any], same_leaf: bool, ct: float) -> GraphCase:
    leaves = {"x0": Tensor.scalar(xs[0])} if same_leaf else {f"x{i}": Tensor.scalar(x) for i, x in enumerate(xs)}
    inputs = ("x0",) * len(xs) if same_leaf else tuple(leaves)
    return GraphCase(leaves, (Node("n0", op, inputs, attrs),), "n0", Tensor.scalar(ct))


def _unary_points(op: str, attrs: dict[str, Any], extra: tuple[float, ...]) -> list[float]:
    kinks = [k.at if isinstance(k.at, float) else attrs.get(k.at) for k in OPS[op].kinks]
    return list(dict.fromkeys([*POINTS, *(k for k in kinks if isinstance(k, float)), *extra,
                               *EXTRA_POINTS.get(op, ())]))


@functools.cache
def special_cases(op: str) -> tuple[GraphCase, ...]:
    """The op's fixed cases (float64), in a fixed order; empty for an op not in the scalar table."""
    spec = OPS.get(op)
    if spec is None:
        return ()
    tried: list[tuple[tuple[float, ...], dict[str, Any], bool]] = []
    for attrs, extra in ATTR_CASES.get(op, [({}, ())]):
        if spec.arity == 1:
            tried += [((x,), attrs, False) for x in _unary_points(op, attrs, extra)]
        else:
            tried += [((a, b), attrs, False) for a in PAIRS for b in PAIRS]
            tried += [((x, x), attrs, True) for x in PAIRS]
    kept = [t for t in tried if _finite(op, *t[:2], t[2])]
    return tuple(with_id(_case(op, xs, attrs, same, COTANGENTS[i % 2])) for i, (xs, attrs, same) in enumerate(kept))
