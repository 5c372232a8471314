"""MyGrad as an implementation under test (``--impl mygrad``).

MyGrad is a numpy-backed, torch-like tape: ``mygrad.tensor`` leaves, ``out.backward(cotangent)``,
then ``leaf.grad``. Each op is MyGrad's own function (``mg.maximum``, ``mg.clip``, ``mg.max`` for
amax, ``mygrad.nnet.activations.relu/leaky_relu/elu/sigmoid/softmax/logsoftmax``). MyGrad has no
erf, softplus, silu, gelu or differentiable logsumexp (``mygrad.math._special.logsumexp`` is a
numpy helper), so those are unsupported; nor higher-order gradients (``grad`` is a plain array), so
no second order. float64 and float32 (MyGrad keeps the numpy dtype of its leaves).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import numpy

from conformance.case.graph import GraphCase
from conformance.impls.adapters._common import (
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
    pair,
    require,
    slice_at,
    window_pads,
    window_views,
    zeros_like_leaf,
)


def _table(mg: Any, act: Any, nnet: Any) -> OpTable:
    return {
        "neg": lambda x: mg.negative(x),
        "add": lambda a, b: mg.add(a, b),
        "sub": lambda a, b: mg.subtract(a, b),
        "mul": lambda a, b: mg.multiply(a, b),
        "div": lambda a, b: mg.divide(a, b),
        "pow": lambda a, b: mg.power(a, b),
        "pow_scalar": lambda x, exponent: mg.power(x, float(exponent)),
        "pow_int": lambda x, exponent: mg.power(x, int(exponent)),
        "square": lambda x: mg.square(x),
        "reciprocal": lambda x: mg.reciprocal(x),
        "abs": lambda x: mg.absolute(x),
        "exp": lambda x: mg.exp(x),
        "expm1": lambda x: mg.expm1(x),
        "log": lambda x: mg.log(x),
        "log1p": lambda x: mg.log1p(x),
        "sqrt": lambda x: mg.sqrt(x),
        "sin": lambda x: mg.sin(x),
        "cos": lambda x: mg.cos(x),
        "tanh": lambda x: mg.tanh(x),
        "sigmoid": lambda x: act.sigmoid(x),
        "relu": lambda x: act.relu(x),
        "leaky_relu": lambda x, negative_slope: act.leaky_relu(x, negative_slope),
        "elu": lambda x, alpha: act.elu(x, alpha),
        "clamp": lambda x, min, max: mg.clip(x, min, max),
        "maximum": lambda a, b: mg.maximum(a, b),
        "minimum": lambda a, b: mg.minimum(a, b),
        "sum": lambda x, dim, keepdim: mg.sum(x, axis=dim, keepdims=keepdim),
        "mean": lambda x, dim, keepdim: mg.mean(x, axis=dim, keepdims=keepdim),
        "amax": lambda x, dim, keepdim: mg.max(x, axis=dim, keepdims=keepdim),
        "softmax": lambda x, dim: act.softmax(x, axis=dim),
        "log_softmax": lambda x, dim: act.logsoftmax(x, axis=dim),
        "transpose": lambda x, dim0, dim1: mg.swapaxes(x, dim0, dim1),
        "reshape": lambda x, shape: mg.reshape(x, shape),
        "matmul": lambda a, b: mg.matmul(a, b),
        **_layers(mg, nnet),
        **_later_layers(mg, act),
    }


def _layers(mg: Any, nnet: Any) -> OpTable:
    """The layer ops: ``mygrad.nnet.conv_nd`` (no groups: one call per group; no bias: added),
    ``mygrad.nnet.max_pool``, ``mygrad.nnet.batchnorm``, the other normalizations from ``mg.mean``,
    ``mg.var`` and ``mg.sqrt``, fancy indexing, ``mg.where``, ``mg.cumsum``/``cumprod``/``prod``.
    conv_nd and max_pool take only windows that tile the input exactly (a stride that leaves a
    remainder is a ValueError), and max_pool has no padding, ceil_mode or dilation; so the adapter pads
    the input itself (zeros; −inf for a max pool) and drops what torch's floor drops, and a dilated max
    pool is ``mg.max`` over the window's strided views. An average pool is a sum — conv_nd with a
    filter of ones — over torch's divisor. scatter_add is left out: mygrad has no index-add (``x[i] +=``
    counts a repeated index once)."""

    def padded(x: Any, pads: list[tuple[int, int, int]], fill: float) -> Any:
        """``x`` with ``before``/``after`` elements of ``fill`` on each trailing axis (a negative
        ``after``: that many dropped), by concatenation: mygrad has no pad."""
        lead = x.ndim - len(pads)
        for axis, (before, after, _) in enumerate(pads, start=lead):
            if after < 0:
                x = x[(slice(None),) * axis + (slice(0, x.shape[axis] + after),)]
            parts = []
            for n, at in ((before, 0), (max(after, 0), 1)):
                if n:
                    shape = list(x.shape)
                    shape[axis] = n
                    parts.append((at, mg.full(tuple(shape), fill, dtype=x.dtype, constant=True)))
            if parts:
                x = mg.concatenate([p for at, p in parts if at == 0] + [x] + [p for at, p in parts if at == 1],
                                   axis=axis)
        return x

    def conv(x: Any, w: Any, b: Any, stride: Any, padding: Any, dilation: Any, groups: int) -> Any:
        n = x.ndim - 2
        each = (lambda v: (v,) * n if isinstance(v, int) else tuple(v))
        s, d = each(stride), each(dilation)
        pads = [window_pads(*a) for a in zip(x.shape[2:], w.shape[2:], s, each(padding), d)]
        if all(after == before for before, after, _ in pads):  # conv_nd's own padding gives torch's windows
            own = tuple(before for before, _, _ in pads)
        else:
            x, own = padded(x, pads, 0.0), (0,) * n
        cin, cout = x.shape[1] // groups, w.shape[0] // groups
        ys = [nnet.conv_nd(x[:, g * cin:(g + 1) * cin], w[g * cout:(g + 1) * cout], stride=s, padding=own, dilation=d)
              for g in range(groups)]
        return (ys[0] if groups == 1 else mg.concatenate(ys, axis=1)) + b.reshape((1, -1) + (1,) * n)

    def max_pool2d(x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool) -> Any:
        k, d = pair(kernel_size), pair(dilation)
        s = pair(stride) if stride else k
        pads = [window_pads(*a, ceil_mode) for a in zip(x.shape[2:], k, s, pair(padding), d)]
        xp = padded(x, pads, -numpy.inf)
        if d == (1, 1):
            return nnet.max_pool(xp, k, s)
        views = window_views(xp, k, s, d, tuple(out for _, _, out in pads))
        return mg.max(mg.stack(views, axis=-1), axis=-1)

    def avg_pool2d(x: Any, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
                   count_include_pad: bool) -> Any:
        k = pair(kernel_size)
        s = pair(stride) if stride else k
        pads = [window_pads(*a, 1, ceil_mode) for a in zip(x.shape[2:], k, s, pair(padding))]
        xp = padded(x, pads, 0.0)
        (n, c), out = x.shape[:2], tuple(o for _, _, o in pads)
        ones = numpy.ones((1, 1, *k), dtype=x.dtype)
        total = nnet.conv_nd(xp.reshape(n * c, 1, *xp.shape[2:]), ones, stride=s).reshape(n, c, *out)
        return total / avg_pool_divisor(x.shape[2:], kernel_size, stride, padding, ceil_mode, count_include_pad,
                                        x.dtype)

    def normalize(x: Any, axes: tuple[int, ...], eps: float) -> Any:
        mean = mg.mean(x, axis=axes, keepdims=True)
        return (x - mean) / mg.sqrt(mg.var(x, axis=axes, keepdims=True) + eps)  # biased variance

    def group_norm(x: Any, weight: Any, bias: Any, num_groups: int, eps: float) -> Any:
        y = normalize(x.reshape(x.shape[0], num_groups, -1), (2,), eps).reshape(x.shape)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return y * weight.reshape(shape) + bias.reshape(shape)

    def along(x: Any, dim: int, index: Any) -> Any:
        return x[(slice(None),) * (dim % x.ndim) + (index,)]

    def gather(x: Any, dim: int, index: Any) -> Any:
        where = list(numpy.indices(index.shape, sparse=True))
        where[dim] = index
        return x[tuple(where)]

    return {
        "conv2d": conv,
        "conv1d": conv,
        "max_pool2d": max_pool2d,
        "avg_pool2d": avg_pool2d,
        "batch_norm": lambda x, weight, bias, eps: nnet.batchnorm(x, gamma=weight, beta=bias, eps=eps),
        "layer_norm": lambda x, weight, bias, normalized_shape, eps: normalize(
            x, tuple(range(-len(normalized_shape), 0)), eps) * weight + bias,
        "group_norm": group_norm,
        "index_select": along,
        "gather": gather,
        "embedding": lambda weight, input: weight[input],
        "where": lambda x, y, condition: mg.where(condition, x, y),
        "masked_fill": lambda x, mask, value: mg.where(mask, value, x),
        "cumsum": lambda x, dim: mg.cumsum(x, axis=dim),
        "cumprod": lambda x, dim: mg.cumprod(x, axis=dim),
        "prod": lambda x, dim, keepdim: mg.prod(x, axis=dim, keepdims=keepdim),
    }


def _later_layers(mg: Any, act: Any) -> OpTable:
    """The layer ops declared after the first sixteen: ``mg.var``/``mg.std`` with ``ddof`` as torch's
    correction, ``mygrad.linalg.norm`` (``ord=None``: the 2-norm of a vector, Frobenius over two axes;
    every axis as None, numpy's norm taking at most two), ``mg.concatenate``, ``mg.stack``, slicing, dropout
    as ``x * mask / (1 − p)``, and the LSTM and GRU as the loop of ``sigmoid``, ``mg.tanh`` and matmuls
    (mygrad has no LSTM; its ``nnet.layers.gru`` is another GRU — the reset gate applied to h before its
    matmul, one bias per gate — and needs numba). Left out: conv_transpose2d, pad and attention, which
    mygrad has no function for."""
    linalg = require("mygrad.linalg", "mygrad")
    recur = dict(sigmoid=act.sigmoid, tanh=mg.tanh, stack=mg.stack)
    return {
        "var": lambda x, dim, keepdim, correction: mg.var(x, axis=dim, ddof=correction, keepdims=keepdim),
        "std": lambda x, dim, keepdim, correction: mg.std(x, axis=dim, ddof=correction, keepdims=keepdim),
        "vector_norm": lambda x, dim, keepdim: linalg.norm(x, axis=norm_axis(x.ndim, dim), keepdims=keepdim),
        "cat": lambda *xs, dim: mg.concatenate(xs, axis=dim),
        "stack": lambda *xs, dim: mg.stack(xs, axis=dim),
        "slice": lambda x, dim, start=None, stop=None, step=1: x[slice_at(x.ndim, dim, start, stop, step)],
        "dropout": dropout,
        "lstm": lambda *args: lstm_loop(*args, **recur),
        "gru": lambda *args: gru_loop(*args, **recur),
    }


class MyGradImpl(ArrayAdapter):
    """MyGrad: float64 and float32, first order only."""

    def __init__(self) -> None:
        self.mg = require("mygrad", "mygrad")
        act = require("mygrad.nnet.activations", "mygrad")
        nnet = require("mygrad.nnet", "mygrad")
        self.name, self.version = "mygrad", version("mygrad")
        self.table = _table(self.mg, act, nnet)
        self.capabilities = capabilities(self.table, ("float64", "float32"), second_order=False)

    def evaluate(self, case: GraphCase) -> Raw:
        arrays, ct, _ = self.leaf_arrays(case)
        xs = {k: self.mg.tensor(v, dtype=v.dtype) for k, v in arrays.items()}  # fresh: no stale .grad
        out = forward(case, self.table, xs)
        value = numpy.array(out.data, copy=True)  # backward() may clear the graph, never the data
        out.backward(ct)
        return value, {k: zeros_like_leaf(case, k) if x.grad is None else x.grad for k, x in xs.items()}, None
