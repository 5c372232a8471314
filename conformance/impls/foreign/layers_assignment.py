"""Numpy layer functions written like a course assignment (correct): CS231n's layers.py style.

The suite verifies layer ops (convolution, transposed convolution, pooling, normalization; var, std and the
2-norm; cat, stack, slicing, padding; dropout with a given mask; cumulative sums and products, prod; indexing:
index_select, gather, embedding, scatter_add; where, masked_fill; scaled dot-product attention; recurrent: a
one-layer LSTM and GRU over a sequence) through a layer-function adapter:
``forward(*inputs, **attrs) -> (out, cache)`` and ``backward(dout, cache) -> grads``. This is a correct set
written independently of the reference implementation — naive loops over output positions, textbook backward
formulas (batch norm's compact dx; products of the other factors, never a division by x; ``np.add.at`` for
repeated indices and for padding's edges; std's and the norm's gradient 0 where they are 0, as torch's; the
softmax backward ``P * (dP - rowsum(dP * P))``; backpropagation through time that carries dh and dc from step
t + 1 into step t, rnn_layers.py's lstm_backward pattern) — and the base the buggy ``layers_*.py`` files
override one op at a time.
"""

import numpy as np


def _out_size(size, k, s, p, d, ceil_mode):
    """Output length of a sliding window; under ceil_mode a last window starting in the padding is dropped."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def conv2d_forward(x, w, b, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    N, _, H, W = x.shape
    O, Cg, kH, kW = w.shape
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    Og = O // groups
    Ho = _out_size(H, kH, sh, ph, dh, False)
    Wo = _out_size(W, kW, sw, pw, dw, False)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((N, O, Ho, Wo))
    for g in range(groups):
        cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(Ho):
            for j in range(Wo):
                hs = slice(i * sh, i * sh + dh * (kH - 1) + 1, dh)
                ws = slice(j * sw, j * sw + dw * (kW - 1) + 1, dw)
                patch = xp[:, cin, hs, ws]  # (N, Cg, kH, kW)
                out[:, cout, i, j] = np.tensordot(patch, w[cout], axes=([1, 2, 3], [1, 2, 3]))
    out += b[None, :, None, None]
    cache = (H, W, w, xp, stride, padding, dilation, groups)
    return out, cache


def conv2d_backward(dout, cache):
    H, W, w, xp, (sh, sw), (ph, pw), (dh, dw), groups = cache
    O, Cg, kH, kW = w.shape
    Og = O // groups
    _, _, Ho, Wo = dout.shape
    dxp = np.zeros_like(xp)
    dw_ = np.zeros_like(w)
    for g in range(groups):
        cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(Ho):
            for j in range(Wo):
                hs = slice(i * sh, i * sh + dh * (kH - 1) + 1, dh)
                ws = slice(j * sw, j * sw + dw * (kW - 1) + 1, dw)
                d = dout[:, cout, i, j]  # (N, Og)
                dxp[:, cin, hs, ws] += np.tensordot(d, w[cout], axes=([1], [0]))
                dw_[cout] += np.tensordot(d, xp[:, cin, hs, ws], axes=([0], [0]))
    dx = dxp[:, :, ph:ph + H, pw:pw + W]
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw_, db


def conv1d_forward(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    # a 1-D convolution is a 2-D one over an image of height 1
    out, cache = conv2d_forward(x[:, :, None, :], w[:, :, None, :], b, (1, stride), (0, padding), (1, dilation), groups)
    return out[:, :, 0, :], cache


def conv1d_backward(dout, cache):
    dx, dw, db = conv2d_backward(dout[:, :, None, :], cache)
    return dx[:, :, 0, :], dw[:, :, 0, :], db


def max_pool2d_forward(x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    Ho = _out_size(H, kh, sh, ph, dh, ceil_mode)
    Wo = _out_size(W, kw, sw, pw, dw, ceil_mode)
    # -inf padding, with room on the right for a ceil_mode window running past it
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
            argmax[:, :, i, j] = flat.argmax(axis=2)  # the first maximum, row-major
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
            dxp[n, c, i * sh + a * dh, j * sw + b * dw] += dout[:, :, i, j]
    return (dxp[:, :, ph:ph + H, pw:pw + W],)


def _avg_windows(H, W, kernel_size, stride, padding, ceil_mode, count_include_pad):
    """Per output position: the rows and columns of the input it averages, and the divisor."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    Ho = _out_size(H, kh, sh, ph, 1, ceil_mode)
    Wo = _out_size(W, kw, sw, pw, 1, ceil_mode)
    windows = {}
    for i in range(Ho):
        for j in range(Wo):
            h0, w0 = i * sh - ph, j * sw - pw
            h1, w1 = min(h0 + kh, H + ph), min(w0 + kw, W + pw)  # clipped to the padded edge
            rows, cols = slice(max(h0, 0), min(h1, H)), slice(max(w0, 0), min(w1, W))
            if count_include_pad:
                div = (h1 - h0) * (w1 - w0)
            else:
                div = (rows.stop - rows.start) * (cols.stop - cols.start)
            windows[i, j] = rows, cols, div
    return Ho, Wo, windows


