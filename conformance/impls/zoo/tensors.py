"""Tensors and layers: shapes, axes, broadcasting, reductions and losses — bugs a scalar engine cannot
have but every tensor library has had."""

from __future__ import annotations

import importlib
import math
from typing import Any

from conformance.case.network import feature_shapes
from conformance.impls.zoo.base import Mutant, entries, setting
from conformance.oracle.netrun import RefTrainer
from refimpl import losses
from refimpl.engine import Value
from refimpl.tensor import Tensor as RTensor
from refimpl.tensor import as_tensor, broadcast_shapes

tensor = importlib.import_module("refimpl.tensor")  # the module: refimpl.tensor is also a function


class TransposedWeightGrad(RefTrainer):
    """dW computed as xᵀδ, shape (in, out), and stored row-major into the (out, in) gradient."""

    def after_backward(self, params: dict[str, RTensor]) -> None:
        for name, p in params.items():
            if name.endswith("weight"):
                out_f, in_f = p.shape
                g = [v.grad for v in p.elements]
                for v, x in zip(p.elements, [g[i * in_f + j] for j in range(in_f) for i in range(out_f)]):
                    v.grad = x  # BUG: element (r, c) of the gradient read from the transpose's layout


class BiasGradAveraged(RefTrainer):
    """The bias gradient averaged over the batch while the weight gradient is summed."""

    def after_backward(self, params: dict[str, RTensor]) -> None:
        n = self.case.batches[self.step_number - 1].x.shape[0]
        for name, p in params.items():
            if name.endswith("bias"):
                for v in p.elements:
                    v.grad = v.grad / n  # BUG: db = mean over the batch of δ, dW = sum of xᵀδ


class MSEMeanGradientOfSum(RefTrainer):
    """Mean-reduced MSE backpropagated as if it were summed: its gradient lacks the 1/N."""

    def backward(self, loss: RTensor) -> None:
        if self.case.loss != "mse" or self.case.reduction != "mean":
            return super().backward(loss)
        n = len(self.case.batches[self.step_number - 1].y.values)  # every element of the (batch, out) target
        loss.backward(as_tensor(float(n), self.system))  # BUG: seeds N, the 1/N of the mean undone


class FlattenBackwardChannelsLast(RefTrainer):
    """A CNN's flatten whose backward unflattens the Linear layer's input gradient as (N, H, W, C)
    while the forward flattened (N, C, H, W): every value right, the gradient of the feature maps
    permuted (the value is refimpl's, the slope goes to the position the bug reads)."""

    def forward_features(self, feats: list[dict[str, RTensor | None]], x: RTensor) -> RTensor:
        right = super().forward_features(feats, x)
        if not self.case.features:
            return right
        h = right.reshape(x.shape[0], -1)  # (N, C·H·W), as the forward flattened
        n, c, hw = x.shape[0], *_feature_map(self, x)
        out = []
        for s in range(n):
            for j in range(c * hw):
                ch, p = divmod(j, hw)
                k = p * c + ch  # BUG: position j's gradient read from the channels-last layout
                src = h.elements[s * c * hw + k]
                out.append(_frozen(h.elements[s * c * hw + j]) + (src - _frozen(src)))
        return RTensor(out, h.shape, h.system)


def _feature_map(trainer: RefTrainer, x: RTensor) -> tuple[int, int]:
    """(channels, H·W) of the last feature map of the trainer's case."""
    shape = feature_shapes(trainer.case)[-1][2]
    return shape[0], math.prod(shape[1:])


def _frozen(v: Value) -> Value:
    return Value(v.data, False, system=v.ns)


def _norm_dim_off_by_one(dim: int, ndim: int) -> int:
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(f"dim {dim} out of range for a tensor with {ndim} dim(s)")
    return (dim + ndim - 1) % size if dim < 0 else dim  # BUG: dim + ndim - 1: -1 names the axis before the last


def _zip_map_first_copy_only(fn: Any, *operands: Any) -> RTensor:
    """``refimpl.tensor.zip_map`` where a broadcast operand's repeats are copies, not the same Values."""
    system = next(t.system for t in operands if isinstance(t, RTensor))
    tensors = [t if isinstance(t, RTensor) else RTensor([tensor.constant(t, system)], (), system)
               for t in operands]
    shape = broadcast_shapes(*(t.shape for t in tensors))
    columns = []
    for t in tensors:
        seen: set[int] = set()
        column = []
        for i in tensor.broadcast_map(t.shape, shape):
            v = t.elements[i]
            column.append(v if i not in seen else Value(v.data, False, system=v.ns))  # BUG: the repeats carry
            seen.add(i)                                                             # no gradient: none summed
        columns.append(column)
    return RTensor([fn(*args) for args in zip(*columns)], shape, system)


