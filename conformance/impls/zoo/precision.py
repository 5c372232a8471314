"""Precision: the bugs of half-precision training (float16, bfloat16), where the arithmetic is right
in exact terms and wrong in the format.

Each is refimpl with one change in how it treats the format's numbers; in float64 most of them change
nothing a random case reaches, so they are caught in the float16 and bfloat16 suites
(:func:`conformance.kinds.graph.half_suites`), whose fixed cases (:mod:`conformance.case.precision`)
put the hostile input there at every seed. The summation-order mutant claims pairwise summation
(``capabilities.summation``) and is caught by the stagnating sums that open the tensor-graph suites
of every dtype it claims it for (:func:`conformance.case.precision.order_cases`).
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
from conformance.impls import PAIRWISE, PairwiseRefImpl
from conformance.impls.zoo.base import Mutant, tensor
from conformance.oracle import run as run_module
from refimpl import numbers
from refimpl.engine import Value
from refimpl.numbers import MixedNS

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


def _in_storage(products_only: bool) -> Any:
    """refimpl's reductions in a mixed-precision system (float32 accumulation declared) left as the
    chain of storage-rounded additions: every partial sum of a sum or dot product rounded to float16
    or bfloat16 — only the dot products' (``products_only``: a GEMM kernel with a storage-typed
    accumulator while the framework's sums upcast)."""

    @contextmanager
    def patch() -> Iterator[None]:
        original = tensor.reduced

        def reduced(total: Value, terms: list[Value], factors: Any = None) -> Value:
            if isinstance(total.ns, MixedNS) and (factors is not None or not products_only):
                return total  # the storage format's partial sums, as computed
            return original(total, terms, factors)

        with mock.patch.object(tensor, "reduced", reduced):
            yield

    return patch


@contextmanager
def _running_sum() -> Iterator[None]:
    """Every reduction refimpl sums pairwise (a system of a claimed order: refimpl.numbers.MixedNS,
    PairwiseFloatNS) summed by a running sum instead, in the same accumulation format."""
    with mock.patch.object(numbers, "pairwise_sum", numbers.left_to_right):
        yield


#: the claim the order mutant makes: refimpl-pairwise's (conformance.impls.PairwiseRefImpl) for float32 and
#: the half-precision dtypes. Not for float64: a claim there changes the id of every float64 case, before
#: the first suite that could kill it, which would make ``conformance mutants`` judge a thousand cases anew
#: (tests/test_summation_order.py shows the float64 stagnating sums kill the same bug under a float64 claim).
ORDER_CLAIMED = replace(PairwiseRefImpl.capabilities,
                        summation={k: v for k, v in PAIRWISE.items() if k != "float64"})

MUTANTS = [
    Mutant("loss-scale-not-undone", "precision", "half-precision gradients left multiplied by the loss scale (1024)",
           "scaler.scale(loss).backward() and the step taken on the raw .grad, without unscale_",
           _loss_scale_not_undone),
    Mutant("max-isclose-ties", "precision",
           "amax/amin's backward splits the gradient among every entry within one ulp of the extreme",
           "an isclose(x, max) mask instead of x == max, to make half precision's ties 'robust'",
           _isclose_ties),
    Mutant("accumulate-in-half", "precision",
           "sums and dot products accumulate in float16/bfloat16 where float32 accumulation is declared",
           "x.sum() on half tensors with the accumulator the tensor's own dtype, under an autocast-style claim",
           _in_storage(products_only=False)),
    Mutant("matmul-accumulates-in-half", "precision",
           "a matmul whose accumulator is the storage dtype (its sums do accumulate in float32)",
           "a hand-written GEMM kernel with `acc: T = 0` for T = half, as in a template instantiated for every T",
           _in_storage(products_only=True)),
    Mutant("naive-order-claims-pairwise", "precision",
           "reductions summed by a running sum where pairwise summation is claimed",
           "pairwise summation documented for the library (numpy's add.reduce), while the kernel reducing a "
           "strided axis, or a matmul's dot product, is a plain running sum",
           _running_sum, declares=ORDER_CLAIMED),
]