def avg_pool2d_forward(x, kernel_size, stride, padding=(0, 0), ceil_mode=False, count_include_pad=True):
    N, C, H, W = x.shape
    Ho, Wo, windows = _avg_windows(H, W, kernel_size, stride, padding, ceil_mode, count_include_pad)
    out = np.zeros((N, C, Ho, Wo))
    for (i, j), (rows, cols, div) in windows.items():
        out[:, :, i, j] = x[:, :, rows, cols].sum(axis=(2, 3)) / div
    return out, (x.shape, windows)


def avg_pool2d_backward(dout, cache):
    x_shape, windows = cache
    dx = np.zeros(x_shape)
    for (i, j), (rows, cols, div) in windows.items():
        dx[:, :, rows, cols] += dout[:, :, i, j][:, :, None, None] / div
    return (dx,)


def _normalize(x, axes, eps):
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)  # biased
    inv_std = 1.0 / np.sqrt(var + eps)
    return (x - mu) * inv_std, inv_std


def _normalize_backward(dxhat, xhat, inv_std, axes):
    # compact form of d/dx of (x - mean) / std, with m the number of normalized elements:
    # dx = inv_std / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
    m = np.prod([dxhat.shape[a] for a in axes])
    return inv_std / m * (m * dxhat - dxhat.sum(axis=axes, keepdims=True)
                          - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))


def batch_norm_forward(x, gamma, beta, eps=1e-5):
    axes = (0, *range(2, x.ndim))  # all but the channel axis
    shape = (1, -1) + (1,) * (x.ndim - 2)
    xhat, inv_std = _normalize(x, axes, eps)
    out = gamma.reshape(shape) * xhat + beta.reshape(shape)
    return out, (xhat, inv_std, gamma, axes, shape)


def batch_norm_backward(dout, cache):
    xhat, inv_std, gamma, axes, shape = cache
    dx = _normalize_backward(dout * gamma.reshape(shape), xhat, inv_std, axes)
    return dx, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)


def layer_norm_forward(x, gamma, beta, normalized_shape, eps=1e-5):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    xhat, inv_std = _normalize(x, axes, eps)
    return gamma * xhat + beta, (xhat, inv_std, gamma, axes)


def layer_norm_backward(dout, cache):
    xhat, inv_std, gamma, axes = cache
    dx = _normalize_backward(dout * gamma, xhat, inv_std, axes)
    lead = tuple(range(xhat.ndim - len(axes)))
    return dx, (dout * xhat).sum(axis=lead), dout.sum(axis=lead)


def group_norm_forward(x, gamma, beta, num_groups, eps=1e-5):
    N = x.shape[0]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    # statistics over each group of C // num_groups channels and all spatial positions
    xhat, inv_std = _normalize(x.reshape(N, num_groups, -1), (2,), eps)
    xhat = xhat.reshape(x.shape)
    out = gamma.reshape(shape) * xhat + beta.reshape(shape)
    return out, (xhat, inv_std, gamma, num_groups, shape)


def group_norm_backward(dout, cache):
    xhat, inv_std, gamma, G, shape = cache
    N = xhat.shape[0]
    dxhat = (dout * gamma.reshape(shape)).reshape(N, G, -1)
    dx = _normalize_backward(dxhat, xhat.reshape(N, G, -1), inv_std, (2,)).reshape(xhat.shape)
    axes = (0, *range(2, xhat.ndim))
    return dx, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)


