"""refimpl.tensor against torch 2.13 (float64): every tensor op, value and gradient.

Inputs come from a seeded generator, shapes are non-square, cotangents random and non-unit. The
tolerance is :func:`helpers_tensor.assert_close`'s: 64 ulps of an honest scale (Σ|terms| for sums
of products, via :func:`helpers_tensor.magnitudes`; explicit term magnitudes for the softmax
family; bit-for-bit for structural ops, which only move values).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Callable

import pytest
import torch
from helpers_tensor import assert_close, check, magnitudes, pair, resolve_torch

from refimpl import FRACTION, Value
from refimpl.ops import OPS, UNARY, OpSpec
from refimpl.tensor import Tensor, broadcast_shapes, grad, matmul, tensor


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(20240613)


def uniform(gen: torch.Generator, shape: tuple[int, ...], lo: float = -2.0, hi: float = 2.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen)


def exact(inputs: list[torch.Tensor], ct: torch.Tensor) -> tuple[int, list[int]]:
    """Scales for ops that only move values: the value bit for bit; gradients too (no sums)."""
    return 0, [0] * len(inputs)


# --- construction and bookkeeping ------------------------------------------------------------------

def test_construction_shape_and_tolist():
    t = tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert t.shape == (2, 3) and t.ndim == 2 and t.numel() == 6
    assert t.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert [v.data for v in t.elements] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert all(v.is_leaf and v.requires_grad for v in t.elements)
    flat = Tensor.from_flat([1, 2, 3, 4, 5, 6], (3, 2), requires_grad=False)
    assert flat.tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]] and not flat.requires_grad
    assert tensor(2.5).shape == () and tensor(2.5).item() == 2.5 and tensor(2.5).tolist() == 2.5
    assert tensor([]).shape == (0,)
    with pytest.raises(ValueError, match="ragged"):
        tensor([[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match="do not fill"):
        Tensor.from_flat([1.0, 2.0, 3.0], (2, 2))


def test_grad_backward_accumulates_and_zero_grad():
    x = tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])
    assert x.grad.tolist() == [[0.0] * 3] * 2  # refimpl leaves start at 0 (torch: None)
    ct = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    (x * x).backward(ct)
    (x * x).backward(ct)
    tx = torch.tensor(x.tolist(), requires_grad=True)
    (tx * tx).backward(torch.tensor(ct))
    (tx * tx).backward(torch.tensor(ct))
    assert x.grad.tolist() == tx.grad.tolist()
    x.zero_grad()
    assert x.grad.tolist() == [[0.0] * 3] * 2
    with pytest.raises(RuntimeError, match="cotangent is needed"):
        (x * x).backward()
    x.sum().backward()  # a one-element output needs no cotangent
    assert x.grad.tolist() == [[1.0] * 3] * 2


def test_grad_function_inner_inputs_unused_and_create_graph():
    x = tensor([1.0, 2.0, 3.0])
    y = x.tanh()
    z = (y * y).sum()
    (gy,) = grad(z, y)  # y is an inner tensor
    assert gy.tolist() == [2 * v for v in y.tolist()]
    assert all(v.grad is None for v in y.elements)  # nothing retained on the inner tensor
    other = tensor([1.0])
    with pytest.raises(ValueError, match="not reachable"):
        grad(z, [x, other])
    gx, none = grad(z, [x, other], allow_unused=True)
    assert none is None and gx.shape == (3,)
    (g2,) = grad(z, x, create_graph=True)
    assert all(isinstance(v, Value) and v.requires_grad for v in g2.elements)
    (partial,) = grad(tensor([1.0, 2.0]).sum() + x[0], x)
    assert partial.tolist() == [1.0, 0.0, 0.0]  # unreached elements of a reached input get 0


def test_number_system_is_carried_through():
    a = tensor([[1, 2], [3, 4]], system=FRACTION)
    b = tensor([Fraction(1, 3), Fraction(1, 7)], system=FRACTION)
    y = (a @ b).sum() / 3
    y.backward()
    assert y.item() == (Fraction(1, 3) + Fraction(2, 7) + 1 + Fraction(4, 7)) / 3  # exactly
    assert a.grad.tolist() == [[Fraction(1, 9), Fraction(1, 21)]] * 2


# --- elementwise ops and broadcasting --------------------------------------------------------------

BROADCAST = [((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((4,), (2, 3, 4)), ((2, 1, 4), (3, 1)),
             ((), (2, 3)), ((3, 5), (3, 5))]
BINARY_TORCH = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
                "pow": torch.pow, "maximum": torch.maximum, "minimum": torch.minimum}


def broadcast_scales(op: Callable) -> Callable:
    """Σ|terms| of each broadcast input's gradient: |cotangent·∂op| per position, summed back."""
    def scales(inputs: list[torch.Tensor], ct: torch.Tensor) -> tuple[Any, list[Any]]:
        shape = torch.broadcast_shapes(*(x.shape for x in inputs))
        wide = [x.detach().expand(shape).clone().requires_grad_() for x in inputs]
        parts = torch.autograd.grad(op(*wide), wide, ct)
        return None, [p.abs().sum_to_size(x.shape) for p, x in zip(parts, inputs)]
    return scales


