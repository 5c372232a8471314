"""The finite-difference checker, and every op's engine gradient judged by it.

First the checker itself (it must catch wrong derivatives, its extrapolation must have the orders
it claims, it must work in every number system), then the op table against it: in binary64, in
50-digit mpmath with a 1e-25 relative tolerance, and exactly in rationals where the op allows.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from fractions import Fraction
from typing import Any

import pytest
from torch_oracle import attr_cases, fmt, sample_points

from refimpl import FLOAT64, FRACTION, OPS, Value, apply, mpmath_system
from refimpl.gradcheck import check_gradient, forward_difference, numerical_gradient, richardson
from refimpl.numbers import NotRepresentable
from refimpl.ops import OpSpec

MP50 = mpmath_system(50)
CASES = [(spec, attrs) for spec in OPS.values() for attrs in attr_cases(spec)]
IDS = [f"{s.name}{'-' + '-'.join(f'{k}={v}' for k, v in a.items()) if a else ''}" for s, a in CASES]


def _op(spec: OpSpec, attrs: dict[str, Any]) -> Any:
    return lambda *xs: apply(spec, *xs, **attrs)


def _wrong(name: str, derivative: Any) -> OpSpec:
    """A copy of an op with a planted derivative (the table itself is untouched)."""
    return dataclasses.replace(OPS[name], derivative=derivative)


# --- the checker ----------------------------------------------------------------------------------
def test_catches_a_wrong_derivative() -> None:
    bad = _wrong("tanh", lambda m, x, out: (1 - out,))  # should be 1 - out²
    (miss,) = check_gradient(lambda x: apply(bad, x), [0.7])
    assert miss.index == 0
    assert miss.analytic == pytest.approx(1 - math.tanh(0.7), rel=1e-15)
    assert miss.numeric == pytest.approx(1 - math.tanh(0.7) ** 2, rel=1e-9)


def test_passes_a_right_derivative_of_a_composite() -> None:
    def f(x: Value, y: Value) -> Value:
        return (x * y).tanh() + x.exp() * y.sin() - (x / y).log1p()

    assert check_gradient(f, [0.3, 1.7]) == []
    assert check_gradient(f, [0.3, 1.7], system=MP50, rtol=1e-25, atol=0, h=1e-6) == []


@pytest.mark.parametrize(("system", "rel", "rtol", "h"), [(FLOAT64, 1e-6, 1e-7, None),
                                                         (MP50, 1e-20, 1e-25, 1e-6)],
                         ids=["float64", "mpmath50"])
def test_catches_a_small_relative_error(system: Any, rel: float, rtol: float, h: Any) -> None:
    """A derivative off by ``rel`` relative is caught at the system's tolerance."""
    bad = _wrong("sin", lambda m, x, out: (m.cos(x) * (1 + m.convert(rel)),))
    misses = check_gradient(lambda x: apply(bad, x), [1.1], system=system, rtol=rtol, atol=0, h=h)
    assert [m.index for m in misses] == [0]
    assert check_gradient(lambda x: x.sin(), [1.1], system=system, rtol=rtol, atol=0, h=h) == []


def test_reports_each_wrong_partial_of_a_binary_op() -> None:
    bad = _wrong("mul", lambda m, a, b, out: (b, b))  # ∂/∂b should be a
    misses = check_gradient(lambda a, b: apply(bad, a, b), [2.0, 3.0])
    assert [m.index for m in misses] == [1]
    assert (misses[0].analytic, misses[0].numeric) == (3.0, pytest.approx(2.0, rel=1e-12))


