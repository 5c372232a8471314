"""Numerics: the right formulas in the wrong precision, an unstable form of a stable one, and choices
at kinks that differ from torch's.

A kink choice (relu′(0) = 1, abs′(0) = 1, a tie of maximum given wholly to one side) is a valid
subgradient: the derivative does not exist there and torch documents which value it uses. The
verdicts (conformance/verdict/graph.py) judge such a difference ``convention`` — reported, not failed — so
these mutants are expected to be *caught as convention*, not killed.
"""

from __future__ import annotations

from typing import Any

from conformance.impls.zoo.base import Mutant, replace_op
from conformance.impls.zoo.engine import installed


def _tie_to_first(m: Any, a: Any, b: Any, out: Any) -> tuple[Any, Any]:
    return (m.one, m.zero) if m.val(a) >= m.val(b) else (m.zero, m.one)  # ties: all to a, none split


MUTANTS = [
    Mutant("float32-accumulation", "numerics", "gradient += done in a float32 accumulator in a float64 run",
           "a float32 buffer (or a mixed-precision default) behind a float64 API; single-use gradients stay exact",
           installed("float32-accumulate")),
    Mutant("log1p-as-log-of-1-plus-x", "numerics", "log1p(x) computed as log(1 + x)",
           "the obvious formula; it loses every digit of x below the rounding of 1 + x",
           replace_op("log1p", forward=lambda m, x: m.log(1 + x))),
    Mutant("relu-grad-1-at-0", "numerics", "relu′(0) = 1 (torch: 0)",
           "x >= 0 instead of x > 0 in the mask: a valid subgradient, not torch's",
           replace_op("relu", derivative=lambda m, x, out: (m.zero if m.val(x) < 0 else m.one,)),
           expect="convention"),
    Mutant("abs-grad-1-at-0", "numerics", "abs′(0) = 1 (torch: sign(0) = 0)",
           "x >= 0 ? 1 : -1 is the usual hand-written sign",
           replace_op("abs", derivative=lambda m, x, out: (m.one if m.val(x) >= 0 else -m.one,)),
           expect="convention"),
    Mutant("maximum-tie-to-first", "numerics", "maximum(a, b) at a tie sends the whole gradient to a (torch: ½ each)",
           "a >= b ? a : b, and the gradient follows the branch taken",
           replace_op("maximum", derivative=_tie_to_first), expect="convention"),
]