@pytest.mark.parametrize("name", sorted(BINARY_TORCH))
@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
def test_binary_op_broadcasting(name, shapes, gen):
    a = uniform(gen, shapes[0], 0.25, 2.0) if name == "pow" else uniform(gen, shapes[0])
    b = uniform(gen, shapes[1])
    op = BINARY_TORCH[name]
    check(name, lambda x, y: x.apply(name, y), op, [a, b], gen, scales=broadcast_scales(op))
    check(f"{name} method", lambda x, y: getattr(x, name)(y), op, [a, b], gen,
          scales=broadcast_scales(op))


def test_broadcast_shapes_rules():
    assert broadcast_shapes((3, 1), (1, 4)) == (3, 4)
    assert broadcast_shapes((2, 3, 4), (4,)) == (2, 3, 4)
    assert broadcast_shapes((), (2, 0)) == (2, 0)
    assert broadcast_shapes((5, 1, 4), (3, 1)) == torch.broadcast_shapes((5, 1, 4), (3, 1))
    with pytest.raises(ValueError, match="cannot be broadcast"):
        broadcast_shapes((3, 2), (3,))


OPERATORS = [
    ("x + y", lambda x, y: x + y), ("x - y", lambda x, y: x - y), ("x * y", lambda x, y: x * y),
    ("x / y", lambda x, y: x / y), ("-x", lambda x, y: -x + y), ("2.5 - x", lambda x, y: 2.5 - x * y),
    ("3 / x", lambda x, y: 3 / x + y), ("x ** 2", lambda x, y: x ** 2 * y),
    ("x ** 3", lambda x, y: x ** 3 + y), ("x ** 0.5", lambda x, y: x ** 0.5 * y),
    ("x ** y", lambda x, y: x ** y), ("2 ** x", lambda x, y: 2 ** x * y),
    ("x.pow(2)", lambda x, y: x.pow(2) - y),
]


@pytest.mark.parametrize("name, f", OPERATORS, ids=[n for n, _ in OPERATORS])
def test_python_operators_and_scalars(name, f, gen):
    """Operators mix tensors and Python numbers; ints go to pow_int, floats to pow_scalar."""
    x, y = uniform(gen, (3, 4), 0.5, 2.0), uniform(gen, (4,))
    check(name, f, f, [x, y], gen, scales=broadcast_scales(f))


UNARY_CASES = [(s, {}) for s in UNARY if s.name != "clamp"] + [  # clamp() with neither bound: torch refuses
    (OPS["leaky_relu"], {"negative_slope": 0.2}), (OPS["elu"], {"alpha": 0.7}),
    (OPS["softplus"], {"beta": 2.0, "threshold": 3.0}), (OPS["gelu"], {"approximate": "tanh"}),
    (OPS["clamp"], {"min": -0.5, "max": 0.75}), (OPS["pow_int"], {"exponent": 3}),
    (OPS["pow_scalar"], {"exponent": 1.5})]


