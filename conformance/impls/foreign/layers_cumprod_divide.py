"""Numpy layer functions; bug: cumprod backward divides by the input: ``dx = revcumsum(dout * out) / x``.

The division-based formula fixed in tensorflow#119430, burn#5141 and pytensor#1911 (tinygrad#17404 is the same
shortcut in prod). At a zero, 0 / 0 gives NaN where the gradient is finite (a product of the other factors, or 0 past
a second zero). Exact whenever no entry is zero, which is all random normal or (0, 1) inputs; the forward is right.
"""

import numpy as np

BASE = "layers_assignment.py"


def _axis(dim, ndim):
    return int(dim) % ndim if ndim else 0


def cumprod_forward(x, dim):
    axis = _axis(dim, x.ndim)
    out = np.cumprod(x.reshape(x.shape or (1,)), axis=axis).reshape(x.shape)
    return out, (x, out, axis)


def cumprod_backward(dout, cache):
    x, out, axis = cache
    g = (dout * out).reshape(x.shape or (1,))
    # d out[i] / d x[k] = out[i] / x[k] for i >= k: a reversed cumulative sum, divided by x
    rev = np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis)
    return (rev.reshape(x.shape) / x,)  # BUG: 0 / 0 wherever x has a zero


LAYERS = {"cumprod": (cumprod_forward, cumprod_backward)}
