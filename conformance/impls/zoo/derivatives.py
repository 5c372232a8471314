"""Wrong local derivatives: one op's backward formula, as a person gets it wrong (the forward is right)."""

from __future__ import annotations

from typing import Any

from conformance.impls.zoo.base import Mutant, both, replace_op
from refimpl import OPS

#: gelu's derivative as the table declares it (both forms), taken before any mutant replaces the op
GELU_DERIVATIVE = OPS["gelu"].derivative


def _power_rule_off_by_one(m: Any, x: Any, out: Any, exponent: Any) -> tuple[Any]:
    return (m.zero if exponent == 0 else exponent * m.pow(x, exponent),)  # BUG: n·x^n, not n·x^(n-1)


MUTANTS = [
    Mutant("tanh-1-minus-t", "derivative", "tanh′ = 1 − t instead of 1 − t²",
           "the square is easy to drop when writing the derivative in terms of the output",
           replace_op("tanh", derivative=lambda m, x, out: (1 - out,))),
    Mutant("pow-exponent-off-by-one", "derivative", "power rule d(xⁿ) = n·xⁿ (exponent not lowered)",
           "the classic slip of the power rule, in pow_scalar, pow_int (x ** 2) and pow's base partial",
           both(replace_op("pow_scalar", derivative=_power_rule_off_by_one),
                replace_op("pow_int", derivative=_power_rule_off_by_one),
                replace_op("pow", derivative=lambda m, a, b, out: (b * m.pow(a, b), out * m.log(a))))),
    Mutant("softplus-ignores-threshold", "derivative",
           "softplus′ = σ(βx) everywhere, though the forward is linear (slope 1) above threshold/β",
           "the smooth formula is the textbook derivative; the forward's linear branch is easy to forget",
           replace_op("softplus", derivative=lambda m, x, out, beta, threshold: (m.sigmoid(x * beta),))),
    Mutant("gelu-tanh-derivative", "derivative",
           "gelu′ of the tanh approximation used for approximate='none' (the exact, erf form)",
           "one backward kernel written for the common approximation and reused for both forms",
           replace_op("gelu", derivative=lambda m, x, out, approximate: GELU_DERIVATIVE(m, x, out, "tanh"))),
    Mutant("sigmoid-1e-9", "derivative", "sigmoid′ × (1 + 1e-9): a part-per-billion error",
           "an approximate kernel (a float32 or polynomial sigmoid) passed off as exact float64",
           replace_op("sigmoid", derivative=lambda m, x, out: (out * (1 - out) * (1 + 1e-9),))),
    Mutant("expm1-derivative-of-exp", "derivative", "expm1′ = expm1(x) instead of expm1(x) + 1",
           "exp's rule (the derivative is the output) copied to expm1",
           replace_op("expm1", derivative=lambda m, x, out: (out,))),
    Mutant("sqrt-missing-half", "derivative", "sqrt′ = 1/√x instead of 1/(2√x)",
           "the ½ of the power rule dropped",
           replace_op("sqrt", derivative=lambda m, x, out: (m.div(m.one, out),))),
    Mutant("cos-derivative-sign", "derivative", "cos′ = sin(x) instead of −sin(x)",
           "a sign slip in the trigonometric table",
           replace_op("cos", derivative=lambda m, x, out: (m.sin(x),))),
    Mutant("sub-second-input-sign", "derivative", "∂(a − b)/∂b = +1",
           "sub's backward copied from add's",
           replace_op("sub", derivative=lambda m, a, b, out: (m.one, m.one))),
    Mutant("div-denominator", "derivative", "∂(a/b)/∂b = −a/b instead of −a/b²",
           "one factor of b dropped from the quotient rule",
           replace_op("div", derivative=lambda m, a, b, out: (m.div(m.one, b), -out))),
]
