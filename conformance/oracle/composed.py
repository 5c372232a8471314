"""torch computations that torch has no single function for, written with torch's own pieces — the
oracle of a layer op declared with ``torch="conformance.oracle.composed.NAME"``.

Each is the plain code a torch user writes: the loop around torch's cell functions
(``torch.lstm_cell``, ``torch.gru_cell``: torch's forward and its own backward formulas for each
step), a list of the case's inputs for ``torch.cat`` and ``torch.stack``, Python's slice syntax, the
dropout expression with a given mask — so what is compared is torch's arithmetic, not ours. The repro
script of a case copies the function's source in (:mod:`conformance.oracle.repro`): it stays
standalone, so each imports torch itself.
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


def lstm_last_step(x: Any, weight_ih_l0: Any, weight_hh_l0: Any, bias_ih_l0: Any, bias_hh_l0: Any) -> Any:
    """``torch.nn.LSTM(I, H, batch_first=True)`` with these parameters over x (B, T, I), from a zero
    state: the last step's output (B, H) — torch's own LSTM (its fused kernel and its backward), the
    module built on the meta device (no init drawn) and called with the case's tensors."""
    import torch

    params = {"weight_ih_l0": weight_ih_l0, "weight_hh_l0": weight_hh_l0, "bias_ih_l0": bias_ih_l0,
              "bias_hh_l0": bias_hh_l0}
    lstm = torch.nn.LSTM(x.shape[-1], weight_hh_l0.shape[1], batch_first=True, dtype=x.dtype, device="meta")
    out, _ = torch.func.functional_call(lstm, params, (x,))
    return out[:, -1]


def gru_last_step(x: Any, weight_ih_l0: Any, weight_hh_l0: Any, bias_ih_l0: Any, bias_hh_l0: Any) -> Any:
    """``torch.nn.GRU(I, H, batch_first=True)`` with these parameters over x (B, T, I), from a zero
    state: the last step's output (B, H) (see :func:`lstm_last_step`)."""
    import torch

    params = {"weight_ih_l0": weight_ih_l0, "weight_hh_l0": weight_hh_l0, "bias_ih_l0": bias_ih_l0,
              "bias_hh_l0": bias_hh_l0}
    gru = torch.nn.GRU(x.shape[-1], weight_hh_l0.shape[1], batch_first=True, dtype=x.dtype, device="meta")
    out, _ = torch.func.functional_call(gru, params, (x,))
    return out[:, -1]


def transformer_block(x: Any, *params: Any, nhead: int, activation: str, layer_norm_eps: float) -> Any:
    """The pre-norm transformer encoder block over x (B, T, D) in torch's functional pieces, its
    parameters in ``torch.nn.TransformerEncoderLayer``'s order (``self_attn.in_proj_weight``, …,
    ``norm2.bias``): x + out_proj(attention(norm1(x))), then + linear2(activation(linear1(norm2(x))))
    — the module with ``dropout=0.0, batch_first=True, norm_first=True`` computes the same."""
    import torch.nn.functional as F

    w_in, b_in, w_out, b_out, w1, b1, w2, b2, g1, c1, g2, c2 = params
    b, t, d = x.shape
    q, k, v = (p.reshape(b, t, nhead, d // nhead).transpose(1, 2)
               for p in F.linear(F.layer_norm(x, (d,), g1, c1, layer_norm_eps), w_in, b_in).chunk(3, dim=-1))
    att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
    x = x + F.linear(att, w_out, b_out)
    inner = getattr(F, activation)(F.linear(F.layer_norm(x, (d,), g2, c2, layer_norm_eps), w1, b1))
    return x + F.linear(inner, w2, b2)


def cat(*tensors: Any, dim: int) -> Any:
    """``torch.cat`` of the case's inputs: torch takes them as one sequence, a case as leaves."""
    import torch

    return torch.cat(tensors, dim=dim)


def stack(*tensors: Any, dim: int) -> Any:
    """``torch.stack`` of the case's inputs (a sequence for torch, leaves for a case)."""
    import torch

    return torch.stack(tensors, dim=dim)


def slice_along(x: Any, dim: int, start: Any = None, stop: Any = None, step: int = 1) -> Any:
    """``x[..., start:stop:step, ...]`` at ``dim``: torch's indexing (its backward, ``SliceBackward``)
    — torch has no function taking a slice as arguments."""
    return x[(slice(None),) * (dim % x.dim()) + (slice(start, stop, step),)]


def dropout(x: Any, mask: Any, p: float) -> Any:
    """Dropout with a given mask: ``x * mask / (1 - p)`` in torch ops. torch has no dropout that
    takes a mask (``F.dropout`` draws its own), so this is the expression written with torch's
    operators. torch's own kernel scales the mask first (``aten/src/ATen/native/Dropout.cpp``:
    ``input * (bernoulli(1 - p) / (1 - p))``): the same numbers up to one rounding."""
    return x * mask / (1 - p)
