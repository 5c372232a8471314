"""Numpy layer functions; bug: conv2d backward (dx and dw) uses the dilation where the stride belongs and vice versa.

The two are easy to trade in a backward pass, which is a convolution whose stride is the forward's dilation
(candle#2337 in ConvTranspose2D's backprop, iree-turbine#1223 in a weight-gradient constructor). The forward is right.
Invisible while stride == dilation in each dimension, e.g. the common stride 1, dilation 1.
"""

import numpy as np

BASE = "layers_assignment.py"


def conv2d_forward(x, w, b, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    N, _, H, W = x.shape
    O, Cg, kH, kW = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Og = O // groups
    Ho = (H + 2 * ph - dh * (kH - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kW - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((N, O, Ho, Wo))
    for g in range(groups):
        cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(Ho):
            for j in range(Wo):
                patch = xp[:, cin, i * sh:i * sh + dh * (kH - 1) + 1:dh, j * sw:j * sw + dw * (kW - 1) + 1:dw]
                out[:, cout, i, j] = np.tensordot(patch, w[cout], axes=([1, 2, 3], [1, 2, 3]))
    out += b[None, :, None, None]
    return out, (H, W, w, xp, stride, padding, dilation, groups)


def conv2d_backward(dout, cache):
    H, W, w, xp, stride, (ph, pw), dilation, groups = cache
    (dh, dw), (sh, sw) = stride, dilation  # BUG: stride and dilation swapped
    O, Cg, kH, kW = w.shape
    Og = O // groups
    _, _, Ho, Wo = dout.shape
    # zero-extend the buffers so the (wrong) windows stay in range; what falls outside is cropped
    Hp = max(xp.shape[2], (Ho - 1) * sh + dh * (kH - 1) + 1)
    Wp = max(xp.shape[3], (Wo - 1) * sw + dw * (kW - 1) + 1)
    xp = np.pad(xp, ((0, 0), (0, 0), (0, Hp - xp.shape[2]), (0, Wp - xp.shape[3])))
    dxp = np.zeros_like(xp)
    dw_ = np.zeros_like(w)
    for g in range(groups):
        cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(Ho):
            for j in range(Wo):
                hs = slice(i * sh, i * sh + dh * (kH - 1) + 1, dh)
                ws = slice(j * sw, j * sw + dw * (kW - 1) + 1, dw)
                d = dout[:, cout, i, j]
                dxp[:, cin, hs, ws] += np.tensordot(d, w[cout], axes=([1], [0]))
                dw_[cout] += np.tensordot(d, xp[:, cin, hs, ws], axes=([0], [0]))
    return dxp[:, :, ph:ph + H, pw:pw + W], dw_, dout.sum(axis=(0, 2, 3))


LAYERS = {"conv2d": (conv2d_forward, conv2d_backward)}
