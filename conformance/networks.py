"""Network cases: short training runs of an MLP, judged entry by entry.

A *network case* is everything a training run needs, given explicitly (no hidden randomness):

* an MLP — ``layers[i]`` is a ``torch.nn.Linear(in, out)`` (weight ``[out][in]``, bias ``[out]`` or
  none) followed by one activation, named as in refimpl's op table (``relu``, ``leaky_relu``,
  ``elu``, ``softplus``, ``silu``, ``gelu``, ``tanh``, ``sigmoid``) or ``identity``, with its
  attributes; then a *head*: ``none`` or ``log_softmax`` over the class dim;
* a loss of :data:`refimpl.losses.LOSSES` with its reduction and attributes (``beta`` for
  smooth_l1, ``delta`` for huber, ``weight`` / ``pos_weight`` for the binary losses, ``weight`` /
  ``ignore_index`` / ``label_smoothing`` for the class losses);
* an optimizer of :data:`refimpl.optim.OPTIMIZERS` with *all* its hyperparameters written out;
* ``k ≥ 1`` batches ``(x, y)``; step ``t`` is ``zero_grad, forward, loss, backward, step`` on
  batch ``t``.

Rules that make a case valid (:func:`check_case`):

* ``bce`` needs probabilities: the last activation is ``sigmoid``; targets in ``[0, 1]``.
* ``cross_entropy`` and ``nll`` take class indices ``y[b] ∈ [0, C)`` (or ``ignore_index``). ``nll``
  needs log-probabilities, so an ``nll`` case *must* have the head ``log_softmax`` (and only nll
  cases have it): the network ends ``linear → activation → log_softmax → nll_loss``, which is
  ``cross_entropy`` computed the other way round. nll on raw outputs is a loss unbounded below —
  not a training run anyone does — so it is not a case.
* ``reduction='none'`` backpropagates a cotangent of ones (``loss.backward(ones_like(loss))``, i.e.
  the gradient of ``loss.sum()``) and the recorded loss is the whole per-element tensor.

The result of a run (:class:`NetworkResult`) is, for every step: the loss, the gradient of every
parameter (after backward, before the optimizer), and every parameter after the optimizer step.
Parameters are named ``layer{i}.weight`` / ``layer{i}.bias`` in torch's order.

Runners: :func:`run_refimpl_network` (refimpl in any number system — float64, float32 emulation,
:class:`~conformance.tolerance.BoundNS`, mpmath) and :func:`run_torch_network`
(``torch.nn.functional.linear`` with the given parameters, ``torch.nn.functional`` activations and
losses, ``torch.optim`` with ``foreach=False``).

Verdicts (:func:`judge_network`) follow the graph cases' rules (:mod:`conformance.verdict`), per
entry — ``loss@t`` (``loss[i]@t`` for ``'none'``), ``grad[p][r,c]@t``, ``param[p][r,c]@t``, steps
counted from 1 — each entry twice:

* **free-running**: the implementation's run against torch's run. The tolerance is
  ``SAFETY × bound + tiny`` where *bound* comes from running the *whole training run* in refimpl in
  ``BoundNS``: parameters after step ``t`` carry their error bound into step ``t + 1``, so the
  tolerance grows as the run amplifies differences (a first-order, Wilkinson-style bound; see
  ``docs/tolerances.md``). Each optimizer update is bounded as one function (:func:`bounded_step`:
  signed sensitivities from refimpl.optim's own code on dual numbers, plus its rounding), because
  elementwise bounds of Adam's ``m/(sqrt(v) + eps)`` forget that ``m`` and ``v`` come from the same
  gradient and overstate the update's sensitivity by ~``2|g|/eps``. The bound stays honest but grows
  faster than the real discrepancy (it adds |contributions| over all paths: through every sample of
  the batch and through the forward and the backward pass), measured at 1–100× per step;
* **anchored** (``anchored:…``): the loss and gradients of step ``t ≥ 2`` as torch computes them from
  the *implementation's own* parameters after step ``t − 1``, and the parameters after every step as
  torch's optimizer makes them from the implementation's own parameters and gradients
  (:class:`Anchored`, :func:`replay_torch`). One-step tolerances, which do not grow: a bug shows at
  the step it happens, however loose the free-running bound has become.

For every entry: ``pass`` if ``|impl − torch| ≤ 2·tol``; otherwise the truth arbitrates. For networks
the truth is **refimpl itself run at 50 digits** (mpmath) — a finite difference through a training
run is not practical — so it shares refimpl's code: it checks *rounding*, not refimpl's gradients,
and when the implementation under test *is* refimpl the agreement with torch (within ``2·tol``) is
the real check. ``torch-deviates`` when the implementation is within ``tol`` of the truth and torch
is not; ``convention`` when a branch the rounding decides explains it — an activation input or a
loss branch point (relu at 0, ``|d| = beta`` for smooth_l1, softplus's threshold, …) within
``2·tol`` of its kink, a saturated bce input (the −100 log floor, torch's backward clamp), or an
optimizer update that is not linear within its gradient's error (Adam's near-sign update of a
gradient inside its own rounding noise), or a run that leaves the dtype's range (past overflow, inf
or NaN is the order of operations' choice). A kink excuses free-running entries from its step on, and
anchored entries of its own step only. Otherwise ``nonfinite-mismatch``, ``fail``; a raised
exception or an unusable result is ``error``.

``BoundNS`` (:mod:`conformance.tolerance`) has no ``**``, which refimpl.optim needs for Adam's bias
corrections (``1 - beta1**step``); :class:`NetBoundNS` adds it here rather than changing that module.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from refimpl import OPS, mpmath_system
from refimpl import optim as roptim
from refimpl.losses import LOSSES, REDUCTIONS
from refimpl.nn import MLP
from refimpl.numbers import FLOAT32, FLOAT64, FloatNS, round_to_float32
from refimpl.tensor import Tensor as RTensor
from refimpl.tensor import as_tensor

from .cases import Tensor, number_to_json, tensor_from_json, tensor_to_json
from .opcheck import kink_points
from .tolerance import LIBM_ULPS, SAFETY, TINY, U32, U64, Bounded, BoundNS, bound_system
from .verdict import ORDER, CaseVerdict, Entry, arbitrate, within

FORMAT = "backprop-conformance/network-case"
RESULT_FORMAT = "backprop-conformance/network-result"
VERSION = 1

DTYPES = ("float64", "float32")
ACTIVATIONS = ("identity", "relu", "leaky_relu", "elu", "softplus", "silu", "gelu", "tanh", "sigmoid")
HEADS = ("none", "log_softmax")
CLASS_LOSSES = frozenset({"cross_entropy", "nll"})
#: the attributes each loss takes (all optional; a tensor-valued one may be null)
LOSS_ATTRS: dict[str, tuple[str, ...]] = {
    "mse": (), "l1": (), "smooth_l1": ("beta",), "huber": ("delta",),
    "bce": ("weight",), "bce_with_logits": ("weight", "pos_weight"),
    "cross_entropy": ("weight", "ignore_index", "label_smoothing"), "nll": ("weight", "ignore_index"),
}
TENSOR_ATTRS = frozenset({"weight", "pos_weight"})
#: every hyperparameter of each optimizer, as torch.optim 2.13 names them (foreach/fused/capturable/
#: differentiable are how torch runs, not what it computes: the torch runner fixes foreach=False)
OPTIMIZER_HYPER: dict[str, tuple[str, ...]] = {
    "sgd": ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"),
    "adam": ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"),
    "adamw": ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"),
    "rmsprop": ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize"),
    "adagrad": ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"),
}
TINY32 = 4 * 2.0**-149  # a few float32 subnormals: the floor of a float32 tolerance
OVERFLOW = {"float64": 2.0**1020, "float32": 2.0**124}  # within 16x of the largest finite value
BCE_CLAMP = 2e-12  # torch's bce backward divides by max(x·(1-x), 1e-12 as float32): a branch below it


# --- the case ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layer:
    """``torch.nn.Linear(in_features, out_features)`` with these parameters, then the activation."""

    in_features: int
    out_features: int
    activation: str
    attrs: dict[str, Any]
    weight: Tensor  # shape (out_features, in_features)
    bias: Tensor | None  # shape (out_features,), or no bias


@dataclass(frozen=True)
class Batch:
    x: Tensor  # (batch, in_features)
    y: Tensor  # (batch, out) for regression and binary losses; (batch,) class indices for CE/nll


@dataclass(frozen=True)
class NetworkCase:
    layers: tuple[Layer, ...]
    loss: str
    reduction: str
    loss_attrs: dict[str, Any]  # numbers, or Tensor for weight / pos_weight
    optimizer: str
    hyper: dict[str, Any]
    batches: tuple[Batch, ...]
    dtype: str = "float64"
    head: str = "none"
    id: str = ""

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.layers[0].in_features, *(la.out_features for la in self.layers))

    @property
    def steps(self) -> int:
        return len(self.batches)

    @property
    def param_names(self) -> list[str]:
        names = []
        for i, la in enumerate(self.layers):
            names.append(f"layer{i}.weight")
            if la.bias is not None:
                names.append(f"layer{i}.bias")
        return names

    @property
    def n_params(self) -> int:
        return sum(la.weight.shape[0] * la.weight.shape[1] + (0 if la.bias is None else la.out_features)
                   for la in self.layers)

    def summary(self) -> str:
        """One line: ``4→3→2 tanh,identity | mse/mean | sgd(...) | 2 steps × batch 3 | float64``."""
        acts = ",".join(la.activation for la in self.layers) + ("+log_softmax" if self.head != "none" else "")
        hyper = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return (f"{'→'.join(map(str, self.sizes))} {acts} | {self.loss}/{self.reduction}"
                f"{' ' + str(_attrs_brief(self.loss_attrs)) if self.loss_attrs else ''} | "
                f"{self.optimizer}({hyper}) | {self.steps} step(s) × batch {self.batches[0].x.shape[0]} | "
                f"{self.dtype}, {self.n_params} parameters")


def _attrs_brief(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v.values) if isinstance(v, Tensor) else v) for k, v in attrs.items()}


@dataclass
class StepResult:
    loss: Tensor
    grads: dict[str, Tensor]
    params: dict[str, Tensor]


@dataclass
class NetworkResult:
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None


class InvalidCase(ValueError):
    pass


def check_case(case: NetworkCase) -> NetworkCase:
    """Raise :class:`InvalidCase` (a ValueError) saying what is wrong; return the case if it is valid."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise InvalidCase(message)

    need(case.dtype in DTYPES, f"dtype must be one of {DTYPES}, got {case.dtype!r}")
    need(len(case.layers) >= 1, "a network needs at least one layer")
    for i, la in enumerate(case.layers):
        need(la.in_features >= 1 and la.out_features >= 1, f"layer{i}: sizes must be >= 1")
        if i:
            need(la.in_features == case.layers[i - 1].out_features,
                 f"layer{i} takes {la.in_features} inputs but layer{i - 1} gives {case.layers[i - 1].out_features}")
        need(la.weight.shape == (la.out_features, la.in_features),
             f"layer{i}.weight has shape {list(la.weight.shape)}, expected [{la.out_features}, {la.in_features}]")
        need(la.bias is None or la.bias.shape == (la.out_features,),
             f"layer{i}.bias has shape {la.bias and list(la.bias.shape)}, expected [{la.out_features}]")
        need(la.activation in ACTIVATIONS, f"layer{i}: unknown activation {la.activation!r}; use one of {ACTIVATIONS}")
        if la.activation == "identity":
            need(not la.attrs, f"layer{i}: identity takes no attributes")
        else:
            try:
                OPS[la.activation].attributes(la.attrs)
            except TypeError as exc:
                raise InvalidCase(f"layer{i}: {exc}") from None
    need(case.loss in LOSS_ATTRS, f"unknown loss {case.loss!r}; use one of {tuple(LOSS_ATTRS)}")
    need(case.reduction in REDUCTIONS, f"reduction must be one of {REDUCTIONS}, got {case.reduction!r}")
    unknown = set(case.loss_attrs) - set(LOSS_ATTRS[case.loss])
    need(not unknown, f"{case.loss} takes attributes {LOSS_ATTRS[case.loss]}, not {sorted(unknown)}")
    need(case.head in HEADS, f"head must be one of {HEADS}, got {case.head!r}")
    need((case.head == "log_softmax") == (case.loss == "nll"),
         "nll needs log-probabilities: an nll case has head 'log_softmax', and only nll cases have it")
    if case.loss == "bce":
        need(case.layers[-1].activation == "sigmoid", "bce needs probabilities: the last activation must be sigmoid")
    n_out = case.sizes[-1]
    for k in TENSOR_ATTRS & set(case.loss_attrs):
        t = case.loss_attrs[k]
        need(t is None or t.shape == (n_out,), f"loss attribute {k} must have shape [{n_out}]")
    need(len(case.batches) >= 1, "a training run needs at least one batch")
    need(case.optimizer in OPTIMIZER_HYPER,
         f"unknown optimizer {case.optimizer!r}; use one of {tuple(OPTIMIZER_HYPER)}")
    want = set(OPTIMIZER_HYPER[case.optimizer])
    need(set(case.hyper) == want, f"{case.optimizer} needs exactly the hyperparameters {sorted(want)}, "
                                  f"got {sorted(case.hyper)}")
    for t, b in enumerate(case.batches, 1):
        need(len(b.x.shape) == 2 and b.x.shape[1] == case.sizes[0] and b.x.shape[0] >= 1,
             f"batch {t}: x has shape {list(b.x.shape)}, expected [batch, {case.sizes[0]}]")
        n = b.x.shape[0]
        if case.loss in CLASS_LOSSES:
            need(b.y.shape == (n,), f"batch {t}: {case.loss} targets have shape [{n}], got {list(b.y.shape)}")
            ignore = case.loss_attrs.get("ignore_index", -100)
            for y in b.y.values:
                need(float(y).is_integer() and (0 <= y < n_out or y == ignore),
                     f"batch {t}: target {y} is not a class index in [0, {n_out}) or ignore_index")
        else:
            need(b.y.shape == (n, n_out), f"batch {t}: y has shape {list(b.y.shape)}, expected [{n}, {n_out}]")
            if case.loss == "bce":
                need(all(0 <= y <= 1 for y in b.y.values), f"batch {t}: bce targets must lie in [0, 1]")
    return case


