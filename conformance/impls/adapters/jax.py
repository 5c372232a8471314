"""JAX as an implementation under test (``--impl jax``), on the CPU, float64 enabled.

Each op is jax's own function (``jax.nn.relu``, ``jnp.maximum``, ``jax.nn.gelu(approximate=False)``,
``jax.nn.logsumexp``, …), so the derivative judged is jax's. ``softplus`` is left out: jax.nn.softplus
has neither torch's ``beta`` nor its ``threshold`` (above which torch's softplus is the identity), so
it is a different function, not a different derivative. The case is a function of a dict of leaves;
``jax.vjp`` gives the value and the gradient of ⟨cotangent, output⟩, and the HVP is ``jax.grad`` of
⟨that gradient, v⟩ — reverse over reverse, as ``run_torch`` does with ``create_graph=True``.
"""

from __future__ import annotations

import os
from importlib.metadata import version
from typing import Any

import numpy as np

from conformance.case.dtypes import DTYPES
from conformance.case.graph import GraphCase
from conformance.impls.adapters._common import (
    NUMPY_PAD_MODES,
    ArrayAdapter,
    OpTable,
    Raw,
    avg_pool_divisor,
    capabilities,
    dropout,
    forward,
    gru_loop,
    lstm_loop,
    pad_widths,
    pair,
    require,
    slice_at,
    window_pads,
)


def _table(jax: Any) -> OpTable:
    jnp, nn = jax.numpy, jax.nn
    return {
        "neg": lambda x: jnp.negative(x),
        "add": lambda a, b: jnp.add(a, b),
        "sub": lambda a, b: jnp.subtract(a, b),
        "mul": lambda a, b: jnp.multiply(a, b),
        "div": lambda a, b: jnp.divide(a, b),
        "pow": lambda a, b: jnp.power(a, b),
        "pow_scalar": lambda x, exponent: jnp.power(x, float(exponent)),
        "pow_int": lambda x, exponent: jnp.power(x, int(exponent)),  # lax.integer_pow
        "square": lambda x: jnp.square(x),
        "reciprocal": lambda x: jnp.reciprocal(x),
        "abs": lambda x: jnp.abs(x),
        "exp": lambda x: jnp.exp(x),
        "expm1": lambda x: jnp.expm1(x),
        "log": lambda x: jnp.log(x),
        "log1p": lambda x: jnp.log1p(x),
        "sqrt": lambda x: jnp.sqrt(x),
        "sin": lambda x: jnp.sin(x),
        "cos": lambda x: jnp.cos(x),
        "tanh": lambda x: jnp.tanh(x),
        "sigmoid": lambda x: nn.sigmoid(x),
        "erf": lambda x: jax.scipy.special.erf(x),
        "relu": lambda x: nn.relu(x),
        "leaky_relu": lambda x, negative_slope: nn.leaky_relu(x, negative_slope),
        "elu": lambda x, alpha: nn.elu(x, alpha),
        "silu": lambda x: nn.silu(x),
        "gelu": lambda x, approximate: nn.gelu(x, approximate=approximate == "tanh"),
        "clamp": lambda x, min, max: jnp.clip(x, min=min, max=max),
        "maximum": lambda a, b: jnp.maximum(a, b),
        "minimum": lambda a, b: jnp.minimum(a, b),
        "sum": lambda x, dim, keepdim: jnp.sum(x, axis=dim, keepdims=keepdim),
        "mean": lambda x, dim, keepdim: jnp.mean(x, axis=dim, keepdims=keepdim),
        "amax": lambda x, dim, keepdim: jnp.max(x, axis=dim, keepdims=keepdim),
        "logsumexp": lambda x, dim, keepdim: nn.logsumexp(x, axis=dim, keepdims=keepdim),
        "softmax": lambda x, dim: nn.softmax(x, axis=dim),
        "log_softmax": lambda x, dim: nn.log_softmax(x, axis=dim),
        "transpose": lambda x, dim0, dim1: jnp.swapaxes(x, dim0, dim1),
        "reshape": lambda x, shape: jnp.reshape(x, shape),
        "matmul": lambda a, b: jnp.matmul(a, b),
        **_layers(jax),
        **_later_layers(jax),
    }


