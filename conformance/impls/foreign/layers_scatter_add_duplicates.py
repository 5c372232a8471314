"""Numpy layer functions; bug: scatter_add forward ``out[where] += src``: a repeated target gets one src only.

The forward face of pytorch#1528's duplicate indices: numpy's buffered fancy ``+=`` writes each target once, so
where several src entries land on one place only the last is added (np.add.at adds them all). The backward is right
(dx = dout, dsrc = dout gathered); only the output is wrong, and only when the index repeats along dim.
"""

import numpy as np

BASE = "layers_assignment.py"


def _axis(dim, ndim):
    return int(dim) % ndim if ndim else 0


def _scatter_index(index, axis):
    where = list(np.indices(index.shape, sparse=True))
    where[axis] = index
    return tuple(where)


def scatter_add_forward(x, src, dim, index):
    index = np.asarray(index)
    axis = _axis(dim, x.ndim)
    where = _scatter_index(index.reshape(index.shape or (1,)), axis)
    out = x.copy().reshape(x.shape or (1,))
    out[where] += src.reshape(index.shape or (1,))  # BUG: a repeated target keeps only the last src
    return out.reshape(x.shape), (where, src.shape)


def scatter_add_backward(dout, cache):
    where, src_shape = cache
    dsrc = dout.reshape(dout.shape or (1,))[where].reshape(src_shape)
    return dout.copy(), dsrc


LAYERS = {"scatter_add": (scatter_add_forward, scatter_add_backward)}