# --- JSON ---------------------------------------------------------------------------------------------

def _opt_tensor_json(t: Tensor | None) -> Any:
    return None if t is None else tensor_to_json(t)


def _opt_tensor(d: Any) -> Tensor | None:
    return None if d is None else tensor_from_json(d)


def _hyper_json(h: dict[str, Any]) -> dict[str, Any]:
    return {k: ([number_to_json(b) for b in v] if k == "betas" else (v if isinstance(v, bool) else number_to_json(v)))
            for k, v in h.items()}


def _hyper(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (tuple(float(b) for b in v) if k == "betas" else (v if isinstance(v, bool) else float(v)))
            for k, v in d.items()}


def _loss_attrs_json(a: dict[str, Any]) -> dict[str, Any]:
    return {k: (_opt_tensor_json(v) if k in TENSOR_ATTRS else v if k == "ignore_index" else number_to_json(v))
            for k, v in a.items()}


def _loss_attrs(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (_opt_tensor(v) if k in TENSOR_ATTRS else int(v) if k == "ignore_index" else float(v))
            for k, v in d.items()}


def _targets_json(case_loss: str, t: Tensor) -> dict[str, Any]:
    if case_loss in CLASS_LOSSES:  # class indices as JSON integers
        return {"shape": list(t.shape), "values": [int(v) for v in t.values]}
    return tensor_to_json(t)


