"""Fixed hostile training runs for the network stack suites, judged first at every seed (``Suite.fixed``).

The stack suites (``cnn float64``, ``rnn gradients only``, …) draw their cases, and a bug that only a
hostile geometry shows is caught only when a draw reaches it: max pooling's ``=`` for ``+=`` needs
windows that overlap, a tie rule needs exact ties, a grouped convolution's weight gradient needs
groups > 1, a layer norm that takes D = shape[1] needs an input whose second dim is not the normalized
size, an LSTM or GRU that drops the carried state needs T ≥ 3 (at T = 1 nothing is carried, at T = 2
one step is), an attention backward needs a head wider than 1 (else the softmax scale is 1). The
cases here are those corners, built once, so that such a bug is caught at every seed (issue 16).

Each stack has a few :class:`Template` s — a per-sample input shape and a list of feature layers with
their attributes — built into a case for an implementation's capabilities: a layer whose kind it does
not declare is left out (and with it any later layer the shapes no longer fit), a template left with
no layer of its stack is no case, and what follows the features — Linear layers, loss, optimizer,
batch size, bias — is the plainest the capabilities take (the loss, activations and optimizers in the
order the strategies draw them, every hyperparameter off as :data:`conformance.case.grain.HYPER_OFF`
sets it). A case outside the capabilities (:func:`conformance.case.grain.outside`) is dropped. Values
are non-uniform, from fixed seeds (the strategies' :func:`~conformance.case.netstrategies.seeded_tensor`),
so every gradient differs from every other; an input that must hold ties takes its values from a few
powers of two, so that a product ``w·x`` is exact and a tie stays a tie in every implementation,
FMA or not. A training run has two steps (an optimizer's state is carried once), a gradients-only run one.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from conformance.case.grain import HYPER_OFF, LOSS_ATTR_OFF, outside
from conformance.case.graph import Tensor
from conformance.case.layerkinds import LAYER_KINDS, STACKS, scale
from conformance.case.netstrategies import LOSS_ORDER, OPTIMIZER_ORDER, REDUCTION_ORDER, dtype_cast, seeded_tensor
from conformance.case.network import (
    CLASS_LOSSES,
    LOSS_ATTRS,
    NO_OPTIMIZER,
    Batch,
    Feature,
    InvalidCase,
    Layer,
    NetworkCase,
    check_case,
    with_id,
)

Shape = tuple[int, ...]

#: an input that must hold exact ties takes its values from these (powers of two: ``w·x`` is exact)
TIES = (-1.0, -0.5, 0.5, 1.0, 2.0)
#: activations in the order a fixed case takes them: smooth ones first (no kink to route a gradient)
SMOOTH = ("identity", "tanh", "sigmoid", "softplus", "silu", "gelu", "elu", "leaky_relu", "relu")
#: each optimizer's learning rate in a fixed case (large enough that the second step differs)
LR = {"sgd": 0.1, "adam": 0.01, "adamw": 0.01, "rmsprop": 0.01, "adagrad": 0.1}
STEPS = 2


@dataclass(frozen=True)
class Spec:
    """One feature layer of a template: its kind, its attributes, and (``like``) the shapes of the
    parameters its input does not decide — a convolution's out-channels and kernel, a recurrent layer's
    hidden size, a transformer block's feed-forward width. A layer norm's ``normalized_shape`` is given
    as the number of trailing dims it covers (``norm_dims``), so that it fits whatever input it gets."""

    kind: str
    attrs: dict[str, Any] = field(default_factory=dict)
    like: dict[str, Shape] = field(default_factory=dict)
    norm_dims: int = 0


@dataclass(frozen=True)
class Template:
    """A hostile feature stack: its name (the seeds of its values), why it is hostile, the input shape
    per sample, its layers, and whether the input holds exact ties (:data:`TIES`)."""

    name: str
    why: str
    shape: Shape
    layers: tuple[Spec, ...]
    ties: bool = False


_CONV = {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1}
_POOL = {"kernel_size": [2, 2], "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "ceil_mode": False}

#: per stack (conformance/case/layerkinds.py: STACKS), its hostile templates
TEMPLATES: dict[str, tuple[Template, ...]] = {
    "cnn": (
        Template("cnn-norms-over-planes",
                 "batch norm over a 4-D input (statistics over batch, rows and columns), average pooling with "
                 "ceil_mode and count_include_pad=False (each window's divisor its own), then layer norm over "
                 "(C, H, W) — not the last dim, and C ≠ C·H·W",
                 (2, 3, 4),
                 (Spec("conv2d", {"stride": [1, 1], "padding": [1, 0], "dilation": [1, 1], "groups": 1},
                       {"weight": (2, 2, 2, 1)}),
                  Spec("batch_norm", {"eps": 1e-5}),
                  Spec("avg_pool2d", {"kernel_size": [2, 2], "stride": [2, 2], "padding": [1, 1],
                                      "ceil_mode": True, "count_include_pad": False}),
                  Spec("layer_norm", {"eps": 1e-5}, norm_dims=3))),
        Template("cnn-grouped-strided-conv",
                 "a convolution with groups 2, stride 2 ≠ dilation 1 along rows and (5 − 1·(2 − 1) − 1) % 2 = 1 "
                 "(a row left over), dilation 2 and padding 1 along columns; then group norm with 2 groups",
                 (2, 5, 4),
                 (Spec("conv2d", {"stride": [2, 1], "padding": [0, 1], "dilation": [1, 2], "groups": 2},
                       {"weight": (4, 1, 2, 2)}),
                  Spec("group_norm", {"num_groups": 2, "eps": 1e-5}))),
        Template("cnn-overlapping-max-pool",
                 "max pooling with stride 1 < kernel 2 (an inner element in up to four windows, the maximum of "
                 "several), after a 2×2 convolution; two channels of 3×3 flattened (a channels-last flatten "
                 "differs)",
                 (1, 5, 5),
                 (Spec("conv2d", dict(_CONV), {"weight": (2, 1, 2, 2)}),
                  Spec("max_pool2d", _POOL))),
        Template("cnn-max-pool-ties",
                 "the same overlapping max pooling over exact ties (a 1×1 convolution of powers of two): a tie "
                 "is a kink, where another subgradient is a convention and a crash or a non-finite value is "
                 "charged",
                 (1, 4, 4),
                 (Spec("conv2d", dict(_CONV), {"weight": (2, 1, 1, 1)}),
                  Spec("max_pool2d", _POOL)),
                 ties=True),
    ),
    "rnn": tuple(
        Template(f"rnn-{kind}-carry",
                 f"{kind.upper()}, hidden size 1, over T = 4 steps: the last step's gradient reaches the "
                 "first three inputs and the weights' earlier uses only through the carried state",
                 (4, 2), (Spec(kind, {}, {"weight_hh_l0": (gates, 1)}),))
        for kind, gates in (("lstm", 4), ("gru", 3))),
    "transformer": (
        Template("transformer-two-heads",
                 "a pre-norm block over T = 3 positions of D = 4 dims (T ≠ D: a layer norm over shape[1] "
                 "differs), two heads of two dims (softmax scale 1/√2, not 1), gelu, feed-forward width 3",
                 (3, 4),
                 (Spec("transformer_block", {"nhead": 2, "activation": "gelu", "layer_norm_eps": 1e-5},
                       {"linear1.weight": (3, 4)}),)),
    ),
}


def _seed(*parts: Any) -> int:
    """A fixed seed named by ``parts`` (the same on every machine and in every run)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def _features(t: Template, kinds: frozenset[str], cast: Any) -> tuple[tuple[Feature, ...], Shape]:
    """The template's layers the capabilities declare (``kinds``), with non-uniform parameters; the
    output shape. A layer the shape left by a skipped one does not fit is skipped too."""
    shape, out = t.shape, []
    for i, spec in enumerate(t.layers):
        kind = LAYER_KINDS[spec.kind]
        if spec.kind not in kinds:
            continue
        attrs = dict(spec.attrs)
        if spec.norm_dims:
            if spec.norm_dims > len(shape):
                continue
            attrs["normalized_shape"] = list(shape[len(shape) - spec.norm_dims:])
        try:
            shapes = kind.shapes(shape, attrs, spec.like)
            after = kind.out(shape, attrs, shapes)
        except ValueError:
            continue
        params: dict[str, Tensor | None] = {}
        for p in kind.params:
            lo, hi = kind.init[p]
            k = scale(kind, shapes, p)
            params[p] = seeded_tensor(_seed(t.name, i, p), shapes[p], lo * k, hi * k, cast)
        out.append(Feature(spec.kind, attrs, params))
        shape = after
    return tuple(out), shape


