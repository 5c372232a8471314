"""Numpy layer functions; bug: batch norm backward treats mean and variance as constants: dx = dout * gamma / std.

Found in CrypTen (CrypTen#143) and deeplearning4j's batchnorm_bp (deeplearning4j#8379): the eval-mode derivative used
in training mode, dropping the terms through the batch statistics. It is right only where the statistics really are
constants (running statistics in eval mode); dgamma and dbeta are right, and a test that forgets training=True
passes (as CrypTen's did).
"""

import numpy as np

BASE = "layers_assignment.py"


def batch_norm_forward(x, gamma, beta, eps=1e-5):
    axes = (0, *range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu = x.mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - mu) * inv_std
    out = gamma.reshape(shape) * xhat + beta.reshape(shape)
    return out, (xhat, inv_std, gamma, axes, shape)


def batch_norm_backward(dout, cache):
    xhat, inv_std, gamma, axes, shape = cache
    dx = dout * gamma.reshape(shape) * inv_std  # BUG: no terms through the batch mean and variance
    return dx, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)


LAYERS = {"batch_norm": (batch_norm_forward, batch_norm_backward)}