def case_to_json(case: NetworkCase) -> dict[str, Any]:
    return {
        "format": FORMAT, "version": VERSION, "id": case.id, "dtype": case.dtype,
        "layers": [{"in_features": la.in_features, "out_features": la.out_features,
                    "activation": la.activation, "attrs": dict(la.attrs),
                    "weight": tensor_to_json(la.weight), "bias": _opt_tensor_json(la.bias)}
                   for la in case.layers],
        "head": case.head,
        "loss": {"name": case.loss, "reduction": case.reduction, "attrs": _loss_attrs_json(case.loss_attrs)},
        "optimizer": {"name": case.optimizer, "hyper": _hyper_json(case.hyper)},
        "batches": [{"x": tensor_to_json(b.x), "y": _targets_json(case.loss, b.y)} for b in case.batches],
    }


def case_from_json(d: dict[str, Any]) -> NetworkCase:
    if d.get("format") != FORMAT:
        raise ValueError(f"not a network case: format is {d.get('format')!r}, expected {FORMAT!r}")
    if d.get("version") != VERSION:
        raise ValueError(f"network case version {d.get('version')!r} is not supported (this is {VERSION})")
    case = NetworkCase(
        layers=tuple(Layer(int(la["in_features"]), int(la["out_features"]), la["activation"],
                           dict(la.get("attrs", {})), tensor_from_json(la["weight"]), _opt_tensor(la.get("bias")))
                     for la in d["layers"]),
        loss=d["loss"]["name"], reduction=d["loss"]["reduction"],
        loss_attrs=_loss_attrs(d["loss"].get("attrs", {})),
        optimizer=d["optimizer"]["name"], hyper=_hyper(d["optimizer"]["hyper"]),
        batches=tuple(Batch(tensor_from_json(b["x"]), tensor_from_json(b["y"])) for b in d["batches"]),
        dtype=d.get("dtype", "float64"), head=d.get("head", "none"), id=d.get("id", ""),
    )
    return check_case(case)


def result_to_json(r: NetworkResult) -> dict[str, Any]:
    return {
        "format": RESULT_FORMAT, "version": VERSION, "error": r.error,
        "steps": [{"loss": tensor_to_json(s.loss),
                   "grads": {k: tensor_to_json(t) for k, t in s.grads.items()},
                   "params": {k: tensor_to_json(t) for k, t in s.params.items()}} for s in r.steps],
    }


def result_from_json(d: dict[str, Any]) -> NetworkResult:
    if d.get("format") != RESULT_FORMAT:
        raise ValueError(f"not a network result: format is {d.get('format')!r}, expected {RESULT_FORMAT!r}")
    if d.get("version") != VERSION:
        raise ValueError(f"network result version {d.get('version')!r} is not supported (this is {VERSION})")
    return NetworkResult(
        steps=[StepResult(tensor_from_json(s["loss"]), {k: tensor_from_json(t) for k, t in s["grads"].items()},
                          {k: tensor_from_json(t) for k, t in s["params"].items()}) for s in d.get("steps", [])],
        error=d.get("error"),
    )


_JSON_NUMBER = r'(?:-?[0-9][0-9.eE+-]*|"-?inf"|"nan")'
_NUMBER_LIST = re.compile(rf"\[\s*({_JSON_NUMBER}(?:,\s*{_JSON_NUMBER})*)\s*\]")


def dumps(case: NetworkCase) -> str:
    """Indented JSON with every list of numbers on one line (a 16×16 weight is one line, not 256)."""
    text = json.dumps(case_to_json(case), indent=1)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def loads(text: str) -> NetworkCase:
    return case_from_json(json.loads(text))


def with_id(case: NetworkCase) -> NetworkCase:
    """Name a case by the hash of its content, so the same case has the same id everywhere."""
    doc = case_to_json(case)
    doc.pop("id")
    digest = hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]
    return replace(case, id=f"n-{digest}")


# --- error bounds for a whole run: BoundNS with powers ------------------------------------------------

class _Pow:
    """``**`` for :class:`Bounded`, which :mod:`refimpl.optim` needs for Adam's bias corrections
    (``1 - beta1**step``): ``conformance.tolerance.Bounded`` has none. Mixed into the number class of
    a :class:`~conformance.tolerance.BoundNS`, so it keeps that format's ``u`` and ``eta``."""

    __slots__ = ()

    def __pow__(self: Any, other: Any) -> Bounded:
        if not isinstance(other, (Bounded, int, float)):
            return NotImplemented
        o = self._lift(other)
        v = FloatNS.pow(self.v, o.v)
        da = abs(o.v * FloatNS.pow(self.v, o.v - 1)) if self.e and o.v != 0 else 0.0
        db = abs(v * FloatNS.log(self.v)) if o.e else 0.0
        e = (0.0 if da == 0 else da * self.e) + (0.0 if db == 0 else db * o.e)
        return type(self)(v, e + LIBM_ULPS * (self.u * abs(v) + getattr(self, "eta", 0.0)))

    def __rpow__(self: Any, other: Any) -> Bounded:
        if not isinstance(other, (int, float)):
            return NotImplemented
        return self._lift(other) ** self


class NetBoundNS(BoundNS):
    """A :class:`~conformance.tolerance.BoundNS` (the same format, rounding and constants) whose
    numbers also support ``**`` — see :class:`_Pow`. Built from one with :meth:`of`."""

    @classmethod
    def of(cls, base: BoundNS) -> NetBoundNS:
        ns = cls.__new__(cls)
        ns.__dict__.update(base.__dict__)
        ns.num = type(base.num.__name__, (_Pow, base.num), {"__slots__": ()})
        for k in ("one", "zero", "pi", "inf"):
            c = getattr(base, k)
            setattr(ns, k, ns.num(c.v, c.e))
        return ns


NET_BOUND = {dtype: NetBoundNS.of(bound_system(dtype)) for dtype in DTYPES}
REFIMPL_SYSTEMS = {"float64": FLOAT64, "float32": FLOAT32}


# --- the error of an optimizer step, bounded as one function ---------------------------------------------
#
# Bounded arithmetic forgets correlations: in Adam's m / (sqrt(v) + eps) both m and v are made from
# the same g, and |∂/∂m|·e_m + |∂/∂v|·e_v overstates the step's sensitivity to g by a factor of about
# 2|g|/eps (at step 1 the update is lr·g/(|g| + eps), whose derivative is lr·eps/(|g| + eps)²). One
# gradient with a large relative error — a sum that cancels — then makes every later bound useless.
# So an update is bounded as a whole: its signed first-order sensitivity to each of its inputs
# (parameter, gradient, optimizer state) comes from running refimpl.optim's own ``update`` on dual
# numbers, and its own rounding from running it in BoundNS on error-free inputs. Where the update is
# not linear within the gradient's error (Adam's near-sign update when g is inside its own rounding
# noise) no first-order bound is honest: that is a branch the rounding decides, flagged like a kink.

