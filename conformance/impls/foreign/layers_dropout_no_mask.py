"""Numpy layer functions; bug: dropout backward returns dout / (1 - p) everywhere: the mask forgotten.

numpy-ml#94: the forward multiplies by the mask and rescales, the backward only rescales, so a dropped unit passes
a gradient its output never depended on. Right only where nothing was dropped (an all-True mask, p = 0); the
forward is right.
"""

import numpy as np

BASE = "layers_assignment.py"


def dropout_forward(x, mask, p):
    mask = np.asarray(mask, dtype=bool)
    return x * mask / (1 - p), (mask, p)


def dropout_backward(dout, cache):
    _, p = cache
    return (dout / (1 - p),)  # BUG: should be dout * mask / (1 - p)


LAYERS = {"dropout": (dropout_forward, dropout_backward)}
