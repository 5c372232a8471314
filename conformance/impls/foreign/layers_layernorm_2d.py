"""Numpy layer functions; bug: layer norm backward assumes 2-D input, taking the normalized count as ``x.shape[1]``.

FlagGems' layer_norm_backward (FlagGems#5392) derived its row/column split from a 2-D view of the input while the
forward used normalized_shape. Right for (N, D) input; wrong for (B, T, H) normalized over H unless T == H, and for
normalization over several trailing dims. The forward, dgamma and dbeta are right.
"""

import numpy as np

BASE = "layers_assignment.py"


def layer_norm_forward(x, gamma, beta, normalized_shape, eps=1e-5):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - mu) * inv_std
    return gamma * xhat + beta, (xhat, inv_std, gamma, axes)


def layer_norm_backward(dout, cache):
    xhat, inv_std, gamma, axes = cache
    m = xhat.shape[1]  # BUG: the number of normalized elements only for 2-D input
    dxhat = dout * gamma
    dx = inv_std / m * (m * dxhat - dxhat.sum(axis=axes, keepdims=True)
                        - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))
    lead = tuple(range(xhat.ndim - len(axes)))
    return dx, (dout * xhat).sum(axis=lead), dout.sum(axis=lead)


LAYERS = {"layer_norm": (layer_norm_forward, layer_norm_backward)}
