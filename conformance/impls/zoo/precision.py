"""Precision: the bugs of half-precision training (float16, bfloat16), where the arithmetic is right
in exact terms and wrong in the format.

Each is refimpl with one change in how it treats the format's numbers; in float64 most of them change
nothing a random case reaches, so they are caught in the float16 and bfloat16 suites
(:func:`conformance.kinds.graph.half_suites`), whose fixed cases (:mod:`conformance.case.precision`)
put the hostile input there at every seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from unittest import mock

from conformance.case.dtypes import HALF
from conformance.case.graph import GraphCase, Tensor
from conformance.impls.zoo.base import Mutant, tensor
from conformance.oracle import run as run_module
from refimpl.engine import Value

#: the loss scale of the mixed-precision recipe (torch.amp's GradScaler starts at 2^16; any power of
#: two shows the bug: the gradients come back that many times too large)
LOSS_SCALE = 1024.0


@contextmanager
def _loss_scale_not_undone() -> Iterator[None]:
    """The backward pass seeded with the scaled loss's cotangent (S·ct, exact: S is a power of two)
    and the gradients never divided by S — ``scaler.scale(loss).backward()`` without
    ``scaler.unscale_`` / ``scaler.step``, only in the half-precision dtypes where people scale."""
    original = run_module.refimpl_raw

    def scaled(case: GraphCase, system: Any) -> Any:
        if case.dtype in HALF:
            ct = case.cotangent
            case = replace(case, cotangent=Tensor(ct.shape, tuple(LOSS_SCALE * c for c in ct.values)))
        return original(case, system)

    with mock.patch.object(run_module, "refimpl_raw", scaled):
        yield


def _ulp(v: Value) -> float:
    """One unit in the last place of ``v`` in its own number system's format (binary64 otherwise)."""
    fmt = getattr(v.ns, "format", None)
    if fmt is None:
        return math.ulp(v.data)
    return max(fmt.smallest_subnormal, 2.0 ** (math.frexp(v.data)[1] - fmt.precision))


def _isclose_extreme(right: Value, values: list[Value]) -> Value:
    """max / min whose backward counts as tied every entry within one ulp of the extreme ``right``
    (the correct result) — the ``isclose(x, max)`` mask written to survive half precision's noise —
    and splits the gradient among them. The value is the extreme itself, exactly."""
    if right.data != right.data or math.isinf(right.data):
        return right
    near = [v for v in values if abs(v.data - right.data) <= _ulp(right)]
    if len(near) == 1:
        return right
    ns = near[0].ns
    out = Value(right.data, False, system=ns)
    for v in near:  # value + Σ (v − v̄)/k: exactly the extreme, slope 1/k to each near entry
        out = out + (v - Value(v.data, False, system=ns)) * ns.div(ns.one, ns.convert(len(near)))
    return out


@contextmanager
def _isclose_ties() -> Iterator[None]:
    original = tensor.extreme_of
    with mock.patch.object(tensor, "extreme_of", lambda values, pick: _isclose_extreme(original(values, pick), values)):
        yield


MUTANTS = [
    Mutant("loss-scale-not-undone", "precision", "half-precision gradients left multiplied by the loss scale (1024)",
           "scaler.scale(loss).backward() and the step taken on the raw .grad, without unscale_",
           _loss_scale_not_undone),
    Mutant("max-isclose-ties", "precision",
           "amax/amin's backward splits the gradient among every entry within one ulp of the extreme",
           "an isclose(x, max) mask instead of x == max, to make half precision's ties 'robust'",
           _isclose_ties),
]
