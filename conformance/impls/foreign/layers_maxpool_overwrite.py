"""Numpy layer functions; bug: max pool backward writes ``dx[argmax] = dout`` instead of ``+=``.

Seen in the wild wherever the backward is an unpool/put that assigns (tangermeme#95 with ``max_unpool``, ocannl#512,
the "= vs +=" question under many from-scratch CNN tutorials). Where overlapping windows share their maximum, only
the last window's gradient survives. Invisible while windows do not overlap (stride == kernel, no dilation): every
input element is then the argmax of at most one window.
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
    argmax = np.zeros((N, C, Ho, Wo), dtype=int)
    for i in range(Ho):
        for j in range(Wo):
            window = xp[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            flat = window.reshape(N, C, kh * kw)
            argmax[:, :, i, j] = flat.argmax(axis=2)
            out[:, :, i, j] = flat.max(axis=2)
    cache = (x.shape, xp.shape, argmax, kw, stride, padding, dilation)
    return out, cache


def max_pool2d_backward(dout, cache):
    (N, C, H, W), xp_shape, argmax, kw, (sh, sw), (ph, pw), (dh, dw) = cache
    _, _, Ho, Wo = dout.shape
    dxp = np.zeros(xp_shape)
    n, c = np.meshgrid(np.arange(N), np.arange(C), indexing="ij")
    for i in range(Ho):
        for j in range(Wo):
            a, b = np.divmod(argmax[:, :, i, j], kw)
            dxp[n, c, i * sh + a * dh, j * sw + b * dw] = dout[:, :, i, j]  # BUG: = instead of +=
    return (dxp[:, :, ph:ph + H, pw:pw + W],)


def _out_size(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


LAYERS = {"max_pool2d": (max_pool2d_forward, max_pool2d_backward)}