def _axis(dim, ndim):
    """A torch dim (possibly negative) as a numpy axis; a 0-d tensor takes dim 0 or -1."""
    return int(dim) % ndim if ndim else 0


def cumsum_forward(x, dim):
    axis = _axis(dim, x.ndim)
    out = np.cumsum(x.reshape(x.shape or (1,)), axis=axis).reshape(x.shape)
    return out, axis


def cumsum_backward(dout, cache):
    axis = cache
    d = dout.reshape(dout.shape or (1,))
    # x[k] reaches out[i] for every i >= k: a cumulative sum from the end
    dx = np.flip(np.cumsum(np.flip(d, axis), axis=axis), axis)
    return (dx.reshape(dout.shape),)


def cumprod_forward(x, dim):
    axis = _axis(dim, x.ndim)
    out = np.cumprod(x.reshape(x.shape or (1,)), axis=axis).reshape(x.shape)
    return out, (x, axis)


def cumprod_backward(dout, cache):
    x, axis = cache
    xm = np.moveaxis(x.reshape(x.shape or (1,)), axis, -1)
    dm = np.moveaxis(dout.reshape(dout.shape or (1,)), axis, -1)
    n = xm.shape[-1]
    # d out[i] / d x[k] = prod(x[:k]) * prod(x[k+1:i+1]) for i >= k: never divide by x[k], which may be 0.
    # s[k] = sum_{i >= k} dout[i] * prod(x[k+1:i+1]) by Horner's rule from the end: s[k] = dout[k] + x[k+1] * s[k+1]
    s = np.zeros_like(dm)
    acc = np.zeros(dm.shape[:-1])
    for k in range(n - 1, -1, -1):
        acc = dm[..., k] + (xm[..., k + 1] * acc if k + 1 < n else 0.0)
        s[..., k] = acc
    before = np.cumprod(np.concatenate([np.ones((*xm.shape[:-1], 1)), xm[..., :-1]], axis=-1), axis=-1)
    dx = np.moveaxis(before * s, -1, axis)
    return (dx.reshape(x.shape),)


def prod_forward(x, dim, keepdim=False):
    axis = _axis(dim, x.ndim)
    if x.ndim == 0:
        return x.copy(), (x, axis, True)
    return np.prod(x, axis=axis, keepdims=bool(keepdim)), (x, axis, bool(keepdim))


def prod_backward(dout, cache):
    x, axis, keepdim = cache
    if x.ndim == 0:
        return (dout.copy(),)
    if not keepdim:
        dout = np.expand_dims(dout, axis)
    # d prod / d x[k] = product of all the others = prod(x[:k]) * prod(x[k+1:]), no division by x[k]
    xm = np.moveaxis(x, axis, -1)
    one = np.ones((*xm.shape[:-1], 1))
    before = np.cumprod(np.concatenate([one, xm[..., :-1]], axis=-1), axis=-1)
    after = np.flip(np.cumprod(np.flip(np.concatenate([xm[..., 1:], one], axis=-1), -1), axis=-1), -1)
    return (dout * np.moveaxis(before * after, -1, axis),)


def index_select_forward(x, dim, index):
    if x.ndim == 0:  # a scalar: the index can only be [0]
        return x.copy(), None
    axis = _axis(dim, x.ndim)
    index = np.asarray(index).reshape(-1)
    return np.take(x, index, axis=axis), (x.shape, axis, index)


def index_select_backward(dout, cache):
    if cache is None:
        return (dout.copy(),)
    x_shape, axis, index = cache
    dx = np.zeros(x_shape)
    # np.add.at, not dx[index] += ...: a repeated index must collect every copy's gradient
    np.add.at(np.moveaxis(dx, axis, 0), index, np.moveaxis(dout, axis, 0))
    return (dx,)


def _scatter_index(index, axis):
    """The full numpy index for gather / scatter: position p of ``index`` addresses p with p[axis] = index[p]."""
    where = list(np.indices(index.shape, sparse=True))
    where[axis] = index
    return tuple(where)


