"""refimpl.nn against torch.nn 2.13 (float64): Linear and MLP with the same parameters.

Forward values, the input's gradient and every parameter's gradient (in ``parameters()`` order,
which must be torch's) are compared with :func:`helpers_tensor.assert_close`, on non-square
layers, a batch of 4 and a random non-unit cotangent.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
import torch
from helpers_tensor import assert_close, cotangent, magnitudes, pair, resolve_torch

from refimpl.nn import MLP, Linear
from refimpl.ops import OPS
from refimpl.tensor import grad


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(8128)


def uniform(gen: torch.Generator, shape: tuple[int, ...], lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen)


def torch_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> torch.nn.Linear:
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


# --- Linear -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("x_shape", [(4, 5), (5,), (2, 3, 5)], ids=str)
def test_linear_matches_torch(x_shape, with_bias, gen):
    """y = x Wᵀ + b is a sum of products: the scale is the same map on |x|, |W|, |b| (magnitudes)."""
    w, x = uniform(gen, (3, 5)), uniform(gen, x_shape, -2, 2)
    b = uniform(gen, (3,)) if with_bias else None
    ref = Linear(5, 3, w.tolist(), None if b is None else b.tolist())
    tor = torch_linear(w, b)
    rx, tx = pair(x)
    out_r, out_t = ref(rx), tor(tx)
    ct = cotangent(gen, out_t.shape)
    params_t = list(tor.parameters())
    value_scale, grad_scales = magnitudes(torch.nn.functional.linear, [tx, *params_t], ct)
    assert_close(f"Linear{x_shape} bias={with_bias} value", out_r, out_t, value_scale)
    got = grad(out_r, [rx, *ref.parameters()], ct.tolist())
    want = torch.autograd.grad(out_t, [tx, *params_t], ct)
    names = ["x", "weight", "bias"]
    for name, g_r, g_t, s in zip(names, got, want, grad_scales):
        assert_close(f"Linear{x_shape} d/d{name}", g_r, g_t, s)


def test_linear_layout_parameters_and_zero_grad():
    layer = Linear(2, 3, [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [0.5, -0.5, 1.0])
    assert layer.weight.shape == (3, 2) and layer.bias.shape == (3,)
    assert layer.parameters() == [layer.weight, layer.bias]
    assert layer([1.0, -1.0]).tolist() == [-0.5, -1.5, 0.0]  # x Wᵀ + b
    layer([[1.0, 1.0]]).sum().backward()
    assert layer.weight.grad.tolist() == [[1.0, 1.0]] * 3 and layer.bias.grad.tolist() == [1.0] * 3
    layer.zero_grad()
    assert layer.weight.grad.tolist() == [[0.0, 0.0]] * 3 and layer.bias.grad.tolist() == [0.0] * 3
    assert Linear(2, 1, [[1.0, 2.0]]).parameters()[0].shape == (1, 2)
    with pytest.raises(ValueError, match=r"weight has shape \(2, 3\), expected \(3, 2\)"):
        Linear(2, 3, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


# --- MLP ---------------------------------------------------------------------------------------------

ACTIVATIONS: list[Any] = [
    "relu", "tanh", "sigmoid", "leaky_relu", "elu", "softplus", "silu", "gelu", "identity",
    ("gelu", {"approximate": "tanh"}), ("leaky_relu", {"negative_slope": 0.2}), ("elu", {"alpha": 0.5}),
    ("softplus", {"beta": 2.0, "threshold": 5.0})]
CURV = 1.0  # >= sup|f''| (gelu 0.80, tanh 0.77, silu 0.50, softplus β/4 = 0.5, elu α <= 1)
SIZES = [5, 7, 6, 3]


def split(act: Any) -> tuple[str, dict[str, Any]]:
    return (act, {}) if isinstance(act, str) else (act[0], act[1])


def torch_activation(act: Any):
    name, attrs = split(act)
    if name == "identity":
        return lambda h: h
    fn = resolve_torch(OPS[name].torch)
    return lambda h: fn(h, **attrs)


def mlp_scales(x, weights, biases, slopes, hs, deltas, ct):
    """First-order error magnitudes through the network (the error is at most a few eps times them).

    Forward, layer l: the pre-activation's terms are P = |W|·(|h| + M_h) + |b| — the dot product's
    own terms plus the error carried in with h (magnitude M_h, 0 for the exact input); the activation
    scales that by |f'(pre)| and rounds once more: M_h' = |f'|·P + |h'|. Backward, with δ the
    gradient at a layer's output: δ·f'(pre) carries D·|f'| from δ and |δ|·(CURV·P + 2) from f'
    itself (f' of an inexact pre-activation moves by f''·error; the formula for f' has terms of
    size <= 2); then D @ |W| passes to the layer below, D_preᵀ·(|h| + M_h) and Σ D_pre are the
    weight's and bias's gradient scales."""
    h_abs, mags = [x.abs()], [torch.zeros_like(x)]
    terms = []
    for w, b, slope, h in zip(weights, biases, slopes, hs):
        p = (h_abs[-1] + mags[-1]) @ w.abs().T + (0 if b is None else b.abs())
        terms.append(p)
        mags.append(slope * p + h.abs())
        h_abs.append(h.abs())
    d = ct.abs()
    g_params: list[torch.Tensor] = []
    for layer in reversed(range(len(weights))):
        d_pre = d * slopes[layer] + deltas[layer].abs() * (CURV * terms[layer] + 2)
        g_w = d_pre.T @ (h_abs[layer] + mags[layer])
        g_params = [g_w] + ([] if biases[layer] is None else [d_pre.sum(0)]) + g_params
        d = d_pre @ weights[layer].abs()
    return mags[-1], d, g_params


def activation_slope(act: Any, pre: torch.Tensor) -> torch.Tensor:
    """|f'(pre)| elementwise (1 for identity)."""
    if split(act)[0] == "identity":
        return torch.ones_like(pre)
    leaf = pre.detach().clone().requires_grad_()
    (slope,) = torch.autograd.grad(torch_activation(act)(leaf), leaf, torch.ones_like(leaf))
    return slope.abs()


