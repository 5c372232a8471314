"""Correctness apart from numerical robustness: the working range, and the ``robustness`` verdict.

The verdict that sets the exit code answers "are the derivatives right?" on a *working range* of
inputs, where every correct formula found in textbooks and libraries stays within the tolerance.
A graph case is *extreme* when one of its numbers is outside the range of its dtype
(:data:`WORKING_RANGE`): a leaf, a numeric attribute, the cotangent, a value refimpl's forward
computes (every node, in the case's dtype), or an entry of torch's result or of the truth — each
must be 0, or finite with a magnitude in ``[low, high]``. A case that would be charged (``fail``,
``nonfinite-mismatch``, ``error``) and is extreme is ``robustness`` instead: reported in its own
section, charged only with ``--strict``. Its reason keeps the charged one, prefixed by what made
the case extreme.

The range is where a number's cube is still a normal number of the dtype: the formulas people write
raise a value to the second or third power on the way (−a/b² for div′, ``b**-1`` then ``b**-2``,
x·x·x), and these overflow, underflow to subnormals or raise ``OverflowError`` /
``ZeroDivisionError`` in Python only past the cube root of the dtype's normal range. float64:
normal magnitudes in [2.2e-308, 1.8e308], cube roots 2.8e-103 and 5.6e102 → [1e-100, 1e100].
float32: [1.2e-38, 3.4e38], cube roots 2.3e-13 and 7.0e12 → [1e-12, 1e12]. float16 and bfloat16
compute in float32 and store in themselves: float32's range, within the normal range of what they
store (:mod:`conformance.case.dtypes`, where each dtype's range is declared). Exactly 0 is in the range
(ordinary, and the special points use it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from functools import cached_property
from typing import Any

from conformance.case.dtypes import DTYPES
from conformance.case.graph import GraphCase, GraphResult
from conformance.case.tensor_ops import infinite_fills
from conformance.oracle.run import evaluate, leaf_tensors, refimpl_system
from conformance.verdict.outcomes import NONCONFORMING, Verdict
from refimpl import FLOAT64
from refimpl.tensor import Tensor as RTensor
from refimpl.tensor import grad as tensor_grad

#: per dtype: (low, high) — a number is in the working range when it is 0, or finite with
#: low ≤ |x| ≤ high (the module's docstring says why these)
WORKING_RANGE: dict[str, tuple[float, float]] = {name: d.working_range for name, d in DTYPES.items()}

#: the charged verdicts an extreme case turns into ``robustness`` (a timeout stays charged)
EXCUSABLE = frozenset({Verdict.FAIL, Verdict.NONFINITE_MISMATCH, Verdict.ERROR})


def outside(x: float, dtype: str) -> str | None:
    """Why ``x`` is outside the working range of ``dtype`` (None when it is inside)."""
    low, high = WORKING_RANGE[dtype]
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "infinite"
    if x != 0 and abs(x) < low:
        return f"below the working range {low:g}"
    if abs(x) > high:
        return f"above the working range {high:g}"
    return None


class Forwards:
    """refimpl's forward passes of one case, each computed at most once and only when asked for:
    in the case's format (the working range, the underflow), and in binary64 with its adjoints (the
    underflow, the overflow on the way). A failing extreme case needs up to all three; a passing
    case none. An exception leaves the pass ``None`` and says why in :attr:`failed`."""

    def __init__(self, case: GraphCase) -> None:
        self.case = case
        self.failed: dict[str, str] = {}

    def _run(self, key: str, system: Any, requires_grad: bool) -> dict[str, RTensor] | None:
        try:
            return evaluate(self.case, leaf_tensors(self.case, system, requires_grad=requires_grad))
        except (ArithmeticError, ValueError) as exc:
            self.failed[key] = type(exc).__name__
            return None

    @cached_property
    def narrow(self) -> dict[str, RTensor] | None:
        """Every node in the case's format (refimpl's emulation under the case's claim)."""
        return self._run("narrow", refimpl_system(self.case), requires_grad=False)

    @cached_property
    def wide(self) -> dict[str, RTensor] | None:
        """Every node in binary64, recorded for a backward pass (:attr:`adjoints`)."""
        return self._run("wide", FLOAT64, requires_grad=True)

    @cached_property
    def adjoints(self) -> list[RTensor | None] | None:
        """Each node's adjoint ∂⟨cotangent, output⟩/∂node in binary64, in the order of the case's nodes."""
        env, case = self.wide, self.case
        if env is None:
            return None
        ct = RTensor.from_flat(case.cotangent.values, case.cotangent.shape, system=FLOAT64, requires_grad=False)
        try:
            return tensor_grad(env[case.output], [env[n.name] for n in case.nodes], ct, allow_unused=True)
        except (ArithmeticError, ValueError, RuntimeError):
            return None