class Dual:
    """A value and its partial derivatives (a tuple; ``()`` means all zero) — forward mode."""

    __slots__ = ("d", "v")

    def __init__(self, v: float, d: tuple[float, ...] = ()) -> None:
        self.v = v
        self.d = d

    def __float__(self) -> float:
        return float(self.v)

    def __repr__(self) -> str:
        return f"Dual({self.v!r}, {self.d!r})"

    @staticmethod
    def lift(x: Any) -> Dual:
        return x if isinstance(x, Dual) else Dual(float(x))

    @staticmethod
    def comb(a: tuple[float, ...], ca: float, b: tuple[float, ...], cb: float) -> tuple[float, ...]:
        """ca·a + cb·b for partial vectors (an empty one is zero; 0·inf is 0)."""
        if not a:
            return tuple(_mul_0(cb, y) for y in b)
        if not b:
            return tuple(_mul_0(ca, x) for x in a)
        return tuple(_mul_0(ca, x) + _mul_0(cb, y) for x, y in zip(a, b))

    def __add__(self, o: Any) -> Dual:
        o = Dual.lift(o)
        return Dual(self.v + o.v, Dual.comb(self.d, 1.0, o.d, 1.0))

    __radd__ = __add__

    def __sub__(self, o: Any) -> Dual:
        o = Dual.lift(o)
        return Dual(self.v - o.v, Dual.comb(self.d, 1.0, o.d, -1.0))

    def __rsub__(self, o: Any) -> Dual:
        return Dual.lift(o) - self

    def __mul__(self, o: Any) -> Dual:
        o = Dual.lift(o)
        return Dual(self.v * o.v, Dual.comb(self.d, o.v, o.d, self.v))

    __rmul__ = __mul__

    def __truediv__(self, o: Any) -> Dual:
        o = Dual.lift(o)
        q = FloatNS.div(self.v, o.v)
        if not (self.d or o.d):
            return Dual(q)
        inv = FloatNS.div(1.0, o.v)
        return Dual(q, Dual.comb(self.d, inv, o.d, -q * inv if math.isfinite(q * inv) else math.inf))

    def __rtruediv__(self, o: Any) -> Dual:
        return Dual.lift(o) / self

    def __neg__(self) -> Dual:
        return Dual(-self.v, tuple(-x for x in self.d))

    def __abs__(self) -> Dual:
        return -self if self.v < 0 else self

    def __pow__(self, o: Any) -> Dual:
        o = Dual.lift(o)
        v = FloatNS.pow(self.v, o.v)
        if not (self.d or o.d):
            return Dual(v)
        da = o.v * FloatNS.pow(self.v, o.v - 1) if self.d else 0.0
        db = v * FloatNS.log(self.v) if o.d else 0.0
        return Dual(v, Dual.comb(self.d, da, o.d, db))

    def __rpow__(self, o: Any) -> Dual:
        return Dual.lift(o) ** self

    def __lt__(self, o: Any) -> bool:
        return self.v < float(o)

    def __le__(self, o: Any) -> bool:
        return self.v <= float(o)

    def __gt__(self, o: Any) -> bool:
        return self.v > float(o)

    def __ge__(self, o: Any) -> bool:
        return self.v >= float(o)

    def __eq__(self, o: Any) -> bool:
        return isinstance(o, (Dual, int, float)) and self.v == float(o)

    __hash__ = None  # type: ignore[assignment]


def _mul_0(c: float, x: float) -> float:
    return 0.0 if c == 0.0 or x == 0.0 else c * x


class DualNS:
    """The number-system interface :mod:`refimpl.optim`'s kernels use, over :class:`Dual`."""

    name = "dual"
    rounds = False
    zero, one = Dual(0.0), Dual(1.0)
    pi, inf = Dual(math.pi), Dual(math.inf)

    @staticmethod
    def convert(x: Any) -> Dual:
        return Dual.lift(x)

    @staticmethod
    def round(x: Any) -> Any:
        return x

    @staticmethod
    def val(x: Any) -> float:
        return x.v if isinstance(x, Dual) else x

    @staticmethod
    def div(a: Any, b: Any) -> Dual:
        return Dual.lift(a) / Dual.lift(b)

    @staticmethod
    def sqrt(x: Any) -> Dual:
        x = Dual.lift(x)
        v = FloatNS.sqrt(x.v)
        if not x.d:
            return Dual(v)
        return Dual(v, tuple(_mul_0(FloatNS.div(0.5, v), dx) for dx in x.d))


DUAL = DualNS()
LINEAR_SPREAD = 2.0  # an update is "linear" if its slope in g varies by less than this over g ± 2·e_g
# the normalized updates bend on the scale |g| + eps (or wider, once the state has history): a
# gradient known far better than that needs no probe
PROBE_BELOW = 2.0**-12


def _unit(i: int, n: int) -> tuple[float, ...]:
    return tuple(1.0 if j == i else 0.0 for j in range(n))


def bounded_step(opt: roptim.Optimizer, ns: NetBoundNS, on_nonlinear: Any = None, floor: float = TINY) -> None:
    """``opt.step()`` for parameters holding :class:`Bounded` numbers, each update bounded as a whole
    (see above). ``on_nonlinear(param_index, g)`` is called where the first-order bound cannot hold."""
    if isinstance(opt, roptim.SGD):  # linear in every input: elementwise bounds lose nothing
        opt.step()
        return
    kb = opt.kernels(ns)
    kd = roptim.Kernels(DUAL, contract_fma=False)
    for index, p in enumerate(opt.params):
        if p.grad is None:
            continue
        theta, g = ns.convert(p.data), ns.convert(p.grad)
        state = opt.state.get(p)
        if state is None:
            state = opt.state[p] = {}
            opt.init_state(kb, state)
        keys = [k for k, v in state.items() if isinstance(v, Bounded) and v.e > 0]
        inputs = [theta, g] + [state[k] for k in keys]
        # rounding of this update alone: error-free inputs
        s0 = {k: (ns.num(v.v) if isinstance(v, Bounded) else v) for k, v in state.items()}
        new0 = opt.update(kb, ns.num(theta.v), ns.num(g.v), s0)
        # signed sensitivities to every inexact input
        n = len(inputs)
        sd = {k: (Dual(v.v) if isinstance(v, Bounded) else v) for k, v in state.items()}
        for j, k in enumerate(keys):
            sd[k] = Dual(state[k].v, _unit(2 + j, n))
        newd = opt.update(kd, Dual(theta.v, _unit(0, n)), Dual(g.v, _unit(1, n)), sd)

        p.data = ns.num(new0.v, _spread(newd, inputs) + new0.e)
        for k, v in s0.items():
            if isinstance(v, Bounded):
                s0[k] = ns.num(v.v, _spread(sd[k], inputs) + v.e)
        opt.state[p] = s0
        if (on_nonlinear is not None and g.e > floor
                and g.e > PROBE_BELOW * (abs(g.v) + getattr(opt, "eps", 0.0))
                and not _linear_in_g(opt, kd, theta, g, state)):
            on_nonlinear(index, g)


def _spread(x: Any, inputs: list[Bounded]) -> float:
    """Σ |∂x/∂input| · error(input): the first-order error ``x`` inherits from its inputs."""
    return sum(_mul_0(abs(d), e.e) for d, e in zip(x.d, inputs)) if isinstance(x, Dual) else 0.0


