"""Numpy layer functions; bug: conv_transpose2d backward crops dout to the output's size without output_padding.

The backward recomputes the output size from stride, padding and dilation alone, (H − 1)·stride − 2·padding +
dilation·(kH − 1) + 1, and reads dout only that far: the last output_padding rows and columns send no gradient
back. Right without output_padding, and where nothing but the bias lands there (padding 0); the forward is right.
"""

import numpy as np

BASE = "layers_assignment.py"


def conv_transpose2d_forward(x, w, b, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), groups=1,
                             dilation=(1, 1)):
    N, C, H, W = x.shape
    _, Og, kH, kW = w.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    Cg = C // groups
    Ho = (H - 1) * sh - 2 * ph + dh * (kH - 1) + oph + 1
    Wo = (W - 1) * sw - 2 * pw + dw * (kW - 1) + opw + 1
    buf = np.zeros((N, groups * Og, max((H - 1) * sh + dh * (kH - 1) + 1, ph + Ho),
                    max((W - 1) * sw + dw * (kW - 1) + 1, pw + Wo)))
    for g in range(groups):
        cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(H):
            for j in range(W):
                hs = slice(i * sh, i * sh + dh * (kH - 1) + 1, dh)
                ws = slice(j * sw, j * sw + dw * (kW - 1) + 1, dw)
                buf[:, cout, hs, ws] += np.tensordot(x[:, cin, i, j], w[cin], axes=([1], [0]))
    out = buf[:, :, ph:ph + Ho, pw:pw + Wo] + b[None, :, None, None]
    return out, (x, w, stride, padding, dilation, groups, buf.shape)


def conv_transpose2d_backward(dout, cache):
    x, w, (sh, sw), (ph, pw), (dh, dw), groups, buf_shape = cache
    _, C, H, W = x.shape
    _, Og, kH, kW = w.shape
    Cg = C // groups
    # BUG: the output size without output_padding; dout's last rows and columns are never read
    Ho = (H - 1) * sh - 2 * ph + dh * (kH - 1) + 1
    Wo = (W - 1) * sw - 2 * pw + dw * (kW - 1) + 1
    dbuf = np.zeros(buf_shape)
    dbuf[:, :, ph:ph + Ho, pw:pw + Wo] = dout[:, :, :Ho, :Wo]
    dx, dw_ = np.zeros_like(x), np.zeros_like(w)
    for g in range(groups):
        cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(H):
            for j in range(W):
                hs = slice(i * sh, i * sh + dh * (kH - 1) + 1, dh)
                ws = slice(j * sw, j * sw + dw * (kW - 1) + 1, dw)
                d = dbuf[:, cout, hs, ws]
                dx[:, cin, i, j] = np.tensordot(d, w[cin], axes=([1, 2, 3], [1, 2, 3]))
                dw_[cin] += np.tensordot(x[:, cin, i, j], d, axes=([0], [0]))
    return dx, dw_, dout.sum(axis=(0, 2, 3))


LAYERS = {"conv_transpose2d": (conv_transpose2d_forward, conv_transpose2d_backward)}
