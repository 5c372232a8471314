"""Losses with ``torch.nn.functional``'s names, arguments and semantics, built on :mod:`refimpl.tensor`.

Every loss takes ``reduction`` = ``'mean'`` | ``'sum'`` | ``'none'`` and is a composition of
scalar engine ops, so its gradient (and second order) is the engine's. A branch per element (which
side of a kink) is chosen in Python from the value, as torch's kernels do.

torch 2.13 conventions, checked in ``tests/test_losses.py``:

* ``l1_loss``: the derivative at ``input == target`` is ``sign(0) = 0``.
* ``smooth_l1_loss(beta)``: quadratic where ``|d| < beta``, linear from ``|d| == beta`` on; the two
  sides meet with slope ``±1`` there, so the kink is only in the second derivative. ``beta == 0``
  is ``l1_loss`` (slope 0 at ``d == 0``).
* ``huber_loss(delta)``: quadratic where ``|d| < delta``, linear from ``|d| == delta`` on (slope
  ``±delta`` on both sides).
* ``binary_cross_entropy``: the value is torch's ``(t-1)·max(log1p(-x), -100) - t·max(log x, -100)``
  (``log1p(-x)``, not ``log(1-x)``: they differ visibly for ``x`` near 0). A clamped log is the
  constant -100, gradient 0. The gradient is the derivative of that value. torch's backward is
  instead ``(x - t) / max(x·(1-x), ε)`` with ε = 1e-12 rounded to float32: equal to it wherever
  ``x·(1-x) ≥ ε``, but not within about 1e-12 of 0 or 1 (at ``x = 0, t = 0`` the derivative is 1,
  torch says 0). Likewise torch's gradient for ``target`` is ``log1p(-x) - log x`` *unclamped*
  (inf at ``x ∈ {0, 1}``), refimpl's the derivative of the clamped value. An input outside
  ``[0, 1]`` raises ``ValueError``, as in torch; a NaN input gives NaN, where torch raises (its check
  ``0 <= x <= 1`` is false for NaN). In a training run NaN gets here only after the run has left the
  dtype's range — in float32 a sigmoid output between ``e^-100`` and ``1/FLT_MAX`` (subnormal) makes
  the derivative ``-t/x`` overflow, and inf − inf follows — which the suite takes as a branch the
  rounding decides; raising there left the reference without a result, and the judge (whose error
  bounds are a run of refimpl) without bounds.
* ``binary_cross_entropy_with_logits``: ``(1-t)·x + lw·(-log σ(x))`` with ``lw = 1 + (pos_weight-1)·t``
  and ``-log σ(x) = -min(x, 0) + log1p(exp(-|x|))`` — torch's stable form, its branch chosen by the
  sign of ``x`` so that each side is a smooth formula (no kink at 0).
* ``nll_loss`` / ``cross_entropy``: class-index targets; ``ignore_index`` positions contribute a
  constant 0; ``'mean'`` divides by the total weight ``Σ weight[target]`` of the positions kept
  (NaN when none is kept, as torch). ``label_smoothing = ε`` gives
  ``(1-ε)·nll + (ε/C)·Σ_c -weight[c]·log p_c``, the second term reduced with the same
  denominator. Class weights are constants (no gradient flows to them). When every target is
  ignored the loss is a constant (torch keeps a graph that gives zero gradients).

The pieces the losses are built from — :func:`check_reduction`, :func:`as_operands`,
:func:`apply_reduction` and, for the class losses, :func:`class_rows`, :func:`class_targets`,
:func:`class_weights`, :func:`per_position`, :func:`reduce_positions` — are public, so a variant
of a loss (another smoothing rule, say) is written from the same parts.
"""

from __future__ import annotations

from typing import Any, Callable

from .engine import Value
from .tensor import Tensor, as_tensor, index_array, zip_map

REDUCTIONS = ("mean", "sum", "none")
LOG_FLOOR = -100.0  # torch's clamp on the logs of binary_cross_entropy


