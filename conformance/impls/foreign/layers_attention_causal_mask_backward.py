"""Numpy layer functions; bug: attention backward recomputes P without the causal mask the forward applied.

Wrong attention gradients of this kind: wrong dQ / dK / dV under a causal mask (TransformerEngine#3216). The forward
masks; the backward's recomputed softmax lets every query see every key, so dS and dV take the masked positions in.
Right without is_causal, and under it where the mask hides nothing (a single key, S = 1).
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
    return p @ v, (q, k, v, scale)


def scaled_dot_product_attention_backward(dout, cache):
    q, k, v, scale = cache
    # recompute P instead of storing it (as a memory-saving backward does)
    scores = scale * (q @ np.swapaxes(k, -1, -2))  # BUG: the causal mask is not applied again
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p = p / p.sum(axis=-1, keepdims=True)
    dv = np.swapaxes(p, -1, -2) @ dout
    dp = dout @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq = scale * (ds @ k)
    dk = scale * (np.swapaxes(ds, -1, -2) @ q)
    return dq, dk, dv


LAYERS = {"scaled_dot_product_attention": (scaled_dot_product_attention_forward, scaled_dot_product_attention_backward)}
