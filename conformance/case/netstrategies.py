"""Hypothesis strategies for network cases (:mod:`conformance.case.network`), valid by construction.

Everything is drawn in a fixed order — loss and reduction, input width, the layers (a list: each
layer's width, activation, attributes and parameter seeds drawn as one block, so a failure sheds
whole layers), loss attributes, optimizer and hyperparameters, batch size, the batches (a list, one
block per step) — and every choice shrinks towards the simplest one: ``mse``/``mean``, one
layer of width 1, ``identity``, SGD with plain settings, one step, batch 1. Nothing is filtered
after the fact: a target is drawn valid for its loss (probabilities in ``[0, 1]`` for bce, class
indices for cross_entropy/nll, never every position ignored), nesterov only with momentum and no
dampening, bce only behind a sigmoid, nll only behind a log_softmax head.

Tensors are drawn as one seed each (plus a scale), expanded by :class:`random.Random`: a 16×16
layer over 5 steps of 16 samples is thousands of numbers, more than hypothesis's choice buffer
holds as separate draws, and a seeded tensor is still a *local* draw — a failure shrinks tensor by
tensor (to seed 0, a fixed generic tensor) while the structure shrinks to its minimum. Class
targets are drawn one by one (they are small integers). In float32 every number — parameters,
data, hyperparameters — is drawn as a float32 value, so torch, refimpl's emulation, the error
bound and the 50-digit truth all start from the same inputs.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st

from conformance.case.graph import Tensor
from conformance.case.network import (
    ACTIVATIONS,
    CLASS_LOSSES,
    LOSS_ATTRS,
    OPTIMIZER_HYPER,
    Batch,
    Layer,
    NetworkCase,
    check_case,
    with_id,
)
from refimpl.numbers import round_to_float32

LOSS_ORDER = ("mse", "l1", "smooth_l1", "huber", "bce", "bce_with_logits", "cross_entropy", "nll")
REDUCTION_ORDER = ("mean", "sum", "none")
OPTIMIZER_ORDER = ("sgd", "adam", "adamw", "rmsprop", "adagrad")

ACT_ATTRS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "leaky_relu": st.fixed_dictionaries({"negative_slope": st.floats(0.0, 1.0)}),
    "elu": st.fixed_dictionaries({"alpha": st.floats(0.1, 3.0)}),
    # threshold keeps its jump (log1p(e^-threshold)) small: a training run is not the place for a
    # discontinuous activation; the op check covers small thresholds
    "softplus": st.fixed_dictionaries({"beta": st.floats(0.5, 3.0), "threshold": st.floats(5.0, 20.0)}),
    "gelu": st.fixed_dictionaries({"approximate": st.sampled_from(["none", "tanh"])}),
}
_SCALES = (1.0, 0.5, 2.0, 4.0)


def _pick(draw: st.DrawFn, items: list[Any] | tuple[Any, ...]) -> Any:
    """One of ``items`` by index (shrinks towards the first)."""
    return items[draw(st.integers(0, len(items) - 1))] if len(items) > 1 else items[0]


def _cast(dtype: str) -> Any:
    return round_to_float32 if dtype == "float32" else float


def _seeded(draw: st.DrawFn, shape: tuple[int, ...], lo: float, hi: float, cast: Any) -> Tensor:
    """A tensor of uniform values in ``[lo, hi]`` from one drawn seed."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    n = 1
    for s in shape:
        n *= s
    return Tensor(shape, tuple(cast(rng.uniform(lo, hi)) for _ in range(n)))


def _float(draw: st.DrawFn, lo: float, hi: float, cast: Any) -> float:
    return cast(draw(st.floats(lo, hi)))


def _maybe(draw: st.DrawFn, lo: float, hi: float, cast: Any) -> float:
    """0 (the default: shrinks there) or, three times in four, a value in ``[lo, hi]``: bugs live
    behind knobs, and one behind several knobs (SGD's dampening needs momentum on and nesterov off)
    is otherwise rarely reached."""
    return _float(draw, lo, hi, cast) if draw(st.integers(0, 3)) else 0.0


def _log_float(draw: st.DrawFn, lo_exp: float, hi_exp: float, cast: Any) -> float:
    return cast(10.0 ** draw(st.floats(lo_exp, hi_exp)))


