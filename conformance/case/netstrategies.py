"""Hypothesis strategies for network cases (:mod:`conformance.case.network`), valid by construction.

Everything is drawn in a fixed order — loss and reduction, input width, the layers (a list: each
layer's width — one layer in three as wide as its input, a square weight —, activation, attributes
and parameter seeds drawn as one block, so a failure sheds whole layers), loss attributes, optimizer
and hyperparameters, batch size, the batches (a list, one block per step) — and every choice shrinks
towards the simplest one: ``mse``/``mean``, one layer of width 1, ``identity``, SGD with plain
settings, one step, batch 1. A gradients-only run (optimizer ``none``) is drawn only when no
optimizer is allowed beside it. Nothing is filtered after the fact: a target is drawn valid for its
loss (probabilities in ``[0, 1]`` for bce, class indices for cross_entropy/nll, never every position
ignored), nesterov only with momentum and no dampening, bce only behind a sigmoid, nll only behind a
log_softmax head.

Tensors are drawn as one seed each (plus a scale), expanded by :class:`random.Random`: a 16×16
layer over 5 steps of 16 samples is thousands of numbers, more than hypothesis's choice buffer
holds as separate draws, and a seeded tensor is still a *local* draw — a failure shrinks tensor by
tensor (to seed 0, a fixed generic tensor) while the structure shrinks to its minimum. Class
targets are drawn one by one (they are small integers). In float32 every number — parameters,
data, hyperparameters — is drawn as a float32 value, so torch, refimpl's emulation, the error
bound and the 50-digit truth all start from the same inputs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st

from conformance.case.grain import HYPER_OFF, LOSS_ATTR_OFF, Grain, loss_options
from conformance.case.graph import Tensor
from conformance.case.layerkinds import LAYER_KINDS, NORMS, POOLS, STACKS, STRUCTURAL, scale
from conformance.case.network import (
    ACTIVATIONS,
    CLASS_LOSSES,
    LOSS_ATTRS,
    NO_OPTIMIZER,
    OPTIMIZER_HYPER,
    Batch,
    Feature,
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


def dtype_cast(dtype: str) -> Any:
    """How a number drawn or built for a case in ``dtype`` is rounded: to float32, or not at all."""
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


def hyperparameters(draw: st.DrawFn, name: str, cast: Any, taken: Iterable[str] | None = None) -> dict[str, Any]:
    """Every hyperparameter of optimizer ``name``, random but valid for torch; those not ``taken``
    (None: all are) at the value that switches them off (conformance/case/grain.py). Each is drawn
    either way, so that a narrower declaration draws the same case where it can."""
    h = _every_hyperparameter(draw, name, cast)
    if taken is None:
        return h
    keep = set(taken) | {"lr"}
    for k, off in HYPER_OFF[name].items():
        if k not in keep:
            h[k] = tuple(cast(v) for v in off) if isinstance(off, tuple) else (
                cast(off) if isinstance(off, float) else off)
    if h.get("nesterov") and (h["momentum"] <= 0 or h["dampening"] != 0):
        h["nesterov"] = False  # torch: nesterov needs momentum and no dampening
    return h


def _every_hyperparameter(draw: st.DrawFn, name: str, cast: Any) -> dict[str, Any]:
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
    elif name == NO_OPTIMIZER:  # a gradients-only run: nothing to draw
        pass
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


def _targets(draw: st.DrawFn, loss: str, n: int, n_out: int, attrs: dict[str, Any], cast: Any,
             ignoring: bool = True) -> Tensor:
    if loss in CLASS_LOSSES:
        ignore = attrs.get("ignore_index", -100)
        ys = [ignore if draw(st.integers(0, 15)) == 15 and ignoring else draw(st.integers(0, n_out - 1))
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


def _activation(draw: st.DrawFn, acts: list[str], cast: Any) -> tuple[str, dict[str, Any]]:
    act = _pick(draw, acts)
    attrs = draw(ACT_ATTRS[act]) if act in ACT_ATTRS else {}
    return act, {k: (cast(v) if isinstance(v, float) else v) for k, v in attrs.items()}


@st.composite
def _layer_spec(draw: st.DrawFn, acts: list[str], max_width: int, cast: Any,
                bias: frozenset[bool] = frozenset({True, False})) -> dict[str, Any]:
    """One layer as a self-contained block of draws — output width, activation and attributes, and
    the seeds of its weight and bias — so that a list of them shrinks by deleting a layer."""
    width = draw(st.integers(1, max_width))
    square = draw(st.integers(0, 2)) == 0  # one layer in three as wide as its input: bugs that a
    # square weight hides from numpy's shape checks (a transposed gradient) show only there
    act, attrs = _activation(draw, acts, cast)
    weight_seed = draw(st.integers(0, 2**32 - 1))
    biased = True not in bias or (False in bias and draw(st.integers(0, 5)) == 5)  # True: no bias
    bias_seed = None if biased else draw(st.integers(0, 2**32 - 1))
    return {"width": width, "square": square, "act": act, "attrs": attrs, "weight_seed": weight_seed,
            "bias_seed": bias_seed}


def seeded_tensor(seed: int, shape: tuple[int, ...], lo: float, hi: float, cast: Any) -> Tensor:
    """A tensor of uniform values in ``[lo, hi]`` from ``seed`` (each rounded by ``cast``): the drawn
    cases' parameters, and the fixed cases' (conformance/case/netfixed.py)."""
    rng = random.Random(seed)
    n = 1
    for s in shape:
        n *= s
    return Tensor(shape, tuple(cast(rng.uniform(lo, hi)) for _ in range(n)))


@st.composite
def _batch(draw: st.DrawFn, loss: str, n: int, n_in: int | tuple[int, ...], n_out: int, x_scale: float,
           loss_attrs: dict[str, Any], cast: Any, ignoring: bool = True) -> Batch:
    x = _seeded(draw, (n, *n_in) if isinstance(n_in, tuple) else (n, n_in), -x_scale, x_scale, cast)
    return Batch(x, _targets(draw, loss, n, n_out, loss_attrs, cast, ignoring))


@st.composite
def _feature_layer(draw: st.DrawFn, name: str, shape: tuple[int, ...],
                   cast: Any) -> tuple[Feature, tuple[int, ...]] | None:
    """One structural feature layer at input ``shape`` (per sample): its kind's attributes, parameters
    from seeds, and its output shape (conformance/case/layerkinds.py); None where the shape leaves
    it no room (group norm of a single value)."""
    kind = LAYER_KINDS[name]
    assert kind.draw is not None
    attrs, shapes = draw(kind.draw(shape))
    try:
        kind.out(shape, attrs, kind.shapes(shape, attrs, shapes))
    except ValueError:
        return None
    params: dict[str, Tensor | None] = {}
    for p in kind.params:
        seed = draw(st.integers(0, 2**32 - 1))
        if p in kind.optional and draw(st.integers(0, 5)) == 5:  # one in six without (a bias)
            params[p] = None
            continue
        lo, hi = kind.init[p]
        k = scale(kind, shapes, p)
        params[p] = seeded_tensor(seed, shapes[p], lo * k, hi * k, cast)
    return Feature(name, attrs, params), kind.out(shape, attrs, shapes)


@st.composite
def _cnn_features(draw: st.DrawFn, kinds: frozenset[str], acts: list[str],
                  cast: Any) -> tuple[tuple[int, ...], tuple[Feature, ...]]:
    """An input shape (C, H, W) — H and W apart, so a transposed plane shows — and one or two blocks of
    conv2d → activation → pooling or none → normalization or none, whatever ``kinds`` holds; each
    choice shrinks to the first (one block, no pooling, no normalization)."""
    c, h = draw(st.integers(1, 3)), draw(st.integers(2, 5))
    shape = (c, h, h + draw(st.integers(-1, 1)) if h > 2 else h + draw(st.integers(0, 1)))
    start, out = shape, []
    pools = [None, *(k for k in POOLS if k in kinds)]
    norms = [None, *(k for k in NORMS if k in kinds)]
    for _ in range(draw(st.integers(1, 2))):
        if "conv2d" in kinds and (drawn := draw(_feature_layer("conv2d", shape, cast))) is not None:
            out.append(drawn[0])
            shape = drawn[1]
        act, attrs = _activation(draw, acts, cast)
        if act != "identity":
            out.append(Feature(act, attrs, {}))
        for choice in (_pick(draw, pools), _pick(draw, norms)):
            if choice is not None and (drawn := draw(_feature_layer(choice, shape, cast))) is not None:
                out.append(drawn[0])
                shape = drawn[1]
    return start, tuple(out)


@st.composite
def _rnn_features(draw: st.DrawFn, kinds: frozenset[str], acts: list[str],
                  cast: Any) -> tuple[tuple[int, ...], tuple[Feature, ...]]:
    """A sequence (T, I) — T from 2 (at T = 1 nothing is carried) to 4, I from 1 to 3 — and one
    recurrent layer of ``kinds`` (an LSTM first), its hidden size from 1; shrinks to T = 2, I = 1, an
    LSTM of hidden size 1."""
    shape = (draw(st.integers(2, 4)), draw(st.integers(1, 3)))
    drawn = draw(_feature_layer(_pick(draw, [k for k in STACKS["rnn"] if k in kinds]), shape, cast))
    assert drawn is not None  # (every sequence fits a recurrent layer)
    return shape, (drawn[0],)


@st.composite
def _transformer_features(draw: st.DrawFn, kinds: frozenset[str], acts: list[str],
                          cast: Any) -> tuple[tuple[int, ...], tuple[Feature, ...]]:
    """A sequence (T, D) — T from 2 to 4, D from 2 to 4 — and one transformer block over it; shrinks to
    T = D = 2, one head, relu, a feed-forward width of 1."""
    shape = (draw(st.integers(2, 4)), draw(st.integers(2, 4)))
    drawn = draw(_feature_layer(_pick(draw, [k for k in STACKS["transformer"] if k in kinds]), shape, cast))
    assert drawn is not None  # (every head count drawn divides D)
    return shape, (drawn[0],)


#: how each stack of feature layers (conformance/case/layerkinds.py: STACKS) is drawn
STACK_DRAWS = {"cnn": _cnn_features, "rnn": _rnn_features, "transformer": _transformer_features}


def _features(kinds: frozenset[str], acts: list[str],
              cast: Any) -> st.SearchStrategy[tuple[tuple[int, ...], tuple[Feature, ...]]]:
    """The input shape per sample and the feature layers of the one stack ``kinds`` belong to."""
    stacks = {STRUCTURAL[k].stack for k in kinds}
    if len(stacks) != 1:
        raise ValueError(f"layer kinds {sorted(kinds)} are not of one stack of feature layers {sorted(STACKS)}")
    return STACK_DRAWS[stacks.pop()](kinds, acts, cast)


@st.composite
def network_cases(draw: st.DrawFn, dtype: str = "float64", *, activations: Iterable[str] | None = None,
                  output_activations: Iterable[str] | None = None, losses: Any = None,
                  reductions: Iterable[str] | None = None, optimizers: Any = None,
                  bias: Iterable[bool] = (True, False), min_depth: int = 1, max_depth: int = 4,
                  max_width: int = 16, min_batch: int = 1, max_batch: int = 16, max_steps: int = 5,
                  min_steps: int = 1, layer_kinds: Iterable[str] | None = None) -> NetworkCase:
    """A random training run of an MLP (see the module doc), drawn only inside what is allowed:
    ``activations`` of the hidden layers, ``output_activations`` of the last (default: the same),
    ``losses`` and ``optimizers`` as names or grains (conformance/case/grain.py: per loss the
    reductions and attributes it takes, per optimizer its hyperparameters), ``reductions`` for
    every loss, ``bias`` (True: layers with bias, False: without), and the sizes. With
    ``layer_kinds`` (structural kinds of one stack of conformance/case/layerkinds.py), a small CNN over
    an input ``[batch, C, H, W]`` or a recurrent layer over ``[batch, T, I]`` opens the network
    (:func:`_features`); without, the case is drawn exactly as it always was."""
    cast = dtype_cast(dtype)
    loss_grain = Grain.of(list(LOSS_ATTRS) if losses is None else losses, loss_options(LOSS_ATTRS))
    opt_grain = Grain.of(list(OPTIMIZER_HYPER) if optimizers is None else optimizers, OPTIMIZER_HYPER)
    hidden = set(ACTIVATIONS if activations is None else activations)
    last = hidden if output_activations is None else set(output_activations)
    acts = [a for a in ACTIVATIONS if a in hidden]
    out_acts = [a for a in ACTIVATIONS if a in last]
    allowed = set(bias)

    def reds(loss: str) -> list[str]:
        return [r for r in REDUCTION_ORDER if r in loss_grain[loss] and (reductions is None or r in reductions)]

    loss_names = [x for x in LOSS_ORDER if x in loss_grain and reds(x)]
    if "sigmoid" not in out_acts:  # bce takes probabilities: it needs a sigmoid on the last layer
        loss_names = [x for x in loss_names if x != "bce"]
    # a gradients-only run is drawn only where no optimizer is allowed beside it (its own suite, or an
    # implementation with a backward and no optimizer): every other suite draws as it always has
    opts = [o for o in OPTIMIZER_ORDER if o in opt_grain] or [o for o in (NO_OPTIMIZER,) if o in opt_grain]
    if not (loss_names and opts and out_acts and allowed):
        raise ValueError("nothing to draw: no loss with a reduction, optimizer, output activation or bias "
                         "choice is allowed")
    if not acts:  # no hidden activation: one layer
        acts, max_depth = out_acts, min_depth

    loss = _pick(draw, loss_names)
    reduction = _pick(draw, reds(loss))
    features: tuple[Feature, ...] = ()
    if layer_kinds is not None:  # a CNN or an RNN: its input shape and feature layers, flattened into the first Linear
        x_shape, features = draw(_features(frozenset(layer_kinds), [a for a in ACTIVATIONS if a in hidden], cast))
        n_in = math.prod(_out_shape(x_shape, features))
    else:
        n_in = draw(st.integers(1, max_width))
    specs = draw(st.lists(_layer_spec(acts, max_width, cast, frozenset(allowed)), min_size=min_depth,
                          max_size=max_depth))
    if specs[-1]["act"] not in out_acts:  # the last layer's activation, from its own list
        act, attrs = _activation(draw, out_acts, cast)
        specs[-1] = {**specs[-1], "act": act, "attrs": attrs}
    if loss == "bce":  # probabilities: the last activation is a sigmoid
        specs[-1] = {**specs[-1], "act": "sigmoid", "attrs": {}}
    gain = _pick(draw, _SCALES)
    layers, width = [], n_in
    for spec in specs:
        if spec["square"]:
            spec = {**spec, "width": width}
        bound = gain / width**0.5  # torch.nn.Linear's default init range, times a gain
        weight = seeded_tensor(spec["weight_seed"], (spec["width"], width), -bound, bound, cast)
        bias_t = None if spec["bias_seed"] is None else seeded_tensor(spec["bias_seed"], (spec["width"],),
                                                                    -bound, bound, cast)
        layers.append(Layer(width, spec["width"], spec["act"], spec["attrs"], weight, bias_t))
        width = spec["width"]
    n_out = width
    taken = loss_grain[loss]
    loss_attrs = {k: v if k in taken else LOSS_ATTR_OFF[k]
                  for k, v in _loss_attrs(draw, loss, n_out, cast).items()}
    opt = _pick(draw, opts)
    hyper = hyperparameters(draw, opt, cast, opt_grain[opt])
    n = draw(st.integers(min_batch, max_batch))
    if features and n < max_batch and any(_rule_problems(x_shape, features, n)):
        n = 2  # batch norm over one value per channel: torch refuses it in training
    x_scale = _pick(draw, _SCALES)
    steps = (1, 1) if opt == NO_OPTIMIZER else (min_steps, max_steps)
    x_size = x_shape if features else n_in
    batches = draw(st.lists(_batch(loss, n, x_size, n_out, x_scale, loss_attrs, cast, "ignore_index" in taken),
                            min_size=steps[0], max_size=steps[1]))
    case = NetworkCase(tuple(layers), loss, reduction, loss_attrs, opt, hyper, tuple(batches), dtype,
                       head="log_softmax" if loss == "nll" else "none", features=features)
    return with_id(check_case(case))


def _out_shape(shape: tuple[int, ...], features: tuple[Feature, ...]) -> tuple[int, ...]:
    for f in features:
        kind = LAYER_KINDS[f.kind]
        shape = kind.out(shape, f.attrs, kind.shapes(shape, f.attrs, {p: t.shape for p, t in f.params.items()
                                                                       if t is not None}))
    return shape


def _rule_problems(shape: tuple[int, ...], features: tuple[Feature, ...], n: int) -> list[str | None]:
    out = []
    for f in features:
        kind = LAYER_KINDS[f.kind]
        out.append(kind.rule(shape, f.attrs, n))
        shape = kind.out(shape, f.attrs, kind.shapes(shape, f.attrs, {p: t.shape for p, t in f.params.items()
                                                                       if t is not None}))
    return out


def for_impl(impl: Any, dtype: str = "float64", **kw: Any) -> st.SearchStrategy[NetworkCase]:
    """Network cases restricted to what ``impl.capabilities`` says it supports (``kw`` may narrow
    the lists further and set the sizes)."""
    return for_capabilities(impl.capabilities, dtype, **kw)


def for_capabilities(caps: Any, dtype: str = "float64", **kw: Any) -> st.SearchStrategy[NetworkCase]:
    """Network cases restricted to what ``caps`` declares (``kw`` may narrow the optimizers and
    losses to some names, and set the sizes inside the declared ranges)."""
    declared: dict[str, Any] = {
        "activations": getattr(caps, "activations", None) or None,
        "output_activations": getattr(caps, "output_activations", None) or None,
        "losses": getattr(caps, "losses", None) or None,
        "optimizers": getattr(caps, "optimizers", None) or None,
        "bias": getattr(caps, "bias", (True, False)),
    }
    for k in ("losses", "optimizers"):
        names = kw.pop(k, None)
        if names is not None:
            grain = declared[k]
            declared[k] = {x: grain[x] for x in names if x in grain} if grain is not None else list(names)
    names = kw.pop("layer_kinds", None)  # a CNN: feature layers of these kinds (among the declared ones)
    if names is not None:
        kw["layer_kinds"] = [k for k in names if k in getattr(caps, "layer_kinds", ())]
    depth = getattr(caps, "layers", (1, 4))
    batch = getattr(caps, "batch_sizes", (1, 16))
    sizes = {"min_depth": depth[0], "max_depth": min(depth[1], kw.pop("max_depth", depth[1])),
             "min_batch": batch[0], "max_batch": min(batch[1], kw.pop("max_batch", batch[1]))}
    return network_cases(dtype, **declared, **sizes, **kw)
