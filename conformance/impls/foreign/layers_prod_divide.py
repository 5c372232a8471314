"""Numpy layer functions; bug: prod backward divides the product by the factor: ``dx = dout * out / x``.

The shortcut of tinygrad's prod backward (``ret / x``, tinygrad#17404) and of the cumprod backwards fixed in
tensorflow#119430, burn#5141 and pytensor#1911. At a zero it gives NaN (0 / 0) where the right gradient is the
product of the other factors (one zero) or 0 (two zeros). Exact whenever no factor is zero, so random normal or
positive inputs never show it; the forward is right.
"""

import numpy as np

BASE = "layers_assignment.py"


def _axis(dim, ndim):
    return int(dim) % ndim if ndim else 0


def prod_forward(x, dim, keepdim=False):
    axis = _axis(dim, x.ndim)
    if x.ndim == 0:
        return x.copy(), (x, x.copy(), axis, True)
    out = np.prod(x, axis=axis, keepdims=bool(keepdim))
    return out, (x, out, axis, bool(keepdim))


def prod_backward(dout, cache):
    x, out, axis, keepdim = cache
    if not keepdim:
        dout, out = np.expand_dims(dout, axis), np.expand_dims(out, axis)
    return (dout * out / x,)  # BUG: the product of the others as out / x, 0 / 0 at a zero factor


LAYERS = {"prod": (prod_forward, prod_backward)}