def _no_shift(values: list[Value]) -> Value:
    return tensor.constant(values[0].ns.zero, values[0].ns)  # BUG: exp(x - 0) overflows at x > 709


def _mse_half_gradient(input: Any, target: Any, reduction: str = "mean") -> RTensor:
    losses.check_reduction(reduction)
    x, t = losses.as_operands(input, target)
    d = x - t
    return losses.apply_reduction(d * d.detach(), reduction)  # BUG: d(d²) taken as d: right value, half the slope


def _cross_entropy_smoothing_over_other_classes(input: Any, target: Any, weight: Any = None,
                                                ignore_index: int = -100, reduction: str = "mean",
                                                label_smoothing: float = 0.0) -> RTensor:
    """refimpl.losses.cross_entropy with ε spread over the C − 1 other classes instead of all C."""
    x = as_tensor(input)
    if label_smoothing == 0.0:
        return losses.cross_entropy(x, target, weight, ignore_index, reduction)
    logp = x.log_softmax(0 if x.ndim == 1 else 1)
    nll = losses.nll_loss(logp, target, weight, ignore_index, reduction)
    shape, targets = losses.class_targets(x, target)
    rows = losses.class_rows(logp)
    n_classes = rows.shape[1]
    weights = losses.class_weights(weight, n_classes)
    ns = x.system

    def smooth(row: list[Value], y: int, w: Any) -> Value:
        terms = [v if weights is None else v * weights[c] for c, v in enumerate(row) if c != y]  # BUG: y left out
        return -sum(terms[1:], terms[0]) if terms else Value(ns.zero, False, system=ns)

    per_position, total = losses.per_position(rows, targets, weights, ignore_index, smooth)
    smoothed = losses.reduce_positions(per_position, total, shape, ns, reduction)
    eps = ns.convert(label_smoothing)
    return (ns.one - eps) * nll + smoothed * ns.div(eps, ns.convert(max(n_classes - 1, 1)))  # BUG: ε/(C − 1)


MUTANTS = [
    Mutant("transposed-weight-grad", "tensor", "the weight gradient laid out transposed (xᵀδ stored as δᵀx)",
           "invisible on square layers and vectors: a 3×3 test layer passes",
           trainer=TransposedWeightGrad),
    Mutant("negative-dim-off-by-one", "tensor",
           "a negative dim normalised as dim + ndim − 1: reductions and softmax run over the wrong axis",
           "an off-by-one in the one helper every axis argument goes through; right for dim ≥ 0",
           setting(tensor, "norm_dim", _norm_dim_off_by_one)),
    Mutant("broadcast-grad-not-summed", "tensor",
           "a broadcast operand's gradient taken from its first copy, not summed over the broadcast dims",
           "numpy-style backward reshapes the upstream gradient instead of reducing it (sum_to_size)",
           setting(tensor, "zip_map", _zip_map_first_copy_only)),
    Mutant("bias-grad-averaged", "tensor", "the bias gradient averaged over the batch, the weight's summed",
           "hand-written layer backward: db = δ.mean(0) next to dW = δᵀx",
           trainer=BiasGradAveraged),
    Mutant("mse-missing-factor-2", "tensor", "d(x − t)²/dx taken as (x − t): the MSE gradient is half",
           "the 2 is often folded into the learning rate in textbooks, and then forgotten",
           entries(losses.LOSSES, mse=_mse_half_gradient)),
    Mutant("mse-mean-missing-1/N", "tensor", "mean-reduced MSE backpropagated as the sum (no 1/N in its gradient)",
           "the mean's value is computed right; its backward copied from sum's",
           trainer=MSEMeanGradientOfSum),
    Mutant("softmax-without-max-shift", "tensor", "softmax, log_softmax and logsumexp without the max shift",
           "exp(x)/Σexp(x) is the formula; it overflows to inf/inf = NaN at logits above ~709",
           setting(tensor, "max_shift", _no_shift)),
    Mutant("label-smoothing-off-by-a-class", "tensor",
           "cross-entropy label smoothing spreads ε/(C − 1) over the other classes, torch ε/C over all C",
           "both definitions are in the literature; only one is torch's",
           entries(losses.LOSSES, cross_entropy=_cross_entropy_smoothing_over_other_classes)),
    Mutant("flatten-backward-channels-last", "tensor",
           "a CNN's flatten backward unflattens dL/dh as (N, H, W, C); the forward flattened (N, C, H, W)",
           "a reshape where a transpose was needed, in a numpy CNN: right with one channel or a 1×1 map",
           trainer=FlattenBackwardChannelsLast),
]
