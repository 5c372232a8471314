"""Fixed cases hostile to a narrow format, judged first in its tensor-graph suite at every seed.

Half precision breaks code that is right in float32 in three places, each built here from the
format's own figures rather than drawn and hoped for:

* **ties it creates** — a maximum and the format's next number below it: distinct, one ulp apart,
  so a backward that treats near-equal entries as tied (an ``isclose`` mask) splits a gradient that
  belongs wholly to the maximum (tinygrad#12296: ties everywhere in float16);
* **overflow past the largest number** — logits a little above log(largest) (11.1 in float16, 88.7
  in bfloat16): exp of them overflows unless the max is shifted out first;
* **long sums** — 64 terms, where accumulating in the format itself loses digits that a float32
  accumulator keeps; and sums that *stagnate* in the format: 1 followed by 63 terms of ¾ of the
  format's unit roundoff, each of which a partial sum held in the format rounds away (the total is
  1 + 23.6 ulps; accumulated in the format it stays 1) — as a ``sum`` and as a ``matmul`` row times
  a column of ones. A correct implementation that rounds every partial sum passes them (its bound
  allows n − 1 roundings); one that declares float32 accumulation
  (:attr:`conformance.impls.Capabilities.accumulate`) and does not keep it fails them, and so does
  one that claims pairwise summation (:attr:`~conformance.impls.Capabilities.summation`) and sums
  them with a running sum (:func:`order_cases`: they open the float32 and float64 tensor-graph
  suites of such an implementation too).

Every number is a number of the format, and inside its working range
(:mod:`conformance.case.dtypes`), so a failure here is charged.
"""

from __future__ import annotations

import math
import random

from conformance.case.dtypes import dtype as dtype_of
from conformance.case.graph import GraphCase, Node, Tensor
from conformance.case.strategies import with_id


def _case(op: str, x: Tensor, attrs: dict[str, object], ct: tuple[float, ...], out_shape: tuple[int, ...],
          dtype: str, **more: Tensor) -> GraphCase:
    leaves = {"x": x, **more}
    return with_id(GraphCase(leaves, (Node("n0", op, tuple(leaves), attrs),), "n0", Tensor(out_shape, ct), dtype))


def fixed_cases(dtype: str) -> tuple[GraphCase, ...]:
    """The hostile cases of ``dtype`` (see the module docstring), ops ``amax``, ``logsumexp``,
    ``softmax``, ``sum`` and ``matmul``."""
    d = dtype_of(dtype)
    f, cast = d.format, d.cast
    below = 1.5 - 2.0 ** (1 - f.precision)  # the format's number just below 1.5
    near = Tensor((2, 4), (1.5, below, 0.25, -1.0, -0.5, 0.75, 0.75 - 2.0 ** (-f.precision), 0.125))
    big = math.log(f.largest)
    logits = Tensor((2, 3), tuple(cast(big + s) for s in (0.5, 0.25, -0.5, 0.75, -0.25, 0.0)))
    rng = random.Random(0)
    terms = Tensor((64,), tuple(cast(rng.uniform(0.5, 1.5)) for _ in range(64)))
    return (
        _case("amax", near, {"dim": 1, "keepdim": False}, (1.5, -0.75), (2,), dtype),
        _case("logsumexp", logits, {"dim": -1, "keepdim": False}, (1.25, -0.5), (2,), dtype),
        _case("softmax", logits, {"dim": -1}, (1.0, -0.5, 0.75, 0.5, 1.25, -1.0), (2, 3), dtype),
        _case("sum", terms, {"dim": 0, "keepdim": False}, (0.75,), (), dtype),
        *order_cases(dtype),
    )


def order_cases(dtype: str) -> tuple[GraphCase, ...]:
    """The sums that stagnate in ``dtype``, as a ``sum`` and as a ``matmul`` row times a column of
    ones: 1, then 63 terms of ¾ of the format's unit roundoff. A running sum held in the format rounds
    every term away (1 + ¾u is nearer 1 than the next number, 1 + 2u) and ends at 1, 23.6 ulps below
    the truth — within the n − 1 roundings any order may make, so a correct implementation that
    rounds every partial sum passes. Two kinds of claim it tests: a wider accumulator (the terms are
    exact there) and pairwise summation (the 63 small terms meet each other first, in pairs that
    are exact, and reach the 1 as sums of several ulps: the total is within the ⌈log2 64⌉ = 6
    roundings the claim allows, ≈ 3 ulps, where the running sum is 23.6 off). The half-precision
    suites open with them whatever is claimed (:func:`fixed_cases`); float32 and float64 tensor
    graphs only under a claimed order (:mod:`conformance.kinds.graph`), so that no other suite
    changes."""
    f, cast = dtype_of(dtype).format, dtype_of(dtype).cast
    stagnant = Tensor((64,), (1.0,) + (cast(0.75 * f.unit_roundoff),) * 63)
    return (
        _case("sum", stagnant, {"dim": 0, "keepdim": False}, (1.25,), (), dtype),
        _case("matmul", Tensor((1, 64), stagnant.values), {}, (-0.5,), (1, 1), dtype,
              y=Tensor((64, 1), (1.0,) * 64)),
    )