def _layers(jax: Any) -> OpTable:
    """The layer ops: ``lax.conv_general_dilated`` (groups as ``feature_group_count``), ``lax.reduce_window``
    for pooling (torch's ceil_mode as more padding on the right, −inf for a max pool; an average pool's
    sum over torch's divisor), the normalizations written with ``jnp.mean``/``jnp.var`` and
    ``lax.rsqrt`` as flax writes them (a half-precision input in float32, as flax promotes it),
    ``jnp.take``/``take_along_axis``, ``.at[].add``, ``jnp.where``, ``jnp.cumsum``/``cumprod``/``prod``."""
    jnp, lax = jax.numpy, jax.lax

    def conv(x: Any, w: Any, b: Any, stride: Any, padding: Any, dilation: Any, groups: int) -> Any:
        n = x.ndim - 2
        each = (lambda v: (v,) * n if isinstance(v, int) else tuple(v))
        spec = {1: ("NCH", "OIH", "NCH"), 2: ("NCHW", "OIHW", "NCHW")}[n]
        y = lax.conv_general_dilated(x, w, each(stride), [(p, p) for p in each(padding)], rhs_dilation=each(dilation),
                                     dimension_numbers=spec, feature_group_count=groups)
        return y + b.reshape((1, -1) + (1,) * n)

    def pool(x: Any, init: float, op: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
             ceil_mode: bool) -> Any:
        k, d = pair(kernel_size), pair(dilation)
        s = pair(stride) if stride else k
        pads = [window_pads(*a, ceil_mode)[:2] for a in zip(x.shape[2:], k, s, pair(padding), d)]
        return lax.reduce_window(x, init, op, (1, 1, *k), (1, 1, *s),
                                 ((0, 0), (0, 0), *[(lo, max(hi, 0)) for lo, hi in pads]), window_dilation=(1, 1, *d))

    def avg_pool2d(x: Any, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
                   count_include_pad: bool) -> Any:
        total = pool(x, 0.0, lax.add, kernel_size, stride, padding, 1, ceil_mode)
        return total / avg_pool_divisor(x.shape[2:], kernel_size, stride, padding, ceil_mode, count_include_pad,
                                        x.dtype)

    def normalize(x: Any, axes: tuple[int, ...], eps: float) -> Any:
        """In at least float32, as flax's ``_compute_stats`` promotes a half-precision input (float32
        and float64 in themselves); the caller casts the scaled and shifted result back once."""
        x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        mean = jnp.mean(x, axes, keepdims=True)
        return (x - mean) * lax.rsqrt(jnp.var(x, axes, keepdims=True) + eps)  # biased variance

    def per_channel(x: Any, v: Any) -> Any:
        return v.reshape((1, -1) + (1,) * (x.ndim - 2))

    def batch_norm(x: Any, weight: Any, bias: Any, eps: float) -> Any:
        y = normalize(x, (0, *range(2, x.ndim)), eps)
        return (y * per_channel(x, weight) + per_channel(x, bias)).astype(x.dtype)

    def layer_norm(x: Any, weight: Any, bias: Any, normalized_shape: Any, eps: float) -> Any:
        return (normalize(x, tuple(range(-len(normalized_shape), 0)), eps) * weight + bias).astype(x.dtype)

    def group_norm(x: Any, weight: Any, bias: Any, num_groups: int, eps: float) -> Any:
        y = normalize(x.reshape(x.shape[0], num_groups, -1), (2,), eps).reshape(x.shape)
        return (y * per_channel(x, weight) + per_channel(x, bias)).astype(x.dtype)

    def gather(x: Any, dim: int, index: Any) -> Any:  # torch's index may be smaller than x beside dim
        part = tuple(slice(None) if k == dim % x.ndim else slice(0, n) for k, n in enumerate(index.shape))
        return jnp.take_along_axis(x[part], index, axis=dim)

    def scatter_add(x: Any, src: Any, dim: int, index: Any) -> Any:
        where = list(np.indices(index.shape, sparse=True))
        where[dim] = index
        return x.at[tuple(where)].add(src)

    return {
        "conv2d": conv,
        "conv1d": conv,
        "max_pool2d": lambda x, kernel_size, stride, padding, dilation, ceil_mode: pool(
            x, -jnp.inf, lax.max, kernel_size, stride, padding, dilation, ceil_mode),
        "avg_pool2d": avg_pool2d,
        "batch_norm": batch_norm,
        "layer_norm": layer_norm,
        "group_norm": group_norm,
        "index_select": lambda x, dim, index: jnp.take(x, index, axis=dim),
        "gather": gather,
        "embedding": lambda weight, input: jnp.take(weight, input, axis=0),
        "scatter_add": scatter_add,
        "where": lambda x, y, condition: jnp.where(condition, x, y),
        "masked_fill": lambda x, mask, value: jnp.where(mask, value, x),
        "cumsum": lambda x, dim: jnp.cumsum(x, axis=dim),
        "cumprod": lambda x, dim: jnp.cumprod(x, axis=dim),
        "prod": lambda x, dim, keepdim: jnp.prod(x, axis=dim, keepdims=keepdim),
    }


