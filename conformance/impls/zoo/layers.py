"""Layers: convolution, pooling, normalization, statistics, shaping, dropout, indexing and cumulative
backward passes as people get them wrong (issue reports from public trackers and course-assignment
solutions; docs/mutants.md).

Each bug changes the gradient and leaves the forward value exactly right, as the originals did: a
hand-written backward beside a correct forward. refimpl has no backward of its own for a layer
(its gradients are the chain rule through the scalars), so each mutant writes its output so that
its value is refimpl's and its slope is the bug's: ``right + (x − x̄)·c`` adds exactly 0 to the
value (x − x̄ is 0 for x̄ a constant copy of x) and ``c`` to the derivative with respect to ``x``.
A normalization's mutants write the whole Jacobian that way (:func:`_normalization`), with the
bug's terms.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from conformance.case.tensor_ops import TENSOR_OPS
from conformance.impls.zoo.base import Mutant, entries
from refimpl import attention, conv, indexing, norm, recurrent, shaping, statistics
from refimpl.engine import Value
from refimpl.indexing import flat_mask
from refimpl.tensor import Tensor as RTensor
from refimpl.tensor import constant, index_array, norm_dim, norm_dims, reduction_groups


def _frozen(v: Value) -> Value:
    """A constant copy of ``v``: the same value, no gradient."""
    return Value(v.data, False, system=v.ns)


def _max_pool_overwrite(x: RTensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                        ceil_mode: bool = False) -> RTensor:
    """Max pooling whose backward writes ``dx[argmax] = dout``: where windows overlap and share their
    maximum, only the last window's gradient reaches it."""
    right = conv.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)
    chosen = [o if not o.parents else o.parents[0] for o in right.elements]  # the input each output took
    last = {id(v): j for j, v in enumerate(chosen)}
    out = [o if last[id(v)] == j else _frozen(o)  # BUG: an earlier window's gradient is overwritten
           for j, (o, v) in enumerate(zip(right.elements, chosen))]
    return RTensor(out, right.shape, right.system)


def _max_pool_every_tie(x: RTensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                        ceil_mode: bool = False) -> RTensor:
    """Max pooling whose backward masks ``x == max``: every tied element gets the whole gradient."""
    right = conv.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)
    ties = conv.max_pool_ties(x, kernel_size, stride, padding, dilation, ceil_mode)
    out = []
    for o, tied in zip(right.elements, ties):
        for v in tied[1:]:  # BUG: mask = (x == max) sends dout to each of k tied elements: k times it
            o = o + (v - _frozen(v))
        out.append(o)
    return RTensor(out, right.shape, right.system)


def _max_pool_split_ties(x: RTensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                         ceil_mode: bool = False) -> RTensor:
    """Max pooling that splits a tie's gradient evenly (as torch's amax does) instead of sending it to
    the first maximum: another valid subgradient — a convention, not a bug."""
    right = conv.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)
    ties = conv.max_pool_ties(x, kernel_size, stride, padding, dilation, ceil_mode)
    ns = x.system
    out = []
    for o, tied in zip(right.elements, ties):
        if len(tied) > 1:  # 1/k each: (Σ tied) / k, exactly the tied value
            share = ns.div(ns.one, ns.convert(len(tied)))
            o = _frozen(o) + sum(((v - _frozen(v)) * share for v in tied), constant(ns.zero, ns))
        out.append(o)
    return RTensor(out, right.shape, right.system)


def _avg_pool_kernel_divisor(x: RTensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
                             ceil_mode: bool = False, count_include_pad: bool = True) -> RTensor:
    """Average pooling whose backward divides by kH·kW everywhere, while the forward used torch's
    divisor (the window clipped at the padded edge, or only its real elements)."""
    right = conv.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad)
    N, C, H, W = x.shape
    k = conv.pair(kernel_size)
    _, wins = conv.avg_pool_windows((H, W), k, stride, padding, ceil_mode, count_include_pad)
    ns = x.system
    out = []
    for plane, (inside, divisor) in ((p, w) for p in range(N * C) for w in wins):
        vals = x.elements[plane * H * W:(plane + 1) * H * W]
        # BUG: 1/(kH·kW) in backward where the forward divided by torch's divisor
        extra = ns.convert(1.0 / (k[0] * k[1]) - 1.0 / divisor)
        o = right.elements[len(out)]
        out.append(o + sum(((vals[t] - _frozen(vals[t])) * extra for t in inside), constant(ns.zero, ns)))
    return RTensor(out, right.shape, right.system)