def _linear_in_g(opt: roptim.Optimizer, kd: Any, theta: Bounded, g: Bounded, state: dict[str, Any]) -> bool:
    """Whether the update's slope in g stays within a factor LINEAR_SPREAD over g ± 2·e_g."""

    def slope(x: float) -> float:
        s = {k: (Dual(v.v) if isinstance(v, Bounded) else v) for k, v in state.items()}
        out = opt.update(kd, Dual(theta.v), Dual(x, (1.0,)), s)
        return abs(out.d[0]) if out.d else 0.0

    mid = slope(g.v)
    for x in (g.v - 2 * g.e, g.v + 2 * g.e):
        edge = slope(x)
        lo, hi = min(mid, edge), max(mid, edge)
        if not math.isfinite(hi) or hi > LINEAR_SPREAD * lo:
            return False
    return True


# --- running it in refimpl ----------------------------------------------------------------------------

def _cast(dtype: str) -> Any:
    """Inputs as the dtype holds them (float32 rounds; the case normally holds float32 values already)."""
    return round_to_float32 if dtype == "float32" else float


def _nested(t: Tensor, cast: Any) -> Any:
    vals = [cast(v) for v in t.values]
    if len(t.shape) == 1:
        return vals
    rows, cols = t.shape
    return [vals[r * cols:(r + 1) * cols] for r in range(rows)]


class RefTrainer:
    """A training run of a network case in refimpl, in the number system ``system``.

    Each piece is a method, so a planted bug is a subclass overriding one of them
    (``tests/test_networks_meta.py``). With ``watch=True`` (for ``BoundNS`` runs) it records every
    branch decision that lies within ``2·tol`` of a kink: :attr:`near_kinks`.
    """

    def __init__(self, case: NetworkCase, system: Any = None, *, watch: bool = False) -> None:
        self.case = case
        self.system = system if system is not None else REFIMPL_SYSTEMS[case.dtype]
        self.cast = _cast(case.dtype)
        self.watch = watch
        self.near_kinks: list[tuple[int, str]] = []  # (step, what): branch decisions near a kink
        self.step_number = 0

    # the pieces --------------------------------------------------------------------------------
    def model(self) -> MLP:
        c, cast = self.case, self.cast
        return MLP(c.sizes, [(la.activation, la.attrs) for la in c.layers],
                   [_nested(la.weight, cast) for la in c.layers],
                   [None if la.bias is None else _nested(la.bias, cast) for la in c.layers],
                   system=self.system)

    def forward(self, mlp: MLP, x: RTensor) -> RTensor:
        h = x
        for i, (layer, (name, attrs)) in enumerate(zip(mlp.layers, mlp.activations)):
            h = layer(h)
            if name != "identity":
                self._watch_activation(i, name, attrs, h)
                h = h.apply(name, **attrs)
        if self.case.head == "log_softmax":
            h = h.log_softmax(1)
        return h

    def loss(self, out: RTensor, batch: Batch) -> RTensor:
        c, s = self.case, self.system
        kw: dict[str, Any] = {"reduction": c.reduction}
        for k, v in c.loss_attrs.items():
            if v is None:
                continue
            kw[k] = as_tensor(_nested(v, self.cast), s) if k in TENSOR_ATTRS else v
        if c.loss in CLASS_LOSSES:
            target: Any = [int(v) for v in batch.y.values]
        else:
            target = as_tensor(_nested(batch.y, self.cast), s)
            self._watch_loss(out, target)
        return LOSSES[c.loss](out, target, **kw)

    def backward(self, loss: RTensor) -> None:
        if loss.shape == ():
            loss.backward()
        else:  # reduction='none': the gradient of loss.sum()
            loss.backward(as_tensor([1.0] * loss.numel(), self.system).reshape(loss.shape))

    def optimizer(self, params: list[RTensor]) -> roptim.Optimizer:
        return roptim.make(self.case.optimizer, params, **self.case.hyper)

    def zero_grad(self, opt: roptim.Optimizer) -> None:
        opt.zero_grad()

    def step(self, opt: roptim.Optimizer) -> None:
        if isinstance(self.system, NetBoundNS):  # error bounds: each update bounded as a whole
            bounded_step(opt, self.system, self._nonlinear if self.watch else None, tiny(self.case.dtype))
        else:
            opt.step()

    def after_backward(self, params: dict[str, RTensor]) -> None:
        """A hook between backward and the optimizer step (planted gradient bugs live here)."""

    # the run -----------------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        """Per step: ``{"loss": [...], "grads": {name: [...]}, "params": {name: [...]}}``, numbers of
        the system (floats, Bounded, mpf)."""
        mlp = self.model()
        names = self.case.param_names
        tensors = mlp.parameters()
        params = dict(zip(names, tensors))
        opt = self.optimizer(tensors)
        steps = []
        for t, batch in enumerate(self.case.batches, 1):
            self.step_number = t
            self.zero_grad(opt)
            x = as_tensor(_nested(batch.x, self.cast), self.system)
            loss = self.loss(self.forward(mlp, x), batch)
            self.backward(loss)
            self.after_backward(params)
            grads = {k: [v.grad for v in p.elements] for k, p in params.items()}
            self.step(opt)
            steps.append({"loss": [v.data for v in loss.elements], "grads": grads,
                          "params": {k: [v.data for v in p.elements] for k, p in params.items()}})
            if self.watch:
                self._watch_range(steps[-1])
        return steps

    # kinks -------------------------------------------------------------------------------------
    def _watch_range(self, step: dict[str, Any]) -> None:
        """A run that leaves the dtype's range: past overflow, inf or NaN is the order of operations'
        choice (inf - inf), so it is a branch the rounding decides."""
        limit = OVERFLOW[self.case.dtype]
        values = [*step["loss"], *(x for g in step["grads"].values() for x in g),
                  *(x for p in step["params"].values() for x in p)]
        big = max((abs(float(x)) + float(x.e) for x in values), default=0.0)
        if not big <= limit:  # (NaN too)
            self._near(f"the run leaves {self.case.dtype}'s range (a value of magnitude {big:.3g})")

    def _near(self, note: str) -> None:
        self.near_kinks.append((self.step_number, f"step {self.step_number}: {note}"))

    def _nonlinear(self, index: int, g: Bounded) -> None:
        self._near(f"the {self.case.optimizer} update of scalar parameter #{index} is not linear within "
                   f"its gradient's error ({g.v!r} ± {g.e:.3g}): a branch the rounding decides")

    def _at_kink(self, x: Any, point: float, scale: float = 1.0) -> bool:
        slack = 2 * (SAFETY * float(x.e) + TINY) * scale
        return abs(x.v * scale - point) <= slack

    def _watch_activation(self, i: int, name: str, attrs: dict[str, Any], z: RTensor) -> None:
        if not self.watch:
            return
        spec = OPS[name]
        if not spec.kinks:
            return
        full = spec.attributes(attrs)
        scale = full["beta"] if name == "softplus" else 1.0  # softplus branches on x·beta vs threshold
        points = [p[0] * scale for p in kink_points(spec, full)]
        for j, v in enumerate(z.elements):
            if any(self._at_kink(v.data, p, scale) for p in points):
                self._near(f"layer{i} {name} input [{j}] = {v.data.v!r} ± {v.data.e:.3g} is at a kink")

    def _watch_loss(self, out: RTensor, target: RTensor) -> None:
        if not self.watch:
            return
        if self.case.loss == "bce":
            # two branches near saturation: the -100 floor on the logs (taken at x == 0 or 1 in a
            # float) and torch's backward clamp (x - t) / max(x·(1-x), 1e-12)
            # (a float32 sigmoid rounds to 1 long before float64's does: a few ulps of 1 is saturated)
            limit = max(BCE_CLAMP, 8 * (U32 if self.case.dtype == "float32" else U64))
            for j, o in enumerate(out.elements):
                x = float(o.data)
                if x * (1 - x) <= limit:
                    self._near(f"bce input [{j}] = {x!r} is saturated "
                               f"(x·(1-x) <= {limit:.3g}: log floor / torch's backward clamp)")
            return
        if self.case.loss not in ("l1", "smooth_l1", "huber"):
            return
        a = self.case.loss_attrs
        point = {"l1": 0.0, "smooth_l1": a.get("beta", 1.0), "huber": a.get("delta", 1.0)}[self.case.loss]
        for j, (o, y) in enumerate(zip(out.elements, target.elements)):
            d = abs(o.data - y.data)
            if self._at_kink(d, point):
                self._near(f"{self.case.loss} |input - target| [{j}] = {d.v!r} ± {d.e:.3g} is at its "
                           f"branch point {point}")


def result_of(case: NetworkCase, steps: list[dict[str, Any]]) -> NetworkResult:
    """A :class:`NetworkResult` from the raw steps of :meth:`RefTrainer.run`."""
    shapes = {}
    for i, la in enumerate(case.layers):
        shapes[f"layer{i}.weight"] = la.weight.shape
        if la.bias is not None:
            shapes[f"layer{i}.bias"] = la.bias.shape
    out = NetworkResult()
    for t, s in enumerate(steps):
        n = case.batches[t].x.shape[0]
        loss_shape = () if case.reduction != "none" else ((n,) if case.loss in CLASS_LOSSES else (n, case.sizes[-1]))
        out.steps.append(StepResult(
            Tensor(loss_shape, tuple(float(v) for v in s["loss"])),
            {k: Tensor(shapes[k], tuple(float(v) for v in g)) for k, g in s["grads"].items()},
            {k: Tensor(shapes[k], tuple(float(v) for v in p)) for k, p in s["params"].items()}))
    return out


def run_refimpl_network(case: NetworkCase, system: Any = None) -> NetworkResult:
    """The training run in refimpl: float64 / float32 emulation by the case's dtype, or ``system``."""
    return result_of(case, RefTrainer(case, system).run())


