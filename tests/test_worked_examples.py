"""The worked examples of the chain-rule tutorials refimpl comes from, with their published numbers.

The expected values are the tutorials' own (computed by hand there), not copied from refimpl.
"""

import math

import pytest

from refimpl import Value, grad
from refimpl.gradcheck import forward_difference


def f(x):
    return 2 * x**2 - 3 * x + 4


@pytest.mark.parametrize("x, slope", [(2.0, 5.0), (6.0, 21.0), (-2.0, -11.0), (0.75, 0.0)])
def test_quadratic_slope(x, slope):
    v = Value(x)
    f(v).backward()
    assert v.grad == slope


def test_quadratic_one_sided_difference():
    assert forward_difference(f, 2.0, h=1e-6) == pytest.approx(5.000002, abs=1e-6)


def test_d_equals_ab_plus_c():
    a, b, c = Value(3.0), Value(-2.0), Value(8.0)
    d = a * b + c
    d.backward()
    assert d.data == 2.0
    assert (a.grad, b.grad, c.grad) == (-2.0, 3.0, 1.0)


def test_L_equals_e_plus_c_times_f():
    a, b, c, f_ = Value(3.0), Value(-2.0), Value(8.0), Value(-2.0)
    e = (a * b).retain_grad()
    d = (e + c).retain_grad()
    L = d * f_
    L.backward()
    assert L.data == -4.0
    assert (d.grad, f_.grad, e.grad, c.grad, a.grad, b.grad) == (-2.0, 2.0, -2.0, -2.0, 4.0, -6.0)


def test_two_layer_sigmoid_network_one_sgd_step():
    x, y, lr = 0.5, 1.0, 0.1
    W1, b1, W2, b2 = (Value(v) for v in (0.4, 0.3, 0.7, 0.2))
    a1 = (W1 * x + b1).sigmoid()
    a2 = (W2 * a1 + b2).sigmoid()
    loss = 0.5 * (y - a2) ** 2
    loss.backward()
    expected = {"a2": 0.6537856677259561, "loss": 0.05993218193598102}
    stepped = [p.data - lr * p.grad for p in (W1, b1, W2, b2)]
    after = [0.4006445672678901, 0.3012891345357802, 0.7048779400938787, 0.20783656031705777]
    ulp = math.ulp
    assert abs(a2.data - expected["a2"]) <= 4 * ulp(expected["a2"])
    assert abs(loss.data - expected["loss"]) <= 4 * ulp(expected["loss"])
    for got, want in zip(stepped, after):
        assert abs(got - want) <= 4 * ulp(want), (got, want)


@pytest.mark.parametrize("x, value, slope", [(1.0, 0.7311, None), (0.0, None, 0.25),
                                             (1.0, None, 0.1966), (3.0, None, 0.045)])
def test_sigmoid_facts(x, value, slope):
    v = Value(x)
    s = v.sigmoid()
    (ds,) = grad(s, v)
    if value is not None:
        assert s.data == pytest.approx(value, abs=5e-5)
    if slope is not None:
        assert ds == pytest.approx(slope, abs=5e-4)
    if x == 0.0:
        assert ds == 0.25  # exactly: σ(0) = ½ and σ' = σ(1 − σ)