def _numbers(case: GraphCase, torch_result: GraphResult | None, entries: list[Any],
             forwards: Forwards) -> Iterator[tuple[str, float]]:
    """Every number the working range is about, named; refimpl's forward only when it is reached."""
    for name, t in case.leaves.items():
        yield from ((f"leaf {name}", x) for x in t.values)
    for n in case.nodes:
        fills = infinite_fills(n.op, n.attrs)
        yield from ((f"{n.name}.{k}", float(a)) for k, a in n.attrs.items()
                    if isinstance(a, (int, float)) and not isinstance(a, bool) and a not in fills)
    yield from (("the cotangent", x) for x in case.cotangent.values)
    output = next((n for n in case.nodes if n.name == case.output), None)
    masked = infinite_fills(output.op, output.attrs) if output is not None else set()  # the output is the fill's
    if torch_result is not None and torch_result.error is None:
        if torch_result.value is not None:
            yield from (("torch's value", x) for x in torch_result.value.values if x not in masked)
        parts = [(f"grad[{k}]", t) for k, t in torch_result.grads.items()]
        parts += [(f"hvp[{k}]", t) for k, t in (torch_result.hvp or {}).items()]
        for name, t in parts:
            yield from ((f"torch's {name}", x) for x in t.values)
    yield from ((f"the truth of {e.name}", e.truth) for e in entries
                if e.truth is not None and not (e.name.startswith("value") and e.truth in masked))
    env = forwards.narrow
    if env is None:
        yield f"refimpl's forward ({forwards.failed['narrow']})", math.nan
        return
    for n in case.nodes:
        fills = infinite_fills(n.op, n.attrs)
        yield from ((f"node {n.name} (refimpl's forward)", float(e.data)) for e in env[n.name].elements
                    if float(e.data) not in fills)


def extreme(case: GraphCase, torch_result: GraphResult | None = None, entries: list[Any] = (),
            forwards: Forwards | None = None) -> str | None:
    """What puts the case outside the working range (the first such number), or None."""
    for name, x in _numbers(case, torch_result, list(entries), forwards or Forwards(case)):
        why = outside(x, case.dtype)
        if why is not None:
            return f"{name} = {x:.3g}, {why}" if math.isfinite(x) else f"{name} is {why}"
    return None


#: the cause named when the true value of every charged entry is beyond the format's largest number
OVERFLOW = "overflow"


def overflowed(v: Any, forwards: Forwards | None = None) -> str | None:
    """Whether the format's overflow decides the case: the implementation's charged entries are not
    finite, and either the truth of every one of them rounds to ±inf in the format (a float16
    gradient of 1.96e5 > 65504), or torch — computing each op in float32 and storing in the format —
    is not finite there either while the truth is: the computation overflows the format on the way
    (a local derivative 1/x² of 1.9e5 at x = 0.00228 in float16, in a chain whose product is
    2.6e-6). Then ±inf against NaN is only how each computation met the overflow (a kernel that
    reaches inf, an emulation rounding every intermediate to the format that meets inf − inf first)
    — named :data:`OVERFLOW` by :func:`judge_robustness`, and never charged (the case is outside the
    working range)."""
    charged = [e for e in v.entries if e.verdict in NONCONFORMING]
    cast, largest = DTYPES[v.case.dtype].cast, DTYPES[v.case.dtype].format.largest
    if not charged or v.verdict == Verdict.ERROR or v.case.dtype == "float64" \
            or any(math.isfinite(e.impl) or e.truth is None or not math.isfinite(e.truth) for e in charged):
        return None
    e = charged[0]
    if all(not math.isfinite(cast(e.truth)) for e in charged):
        return f"the truth of {e.name}, {e.truth:.3g}, overflows {v.case.dtype} (largest {largest:g})"
    if all(not math.isfinite(e.torch) for e in charged):
        return (f"{e.name} overflows {v.case.dtype} on the way (largest {largest:g}): torch {e.torch}, "
                f"the implementation {e.impl}, the truth {e.truth:.3g}")
    big = _overflowing_adjoint(forwards or Forwards(v.case), largest)
    if big is not None:
        node, adjoint = big
        return (f"the gradient at node {node.name} ({node.op}), {adjoint:.3g}, overflows {v.case.dtype} on the way "
                f"(largest {largest:g}): the implementation {e.impl}, torch {e.torch}, the truth {e.truth:.3g}")
    return None


