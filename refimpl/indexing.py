"""Indexing, masking and cumulative ops on refimpl tensors, as torch computes them: index_select,
gather, embedding, scatter_add, where, masked_fill, dropout with a given mask, cumsum, cumprod and prod.

Each output element is the scalar expression it is: a selected input element *is* that element's
Value (so an element selected twice is a Value used twice, and the engine's ``+=`` gives it both
gradients — the duplicate a numpy ``dW[idx] += d`` counts once, pytorch#1528); a scattered sum is
the sum of its terms; a filled position is a constant; a running sum or product is the previous one
plus or times the next element; a dropped-out element is the element times 0 (its gradient 0), a kept
one the element times 1, over 1 − p. A product's gradient is then the product of the *other* factors,
computed by the chain rule — never the product divided by the input, which is NaN or wrong where an
input is 0 (tensorflow#119430, burn#5141, tinygrad#17404). No op here has a backward of its own.

Integer and boolean arguments (``index``, ``input`` of embedding, ``condition``, ``mask``) come as
nested lists, as a case carries them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .engine import Value
from .tensor import (
    Tensor,
    constant,
    index_array,
    nest_flat,
    norm_dim,
    reduction_groups,
    row_major_positions,
    row_major_strides,
    sum_of,
)


def flat_mask(values: Any, shape: Sequence[int], what: str) -> list[bool]:
    """A nested list of booleans of exactly ``shape``, flat in row-major order."""
    flat: list[bool] = []

    def walk(v: Any, depth: int) -> None:
        if depth == len(shape):
            if not isinstance(v, bool):
                raise TypeError(f"{what} must hold booleans, got {v!r}")
            flat.append(v)
            return
        if not isinstance(v, (list, tuple)) or len(v) != shape[depth]:
            raise ValueError(f"{what} does not have the input's shape {tuple(shape)}")
        for c in v:
            walk(c, depth + 1)

    walk(values, 0)
    return flat


def index_select(x: Tensor, dim: int, index: Any) -> Tensor:
    """``torch.index_select``: the slices of ``x`` at ``index`` (1-D, repeats allowed) along ``dim``."""
    shape, flat = index_array(index)
    if len(shape) != 1:
        raise ValueError(f"index_select: index must be 1-D, got shape {shape}")
    d = norm_dim(dim, x.ndim)
    out_shape = (*x.shape[:d], len(flat), *x.shape[d + 1:])
    expanded = [flat[pos[d]] for pos in row_major_positions(out_shape)]
    return x.gather(d, nest_flat(expanded, out_shape))


def gather(x: Tensor, dim: int, index: Any) -> Tensor:
    """``torch.gather`` (:meth:`Tensor.gather`)."""
    return x.gather(dim, index)


def embedding(weight: Tensor, input: Any) -> Tensor:
    """``F.embedding(input, weight)``: the rows of ``weight`` (V, D) at ``input`` (any shape, repeats allowed)."""
    shape, flat = index_array(input)
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (V, D), got {weight.shape}")
    D = weight.shape[1]
    rows = weight.gather(0, [[i] * D for i in flat]) if flat else Tensor([], (0, D), weight.system)
    return rows.reshape(*shape, D)


def scatter_add(x: Tensor, src: Tensor, dim: int, index: Any) -> Tensor:
    """``torch.scatter_add(x, dim, index, src)``: ``x`` plus every ``src`` element at its place; a
    place several elements go to gets all of them (their sum in any order)."""
    shape, flat = index_array(index)
    d = norm_dim(dim, x.ndim)
    if len(shape) != x.ndim or tuple(shape) != tuple(src.shape):
        raise ValueError(f"scatter_add: index shape {shape} must be src's {src.shape}, with x's dims {x.shape}")
    strides = row_major_strides(x.shape)
    terms: list[list[Value]] = [[v] for v in x.elements]
    for k, (pos, target) in enumerate(zip(row_major_positions(shape), flat)):
        if not 0 <= target < x.shape[d]:
            raise IndexError(f"scatter_add: index {target} is out of bounds for dim {d} of size {x.shape[d]}")
        place = [*pos]
        place[d] = target
        terms[sum(i * s for i, s in zip(place, strides))].append(src.elements[k])
    return Tensor([sum_of(t, x.system) if len(t) > 1 else t[0] for t in terms], x.shape, x.system)


def where(x: Tensor, y: Tensor, condition: Any) -> Tensor:
    """``torch.where(condition, x, y)`` for ``x``, ``y`` and ``condition`` of one shape."""
    if x.shape != y.shape:
        raise ValueError(f"where: x {x.shape} and y {y.shape} differ")
    keep = flat_mask(condition, x.shape, "condition")
    return Tensor([a if c else b for a, b, c in zip(x.elements, y.elements, keep)], x.shape, x.system)


def masked_fill(x: Tensor, mask: Any, value: float) -> Tensor:
    """``x.masked_fill(mask, value)``: ``value`` (a constant, −∞ allowed) where ``mask`` holds."""
    fill = flat_mask(mask, x.shape, "mask")
    ns = x.system
    return Tensor([constant(ns.convert(value), ns) if m else v for v, m in zip(x.elements, fill)], x.shape, ns)


def dropout(x: Tensor, mask: Any, p: float) -> Tensor:
    """Dropout with a given ``mask`` (True: kept): ``x·mask / (1 − p)``, in torch's order — the
    product with the mask, then the quotient by 1 − p (computed in binary64, then in the system, as
    torch takes a Python float). torch's ``F.dropout`` draws its own mask; the oracle is that
    expression in torch ops (``conformance.oracle.composed.dropout``)."""
    keep = flat_mask(mask, x.shape, "mask")
    ns = x.system
    one, zero = constant(ns.one, ns), constant(ns.zero, ns)
    scale = constant(ns.convert(1.0 - p), ns)
    return Tensor([v * (one if k else zero) / scale for v, k in zip(x.elements, keep)], x.shape, ns)


def _running(x: Tensor, dim: int, step: Any) -> Tensor:
    """Along ``dim``, each element replaced by ``step(previous result, element)`` from the first on."""
    d = norm_dim(dim, x.ndim)
    _, lanes = reduction_groups(x.shape, (d,) if x.ndim else ())
    out = list(x.elements)
    for lane in lanes:
        acc = out[lane[0]]
        for i in lane[1:]:
            acc = step(acc, x.elements[i])
            out[i] = acc
    return Tensor(out, x.shape, x.system)


def cumsum(x: Tensor, dim: int) -> Tensor:
    """``torch.cumsum``: the running sum along ``dim``."""
    return _running(x, dim, lambda a, b: a + b)


def cumprod(x: Tensor, dim: int) -> Tensor:
    """``torch.cumprod``: the running product along ``dim`` (a 0 is one more factor)."""
    return _running(x, dim, lambda a, b: a * b)


def prod(x: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """``torch.prod(x, dim, keepdim)``: the product along ``dim``, left to right."""
    d = norm_dim(dim, x.ndim)
    kept, groups = reduction_groups(x.shape, (d,) if x.ndim else ())
    out = []
    for g in groups:
        acc = x.elements[g[0]]
        for i in g[1:]:
            acc = acc * x.elements[i]
        out.append(acc)
    shape = kept if keepdim else tuple(n for k, n in enumerate(x.shape) if k != d)
    return Tensor(out, shape, x.system)