def _conv2d_first_group_weight_grad(x: RTensor, weight: RTensor, bias: RTensor | None = None, stride: Any = 1,
                                    padding: Any = 0, dilation: Any = 1, groups: int = 1) -> RTensor:
    """A grouped convolution whose weight gradient is computed for the first group only (the others
    left at zero): the bug of a backward that loops over groups with the wrong bound."""
    per_group = weight.shape[0] // groups
    frozen = [v if i // (weight.numel() // weight.shape[0]) < per_group else _frozen(v)  # BUG: groups ≥ 1
              for i, v in enumerate(weight.elements)]
    return conv.conv2d(x, RTensor(frozen, weight.shape, weight.system), bias, stride, padding, dilation, groups)


def _normalization(groups_of: Any, stats: bool = True, count: Any = None, swap: bool = False) -> Any:
    """A normalization whose forward is refimpl's and whose backward is written out, as people write
    it: per group, with x̂ and r = 1/√(var + eps) constants and g = dy·weight,
    ``dx = r·(g − Σg/D − x̂·Σ(g·x̂)/D)``, ``dweight = Σ dy·x̂``, ``dbias = Σ dy`` — and the bug: the
    statistics' two terms left out (``stats=False``), D taken from ``count(shape)`` instead of the
    group's size, or dweight and dbias swapped. Each output is built as
    ``x̂·w̄ + b̄ + w̄·r·(δ − 1/D·Σδ − x̂/D·Σx̂·δ) + (w − w̄)·x̂ + (b − b̄)`` with δ = x − x̄ = 0: refimpl's
    value, and exactly that Jacobian."""

    def fn(x: RTensor, weight: RTensor, bias: RTensor, eps: float = 1e-5, **attrs: Any) -> RTensor:
        ns = x.system
        members, channel = groups_of(x.shape, **attrs)
        frozen = RTensor([_frozen(v) for v in x.elements], x.shape, ns)
        xhat = norm.normalize(frozen, (members, channel), None, None, eps).elements
        right = norm.normalize(frozen, (members, channel), weight.map(_frozen), bias.map(_frozen), eps).elements
        zero = constant(ns.zero, ns)
        out: list[Any] = [None] * x.numel()
        for group in members:
            vals = [x.elements[i].data for i in group]
            mean = ns.div(sum(vals, ns.zero), ns.convert(len(vals)))
            var = ns.div(sum(((v - mean) * (v - mean) for v in vals), ns.zero), ns.convert(len(vals)))
            r = ns.div(ns.one, ns.sqrt(var + ns.convert(eps)))
            d = ns.convert(count(x.shape) if count else len(group))
            delta = {i: x.elements[i] - frozen.elements[i] for i in group}  # value 0, slope 1
            s1 = sum((delta[i] for i in group), zero)
            s2 = sum((delta[i] * xhat[i] for i in group), zero)
            for i in group:
                slope = delta[i] - (s1 + s2 * xhat[i]) * ns.div(ns.one, d) if stats else delta[i]
                w, b = weight.elements[channel(i)], bias.elements[channel(i)]
                dw, db = w - _frozen(w), b - _frozen(b)
                affine = dw + db * xhat[i] if swap else dw * xhat[i] + db  # swap: BUG (oneflow#6149)
                out[i] = right[i] + slope * r * _frozen(w) + affine
        return RTensor(out, x.shape, ns)

    return fn


