"""CS231n-style layer functions; bug: the max pool backward routes a window's gradient with the
mask ``window == max`` and *assigns* it into dx.

The most common solution to the assignment's ``max_pool_backward_naive`` writes
``dx[n, c, window] = (window == np.max(window)) * dout[n, c, i, j]``: correct where windows neither
overlap nor tie (the assignment's own check: a 2×2 pool at stride 2 on random numbers), wrong where
they do — a tie gets the whole gradient twice, and where two windows overlap the second overwrites
the first. The suite's max pools overlap and tie at every seed, without padding, dilation or
ceil_mode (``WITHOUT`` of the base file).
"""

import numpy as np

BASE = "layers_cs231n.py"


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C = x.shape[:2]
    _, _, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    mask = window == np.max(window)
                    dx[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw] = mask * dout[n, c, i, j]  # BUG
    return dx


LAYERS = {"max_pool2d": (None, max_pool_backward_naive)}  # the base's forward