def unary_inputs(spec: OpSpec, gen: torch.Generator) -> torch.Tensor:
    """Points inside the op's domain, at least 0.1 away from 0 (where the kinks are)."""
    lo = max(spec.domain[0].lo, -2.0)
    x = uniform(gen, (3, 5), lo + 0.1, 2.0)
    return torch.where(x.abs() < 0.1, x + 0.3, x)


@pytest.mark.parametrize("spec, attrs", UNARY_CASES,
                         ids=[f"{s.name}{a or ''}" for s, a in UNARY_CASES])
def test_every_unary_op_is_a_method(spec, attrs, gen):
    """Each table op becomes a Tensor method: elementwise, bit-for-bit the scalar engine's op, and
    within a few ulps of torch (the scalar op's own conformance is tests/test_ops_vs_torch.py's)."""
    x = unary_inputs(spec, gen)
    ref, _ = pair(x)
    out = getattr(ref, spec.name)(**attrs)
    ct = torch.rand(x.shape, generator=gen) + 0.5
    (g,) = grad(out, ref, ct.tolist())
    for i, xi in enumerate(x.flatten().tolist()):  # the routing: element i is the scalar op on x[i]
        v = Value(xi)
        y = getattr(v, spec.name)(**attrs)
        y.backward(ct.flatten()[i].item())
        assert (out.elements[i].data, g.elements[i].data) == (y.data, v.grad), (spec.name, xi)
    tx = x.clone().requires_grad_()
    want = resolve_torch(spec.torch)(tx, **spec.attributes(attrs))  # torch has no default exponent
    (want_g,) = torch.autograd.grad(want, tx, ct)
    # value: 8 ulps of the result; gradient: of |ct|·(1 + |x|)·(|f'| + 1), the size of the terms in
    # these ops' derivative formulas (1 - tanh², x·σ(x)·(1 - σ(x)) …) on |x| <= 2
    assert_close(f"{spec.name}{attrs} value", out, want, ulps=8)
    slope = (want_g / ct).abs()
    assert_close(f"{spec.name}{attrs} grad", g, want_g, ct * (1 + x.abs()) * (slope + 1), ulps=8)


def test_apply_takes_any_op_spec():
    """A new op needs no tensor code: Tensor.apply runs any OpSpec, in the table or not."""
    cube = OpSpec("cube", 1, lambda m, x: x * x * x, lambda m, x, out: (3 * x * x,), "torch.pow",
                  (OPS["neg"].domain[0],))
    x = tensor([[1.0, -2.0], [0.5, 3.0]])
    y = x.apply(cube)
    y.backward([[1.0, 1.0], [2.0, -1.0]])
    assert y.tolist() == [[1.0, -8.0], [0.125, 27.0]]
    assert x.grad.tolist() == [[3.0, 12.0], [1.5, -27.0]]
    assert all(hasattr(Tensor, name) for name in OPS)


# --- matmul ---------------------------------------------------------------------------------------

MATMUL = [((4,), (4,)), ((4,), (4, 3)), ((3, 4), (4,)), ((3, 4), (4, 5)), ((2, 3, 4), (4, 5)),
          ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((2, 3, 4), (4,)), ((4,), (2, 4, 3)),
          ((1, 3, 4), (2, 4, 2))]


@pytest.mark.parametrize("shapes", MATMUL, ids=str)
def test_matmul(shapes, gen):
    a, b = uniform(gen, shapes[0]), uniform(gen, shapes[1])
    check("matmul", matmul, torch.matmul, [a, b], gen,
          scales=lambda ins, ct: magnitudes(torch.matmul, ins, ct))
    check("@", lambda x, y: x @ y, torch.matmul, [a, b], gen,
          scales=lambda ins, ct: magnitudes(torch.matmul, ins, ct))


