"""Numpy layer functions; bug: avg pool backward divides by kH*kW everywhere, while the forward uses torch's divisor.

Seen in burn#5604 (burn-flex) and pytorch#198119 (Inductor's avg_pool2d backward lowering): the forward clips the
divisor, the backward keeps the kernel volume. Invisible whenever every window is a full kH*kW one: ceil_mode off
and either no padding or count_include_pad=True; it shows on ceil_mode's overhanging last windows and on padded
windows under count_include_pad=False.
"""

import numpy as np

BASE = "layers_assignment.py"


def avg_pool2d_forward(x, kernel_size, stride, padding=(0, 0), ceil_mode=False, count_include_pad=True):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    Ho, Wo = _out_size(H, kh, sh, ph, ceil_mode), _out_size(W, kw, sw, pw, ceil_mode)
    out = np.zeros((N, C, Ho, Wo))
    windows = {}
    for i in range(Ho):
        for j in range(Wo):
            h0, w0 = i * sh - ph, j * sw - pw
            h1, w1 = min(h0 + kh, H + ph), min(w0 + kw, W + pw)
            rows, cols = slice(max(h0, 0), min(h1, H)), slice(max(w0, 0), min(w1, W))
            if count_include_pad:
                div = (h1 - h0) * (w1 - w0)
            else:
                div = (rows.stop - rows.start) * (cols.stop - cols.start)
            out[:, :, i, j] = x[:, :, rows, cols].sum(axis=(2, 3)) / div
            windows[i, j] = rows, cols
    return out, (x.shape, windows, kh * kw)


def avg_pool2d_backward(dout, cache):
    x_shape, windows, window_size = cache
    dx = np.zeros(x_shape)
    for (i, j), (rows, cols) in windows.items():
        dx[:, :, rows, cols] += dout[:, :, i, j][:, :, None, None] / window_size  # BUG: not the forward's divisor
    return (dx,)


def _out_size(size, k, s, p, ceil_mode):
    span = size + 2 * p - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


LAYERS = {"avg_pool2d": (avg_pool2d_forward, avg_pool2d_backward)}
