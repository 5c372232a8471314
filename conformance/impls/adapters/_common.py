"""What the adapters of array libraries (autograd, mygrad, jax, tinygrad) share.

Each adapter only says how its library spells every op it supports (an :data:`OpTable`) and how it
gets the value, the gradient of ⟨cotangent, output⟩ and the HVP out of the library (its
``evaluate``). Everything else is here, once, so that the four adapters cannot drift apart:

* :func:`forward` walks a case's nodes in order, as :func:`conformance.oracle.run.run_torch` does, with
  every attribute made explicit (the op table's defaults filled in: torch supplies its own defaults,
  another library's defaults may differ) and JSON lists turned into tuples (``dim``, ``shape``);
* :class:`ArrayAdapter` refuses a case the library cannot run (dtype, op, second order) with a
  one-line error, turns any exception into an error result, and converts the library's arrays into
  the case format — with the shapes the library produced, so a wrong shape shows up as a verdict;
* :func:`require` imports the library lazily, with a one-line hint naming the extra to install.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import numpy as np

from conformance.case.graph import GraphCase, GraphResult, Node, Tensor
from conformance.case.tensor_ops import TENSOR_OPS
from conformance.impls import Capabilities
from refimpl import OPS

#: op name -> the library's function, called as ``fn(*inputs, **attrs)`` with every attribute given
OpTable = dict[str, Callable[..., Any]]
#: what an adapter's ``evaluate`` returns: the output, a gradient per leaf, an HVP per leaf (or None)
Raw = tuple[Any, dict[str, Any], dict[str, Any] | None]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or fail with one line saying which extra of this package provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is not installed ({exc}): pip install 'backprop-conformance[{extra}]'") from None


def node_attrs(node: Node) -> dict[str, Any]:
    """The node's attributes with the op table's defaults filled in; lists become tuples, but for the
    attributes torch takes as tensors (``TensorOp.tensor_attrs``: an index, a mask), which become
    numpy arrays of that dtype (int64, bool) — so each op table gets arrays, whatever the nesting."""
    attrs = OPS[node.op].attributes(node.attrs) if node.op in OPS else dict(node.attrs)
    arrays = dict(TENSOR_OPS[node.op].tensor_attrs) if node.op in TENSOR_OPS else {}
    return {k: np.asarray(v, dtype=arrays[k]) if k in arrays else tuple(v) if isinstance(v, list) else v
            for k, v in attrs.items()}


def forward(case: GraphCase, table: OpTable, leaves: dict[str, Any]) -> Any:
    """The case's output computed with the library's functions, node by node."""
    env = dict(leaves)
    for n in case.nodes:
        env[n.name] = table[n.op](*(env[i] for i in n.inputs), **node_attrs(n))
    return env[case.output]


# --- layer ops: torch's geometry, for libraries whose own functions lack part of it -------------------

def pair(v: Any) -> tuple[int, int]:
    """An int or a 1- or 2-sequence as (height, width), as torch reads ``kernel_size=3``."""
    t = (v, v) if isinstance(v, int) else tuple(int(a) for a in v)
    return (t[0], t[0]) if len(t) == 1 else (t[0], t[1])


def window_pads(size: int, kernel: int, stride: int, padding: int, dilation: int = 1,
                ceil_mode: bool = False) -> tuple[int, int, int]:
    """Along one axis of torch's convolution or pooling: (before, after, out) — the padding that makes
    torch's windows exactly the windows that fit in the padded axis, and their number. ``before`` is
    ``padding``; ``after`` is less than it where torch's floor leaves the last rows unused (negative:
    input rows dropped), more than it where ``ceil_mode`` adds a last window over the edge (torch drops
    that window when it would start in the right padding)."""
    span = dilation * (kernel - 1) + 1
    num = size + 2 * padding - span
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return padding, (out - 1) * stride + span - size - padding, out


def window_views(x: Any, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
                 out: tuple[int, ...]) -> list[Any]:
    """The windows of the trailing axes of an (already padded) ``x`` as strided slices, one per tap of
    the kernel in row-major tap order: ``views[t][..., i, j]`` is tap ``t`` of output ``(i, j)``'s window
    (a pooling is their maximum or sum; works on anything numpy-sliceable)."""
    lead = (slice(None),) * (len(x.shape) - len(kernel))
    return [x[lead + tuple(slice(u * d, u * d + (o - 1) * s + 1, s) for u, d, o, s in zip(tap, dilation, out, stride))]
            for tap in np.ndindex(*kernel)]


def avg_pool_divisor(shape: tuple[int, int], kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
                     count_include_pad: bool, dtype: Any) -> np.ndarray:
    """torch's divisor of each output of ``avg_pool2d`` on an (H, W) plane: with ``count_include_pad``
    the window's size up to the padded edge (a ``ceil_mode`` window hanging past it counts only up to
    there), else the number of input elements it covers."""
    k, p = pair(kernel_size), pair(padding)
    s = pair(stride) if stride else k
    axes = []
    for size, kk, ss, pp in zip(shape, k, s, p):
        out = window_pads(size, kk, ss, pp, 1, ceil_mode)[2]
        starts = np.arange(out) * ss - pp
        hi, lo = np.minimum(starts + kk, size + pp if count_include_pad else size), starts
        axes.append(hi - (lo if count_include_pad else np.maximum(lo, 0)))
    return np.multiply.outer(axes[0], axes[1]).astype(dtype)


def pad_widths(ndim: int, pad: Any) -> list[tuple[int, int]]:
    """torch's flat ``F.pad`` list (the last dim's (before, after) first) as numpy's per-axis pairs."""
    widths = [(0, 0)] * ndim
    for k in range(len(pad) // 2):
        widths[ndim - 1 - k] = (int(pad[2 * k]), int(pad[2 * k + 1]))
    return widths


#: torch's pad modes by numpy's names (``np.pad``, ``jnp.pad``)
NUMPY_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def slice_at(ndim: int, dim: int, start: Any, stop: Any, step: int) -> tuple[slice, ...]:
    """The index ``x[..., start:stop:step, ...]`` at ``dim``: Python's slice, as torch's case means it."""
    return (slice(None),) * (dim % ndim) + (slice(start, stop, step),)


def norm_axis(ndim: int, dim: Any) -> Any:
    """A 2-norm's ``dim`` as numpy's ``linalg.norm`` takes it with ``ord=None`` (the 2-norm of a vector,
    the Frobenius norm over two axes: the 2-norm of the elements either way): an int, a pair, or None for
    every axis (numpy's norm takes no more than two axes, and flattens for None)."""
    if isinstance(dim, int):
        return dim
    dims = tuple(sorted(d % ndim for d in dim))
    return None if dims == tuple(range(ndim)) else dims[0] if len(dims) == 1 else dims


def lstm_loop(x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, sigmoid: Any, tanh: Any,
              stack: Any) -> Any:
    """Every step's hidden state of torch's one-layer LSTM (gate order input, forget, cell, output), written
    with a library's ``@``, ``.T``, slicing and arithmetic and its own ``sigmoid``, ``tanh`` and ``stack``:
    the loop a user of a library without an LSTM writes (refimpl/recurrent.py has the equations)."""
    H, h, c, out = h0.shape[-1], h0, c0, []
    for t in range(x.shape[0]):
        gates = (x[t] @ w_ih.T + b_ih) + (h @ w_hh.T + b_hh)
        i, f = sigmoid(gates[:, 0:H]), sigmoid(gates[:, H:2 * H])
        g, o = tanh(gates[:, 2 * H:3 * H]), sigmoid(gates[:, 3 * H:4 * H])
        c = f * c + i * g
        h = o * tanh(c)
        out.append(h)
    return stack(out)


def gru_loop(x: Any, h0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, sigmoid: Any, tanh: Any,
             stack: Any) -> Any:
    """Every step's hidden state of torch's one-layer GRU (gate order reset, update, new; the reset gate
    applied to ``h·w_hnᵀ + b_hn``), as :func:`lstm_loop` writes the LSTM."""
    H, h, out = h0.shape[-1], h0, []
    for t in range(x.shape[0]):
        a, b = x[t] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        r, z = sigmoid(a[:, 0:H] + b[:, 0:H]), sigmoid(a[:, H:2 * H] + b[:, H:2 * H])
        n = tanh(a[:, 2 * H:3 * H] + r * b[:, 2 * H:3 * H])
        h = (1.0 - z) * n + z * h
        out.append(h)
    return stack(out)


def dropout(x: Any, mask: Any, p: float) -> Any:
    """Dropout with the case's mask, ``x * mask / (1 - p)`` in torch's order (the product with the boolean
    mask, then the quotient by the Python float 1 − p), with the library's operators."""
    return x * mask / (1 - p)


def capabilities(table: OpTable, dtypes: Iterable[str], second_order: bool) -> Capabilities:
    """Capabilities from an op table; every key must be an op of the case format."""
    unknown = set(table) - set(OPS) - set(TENSOR_OPS)
    assert not unknown, f"not ops of the case format: {sorted(unknown)}"
    return Capabilities(frozenset(table), tuple(dtypes), second_order=second_order)


def to_tensor(x: Any) -> Tensor:
    """A library array (anything ``np.asarray`` takes) as a case tensor, exact, shape kept."""
    a = np.asarray(x)
    return Tensor(tuple(int(s) for s in a.shape), tuple(float(v) for v in a.reshape(-1).tolist()))


def holder(dtype: str) -> str:
    """The numpy dtype a case's numbers reach the library in: the case's own, but float32 for bfloat16,
    which numpy lacks (``ml_dtypes`` adds it, with jax only); float32 holds every bfloat16 number, so
    the adapter's cast to the library's bfloat16 is exact."""
    return "float32" if dtype == "bfloat16" else dtype


def zeros_like_leaf(case: GraphCase, name: str) -> np.ndarray:
    """The gradient of a leaf the output does not depend on, for libraries that give None."""
    return np.zeros(case.leaves[name].shape, dtype=case.dtype)


def depth(case: GraphCase) -> int:
    """The number of op nodes on the longest path from a leaf to the output."""
    d = dict.fromkeys(case.leaves, 0)
    for n in case.nodes:
        d[n.name] = 1 + max((d.get(i, 0) for i in n.inputs), default=0)
    return d.get(case.output, 0)


def oneline(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    if len(msg) > 300:
        msg = msg[:300] + " …"
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


class ArrayAdapter:
    """The adapter protocol (``conformance/impls/__init__.py``) around a subclass's ``evaluate``.

    Subclasses set ``name``, ``version``, ``capabilities`` and ``table`` in their constructor (which
    imports the library) and implement ``evaluate(case) -> (value, grads, hvp)`` with arrays of the
    library; ``leaf_arrays`` gives them the leaves, cotangent and second-order vectors as numpy
    arrays of the case's dtype (of float32 for bfloat16: the adapter casts them to the library's).
    """

    name: str
    version: str
    capabilities: Capabilities
    table: OpTable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name} {self.version}: {len(self.capabilities.ops)} ops)"

    def unusable(self, case: GraphCase) -> str | None:
        """Why this library cannot run the case (one line), or None."""
        caps = self.capabilities
        if case.dtype not in caps.dtypes:
            return f"ValueError: {self.name} adapter: dtype {case.dtype} is not supported"
        if case.second_order is not None and not caps.second_order:
            return f"ValueError: {self.name} has no higher-order gradients"
        missing = sorted({n.op for n in case.nodes} - caps.ops)
        if missing:
            return f"ValueError: {self.name} has no primitive for {', '.join(missing)}"
        return None

    def run_graph(self, case: GraphCase) -> GraphResult:
        """Value, gradients and HVP of the case; a library exception is an error result."""
        why = self.unusable(case)
        if why:
            return GraphResult(error=why)
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):  # overflow to inf is a result
                warnings.simplefilter("ignore")  # e.g. autograd's "Output seems independent of input"
                value, grads, hvp = self.evaluate(case)
            return GraphResult(to_tensor(value), {k: to_tensor(g) for k, g in grads.items()},
                               None if hvp is None else {k: to_tensor(h) for k, h in hvp.items()})
        except Exception as exc:  # the library under test may raise anything
            return GraphResult(error=oneline(exc))

    def evaluate(self, case: GraphCase) -> Raw:
        raise NotImplementedError

    @staticmethod
    def leaf_arrays(case: GraphCase) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray] | None]:
        """Leaves, cotangent and second-order vectors as numpy arrays of the case's dtype (bfloat16's
        numbers in float32: :func:`holder`)."""
        def arr(t: Tensor) -> np.ndarray:
            return np.array(t.values, dtype=holder(case.dtype)).reshape(t.shape)

        so = None if case.second_order is None else {k: arr(t) for k, t in case.second_order.items()}
        return {k: arr(t) for k, t in case.leaves.items()}, arr(case.cotangent), so