def _first(order: tuple[str, ...], allowed: Any) -> str | None:
    return next((a for a in order if a in allowed), None)


def _loss(caps: Any) -> tuple[str, str, str] | None:
    """The first loss the capabilities take (in the strategies' order) with its first reduction and the
    last layer's activation (a sigmoid for bce); None if none fits."""
    for loss in LOSS_ORDER:
        if loss not in caps.losses:
            continue
        reduction = _first(REDUCTION_ORDER, caps.losses[loss])
        last = "sigmoid" if loss == "bce" and "sigmoid" in caps.output_activations else (
            None if loss == "bce" else _first(SMOOTH, caps.output_activations))
        if reduction is not None and last is not None:
            return loss, reduction, last
    return None


def _hyper(optimizer: str, cast: Any) -> dict[str, Any]:
    """The learning rate of :data:`LR`, every other hyperparameter off (as a declaration that takes
    only ``lr`` gets it)."""
    if optimizer == NO_OPTIMIZER:
        return {}

    def rounded(v: Any) -> Any:
        return tuple(cast(x) for x in v) if isinstance(v, tuple) else cast(v) if isinstance(v, float) else v

    return {"lr": cast(LR[optimizer]), **{k: rounded(v) for k, v in HYPER_OFF[optimizer].items()}}