def test_matmul_shape_errors():
    with pytest.raises(ValueError, match="do not fit"):
        matmul(tensor([[1.0, 2.0]]), tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="at least 1 dim"):
        matmul(tensor(1.0), tensor([1.0]))


# --- reductions -------------------------------------------------------------------------------------

DIMS = [None, 0, 1, 2, -1, (0, 2), (1, 2), (2, 0, 1), ()]


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_sum_and_mean(name, dim, keepdim, gen):
    x = uniform(gen, (2, 3, 4))

    def f(t):
        return getattr(t, name)() if dim is None and not keepdim else getattr(t, name)(dim, keepdim)

    check(f"{name}(dim={dim}, keepdim={keepdim})", f, f, [x], gen,
          scales=lambda ins, ct: magnitudes(f, ins, ct))


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("name", ["amax", "amin"])
def test_amax_amin_without_ties_are_exact(name, dim, keepdim, gen):
    x = uniform(gen, (2, 3, 4))
    f = lambda t: getattr(t, name)(dim, keepdim) if dim is not None else getattr(t, name)(keepdim=keepdim)
    check(f"{name}(dim={dim}, keepdim={keepdim})", f, f, [x], gen, scales=exact)


TIES = [[[3.0, 1.0, 3.0, 3.0, -2.0], [0.5, 0.5, -1.0, 0.5, 0.5], [2.0, -7.0, -7.0, 1.0, 2.0]]]


@pytest.mark.parametrize("dim", [None, 0, 1, 2, (0, 2), (1, 2)], ids=str)
@pytest.mark.parametrize("name", ["amax", "amin"])
def test_amax_amin_ties_split_the_gradient_evenly(name, dim, gen):
    """torch 2.13: k tied extrema get 1/k of the gradient each (checked here against torch)."""
    x = torch.tensor(TIES)
    f = lambda t: getattr(t, name)(dim) if dim is not None else getattr(t, name)()
    check(f"{name}(dim={dim}) with ties", f, f, [x], gen)  # g/k vs g·(1/k): one rounding apart
    ref, _ = pair(x)
    getattr(ref, name)().backward()
    if name == "amax":
        assert ref.grad.tolist() == [[[1 / 3, 0, 1 / 3, 1 / 3, 0], [0] * 5, [0] * 5]]


def test_sum_of_nothing_and_mean_of_nothing():
    e = tensor([[], []])
    assert e.sum(1).tolist() == [0.0, 0.0]
    assert all(math.isnan(v) for v in e.mean(1).tolist())
    with pytest.raises(ValueError, match="empty"):
        e.amax(1)


# --- softmax family -------------------------------------------------------------------------------

def _softmax_scales(dim: int) -> Callable:
    """softmax = e/S: a few relative roundings. Its gradient y·(g - Σ g·y): terms y·|g|, y·Σ|g|·y."""
    def scales(ins, ct):
        y = torch.softmax(ins[0].detach(), dim)
        return None, [y * (ct.abs() + (ct.abs() * y).sum(dim, keepdim=True))]
    return scales


def _log_softmax_scales(dim: int) -> Callable:
    """(x - max) - log S: terms |x - max| and |log S| (x - max itself is exact in both).
    Gradient g - p·Σg: terms |g| and p·Σ|g|."""
    def scales(ins, ct):
        x = ins[0].detach()
        shifted = x - x.amax(dim, keepdim=True)
        log_s = shifted.exp().sum(dim, keepdim=True).log()
        p = torch.softmax(x, dim)
        return shifted.abs() + log_s.abs(), [ct.abs() + p * ct.abs().sum(dim, keepdim=True)]
    return scales


