"""Second (and third) derivatives: refimpl's create_graph gradients against torch's double backward.

For every op the first-order gradient is built as a graph (``grad(..., create_graph=True)``) and
differentiated again along a random direction v: for unary ops that is ct·f''(x)·v, for binary ops
the Hessian-vector product ct·H·v (both mixed partials). torch does the same with
``create_graph=True``; where torch's first gradient has no graph (a piecewise-constant derivative:
relu, abs, clamp, …) its second derivative is materialised as zero.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import torch
from torch_oracle import (
    EPS64,
    assert_close,
    attr_cases,
    fmt,
    full_attrs,
    random_cotangent,
    ref_hvp,
    sample_points,
    scale,
    torch_hvp,
)

from refimpl import OPS, Value, grad
from refimpl.ops import OpSpec

K2 = 16  # second order: |ref - torch| <= 16·eps64·(|torch| + |ct|·|v|·scale)
CASES = [(spec, attrs) for spec in OPS.values() for attrs in attr_cases(spec)]
IDS = [f"{s.name}{'-' + '-'.join(f'{k}={v}' for k, v in a.items()) if a else ''}" for s, a in CASES]


def _direction(rng: random.Random, n: int) -> tuple[float, ...]:
    return tuple(rng.choice((-1.0, 1.0)) * rng.uniform(0.5, 2.0) for _ in range(n))


def _hessian_scale(spec: OpSpec, p: tuple[float, ...], attrs: dict[str, Any], ct: float,
                   v: tuple[float, ...]) -> float:
    return abs(ct) * max(abs(w) for w in v) * scale(spec).hvp(p, attrs)


@pytest.mark.parametrize(("spec", "attrs"), CASES, ids=IDS)
def test_hessian_vector_product_matches_torch(spec: OpSpec, attrs: dict[str, Any]) -> None:
    rng = random.Random(repr(("hvp", spec.name, attrs)))
    points = sample_points(spec, attrs, rng, 24)
    cts = [random_cotangent(rng) for _ in points]
    vs = [_direction(rng, spec.arity) for _ in points]
    want = torch_hvp(spec, attrs, points, cts, vs)
    fa = full_attrs(spec, attrs)
    for p, ct, v, tw in zip(points, cts, vs, want):
        got = ref_hvp(spec, attrs, p, ct, v)
        where = f"{fmt(spec, attrs, p)} (cotangent {ct!r}, v {v!r})"
        for i, (r, t) in enumerate(zip(got, tw)):
            assert_close(f"(H·v)[{i}]", r, t, _hessian_scale(spec, p, fa, ct, v), K2, EPS64, where)


@pytest.mark.parametrize("name", ["tanh", "sin", "exp", "sigmoid", "log", "erf"])
def test_third_derivative_matches_torch(name: str) -> None:
    spec = OPS[name]
    rng = random.Random(repr(("third", name)))
    points = sample_points(spec, {}, rng, 12)
    cts = [random_cotangent(rng) for _ in points]
    vs = [_direction(rng, 1) for _ in points]
    want = torch_hvp(spec, {}, points, cts, vs, order=3)
    for p, ct, v, (t,) in zip(points, cts, vs, want):
        (r,) = ref_hvp(spec, {}, p, ct, v, order=3)
        # third derivatives of tanh/sigmoid are polynomials in out with alternating signs
        assert_close("f'''·v", r, t, abs(ct * v[0]) * 8, K2, EPS64, f"{fmt(spec, {}, p)} ct {ct} v {v}")


def test_third_derivative_of_tanh_has_the_closed_form() -> None:
    """tanh''' = -2(1 - t²)(1 - 3t²): an independent check on both engines."""
    x = 0.4
    t = math.tanh(x)
    want = -2 * (1 - t * t) * (1 - 3 * t * t)
    (r,) = ref_hvp(OPS["tanh"], {}, (x,), 1.0, (1.0,), order=3)
    assert r == pytest.approx(want, rel=1e-14)


def _composite(lib: Any, x: Any, y: Any) -> Any:
    return lib.tanh(x * y) + lib.exp(x) * lib.sin(y)


class _RefLib:
    tanh = staticmethod(lambda v: v.tanh())
    exp = staticmethod(lambda v: v.exp())
    sin = staticmethod(lambda v: v.sin())


def test_composite_hessian_vector_product_matches_torch() -> None:
    """tanh(x·y) + exp(x)·sin(y): fan-out of x and y, mixed partials through a product."""
    rng = random.Random("composite")
    for _ in range(20):
        px, py = rng.uniform(-2, 2), rng.uniform(-2, 2)
        v = _direction(rng, 2)
        x, y = Value(px), Value(py)
        gx, gy = grad(_composite(_RefLib, x, y), (x, y), create_graph=True)
        hx, hy = grad(gx * v[0] + gy * v[1], (x, y))
        tx = torch.tensor(px, dtype=torch.float64, requires_grad=True)
        ty = torch.tensor(py, dtype=torch.float64, requires_grad=True)
        tgx, tgy = torch.autograd.grad(_composite(torch, tx, ty), (tx, ty), create_graph=True)
        thx, thy = torch.autograd.grad(tgx * v[0] + tgy * v[1], (tx, ty))
        # the entries sum terms of size up to ~e²·4 with opposite signs: scale 32
        for what, r, t in (("(H·v)x", hx, thx.item()), ("(H·v)y", hy, thy.item())):
            assert_close(what, r, t, 32.0, K2, EPS64, f"composite at x={px!r}, y={py!r}, v={v!r}")


def test_composite_hessian_is_symmetric_and_matches_torch_columnwise() -> None:
    px, py = 0.8, -1.1
    x, y = Value(px), Value(py)
    gx, gy = grad(_composite(_RefLib, x, y), (x, y), create_graph=True)
    hxx, hxy = grad(gx, (x, y))
    hyx, hyy = grad(gy, (x, y))
    assert hxy == pytest.approx(hyx, rel=1e-14)
    t = torch.tensor([px, py], dtype=torch.float64)
    th = torch.autograd.functional.hessian(lambda z: _composite(torch, z[0], z[1]), t)
    got = [[hxx, hxy], [hyx, hyy]]
    for i in range(2):
        for j in range(2):
            assert got[i][j] == pytest.approx(th[i, j].item(), rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("name", [s.name for s in OPS.values()
                                  if s.name in ("relu", "abs", "clamp", "leaky_relu", "maximum",
                                                "minimum", "neg", "add", "sub")])
def test_piecewise_constant_derivative_has_zero_second_derivative(name: str) -> None:
    """refimpl's first gradient of these ops does not depend on x; torch's has no graph at all."""
    spec = OPS[name]
    attrs = {"min": -1.0, "max": 1.0} if name == "clamp" else {}
    for p in sample_points(spec, attrs, random.Random(name), 6):
        assert ref_hvp(spec, attrs, p, 1.3, (1.0,) * spec.arity) == (0.0,) * spec.arity
