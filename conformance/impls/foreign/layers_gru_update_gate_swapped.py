"""Numpy layer functions; bug: GRU backward differentiates h' = z * n + (1 - z) * h, the other convention.

The forward is torch's h' = (1 - z) * n + z * h; the backward follows Chung et al.'s update (pytorch#20129, "GRUCell
has a wrong formula"): dn, dz and the direct dh path trade z for 1 - z. Values are right, so only a gradient check
sees it; the two agree only where z = 1/2 and h = n.
"""

import numpy as np

BASE = "layers_assignment.py"


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh):
    T, H = x.shape[0], h0.shape[-1]
    h = h0
    out = np.zeros((T, *h0.shape))
    steps = []
    for t in range(T):
        gi = x[t] @ w_ih.T + b_ih  # (B, 3H), gates r, z, n
        gh = h @ w_hh.T + b_hh
        r = _sigmoid(gi[:, :H] + gh[:, :H])
        z = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        hn = gh[:, 2 * H:]
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
    dh_next = np.zeros(dout.shape[1:])
    for t in reversed(range(T)):
        x_t, h_prev, r, z, n, hn = steps[t]
        dh = dout[t] + dh_next
        dn = dh * z  # BUG: from h' = z * n + (1 - z) * h; the forward's is dh * (1 - z)
        dz = dh * (n - h_prev)  # BUG: should be dh * (h_prev - n)
        dan = dn * (1 - n ** 2)
        dar = dan * hn * r * (1 - r)
        daz = dz * z * (1 - z)
        dgi = np.concatenate([dar, daz, dan], axis=1)
        dgh = np.concatenate([dar, daz, dan * r], axis=1)
        dx[t] = dgi @ w_ih
        dw_ih += dgi.T @ x_t
        dw_hh += dgh.T @ h_prev
        db_ih += dgi.sum(axis=0)
        db_hh += dgh.sum(axis=0)
        dh_next = dh * (1 - z) + dgh @ w_hh  # BUG: the direct path should be dh * z
    return dx, dh_next, dw_ih, dw_hh, db_ih, db_hh


LAYERS = {"gru": (gru_forward, gru_backward)}
