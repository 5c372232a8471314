"""Numpy layer functions, correct, with CS231n's own signatures (assignment 2's naive convolution and
max pool), taking only what the assignment asks for.

``conv_forward_naive(x, w, b, conv_param)`` takes one ``stride`` and one ``pad`` for both axes, no
dilation, no groups; ``max_pool_forward_naive(x, pool_param)`` a pool height and width and one
stride, no padding, no dilation, no ceil_mode. That is most course code people bring, so the file
says so (``WITHOUT``: ``Capabilities.without``) and the suite draws none of those cases — and still
overlapping windows with ties, sizes the stride does not divide, several samples and channels. The
last lines are the glue a user writes: torch's arguments to the assignment's.
"""

import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, _, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = x_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    cache = (x, w, b, conv_param)
    return out, cache


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
                    dw[f] += window * dout[n, f, i, j]
                    dx_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW] += w[f] * dout[n, f, i, j]
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def max_pool_forward_naive(x, pool_param):
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    H_out = 1 + (H - ph) // stride
    W_out = 1 + (W - pw) // stride
    out = np.zeros((N, C, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            out[:, :, i, j] = np.max(window, axis=(2, 3))
    cache = (x, pool_param)
    return out, cache


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
                    k = np.argmax(window)  # the first maximum, as torch: a tie's gradient goes to one element
                    a, b = np.unravel_index(k, window.shape)
                    dx[n, c, i * stride + a, j * stride + b] += dout[n, c, i, j]
    return dx


# the glue: torch's arguments (stride and padding as pairs, the same on both axes by WITHOUT)
def conv2d_forward(x, weight, bias, stride, padding, dilation, groups):
    return conv_forward_naive(x, weight, bias, {"stride": stride[0], "pad": padding[0]})


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    return max_pool_forward_naive(x, {"pool_height": kernel_size[0], "pool_width": kernel_size[1],
                                      "stride": stride[0]})


LAYERS = {"conv2d": (conv2d_forward, conv_backward_naive), "max_pool2d": (max_pool2d_forward, max_pool_backward_naive)}
WITHOUT = {"conv2d": ["groups", "dilation", "per_axis"], "max_pool2d": ["padding", "dilation", "ceil_mode", "per_axis"]}
