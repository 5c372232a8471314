"""Scaled dot-product attention on refimpl tensors, as ``F.scaled_dot_product_attention`` computes it.

``softmax(q·kᵀ·scale + mask)·v`` over the last two dims, batch dims in front: q (…, L, E), k (…, S, E),
v (…, S, Ev) give (…, L, Ev). The query length L and the key length S differ in general, and so do
E and Ev — the shapes where a backward that mixes up which product is transposed (dV = P·dO where
it is Pᵀ·dO) or which length is which goes wrong (flash-attention#2552, flash-linear-attention#632).
``scale`` defaults to 1/√E. ``is_causal`` is torch's top-left causal mask: query i sees the keys
0…i (torch builds ``ones(L, S).tril()``), so every row sees key 0 and none is empty. A masked
score is left out of its row's softmax and its probability is the constant 0 — the same numbers as
torch's −∞ before the softmax, without an infinity in the computation. Written with refimpl's
matmul and softmax, the gradient is the chain rule through them; no backward of its own.
"""

from __future__ import annotations

import math

from .tensor import Tensor, constant, matmul, softmax_of


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool = False,
                                 scale: float | None = None) -> Tensor:
    """``F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=scale)`` (module doc)."""
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"attention: q {q.shape}, k {k.shape}, v {v.shape} must have the same rank ≥ 2")
    L, E = q.shape[-2:]
    S = k.shape[-2]
    if k.shape[-1] != E or v.shape[-2] != S:
        raise ValueError(f"attention: q {q.shape}, k {k.shape}, v {v.shape} do not fit")
    ns = q.system
    factor = constant(ns.convert(scale if scale is not None else 1.0 / math.sqrt(E)), ns)
    scores = matmul(q, k.transpose(-2, -1)).elements
    probs = []
    for row in range(len(scores) // S):
        lane = scores[row * S:(row + 1) * S]
        seen = min(row % L + 1, S) if is_causal else S  # query i sees keys 0…i
        probs += softmax_of([s * factor for s in lane[:seen]]) + [constant(ns.zero, ns)] * (S - seen)
    return matmul(Tensor(probs, (*q.shape[:-1], S), ns), v)
