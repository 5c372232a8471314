"""Numpy layer functions; bug: conv2d weight gradient computed for the first group only (the other groups' stay zero).

Grouped weight gradients are where convolution backward passes go wrong (pytorch#51430: ``nn.grad.conv2d_weight`` with
groups > 1; burn#1891: ``conv2d_weight_grad_groups``). Here the dw loop is the groups == 1 code, run on the first
group's channels. Invisible with groups == 1, and dx and db stay right for any groups.
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
    H, W, w, xp, (sh, sw), (ph, pw), (dh, dw), groups = cache
    O, Cg, kH, kW = w.shape
    Og = O // groups
    _, _, Ho, Wo = dout.shape
    dxp = np.zeros_like(xp)
    dw_ = np.zeros_like(w)
    for i in range(Ho):
        for j in range(Wo):
            hs = slice(i * sh, i * sh + dh * (kH - 1) + 1, dh)
            ws = slice(j * sw, j * sw + dw * (kW - 1) + 1, dw)
            for g in range(groups):
                cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
                dxp[:, cin, hs, ws] += np.tensordot(dout[:, cout, i, j], w[cout], axes=([1], [0]))
            # BUG: the weight gradient of the first group only (output channels :Og, input channels :Cg)
            dw_[:Og] += np.tensordot(dout[:, :Og, i, j], xp[:, :Cg, hs, ws], axes=([0], [0]))
    return dxp[:, :, ph:ph + H, pw:pw + W], dw_, dout.sum(axis=(0, 2, 3))


LAYERS = {"conv2d": (conv2d_forward, conv2d_backward)}
