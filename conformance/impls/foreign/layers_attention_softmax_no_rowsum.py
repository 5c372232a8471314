"""Numpy layer functions; bug: attention backward drops the softmax's rowsum term: dS = P * dP.

Wrong attention gradients of this kind: a fused kernel's wrong dQ (flash-attention#2552), and wrong dQ / dK that
random Gaussian inputs did not show (TransformerEngine#3216). The missing term is P * rowsum(dP * P), that is
P * (dO . O) per query: it vanishes only where each cotangent row is orthogonal to its output row (zero values, say),
so dQ and dK are wrong almost everywhere; dV is right.
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
    dv = np.swapaxes(p, -1, -2) @ dout
    dp = dout @ np.swapaxes(v, -1, -2)
    ds = p * dp  # BUG: should be p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq = scale * (ds @ k)
    dk = scale * (np.swapaxes(ds, -1, -2) @ q)
    return dq, dk, dv


LAYERS = {"scaled_dot_product_attention": (scaled_dot_product_attention_forward, scaled_dot_product_attention_backward)}