# --- running it in torch ------------------------------------------------------------------------------

def _torch_parts() -> tuple[Any, Any, dict[str, Any]]:
    import torch
    import torch.nn.functional as F

    optims = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
              "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}
    return torch, F, optims


TORCH_LOSSES = {"mse": "mse_loss", "l1": "l1_loss", "smooth_l1": "smooth_l1_loss", "huber": "huber_loss",
                "bce": "binary_cross_entropy", "bce_with_logits": "binary_cross_entropy_with_logits",
                "cross_entropy": "cross_entropy", "nll": "nll_loss"}


def run_torch_network(case: NetworkCase) -> NetworkResult:
    """The training run in torch: functional linear layers, torch.nn.functional, torch.optim (foreach=False)."""
    torch, F, optims = _torch_parts()
    from .oracle import resolve

    dt = {"float64": torch.float64, "float32": torch.float32}[case.dtype]

    def tensor(t: Tensor) -> Any:
        return torch.tensor(list(t.values), dtype=dt).reshape(t.shape)

    names = case.param_names
    params = []
    for la in case.layers:
        params.append(tensor(la.weight).requires_grad_())
        if la.bias is not None:
            params.append(tensor(la.bias).requires_grad_())
    by_name = dict(zip(names, params))
    hyper = dict(case.hyper)
    opt = optims[case.optimizer](params, foreach=False, **hyper)
    kw: dict[str, Any] = {"reduction": case.reduction}
    for k, v in case.loss_attrs.items():
        kw[k] = (None if v is None else tensor(v)) if k in TENSOR_ATTRS else v
    loss_fn = getattr(F, TORCH_LOSSES[case.loss])
    result = NetworkResult()
    for batch in case.batches:
        opt.zero_grad()
        h = tensor(batch.x)
        for i, la in enumerate(case.layers):
            h = F.linear(h, by_name[f"layer{i}.weight"], by_name.get(f"layer{i}.bias"))
            if la.activation != "identity":
                h = resolve(OPS[la.activation].torch)(h, **la.attrs)
        if case.head == "log_softmax":
            h = F.log_softmax(h, dim=1)
        if case.loss in CLASS_LOSSES:
            y = torch.tensor([int(v) for v in batch.y.values], dtype=torch.long)
        else:
            y = tensor(batch.y)
        loss = loss_fn(h, y, **kw)
        loss.backward(torch.ones_like(loss))
        grads = {k: _from_torch(p.grad) for k, p in by_name.items()}
        opt.step()
        result.steps.append(StepResult(_from_torch(loss.detach()), grads,
                                       {k: _from_torch(p.detach()) for k, p in by_name.items()}))
    return result


def _from_torch(t: Any) -> Tensor:
    return Tensor(tuple(t.shape), tuple(float(v) for v in t.reshape(-1).tolist()))


# --- verdicts -----------------------------------------------------------------------------------------

def _index(shape: tuple[int, ...], i: int) -> str:
    if len(shape) == 2:
        return f"[{i // shape[1]},{i % shape[1]}]"
    return "" if not shape else f"[{i}]"


def entries(case: NetworkCase, steps: list[Any]) -> dict[str, Any]:
    """Every entry of a run by name — ``loss@t``, ``loss[i]@t``, ``grad[p][r,c]@t``, ``param[p][i]@t``
    (steps counted from 1) — from a :class:`NetworkResult`'s steps or a raw :meth:`RefTrainer.run`."""
    out: dict[str, Any] = {}
    shapes = {}
    for i, la in enumerate(case.layers):
        shapes[f"layer{i}.weight"] = la.weight.shape
        if la.bias is not None:
            shapes[f"layer{i}.bias"] = la.bias.shape
    for t, s in enumerate(steps, 1):
        if isinstance(s, StepResult):
            loss, grads, params = list(s.loss.values), {k: v.values for k, v in s.grads.items()}, \
                {k: v.values for k, v in s.params.items()}
        else:
            loss, grads, params = s["loss"], s["grads"], s["params"]
        if case.reduction != "none":
            out[f"loss@{t}"] = loss[0] if len(loss) == 1 else math.nan
        else:
            for i, v in enumerate(loss):
                out[f"loss[{i}]@{t}"] = v
        for kind, table in (("grad", grads), ("param", params)):
            for name, values in table.items():
                shape = shapes.get(name, ())
                for i, v in enumerate(values):
                    out[f"{kind}[{name}]{_index(shape, i)}@{t}"] = v
    return out


@dataclass
class NetworkVerdict(CaseVerdict):
    """A graph case's verdict (entries, worst, reason), for a training run, with the kinks it passed near."""

    near_kinks: list[str] = field(default_factory=list)


def tiny(dtype: str) -> float:
    """The floor of a tolerance: a few subnormals of the dtype (the bound does not model underflow)."""
    return TINY32 if dtype == "float32" else TINY


def bounds(case: NetworkCase) -> tuple[dict[str, Bounded], list[tuple[int, str]]]:
    """Every entry's running error bound over the whole run, and the branch decisions near a kink
    (``(step, what)``)."""
    trainer = RefTrainer(case, NET_BOUND[case.dtype], watch=True)
    return entries(case, trainer.run()), trainer.near_kinks


def truth(case: NetworkCase, dps: int = 50) -> dict[str, float]:
    """refimpl's training run at ``dps`` digits (shares refimpl's code: see the module doc)."""
    return {k: float(v) for k, v in entries(case, RefTrainer(case, mpmath_system(dps)).run()).items()}


