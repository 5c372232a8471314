"""refimpl.losses against torch.nn.functional 2.13 (float64): every loss × every reduction.

Values and gradients (for the input, and for the target where torch has one) are compared with
:func:`helpers_tensor.assert_close`. The honest scale of each loss is written out next to it: the
magnitudes of the terms of the per-element formula (and of its derivative), pushed through the
same reduction — a ``'mean'`` of n elements has the scale Σ|terms|/n.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import pytest
import torch
import torch.nn.functional as F
from helpers_tensor import assert_close, cotangent, pair

from refimpl import losses as L
from refimpl.tensor import grad, tensor

REDUCTIONS = ["mean", "sum", "none"]


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(31337)


def uniform(gen: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen)


def reduce_scale(terms: torch.Tensor, reduction: str, count: float | None = None) -> torch.Tensor:
    """The scale of a reduced loss: the reduction of the per-element term magnitudes."""
    if reduction == "none":
        return terms
    total = terms.sum()
    return total if reduction == "sum" else total / (terms.numel() if count is None else count)


def grad_weight(ct: torch.Tensor, reduction: str, count: int) -> torch.Tensor:
    """|∂loss/∂ℓᵢ| for each element's loss ℓᵢ: the cotangent, spread by the reduction."""
    return ct.abs() / count if reduction == "mean" else ct.abs()


def compare(what: str, ref_out, torch_out: torch.Tensor, leaves: list, tleaves: list[torch.Tensor],
            value_scale: Any, grad_scales: list[Any], ct: torch.Tensor) -> None:
    """Value, then the gradient with respect to each leaf, refimpl against torch."""
    __tracebackhide__ = True
    assert_close(f"{what} value", ref_out, torch_out, value_scale)
    want = torch.autograd.grad(torch_out, tleaves, ct)
    got = grad(ref_out, leaves, ct.tolist(), allow_unused=True)  # all targets ignored: a constant
    for k, (g_r, g_t, s) in enumerate(zip(got, want, grad_scales)):
        assert_close(f"{what} d/d(argument {k})", torch.zeros_like(g_t) if g_r is None else g_r, g_t, s)


# --- regression losses ------------------------------------------------------------------------------
# Each entry: refimpl loss, torch loss, keyword arguments, and the per-element term magnitudes of
# the value and of the derivative, as functions of z = |input - target| (itself exact-rounded in both).

def _quadratic_or_linear(z: torch.Tensor, edge: float, quad: torch.Tensor, lin: torch.Tensor) -> torch.Tensor:
    return torch.where(z < edge, quad, lin)


REGRESSION: dict[str, tuple[Callable, Callable, dict, Callable]] = {
    "mse": (L.mse_loss, F.mse_loss, {}, lambda z: (z * z, 2 * z)),
    "l1": (L.l1_loss, F.l1_loss, {}, lambda z: (z, torch.ones_like(z))),
    "smooth_l1 beta=1": (L.smooth_l1_loss, F.smooth_l1_loss, {"beta": 1.0}, lambda z: (
        _quadratic_or_linear(z, 1.0, 0.5 * z * z, z + 0.5), _quadratic_or_linear(z, 1.0, z, 1 + 0 * z))),
    "smooth_l1 beta=0.3": (L.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.3}, lambda z: (
        _quadratic_or_linear(z, 0.3, 0.5 * z * z / 0.3, z + 0.15),
        _quadratic_or_linear(z, 0.3, z / 0.3, 1 + 0 * z))),
    "smooth_l1 beta=0": (L.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.0},
                         lambda z: (z, torch.ones_like(z))),
    "huber delta=1": (L.huber_loss, F.huber_loss, {"delta": 1.0}, lambda z: (
        _quadratic_or_linear(z, 1.0, 0.5 * z * z, z + 0.5), _quadratic_or_linear(z, 1.0, z, 1 + 0 * z))),
    "huber delta=1.7": (L.huber_loss, F.huber_loss, {"delta": 1.7}, lambda z: (
        _quadratic_or_linear(z, 1.7, 0.5 * z * z, 1.7 * (z + 0.85)),
        _quadratic_or_linear(z, 1.7, z, 1.7 + 0 * z))),
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_regression_losses(name, reduction, gen):
    ref_fn, torch_fn, kw, terms = REGRESSION[name]
    x, t = uniform(gen, (4, 5), -2.0, 2.0), uniform(gen, (4, 5), -2.0, 2.0)
    (rx, tx), (rt, tt) = pair(x), pair(t)
    out_t = torch_fn(tx, tt, reduction=reduction, **kw)
    ct = cotangent(gen, out_t.shape)
    value_terms, slope_terms = terms((x - t).abs())
    g_scale = grad_weight(ct, reduction, x.numel()) * slope_terms
    compare(f"{name} {reduction}", ref_fn(rx, rt, reduction=reduction, **kw), out_t, [rx, rt], [tx, tt],
            reduce_scale(value_terms, reduction), [g_scale, g_scale], ct)


