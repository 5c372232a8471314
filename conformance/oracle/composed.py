"""torch computations that torch has no single function for, written with torch's own pieces — the
oracle of a layer op declared with ``torch="conformance.oracle.composed.NAME"``.

Each is the plain loop a torch user writes around torch's cell functions (``torch.lstm_cell``,
``torch.gru_cell``: torch's forward and its own backward formulas for each step), so what is
compared is torch's arithmetic, not ours. The repro script of a case copies the function's source
in (:mod:`conformance.oracle.repro`): it stays standalone.
"""

from __future__ import annotations

from typing import Any


def lstm(x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> Any:
    """Every step's hidden state of a one-layer LSTM over x (T, B, I): (T, B, H)."""
    import torch

    h, c, out = h0, c0, []
    for t in range(x.shape[0]):
        h, c = torch.lstm_cell(x[t], (h, c), w_ih, w_hh, b_ih, b_hh)
        out.append(h)
    return torch.stack(out)


def gru(x: Any, h0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> Any:
    """Every step's hidden state of a one-layer GRU over x (T, B, I): (T, B, H)."""
    import torch

    h, out = h0, []
    for t in range(x.shape[0]):
        h = torch.gru_cell(x[t], h, w_ih, w_hh, b_ih, b_hh)
        out.append(h)
    return torch.stack(out)