def tolerances(case: NetworkCase) -> dict[str, float]:
    """``SAFETY × bound + tiny`` for every entry."""
    b, _ = bounds(case)
    floor = tiny(case.dtype)
    return {k: SAFETY * float(v.e) + floor for k, v in b.items()}


# --- anchored entries: each step judged from the implementation's own previous step ------------------------
#
# The bound of a free-running comparison grows with the run: honestly (errors of step t are inputs
# of step t + 1) but loosely — running error analysis adds |contributions| over every path, and a
# parameter's error reaches the next step's gradients through every sample of the batch and through
# the forward and the backward pass, with signs that cancel in reality. Measured over random runs the
# bound grows ~1-100x per step while the actual discrepancy stays flat. So every step is also judged
# *anchored*: the loss and gradients of step t as torch computes them from the implementation's own
# parameters after step t - 1, and the parameters after step t as torch's optimizer makes them from
# the implementation's own parameters and gradients (its state fed with the implementation's run).
# Each anchored entry has a one-step tolerance (optimizer state errors propagate elementwise only),
# so a bug shows at the step it happens however loose the free-running bound has become.

ANCHOR = "anchored:"


def initial_params(case: NetworkCase) -> dict[str, Tensor]:
    out = {}
    for i, la in enumerate(case.layers):
        out[f"layer{i}.weight"] = la.weight
        if la.bias is not None:
            out[f"layer{i}.bias"] = la.bias
    return out


def _params_before(case: NetworkCase, steps: list[StepResult], t: int) -> dict[str, Tensor]:
    return initial_params(case) if t == 1 else steps[t - 2].params


def one_step_case(case: NetworkCase, params: dict[str, Tensor], t: int) -> NetworkCase:
    """Step ``t`` of ``case`` on its own, starting from ``params``."""
    layers = tuple(replace(la, weight=params[f"layer{i}.weight"],
                           bias=None if la.bias is None else params[f"layer{i}.bias"])
                   for i, la in enumerate(case.layers))
    return replace(case, layers=layers, batches=(case.batches[t - 1],), id=f"{case.id}@step{t}")


def replay(case: NetworkCase, steps: list[StepResult], system: Any = None,
           near: list[tuple[int, str]] | None = None) -> list[dict[str, list[Any]]]:
    """refimpl's optimizer fed with an implementation's run: before step t every parameter is set to
    the implementation's value after step t - 1 and its gradient to the implementation's of step t.
    Returns the parameters after every step (numbers of ``system``)."""
    system = system if system is not None else REFIMPL_SYSTEMS[case.dtype]
    start = initial_params(case)
    names = list(start)
    tensors = [RTensor.from_flat(list(start[k].values), start[k].shape, system) for k in names]
    opt = roptim.make(case.optimizer, tensors, **case.hyper)
    out = []
    for t, s in enumerate(steps, 1):
        before = _params_before(case, steps, t)
        for k, tensor in zip(names, tensors):
            for v, x, g in zip(tensor.elements, before[k].values, s.grads[k].values):
                v.data, v.grad = system.convert(x), system.convert(g)
        if isinstance(system, NetBoundNS):
            step_near: Any = None if near is None else (lambda i, g, t=t: near.append((
                t, f"step {t}: the replayed {case.optimizer} update of scalar parameter #{i} is not "
                   f"linear within its gradient's error")))
            bounded_step(opt, system, step_near, tiny(case.dtype))
        else:
            opt.step()
        out.append({k: [v.data for v in tensor.elements] for k, tensor in zip(names, tensors)})
    return out


def replay_torch(case: NetworkCase, steps: list[StepResult]) -> list[dict[str, list[float]]]:
    """:func:`replay` with torch's optimizer (``foreach=False``)."""
    torch, _, optims = _torch_parts()
    dt = {"float64": torch.float64, "float32": torch.float32}[case.dtype]
    start = initial_params(case)
    names = list(start)
    params = [torch.tensor(list(start[k].values), dtype=dt).reshape(start[k].shape).requires_grad_()
              for k in names]
    opt = optims[case.optimizer](params, foreach=False, **case.hyper)
    out = []
    for t, s in enumerate(steps, 1):
        before = _params_before(case, steps, t)
        with torch.no_grad():
            for k, p in zip(names, params):
                p.copy_(torch.tensor(list(before[k].values), dtype=dt).reshape(p.shape))
                p.grad = torch.tensor(list(s.grads[k].values), dtype=dt).reshape(p.shape)
        opt.step()
        out.append({k: [float(x) for x in p.detach().reshape(-1).tolist()] for k, p in zip(names, params)})
    return out


def _as_steps(params_per_step: list[dict[str, list[Any]]]) -> list[dict[str, Any]]:
    return [{"loss": [], "grads": {}, "params": ps} for ps in params_per_step]


class Anchored:
    """The anchored entries of an implementation's run (named ``anchored:…``): torch's values, their
    bounds, the branch decisions near a kink and, on demand, the truth."""

    def __init__(self, case: NetworkCase, impl_steps: list[StepResult]) -> None:
        self.case, self.steps = case, impl_steps
        self.one = {t: one_step_case(case, _params_before(case, impl_steps, t), t)
                    for t in range(2, case.steps + 1)}
        self._truth: dict[str, float] | None = None

    def _rename(self, t: int, found: dict[str, Any]) -> dict[str, Any]:
        return {ANCHOR + k[:-2] + f"@{t}": v for k, v in found.items()
                if k.endswith("@1") and not k.startswith("param")}

    def _params(self, steps: list[dict[str, Any]]) -> dict[str, Any]:
        found = entries(self.case, steps)
        return {ANCHOR + k: v for k, v in found.items() if k.startswith("param")}

    def torch(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for t, one in self.one.items():
            out.update(self._rename(t, entries(one, run_torch_network(one).steps)))
        out.update(self._params(_as_steps(replay_torch(self.case, self.steps))))
        return out

    def bounds(self) -> tuple[dict[str, Bounded], list[tuple[int, str]]]:
        out: dict[str, Bounded] = {}
        near: list[tuple[int, str]] = []
        for t, one in self.one.items():
            trainer = RefTrainer(one, NET_BOUND[self.case.dtype], watch=True)
            out.update(self._rename(t, entries(one, trainer.run())))
            near += [(t, f"step {t} (anchored): {note.split(': ', 1)[1]}") for _, note in trainer.near_kinks]
        out.update(self._params(_as_steps(replay(self.case, self.steps, NET_BOUND[self.case.dtype], near))))
        return out, near

    def truth(self, dps: int = 50) -> dict[str, float]:
        if self._truth is None:
            mp = mpmath_system(dps)
            out: dict[str, float] = {}
            for t, one in self.one.items():
                out.update({k: float(v) for k, v in self._rename(t, entries(one, RefTrainer(one, mp).run())).items()})
            out.update({k: float(v) for k, v in self._params(_as_steps(replay(self.case, self.steps, mp))).items()})
            self._truth = out
        return self._truth


def _step_of(name: str) -> int:
    return int(name.rsplit("@", 1)[1])


def _shape_problem(case: NetworkCase, r: NetworkResult) -> str | None:
    """Why a result cannot be judged (wrong number of steps, a missing or misshapen tensor), or None."""
    if len(r.steps) != case.steps:
        return f"the result has {len(r.steps)} steps, the case {case.steps}"
    want = {k: t.shape for k, t in initial_params(case).items()}
    for t, s in enumerate(r.steps, 1):
        for kind, table in (("gradient", s.grads), ("parameter", s.params)):
            for k, shape in want.items():
                if k not in table:
                    return f"step {t}: no {kind} for {k}"
                if len(table[k].values) != math.prod(shape):
                    return f"step {t}: the {kind} of {k} has {len(table[k].values)} values, expected {math.prod(shape)}"
        n = 1 if case.reduction != "none" else len(case.batches[t - 1].x.values) // case.sizes[0] * (
            1 if case.loss in CLASS_LOSSES else case.sizes[-1])
        if len(s.loss.values) != n:
            return f"step {t}: the loss has {len(s.loss.values)} values, expected {n}"
    return None


