"""Numpy layer functions; bug: GRU backward does not carry dh from step t + 1 back into step t.

Each step's backward starts from dout[t] alone, as if h_t fed only the output: the missing ``dh_next`` of
from-scratch numpy RNNs (CaptainE/RNN-LSTM-in-numpy#1, there for an LSTM). Right at T = 1, where there is no
later step, and for the last step's dx at any T; the forward is right.
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
    dh_prev = np.zeros(dout.shape[1:])
    for t in reversed(range(T)):
        x_t, h_prev, r, z, n, hn = steps[t]
        dh = dout[t]  # BUG: dh_prev of step t + 1 is never added in
        dn = dh * (1 - z)
        dz = dh * (h_prev - n)
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
        dh_prev = dh * z + dgh @ w_hh
    return dx, dh_prev, dw_ih, dw_hh, db_ih, db_hh


LAYERS = {"gru": (gru_forward, gru_backward)}