def check_reduction(reduction: str) -> None:
    """Raise ``ValueError`` unless ``reduction`` is one of :data:`REDUCTIONS`."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def apply_reduction(loss: Tensor, reduction: str) -> Tensor:
    """The per-element ``loss`` reduced: ``'none'`` as it is, ``'sum'`` summed, ``'mean'`` averaged."""
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def as_operands(input: Any, *others: Any) -> tuple[Tensor, ...]:
    """``input`` as a Tensor, and the other arguments as Tensors (constants) in its number system."""
    x = as_tensor(input)
    return (x, *(None if o is None else as_tensor(o, x.system) for o in others))


# --- regression ----------------------------------------------------------------------------------

def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """``(input - target)²``."""
    check_reduction(reduction)
    x, t = as_operands(input, target)
    return apply_reduction((x - t) ** 2, reduction)


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """``|input - target|``; slope 0 where they are equal (abs'(0) = 0, as torch)."""
    check_reduction(reduction)
    x, t = as_operands(input, target)
    return apply_reduction((x - t).abs(), reduction)


def smooth_l1_loss(input: Any, target: Any, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """``0.5·z²/beta`` where ``z = |input - target| < beta``, else ``z - 0.5·beta`` (torch's order)."""
    check_reduction(reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")

    def one(d: Value) -> Value:
        z = d.abs()
        return 0.5 * z * z / beta if z.data < beta else z - 0.5 * beta

    x, t = as_operands(input, target)
    return apply_reduction((x - t).map(one), reduction)


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """``0.5·z²`` where ``z = |input - target| < delta``, else ``delta·(z - 0.5·delta)``."""
    check_reduction(reduction)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")

    def one(d: Value) -> Value:
        z = d.abs()
        return 0.5 * z * z if z.data < delta else delta * (z - 0.5 * delta)

    x, t = as_operands(input, target)
    return apply_reduction((x - t).map(one), reduction)


# --- binary classification ---------------------------------------------------------------------------

def _floored(log_value: Value) -> Value:
    """torch's ``std::max(log, -100)``: below the floor the constant -100 (gradient 0; NaN stays)."""
    if log_value.data < LOG_FLOOR:
        return Value(LOG_FLOOR, False, system=log_value.ns)
    return log_value


def _bce(x: Value, t: Value) -> Value:
    if x.data < 0 or x.data > 1:  # NaN passes: NaN in, NaN out (see the module doc)
        raise ValueError(f"binary_cross_entropy: input {x.data} is outside [0, 1]")
    return (t - 1) * _floored((-x).log1p()) - t * _floored(x.log())


def binary_cross_entropy(input: Any, target: Any, weight: Any = None, reduction: str = "mean") -> Tensor:
    """``-w·(t·log x + (1-t)·log(1-x))`` with both logs floored at -100 (see the module doc)."""
    check_reduction(reduction)
    x, t, w = as_operands(input, target, weight)
    loss = zip_map(_bce, x, t)
    return apply_reduction(loss if w is None else loss * w, reduction)


def _neg_log_sigmoid(x: Value) -> Value:
    """``-log σ(x) = -min(x, 0) + log1p(exp(-|x|))``, each sign's side written out as torch's."""
    return (-x).exp().log1p() if x.data >= 0 else -x + x.exp().log1p()


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None,
                                     reduction: str = "mean", pos_weight: Any = None) -> Tensor:
    """``(1-t)·x - lw·log σ(x)``, ``lw = 1 + (pos_weight - 1)·t``: torch's stable form."""
    check_reduction(reduction)
    x, t, w, pw = as_operands(input, target, weight, pos_weight)
    if pw is None:
        loss = zip_map(lambda xi, ti: (1 - ti) * xi + _neg_log_sigmoid(xi), x, t)
    else:
        lw = (pw - 1) * t + 1
        loss = zip_map(lambda xi, ti, li: (1 - ti) * xi + li * _neg_log_sigmoid(xi), x, t, lw)
    return apply_reduction(loss if w is None else loss * w, reduction)


# --- multi-class --------------------------------------------------------------------------------------

def class_rows(input: Tensor) -> Tensor:
    """Shape ``(positions, C)``: the class scores of each sample position, in row-major order.

    The class dim is 1 (0 for a 1-D input), as in torch: ``(C)``, ``(N, C)``, ``(N, C, d1, …)``.
    """
    if input.ndim == 1:
        return input.reshape(1, -1)
    return input.permute((0, *range(2, input.ndim), 1)).reshape(-1, input.shape[1])


def class_targets(input: Tensor, target: Any) -> tuple[tuple[int, ...], list[int]]:
    """The target's shape (input's without the class dim) and its class indices."""
    if input.ndim == 0:
        raise ValueError("a class-score input needs at least 1 dim")
    shape, flat = index_array(target)
    expected = () if input.ndim == 1 else (input.shape[0], *input.shape[2:])
    if shape != expected:
        raise ValueError(f"target shape {shape} does not match input {input.shape} "
                         f"(expected {expected}; probability targets are not supported)")
    return shape, flat


def class_weights(weight: Any, n_classes: int) -> list[Any] | None:
    """The per-class weights as plain numbers (``None`` for none), checked to be ``(n_classes,)``."""
    if weight is None:
        return None
    w = as_tensor(weight)
    if w.shape != (n_classes,):
        raise ValueError(f"weight has shape {w.shape}, expected ({n_classes},)")
    return w.flat()


def per_position(rows: Tensor, targets: list[int], weights: list[Any] | None, ignore_index: int,
                 one: Callable[[list[Value], int, Any], Value]) -> tuple[list[Value], Any]:
    """``one(row, class, class_weight)`` for every kept position (constant 0 where ignored), and
    the total weight of the kept positions — the denominator of ``'mean'``."""
    ns = rows.system
    n_classes = rows.shape[1]
    losses, total = [], ns.zero
    for p, y in enumerate(targets):
        if y == ignore_index:
            losses.append(Value(ns.zero, False, system=ns))
            continue
        if not 0 <= y < n_classes:
            raise IndexError(f"target {y} is out of bounds for {n_classes} classes")
        w = ns.one if weights is None else ns.convert(weights[y])
        losses.append(one(rows.elements[p * n_classes:(p + 1) * n_classes], y, w))
        total = total + w
    return losses, total


def reduce_positions(losses: list[Value], total_weight: Any, shape: tuple[int, ...],
                     system: Any, reduction: str) -> Tensor:
    """The per-position losses of :func:`per_position` reduced; ``'mean'`` divides the sum by the
    total weight of the kept positions (not by their count), as torch."""
    loss = Tensor(losses, shape, system)
    if reduction == "none":
        return loss
    summed = loss.sum()
    return summed if reduction == "sum" else summed / total_weight


def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """``-weight[y]·input[y]`` per position; ``'mean'`` divides by the total weight kept."""
    check_reduction(reduction)
    x = as_tensor(input)
    shape, targets = class_targets(x, target)
    rows = class_rows(x)
    weights = class_weights(weight, rows.shape[1])
    pick = ((lambda row, y, w: -row[y]) if weights is None else (lambda row, y, w: -(row[y] * w)))
    losses, total = per_position(rows, targets, weights, ignore_index, pick)
    return reduce_positions(losses, total, shape, x.system, reduction)


def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """``nll_loss(log_softmax(input, class dim), …)``, blended with the uniform target when smoothing."""
    check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    x = as_tensor(input)
    logp = x.log_softmax(0 if x.ndim == 1 else 1)
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if label_smoothing == 0.0:
        return nll
    shape, targets = class_targets(x, target)
    rows = class_rows(logp)
    n_classes = rows.shape[1]
    weights = class_weights(weight, n_classes)

    def smooth(row: list[Value], y: int, w: Any) -> Value:
        terms = row if weights is None else [v * c for v, c in zip(row, weights)]
        return -sum(terms[1:], terms[0])

    losses, total = per_position(rows, targets, weights, ignore_index, smooth)
    smoothed = reduce_positions(losses, total, shape, x.system, reduction)
    ns = x.system
    eps = ns.convert(label_smoothing)
    return (ns.one - eps) * nll + smoothed * ns.div(eps, ns.convert(n_classes))


LOSSES: dict[str, Callable[..., Tensor]] = {
    "mse": mse_loss,
    "l1": l1_loss,
    "smooth_l1": smooth_l1_loss,
    "huber": huber_loss,
    "bce": binary_cross_entropy,
    "bce_with_logits": binary_cross_entropy_with_logits,
    "cross_entropy": cross_entropy,
    "nll": nll_loss,
}