def judge_network(case: NetworkCase, impl: NetworkResult, torch_result: NetworkResult, *,
                  anchored: bool = True) -> NetworkVerdict:
    """The verdict on one training run: every entry — free-running and anchored — then the worst."""
    if impl.error is not None:  # "timeout: …" from a worker process (adapters/jsonl.py) is its own verdict
        return NetworkVerdict(case, "timeout" if impl.error.startswith("timeout: ") else "error", reason=impl.error)
    if torch_result.error is not None:
        return NetworkVerdict(case, "error", reason=f"torch failed on this case: {torch_result.error}")
    problem = _shape_problem(case, impl)
    if problem:
        return NetworkVerdict(case, "error", reason=f"unusable result: {problem}")
    got, want = entries(case, impl.steps), entries(case, torch_result.steps)
    if all(within(got[k], t, 0.0) for k, t in want.items()):  # bit for bit (the torch self-check)
        return NetworkVerdict(case, "pass", [Entry(k, got[k], t, math.inf, "pass") for k, t in want.items()])
    bound, near = bounds(case)
    true: dict[str, float] | None = None
    anchor = Anchored(case, impl.steps) if anchored else None
    a_near: list[tuple[int, str]] = []
    if anchor is not None:
        a_want = anchor.torch()
        a_bound, a_near = anchor.bounds()
        want.update(a_want)
        bound.update(a_bound)
        got.update({k: got[k[len(ANCHOR):]] for k in a_want})

    def excuse(name: str) -> str | None:
        """The kink that may explain a disagreement at this entry: for a free-running entry any kink
        up to its step (its effect carries on), for an anchored one a kink in that very step."""
        t = _step_of(name)
        if name.startswith(ANCHOR):
            return next((note for s, note in a_near if s == t), None)
        return next((note for s, note in near if s <= t), None)

    floor = tiny(case.dtype)
    result = []
    first_excuse = None
    for name in sorted(want, key=lambda k: (_step_of(k), k.startswith(ANCHOR))):  # stable: step by step
        x, t = got[name], want[name]
        tol = SAFETY * float(bound[name].e) + floor
        if within(x, t, 2 * tol):
            result.append(Entry(name, x, t, tol, "pass"))
            continue
        if name.startswith(ANCHOR):
            tr = anchor.truth()[name]  # type: ignore[union-attr]
        else:
            if true is None:
                true = truth(case)
            tr = true[name]
        verdict, kink = arbitrate(x, t, tr, tol, lambda name=name: excuse(name))
        if kink:
            first_excuse = first_excuse or kink
        result.append(Entry(name, x, t, tol, verdict, truth=tr))
    worst = min((e.verdict for e in result), key=ORDER.index, default="pass")
    reason = ""
    if worst != "pass":
        bad = [e for e in result if e.verdict == worst]
        reason = f"{len(bad)} of {len(result)} entries {worst}; the first: {bad[0].describe()}"
        if worst == "convention":
            reason += f"\n  near a kink: {first_excuse}"
    notes = [note for _, note in near] + [note for _, note in a_near]
    return NetworkVerdict(case, worst, result, reason=reason, near_kinks=notes)


# --- a standalone torch script --------------------------------------------------------------------------

def _lit(x: float) -> str:
    return repr(float(x)) if math.isfinite(x) else f"float({number_to_json(x)!r})"


def _list_lit(t: Tensor, integer: bool = False) -> str:
    vals = [str(int(v)) if integer else _lit(v) for v in t.values]
    if len(t.shape) == 2:
        c = t.shape[1]
        return "[" + ", ".join("[" + ", ".join(vals[r * c:(r + 1) * c]) + "]" for r in range(t.shape[0])) + "]"
    return "[" + ", ".join(vals) + "]"


def torch_script(case: NetworkCase) -> str:
    """A pasteable script that runs the case in torch and prints every entry (no project needed)."""
    dt = f"torch.{case.dtype}"
    names = case.param_names
    lines = ["import torch", "import torch.nn.functional as F", "", f"dt = {dt}", "# parameters (torch order)"]
    var = {}
    for i, la in enumerate(case.layers):
        var[f"layer{i}.weight"] = f"W{i}"
        lines.append(f"W{i} = torch.tensor({_list_lit(la.weight)}, dtype=dt, requires_grad=True)")
        if la.bias is not None:
            var[f"layer{i}.bias"] = f"b{i}"
            lines.append(f"b{i} = torch.tensor({_list_lit(la.bias)}, dtype=dt, requires_grad=True)")
    lines.append(f"params = {{{', '.join(f'{n!r}: {var[n]}' for n in names)}}}")
    lines.append("batches = [")
    for b in case.batches:
        if case.loss in CLASS_LOSSES:
            y = f"torch.tensor({_list_lit(b.y, integer=True)})"
        else:
            y = f"torch.tensor({_list_lit(b.y)}, dtype=dt)"
        lines.append(f"    (torch.tensor({_list_lit(b.x)}, dtype=dt), {y}),")
    lines.append("]")
    hyper = ", ".join(f"{k}={tuple(v) if k == 'betas' else v!r}" for k, v in case.hyper.items())
    cls = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
    lines.append(f"opt = torch.optim.{cls[case.optimizer]}(list(params.values()), {hyper}, foreach=False)")
    kw = [f"reduction={case.reduction!r}"]
    for k, v in case.loss_attrs.items():
        if k in TENSOR_ATTRS:
            kw.append(f"{k}=None" if v is None else f"{k}=torch.tensor({_list_lit(v)}, dtype=dt)")
        else:
            kw.append(f"{k}={v!r}")
    lines += ["", "for step, (x, y) in enumerate(batches, 1):", "    opt.zero_grad()", "    h = x"]
    for i, la in enumerate(case.layers):
        bias = f"b{i}" if la.bias is not None else "None"
        lines.append(f"    h = F.linear(h, W{i}, {bias})")
        if la.activation != "identity":
            args = "".join(f", {k}={v!r}" for k, v in la.attrs.items())
            lines.append(f"    h = {OPS[la.activation].torch}(h{args})")
    if case.head == "log_softmax":
        lines.append("    h = F.log_softmax(h, dim=1)")
    lines.append(f"    loss = F.{TORCH_LOSSES[case.loss]}(h, y, {', '.join(kw)})")
    if case.reduction == "none":
        lines.append("    loss.backward(torch.ones_like(loss))  # the gradient of loss.sum()")
    else:
        lines.append("    loss.backward()")
    lines.append("    print('step', step, 'loss', loss.detach().reshape(-1).tolist())")
    lines.append("    for name, p in params.items():")
    lines.append("        print('step', step, 'grad', name, p.grad.reshape(-1).tolist())")
    lines.append("    opt.step()")
    lines.append("    for name, p in params.items():")
    lines.append("        print('step', step, 'param', name, p.detach().reshape(-1).tolist())")
    return "\n".join(lines) + "\n"
