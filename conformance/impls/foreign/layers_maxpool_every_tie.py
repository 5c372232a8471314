"""Numpy layer functions; bug: max pool backward's mask ``window == window.max()`` gives dout to every tied maximum.

The mask is how many course solutions write it, and Theano's CPU pooling gradient did the same (Theano#5248,
Theano#5404; old Caffe too). Invisible on continuous random inputs, where ties have probability zero; it shows on
ReLU outputs, quantized or integer images, and any window with a repeated maximum.
"""

import numpy as np

BASE = "layers_assignment.py"


def max_pool2d_forward(x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    Ho = _out_size(H, kh, sh, ph, dh, ceil_mode)
    Wo = _out_size(W, kw, sw, pw, dw, ceil_mode)
    Hp = max(H + 2 * ph, (Ho - 1) * sh + dh * (kh - 1) + 1)
    Wp = max(W + 2 * pw, (Wo - 1) * sw + dw * (kw - 1) + 1)
    xp = np.full((N, C, Hp, Wp), -np.inf)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    out = np.zeros((N, C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            window = xp[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out, (H, W, xp, kernel_size, stride, padding, dilation)


def max_pool2d_backward(dout, cache):
    H, W, xp, (kh, kw), (sh, sw), (ph, pw), (dh, dw) = cache
    _, _, Ho, Wo = dout.shape
    dxp = np.zeros_like(xp)
    for i in range(Ho):
        for j in range(Wo):
            rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
            cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
            window = xp[:, :, rows, cols]
            mask = window == window.max(axis=(2, 3), keepdims=True)  # BUG: every tied maximum, not the first
            dxp[:, :, rows, cols] += mask * dout[:, :, i, j][:, :, None, None]
    return (dxp[:, :, ph:ph + H, pw:pw + W],)


def _out_size(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


LAYERS = {"max_pool2d": (max_pool2d_forward, max_pool2d_backward)}
