"""Normalization on refimpl tensors, as ``torch.nn.functional`` computes it: batch norm (training),
layer norm and group norm.

The three are one computation over different groups of elements: each group's mean and biased
variance, ``x̂ = (x − mean) / √(var + eps)``, then ``x̂·weight + bias`` with the weight and bias of
the element's channel (batch and group norm) or of its position in the normalized shape (layer
norm). Written as the scalar expressions they are, the mean and the variance are functions of every
element of the group, so the gradient flows through them — the two terms a hand-written backward
that treats the statistics as constants loses (CrypTen#143, deeplearning4j#8379) — and no layer here
has a backward of its own.

Conventions (torch 2.13, ``aten/src/ATen/native/{batch_norm,layer_norm,group_norm}.cpp``): the
variance that normalizes is the biased one (divided by the group's size, not size − 1), computed in
two passes (the mean first, then the mean of the squared deviations); ``eps`` is added inside the
square root. Batch norm here is training mode without running statistics (``F.batch_norm(x, None,
None, weight, bias, training=True, eps=eps)``): its statistics are the batch's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from .engine import Value
from .tensor import Tensor, constant, sum_of

#: a normalization's groups: the flat indices normalized together, and per flat index its
#: weight's and bias's index
Groups = tuple[list[Sequence[int]], Callable[[int], int]]


def normalize(x: Tensor, groups: Groups, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
    """``x̂·weight + bias`` with each group's own statistics (the module doc)."""
    ns = x.system
    out: list[Value | None] = [None] * x.numel()
    members, channel = groups
    for group in members:
        vals = [x.elements[i] for i in group]
        count = constant(ns.convert(len(vals)), ns)
        mean = sum_of(vals, ns) / count
        centered = [v - mean for v in vals]
        var = sum_of([c * c for c in centered], ns) / count  # biased: over the group's size
        rstd = constant(ns.one, ns) / (var + constant(ns.convert(eps), ns)).sqrt()
        for i, c in zip(group, centered):
            y = c * rstd
            if weight is not None:
                y = y * weight.elements[channel(i)]
            if bias is not None:
                y = y + bias.elements[channel(i)]
            out[i] = y
    return Tensor(out, x.shape, ns)  # type: ignore[arg-type]


def _channels(shape: Sequence[int], op: str) -> tuple[int, int, int]:
    """(N, C, elements per channel per sample) of an (N, C, *) input."""
    if len(shape) < 2:
        raise ValueError(f"{op} takes (N, C, *), got shape {tuple(shape)}")
    return shape[0], shape[1], math.prod(shape[2:])


def batch_norm_groups(shape: Sequence[int]) -> Groups:
    """Per channel, all N·(spatial) elements; the weight of the channel."""
    N, C, S = _channels(shape, "batch_norm")
    return [[(n * C + c) * S + s for n in range(N) for s in range(S)] for c in range(C)], lambda i: (i // S) % C


def layer_norm_groups(shape: Sequence[int], normalized_shape: Sequence[int]) -> Groups:
    """Each block of the last ``len(normalized_shape)`` dims; the weight of the position in the block."""
    norm = tuple(normalized_shape)
    if not norm or tuple(shape[-len(norm):]) != norm:
        raise ValueError(f"layer_norm: normalized_shape {norm} is not the end of the input's shape {tuple(shape)}")
    block = math.prod(norm)
    return [range(start, start + block) for start in range(0, math.prod(shape), block)], lambda i: i % block


def group_norm_groups(shape: Sequence[int], num_groups: int) -> Groups:
    """Per sample, each run of C/num_groups channels; the weight of the channel."""
    N, C, S = _channels(shape, "group_norm")
    if C % num_groups:
        raise ValueError(f"group_norm: {C} channels do not divide into {num_groups} groups")
    block = C // num_groups * S
    return [range(start, start + block) for start in range(0, N * C * S, block)], lambda i: (i // S) % C


def batch_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Training-mode ``F.batch_norm``: per channel, the statistics of all N·(spatial) elements."""
    return normalize(x, batch_norm_groups(x.shape), weight, bias, eps)


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
               normalized_shape: Sequence[int] = (), eps: float = 1e-5) -> Tensor:
    """``F.layer_norm``: the statistics of each block of the last ``len(normalized_shape)`` dims."""
    return normalize(x, layer_norm_groups(x.shape, normalized_shape), weight, bias, eps)


def group_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, num_groups: int = 1,
               eps: float = 1e-5) -> Tensor:
    """``F.group_norm``: per sample, the statistics of each of ``num_groups`` runs of C/num_groups channels."""
    return normalize(x, group_norm_groups(x.shape, num_groups), weight, bias, eps)