def gather_forward(x, dim, index):
    index = np.asarray(index)
    axis = _axis(dim, x.ndim)
    where = _scatter_index(index.reshape(index.shape or (1,)), axis)
    out = x.reshape(x.shape or (1,))[where].reshape(index.shape)
    return out, (x.shape, where)


def gather_backward(dout, cache):
    x_shape, where = cache
    dx = np.zeros(x_shape or (1,))
    np.add.at(dx, where, dout.reshape(dout.shape or (1,)))  # an element gathered several times: every copy adds
    return (dx.reshape(x_shape),)


def embedding_forward(weight, input):
    input = np.asarray(input)
    return weight[input], (weight.shape, input)


def embedding_backward(dout, cache):
    (V, D), input = cache
    dW = np.zeros((V, D))
    np.add.at(dW, input.reshape(-1), dout.reshape(-1, D))  # a row used several times gets every use's gradient
    return (dW,)


def scatter_add_forward(x, src, dim, index):
    index = np.asarray(index)
    axis = _axis(dim, x.ndim)
    where = _scatter_index(index.reshape(index.shape or (1,)), axis)
    out = x.copy().reshape(x.shape or (1,))
    np.add.at(out, where, src.reshape(index.shape or (1,)))  # several src entries may land on one place
    return out.reshape(x.shape), (where, src.shape)


def scatter_add_backward(dout, cache):
    where, src_shape = cache
    dsrc = dout.reshape(dout.shape or (1,))[where].reshape(src_shape)
    return dout.copy(), dsrc


def where_forward(x, y, condition):
    condition = np.asarray(condition, dtype=bool)
    return np.where(condition, x, y), condition


def where_backward(dout, cache):
    condition = cache
    return np.where(condition, dout, 0.0), np.where(condition, 0.0, dout)


def masked_fill_forward(x, mask, value):
    mask = np.asarray(mask, dtype=bool)
    return np.where(mask, float(value), x), mask


def masked_fill_backward(dout, cache):
    mask = cache
    return (np.where(mask, 0.0, dout),)  # the filled positions no longer depend on x


def _attention_probs(q, k, scale, is_causal):
    """softmax(scale * q @ k^T) over the keys, the max subtracted; causal: query i sees keys 0..i (top-left)."""
    L, S = q.shape[-2], k.shape[-2]
    scores = scale * (q @ np.swapaxes(k, -1, -2))  # (..., L, S)
    if is_causal:
        scores = np.where(np.tril(np.ones((L, S), dtype=bool)), scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)  # key 0 is never masked: the max is finite
    p = np.exp(scores)
    return p / p.sum(axis=-1, keepdims=True)


def scaled_dot_product_attention_forward(q, k, v, is_causal=False, scale=None):
    # q (..., L, E), k (..., S, E), v (..., S, Ev) -> out (..., L, Ev)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else float(scale)
    p = _attention_probs(q, k, scale, bool(is_causal))
    return p @ v, (q, k, v, p, scale)


def scaled_dot_product_attention_backward(dout, cache):
    q, k, v, p, scale = cache
    dv = np.swapaxes(p, -1, -2) @ dout  # (..., S, Ev)
    dp = dout @ np.swapaxes(v, -1, -2)  # (..., L, S)
    # softmax backward, row by row; a masked position has p = 0 and gets no gradient
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq = scale * (ds @ k)
    dk = scale * (np.swapaxes(ds, -1, -2) @ q)
    return dq, dk, dv


def _sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: exp of a non-positive number only."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    # x (T, B, I), h0 and c0 (B, H), w_ih (4H, I), w_hh (4H, H): every step's h, (T, B, H)
    T, H = x.shape[0], h0.shape[-1]
    h, c = h0, c0
    out = np.zeros((T, *h0.shape))
    steps = []
    for t in range(T):
        pre = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, 4H), torch's gate order i, f, g, o
        i, f = _sigmoid(pre[:, :H]), _sigmoid(pre[:, H:2 * H])
        g, o = np.tanh(pre[:, 2 * H:3 * H]), _sigmoid(pre[:, 3 * H:])
        next_c = f * c + i * g
        tanh_c = np.tanh(next_c)
        steps.append((x[t], h, c, i, f, g, o, tanh_c))
        h, c = o * tanh_c, next_c
        out[t] = h
    return out, (steps, w_ih, w_hh)