def build(t: Template, caps: Any, dtype: str, optimizer: str) -> NetworkCase | None:
    """Template ``t`` as a case inside ``caps`` in ``dtype`` trained by ``optimizer`` (``none``: one
    batch, gradients only); None where the capabilities leave it nothing hostile (no layer of its
    stack) or no loss, activation or batch size fits."""
    cast = dtype_cast(dtype)
    features, shape = _features(t, frozenset(getattr(caps, "layer_kinds", ())), cast)
    chosen = _loss(caps)
    if not features or chosen is None:
        return None
    loss, reduction, last = chosen
    hidden = _first(SMOOTH, caps.activations)
    depth = max(1, caps.layers[0])
    if depth > caps.layers[1] or (depth > 1 and hidden is None):
        return None
    n_out = 3 if loss in CLASS_LOSSES else 2
    widths = [math.prod(shape), *[3] * (depth - 1), n_out]
    biased = True in caps.bias
    layers = []
    for i, (n_in, n) in enumerate(pairwise(widths)):
        bound = 1 / math.sqrt(n_in)  # torch.nn.Linear's default init range
        layers.append(Layer(n_in, n, last if i == depth - 1 else str(hidden), {},
                            seeded_tensor(_seed(t.name, "linear", i), (n, n_in), -bound, bound, cast),
                            seeded_tensor(_seed(t.name, "bias", i), (n,), -bound, bound, cast) if biased else None))
    n = min(max(2, caps.batch_sizes[0]), caps.batch_sizes[1])
    batches = tuple(Batch(_x(t, n, step, cast), _y(t, loss, n, n_out, step, cast))
                    for step in range(1 if optimizer == NO_OPTIMIZER else STEPS))
    attrs = {k: cast(v) if isinstance(v, float) else v for k, v in ((k, LOSS_ATTR_OFF[k]) for k in LOSS_ATTRS[loss])}
    case = NetworkCase(tuple(layers), loss, reduction, attrs, optimizer, _hyper(optimizer, cast), batches, dtype,
                       head="log_softmax" if loss == "nll" else "none", features=features)
    try:
        case = with_id(check_case(case))
    except InvalidCase:  # (a rule of torch's the capabilities' sizes break: batch norm over one value)
        return None
    return case if outside(caps, case) is None else None


