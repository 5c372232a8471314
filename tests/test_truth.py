"""The finite-difference truth (conformance.oracle.run.truth_gradient) at the edges of binary64: it is the
arbiter wherever an implementation and torch disagree, so it must hold where the leaves are tiny."""

from __future__ import annotations

import math

import pytest

from conformance.case.graph import GraphCase, Node, Tensor
from conformance.case.strategies import with_id
from conformance.oracle.run import truth_gradient


def _unary(op: str, x: float, ct: float = 0.75) -> GraphCase:
    return with_id(GraphCase({"x": Tensor.scalar(x)}, (Node("n0", op, ("x",)),), "n0", Tensor.scalar(ct)))


@pytest.mark.parametrize(("op", "x", "want"), [
    ("abs", -5e-324, -0.75),  # the smallest subnormal: a step of |x|·1e-6 underflows binary64
    ("abs", 1e-40, 0.75),
    ("log", 2e-308, 0.75 / 2e-308),  # the step stays inside log's domain (x > 0)
    ("log", 1e-300, 0.75 / 1e-300),
    ("sqrt", 1e-300, 0.75 / (2 * math.sqrt(1e-300))),
])
def test_the_truth_steps_inside_a_tiny_leaf(op, x, want):
    value, error = truth_gradient(_unary(op, x), "x", 0)
    assert math.isfinite(value) and math.isfinite(error), (value, error)
    assert abs(value - want) <= 1e-12 * abs(want), (op, x, value, want)
    assert error <= 1e-12 * abs(want), (op, x, error)