KINKS = [
    ("l1 at 0", L.l1_loss, F.l1_loss, {}, [0.0, 1.0, -1.0]),
    ("smooth_l1 at ±beta and 0", L.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.5},
     [0.5, -0.5, 0.0, 0.25, 0.75]),
    ("smooth_l1 beta=0 at 0", L.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.0}, [0.0, 0.5, -0.5]),
    ("smooth_l1 at ±beta=2", L.smooth_l1_loss, F.smooth_l1_loss, {"beta": 2.0}, [2.0, -2.0]),
    ("huber at ±delta and 0", L.huber_loss, F.huber_loss, {"delta": 1.5}, [1.5, -1.5, 0.0, 3.0]),
    ("mse at 0", L.mse_loss, F.mse_loss, {}, [0.0, -0.0]),
]


@pytest.mark.parametrize("name, ref_fn, torch_fn, kw, diffs", KINKS, ids=[k[0] for k in KINKS])
def test_kink_conventions_match_torch_exactly(name, ref_fn, torch_fn, kw, diffs):
    """At the kinks both sides' numbers are exact (0, ±1, ±beta, ±delta, halves), so bit for bit:
    l1'(0) = 0; smooth_l1 is linear from |d| = beta on, slope ±1 there either way, l1 when beta = 0;
    huber is linear from |d| = delta on, slope ±delta."""
    t = [0.25] * len(diffs)
    x = [d + 0.25 for d in diffs]
    (rx, tx), (rt, tt) = pair(torch.tensor(x)), pair(torch.tensor(t))
    ct = torch.tensor([1.0, -2.0, 0.5, 4.0, 3.0][:len(x)])
    compare(name, ref_fn(rx, rt, reduction="none", **kw), torch_fn(tx, tt, reduction="none", **kw),
            [rx, rt], [tx, tt], 0, [0, 0], ct)


# --- binary cross entropy ---------------------------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(reduction, weighted, gen):
    """Terms: |t-1|·|log1p(-x)| + t·|log x|; derivative (1-t)/(1-x) + t/x; for t: the two logs."""
    x, t = uniform(gen, (4, 5), 0.02, 0.98), uniform(gen, (4, 5), 0.0, 1.0)
    w = uniform(gen, (5,), 0.5, 2.0) if weighted else None
    (rx, tx), (rt, tt) = pair(x), pair(t)
    out_t = F.binary_cross_entropy(tx, tt, weight=w, reduction=reduction)
    out_r = L.binary_cross_entropy(rx, rt, weight=None if w is None else w.tolist(), reduction=reduction)
    ct = cotangent(gen, out_t.shape)
    aw = torch.ones(()) if w is None else w
    value_terms = aw * ((1 - t) * (-x).log1p().abs() + t * x.log().abs())
    gw = grad_weight(ct, reduction, x.numel()) * aw
    compare(f"bce {reduction} weighted={weighted}", out_r, out_t, [rx, rt], [tx, tt],
            reduce_scale(value_terms, reduction),
            [gw * ((1 - t) / (1 - x) + t / x), gw * ((-x).log1p().abs() + x.log().abs())], ct)


