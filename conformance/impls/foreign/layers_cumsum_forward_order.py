"""Numpy layer functions; bug: cumsum backward is a forward cumulative sum of dout (it should run from the end).

x[k] reaches out[i] for every i >= k, so dx[k] sums dout[k:]: a cumsum of the reversed dout, reversed back. Taking
the forward cumsum instead is the "same op, transposed" slip. Right along a dim of length 1; for a loss of out.sum()
it gives [1, ..., n] for [n, ..., 1], the same total, so a test of sum(dx) passes. The forward is right.
"""

import numpy as np

BASE = "layers_assignment.py"


def _axis(dim, ndim):
    return int(dim) % ndim if ndim else 0


def cumsum_forward(x, dim):
    axis = _axis(dim, x.ndim)
    out = np.cumsum(x.reshape(x.shape or (1,)), axis=axis).reshape(x.shape)
    return out, axis


def cumsum_backward(dout, cache):
    axis = cache
    dx = np.cumsum(dout.reshape(dout.shape or (1,)), axis=axis)  # BUG: forward order, not from the end
    return (dx.reshape(dout.shape),)


LAYERS = {"cumsum": (cumsum_forward, cumsum_backward)}
