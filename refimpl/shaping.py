"""Shaping on refimpl tensors, as torch computes it: ``torch.cat``, ``torch.stack``, a slice
``x[..., start:stop:step, ...]`` along one dim, and ``F.pad`` in its four modes.

Every output element *is* an input element's Value (or, in constant padding, a constant): so the
gradient of an input element is the sum over every place it was copied to, by the engine's ``+=``
— the sum a replicate, reflect or circular pad needs at the edges, where one element fills several
places, and that a backward writing ``dx[src] = dout[dst]`` loses. A cat's gradient is each input's
own stretch of the output, wherever its sizes put it. No op here has a backward of its own.

Padding follows torch 2.13 (``F.pad``): ``pad`` lists (before, after) pairs from the last dim
backwards; ``reflect`` mirrors about the edge element without repeating it (widths below the size),
``replicate`` repeats the edge element (any width), ``circular`` wraps around (widths up to the
size), ``constant`` fills ``value``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from .engine import Value
from .tensor import Tensor, constant, norm_dim, row_major_positions, row_major_strides


def cat(*xs: Tensor, dim: int = 0) -> Tensor:
    """``torch.cat(xs, dim)``: the inputs one after the other along ``dim``, their other sizes equal."""
    first = xs[0]
    d = norm_dim(dim, first.ndim)
    for x in xs[1:]:
        if x.ndim != first.ndim or any(a != b for k, (a, b) in enumerate(zip(x.shape, first.shape)) if k != d):
            raise ValueError(f"cat: shapes {[t.shape for t in xs]} differ beside dim {d}")
    outer, inner = math.prod(first.shape[:d]), math.prod(first.shape[d + 1:])
    out: list[Value] = []
    for o in range(outer):
        for x in xs:
            run = x.shape[d] * inner  # this input's stretch of one outer position
            out += x.elements[o * run:(o + 1) * run]
    shape = (*first.shape[:d], sum(x.shape[d] for x in xs), *first.shape[d + 1:])
    return Tensor(out, shape, first.system)


def stack(*xs: Tensor, dim: int = 0) -> Tensor:
    """``torch.stack(xs, dim)``: inputs of one shape along a new dim ``dim``."""
    d = norm_dim(dim, xs[0].ndim + 1)
    if any(x.shape != xs[0].shape for x in xs):
        raise ValueError(f"stack: shapes {[t.shape for t in xs]} differ")
    return cat(*(x.unsqueeze(d) for x in xs), dim=d)


def slice_along(x: Tensor, dim: int, start: int | None = None, stop: int | None = None, step: int = 1) -> Tensor:
    """``x[..., start:stop:step, ...]`` at ``dim`` (Python's slice rules; a positive step, as torch)."""
    d = norm_dim(dim, x.ndim)
    return x[(*(slice(None),) * d, slice(start, stop, step))]


#: per mode, the source index along a padded dim of size ``n`` for a place ``j`` outside [0, n)
#: (None: the constant)
PAD_SOURCES: dict[str, Callable[[int, int], int | None]] = {
    "constant": lambda j, n: None,
    "reflect": lambda j, n: -j if j < 0 else 2 * (n - 1) - j,
    "replicate": lambda j, n: min(max(j, 0), n - 1),
    "circular": lambda j, n: j % n,
}

#: per mode, the widest pad torch takes on a dim of size ``n`` (constant and replicate: any)
PAD_LIMITS: dict[str, Callable[[int], float]] = {
    "constant": lambda n: math.inf,
    "reflect": lambda n: n - 1,
    "replicate": lambda n: math.inf,
    "circular": lambda n: n,
}


def pad_sources(shape: Sequence[int], pad: Sequence[int], mode: str) -> tuple[tuple[int, ...], list[int | None]]:
    """``F.pad``'s output shape, and per output position (row-major) the flat index of the input
    element it copies — ``None`` for a constant."""
    if len(pad) % 2 or len(pad) // 2 > len(shape):
        raise ValueError(f"pad: {list(pad)} is not (before, after) pairs for at most {len(shape)} dims")
    if mode not in PAD_SOURCES:
        raise ValueError(f"pad: unknown mode {mode!r}; one of {sorted(PAD_SOURCES)}")
    before = [0] * len(shape)
    after = [0] * len(shape)
    for k in range(len(pad) // 2):
        d = len(shape) - 1 - k
        before[d], after[d] = pad[2 * k], pad[2 * k + 1]
        negative = min(before[d], after[d]) < 0 and mode != "constant"  # constant padding crops with them
        if negative or max(before[d], after[d]) > PAD_LIMITS[mode](shape[d]):
            raise ValueError(f"pad: {mode} padding ({before[d]}, {after[d]}) of a dim of size {shape[d]}")
    out_shape = tuple(n + b + a for n, b, a in zip(shape, before, after))
    strides = row_major_strides(tuple(shape))
    sources: list[int | None] = []
    for pos in row_major_positions(out_shape):
        flat: int | None = 0
        for p, b, n, s in zip(pos, before, shape, strides):
            j = p - b
            src = j if 0 <= j < n else PAD_SOURCES[mode](j, n)
            if src is None or flat is None:
                flat = None
                break
            flat += src * s
        sources.append(flat)
    return out_shape, sources


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """``F.pad(x, pad, mode, value)``: each output element an input element, or ``value`` (0 when
    None) in constant padding."""
    shape, sources = pad_sources(x.shape, pad, mode)
    ns = x.system
    fill = constant(ns.convert(0.0 if value is None else value), ns)
    return Tensor([fill if s is None else x.elements[s] for s in sources], shape, ns)
