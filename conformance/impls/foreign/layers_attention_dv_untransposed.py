"""Numpy layer functions; bug: attention backward computes dV = P @ dO instead of P^T @ dO.

Wrong attention gradients of this kind: a fused kernel's wrong dV (flash-attention#2552), and backward kernels that
assumed equal key and value sizes (flash-linear-attention#632). Where the query and key lengths differ the product
does not even fit (a shape error); with L == S it runs and is silently wrong, hidden only where P is symmetric, as
with a single query and key (L = S = 1). dQ and dK are right.
"""

import numpy as np

BASE = "layers_assignment.py"


def scaled_dot_product_attention_forward(q, k, v, is_causal=False, scale=None):
    L, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else float(scale)
    scores = scale * (q @ np.swapaxes(k, -1, -2))
    if is_causal:
        scores = np.where(np.tril(np.ones((L, S), dtype=bool)), scores, -np.inf)
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p = p / p.sum(axis=-1, keepdims=True)
    return p @ v, (q, k, v, p, scale)


def scaled_dot_product_attention_backward(dout, cache):
    q, k, v, p, scale = cache
    dv = p @ dout  # BUG: should be np.swapaxes(p, -1, -2) @ dout
    dp = dout @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq = scale * (ds @ k)
    dk = scale * (np.swapaxes(ds, -1, -2) @ q)
    return dq, dk, dv


LAYERS = {"scaled_dot_product_attention": (scaled_dot_product_attention_forward, scaled_dot_product_attention_backward)}