def _overflowing_adjoint(forwards: Forwards, largest: float) -> tuple[Any, float] | None:
    """The first node whose true adjoint — ∂⟨cotangent, output⟩/∂node, refimpl's backward in binary64
    — is beyond the format's largest number, with that adjoint; None when every one fits. Reverse
    mode holds each node's adjoint in the format, so there it is ±inf, and a local derivative of
    exactly 0 behind it (x⁰'s) makes inf·0 = NaN where the leaf's true gradient is finite: float16
    calibration, a gradient of 8.9e4 into pow(x, 0) — torch answers a zero exponent with zeros
    without multiplying, refimpl's chain rule multiplies. How each met the overflow, not a bug."""
    adjoints = forwards.adjoints
    if adjoints is None:
        return None
    for n, g in zip(forwards.case.nodes, adjoints):
        for a in (() if g is None else g.elements):
            if abs(float(a.data)) > largest:
                return n, float(a.data)
    return None


#: the cause named when a value underflows the format on the way and the implementation agrees with torch
UNDERFLOW = "underflow"


def underflowed(v: Any, forwards: Forwards | None = None) -> str | None:
    """Whether the format's underflow decides the case: every charged entry of the implementation
    agrees with torch's (within the rule by which any implementation agrees with torch), both far
    from the truth, and a value on the way is below the format's normal range — nonzero in binary64,
    0 or subnormal in the format, and not a number the format holds (|x|·x = −1.2e-10 at
    x = −1.1e-5 is −0 in float16; the quotients by |x| after it are 0 where they are −1, and a power
    of them is 1 where it is 5.8e20). The
    format lost every digit there, torch's float32-computed, float16-stored kernels as much as the
    emulation: two computations that meet the same underflow and agree are not a false alarm of
    the suite's, nor a bug of the implementation's — named :data:`UNDERFLOW` by
    :func:`judge_robustness`, never charged (the case is outside the working range)."""
    charged = [e for e in v.entries if e.verdict in NONCONFORMING]
    if not charged or v.verdict == Verdict.ERROR or v.case.dtype == "float64" \
            or not all(math.isfinite(e.impl) and math.isfinite(e.torch) and abs(e.impl - e.torch) <= 2 * e.tol
                       for e in charged):
        return None
    case, normal, cast = v.case, DTYPES[v.case.dtype].format.smallest_normal, DTYPES[v.case.dtype].cast
    forwards = forwards or Forwards(case)
    narrow, wide = forwards.narrow, forwards.wide
    if narrow is None or wide is None:
        return None
    for n in case.nodes:
        for a, b in zip(narrow[n.name].elements, wide[n.name].elements):
            x, true = float(a.data), float(b.data)
            if true != 0 and abs(true) < normal and abs(x) < normal and cast(true) != true:  # digits lost
                e = charged[0]
                return (f"node {n.name} ({n.op}) underflows {case.dtype} on the way: {true:.3g} in binary64, {x:g} "
                        f"in {case.dtype} (smallest normal {normal:g}); the implementation agrees with torch "
                        f"({e.name}: {e.impl!r}, torch {e.torch!r}), the truth {e.truth!r}")
    return None


def judge_robustness(v: Any, torch_result: GraphResult | None) -> Any:
    """A charged verdict (``fail``, ``nonfinite-mismatch``, ``error``) on an extreme case becomes
    ``robustness``, its charged entries too, the reason kept behind what made the case extreme —
    with the cause :data:`OVERFLOW` when the true answer overflows the format (:func:`overflowed`), or
    :data:`UNDERFLOW` when the implementation agrees with torch across an underflow (:func:`underflowed`).
    Any other verdict (``known-cause`` included) is returned as it is."""
    if v.verdict not in EXCUSABLE:
        return v
    forwards = Forwards(v.case)  # each of refimpl's passes at most once across the three questions
    why = extreme(v.case, torch_result, v.entries, forwards)
    if why is None:
        return v
    over, under = overflowed(v, forwards), None
    if over is None:
        under = underflowed(v, forwards)
    entries = [replace(e, verdict=Verdict.ROBUSTNESS) if e.verdict in NONCONFORMING else e for e in v.entries]
    return replace(v, verdict=Verdict.ROBUSTNESS, entries=entries,
                   reason=f"robustness ({over or under or why}): {v.reason}",
                   cause=OVERFLOW if over else UNDERFLOW if under else v.cause)
