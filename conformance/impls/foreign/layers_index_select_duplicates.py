"""Numpy layer functions; bug: index_select backward with fancy ``+=`` along dim: a repeated index counts once.

``dx[index] += dout`` is buffered in numpy: every selected slice is written back once, so a slice selected k times
keeps one copy's gradient (pytorch#1528's duplicated-index backward; np.add.at accumulates). Right for an index
without repeats (a permutation, a subset); the forward is right.
"""

import numpy as np

BASE = "layers_assignment.py"


def _axis(dim, ndim):
    return int(dim) % ndim if ndim else 0


def index_select_forward(x, dim, index):
    if x.ndim == 0:
        return x.copy(), None
    axis = _axis(dim, x.ndim)
    index = np.asarray(index).reshape(-1)
    return np.take(x, index, axis=axis), (x.shape, axis, index)


def index_select_backward(dout, cache):
    if cache is None:
        return (dout.copy(),)
    x_shape, axis, index = cache
    dx = np.zeros(x_shape)
    np.moveaxis(dx, axis, 0)[index] += np.moveaxis(dout, axis, 0)  # BUG: repeats are not accumulated
    return (dx,)


LAYERS = {"index_select": (index_select_forward, index_select_backward)}