def _x(t: Template, n: int, step: int, cast: Any) -> Tensor:
    shape = (n, *t.shape)
    if not t.ties:
        return seeded_tensor(_seed(t.name, "x", step), shape, -1.0, 1.0, cast)
    rng = random.Random(_seed(t.name, "x", step))
    return Tensor(shape, tuple(rng.choice(TIES) for _ in range(math.prod(shape))))


def _y(t: Template, loss: str, n: int, n_out: int, step: int, cast: Any) -> Tensor:
    if loss in CLASS_LOSSES:
        rng = random.Random(_seed(t.name, "y", step))
        return Tensor((n,), tuple(float(rng.randrange(n_out)) for _ in range(n)))
    lo = 0.0 if loss in ("bce", "bce_with_logits") else -1.0
    return seeded_tensor(_seed(t.name, "y", step), (n, n_out), lo, 1.0, cast)


def stack_fixed(stack: str, caps: Any, dtype: str, optimizers: list[str]) -> tuple[NetworkCase, ...]:
    """The fixed cases of ``stack``'s suite in ``dtype``: its templates built for ``caps``, the
    ``optimizers`` (a training suite's, in the strategies' order; ``[none]`` for gradients only) taken
    in turn, one per template; a template the capabilities leave nothing hostile in is left out, and
    so is a case another template already gave."""
    order = [o for o in (*OPTIMIZER_ORDER, NO_OPTIMIZER) if o in optimizers]
    if stack not in STACKS or not order:
        return ()
    out: dict[str, NetworkCase] = {}
    for i, t in enumerate(TEMPLATES[stack]):
        case = build(t, caps, dtype, order[i % len(order)])
        if case is not None:
            out.setdefault(case.id, case)
    return tuple(out.values())


#: per loss, the logits of a fixed run whose true class lies far below the largest: (900, −900, 0) and
#: (−900, 900, 0), the targets at −900, a loss of 1,800 per sample. A probability of e^−1800 underflows,
#: so ``−log(softmax(z)[y])`` is inf, and e^900 overflows, so a softmax of unshifted logits is NaN —
#: an MLP that diverged reaches such logits, and only a log-softmax (shifted logits, log of the sum) gets
#: them right. One Linear layer 2 → 3 (rows (600, −600), (−600, 600), (0, 0)) maps x = (1, −½) and
#: (−½, 1) there.
LOGIT_GAP = {"cross_entropy": ((600.0, -600.0, -600.0, 600.0, 0.0, 0.0), (1.0, 0.0))}


def loss_fixed(loss: str, caps: Any, dtype: str) -> tuple[NetworkCase, ...]:
    """The fixed hostile run of a loss suite (:data:`LOGIT_GAP`), built for ``caps`` — one Linear
    layer, its identity output, the plainest optimizer and reduction the capabilities take; none
    where they take no such network."""
    if loss not in LOGIT_GAP or loss not in caps.losses or caps.layers[0] != 1 \
            or "identity" not in caps.output_activations:
        return ()
    reduction = _first(REDUCTION_ORDER, caps.losses[loss])
    optimizer = _first((*OPTIMIZER_ORDER, NO_OPTIMIZER), caps.optimizers)
    n = 2
    if reduction is None or optimizer is None or not caps.batch_sizes[0] <= n <= caps.batch_sizes[1]:
        return ()
    cast = dtype_cast(dtype)
    weight, targets = LOGIT_GAP[loss]
    bias = Tensor((3,), (0.0, 0.0, 0.0)) if True in caps.bias else None
    layer = Layer(2, 3, "identity", {}, Tensor((3, 2), tuple(map(cast, weight))), bias)
    x = Tensor((n, 2), (1.0, -0.5, -0.5, 1.0))
    batches = tuple(Batch(x, Tensor((n,), targets)) for _ in range(1 if optimizer == NO_OPTIMIZER else STEPS))
    attrs = {k: cast(v) if isinstance(v, float) else v for k, v in ((k, LOSS_ATTR_OFF[k]) for k in LOSS_ATTRS[loss])}
    case = with_id(check_case(NetworkCase((layer,), loss, reduction, attrs, optimizer, _hyper(optimizer, cast),
                                          batches, dtype)))
    return (case,) if outside(caps, case) is None else ()