def hyperparameters(draw: st.DrawFn, name: str, cast: Any) -> dict[str, Any]:
    """Every hyperparameter of optimizer ``name``, random but valid for torch."""
    h: dict[str, Any] = {}
    if name == "sgd":
        h["lr"] = _float(draw, 1e-3, 0.3, cast)
        h["momentum"] = _maybe(draw, 0.05, 0.99, cast)
        h["nesterov"] = h["momentum"] > 0 and draw(st.booleans())
        h["dampening"] = 0.0 if h["nesterov"] else _maybe(draw, 0.05, 1.0, cast)
        h["weight_decay"] = _maybe(draw, 1e-4, 0.1, cast)
        h["maximize"] = draw(st.booleans())
    elif name in ("adam", "adamw"):
        h["lr"] = _float(draw, 1e-4, 0.05, cast)
        h["betas"] = (_float(draw, 0.0, 0.99, cast), _float(draw, 0.0, 0.9999, cast))
        h["eps"] = _log_float(draw, -10, -3, cast)
        h["weight_decay"] = _maybe(draw, 1e-4, 0.1, cast)
        h["amsgrad"] = draw(st.booleans())
        h["maximize"] = draw(st.booleans())
        if name == "adam":
            h["decoupled_weight_decay"] = draw(st.booleans())
    elif name == "rmsprop":
        h["lr"] = _float(draw, 1e-4, 0.05, cast)
        h["centered"] = draw(st.booleans())
        # centered: v - ḡ² = α(1-α)g² after one step — at α = 0 exactly 0, and a rounding error
        # away from sqrt(negative) = NaN (torch's fused addcmul gets there); keep clear of it
        h["alpha"] = _float(draw, 0.1 if h["centered"] else 0.0, 0.999, cast)
        h["eps"] = _log_float(draw, -10, -3, cast)
        h["weight_decay"] = _maybe(draw, 1e-4, 0.1, cast)
        h["momentum"] = _maybe(draw, 0.05, 0.95, cast)
        h["maximize"] = draw(st.booleans())
    elif name == "adagrad":
        h["lr"] = _float(draw, 1e-3, 0.3, cast)
        h["lr_decay"] = _maybe(draw, 1e-3, 0.5, cast)
        h["weight_decay"] = _maybe(draw, 1e-4, 0.1, cast)
        h["initial_accumulator_value"] = _maybe(draw, 1e-3, 1.0, cast)
        h["eps"] = _log_float(draw, -10, -3, cast)
        h["maximize"] = draw(st.booleans())
    else:
        raise ValueError(f"no hyperparameter strategy for optimizer {name!r}")
    assert set(h) == set(OPTIMIZER_HYPER[name])
    return h


def _loss_attrs(draw: st.DrawFn, loss: str, n_out: int, cast: Any) -> dict[str, Any]:
    a: dict[str, Any] = {}
    for k in LOSS_ATTRS[loss]:
        if k == "beta":
            a[k] = _float(draw, 0.0, 2.0, cast)
        elif k == "delta":
            a[k] = _float(draw, 0.1, 2.0, cast)
        elif k == "weight":
            a[k] = _seeded(draw, (n_out,), 0.2, 2.0, cast) if draw(st.integers(0, 2)) == 2 else None
        elif k == "pos_weight":
            a[k] = _seeded(draw, (n_out,), 0.2, 3.0, cast) if draw(st.integers(0, 2)) == 2 else None
        elif k == "ignore_index":
            a[k] = -100
        elif k == "label_smoothing":
            a[k] = _maybe(draw, 0.0, 1.0, cast)
    return a


def _targets(draw: st.DrawFn, loss: str, n: int, n_out: int, attrs: dict[str, Any], cast: Any) -> Tensor:
    if loss in CLASS_LOSSES:
        ignore = attrs.get("ignore_index", -100)
        ys = [ignore if draw(st.integers(0, 15)) == 15 else draw(st.integers(0, n_out - 1))
              for _ in range(n)]
        if all(y == ignore for y in ys):
            ys[0] = 0
        return Tensor((n,), tuple(float(y) for y in ys))
    if loss in ("bce", "bce_with_logits"):
        if draw(st.booleans()):  # hard labels
            t = _seeded(draw, (n, n_out), 0.0, 1.0, cast)
            return Tensor(t.shape, tuple(float(v >= 0.5) for v in t.values))
        return _seeded(draw, (n, n_out), 0.0, 1.0, cast)
    scale = _pick(draw, _SCALES)
    return _seeded(draw, (n, n_out), -scale, scale, cast)


@st.composite
def _layer_spec(draw: st.DrawFn, acts: list[str], max_width: int, cast: Any) -> dict[str, Any]:
    """One layer as a self-contained block of draws — output width, activation and attributes, and
    the seeds of its weight and bias — so that a list of them shrinks by deleting a layer."""
    width = draw(st.integers(1, max_width))
    act = _pick(draw, acts)
    attrs = draw(ACT_ATTRS[act]) if act in ACT_ATTRS else {}
    attrs = {k: (cast(v) if isinstance(v, float) else v) for k, v in attrs.items()}
    weight_seed = draw(st.integers(0, 2**32 - 1))
    bias_seed = None if draw(st.integers(0, 5)) == 5 else draw(st.integers(0, 2**32 - 1))
    return {"width": width, "act": act, "attrs": attrs, "weight_seed": weight_seed, "bias_seed": bias_seed}