def _embedding_last_duplicate(weight: RTensor, input: Any) -> RTensor:
    """Embedding whose backward is numpy's ``dW[idx] += d``: a repeated index's row gets the gradient
    of its last occurrence only (pytorch#1528)."""
    right = indexing.embedding(weight, input)
    _, flat = index_array(input)
    last = {row: k for k, row in enumerate(flat)}
    D = weight.shape[1]
    out = [e if last[flat[j // D]] == j // D else _frozen(e) for j, e in enumerate(right.elements)]  # BUG
    return RTensor(out, right.shape, right.system)


def _masked_fill_through_mask(x: RTensor, mask: Any, value: float) -> RTensor:
    """masked_fill whose backward forgets the mask: a filled position passes its gradient to x."""
    right = indexing.masked_fill(x, mask, value)
    out = [e if e is v else e + (v - _frozen(v))  # BUG: the fill's gradient is 0, not dout
           for e, v in zip(right.elements, x.elements)]
    return RTensor(out, right.shape, right.system)


def _masked_fill_arithmetic(x: RTensor, mask: Any, value: float) -> RTensor:
    """masked_fill by arithmetic, ``x·keep + value·mask``: right for a finite fill (−10⁹), NaN at
    every kept position for −∞ (−∞·0) — the reason people write −10⁹."""
    fill = flat_mask(mask, x.shape, "mask")
    ns = x.system
    v = constant(ns.convert(value), ns)
    out = [e * constant(ns.zero if m else ns.one, ns) + v * constant(ns.one if m else ns.zero, ns)  # BUG
           for e, m in zip(x.elements, fill)]
    return RTensor(out, x.shape, ns)


def _cumsum_forward_order(x: RTensor, dim: int) -> RTensor:
    """cumsum whose backward is a forward running sum of dout: dx_j = Σ_{k ≤ j} g_k where it is
    Σ_{k ≥ j} g_k — right at the last element of a lane only when the lane has one."""
    right = indexing.cumsum(x, dim)
    out = [_frozen(e) for e in right.elements]
    _, lanes = reduction_groups(x.shape, (norm_dim(dim, x.ndim),))
    for lane in lanes:
        for k, i in enumerate(lane):  # BUG: output k depends on the inputs from k on
            out[i] = out[i] + sum((x.elements[j] - _frozen(x.elements[j]) for j in lane[k:]),
                                  constant(x.system.zero, x.system))
    return RTensor(out, right.shape, right.system)


def _prod_zero_gradient(x: RTensor, dim: int, keepdim: bool = False) -> RTensor:
    """prod whose backward is ``where(x == 0, 0, out / x)``: a zero's own gradient, the product of
    the others, is lost (the patch for the NaN of ``out / x``)."""
    held = RTensor([_frozen(v) if v.data == 0 else v for v in x.elements], x.shape, x.system)  # BUG
    return indexing.prod(held, dim, keepdim)


def _attention_dv_untransposed(q: RTensor, k: RTensor, v: RTensor, is_causal: bool = False,
                                scale: float | None = None) -> RTensor:
    """Attention whose backward computes dV = P·dO where it is Pᵀ·dO: a shape error when the query
    and key lengths differ, silently wrong when they are equal (flash-attention#2552)."""
    L, S = q.shape[-2], k.shape[-2]
    if L != S:
        raise ValueError(f"operands could not be broadcast together with shapes ({L},{L}) ({S},{v.shape[-1]})")
    right = attention.scaled_dot_product_attention(q, k, v.map(_frozen), is_causal, scale)  # dq, dk right
    eye = RTensor.from_flat([1.0 if i == j else 0.0 for i in range(S) for j in range(S)], (S, S),
                            system=v.system, requires_grad=False)
    p = attention.scaled_dot_product_attention(q.map(_frozen), k.map(_frozen), eye.expand(*v.shape[:-1], S),
                                               is_causal, scale).elements  # P itself: P·I
    delta = [x - _frozen(x) for x in v.elements]  # value 0, slope 1
    Ev = v.shape[-1]
    out = []
    for flat, o in enumerate(right.elements):
        b, rest = divmod(flat, L * Ev)
        i, j = divmod(rest, Ev)
        # BUG: ∂out[i, j]/∂v[k, j] = P[k, i] (P untransposed)
        out.append(o + sum((p[b * L * S + kk * S + i] * delta[b * S * Ev + kk * Ev + j] for kk in range(S)),
                           constant(v.system.zero, v.system)))
    return RTensor(out, right.shape, right.system)


def _attention_backward_unscaled(q: RTensor, k: RTensor, v: RTensor, is_causal: bool = False,
                                 scale: float | None = None) -> RTensor:
    """Attention whose backward leaves the scale out of dQ and dK (the forward has it): right at
    scale 1 only."""
    ns = q.system
    c = ns.div(ns.one, ns.convert(scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])))
    unscaled = [RTensor([_frozen(x) + (x - _frozen(x)) * c for x in t.elements], t.shape, ns) for t in (q, k)]
    return attention.scaled_dot_product_attention(*unscaled, v, is_causal, scale)  # BUG: dq, dk × 1/scale


def _lstm_no_carry(x: RTensor, h0: RTensor, c0: RTensor, *weights: RTensor) -> RTensor:
    """An LSTM whose backward through time stops at each step: every step sees the previous state
    as a constant (truncated BPTT of length 1 where the full gradient is claimed). Right at T = 1."""
    h, c, out = h0, c0, []
    for t in range(x.shape[0]):
        h, c = recurrent.lstm_step(x[t], h.map(_frozen) if t else h, c.map(_frozen) if t else c, *weights)  # BUG
        out.append(h)
    return recurrent.stack(out)


def _gru_no_carry(x: RTensor, h0: RTensor, *weights: RTensor) -> RTensor:
    """A GRU whose backward through time stops at each step (see :func:`_lstm_no_carry`)."""
    h, out = h0, []
    for t in range(x.shape[0]):
        h = recurrent.gru_step(x[t], h.map(_frozen) if t else h, *weights)  # BUG: the carry dropped
        out.append(h)
    return recurrent.stack(out)


def _conv_transpose_stride_dilation_swapped(x: RTensor, weight: RTensor, bias: RTensor | None = None,
                                            stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                                            groups: int = 1, dilation: Any = 1) -> RTensor:
    """A transposed convolution whose input gradient is ``conv2d(dout, w, stride=dilation,
    dilation=stride)`` — the two swapped (candle#2337): a shape error where that conv2d's output is
    not x's size (stride 2, dilation 1 is enough), silently wrong where it is; right where stride ==
    dilation. The weight and bias gradients are right."""
    s, p, d = conv.pair(stride), conv.pair(padding), conv.pair(dilation)
    right = conv.conv_transpose2d(x.map(_frozen), weight, bias, stride, padding, output_padding, groups, dilation)
    out_hw = right.shape[2:]
    kernel = weight.shape[2:]
    got = tuple(conv.out_size(out_hw[a], kernel[a], d[a], p[a], s[a]) for a in (0, 1))
    if got != x.shape[2:]:
        raise ValueError(f"shape mismatch in backward: the input gradient is {got}, the input {x.shape[2:]}")
    frozen_w = weight.map(_frozen)
    bug = conv.scatter_conv(x, frozen_w, None, d, p, s, groups, out_hw)  # BUG: stride and dilation swapped
    held = conv.scatter_conv(x.map(_frozen), frozen_w, None, d, p, s, groups, out_hw)  # its value: a − a = 0
    return RTensor([r + (a - b) for r, a, b in zip(right.elements, bug.elements, held.elements)],
                   right.shape, right.system)


def _conv_transpose_output_padding_dropped(x: RTensor, weight: RTensor, bias: RTensor | None = None,
                                           stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                                           groups: int = 1, dilation: Any = 1) -> RTensor:
    """A transposed convolution whose input gradient is ``conv2d`` of dout without its last
    ``output_padding`` rows and columns (the size the output would have without them): what x sent
    there, with ``padding`` ≥ 1, gets no gradient. Right without output_padding or padding."""
    right = conv.conv_transpose2d(x.map(_frozen), weight, bias, stride, padding, output_padding, groups, dilation)
    N, O, oh, ow = right.shape
    op = conv.pair(output_padding)
    cut = (oh - op[0], ow - op[1])
    args = (conv.pair(stride), conv.pair(padding), conv.pair(dilation), groups, cut)
    frozen_w = weight.map(_frozen)
    kept = conv.scatter_conv(x, frozen_w, None, *args).elements  # BUG: the extra rows' gradient dropped
    held = conv.scatter_conv(x.map(_frozen), frozen_w, None, *args).elements
    out = list(right.elements)
    for plane in range(N * O):
        for h in range(cut[0]):
            for w in range(cut[1]):
                k, j = (plane * cut[0] + h) * cut[1] + w, (plane * oh + h) * ow + w
                out[j] = out[j] + (kept[k] - held[k])
    return RTensor(out, right.shape, right.system)


def _spread_slopes(slope: Any, root: bool) -> Any:
    """var (``root=False``) or std whose forward is refimpl's and whose backward gives each element of
    a slice the slope ``slope(x, mean, n, correction)`` for the variance (std: over 2·std, its root's
    slope) — the bug's. A slice of std 0 keeps refimpl's (masked) slope."""

    def fn(x: RTensor, dim: Any = None, correction: int = 1, keepdim: bool = False) -> RTensor:
        ns = x.system
        right = (statistics.std if root else statistics.var)(x.map(_frozen), dim, correction, keepdim)
        _, groups = reduction_groups(x.shape, norm_dims(dim, x.ndim))
        out = []
        for o, g in zip(right.elements, groups):
            vals = [x.elements[i] for i in g]
            mean = ns.div(sum((v.data for v in vals), ns.zero), ns.convert(len(vals)))
            if root and o.data == 0:
                out.append(o)
                continue
            scale = ns.div(ns.one, ns.mul(ns.convert(2.0), o.data)) if root else ns.one
            out.append(o + sum(((v - _frozen(v)) * ns.mul(slope(v.data, mean, len(vals), correction), scale)
                                for v in vals), constant(ns.zero, ns)))
        return RTensor(out, right.shape, right.system)

    return fn


def _pad_overwrite(x: RTensor, pad: Any, mode: str = "constant", value: float | None = None) -> RTensor:
    """Padding whose backward writes ``dx[src] = dout[dst]`` place by place: an element copied to
    several places (replicate, reflect and circular edges) keeps the gradient of the last one only."""
    right = shaping.pad(x, pad, mode, value)
    last = {id(e): j for j, e in enumerate(right.elements)}
    out = [e if last[id(e)] == j else _frozen(e) for j, e in enumerate(right.elements)]  # BUG: = for +=
    return RTensor(out, right.shape, right.system)


def _cat_first_size_offsets(*xs: RTensor, dim: int = 0) -> RTensor:
    """cat whose backward splits dout at multiples of the first input's size along dim (input i from
    i·size₀, its own size long): right for inputs of one size and for the first two, wrong from the
    third on — and numpy's broadcast error where a slice runs past the end."""
    right = shaping.cat(*(x.map(_frozen) for x in xs), dim=dim)
    d = norm_dim(dim, xs[0].ndim)
    sizes = [x.shape[d] for x in xs]
    total, inner = sum(sizes), math.prod(xs[0].shape[d + 1:])
    out = list(right.elements)
    for i, (x, n) in enumerate(zip(xs, sizes)):
        start = i * sizes[0]  # BUG: the offsets of equal sizes
        if start + n > total:
            raise ValueError(f"could not broadcast input array from shape ({total - start},) into shape ({n},)")
        for o in range(math.prod(xs[0].shape[:d])):
            for j in range(n * inner):
                v = x.elements[o * n * inner + j]
                dst = o * total * inner + start * inner + j
                out[dst] = out[dst] + (v - _frozen(v))
    return RTensor(out, right.shape, right.system)


def _dropout_slopes(kept: Any, dropped: Any) -> Any:
    """Dropout whose forward is refimpl's and whose backward gives a kept element the slope
    ``kept(p)``, a dropped one ``dropped(p)`` — the bug's."""

    def fn(x: RTensor, mask: Any, p: float) -> RTensor:
        ns = x.system
        right = indexing.dropout(x.map(_frozen), mask, p)
        keep = indexing.flat_mask(mask, x.shape, "mask")
        return RTensor([o + (v - _frozen(v)) * ns.convert(kept(p) if k else dropped(p))
                        for o, v, k in zip(right.elements, x.elements, keep)], right.shape, right.system)

    return fn


def _layer(name: str, fn: Any) -> dict[str, Any]:
    """A mutant's patch of one layer op's refimpl function, and that op as the only one it can change."""
    return dict(patch=entries(TENSOR_OPS, **{name: replace(TENSOR_OPS[name], refimpl=fn)}), ops=frozenset({name}))


MUTANTS = [
    Mutant("max-pool-overwrite", "layers", "max pooling's backward writes dx[argmax] = dout where windows overlap",
           "`=` for `+=`, invisible while the stride equals the kernel (a course assignment solution)",
           **_layer("max_pool2d", _max_pool_overwrite)),
    Mutant("max-pool-every-tie", "layers", "max pooling's backward sends the whole gradient to every tied maximum",
           "the mask x == max: right without ties, k times too much with k of them (fp16 makes ties)",
           **_layer("max_pool2d", _max_pool_every_tie)),
    Mutant("max-pool-tie-split", "layers", "max pooling splits a tie's gradient evenly instead of the first",
           "another valid subgradient (amax's rule): a convention, reported and not charged",
           **_layer("max_pool2d", _max_pool_split_ties), expect="convention"),
    Mutant("avg-pool-kernel-divisor", "layers", "average pooling's backward divides by kH·kW, its forward not",
           "under ceil_mode or count_include_pad=False the divisor changes per window (burn#5604)",
           **_layer("avg_pool2d", _avg_pool_kernel_divisor)),
    Mutant("conv-groups-weight-grad", "layers", "a grouped convolution's weight gradient for the first group only",
           "groups > 1 is rare in tests (pytorch#51430, burn#1891)",
           **_layer("conv2d", _conv2d_first_group_weight_grad)),
    Mutant("batch-norm-constant-stats", "layers", "batch norm's backward treats the mean and variance as constants",
           "dx = dy·γ/√(var + eps): the two terms through the statistics lost (CrypTen#143, deeplearning4j#8379)",
           **_layer("batch_norm", _normalization(norm.batch_norm_groups, stats=False))),
    Mutant("layer-norm-2d-count", "layers", "layer norm's backward assumes (N, D) input: D = shape[1]",
           "silently wrong for [B, T, H] with T ≠ H (FlagGems#5392)",
           **_layer("layer_norm", _normalization(norm.layer_norm_groups, count=lambda shape: shape[1]))),
    Mutant("norm-weight-bias-swapped", "layers", "group norm's backward returns dweight and dbias swapped",
           "the two gradients of the affine step exchanged (oneflow#6149)",
           **_layer("group_norm", _normalization(norm.group_norm_groups, swap=True))),
    Mutant("embedding-last-duplicate", "layers", "embedding's backward dW[idx] += d: a repeat counted once",
           "numpy's fancy += keeps one write per index (pytorch#1528)",
           **_layer("embedding", _embedding_last_duplicate)),
    Mutant("masked-fill-through-mask", "layers", "masked_fill's backward passes dout at the filled positions",
           "the mask applied in forward, forgotten in backward (numpy-ml#94, as dropout)",
           **_layer("masked_fill", _masked_fill_through_mask)),
    Mutant("masked-fill-arithmetic", "layers", "masked_fill computed as x·keep + value·mask: NaN where kept for −∞",
           "masking by arithmetic, right for the −1e9 people write, NaN for −inf (0·inf)",
           **_layer("masked_fill", _masked_fill_arithmetic)),
    Mutant("cumsum-forward-order", "layers", "cumsum's backward is a forward running sum of dout",
           "the reversal forgotten; right on lanes of one element",
           **_layer("cumsum", _cumsum_forward_order)),
    Mutant("prod-zero-gradient", "layers", "prod's backward where(x == 0, 0, out/x): a zero's gradient lost",
           "the usual patch for out/x's NaN at 0; right without zeros (tensorflow#119430, pytensor#1911)",
           **_layer("prod", _prod_zero_gradient)),
    Mutant("attention-dv-untransposed", "layers", "attention's backward dV = P·dO, not Pᵀ·dO",
           "a shape error when query and key lengths differ, silent when equal (flash-attention#2552)",
           **_layer("scaled_dot_product_attention", _attention_dv_untransposed)),
    Mutant("attention-backward-unscaled", "layers", "attention's dQ and dK without the softmax scale",
           "the forward scales the scores, the backward forgets it; right at scale 1",
           **_layer("scaled_dot_product_attention", _attention_backward_unscaled)),
    Mutant("lstm-no-carry", "layers", "an LSTM's gradient not carried across time steps",
           "each step's state taken as a constant: right at T = 1, where tests often stop",
           **_layer("lstm", _lstm_no_carry)),
    Mutant("gru-no-carry", "layers", "a GRU's gradient not carried across time steps",
           "each step's state taken as a constant: right at T = 1", **_layer("gru", _gru_no_carry)),
    Mutant("conv-transpose-stride-dilation-swapped", "layers",
           "a transposed convolution's input gradient with stride and dilation swapped",
           "the backward is a conv2d whose stride is the forward's dilation: a shape error or silently "
           "wrong where they differ (candle#2337)",
           **_layer("conv_transpose2d", _conv_transpose_stride_dilation_swapped)),
    Mutant("conv-transpose-output-padding-dropped", "layers",
           "a transposed convolution's input gradient without the output_padding rows",
           "dout cropped to the size without output_padding: right unless padding puts input there",
           **_layer("conv_transpose2d", _conv_transpose_output_padding_dropped)),
    Mutant("std-mean-constant", "layers", "std's backward from E[x²] − E[x]² with the mean held constant",
           "dstd = x/((N − c)·std), the term −mean/((N − c)·std) lost: right for slices of mean 0 "
           "(in the two-pass form the mean's term is 0 anyway)",
           **_layer("std", _spread_slopes(lambda x, mean, n, c: 2.0 * x / (n - c), root=True))),
    Mutant("var-backward-wrong-correction", "layers", "var's backward divides by N − (1 − correction)",
           "the forward's N − 1 and the backward's N (or the reverse) from two copies of the formula",
           **_layer("var", _spread_slopes(lambda x, mean, n, c: 2.0 * (x - mean) / (n - (1 - c)), root=False))),
    Mutant("pad-edge-overwrite", "layers", "padding's backward dx[src] = dout[dst]: an edge copied k times once",
           "replicate, reflect and circular copy an edge element several times; = for += keeps one",
           **_layer("pad", _pad_overwrite)),
    Mutant("cat-split-first-size", "layers", "cat's backward splits dout at multiples of the first input's size",
           "right for equal sizes and for two inputs; wrong (or a broadcast error) from the third on",
           **_layer("cat", _cat_first_size_offsets)),
    Mutant("dropout-backward-no-mask", "layers", "dropout's backward dout/(1 − p) everywhere, the mask forgotten",
           "the mask applied in forward only (numpy-ml#94)",
           **_layer("dropout", _dropout_slopes(lambda p: 1.0 / (1.0 - p), lambda p: 1.0 / (1.0 - p)))),
    Mutant("dropout-scaled-by-inverse-p", "layers", "dropout's backward scales kept elements by 1/p, not 1/(1 − p)",
           "p read as the keep probability in backward; right at p = 0.5",
           **_layer("dropout", _dropout_slopes(lambda p: 1.0 / p, lambda p: 0.0))),
]
