"""CS231n-style layer functions; bug: the naive convolution's backward assigns the weight gradient
of each output position (``dw[f] = ...``) instead of adding it up.

Only the last sample's last output position survives. A 1×1 output of one sample, the plainest
case, hides it; the suite's convolutions have several positions (and its fixed case two samples)
at every seed, without groups, dilation or a per-axis stride (``WITHOUT`` of the base file).
"""

import numpy as np

BASE = "layers_cs231n.py"


def conv_backward_naive(dout, cache):
    x, w, _, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, _, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = x_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    dw[f] = window * dout[n, f, i, j]  # BUG: = instead of +=
                    dx_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW] += w[f] * dout[n, f, i, j]
    return dx_pad[:, :, pad:pad + H, pad:pad + W], dw, db


LAYERS = {"conv2d": (None, conv_backward_naive)}  # the base's forward
