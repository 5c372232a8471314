"""Graph mechanics of the scalar engine: fan-out, ordering, accumulation, cotangents, number systems."""

import math
from fractions import Fraction

import pytest
import torch

from refimpl import FLOAT32, FLOAT64, FRACTION, Value, grad, mpmath_system, topological_order, zero_grad
from refimpl.numbers import NotRepresentable, round_to_float32, system

torch.set_default_dtype(torch.float64)


def test_same_leaf_twice_in_one_op():
    x = Value(3.0)
    (x * x).backward()
    assert x.grad == 6.0


def test_fan_out_and_paths_of_different_lengths_match_torch():
    def f(lib_tanh, x, y):
        a = x * y  # used three times below, reached by paths of length 1, 2 and 3
        b = lib_tanh(a) + a
        c = b * a - lib_tanh(lib_tanh(a))
        return c * x + a

    xs, ys = 0.7, -1.3
    x, y = Value(xs), Value(ys)
    f(lambda v: v.tanh(), x, y).backward()
    tx, ty = torch.tensor(xs, requires_grad=True), torch.tensor(ys, requires_grad=True)
    gx, gy = torch.autograd.grad(f(torch.tanh, tx, ty), (tx, ty))
    assert x.grad == pytest.approx(gx.item(), rel=1e-14)
    assert y.grad == pytest.approx(gy.item(), rel=1e-14)


def test_topological_order_puts_parents_first_and_skips_constants():
    x = Value(1.0)
    a = x + 2.0
    b = a * x
    c = b + a
    order = topological_order([c])
    pos = {id(n): i for i, n in enumerate(order)}
    for node in order:
        for p in node.parents:
            if p.requires_grad:
                assert pos[id(p)] < pos[id(node)]
    assert len(order) == 4  # x, a, b, c: the constant 2.0 needs no gradient


@pytest.mark.slow
def test_million_node_chain_backprops_without_recursion_error():
    x = Value(1.0)
    z = x
    for _ in range(10**6):
        z = z + 1.0
    z.backward()
    assert x.grad == 1.0
    assert z.data == 1.0 + 10**6


def test_backward_twice_accumulates_like_torch_retain_graph():
    x = Value(2.0)
    y = x * x * x
    y.backward()
    y.backward()
    t = torch.tensor(2.0, requires_grad=True)
    ty = t * t * t
    ty.backward(retain_graph=True)
    ty.backward()
    assert x.grad == t.grad.item() == 24.0


def test_zero_grad_between_steps():
    x = Value(2.0)
    (x * 3.0).backward()
    zero_grad([x])
    (x * 5.0).backward()
    assert x.grad == 5.0


def test_cotangent_scales_the_gradient():
    x = Value(0.3)
    y = x.exp()
    y.backward(-2.5)
    assert x.grad == -2.5 * math.exp(0.3)


def test_inner_nodes_keep_no_grad_unless_retained():
    x = Value(1.5)
    a = x * 2.0
    b = (a + 1.0).retain_grad()
    (b * b).backward()
    assert a.grad is None
    assert b.grad == 2 * b.data


def test_grad_function_leaves_dot_grad_alone_and_reports_unused_inputs():
    x, y = Value(1.0), Value(2.0)
    out = x * 4.0
    assert grad(out, [x]) == (4.0,)
    assert x.grad == 0.0
    with pytest.raises(ValueError, match="not reachable"):
        grad(out, [x, y])
    assert grad(out, [x, y], allow_unused=True) == (4.0, None)


def test_several_roots_with_cotangents():
    x = Value(2.0)
    a, b = x * x, x.sin()
    (g,) = grad([a, b], [x], [3.0, -1.0])
    assert g == pytest.approx(3.0 * 4.0 - math.cos(2.0), rel=1e-15)


def test_hessian_vector_product_through_create_graph():
    x, y = Value(0.4), Value(-0.9)
    f = x * x * y + y.exp() * x
    gx, gy = grad(f, [x, y], create_graph=True)
    v = (0.3, -1.7)
    hv = grad(gx * v[0] + gy * v[1], [x, y])
    # Hessian by hand: f_xx = 2y, f_xy = 2x + e^y, f_yy = e^y x
    fxx, fxy, fyy = 2 * -0.9, 2 * 0.4 + math.exp(-0.9), math.exp(-0.9) * 0.4
    assert hv[0] == pytest.approx(fxx * v[0] + fxy * v[1], rel=1e-14)
    assert hv[1] == pytest.approx(fxy * v[0] + fyy * v[1], rel=1e-14)


def test_backward_with_create_graph_leaves_a_differentiable_grad():
    x = Value(1.2)
    (x**3).backward(create_graph=True)
    assert isinstance(x.grad, Value) and x.grad.data == pytest.approx(3 * 1.2**2, rel=1e-15)
    (g2,) = grad(x.grad, x)
    assert g2 == pytest.approx(6 * 1.2, rel=1e-15)


