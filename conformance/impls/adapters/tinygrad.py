"""tinygrad as an implementation under test (``--impl tinygrad``).

Each op is tinygrad's own ``Tensor`` method (``relu``, ``leaky_relu(neg_slope)``, ``elu(alpha)``,
``gelu(approximate)``, ``erf``, ``clamp``, ``maximum``, ``max`` for amax, ``logsumexp``,
``softmax``, …) — most are compositions of a few primitives *inside* tinygrad, which is tinygrad's
business: the derivative judged is the one tinygrad computes for its own API. tinygrad has no
``expm1`` or ``log1p``, and its ``softplus(beta)`` has no ``threshold`` (a different function
from torch's above threshold/beta): those three are unsupported.

Tensors are created in the case's dtype explicitly (``dtypes.float64``, ``float32``, ``float16``,
``bfloat16``: the dtypes' names are tinygrad's): tinygrad's default float is float32.
Gradients come from ``out.gradient(*leaves, gradient=cotangent)``, which builds them as tinygrad
tensors themselves, so the HVP is ``gradient`` of ⟨those, v⟩.

The device: ``$DEV`` if set, else ``CPU`` when a ``clang`` binary is on the PATH (tinygrad's CPU
device compiles every kernel with it), else ``PYTHON`` (tinygrad's pure-Python emulator: slow, no
compiler needed). It is part of ``version`` ("0.14.0 (DEV=CPU)"), since results may differ between
devices. Giving our own tensors that device is not enough: tinygrad makes tensors of its own (the
constants inside ``tanh``, ``sigmoid``, … and in ``gradient``) on its *default* device, which it reads
from ``$DEV`` once, when ``tinygrad.helpers`` is imported, and otherwise picks by probing METAL, AMD,
…, CPU — never PYTHON — ending in "RuntimeError: no usable devices" on a machine without clang. So
``$DEV`` is set to the device before the import (unless already set), tinygrad's ``DEV`` is set too
if tinygrad was imported earlier without it, and each ``run_graph`` runs with the adapter's device as
the default. ``CACHELEVEL=0`` (set before the import unless already set) keeps tinygrad from writing
its kernel cache under the home directory.

Depth: tinygrad fuses the whole graph, forward and backward, into a few kernels, and its (Python)
kernel code generator takes time about quadratic in the graph's depth: a chain 40 nodes deep takes
≈ 15 s, 80 nodes ≈ 60 s, the suite's deep chains (400–6000 nodes) hours. A case deeper than
``max_depth`` (64; ``$CONFORMANCE_TINYGRAD_MAX_DEPTH``) is therefore answered at once with a
``timeout:`` result — verdict ``timeout``, which is what it would end in — instead of being run.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib.metadata import version
from typing import Any

from conformance.case.dtypes import DTYPES
from conformance.case.graph import GraphCase, GraphResult
from conformance.impls.adapters._common import (
    ArrayAdapter,
    OpTable,
    Raw,
    capabilities,
    depth,
    dropout,
    forward,
    gru_loop,
    require,
    slice_at,
)

MAX_DEPTH = 64


def _table() -> OpTable:
    return {
        "neg": lambda x: x.neg(),
        "add": lambda a, b: a.add(b),
        "sub": lambda a, b: a.sub(b),
        "mul": lambda a, b: a.mul(b),
        "div": lambda a, b: a.div(b),
        "pow": lambda a, b: a.pow(b),
        "pow_scalar": lambda x, exponent: x.pow(float(exponent)),
        "pow_int": lambda x, exponent: x.pow(int(exponent)),
        "square": lambda x: x.square(),
        "reciprocal": lambda x: x.reciprocal(),
        "abs": lambda x: x.abs(),
        "exp": lambda x: x.exp(),
        "log": lambda x: x.log(),
        "sqrt": lambda x: x.sqrt(),
        "sin": lambda x: x.sin(),
        "cos": lambda x: x.cos(),
        "tanh": lambda x: x.tanh(),
        "sigmoid": lambda x: x.sigmoid(),
        "erf": lambda x: x.erf(),
        "relu": lambda x: x.relu(),
        "leaky_relu": lambda x, negative_slope: x.leaky_relu(negative_slope),
        "elu": lambda x, alpha: x.elu(alpha),
        "silu": lambda x: x.silu(),
        "gelu": lambda x, approximate: x.gelu(approximate=approximate),
        "clamp": lambda x, min, max: x.clamp(min, max),
        "maximum": lambda a, b: a.maximum(b),
        "minimum": lambda a, b: a.minimum(b),
        "sum": lambda x, dim, keepdim: x.sum(axis=dim, keepdim=keepdim),
        "mean": lambda x, dim, keepdim: x.mean(axis=dim, keepdim=keepdim),
        "amax": lambda x, dim, keepdim: x.max(axis=dim, keepdim=keepdim),
        "logsumexp": lambda x, dim, keepdim: x.logsumexp(axis=dim, keepdim=keepdim),
        "softmax": lambda x, dim: x.softmax(axis=dim),
        "log_softmax": lambda x, dim: x.log_softmax(axis=dim),
        "transpose": lambda x, dim0, dim1: x.transpose(dim0, dim1),
        "reshape": lambda x, shape: x.reshape(shape),
        "matmul": lambda a, b: a.matmul(b),
        **_layers(),
        **_later_layers(),
    }


def _layers() -> OpTable:
    """The layer ops: ``Tensor.conv2d`` (any number of spatial dims: conv1d too), ``max_pool2d`` and
    ``avg_pool2d`` (torch's ceil_mode and count_include_pad), ``tinygrad.nn.BatchNorm`` (no running
    statistics: the batch's), ``nn.LayerNorm``, ``nn.GroupNorm`` and ``nn.Embedding`` with the case's
    weight and bias, indexing with a tensor, ``gather``, ``scatter_reduce(reduce="sum")``, ``where``,
    ``masked_fill``, ``cumsum``, ``cumprod``, ``prod``. Index and mask arrays become tinygrad tensors on
    the input's device."""
    from tinygrad import Tensor, nn

    def on(x: Any, a: Any) -> Any:
        return Tensor(a, device=x.device)

    def module(m: Any, weight: Any, bias: Any) -> Any:
        m.weight, m.bias = weight, bias
        return m

    def embedding(weight: Any, input: Any) -> Any:
        m = nn.Embedding(*weight.shape)
        m.weight = weight
        return m(on(weight, input))

    return {
        "conv2d": lambda x, w, b, stride, padding, dilation, groups: x.conv2d(
            w, b, groups=groups, stride=stride, dilation=dilation, padding=padding),
        "conv1d": lambda x, w, b, stride, padding, dilation, groups: x.conv2d(
            w, b, groups=groups, stride=stride, dilation=dilation, padding=padding),
        "max_pool2d": lambda x, kernel_size, stride, padding, dilation, ceil_mode: x.max_pool2d(
            kernel_size, stride or None, dilation, padding, ceil_mode),
        "avg_pool2d": lambda x, kernel_size, stride, padding, ceil_mode, count_include_pad: x.avg_pool2d(
            kernel_size, stride or None, 1, padding, ceil_mode, count_include_pad),
        "batch_norm": lambda x, weight, bias, eps: module(
            nn.BatchNorm(x.shape[1], eps=eps, track_running_stats=False), weight, bias)(x),
        "layer_norm": lambda x, weight, bias, normalized_shape, eps: module(
            nn.LayerNorm(normalized_shape, eps=eps), weight, bias)(x),
        "group_norm": lambda x, weight, bias, num_groups, eps: module(
            nn.GroupNorm(num_groups, x.shape[1], eps=eps), weight, bias)(x),
        "index_select": lambda x, dim, index: x[(slice(None),) * (dim % x.ndim) + (on(x, index),)],
        "gather": lambda x, dim, index: x.gather(dim, on(x, index)),
        "embedding": embedding,
        "scatter_add": lambda x, src, dim, index: x.scatter_reduce(dim, on(x, index), src, reduce="sum"),
        "where": lambda x, y, condition: on(x, condition).where(x, y),
        "masked_fill": lambda x, mask, value: x.masked_fill(on(x, mask), value),
        "cumsum": lambda x, dim: x.cumsum(dim),
        "cumprod": lambda x, dim: x.cumprod(dim),
        "prod": lambda x, dim, keepdim: x.prod(dim, keepdim=keepdim),
    }


def _later_layers() -> OpTable:
    """The layer ops declared after the first sixteen: ``Tensor.conv_transpose2d`` (torch's stride,
    padding, output_padding, dilation, groups), ``var``/``std`` with torch's ``correction``, ``cat``,
    ``stack``, slicing, ``pad`` (torch's four modes, its flat list), dropout as ``x * mask / (1 − p)``,
    ``scaled_dot_product_attention`` (it has no ``scale``: for a case that gives one, the same steps
    with that scale in place of its 1/√E), the LSTM as a loop of ``nn.LSTMCell`` with the case's
    weights, the GRU as the loop of ``sigmoid``, ``tanh`` and matmuls (tinygrad has no GRU cell). No
    vector norm: tinygrad has none (``Tensor.normalize`` divides by one it does not expose)."""
    from tinygrad import Tensor, dtypes, nn
    from tinygrad.dtype import least_upper_dtype

    def on(x: Any, a: Any) -> Any:
        return Tensor(a, device=x.device)

    def attention(q: Any, k: Any, v: Any, is_causal: bool, scale: Any) -> Any:
        if scale is None:
            return q.scaled_dot_product_attention(k, v, is_causal=is_causal)
        # tinygrad's own steps (tensor.py, scaled_dot_product_attention: the scores in at least float32,
        # the softmax in the input's dtype), with the case's scale for its 1/sqrt(E)
        qk = q.matmul(k.transpose(-2, -1), dtype=least_upper_dtype(q.dtype, k.dtype, dtypes.float32)) * scale
        if is_causal:
            qk = qk + qk.const_like(True, dtypes.bool).tril().where(0, -float("inf"))
        return qk.cast(q.dtype).softmax(-1) @ v

    def lstm(x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> Any:
        cell = nn.LSTMCell(w_ih.shape[1], h0.shape[1])
        cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh = w_ih, w_hh, b_ih, b_hh
        h, c, out = h0, c0, []
        for t in range(x.shape[0]):
            h, c = cell(x[t], (h, c))
            out.append(h)
        return Tensor.stack(*out)

    def pad(x: Any, pad: Any, mode: str, value: Any = None) -> Any:
        return x.pad(tuple(pad), mode=mode, value=0.0 if value is None else value)

    return {
        "conv_transpose2d": lambda x, w, b, stride, padding, output_padding, groups, dilation: x.conv_transpose2d(
            w, b, groups=groups, stride=stride, dilation=dilation, padding=padding, output_padding=output_padding),
        "var": lambda x, dim, keepdim, correction: x.var(dim, keepdim=keepdim, correction=correction),
        "std": lambda x, dim, keepdim, correction: x.std(dim, keepdim=keepdim, correction=correction),
        "cat": lambda x, *rest, dim: x.cat(*rest, dim=dim),
        "stack": lambda x, *rest, dim: x.stack(*rest, dim=dim),
        "slice": lambda x, dim, start=None, stop=None, step=1: x[slice_at(x.ndim, dim, start, stop, step)],
        "pad": pad,
        "dropout": lambda x, mask, p: dropout(x, on(x, mask), p),
        "scaled_dot_product_attention": attention,
        "lstm": lstm,
        "gru": lambda *args: gru_loop(*args, sigmoid=Tensor.sigmoid, tanh=Tensor.tanh,
                                      stack=lambda hs: Tensor.stack(*hs)),
    }


def default_device() -> str:
    """``$DEV``, else CPU if clang is there to compile kernels, else the PYTHON emulator."""
    return os.environ.get("DEV") or ("CPU" if shutil.which("clang") else "PYTHON")


class TinygradImpl(ArrayAdapter):
    """tinygrad on one device: every dtype of the case format, second order."""

    def __init__(self, device: str | None = None, max_depth: int | None = None) -> None:
        self.device = device or default_device()
        # both read once, when tinygrad is imported; DEV is the default device of the tensors tinygrad
        # makes itself (without it tinygrad probes its devices, never PYTHON: "no usable devices")
        os.environ.setdefault("CACHELEVEL", "0")
        os.environ.setdefault("DEV", self.device)
        # importing tinygrad raises the interpreter's recursion limit to 10000 for good: keep that
        # to tinygrad's own calls, or every implementation tested after it would run with it
        # (micrograd's RecursionError on deep graphs would vanish, depending on the order)
        outside = sys.getrecursionlimit()
        tinygrad = require("tinygrad", "tinygrad")
        self.recursion_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(outside)
        from tinygrad.helpers import DEV, Context

        if not DEV.device:  # tinygrad was imported before, with no $DEV: it would probe on first use
            DEV.value = self.device
        self._context = Context
        self.Tensor, self.dtypes = tinygrad.Tensor, tinygrad.dtypes
        self.name, self.version = "tinygrad", f"{version('tinygrad')} (DEV={self.device})"
        self.max_depth = max_depth or int(os.environ.get("CONFORMANCE_TINYGRAD_MAX_DEPTH", MAX_DEPTH))
        self.table = _table()
        self.capabilities = capabilities(self.table, tuple(DTYPES), second_order=True)

    def run_graph(self, case: GraphCase) -> GraphResult:
        outside = sys.getrecursionlimit()
        sys.setrecursionlimit(max(outside, self.recursion_limit))
        try:
            with self._context(DEV=self.device):  # tinygrad's own tensors on this adapter's device
                return super().run_graph(case)
        finally:
            sys.setrecursionlimit(outside)

    def unusable(self, case: GraphCase) -> str | None:
        d = depth(case)
        if d > self.max_depth:
            return (f"timeout: not run: the graph is {d} nodes deep, over the tinygrad adapter's limit of "
                    f"{self.max_depth} (tinygrad's codegen time grows about quadratically with depth)")
        return super().unusable(case)

    def _tensor(self, a: Any, dtype: str) -> Any:
        """A tensor of ``dtype`` (bfloat16 arrives in float32, which tinygrad casts on the device: exact)."""
        return self.Tensor(a, dtype=getattr(self.dtypes, dtype), device=self.device)

    def _leaf(self, a: Any, dtype: str) -> Any:
        """A leaf in its own buffer, as a parameter is. A 0-d array would become a constant, and
        tinygrad merges equal constants: ``Tensor(1.5)`` twice is one node, so ``gradient`` would
        give each of two equal scalar leaves the sum of both gradients (docs/findings.md)."""
        return self._tensor(a.reshape(1), dtype).reshape(a.shape) if a.ndim == 0 else self._tensor(a, dtype)

    def _placed(self, t: Any) -> Any:
        """``t`` on the adapter's device. A result that is a constant (the zero gradient of an unused
        leaf, any gradient of a graph of constants) has no device, and tinygrad reads such a tensor out
        through a hard-coded ``clone("CPU")``, which needs clang; so it is cloned to our device here."""
        return t.clone(self.device) if t.device is None else t

    def evaluate(self, case: GraphCase) -> Raw:
        arrays, ct, so = self.leaf_arrays(case)
        xs = {k: self._leaf(v, case.dtype) for k, v in arrays.items()}
        out = forward(case, self.table, xs)
        names = list(xs)
        gs = out.gradient(*xs.values(), gradient=self._tensor(ct, case.dtype))
        grads = dict(zip(names, gs))
        hs: list[Any] = []
        if so is not None:
            dot = sum((g * self._tensor(so[k], case.dtype)).sum() for k, g in grads.items())
            hs = list(dot.gradient(*xs.values()))
        out, gs, hs = self._placed(out), [self._placed(g) for g in gs], [self._placed(h) for h in hs]
        grads = dict(zip(names, gs))
        out.realize(*gs, *hs)  # one schedule for all the outputs, rather than one per .numpy()
        hvp = {k: h.numpy() for k, h in zip(names, hs)} if so is not None else None
        return out.numpy(), {k: g.numpy() for k, g in grads.items()}, hvp
