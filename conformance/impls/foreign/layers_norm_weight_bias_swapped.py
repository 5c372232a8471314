"""Numpy layer functions; bug: layer norm backward returns dgamma and dbeta swapped.

OneFlow's eager layer norm assigned the weight's gradient to the bias and vice versa (oneflow#6149). gamma and beta
have the same shape, so nothing fails; only a check of dgamma or dbeta against a reference sees it (dx is right).
Training still runs, since both still get a gradient of the right shape.
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
    m = np.prod([xhat.shape[a] for a in axes])
    dxhat = dout * gamma
    dx = inv_std / m * (m * dxhat - dxhat.sum(axis=axes, keepdims=True)
                        - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))
    lead = tuple(range(xhat.ndim - len(axes)))
    dgamma, dbeta = (dout * xhat).sum(axis=lead), dout.sum(axis=lead)
    return dx, dbeta, dgamma  # BUG: swapped


LAYERS = {"layer_norm": (layer_norm_forward, layer_norm_backward)}