def lstm_backward(dout, cache):
    steps, w_ih, w_hh = cache
    T = len(steps)
    dx = np.zeros((T, *steps[0][0].shape))
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db = np.zeros(w_ih.shape[0])
    dh_next = np.zeros(dout.shape[1:])  # the gradient reaching h_t (and c_t) from step t + 1
    dc_next = np.zeros(dout.shape[1:])
    for t in reversed(range(T)):
        x_t, h_prev, c_prev, i, f, g, o, tanh_c = steps[t]
        dh = dout[t] + dh_next  # h_t feeds the output and the next step
        dc = dc_next + dh * o * (1 - tanh_c ** 2)
        do = dh * tanh_c
        di, df, dg = dc * g, dc * c_prev, dc * i
        dpre = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)], axis=1)
        dx[t] = dpre @ w_ih
        dw_ih += dpre.T @ x_t
        dw_hh += dpre.T @ h_prev
        db += dpre.sum(axis=0)
        dh_next = dpre @ w_hh
        dc_next = dc * f
    return dx, dh_next, dc_next, dw_ih, dw_hh, db, db.copy()  # b_ih and b_hh enter the same sum


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh):
    # x (T, B, I), h0 (B, H), w_ih (3H, I), w_hh (3H, H), torch's gate order r, z, n: every step's h, (T, B, H)
    T, H = x.shape[0], h0.shape[-1]
    h = h0
    out = np.zeros((T, *h0.shape))
    steps = []
    for t in range(T):
        gi = x[t] @ w_ih.T + b_ih  # (B, 3H)
        gh = h @ w_hh.T + b_hh
        r = _sigmoid(gi[:, :H] + gh[:, :H])
        z = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        hn = gh[:, 2 * H:]  # the reset gate scales W_hn h + b_hn, bias included
        n = np.tanh(gi[:, 2 * H:] + r * hn)
        steps.append((x[t], h, r, z, n, hn))
        h = (1 - z) * n + z * h
        out[t] = h
    return out, (steps, w_ih, w_hh)


def gru_backward(dout, cache):
    steps, w_ih, w_hh = cache
    T = len(steps)
    dx = np.zeros((T, *steps[0][0].shape))
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db_ih, db_hh = np.zeros(w_ih.shape[0]), np.zeros(w_hh.shape[0])
    dh_next = np.zeros(dout.shape[1:])  # the gradient reaching h_t from step t + 1
    for t in reversed(range(T)):
        x_t, h_prev, r, z, n, hn = steps[t]
        dh = dout[t] + dh_next
        dn = dh * (1 - z)
        dz = dh * (h_prev - n)
        dan = dn * (1 - n ** 2)  # the pre-activation of n
        dar = dan * hn * r * (1 - r)
        daz = dz * z * (1 - z)
        dgi = np.concatenate([dar, daz, dan], axis=1)
        dgh = np.concatenate([dar, daz, dan * r], axis=1)
        dx[t] = dgi @ w_ih
        dw_ih += dgi.T @ x_t
        dw_hh += dgh.T @ h_prev
        db_ih += dgi.sum(axis=0)
        db_hh += dgh.sum(axis=0)
        dh_next = dh * z + dgh @ w_hh  # directly through z * h, and through the three gates
    return dx, dh_next, dw_ih, dw_hh, db_ih, db_hh


def conv_transpose2d_forward(x, w, b, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), groups=1,
                             dilation=(1, 1)):
    # x (N, C, H, W), w (C, O/groups, kH, kW): every input position scatters x[n, c, i, j] * w[c] into the
    # output at (i*stride + u*dilation - padding, ...); computed in a buffer without the padding cut off
    N, C, H, W = x.shape
    _, Og, kH, kW = w.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    Cg = C // groups
    Ho = (H - 1) * sh - 2 * ph + dh * (kH - 1) + oph + 1
    Wo = (W - 1) * sw - 2 * pw + dw * (kW - 1) + opw + 1
    # room for every tap, and for output_padding rows beyond them
    buf = np.zeros((N, groups * Og, max((H - 1) * sh + dh * (kH - 1) + 1, ph + Ho),
                    max((W - 1) * sw + dw * (kW - 1) + 1, pw + Wo)))
    for g in range(groups):
        cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(H):
            for j in range(W):
                hs = slice(i * sh, i * sh + dh * (kH - 1) + 1, dh)
                ws = slice(j * sw, j * sw + dw * (kW - 1) + 1, dw)
                buf[:, cout, hs, ws] += np.tensordot(x[:, cin, i, j], w[cin], axes=([1], [0]))  # (N, Og, kH, kW)
    out = buf[:, :, ph:ph + Ho, pw:pw + Wo] + b[None, :, None, None]
    return out, (x, w, stride, padding, dilation, groups, buf.shape)