def test_float32_emulation_rounds_every_result_like_torch_float32():
    vals = [0.1, 0.7, -2.3]
    a, b, c = (Value(v, system=FLOAT32) for v in vals)
    out = (a * b + c) / (a - c)
    out.backward()
    ta, tb, tc = (torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in vals)
    tout = (ta * tb + tc) / (ta - tc)
    tout.backward()
    assert out.data == tout.item()  # + - * / are correctly rounded: bit-identical
    for v, t in zip((a, b, c), (ta, tb, tc)):
        assert v.grad == pytest.approx(t.grad.item(), rel=4 * 2**-24)
        assert round_to_float32(v.grad) == v.grad


def test_mpmath_system_gives_many_correct_digits():
    mp = mpmath_system(60)
    x = Value(1, system=mp)
    y = x.exp()
    y.backward()
    assert abs(x.grad - mp.ctx.e) < mp.ctx.mpf(10) ** -55


def test_fraction_system_is_exact():
    x = Value(Fraction(1, 3), system=FRACTION)
    y = (x * x + 1) / (x - 2)
    y.backward()
    # f'(x) = (x² − 4x − 1)/(x − 2)²; at x = 1/3 that is (−20/9)/(25/9)
    assert y.data == Fraction(-2, 3)
    assert x.grad == Fraction(-4, 5)


def test_fraction_system_refuses_transcendental_ops():
    x = Value(1, system=FRACTION)
    with pytest.raises(NotRepresentable, match="mpmath"):
        x.exp()


def test_same_graph_runs_in_every_system():
    def f(x, y):
        return (x * y - y / x) ** 2 + x.relu()

    results = []
    for s in (FLOAT64, FLOAT32, mpmath_system(30), FRACTION):
        x, y = Value(Fraction(3, 4), system=s), Value(Fraction(-5, 2), system=s)
        f(x, y).backward()
        results.append((float(x.grad), float(y.grad)))
    exact = results[-1]
    for got in results[:-1]:
        assert got == pytest.approx(exact, rel=1e-6)


def test_mixing_number_systems_is_an_error():
    with pytest.raises(TypeError, match="cannot mix"):
        Value(1.0) + Value(1.0, system=FLOAT32)


def test_float_system_follows_ieee_not_python():
    x = Value(1000.0)
    assert x.exp().data == math.inf
    assert Value(0.0).log().data == -math.inf
    assert (Value(1.0) / 0.0).data == math.inf
    assert math.isnan(Value(-1.0).log().data)
    assert Value(0.0).sqrt().data == 0.0


def test_unknown_attribute_and_system_names_are_clear_errors():
    with pytest.raises(TypeError, match="unknown attribute"):
        Value(1.0).leaky_relu(slope=0.2)
    with pytest.raises(ValueError, match="unknown number system 'float8': use float64, float32, float16, bfloat16"):
        system("float8")
    assert system("mpmath40").dps == 40 and system("float16").name == "float16"


def test_a_vjp_divides_where_a_reciprocal_partial_would_overflow():
    """log′ and div′ divide the cotangent, as torch does: 1/x overflows for a subnormal x where g/x
    is finite. Each result is the correctly rounded quotient, in backward and in create_graph."""
    x, ct = 1e-310, 1e-3
    assert 1.0 / x == math.inf  # what g·(1/x) would have hit
    for create_graph in (False, True):
        v = Value(x)
        v.log().backward(ct, create_graph=create_graph)
        assert float(getattr(v.grad, "data", v.grad)) == ct / x
        a, b = Value(1e-320), Value(x)
        (a / b).backward(ct, create_graph=create_graph)
        assert float(getattr(a.grad, "data", a.grad)) == ct / x
        assert float(getattr(b.grad, "data", b.grad)) == ct * -((1e-320 / x) / x)
    f = Value(x, system=FLOAT32)  # float32 emulation: x is 0 there, log(0) = -inf, its vjp ct/0 = inf
    f.log().backward(ct)
    assert f.grad == math.inf


@pytest.mark.parametrize("name", ["log", "div"])
def test_a_vjp_is_the_cotangent_times_the_declared_derivative(name):
    from refimpl import OPS

    spec, m = OPS[name], mpmath_system(60)
    args = [m.convert(v) for v in (0.37, -2.5)[:spec.arity]]
    out = spec.forward(m, *args)
    g = m.convert(-1.75)
    for got, d in zip(spec.vjp(m, g, *args, out), spec.derivative(m, *args, out), strict=True):
        assert abs(got - g * d) <= 1e-55 * abs(g * d)