def _logsumexp_scales(dim: Any, keepdim: bool) -> Callable:
    """max + log S: terms |max| and |log S|. torch's gradient is g·exp(x - result): the rounding of
    the result (relative eps, absolute eps·|result|) becomes a relative error eps·|result| of the
    exponential, so its terms are |g|·p·(1 + |result|) — large for logits near ±1000."""
    def scales(ins, ct):
        x = ins[0].detach()
        m = x.amax(dim, keepdim=True)
        log_s = (x - m).exp().sum(dim, keepdim=keepdim).log()
        result = torch.logsumexp(x, dim, keepdim=True)
        p = (x - result).exp()
        ct = ct if keepdim else ct.reshape(result.shape)
        return x.amax(dim, keepdim=keepdim).abs() + log_s.abs(), [ct.abs() * p * (1 + result.abs())]
    return scales


SOFTMAX_SHAPES = [((3, 5), 1), ((3, 5), 0), ((3, 5), -1), ((2, 3, 4), 1), ((5,), 0)]
OFFSETS = [0.0, 1000.0, -1000.0]


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("shape, dim", SOFTMAX_SHAPES, ids=str)
def test_softmax_and_log_softmax(shape, dim, offset, gen):
    x = uniform(gen, shape, -4.0, 4.0) + offset
    check(f"softmax({dim}) +{offset}", lambda t: t.softmax(dim), lambda t: torch.softmax(t, dim),
          [x], gen, scales=_softmax_scales(dim))
    check(f"log_softmax({dim}) +{offset}", lambda t: t.log_softmax(dim),
          lambda t: torch.log_softmax(t, dim), [x], gen, scales=_log_softmax_scales(dim))


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("dim, keepdim", [(1, False), (0, True), (-1, True), ((0, 2), False), ((1, 2), True)],
                         ids=str)
def test_logsumexp(dim, keepdim, offset, gen):
    x = uniform(gen, (2, 3, 4), -4.0, 4.0) + offset
    check(f"logsumexp({dim}, {keepdim}) +{offset}", lambda t: t.logsumexp(dim, keepdim),
          lambda t: torch.logsumexp(t, dim, keepdim), [x], gen, scales=_logsumexp_scales(dim, keepdim))


def test_large_logits_where_the_naive_form_overflows(gen):
    x = torch.tensor([[1000.0, 1001.0, 999.0, 1001.0], [-1000.0, -1000.5, -999.0, -1002.0]])
    ref, _ = pair(x)
    naive_softmax = ref.exp() / ref.exp().sum(1, keepdim=True)
    assert all(math.isnan(v) for v in naive_softmax.flat())  # inf/inf and 0/0
    assert ref.exp().sum(1).log().tolist() == [math.inf, -math.inf]
    assert all(math.isfinite(v) for v in ref.softmax(1).flat() + ref.log_softmax(1).flat())
    check("softmax", lambda t: t.softmax(1), lambda t: torch.softmax(t, 1), [x], gen,
          scales=_softmax_scales(1))
    check("log_softmax", lambda t: t.log_softmax(1), lambda t: torch.log_softmax(t, 1), [x], gen,
          scales=_log_softmax_scales(1))
    check("logsumexp", lambda t: t.logsumexp(1), lambda t: torch.logsumexp(t, 1), [x], gen,
          scales=_logsumexp_scales(1, False))


def test_softmax_gradient_is_exact_with_tied_maxima(gen):
    """The shift is a constant, so tied maxima (1001 twice here) cannot split or bias anything."""
    x = torch.tensor([[1000.0, 1001.0, 999.0, 1001.0], [3.0, 3.0, 3.0, 3.0]])
    check("softmax ties", lambda t: t.softmax(1), lambda t: torch.softmax(t, 1), [x], gen,
          scales=_softmax_scales(1))
    check("log_softmax ties", lambda t: t.log_softmax(1), lambda t: torch.log_softmax(t, 1), [x], gen,
          scales=_log_softmax_scales(1))
    check("logsumexp ties", lambda t: t.logsumexp(1), lambda t: torch.logsumexp(t, 1), [x], gen,
          scales=_logsumexp_scales(1, False))