BCE_EDGES = [0.0, 1e-50, 1e-30, 1e-13, 1e-6, 0.5, 1 - 1e-6, 1 - 2**-52, 1.0]


@pytest.mark.parametrize("target", [0.0, 0.3, 1.0])
def test_binary_cross_entropy_clamps_logs_at_minus_100(target):
    """The value is torch's to the ulp everywhere, including where log x < -100 and at 0 and 1."""
    x = torch.tensor(BCE_EDGES)
    t = torch.full_like(x, target)
    got = L.binary_cross_entropy(tensor(x.tolist()), t.tolist(), reduction="none")
    want = F.binary_cross_entropy(x, t, reduction="none")
    assert_close("bce at the edges", got, want, ulps=4)
    assert max(got.flat()) <= 100.0


def test_binary_cross_entropy_gradient_where_torch_guards_with_eps():
    """Inside x·(1-x) >= 1e-12 the gradients agree (checked above); outside, torch's backward
    (x - t)/max(x(1-x), 1e-12 as float32) is not the derivative of its forward. Pinned here so the
    documented deviation stays true: at x = 0, t = 0 the loss is -log1p(-x), slope 1; torch says 0."""
    x, tx = pair(torch.tensor([0.0, 1e-13, 1.0]))
    t = [0.0, 0.0, 1.0]
    (g,) = grad(L.binary_cross_entropy(x, t, reduction="sum"), x)
    (tg,) = torch.autograd.grad(F.binary_cross_entropy(tx, torch.tensor(t), reduction="sum"), tx)
    assert g.tolist() == [1.0, 1.0 / (1 - 1e-13), -1.0]
    assert tg.tolist()[0] == 0.0 and tg.tolist()[2] == 0.0 and abs(tg.tolist()[1] - 0.1) < 1e-6


def test_binary_cross_entropy_passes_nan_through_where_torch_raises():
    """A NaN input gives NaN (a training run that left the dtype's range gets a result, not an
    exception); torch raises on it, and on anything else outside [0, 1] both raise."""
    x = tensor([math.nan, 0.25])
    out = L.binary_cross_entropy(x, [0.5, 0.5], reduction="none")
    assert math.isnan(out.flat()[0]) and out.flat()[1] == pytest.approx(-math.log(0.25 * 0.75) / 2)
    (g,) = grad(out.sum(), x)
    assert math.isnan(g.flat()[0]) and math.isfinite(g.flat()[1])
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(torch.tensor([math.nan]), torch.tensor([0.5]))
    for bad in (1.5, -0.1, math.inf):
        with pytest.raises(ValueError, match="outside"):
            L.binary_cross_entropy(tensor([bad]), [0.5])


def bce_logits_case(gen, x, t, extras, reduction):
    """Terms: |(1-t)·x| + lw·softplus(-x); derivative terms of both forms, (1-t) + lw·σ(-x) (refimpl)
    and σ(x)·lw + t (torch), and for t: |x| + |pw-1|·softplus(-x)."""
    __tracebackhide__ = True
    w = uniform(gen, x.shape, 0.5, 2.0) if extras in ("weight", "both") else None
    pw = uniform(gen, x.shape[-1:], 0.25, 3.0) if extras in ("pos_weight", "both") else None
    (rx, tx), (rt, tt) = pair(x), pair(t)
    out_t = F.binary_cross_entropy_with_logits(tx, tt, weight=w, pos_weight=pw, reduction=reduction)
    out_r = L.binary_cross_entropy_with_logits(rx, rt, weight=None if w is None else w.tolist(),
                                               pos_weight=None if pw is None else pw.tolist(),
                                               reduction=reduction)
    ct = cotangent(gen, out_t.shape)
    aw = torch.ones(()) if w is None else w
    lw = torch.ones(()) if pw is None else 1 + (pw - 1) * t
    softplus_neg = F.softplus(-x, threshold=1000.0)
    value_terms = aw * ((1 - t) * x.abs() + lw * softplus_neg)
    gw = grad_weight(ct, reduction, x.numel()) * aw
    slope_x = (1 - t) + lw * torch.sigmoid(-x) + torch.sigmoid(x) * lw + t
    slope_t = x.abs() + (torch.zeros(()) if pw is None else (pw - 1).abs()) * softplus_neg
    compare(f"bce_with_logits {reduction} {extras} x={x.flatten()[:3].tolist()}…", out_r, out_t,
            [rx, rt], [tx, tt], reduce_scale(value_terms, reduction), [gw * slope_x, gw * slope_t], ct)


