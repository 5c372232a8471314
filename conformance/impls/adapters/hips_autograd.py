"""HIPS autograd as an implementation under test (``--impl autograd``).

autograd differentiates numpy code through ``autograd.numpy`` and ``autograd.scipy.special``; each
op here is the function of those modules named like numpy's or scipy's (``np.maximum``, ``np.clip``,
``special.expit`` for sigmoid, ``special.logsumexp``). autograd has no neural-network module, so
relu, leaky_relu, elu, softplus, silu, gelu, softmax and log_softmax are left out (unsupported)
rather than rebuilt from other functions. ``erf``, ``sigmoid`` and ``logsumexp`` need scipy, which
autograd does not require: without it they are left out too. The module is named ``hips_autograd``
so that it never shadows the library (``import autograd``).

The case is a function of a dict of leaves: ``make_vjp`` gives the value and the gradient of
⟨cotangent, output⟩; the HVP is ``grad`` of ⟨that gradient, v⟩ (autograd differentiates its own
backward pass, as torch does with ``create_graph=True``).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import numpy

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
    norm_axis,
    pad_widths,
    pair,
    require,
    slice_at,
    window_pads,
    window_views,
)


def _table(np: Any, special: Any | None, signal: Any | None) -> OpTable:
    table: OpTable = {
        "neg": lambda x: np.negative(x),
        "add": lambda a, b: np.add(a, b),
        "sub": lambda a, b: np.subtract(a, b),
        "mul": lambda a, b: np.multiply(a, b),
        "div": lambda a, b: np.divide(a, b),
        "pow": lambda a, b: np.power(a, b),
        "pow_scalar": lambda x, exponent: np.power(x, float(exponent)),
        "pow_int": lambda x, exponent: np.power(x, int(exponent)),
        "square": lambda x: np.square(x),
        "reciprocal": lambda x: np.reciprocal(x),
        "abs": lambda x: np.abs(x),
        "exp": lambda x: np.exp(x),
        "expm1": lambda x: np.expm1(x),
        "log": lambda x: np.log(x),
        "log1p": lambda x: np.log1p(x),
        "sqrt": lambda x: np.sqrt(x),
        "sin": lambda x: np.sin(x),
        "cos": lambda x: np.cos(x),
        "tanh": lambda x: np.tanh(x),
        "clamp": lambda x, min, max: np.clip(x, min, max),
        "maximum": lambda a, b: np.maximum(a, b),
        "minimum": lambda a, b: np.minimum(a, b),
        "sum": lambda x, dim, keepdim: np.sum(x, axis=dim, keepdims=keepdim),
        "mean": lambda x, dim, keepdim: np.mean(x, axis=dim, keepdims=keepdim),
        "amax": lambda x, dim, keepdim: np.max(x, axis=dim, keepdims=keepdim),
        "transpose": lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1),
        "reshape": lambda x, shape: np.reshape(x, shape),
        "matmul": lambda a, b: np.matmul(a, b),
        **_layers(np),
        **_later_layers(np),
    }
    if special is not None:
        recur = dict(sigmoid=special.expit, tanh=np.tanh, stack=np.stack)  # the LSTM and GRU loops
        table["lstm"] = lambda *args: lstm_loop(*args, **recur)
        table["gru"] = lambda *args: gru_loop(*args, **recur)
        table["sigmoid"] = lambda x: special.expit(x)
        table["erf"] = lambda x: special.erf(x)
        table["logsumexp"] = lambda x, dim, keepdim: special.logsumexp(x, axis=dim, keepdims=keepdim)
    if signal is not None:
        table["conv2d"] = table["conv1d"] = _conv(np, signal.convolve)
    return table


def _padded(np: Any, x: Any, pads: list[tuple[int, int, int]], fill: float) -> Any:
    """``x`` padded with ``fill`` on its trailing axes as :func:`window_pads` says (``np.pad``; a negative
    ``after`` drops that many)."""
    lead = ((0, 0),) * (x.ndim - len(pads))
    x = np.pad(x, lead + tuple((before, max(after, 0)) for before, after, _ in pads), mode="constant",
               constant_values=fill)
    return x[tuple(slice(None) for _ in lead) + tuple(slice(0, x.shape[a] + min(after, 0))
                                                      for a, (_, after, _) in enumerate(pads, start=len(lead)))]


def _conv(np: Any, convolve: Any) -> Any:
    """conv1d and conv2d through ``autograd.scipy.signal.convolve`` (autograd's only convolution, as in
    its convnet example): over the input zero-padded with ``np.pad``, in ``mode="valid"``, channels
    contracted as ``dot_axes``, the kernel flipped (convolve convolves; torch correlates) and dilated
    (zeros stacked between its taps: ``np.kron``'s VJP is wrong beyond two dims, docs/findings.md),
    every stride-th output kept, one call per group."""

    def conv(x: Any, w: Any, b: Any, stride: Any, padding: Any, dilation: Any, groups: int) -> Any:
        n = x.ndim - 2
        each = (lambda v: (v,) * n if isinstance(v, int) else tuple(v))
        s, d = each(stride), each(dilation)
        k = w.shape[2:]
        x = _padded(np, x, [window_pads(*a) for a in zip(x.shape[2:], k, s, each(padding), d)], 0.0)
        for axis, dd in enumerate(d, start=2):  # d − 1 zeros between taps: each tap and its zeros stacked
            if dd > 1:
                w = np.stack([w] + [numpy.zeros(w.shape, w.dtype)] * (dd - 1), axis=axis + 1)
                w = np.reshape(w, (*w.shape[:axis], w.shape[axis] * dd, *w.shape[axis + 2:]))
                w = w[(slice(None),) * axis + (slice(0, (k[axis - 2] - 1) * dd + 1),)]
        w = w[(slice(None),) * 2 + (slice(None, None, -1),) * n]
        axes = list(range(2, 2 + n))
        cin, cout = x.shape[1] // groups, w.shape[0] // groups
        ys = [convolve(x[:, g * cin:(g + 1) * cin], w[g * cout:(g + 1) * cout], axes=(axes, axes),
                       dot_axes=([1], [1]), mode="valid") for g in range(groups)]
        y = ys[0] if groups == 1 else np.concatenate(ys, axis=1)
        return y[(slice(None),) * 2 + tuple(slice(None, None, v) for v in s)] + b.reshape((1, -1) + (1,) * n)

    return conv


def _layers(np: Any) -> OpTable:
    """The layer ops autograd can write with numpy: pooling as the maximum (``np.max``) or the sum of the
    window's strided views of the ``np.pad``-ded input (−inf for a max pool) — autograd has no pooling —,
    the sum over torch's divisor; the normalizations from ``np.mean``, ``np.var`` and ``np.sqrt``; fancy
    indexing (``np.take`` and ``np.take_along_axis`` have no VJP); ``np.where``, ``np.cumsum``, ``np.prod``.
    Left out: scatter_add (autograd arrays take no assignment, so no index-add) and cumprod
    (``np.cumprod`` has no VJP: NotImplementedError)."""

    def pool(x: Any, fill: float, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
             ceil_mode: bool) -> list[Any]:
        k, d = pair(kernel_size), pair(dilation)
        s = pair(stride) if stride else k
        pads = [window_pads(*a, ceil_mode) for a in zip(x.shape[2:], k, s, pair(padding), d)]
        return window_views(_padded(np, x, pads, fill), k, s, d, tuple(out for _, _, out in pads))

    def max_pool2d(x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool) -> Any:
        return np.max(np.stack(pool(x, -numpy.inf, kernel_size, stride, padding, dilation, ceil_mode), -1), -1)

    def avg_pool2d(x: Any, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
                   count_include_pad: bool) -> Any:
        views = pool(x, 0.0, kernel_size, stride, padding, 1, ceil_mode)
        return sum(views[1:], views[0]) / avg_pool_divisor(x.shape[2:], kernel_size, stride, padding, ceil_mode,
                                                           count_include_pad, x.dtype)

    def normalize(x: Any, axes: tuple[int, ...], eps: float) -> Any:
        mean = np.mean(x, axis=axes, keepdims=True)
        return (x - mean) / np.sqrt(np.var(x, axis=axes, keepdims=True) + eps)  # biased variance

    def per_channel(x: Any, v: Any) -> Any:
        return np.reshape(v, (1, -1) + (1,) * (x.ndim - 2))

    def gather(x: Any, dim: int, index: Any) -> Any:
        where = list(numpy.indices(index.shape, sparse=True))
        where[dim] = index
        return x[tuple(where)]

    return {
        "max_pool2d": max_pool2d,
        "avg_pool2d": avg_pool2d,
        "batch_norm": lambda x, weight, bias, eps: normalize(x, (0, *range(2, x.ndim)), eps) * per_channel(
            x, weight) + per_channel(x, bias),
        "layer_norm": lambda x, weight, bias, normalized_shape, eps: normalize(
            x, tuple(range(-len(normalized_shape), 0)), eps) * weight + bias,
        "group_norm": lambda x, weight, bias, num_groups, eps: normalize(
            np.reshape(x, (x.shape[0], num_groups, -1)), (2,), eps).reshape(x.shape) * per_channel(
            x, weight) + per_channel(x, bias),
        "index_select": lambda x, dim, index: x[(slice(None),) * (dim % x.ndim) + (index,)],
        "gather": gather,
        "embedding": lambda weight, input: weight[input],
        "where": lambda x, y, condition: np.where(condition, x, y),
        "masked_fill": lambda x, mask, value: np.where(mask, value, x),
        "cumsum": lambda x, dim: np.cumsum(x, axis=dim),
        "prod": lambda x, dim, keepdim: np.prod(x, axis=dim, keepdims=keepdim),
    }


def _later_layers(np: Any) -> OpTable:
    """The layer ops declared after the first sixteen: ``np.var``/``np.std`` with ``ddof`` as torch's
    correction, ``np.linalg.norm`` (``ord=None``: the 2-norm of a vector, Frobenius over two axes; every
    axis as None, numpy's norm taking at most two), ``np.concatenate``, ``np.stack``, slicing, ``np.pad``
    (torch's replicate and circular are numpy's edge and wrap), dropout as ``x * mask / (1 − p)``; with
    scipy, the LSTM and GRU as the loop of ``special.expit``, ``np.tanh`` and matmuls (in ``_table``).
    Left out: conv_transpose2d and attention, which autograd has no function for."""

    def pad(x: Any, pad: Any, mode: str, value: Any = None) -> Any:
        widths = pad_widths(x.ndim, pad)
        if mode == "constant":
            return np.pad(x, widths, mode="constant", constant_values=0.0 if value is None else value)
        return np.pad(x, widths, mode=NUMPY_PAD_MODES[mode])

    return {
        "var": lambda x, dim, keepdim, correction: np.var(x, axis=dim, ddof=correction, keepdims=keepdim),
        "std": lambda x, dim, keepdim, correction: np.std(x, axis=dim, ddof=correction, keepdims=keepdim),
        "vector_norm": lambda x, dim, keepdim: np.linalg.norm(x, axis=norm_axis(x.ndim, dim), keepdims=keepdim),
        "cat": lambda *xs, dim: np.concatenate(xs, axis=dim),
        "stack": lambda *xs, dim: np.stack(xs, axis=dim),
        "slice": lambda x, dim, start=None, stop=None, step=1: x[slice_at(x.ndim, dim, start, stop, step)],
        "pad": pad,
        "dropout": dropout,
    }


class AutogradImpl(ArrayAdapter):
    """HIPS autograd over numpy: float64 and float32, second order."""

    def __init__(self) -> None:
        autograd = require("autograd", "autograd")
        np = require("autograd.numpy", "autograd")
        try:
            special = require("autograd.scipy.special", "autograd")
        except ImportError:  # scipy is optional for autograd
            special = None
        try:
            signal = require("autograd.scipy.signal", "autograd")
        except ImportError:
            signal = None
        self.autograd, self.np = autograd, np
        self.name, self.version = "autograd", version("autograd")
        self.table = _table(np, special, signal)
        self.capabilities = capabilities(self.table, ("float64", "float32"), second_order=True)

    def evaluate(self, case: GraphCase) -> Raw:
        ag, np = self.autograd, self.np
        xs, ct, so = self.leaf_arrays(case)

        def f(xs: dict[str, Any]) -> Any:
            return forward(case, self.table, xs)

        def grads(xs: dict[str, Any]) -> dict[str, Any]:
            return ag.make_vjp(f)(xs)[0](ct)

        pull, value = ag.make_vjp(f)(xs)
        g = pull(ct)
        if so is None:
            return value, g, None

        def dot(xs: dict[str, Any]) -> Any:
            gs = grads(xs)
            return sum(np.sum(gs[k] * so[k]) for k in gs)

        return value, g, ag.grad(dot)(xs)