def test_unused_input_counts_as_zero() -> None:
    assert check_gradient(lambda x, y: x * x, [1.5, -4.0]) == []


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_richardson_error_has_order_h_to_the_2_levels(levels: int) -> None:
    """Central differences extrapolated ``levels - 1`` times leave an error of order h^(2·levels):
    halving h divides it by 4^levels. In mpmath, so rounding does not blur the ratio."""
    x, exact = MP50.convert(0.6), MP50.cos(MP50.convert(0.6))

    def err(h: float) -> Any:
        return abs(richardson(lambda v: v.sin(), [x], 0, system=MP50, h=h, levels=levels).value - exact)

    ratio = err(0.2) / err(0.1)
    assert 0.8 * 4**levels < ratio < 1.25 * 4**levels, (levels, ratio)


def test_richardson_error_estimate_shrinks_and_bounds_the_error() -> None:
    x = MP50.convert(0.6)
    exact = MP50.cos(x)
    estimates = [richardson(lambda v: v.sin(), [x], 0, system=MP50, h=0.25, levels=k) for k in range(2, 7)]
    errors = [e.error for e in estimates]
    assert all(b < a / 100 for a, b in itertools.pairwise(errors)), errors
    for e in estimates:
        assert abs(e.value - exact) <= e.error  # the spread is an honest (pessimistic) estimate
    assert abs(estimates[-1].value - exact) < 1e-20


def test_richardson_in_float64_is_far_better_than_one_central_difference() -> None:
    one = richardson(lambda v: v.exp(), [0.5], 0, levels=1)
    five = richardson(lambda v: v.exp(), [0.5], 0, levels=5)
    assert abs(one.value - math.exp(0.5)) > 1e-4
    assert abs(five.value - math.exp(0.5)) < 1e-13 and five.error < 1e-12


def test_numerical_gradient_in_mpmath_to_40_digits() -> None:
    x, y = MP50.convert(0.75), MP50.convert(-1.25)
    ests = numerical_gradient(lambda a, b: a * b.exp() + (a * b).sin(), [x, y], system=MP50, h=1e-8)
    want = (MP50.exp(y) + y * MP50.cos(x * y), x * MP50.exp(y) + x * MP50.cos(x * y))
    for e, w in zip(ests, want):
        assert abs(e.value - w) < 1e-40 and e.error < 1e-35


def test_richardson_is_exact_on_a_cubic_in_rationals() -> None:
    """One extrapolation removes the h² term, the only error term of a cubic: exactly 3x²."""
    est = richardson(lambda v: v * v * v, [Fraction(2)], 0, system=FRACTION, levels=2)
    assert est.value == 12 and isinstance(est.value, Fraction)


def test_default_step_stays_inside_log_domain_near_zero() -> None:
    """h defaults to |x|/8, so x - h stays positive for log at a small x (and 1/8 at x = 0)."""
    x = 1e-3
    est = richardson(lambda v: v.log(), [x], 0)
    assert est.value == pytest.approx(1 / x, rel=1e-9)
    assert richardson(lambda v: v.exp(), [0.0], 0).value == pytest.approx(1.0, rel=1e-12)


def test_forward_difference_is_first_order() -> None:
    """(f(x+h) - f(x))/h = f'(x) + h·f''(x)/2 + …: halving h halves the error."""

    def f(x: float) -> float:
        return x**3

    errs = [forward_difference(f, 2.0, h) - 12.0 for h in (1e-2, 5e-3, 2.5e-3)]
    assert errs[0] == pytest.approx(6e-2 + 1e-4, rel=1e-6)  # 6h + h² exactly for x³ at 2
    assert all(1.9 < a / b < 2.1 for a, b in itertools.pairwise(errs))
    assert abs(forward_difference(math.sin, 1.0) - math.cos(1.0)) < 1e-6


# --- every op against finite differences ----------------------------------------------------------
def _points(spec: OpSpec, attrs: dict[str, Any], n: int, tag: str) -> list[tuple[float, ...]]:
    """Points whose Richardson stencil (x ± |x|/8) stays inside the domain and clear of kinks."""
    return sample_points(spec, attrs, random.Random(repr((tag, spec.name, attrs))), n, margin=1 / 8)