def _from_seed(seed: int, shape: tuple[int, ...], lo: float, hi: float, cast: Any) -> Tensor:
    rng = random.Random(seed)
    n = 1
    for s in shape:
        n *= s
    return Tensor(shape, tuple(cast(rng.uniform(lo, hi)) for _ in range(n)))


@st.composite
def _batch(draw: st.DrawFn, loss: str, n: int, n_in: int, n_out: int, x_scale: float,
           loss_attrs: dict[str, Any], cast: Any) -> Batch:
    x = _seeded(draw, (n, n_in), -x_scale, x_scale, cast)
    return Batch(x, _targets(draw, loss, n, n_out, loss_attrs, cast))


@st.composite
def network_cases(draw: st.DrawFn, dtype: str = "float64", *, activations: Iterable[str] | None = None,
                  losses: Iterable[str] | None = None, reductions: Iterable[str] | None = None,
                  optimizers: Iterable[str] | None = None, max_depth: int = 4, max_width: int = 16,
                  max_batch: int = 16, max_steps: int = 5, min_steps: int = 1) -> NetworkCase:
    """A random training run of an MLP (see the module doc); the lists restrict what is drawn."""
    cast = _cast(dtype)
    acts = [a for a in ACTIVATIONS if activations is None or a in set(activations) | {"identity"}]
    loss_names = [x for x in LOSS_ORDER if losses is None or x in set(losses)]
    if "sigmoid" not in acts:
        loss_names = [x for x in loss_names if x != "bce"]
    reds = [r for r in REDUCTION_ORDER if reductions is None or r in set(reductions)]
    opts = [o for o in OPTIMIZER_ORDER if optimizers is None or o in set(optimizers)]
    if not (loss_names and reds and opts):
        raise ValueError("nothing to draw: no loss, reduction or optimizer is allowed")

    loss = _pick(draw, loss_names)
    reduction = _pick(draw, reds)
    n_in = draw(st.integers(1, max_width))
    specs = draw(st.lists(_layer_spec(acts, max_width, cast), min_size=1, max_size=max_depth))
    if loss == "bce":  # probabilities: the last activation is a sigmoid
        specs[-1] = {**specs[-1], "act": "sigmoid", "attrs": {}}
    gain = _pick(draw, _SCALES)
    layers, width = [], n_in
    for spec in specs:
        bound = gain / width**0.5  # torch.nn.Linear's default init range, times a gain
        weight = _from_seed(spec["weight_seed"], (spec["width"], width), -bound, bound, cast)
        bias = None if spec["bias_seed"] is None else _from_seed(spec["bias_seed"], (spec["width"],),
                                                                  -bound, bound, cast)
        layers.append(Layer(width, spec["width"], spec["act"], spec["attrs"], weight, bias))
        width = spec["width"]
    n_out = width
    loss_attrs = _loss_attrs(draw, loss, n_out, cast)
    opt = _pick(draw, opts)
    hyper = hyperparameters(draw, opt, cast)
    n = draw(st.integers(1, max_batch))
    x_scale = _pick(draw, _SCALES)
    batches = draw(st.lists(_batch(loss, n, n_in, n_out, x_scale, loss_attrs, cast),
                            min_size=min_steps, max_size=max_steps))
    case = NetworkCase(tuple(layers), loss, reduction, loss_attrs, opt, hyper, tuple(batches), dtype,
                       head="log_softmax" if loss == "nll" else "none")
    return with_id(check_case(case))


def for_impl(impl: Any, dtype: str = "float64", **kw: Any) -> st.SearchStrategy[NetworkCase]:
    """Network cases restricted to what ``impl.capabilities`` says it supports (``kw`` may narrow
    the lists further and set the sizes)."""
    return for_capabilities(impl.capabilities, dtype, **kw)


def for_capabilities(caps: Any, dtype: str = "float64", **kw: Any) -> st.SearchStrategy[NetworkCase]:
    """Network cases restricted to what ``caps`` declares (``kw`` may narrow the lists further)."""
    lists = {k: getattr(caps, k, None) or None for k in ("activations", "losses", "optimizers")}
    for k in lists:
        if kw.get(k) is not None:
            lists[k] = [x for x in kw.pop(k) if lists[k] is None or x in lists[k]]
    return network_cases(dtype, **lists, **kw)
