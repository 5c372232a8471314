"""Numpy layer functions; bug: masked_fill backward returns dout unmasked: the filled positions get a gradient.

The forward's mask forgotten in the backward, as in numpy-ml's dropout wrapper (numpy-ml#94). Right for an all-False
mask, and hidden in attention, where a -inf fill feeds a softmax whose gradient at those zero-probability positions is
already 0. The forward is right.
"""

import numpy as np

BASE = "layers_assignment.py"


def masked_fill_forward(x, mask, value):
    mask = np.asarray(mask, dtype=bool)
    return np.where(mask, float(value), x), mask


def masked_fill_backward(dout, cache):
    return (dout.copy(),)  # BUG: should be zero where the mask filled


LAYERS = {"masked_fill": (masked_fill_forward, masked_fill_backward)}
