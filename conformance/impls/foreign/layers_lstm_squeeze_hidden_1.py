"""Numpy layer functions; bug: LSTM backward squeezes the carried gradient, ``dh_prev = (dpre @ w_hh).squeeze()``.

A bare squeeze drops every size-1 axis (salesforce/pytorch-qrnn#11; pytorch#3268, squeeze then broadcast). Right
while H > 1 and at T == 1 (dh0 is reshaped back); with H == 1 and B > 1 the (B,) vector meets dout[t]'s (B, 1) as a
(B, B) sum and the step before fails to fit: an error at T > 1. The forward is right.
"""

import numpy as np

BASE = "layers_assignment.py"


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    T, H = x.shape[0], h0.shape[-1]
    h, c = h0, c0
    out = np.zeros((T, *h0.shape))
    steps = []
    for t in range(T):
        pre = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, 4H), gates i, f, g, o
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
    dh_prev = np.zeros(dout.shape[1:])
    dc_prev = np.zeros(dout.shape[1:])
    for t in reversed(range(T)):
        x_t, h_prev, c_prev, i, f, g, o, tanh_c = steps[t]
        dh = dout[t] + dh_prev
        dc = dc_prev + dh * o * (1 - tanh_c ** 2)
        do = dh * tanh_c
        di, df, dg = dc * g, dc * c_prev, dc * i
        dpre = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)], axis=1)
        dx[t] = dpre @ w_ih
        dw_ih += dpre.T @ x_t
        dw_hh += dpre.T @ h_prev
        db += dpre.sum(axis=0)
        dh_prev = (dpre @ w_hh).squeeze()  # BUG: (B, H) -> (B,) when H == 1, which then broadcasts to (B, B)
        dc_prev = dc * f
    return dx, dh_prev.reshape(dc_prev.shape), dc_prev, dw_ih, dw_hh, db, db.copy()  # h0's shape back


LAYERS = {"lstm": (lstm_forward, lstm_backward)}