@pytest.mark.parametrize(("spec", "attrs"), CASES, ids=IDS)
def test_op_gradient_agrees_with_finite_differences_float64(spec: OpSpec, attrs: dict[str, Any]) -> None:
    f = _op(spec, attrs)
    for p in _points(spec, attrs, 12, "fd64"):
        misses = check_gradient(f, p)
        assert not misses, f"{fmt(spec, attrs, p)}: {misses}"
        for i, est in enumerate(numerical_gradient(f, p)):  # and the check was not vacuous
            assert est.error <= 1e-6 * abs(est.value) + 1e-9, f"{fmt(spec, attrs, p)}: ∂{i} {est}"


@pytest.mark.parametrize(("spec", "attrs"), CASES, ids=IDS)
def test_op_gradient_agrees_with_finite_differences_mpmath50(spec: OpSpec, attrs: dict[str, Any]) -> None:
    """At 50 digits, steps of 1e-6 relative and 5 levels: truncation ~1e-60, rounding ~1e-44."""
    f = _op(spec, attrs)
    for p in _points(spec, attrs, 4, "fd-mp"):
        h = 1e-6 * min([abs(x) for x in p if x != 0] or [1.0])
        misses = check_gradient(f, p, system=MP50, rtol=1e-25, atol=1e-40, h=h)
        assert not misses, f"{fmt(spec, attrs, p)}: {misses}"
        for i, est in enumerate(numerical_gradient(f, p, system=MP50, h=h)):
            assert est.error <= 1e-30 * (1 + abs(est.value)), f"{fmt(spec, attrs, p)}: ∂{i} {est}"


def _rational(spec: OpSpec, attrs: dict[str, Any]) -> bool:
    """Whether the op and its derivative have exact rational values at a positive probe point."""
    leaves = [Value(Fraction(3, 2) + i, system=FRACTION) for i in range(spec.arity)]
    try:
        check_gradient(_op(spec, attrs), [x.data for x in leaves], system=FRACTION)
    except NotRepresentable:
        return False
    return True


RATIONAL = [(s, a) for s, a in CASES if _rational(s, a)]
IRRATIONAL = [(s, a) for s, a in CASES if (s, a) not in RATIONAL]


@pytest.mark.parametrize(("spec", "attrs"), RATIONAL,
                         ids=[IDS[CASES.index(c)] for c in RATIONAL])
def test_op_gradient_agrees_with_finite_differences_exactly_in_rationals(spec: OpSpec,
                                                                         attrs: dict[str, Any]) -> None:
    """In Fraction the engine's gradient is exact; Richardson is exact for polynomials of degree
    < 2·levels and within 1e-12 for the rational functions (div, reciprocal, negative powers)."""
    f = _op(spec, attrs)
    checked = 0
    for p in _points(spec, attrs, 8, "fd-q"):
        q = [Fraction(x) for x in p]
        try:
            misses = check_gradient(f, q, system=FRACTION, rtol=Fraction(1, 10**12), atol=0)
        except NotRepresentable:  # elu, softplus: rational on the linear side only
            continue
        assert not misses, f"{fmt(spec, attrs, p)}: {misses}"
        checked += 1
    assert checked, f"{spec.name}: none of 8 points was rational"


def test_irrational_ops_say_so() -> None:
    """Ops without rational values raise NotRepresentable in Fraction, not some other error."""
    assert {s.name for s, _ in IRRATIONAL} >= {"exp", "log", "sin", "tanh", "sigmoid", "erf", "gelu",
                                               "softplus", "silu", "sqrt", "pow"}
    assert {s.name for s, _ in RATIONAL} >= {"neg", "add", "sub", "mul", "div", "square", "reciprocal",
                                             "abs", "relu", "clamp", "maximum", "minimum", "pow_int"}
    for spec, attrs in IRRATIONAL:
        with pytest.raises(NotRepresentable):
            check_gradient(_op(spec, attrs), [Fraction(3, 2) + i for i in range(spec.arity)],
                           system=FRACTION)