def test_logsumexp_of_infinities_follows_torch():
    inf = math.inf
    x = tensor([[inf, 1.0], [-inf, -inf], [-inf, 2.0]], requires_grad=False)
    want = torch.logsumexp(torch.tensor(x.tolist()), 1)
    assert x.logsumexp(1).tolist() == want.tolist()


# --- structure: reshape, permute, indexing, gather ---------------------------------------------------

STRUCTURAL = [
    ("reshape(4, 6)", lambda t: t.reshape(4, 6)), ("reshape(-1)", lambda t: t.reshape(-1)),
    ("reshape(3, -1, 2)", lambda t: t.reshape(3, -1, 2)), ("transpose(0, 2)", lambda t: t.transpose(0, 2)),
    ("transpose(-1, 1)", lambda t: t.transpose(-1, 1)), ("permute(2, 0, 1)", lambda t: t.permute(2, 0, 1)),
    ("permute(1, 2, 0)", lambda t: t.permute((1, 2, 0))), ("unsqueeze(1)", lambda t: t.unsqueeze(1)),
    ("unsqueeze(-1)", lambda t: t.unsqueeze(-1)), ("[1]", lambda t: t[1]), ("[:, 1:3]", lambda t: t[:, 1:3]),
    ("[-1, ::2, 1]", lambda t: t[-1, ::2, 1]), ("[0, 2]", lambda t: t[0, 2]),
    ("[1, :, -3:]", lambda t: t[1, :, -3:]),
]


@pytest.mark.parametrize("name, f", STRUCTURAL, ids=[n for n, _ in STRUCTURAL])
def test_structural_ops_move_values_exactly(name, f, gen):
    check(name, f, f, [uniform(gen, (2, 3, 4))], gen, scales=exact)


def test_squeeze_and_expand(gen):
    x = uniform(gen, (3, 1, 4, 1))
    check("squeeze()", lambda t: t.squeeze(), lambda t: t.squeeze(), [x], gen, scales=exact)
    check("squeeze(1)", lambda t: t.squeeze(1), lambda t: t.squeeze(1), [x], gen, scales=exact)
    check("squeeze(0) (size 3: no-op)", lambda t: t.squeeze(0), lambda t: t.squeeze(0), [x], gen,
          scales=exact)
    f = lambda t: t.expand(2, 3, 5, 4, -1)
    check("expand", f, f, [x], gen, scales=lambda ins, ct: (0, magnitudes(f, ins, ct)[1]))


GATHER = [((3, 5), 1, [[0, 4], [2, 2], [1, 0]]), ((3, 5), 0, [[2, 0, 1, 1, 0], [0, 0, 2, 1, 1]]),
          ((2, 3, 4), -1, [[[3, 3, 0]], [[1, 2, 0]]]), ((2, 3, 4), 1, [[[2, 0, 0, 1]], [[1, 1, 1, 0]]])]


@pytest.mark.parametrize("shape, dim, index", GATHER, ids=str)
def test_gather(shape, dim, index, gen):
    f_ref = lambda t: t.gather(dim, index)
    f_torch = lambda t: torch.gather(t, dim, torch.tensor(index))
    check(f"gather({dim})", f_ref, f_torch, [uniform(gen, shape)], gen,
          scales=lambda ins, ct: (0, magnitudes(f_torch, ins, ct)[1]))  # repeats sum their gradients


def test_class_target_picking_as_in_cross_entropy(gen):
    logits, targets = uniform(gen, (4, 6)), [5, 0, 3, 3]
    f_ref = lambda t: t.log_softmax(1).gather(1, [[y] for y in targets]).squeeze(1)
    f_torch = lambda t: torch.log_softmax(t, 1)[torch.arange(4), torch.tensor(targets)]
    check("log_softmax + pick", f_ref, f_torch, [logits], gen, scales=_log_softmax_pick_scales(targets))


