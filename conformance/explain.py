"""Known causes of a failure, each reproduced rather than guessed: calibration's budget is "no failure
that is not a true bug or a documented convention", so every failure of a library is either
*explained* by one of these — refimpl, changed in exactly the documented way, gives the library's
number — or counted as unexplained.

* ``flush-to-zero`` — subnormals flushed to zero, inputs and results (FTZ + DAZ: XLA's CPU default,
  hence jax's). refimpl run in :class:`FlushNS` reproduces the entry. A documented choice of the
  library, outside IEEE: the suite still judges it ``fail`` (the number is wrong for the dtype).
* ``self-tie`` — ``maximum(x, x)`` / ``minimum(x, x)`` given the gradient 0 instead of 1 (mygrad 2.5's
  tie rule, 0 to both sides, applied where the two sides have the same gradient): a bug
  (docs/findings.md). refimpl with that tie rule reproduces the entry.
* ``reciprocal-partial`` — log′ and div′ as g·(1/x) instead of g/x: 1/x overflows for a subnormal x
  (refimpl did this until it gained ``OpSpec.vjp``). A numerical bug.
* ``quotient-squared`` — div′ for the denominator as −g·a/b² (autograd): b² overflows or
  underflows where −g·(a/b)/b does not, and the gradient is ±inf or 0 where the true one is finite.
  A numerical bug.
* ``elu-from-output`` — elu′ computed from the output, ``out + α`` on x ≤ 0 (jax, mygrad): equal in
  exact arithmetic, but ``α·expm1(x) + α`` cancels — at x = −675 every digit of α·eˣ ≈ 1e-294 is
  lost and the gradient is 0. An accuracy bug: the derivative's relative error is up to 100%.

An explanation is asked only for a failing entry, against the entry's own tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from refimpl import OPS
from refimpl.numbers import Float32NS, FloatNS, round_to_float32

from .cases import GraphCase

TINY64 = 2.2250738585072014e-308  # the smallest normal binary64
TINY32 = 1.1754943508222875e-38  # the smallest normal binary32


def _flush(x: float, tiny: float) -> float:
    return math.copysign(0.0, x) if abs(x) < tiny else x


class FlushNS(FloatNS):
    """binary64 with every subnormal input and result flushed to a signed zero (FTZ + DAZ)."""

    name = "float64-ftz"
    rounds = True  # the engine then routes every result through round/add/mul

    @staticmethod
    def convert(x: Any) -> float:
        return _flush(float(x), TINY64)

    round = convert  # type: ignore[assignment]

    @staticmethod
    def add(a: float, b: float) -> float:  # type: ignore[override]
        return _flush(a + b, TINY64)

    @staticmethod
    def mul(a: float, b: float) -> float:  # type: ignore[override]
        return _flush(a * b, TINY64)


class Flush32NS(Float32NS):
    """refimpl's binary32 emulation with subnormals flushed (FTZ + DAZ)."""

    name = "float32-ftz"

    @staticmethod
    def convert(x: Any) -> float:
        return _flush(round_to_float32(float(x)), TINY32)

    round = convert  # type: ignore[assignment]

    @staticmethod
    def add(a: float, b: float) -> float:  # type: ignore[override]
        return _flush(round_to_float32(a + b), TINY32)

    @staticmethod
    def mul(a: float, b: float) -> float:  # type: ignore[override]
        return _flush(round_to_float32(a * b), TINY32)


FLUSH = {"float64": FlushNS(), "float32": Flush32NS()}


def _flushed(case: GraphCase) -> dict[str, float]:
    from .run import run_refimpl
    from .verdict import _entries

    return _entries(run_refimpl(case, FLUSH[case.dtype]))


def _patched(ops: tuple[str, ...], *changes: tuple[str, dict[str, Any]]) -> Callable[[GraphCase], Any]:
    """An explainer: refimpl with each ``(op, {field: value})`` change made (the zoo's ``replace_op``),
    asked only of cases that use one of ``ops``."""

    def reproduce(case: GraphCase) -> dict[str, float] | None:
        if not any(n.op in ops for n in case.nodes):
            return None
        from .run import run_refimpl
        from .verdict import _entries
        from .zoo.base import replace_op

        with ExitStack() as stack:
            for name, fields in changes:
                stack.enter_context(replace_op(name, **fields)())
            return _entries(run_refimpl(case))

    return reproduce


def _zero_on_tie(name: str) -> tuple[str, dict[str, Any]]:
    """A tie of maximum/minimum passes 0 to both sides. Where the tied sides have different
    gradients that is a kink (``convention``, never a failure); where they have the same —
    ``maximum(x, x)`` — every valid choice gives it, and 0 is wrong."""
    spec = OPS[name]

    def derivative(m: Any, a: Any, b: Any, out: Any) -> tuple[Any, Any]:
        return (m.zero, m.zero) if m.val(a) == m.val(b) else spec.derivative(m, a, b, out)

    return name, {"derivative": derivative}


EXPLAINERS: dict[str, Callable[[GraphCase], dict[str, float] | None]] = {
    "flush-to-zero": _flushed,
    "self-tie": _patched(("maximum", "minimum"), _zero_on_tie("maximum"), _zero_on_tie("minimum")),
    "elu-from-output": _patched(("elu",), ("elu", {"derivative": lambda m, x, out, alpha:
                                                  (m.one if m.val(x) > 0 else out + alpha,)})),
    "reciprocal-partial": _patched(("log", "div"), ("log", {"vjp": None}), ("div", {"vjp": None})),
    "quotient-squared": _patched(("div",), ("div", {"vjp": lambda m, g, a, b, out:
                                                    (m.div(g, b), m.div(-g * a, b * b))})),
}

def explain(case: GraphCase, entries: list[Any]) -> str | None:
    """The name of the known cause that reproduces every failing entry of ``entries`` (verdict
    entries: name, impl, tol, verdict), or None."""
    from .verdict import NONCONFORMING

    bad = [e for e in entries if e.verdict in NONCONFORMING]
    if not bad:
        return None
    for name, reproduce in EXPLAINERS.items():
        try:
            got = reproduce(case)
        except (ArithmeticError, ValueError):
            continue
        if got is not None and all(e.name in got and _same(e.impl, got[e.name], e.tol) for e in bad):
            return name
    return None


def _same(x: float, y: float, tol: float) -> bool:
    from .verdict import _close

    return _close(x, y, 2 * tol)