def run_mlp_case(acts: list[Any], gen: torch.Generator, with_bias: list[bool]) -> None:
    __tracebackhide__ = True
    weights = [uniform(gen, (n_out, n_in)) for n_in, n_out in pairwise(SIZES)]
    biases = [uniform(gen, (n,)) if keep else None for n, keep in zip(SIZES[1:], with_bias)]
    x = uniform(gen, (4, SIZES[0]), -2.0, 2.0)
    ref = MLP(SIZES, acts, [w.tolist() for w in weights], [None if b is None else b.tolist() for b in biases])
    layers = torch.nn.ModuleList(torch_linear(w, b) for w, b in zip(weights, biases))
    rx, tx = pair(x)
    h, hs, slopes, posts = tx, [], [], []
    for layer, act in zip(layers, acts):
        pre = layer(h)
        h = torch_activation(act)(pre)
        slopes.append(activation_slope(act, pre))
        hs.append(h.detach())
        posts.append(h)
    out_r = ref(rx)
    ct = cotangent(gen, h.shape)
    deltas = torch.autograd.grad(h, posts, ct, retain_graph=True)  # δ at every layer's output
    value_scale, x_scale, param_scales = mlp_scales(x, weights, biases, slopes, hs, deltas, ct)
    what = f"MLP {SIZES} {acts}"
    assert_close(f"{what} value", out_r, h, value_scale)
    params_r, params_t = ref.parameters(), list(layers.parameters())
    assert [p.shape for p in params_r] == [tuple(p.shape) for p in params_t]
    got = grad(out_r, [rx, *params_r], ct.tolist())
    want = torch.autograd.grad(h, [tx, *params_t], ct)
    for k, (g_r, g_t, s) in enumerate(zip(got, want, [x_scale, *param_scales])):
        assert_close(f"{what} d/d{'x' if k == 0 else f'parameter {k - 1}'}", g_r, g_t, s)


@pytest.mark.parametrize("act", ACTIVATIONS, ids=str)
def test_mlp_every_activation(act, gen):
    run_mlp_case([act, act, "identity"], gen, [True, True, True])
    run_mlp_case([act, act, act], gen, [True, False, True])


def test_mlp_mixed_activations(gen):
    run_mlp_case(["tanh", ("leaky_relu", {"negative_slope": 0.1}), "sigmoid"], gen, [True, True, False])


def test_mlp_parameters_order_and_zero_grad():
    mlp = MLP([2, 3, 1], ["relu", "identity"],
              [[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[1.0, -1.0, 2.0]]], [[0.0, 0.0, 0.0], None])
    params = mlp.parameters()
    assert params == [mlp.layers[0].weight, mlp.layers[0].bias, mlp.layers[1].weight]
    out = mlp([[1.0, 2.0], [-1.0, 3.0]])
    assert out.tolist() == [[1.0 - 2.0 + 6.0], [0.0 - 3.0 + 4.0]]
    out.sum().backward()
    assert any(v.grad != 0 for p in params for v in p.elements)
    mlp.zero_grad()
    assert all(v.grad == 0 for p in params for v in p.elements)


def test_mlp_rejects_bad_configurations():
    w = [[[1.0, 0.0]], [[1.0]]]
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        MLP([2, 1, 1], ["swish", "identity"], w)
    with pytest.raises(TypeError, match="unknown attribute"):
        MLP([2, 1, 1], [("relu", {"slope": 0.1}), "identity"], w)
    with pytest.raises(ValueError, match="activations"):
        MLP([2, 1, 1], ["relu"], w)