def _log_softmax_pick_scales(targets: list[int]) -> Callable:
    def scales(ins, ct):
        value, _ = _log_softmax_scales(1)(ins, torch.zeros_like(ins[0]))
        rows = torch.arange(len(targets)), torch.tensor(targets)
        p = torch.softmax(ins[0].detach(), 1)
        onehot = torch.zeros_like(p)
        onehot[rows] = 1.0
        return value[rows], [ct.abs()[:, None] * (onehot + p)]
    return scales


def test_gather_and_index_errors():
    x = tensor([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(IndexError, match="out of bounds"):
        x.gather(1, [[2], [0]])
    with pytest.raises(ValueError, match="dims"):
        x.gather(1, [0, 1])
    with pytest.raises(IndexError):
        x[2]
    with pytest.raises(IndexError):
        x[0, 0, 0]
    with pytest.raises(ValueError, match="step must be positive"):
        x[::-1]


# --- second order -------------------------------------------------------------------------------------

def test_hvp_through_matmul_and_log_softmax(gen):
    """f(x) = Σ c·log_softmax(A x): H v = Aᵀ·(-Σc)·(diag p - p pᵀ)·A v, against torch's double backward.

    Scale: the same expression with every factor replaced by its magnitude (Σ|c| for Σc, and
    diag p + p pᵀ), i.e. Σ|terms| of the products the second backward adds up."""
    A, x, c, v = uniform(gen, (5, 3)), uniform(gen, (3,)), uniform(gen, (5,)), uniform(gen, (3,))
    rA, tA = pair(A, requires_grad=False)
    rx, tx = pair(x)
    rc, tc = pair(c, requires_grad=False)
    (g,) = grad((rc * matmul(rA, rx).log_softmax(0)).sum(), rx, create_graph=True)
    (hv,) = grad((g * tensor(v.tolist(), requires_grad=False)).sum(), rx)
    (tg,) = torch.autograd.grad((tc * torch.log_softmax(tA @ tx, 0)).sum(), tx, create_graph=True)
    (thv,) = torch.autograd.grad((tg * v).sum(), tx)
    p = torch.softmax(tA @ tx.detach(), 0)
    u = tA.abs() @ v.abs()
    scale = tA.abs().T @ (c.abs().sum() * (p * u + p * (p @ u)))
    assert_close("HVP of Σ c·log_softmax(A x)", hv, thv, scale)


def test_hvp_through_softmax(gen):
    """f(z) = Σ c·softmax(z): H v against torch's double backward, on a (3, 4) batch (dim 1).

    Scale: Σ|terms| of H v with H_ij = Σ_k c_k s_k((δki - s_i)(δkj - s_j) - s_i(δij - s_j)), each
    difference replaced by a sum of magnitudes."""
    z, c, v = uniform(gen, (3, 4)), uniform(gen, (3, 4)), uniform(gen, (3, 4))
    rz, tz = pair(z)
    (g,) = grad((tensor(c.tolist(), requires_grad=False) * rz.softmax(1)).sum(), rz, create_graph=True)
    (hv,) = grad((g * tensor(v.tolist(), requires_grad=False)).sum(), rz)
    (tg,) = torch.autograd.grad((c * torch.softmax(tz, 1)).sum(), tz, create_graph=True)
    (thv,) = torch.autograd.grad((tg * v).sum(), tz)
    s = torch.softmax(z, 1)
    eye = torch.eye(4)
    a = eye[None, :, :, None] + s[:, None, :, None]  # |δki| + s_i   indexed [n, k, i, j]
    b = eye[None, :, None, :] + s[:, None, None, :]  # |δkj| + s_j
    cc = s[:, None, :, None] * (eye[None, None] + s[:, None, None, :])  # s_i(|δij| + s_j)
    h = ((c.abs() * s)[:, :, None, None] * (a * b + cc)).sum(1)  # [n, i, j]
    assert_close("HVP of Σ c·softmax(z)", hv, thv, (h * v.abs()[:, None, :]).sum(2))