def conv_transpose2d_backward(dout, cache):
    x, w, (sh, sw), (ph, pw), (dh, dw), groups, buf_shape = cache
    _, C, H, W = x.shape
    _, Og, kH, kW = w.shape
    Cg = C // groups
    _, _, Ho, Wo = dout.shape
    dbuf = np.zeros(buf_shape)  # what was cut off (the padding) gets no gradient
    dbuf[:, :, ph:ph + Ho, pw:pw + Wo] = dout
    dx, dw_ = np.zeros_like(x), np.zeros_like(w)
    for g in range(groups):
        cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(H):
            for j in range(W):
                hs = slice(i * sh, i * sh + dh * (kH - 1) + 1, dh)
                ws = slice(j * sw, j * sw + dw * (kW - 1) + 1, dw)
                d = dbuf[:, cout, hs, ws]  # (N, Og, kH, kW)
                dx[:, cin, i, j] = np.tensordot(d, w[cin], axes=([1, 2, 3], [1, 2, 3]))
                dw_[cin] += np.tensordot(x[:, cin, i, j], d, axes=([0], [0]))
    return dx, dw_, dout.sum(axis=(0, 2, 3))


def _axes(dim, ndim):
    """A torch dim or tuple of dims as sorted numpy axes."""
    return tuple(sorted(int(d) % ndim for d in (dim if isinstance(dim, tuple) else (dim,))))


def var_forward(x, dim, correction=1, keepdim=False):
    axes = _axes(dim, x.ndim)
    n = int(np.prod([x.shape[a] for a in axes]))
    mu = x.mean(axis=axes, keepdims=True)
    v = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / (n - correction)
    return (v if keepdim else np.squeeze(v, axis=axes)), (x, mu, v, axes, n, correction, keepdim)


def var_backward(dout, cache):
    x, mu, _, axes, n, correction, keepdim = cache
    if not keepdim:
        dout = np.expand_dims(dout, axes)
    # the mean's own term is sum(x - mu) * ... = 0: only the direct one is left
    return (dout * 2 * (x - mu) / (n - correction),)


def std_forward(x, dim, correction=1, keepdim=False):
    v, cache = var_forward(x, dim, correction, True)
    s = np.sqrt(v)  # (keepdims)
    return (s if keepdim else np.squeeze(s, axis=cache[3])), (cache, s, keepdim)


def std_backward(dout, cache):
    (x, mu, _, axes, n, correction, _), s, keepdim = cache
    if not keepdim:
        dout = np.expand_dims(dout, axes)
    # d std = d var / (2 std); where std is 0 (a constant slice) torch masks the gradient to 0
    safe = np.where(s == 0, 1.0, s)
    return (np.where(s == 0, 0.0, dout * (x - mu) / ((n - correction) * safe)),)


def vector_norm_forward(x, dim, keepdim=False):
    axes = _axes(dim, x.ndim)
    r = np.sqrt((x * x).sum(axis=axes, keepdims=True))
    return (r if keepdim else np.squeeze(r, axis=axes)), (x, r, axes, keepdim)


def vector_norm_backward(dout, cache):
    x, r, axes, keepdim = cache
    if not keepdim:
        dout = np.expand_dims(dout, axes)
    # x / |x|, and 0 at a slice of zeros (torch's convention)
    return (np.where(r == 0, 0.0, dout * x / np.where(r == 0, 1.0, r)),)


def cat_forward(*xs, dim=0):
    axis = _axis(dim, xs[0].ndim)
    return np.concatenate(xs, axis=axis), (axis, [x.shape[axis] for x in xs])


