"""LSTM and GRU over T steps on refimpl tensors, as ``torch.nn.LSTM`` / ``torch.nn.GRU`` compute them
(one layer, unidirectional, sequence first).

x (T, B, I), the initial state h0 (B, H) (and c0 for the LSTM), w_ih (G·H, I), w_hh (G·H, H), b_ih and
b_hh (G·H,) with torch's gate order — LSTM (G = 4): input, forget, cell, output; GRU (G = 3): reset,
update, new. The output is every step's hidden state, (T, B, H). Each step is written with refimpl's
matmul and elementwise ops on the previous step's state, so the gradient of an early input or of
h0 flows back through every later step — the carry a hand-written backward through time drops
("gradient not carried across time steps") — and no cell has a backward of its own::

    LSTM  i, f, g, o = σ(·), σ(·), tanh(·), σ(·) of  x·w_ihᵀ + b_ih + h·w_hhᵀ + b_hh
          c' = f·c + i·g          h' = o·tanh(c')
    GRU   r, z = σ(·), σ(·) of  x·w_ihᵀ + b_ih + h·w_hhᵀ + b_hh   (their rows of each)
          n = tanh(x·w_inᵀ + b_in + r·(h·w_hnᵀ + b_hn))      h' = (1 − z)·n + z·h
"""

from __future__ import annotations

from .tensor import Tensor, matmul


def _gates(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> tuple[Tensor, Tensor]:
    """The input's and the state's contributions to every gate, (B, G·H) each."""
    return matmul(x, w_ih.T) + b_ih, matmul(h, w_hh.T) + b_hh


def _steps(x: Tensor) -> list[Tensor]:
    return [x[t] for t in range(x.shape[0])]


def stack(states: list[Tensor]) -> Tensor:
    """``torch.stack(states)``: the tensors of one shape along a new first dim."""
    return Tensor([e for s in states for e in s.elements], (len(states), *states[0].shape), states[0].system)


def lstm_step(xt: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor,
              b_hh: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step: (h', c') from x_t (B, I) and (h, c) (B, H) (module doc)."""
    H = h.shape[-1]
    a, b = _gates(xt, h, w_ih, w_hh, b_ih, b_hh)
    pre = a + b
    i, f = pre[:, 0:H].sigmoid(), pre[:, H:2 * H].sigmoid()
    g, o = pre[:, 2 * H:3 * H].tanh(), pre[:, 3 * H:4 * H].sigmoid()
    c = f * c + i * g
    return o * c.tanh(), c


def gru_step(xt: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    """One GRU step: h' from x_t (B, I) and h (B, H) (module doc)."""
    H = h.shape[-1]
    a, b = _gates(xt, h, w_ih, w_hh, b_ih, b_hh)
    r = (a[:, 0:H] + b[:, 0:H]).sigmoid()
    z = (a[:, H:2 * H] + b[:, H:2 * H]).sigmoid()
    n = (a[:, 2 * H:3 * H] + r * b[:, 2 * H:3 * H]).tanh()
    return (1.0 - z) * n + z * h


def lstm(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    """Every step's hidden state of a one-layer LSTM, (T, B, H) (module doc)."""
    h, c, out = h0, c0, []
    for xt in _steps(x):
        h, c = lstm_step(xt, h, c, w_ih, w_hh, b_ih, b_hh)
        out.append(h)
    return stack(out)


def gru(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    """Every step's hidden state of a one-layer GRU, (T, B, H) (module doc)."""
    h, out = h0, []
    for xt in _steps(x):
        h = gru_step(xt, h, w_ih, w_hh, b_ih, b_hh)
        out.append(h)
    return stack(out)
