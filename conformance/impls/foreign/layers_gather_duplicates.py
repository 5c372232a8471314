"""Numpy layer functions; bug: gather backward ``dx[where] += dout`` with fancy indexing: a repeat counts once.

The scatter that undoes a gather has to accumulate: an element gathered k times has k gradients. numpy's buffered
fancy ``+=`` keeps one (pytorch#1528, duplicated LongTensor indexing; np.add.at is the fix). Right while no index
repeats within a slice (permutations such as argsort output, top-k indices); the forward is right.
"""

import numpy as np

BASE = "layers_assignment.py"


def _axis(dim, ndim):
    return int(dim) % ndim if ndim else 0


def _scatter_index(index, axis):
    where = list(np.indices(index.shape, sparse=True))
    where[axis] = index
    return tuple(where)


def gather_forward(x, dim, index):
    index = np.asarray(index)
    axis = _axis(dim, x.ndim)
    where = _scatter_index(index.reshape(index.shape or (1,)), axis)
    out = x.reshape(x.shape or (1,))[where].reshape(index.shape)
    return out, (x.shape, where)


def gather_backward(dout, cache):
    x_shape, where = cache
    dx = np.zeros(x_shape or (1,))
    dx[where] += dout.reshape(dout.shape or (1,))  # BUG: an element gathered twice gets one gradient
    return (dx.reshape(x_shape),)


LAYERS = {"gather": (gather_forward, gather_backward)}