EXTRAS = ["plain", "weight", "pos_weight", "both"]


@pytest.mark.parametrize("extras", EXTRAS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits(reduction, extras, gen):
    x, t = uniform(gen, (4, 5), -4.0, 4.0), uniform(gen, (4, 5), 0.0, 1.0)
    bce_logits_case(gen, x, t, extras, reduction)


@pytest.mark.parametrize("extras", EXTRAS)
@pytest.mark.parametrize("target", [0.0, 0.3, 1.0])
def test_binary_cross_entropy_with_logits_is_stable(target, extras, gen):
    """Logits up to ±800, where exp overflows, and exactly 0 (no kink: σ(0) - t)."""
    x = torch.tensor([-800.0, -40.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 40.0, 800.0])
    bce_logits_case(gen, x, torch.full_like(x, target), extras, "none")


# --- nll and cross entropy -----------------------------------------------------------------------------

CLASS_SHAPES = [((6,), ()), ((4, 6), (4,)), ((2, 5, 3), (2, 3))]


def class_case(gen: torch.Generator, shape: tuple, target_shape: tuple, ignore: int | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores and class targets; with ``ignore``, one kept position's target becomes ``ignore``."""
    x = uniform(gen, shape, -3.0, 3.0)
    n_classes = shape[0] if len(shape) == 1 else shape[1]
    y = torch.randint(0, n_classes, target_shape, generator=gen)
    if ignore is not None and y.numel() > 1:
        y.view(-1)[1] = ignore
    return x, y


def _rows(x: torch.Tensor) -> torch.Tensor:
    """(positions, C), class dim last — the same layout as refimpl.losses.class_rows."""
    return x.reshape(1, -1) if x.ndim == 1 else x.movedim(1, -1).reshape(-1, x.shape[1])


def cross_entropy_scales(x, y, w, ignore_index, eps, reduction, ct):
    """Per position n: value terms (1-ε)·w_y·(|x_y - M| + |log S|) + (ε/C)·Σ_c w_c·(|x_c - M| + |log S|);
    gradient terms for class c: |g_n|·((1-ε)·w_y·(δ_cy + p_c) + (ε/C)·(w_c + p_c·Σ_k w_k))."""
    rows = _rows(x)
    n_classes = rows.shape[1]
    ys = y.reshape(-1)
    kept = ys != ignore_index
    yk = torch.where(kept, ys, 0)
    wc = torch.ones(n_classes) if w is None else w
    shifted = rows - rows.amax(1, keepdim=True)
    log_s = shifted.exp().sum(1, keepdim=True).log()
    mag = shifted.abs() + log_s.abs()
    p = torch.softmax(rows, 1)
    wy = torch.where(kept, wc[yk], 0.0)
    onehot = F.one_hot(yk, n_classes).to(x.dtype)
    value = (1 - eps) * wy * mag.gather(1, yk[:, None])[:, 0] + kept * (eps / n_classes) * (mag * wc).sum(1)
    total_weight = wy.sum()
    g = ct.abs().reshape(-1) if reduction == "none" else ct.abs().expand(len(ys))
    g = g / total_weight if reduction == "mean" else g
    slope = ((1 - eps) * wy[:, None] * (onehot + p)
             + kept[:, None] * (eps / n_classes) * (wc + p * wc.sum()))
    g_rows = g[:, None] * slope
    g_scale = g_rows.reshape(x.shape) if x.ndim == 1 else g_rows.reshape(
        (x.shape[0], *x.shape[2:], n_classes)).movedim(-1, 1)
    value_scale = value.reshape(y.shape) if reduction == "none" else (
        value.sum() / total_weight if reduction == "mean" else value.sum())
    return value_scale, g_scale


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape, target_shape", CLASS_SHAPES, ids=str)
def test_cross_entropy(shape, target_shape, reduction, ignore_index, weighted, label_smoothing, gen):
    x, y = class_case(gen, shape, target_shape, ignore_index if ignore_index != -100 else None)
    n_classes = shape[0] if len(shape) == 1 else shape[1]
    w = uniform(gen, (n_classes,), 0.5, 2.0) if weighted else None
    rx, tx = pair(x)
    out_t = F.cross_entropy(tx, y, weight=w, ignore_index=ignore_index, reduction=reduction,
                            label_smoothing=label_smoothing)
    out_r = L.cross_entropy(rx, y.tolist(), weight=None if w is None else w.tolist(),
                            ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
    ct = cotangent(gen, out_t.shape)
    value_scale, g_scale = cross_entropy_scales(x, y, w, ignore_index, label_smoothing, reduction, ct)
    compare(f"cross_entropy {shape} {reduction} ignore={ignore_index} w={weighted} ε={label_smoothing}",
            out_r, out_t, [rx], [tx], value_scale, [g_scale], ct)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape, target_shape", CLASS_SHAPES, ids=str)
def test_nll_loss(shape, target_shape, reduction, weighted, gen):
    """Terms |w_y·x_y|; each gradient entry is one product (and a division for 'mean')."""
    x, y = class_case(gen, shape, target_shape, ignore=-100)
    n_classes = shape[0] if len(shape) == 1 else shape[1]
    w = uniform(gen, (n_classes,), 0.5, 2.0) if weighted else None
    rx, tx = pair(x)
    out_t = F.nll_loss(tx, y, weight=w, reduction=reduction)
    out_r = L.nll_loss(rx, y.tolist(), weight=None if w is None else w.tolist(), reduction=reduction)
    ct = cotangent(gen, out_t.shape)
    rows, ys = _rows(x), y.reshape(-1)
    kept = ys != -100
    wy = torch.where(kept, (torch.ones(n_classes) if w is None else w)[torch.where(kept, ys, 0)], 0.0)
    terms = (wy * rows.gather(1, torch.where(kept, ys, 0)[:, None])[:, 0]).abs()
    value_scale = reduce_scale(terms.reshape(y.shape), reduction, count=float(wy.sum()))
    compare(f"nll {shape} {reduction} w={weighted}", out_r, out_t, [rx], [tx], value_scale, [None], ct)


def test_all_targets_ignored_gives_nan_mean_like_torch():
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([-100, -100, -100])
    for smoothing in (0.0, 0.2):
        got = L.cross_entropy(tensor(x.tolist()), y.tolist(), label_smoothing=smoothing).item()
        assert math.isnan(got) and math.isnan(F.cross_entropy(x, y, label_smoothing=smoothing).item())
    assert L.cross_entropy(tensor(x.tolist()), y.tolist(), reduction="sum").item() == 0.0


# --- the table and the errors -----------------------------------------------------------------------

def test_losses_table():
    assert L.LOSSES == {"mse": L.mse_loss, "l1": L.l1_loss, "smooth_l1": L.smooth_l1_loss,
                        "huber": L.huber_loss, "bce": L.binary_cross_entropy,
                        "bce_with_logits": L.binary_cross_entropy_with_logits,
                        "cross_entropy": L.cross_entropy, "nll": L.nll_loss}


def test_errors_are_clear():
    x = tensor([[0.2, 0.7], [0.1, 0.9]])
    with pytest.raises(ValueError, match="reduction"):
        L.mse_loss(x, [[0.0, 0.0], [0.0, 0.0]], reduction="avg")
    with pytest.raises(ValueError, match="outside"):
        L.binary_cross_entropy(tensor([1.5]), [1.0])
    with pytest.raises(IndexError, match="out of bounds"):
        L.cross_entropy(x, [0, 2])
    with pytest.raises(ValueError, match="target shape"):
        L.cross_entropy(x, [0, 1, 1])
    with pytest.raises(ValueError, match="label_smoothing"):
        L.cross_entropy(x, [0, 1], label_smoothing=1.5)