def cat_backward(dout, cache):
    axis, sizes = cache
    return tuple(np.split(dout, np.cumsum(sizes)[:-1], axis=axis))  # each input's own stretch


def stack_forward(*xs, dim=0):
    axis = int(dim) % (xs[0].ndim + 1)
    return np.stack(xs, axis=axis), (axis, len(xs))


def stack_backward(dout, cache):
    axis, n = cache
    return tuple(np.take(dout, k, axis=axis) for k in range(n))


def slice_forward(x, dim, start=None, stop=None, step=1):
    index = [slice(None)] * x.ndim
    index[_axis(dim, x.ndim)] = slice(start, stop, step)
    return x[tuple(index)], (x.shape, tuple(index))


def slice_backward(dout, cache):
    shape, index = cache
    dx = np.zeros(shape)
    dx[index] = dout
    return (dx,)


_NUMPY_PAD = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad_widths(ndim, pad):
    """torch's flat pad (last dim first, before and after) as numpy's per-axis widths."""
    widths = [(0, 0)] * ndim
    for k in range(len(pad) // 2):
        widths[ndim - 1 - k] = (int(pad[2 * k]), int(pad[2 * k + 1]))
    return widths


def pad_forward(x, pad, mode="constant", value=None):
    widths = _pad_widths(x.ndim, pad)
    # where each output element comes from: pad an array of flat indices the same way (-1: the constant)
    index = np.arange(x.size).reshape(x.shape)
    if mode == "constant":
        out = np.pad(x, widths, mode="constant", constant_values=0.0 if value is None else value)
        src = np.pad(index, widths, mode="constant", constant_values=-1)
    else:
        out = np.pad(x, widths, mode=_NUMPY_PAD[mode])
        src = np.pad(index, widths, mode=_NUMPY_PAD[mode])
    return out, (x.shape, src)


def pad_backward(dout, cache):
    shape, src = cache
    dx = np.zeros(int(np.prod(shape)))
    copied = src.ravel() >= 0
    np.add.at(dx, src.ravel()[copied], dout.ravel()[copied])  # an edge element copied k times: k gradients
    return (dx.reshape(shape),)


def dropout_forward(x, mask, p):
    mask = np.asarray(mask, dtype=bool)
    return x * mask / (1 - p), (mask, p)


def dropout_backward(dout, cache):
    mask, p = cache
    return (dout * mask / (1 - p),)


LAYERS = {
    "conv2d": (conv2d_forward, conv2d_backward),
    "conv1d": (conv1d_forward, conv1d_backward),
    "max_pool2d": (max_pool2d_forward, max_pool2d_backward),
    "avg_pool2d": (avg_pool2d_forward, avg_pool2d_backward),
    "batch_norm": (batch_norm_forward, batch_norm_backward),
    "layer_norm": (layer_norm_forward, layer_norm_backward),
    "group_norm": (group_norm_forward, group_norm_backward),
    "cumsum": (cumsum_forward, cumsum_backward),
    "cumprod": (cumprod_forward, cumprod_backward),
    "prod": (prod_forward, prod_backward),
    "index_select": (index_select_forward, index_select_backward),
    "gather": (gather_forward, gather_backward),
    "embedding": (embedding_forward, embedding_backward),
    "scatter_add": (scatter_add_forward, scatter_add_backward),
    "where": (where_forward, where_backward),
    "masked_fill": (masked_fill_forward, masked_fill_backward),
    "scaled_dot_product_attention": (scaled_dot_product_attention_forward, scaled_dot_product_attention_backward),
    "lstm": (lstm_forward, lstm_backward),
    "gru": (gru_forward, gru_backward),
    "conv_transpose2d": (conv_transpose2d_forward, conv_transpose2d_backward),
    "var": (var_forward, var_backward),
    "std": (std_forward, std_backward),
    "vector_norm": (vector_norm_forward, vector_norm_backward),
    "cat": (cat_forward, cat_backward),
    "stack": (stack_forward, stack_backward),
    "slice": (slice_forward, slice_backward),
    "pad": (pad_forward, pad_backward),
    "dropout": (dropout_forward, dropout_backward),
}
