"""Network cases as data: the case and result types of a short training run, their validation and JSON.

The vocabulary of the network kind, kept apart from how a case is run and judged (:mod:`netrun`,
:mod:`netbounds`, :mod:`netverdict`) so that what reads and writes cases — the strategies, the
adapters, the records, the report — needs none of that. A *network case* is everything a training
run needs, given explicitly (no hidden randomness):

* optionally *feature layers* first (``features``: a small CNN over ``x`` of shape ``[B, C, H, W]``
  — conv2d, an activation, max or average pooling, batch / group / layer norm —, an LSTM or a
  GRU over ``x`` of shape ``[B, T, I]`` whose last step goes on, or a pre-norm transformer block
  over ``[B, T, D]``, each a kind of
  :data:`conformance.case.layerkinds.LAYER_KINDS`), flattened into the Linear layers;
* an MLP — ``layers[i]`` is a ``torch.nn.Linear(in, out)`` (weight ``[out][in]``, bias ``[out]`` or
  none) followed by one activation, named as in refimpl's op table (``relu``, ``leaky_relu``,
  ``elu``, ``softplus``, ``silu``, ``gelu``, ``tanh``, ``sigmoid``) or ``identity``, with its
  attributes; then a *head*: ``none`` or ``log_softmax`` over the class dim;
* a loss of :data:`refimpl.losses.LOSSES` with its reduction and attributes (``beta`` for
  smooth_l1, ``delta`` for huber, ``weight`` / ``pos_weight`` for the binary losses, ``weight`` /
  ``ignore_index`` / ``label_smoothing`` for the class losses);
* an optimizer of :data:`refimpl.optim.OPTIMIZERS` with *all* its hyperparameters written out — or
  ``none`` (:data:`NO_OPTIMIZER`): a *gradients-only* run, the forward, the loss and the gradients
  for the given parameters and one batch (the contract of a network that has a backward and no
  optimizer yet);
* ``k ≥ 1`` batches ``(x, y)``; step ``t`` is ``zero_grad, forward, loss, backward, step`` on
  batch ``t`` (a gradients-only run has one batch and no step).

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
Parameters are named ``layer{i}.weight`` / ``layer{i}.bias`` in torch's order (a recurrent layer's
as ``torch.nn.LSTM`` names them, ``layer{i}.weight_ih_l0`` …, a transformer block's as
``torch.nn.TransformerEncoderLayer`` does, ``layer{i}.self_attn.in_proj_weight`` …; the feature
layers first, numbered as
``torch.nn.Sequential`` numbers its modules, pools and activations included; then the Linear
layers); a run's *entries*
(:func:`entries`) are ``loss@t`` (``loss[i]@t`` for ``'none'``), ``grad[p][r,c]@t`` and
``param[p][r,c]@t``, steps counted from 1. A gradients-only run has no ``param`` entries: its
result's ``params`` may be empty, and whatever it holds is not judged.

JSON round-trips exactly, as for graph cases (:mod:`conformance.case.graph`); ``conformance/schema/``
holds the JSON Schemas.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from conformance.case.entrykey import EntryKey
from conformance.case.graph import Tensor, number_to_json, tensor_from_json, tensor_to_json
from conformance.case.layerkinds import LAYER_KINDS
from refimpl import OPS
from refimpl.losses import REDUCTIONS

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
    "none": (),
}
assert set(ACTIVATIONS) - {"identity"} == {k for k, v in LAYER_KINDS.items() if v.activation}

#: the "optimizer" of a gradients-only run: no step, one batch, the loss and the gradients judged
NO_OPTIMIZER = "none"


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
class Feature:
    """A feature layer before the Linear layers: a kind of :data:`~conformance.case.layerkinds.LAYER_KINDS`
    (``conv2d``, ``max_pool2d``, ``batch_norm``, ``relu``, …), its attributes as torch's keywords, and
    its parameters by torch's names (``weight``, ``bias``; None: left out)."""

    kind: str
    attrs: dict[str, Any]
    params: dict[str, Tensor | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    x: Tensor  # (batch, in_features); (batch, C, H, W) before a CNN, (batch, T, I) before a recurrent layer
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
    features: tuple[Feature, ...] = ()  # a small CNN or an RNN before the Linear layers (flattened into them)

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.layers[0].in_features, *(la.out_features for la in self.layers))

    @property
    def steps(self) -> int:
        return len(self.batches)

    @property
    def gradients_only(self) -> bool:
        """No optimizer: the loss and the gradients of one batch are the whole run."""
        return self.optimizer == NO_OPTIMIZER

    @property
    def param_names(self) -> list[str]:
        return list(initial_params(self))

    @property
    def n_params(self) -> int:
        return sum(len(t.values) for t in initial_params(self).values())

    @property
    def ops(self) -> frozenset[str]:
        """The layer ops of the tensor-op table its feature layers compute (a mutant of one of them
        can change this case; conformance/impls/zoo/base.py)."""
        return frozenset().union(*(LAYER_KINDS[f.kind].ops for f in self.features if f.kind in LAYER_KINDS))

    def linear_name(self, i: int) -> str:
        """``layer{k}`` of Linear layer ``i``: after the feature layers, counted as torch's Sequential counts."""
        return f"layer{len(self.features) + i}"

    def summary(self) -> str:
        """One line: ``4→3→2 tanh,identity | mse/mean | sgd(...) | 2 steps × batch 3 | float64``."""
        acts = ",".join(la.activation for la in self.layers) + ("+log_softmax" if self.head != "none" else "")
        hyper = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        run = (f"gradients only | batch {self.batches[0].x.shape[0]}" if self.gradients_only else
               f"{self.optimizer}({hyper}) | {self.steps} step(s) × batch {self.batches[0].x.shape[0]}")
        feats = "".join(f"{f.kind}→" for f in self.features)
        if self.features:
            feats = f"{list(self.batches[0].x.shape[1:])} {feats}flatten→"
        return (f"{feats}{'→'.join(map(str, self.sizes))} {acts} | {self.loss}/{self.reduction}"
                f"{' ' + str(_attrs_brief(self.loss_attrs)) if self.loss_attrs else ''} | {run} | "
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
    need(len(case.batches) >= 1, "a training run needs at least one batch")
    x_shape = case.batches[0].x.shape
    need(all(b.x.shape[1:] == x_shape[1:] for b in case.batches), "every batch's x has the same shape per sample")
    if case.features:
        rank = next((LAYER_KINDS[f.kind].rank for f in case.features
                     if f.kind in LAYER_KINDS and LAYER_KINDS[f.kind].rank is not None), None)
        need(rank is None or len(x_shape) == rank + 1,
             f"{case.features[0].kind} takes x of rank {rank and rank + 1} ([batch, C, H, W] for a CNN, "
             f"[batch, T, I] for a recurrent layer), not {list(x_shape)}")
        try:
            flat = math.prod(feature_shapes(case)[-1][2])
        except ValueError as exc:
            raise InvalidCase(str(exc)) from None
        need(case.layers[0].in_features == flat,
             f"{case.linear_name(0)} takes {case.layers[0].in_features} inputs but the feature layers give {flat}")
    for i, la in enumerate(case.layers):
        name = case.linear_name(i)
        need(la.in_features >= 1 and la.out_features >= 1, f"{name}: sizes must be >= 1")
        if i:
            need(la.in_features == case.layers[i - 1].out_features,
                 f"{name} takes {la.in_features} inputs but {case.linear_name(i - 1)} gives "
                 f"{case.layers[i - 1].out_features}")
        need(la.weight.shape == (la.out_features, la.in_features),
             f"{name}.weight has shape {list(la.weight.shape)}, expected [{la.out_features}, {la.in_features}]")
        need(la.bias is None or la.bias.shape == (la.out_features,),
             f"{name}.bias has shape {la.bias and list(la.bias.shape)}, expected [{la.out_features}]")
        need(la.activation in ACTIVATIONS, f"{name}: unknown activation {la.activation!r}; use one of {ACTIVATIONS}")
        _check_activation(name, la.activation, la.attrs)
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
    need(case.optimizer in OPTIMIZER_HYPER,
         f"unknown optimizer {case.optimizer!r}; use one of {tuple(OPTIMIZER_HYPER)}")
    want = set(OPTIMIZER_HYPER[case.optimizer])
    need(set(case.hyper) == want, f"{case.optimizer} needs exactly the hyperparameters {sorted(want)}, "
                                  f"got {sorted(case.hyper)}")
    need(not case.gradients_only or len(case.batches) == 1,
         f"a gradients-only run (optimizer {NO_OPTIMIZER!r}) has one batch, not {len(case.batches)}")
    shapes = feature_shapes(case)
    for t, b in enumerate(case.batches, 1):
        if not case.features:
            need(len(b.x.shape) == 2 and b.x.shape[1] == case.sizes[0] and b.x.shape[0] >= 1,
                 f"batch {t}: x has shape {list(b.x.shape)}, expected [batch, {case.sizes[0]}]")
        for i, (kind, (shape, _, _)) in enumerate(zip(case.features, shapes)):
            problem = LAYER_KINDS[kind.kind].rule(shape, kind.attrs, b.x.shape[0])
            need(problem is None, f"batch {t}: layer{i}: {problem}")
        n = b.x.shape[0]
        if case.loss in CLASS_LOSSES:
            need(b.y.shape == (n,), f"batch {t}: {case.loss} targets have shape [{n}], got {list(b.y.shape)}")
            ignore = case.loss_attrs.get("ignore_index", -100)
            for y in b.y.values:
                need(float(y).is_integer() and (0 <= y < n_out or y == ignore),
                     f"batch {t}: target {y} is not a class index in [0, {n_out}) or ignore_index")
            need(case.reduction != "mean" or any(y != ignore for y in b.y.values),
                 f"batch {t}: every target is ignore_index ({ignore}), and the mean over no target is 0/0")
        else:
            need(b.y.shape == (n, n_out), f"batch {t}: y has shape {list(b.y.shape)}, expected [{n}, {n_out}]")
            if case.loss == "bce":
                need(all(0 <= y <= 1 for y in b.y.values), f"batch {t}: bce targets must lie in [0, 1]")
    return case


def _check_activation(name: str, activation: str, attrs: dict[str, Any]) -> None:
    if activation == "identity":
        if attrs:
            raise InvalidCase(f"{name}: identity takes no attributes")
        return
    try:
        OPS[activation].attributes(attrs)
    except TypeError as exc:
        raise InvalidCase(f"{name}: {exc}") from None


def feature_shapes(case: NetworkCase) -> list[tuple[tuple[int, ...], dict[str, tuple[int, ...]], tuple[int, ...]]]:
    """Per feature layer: its input shape per sample, its parameters' shapes, its output shape —
    from x's shape, each checked against the kind's declaration (:class:`InvalidCase` where a
    parameter has another shape; ValueError where the geometry does not fit)."""
    shape = tuple(case.batches[0].x.shape[1:])
    out = []
    for i, f in enumerate(case.features):
        kind = LAYER_KINDS.get(f.kind)
        if kind is None:
            raise InvalidCase(f"layer{i}: unknown layer kind {f.kind!r}; use one of {tuple(LAYER_KINDS)}")
        if kind.activation:
            _check_activation(f"layer{i}", f.kind, f.attrs)
        if set(f.params) != set(kind.params):
            raise InvalidCase(f"layer{i}: {f.kind} has the parameters {list(kind.params)}, got {sorted(f.params)}")
        for p, t in f.params.items():
            if t is None and p not in kind.optional:
                raise InvalidCase(f"layer{i}.{p} may not be left out")
        like = {p: t.shape for p, t in f.params.items() if t is not None}
        if kind.rank is not None and len(shape) != kind.rank:
            raise InvalidCase(f"layer{i}: {f.kind} takes an input of rank {kind.rank} per sample, not {list(shape)}")
        try:
            want = kind.shapes(shape, f.attrs, like)
            for p, t in f.params.items():
                if t is not None and t.shape != want[p]:
                    raise InvalidCase(f"layer{i}.{p} has shape {list(t.shape)}, expected {list(want[p])}")
            after = kind.out(shape, f.attrs, want)
        except (KeyError, TypeError) as exc:
            raise InvalidCase(f"layer{i}: {f.kind}: bad attributes {f.attrs}: {exc}") from None
        except ValueError as exc:
            if isinstance(exc, InvalidCase):
                raise
            raise InvalidCase(f"layer{i}: {exc}") from None
        out.append((shape, want, after))
        shape = after
    return out


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
    out = {
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
    if case.features:  # (an MLP's JSON, and with it its id, has no such key)
        out["features"] = [{"kind": f.kind, "attrs": dict(f.attrs),
                            "params": {k: _opt_tensor_json(v) for k, v in f.params.items()}} for f in case.features]
    return out


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
        features=tuple(Feature(f["kind"], dict(f.get("attrs", {})),
                               {k: _opt_tensor(v) for k, v in f.get("params", {}).items()})
                       for f in d.get("features", [])),
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


# --- the entries of a run ---------------------------------------------------------------------------

def _index(shape: tuple[int, ...], i: int) -> tuple[int, ...]:
    """A parameter's flat position as the entry names it: (row, column) in a matrix, every index in
    a convolution's weight."""
    out = []
    for size in reversed(shape):
        i, r = divmod(i, size)
        out.append(r)
    return tuple(reversed(out))


def entries(case: NetworkCase, steps: list[Any]) -> dict[str, Any]:
    """Every entry of a run by name — ``loss@t``, ``loss[i]@t``, ``grad[p][r,c]@t``, ``param[p][i]@t``
    (steps counted from 1) — from a :class:`NetworkResult`'s steps or the raw steps of a run in refimpl
    (:meth:`conformance.oracle.netrun.RefTrainer.run`: numbers of any system)."""
    out: dict[str, Any] = {}
    shapes = {k: v.shape for k, v in initial_params(case).items()}
    for t, s in enumerate(steps, 1):
        if isinstance(s, StepResult):
            loss, grads, params = list(s.loss.values), {k: v.values for k, v in s.grads.items()}, \
                {k: v.values for k, v in s.params.items()}
        else:
            loss, grads, params = s["loss"], s["grads"], s["params"]
        if case.reduction != "none":
            out[str(EntryKey("loss", step=t))] = loss[0] if len(loss) == 1 else math.nan
        else:
            for i, v in enumerate(loss):
                out[str(EntryKey("loss", index=(i,), step=t))] = v
        for quantity, table in (("grad", grads), ("param", {} if case.gradients_only else params)):
            for name, values in table.items():
                shape = shapes.get(name, ())
                for i, v in enumerate(values):
                    out[str(EntryKey(quantity, name, _index(shape, i), t))] = v
    return out


def initial_params(case: NetworkCase) -> dict[str, Tensor]:
    """Every parameter before the first step, by name in torch's order (``layer0.weight``,
    ``layer0.bias``, …): the feature layers' (numbered as torch's Sequential numbers its modules),
    then the Linear layers'."""
    out = {}
    for i, f in enumerate(case.features):
        for p, t in f.params.items():
            if t is not None:
                out[f"layer{i}.{p}"] = t
    for i, la in enumerate(case.layers):
        out[f"{case.linear_name(i)}.weight"] = la.weight
        if la.bias is not None:
            out[f"{case.linear_name(i)}.bias"] = la.bias
    return out


def with_params(case: NetworkCase, params: dict[str, Tensor]) -> NetworkCase:
    """The case with its parameters replaced by ``params`` (by name; a parameter left out stays out)."""
    feats = tuple(replace(f, params={p: None if t is None else params[f"layer{i}.{p}"] for p, t in f.params.items()})
                  for i, f in enumerate(case.features))
    layers = tuple(replace(la, weight=params[f"{case.linear_name(i)}.weight"],
                           bias=None if la.bias is None else params[f"{case.linear_name(i)}.bias"])
                   for i, la in enumerate(case.layers))
    return replace(case, features=feats, layers=layers)


def params_before(case: NetworkCase, steps: list[StepResult], t: int) -> dict[str, Tensor]:
    """The parameters step ``t`` (from 1) of a run with these ``steps`` starts from."""
    return initial_params(case) if t == 1 else steps[t - 2].params