def _later_layers(jax: Any) -> OpTable:
    """The layer ops declared after the first sixteen: conv_transpose2d as ``lax.conv_general_dilated``
    with the input dilated by the stride (``lhs_dilation``: how ``lax.conv_transpose`` and flax's
    ``ConvTranspose`` compute it) — the kernel flipped and its in/out axes swapped per group, padded by
    d(k − 1) − p before and that plus output_padding after (negative: cropped) —, ``jnp.var``/``jnp.std``
    with ``ddof`` as torch's correction, ``jnp.linalg.vector_norm(ord=2)``, ``jnp.concatenate``,
    ``jnp.stack``, slicing, ``jnp.pad`` (torch's replicate and circular are numpy's edge and wrap),
    dropout as ``x * mask / (1 − p)``, ``jax.nn.dot_product_attention`` (its layout (B, T, N, H): a case's
    (B, L, E) gets N = 1, a (B, H, L, E) has its heads moved), and the LSTM and GRU as the loop of
    ``jax.nn.sigmoid``, ``jnp.tanh`` and matmuls (jax has no recurrent cell; flax's are modules)."""
    jnp, lax = jax.numpy, jax.lax

    def conv_transpose2d(x: Any, w: Any, b: Any, stride: Any, padding: Any, output_padding: Any, groups: int,
                         dilation: Any) -> Any:
        s, p, op, d = pair(stride), pair(padding), pair(output_padding), pair(dilation)
        c, per_out, kh, kw = w.shape  # (C, O/g, kh, kw) -> (O, C/g, kh, kw), group by group
        w = w.reshape(groups, c // groups, per_out, kh, kw).swapaxes(1, 2).reshape(-1, c // groups, kh, kw)
        pads = [(dd * (k - 1) - pp, dd * (k - 1) - pp + oo) for k, pp, oo, dd in zip((kh, kw), p, op, d)]
        y = lax.conv_general_dilated(x, w[:, :, ::-1, ::-1], (1, 1), pads, lhs_dilation=s, rhs_dilation=d,
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"), feature_group_count=groups)
        return y + b.reshape(1, -1, 1, 1)

    def attention(q: Any, k: Any, v: Any, is_causal: bool, scale: Any) -> Any:
        heads = q.ndim == 4  # (B, H, L, E) -> (B, L, H, E); (B, L, E) -> (B, L, 1, E)
        lay = (lambda a: a.swapaxes(1, 2)) if heads else (lambda a: a[:, :, None, :])
        y = jax.nn.dot_product_attention(lay(q), lay(k), lay(v), scale=scale, is_causal=is_causal)
        return y.swapaxes(1, 2) if heads else y[:, :, 0, :]

    def pad(x: Any, pad: Any, mode: str, value: Any = None) -> Any:
        widths = pad_widths(x.ndim, pad)
        if mode == "constant":
            return jnp.pad(x, widths, mode="constant", constant_values=0.0 if value is None else value)
        return jnp.pad(x, widths, mode=NUMPY_PAD_MODES[mode])

    recur = dict(sigmoid=jax.nn.sigmoid, tanh=jnp.tanh, stack=jnp.stack)
    return {
        "conv_transpose2d": conv_transpose2d,
        "var": lambda x, dim, keepdim, correction: jnp.var(x, axis=dim, ddof=correction, keepdims=keepdim),
        "std": lambda x, dim, keepdim, correction: jnp.std(x, axis=dim, ddof=correction, keepdims=keepdim),
        "vector_norm": lambda x, dim, keepdim: jnp.linalg.vector_norm(x, axis=dim, keepdims=keepdim, ord=2),
        "cat": lambda *xs, dim: jnp.concatenate(xs, axis=dim),
        "stack": lambda *xs, dim: jnp.stack(xs, axis=dim),
        "slice": lambda x, dim, start=None, stop=None, step=1: x[slice_at(x.ndim, dim, start, stop, step)],
        "pad": pad,
        "dropout": dropout,
        "scaled_dot_product_attention": attention,
        "lstm": lambda *args: lstm_loop(*args, **recur),
        "gru": lambda *args: gru_loop(*args, **recur),
    }


class JaxImpl(ArrayAdapter):
    """jax on the CPU with ``jax_enable_x64`` (else float64 arrays silently become float32), in every
    dtype of the case format (``jnp.float16``, ``jnp.bfloat16``: the dtypes' names are jax's)."""

    def __init__(self) -> None:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")  # no probing for accelerators
        jax = require("jax", "jax")
        jax.config.update("jax_enable_x64", True)
        self.jax = jax
        self.name, self.version = "jax", version("jax")
        self.table = _table(jax)
        self.capabilities = capabilities(self.table, tuple(DTYPES), second_order=True)

    def evaluate(self, case: GraphCase) -> Raw:
        jax, jnp = self.jax, self.jax.numpy
        leaves, ct_, so_ = self.leaf_arrays(case)
        cpu, dt = jax.devices("cpu")[0], jnp.dtype(case.dtype)

        def put(v: np.ndarray) -> Any:  # in the case's dtype (bfloat16 arrives in float32: exact)
            return jax.device_put(v.astype(dt), cpu)

        xs, ct = {k: put(v) for k, v in leaves.items()}, put(ct_)
        so = None if so_ is None else {k: put(v) for k, v in so_.items()}

        def f(xs: dict[str, Any]) -> Any:
            return forward(case, self.table, xs)

        def grads(xs: dict[str, Any]) -> dict[str, Any]:
            return jax.vjp(f, xs)[1](ct)[0]

        value, pull = jax.vjp(f, xs)
        g = pull(ct)[0]
        if so is None:
            return value, g, None

        def dot(xs: dict[str, Any]) -> Any:
            gs = grads(xs)
            return sum(jnp.sum(gs[k] * so[k]) for k in gs)

        return value, g, jax.grad(dot)(xs)
