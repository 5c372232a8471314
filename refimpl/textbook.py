"""Backpropagation for a multilayer perceptron, as the textbook writes it.

A second opinion on :mod:`refimpl.engine`, derived independently: no :class:`~refimpl.engine.Value`,
no graph, no op table. The network is a list of layers, each a weight matrix ``W`` in torch's
layout (``W[j][i]`` connects input ``i`` to output ``j``, shape ``[out][in]``), a bias vector ``b``
and an activation ``g``; vectors are plain lists of floats and a batch is a list of examples.
For every example the forward pass is

    z⁽ˡ⁾ = W⁽ˡ⁾ a⁽ˡ⁻¹⁾ + b⁽ˡ⁾,        a⁽ˡ⁾ = g⁽ˡ⁾(z⁽ˡ⁾),        a⁽⁰⁾ = x,

and J is a loss of the outputs a⁽ᴸ⁾ and the targets, reduced over the batch by 'mean' or 'sum'.
Backpropagation is four equations:

    δ⁽ᴸ⁾   = ∂J/∂a⁽ᴸ⁾ ⊙ g⁽ᴸ⁾′(z⁽ᴸ⁾)                       (output_delta)
    δ⁽ˡ⁾   = (W⁽ˡ⁺¹⁾)ᵀ δ⁽ˡ⁺¹⁾ ⊙ g⁽ˡ⁾′(z⁽ˡ⁾)                (hidden_delta)
    ∂J/∂W⁽ˡ⁾ = Σ_batch δ⁽ˡ⁾ (a⁽ˡ⁻¹⁾)ᵀ                       (weight_gradient)
    ∂J/∂b⁽ˡ⁾ = Σ_batch δ⁽ˡ⁾                                (bias_gradient)

δ is ∂J/∂z, so it already carries the reduction's 1/N: the batch sums are plain sums.

The activation derivatives g′ and the loss gradients ∂J/∂a are written out here in closed form
(σ′ = σ(1 − σ), tanh′ = 1 − tanh², softmax cross-entropy ∂J/∂z = softmax − target, ...); nothing
is taken from :mod:`refimpl.ops`, so agreement with the engine means two derivations agree.
For a loss defined on logits (``bce_with_logits``, ``cross_entropy``) ∂J/∂a⁽ᴸ⁾ is the gradient
with respect to the logits, and with the usual identity output activation δ⁽ᴸ⁾ = ∂J/∂z⁽ᴸ⁾ is the
classic (softmax − smoothed one-hot)/N.

Names, attributes, defaults, kink conventions and reductions are torch 2.13's
(``torch.nn.functional``): relu′(0) = 0, leaky_relu′(0) = negative_slope, elu′(0) = alpha,
softplus is linear only where x·beta > threshold, sign(0) = 0 for l1; 'mean' divides the
elementwise losses by N·K (every element) and the class losses by N (the batch).

Standard library only, like the rest of refimpl.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

Vector = list[float]
Matrix = list[list[float]]
Batch = list[list[float]]

# --- activations: g and g′ -------------------------------------------------------------------------
# Each activation is a pair (g, g′). g′ receives z and a = g(z), so that the classic forms written
# in terms of the output (σ(1 − σ), 1 − tanh²) can be used as written.

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


def _logistic(t: float) -> float:
    """σ(t) = 1 / (1 + e⁻ᵗ), evaluated without overflow for either sign of t."""
    if t >= 0.0:
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)


def _identity(z: float) -> float:
    return z


def _identity_prime(z: float, a: float) -> float:
    return 1.0


def _relu(z: float) -> float:
    return z if z > 0.0 else 0.0


def _relu_prime(z: float, a: float) -> float:
    """1 for z > 0, else 0 — including z = 0 (torch)."""
    return 1.0 if z > 0.0 else 0.0


def _leaky_relu(z: float, negative_slope: float = 0.01) -> float:
    return z if z > 0.0 else negative_slope * z


def _leaky_relu_prime(z: float, a: float, negative_slope: float = 0.01) -> float:
    """1 for z > 0, else negative_slope — including z = 0 (torch)."""
    return 1.0 if z > 0.0 else negative_slope


def _elu(z: float, alpha: float = 1.0) -> float:
    return z if z > 0.0 else alpha * math.expm1(z)


def _elu_prime(z: float, a: float, alpha: float = 1.0) -> float:
    """1 for z > 0, else α·eᶻ — so α at z = 0 (torch)."""
    return 1.0 if z > 0.0 else alpha * math.exp(z)


def _tanh(z: float) -> float:
    return math.tanh(z)


def _tanh_prime(z: float, a: float) -> float:
    """tanh′(z) = 1 − tanh²(z)."""
    return 1.0 - a * a


def _sigmoid(z: float) -> float:
    return _logistic(z)


def _sigmoid_prime(z: float, a: float) -> float:
    """σ′(z) = σ(z)(1 − σ(z))."""
    return a * (1.0 - a)


def _softplus(z: float, beta: float = 1.0, threshold: float = 20.0) -> float:
    """(1/β)·log(1 + e^{βz}), and z itself where βz > threshold (torch)."""
    t = z * beta
    if t > threshold:
        return z
    # log(1 + eᵗ) = max(t, 0) + log(1 + e^{−|t|}), which cannot overflow
    return (max(t, 0.0) + math.log1p(math.exp(-abs(t)))) / beta


def _softplus_prime(z: float, a: float, beta: float = 1.0, threshold: float = 20.0) -> float:
    """σ(βz) — the logistic function — and 1 where βz > threshold (at equality: σ)."""
    t = z * beta
    return 1.0 if t > threshold else _logistic(t)


def _silu(z: float) -> float:
    return z * _logistic(z)


def _silu_prime(z: float, a: float) -> float:
    """The swish form: f′(z) = f(z) + σ(z)(1 − f(z)), where f(z) = z·σ(z)."""
    s = _logistic(z)
    return a + s * (1.0 - a)


def _gelu(z: float, approximate: str = "none") -> float:
    if approximate == "tanh":
        return 0.5 * z * (1.0 + math.tanh(_SQRT_2_OVER_PI * (z + _GELU_CUBIC * z ** 3)))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return z * 0.5 * (1.0 + math.erf(z * _SQRT_HALF))


def _gelu_prime(z: float, a: float, approximate: str = "none") -> float:
    """GELU(z) = z·Φ(z), so GELU′(z) = Φ(z) + z·φ(z) with φ the standard normal density.

    The tanh form ½z(1 + tanh u), u = √(2/π)(z + 0.044715 z³), differentiates to
    ½(1 + tanh u) + ½z(1 − tanh² u)·√(2/π)(1 + 3·0.044715 z²).
    """
    if approximate == "tanh":
        t = math.tanh(_SQRT_2_OVER_PI * (z + _GELU_CUBIC * z ** 3))
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * z * z)
        return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    cdf = 0.5 * (1.0 + math.erf(z * _SQRT_HALF))
    pdf = _INV_SQRT_2PI * math.exp(-0.5 * z * z)
    return cdf + z * pdf


ACTIVATIONS: dict[str, tuple[Callable[..., float], Callable[..., float]]] = {
    "identity": (_identity, _identity_prime),
    "relu": (_relu, _relu_prime),
    "leaky_relu": (_leaky_relu, _leaky_relu_prime),
    "elu": (_elu, _elu_prime),
    "tanh": (_tanh, _tanh_prime),
    "sigmoid": (_sigmoid, _sigmoid_prime),
    "softplus": (_softplus, _softplus_prime),
    "silu": (_silu, _silu_prime),
    "gelu": (_gelu, _gelu_prime),
}
"""name → (g(z, **attrs), g′(z, a, **attrs)); names and attributes as in torch.nn.functional."""


def activation_spec(spec: str | tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Normalise a layer's activation: ``"tanh"`` or ``("leaky_relu", {"negative_slope": 0.2})``."""
    name, attrs = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1]))
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}")
    return name, attrs


# --- the forward pass ------------------------------------------------------------------------------

def affine(W: Matrix, a_prev: Vector, b: Vector) -> Vector:
    """z = W a + b, i.e. zⱼ = Σᵢ Wⱼᵢ aᵢ + bⱼ (W is [out][in])."""
    if any(len(row) != len(a_prev) for row in W) or len(W) != len(b):
        raise ValueError(f"shapes: W is {len(W)}x{len(W[0]) if W else 0}, a has {len(a_prev)}, "
                         f"b has {len(b)}")
    return [sum(w * x for w, x in zip(row, a_prev)) + bj for row, bj in zip(W, b)]


def activate(z: Vector, activation: str | tuple[str, dict[str, Any]]) -> Vector:
    """a = g(z), elementwise."""
    name, attrs = activation_spec(activation)
    g = ACTIVATIONS[name][0]
    return [g(zj, **attrs) for zj in z]


def activation_derivative(z: Vector, a: Vector, activation: str | tuple[str, dict[str, Any]]) -> Vector:
    """g′(z), elementwise (a = g(z) is passed along for the forms written in the output)."""
    name, attrs = activation_spec(activation)
    g_prime = ACTIVATIONS[name][1]
    return [g_prime(zj, aj, **attrs) for zj, aj in zip(z, a, strict=True)]


@dataclass
class Cache:
    """What the backward pass needs from the forward pass.

    ``z[l][n]`` and ``a[l][n]`` are layer ``l``'s pre-activation and activation for example ``n``;
    ``a[0]`` is the input batch, so ``a[l]`` and ``z[l - 1]``/``weights[l - 1]`` belong together:
    the layers are numbered 1..L in the equations and 0..L-1 in the lists ``z``, ``weights``.
    """

    z: list[Batch]
    a: list[Batch]
    activations: list[tuple[str, dict[str, Any]]]

    @property
    def outputs(self) -> Batch:
        """a⁽ᴸ⁾ for every example."""
        return self.a[-1]


def forward(x_batch: Batch, weights: Sequence[Matrix], biases: Sequence[Vector],
            activations: Sequence[str | tuple[str, dict[str, Any]]]) -> Cache:
    """z⁽ˡ⁾ = W⁽ˡ⁾ a⁽ˡ⁻¹⁾ + b⁽ˡ⁾ and a⁽ˡ⁾ = g⁽ˡ⁾(z⁽ˡ⁾) for l = 1..L, for every example."""
    if not len(weights) == len(biases) == len(activations):
        raise ValueError("one weight matrix, bias vector and activation per layer")
    specs = [activation_spec(g) for g in activations]
    zs: list[Batch] = []
    acts: list[Batch] = [[list(map(float, x)) for x in x_batch]]
    for W, b, g in zip(weights, biases, specs):
        z_layer = [affine(W, a_prev, b) for a_prev in acts[-1]]
        zs.append(z_layer)
        acts.append([activate(z, g) for z in z_layer])
    return Cache(zs, acts, specs)


# --- losses: J and ∂J/∂a⁽ᴸ⁾ ---------------------------------------------------------------------------
# Elementwise losses are a pair (ℓ(a, y), ℓ′(a, y)) with ℓ′ = ∂ℓ/∂a; J = Σ ℓ over every element
# ('sum') or that divided by N·K ('mean'). Class losses take a row of K scores and an integer class.

_BCE_LOG_FLOOR = -100.0  # torch clamps the logs of binary_cross_entropy at -100 ...
_BCE_EPS = 9.999999960041972e-13  # ... and its backward divides by max(a(1 − a), EPS), with
# EPS = 1e-12 rounded to binary32 (the kernel's constant is a float)


def _sign(d: float) -> float:
    return 1.0 if d > 0.0 else (-1.0 if d < 0.0 else 0.0)


def _mse(a: float, y: float) -> float:
    return (a - y) ** 2


def _mse_prime(a: float, y: float) -> float:
    """d/da (a − y)² = 2(a − y)."""
    return 2.0 * (a - y)


def _l1(a: float, y: float) -> float:
    return abs(a - y)


def _l1_prime(a: float, y: float) -> float:
    """d/da |a − y| = sign(a − y), with sign(0) = 0 (torch)."""
    return _sign(a - y)


def _smooth_l1(a: float, y: float, beta: float = 1.0) -> float:
    d = abs(a - y)
    if beta == 0.0:  # torch: smooth_l1 with beta = 0 is l1
        return d
    return 0.5 * d * d / beta if d < beta else d - 0.5 * beta


def _smooth_l1_prime(a: float, y: float, beta: float = 1.0) -> float:
    """(a − y)/β where |a − y| < β, else sign(a − y) (equal at |a − y| = β)."""
    d = a - y
    if beta == 0.0:
        return _sign(d)
    return d / beta if abs(d) < beta else _sign(d)


def _huber(a: float, y: float, delta: float = 1.0) -> float:
    d = abs(a - y)
    return 0.5 * d * d if d <= delta else delta * (d - 0.5 * delta)


def _huber_prime(a: float, y: float, delta: float = 1.0) -> float:
    """a − y where |a − y| ≤ δ, else δ·sign(a − y)."""
    d = a - y
    return d if abs(d) <= delta else delta * _sign(d)


def _bce(a: float, y: float) -> float:
    """−[y log a + (1 − y) log(1 − a)], each log clamped at −100 (torch)."""
    log_a = max(math.log(a), _BCE_LOG_FLOOR) if a > 0.0 else _BCE_LOG_FLOOR
    log_1ma = max(math.log1p(-a), _BCE_LOG_FLOOR) if a < 1.0 else _BCE_LOG_FLOOR
    return -(y * log_a + (1.0 - y) * log_1ma)


def _bce_prime(a: float, y: float) -> float:
    """−y/a + (1 − y)/(1 − a) = (a − y) / (a(1 − a)).

    torch's backward uses max(a(1 − a), 1e-12) as the denominator (the 1e-12 in binary32) and
    ignores the clamp of the logs; so does this function. The exact derivative of the clamped
    loss would differ only where a(1 − a) < 1e-12.
    """
    return (a - y) / max(a * (1.0 - a), _BCE_EPS)


def _bce_with_logits(x: float, y: float) -> float:
    """−[y log σ(x) + (1 − y) log(1 − σ(x))] = max(x, 0) − x·y + log(1 + e^{−|x|})."""
    return max(x, 0.0) - x * y + math.log1p(math.exp(-abs(x)))


def _bce_with_logits_prime(x: float, y: float) -> float:
    """σ(x) − y."""
    return _logistic(x) - y


ELEMENTWISE_LOSSES: dict[str, tuple[Callable[..., float], Callable[..., float]]] = {
    "mse": (_mse, _mse_prime),
    "l1": (_l1, _l1_prime),
    "smooth_l1": (_smooth_l1, _smooth_l1_prime),
    "huber": (_huber, _huber_prime),
    "bce": (_bce, _bce_prime),
    "bce_with_logits": (_bce_with_logits, _bce_with_logits_prime),
}


def softmax(z: Vector) -> Vector:
    """pᵢ = e^{zᵢ} / Σⱼ e^{zⱼ} (shifted by max z, which changes nothing but overflow)."""
    m = max(z)
    e = [math.exp(zi - m) for zi in z]
    s = sum(e)
    return [ei / s for ei in e]


def log_softmax(z: Vector) -> Vector:
    """log pᵢ = zᵢ − log Σⱼ e^{zⱼ}."""
    m = max(z)
    lse = m + math.log(sum(math.exp(zi - m) for zi in z))
    return [zi - lse for zi in z]


def smoothed_target(target: int, classes: int, label_smoothing: float = 0.0) -> Vector:
    """q = (1 − ε)·onehot(target) + ε/K."""
    if not 0 <= target < classes:
        raise ValueError(f"class index {target} out of range for {classes} classes")
    return [(1.0 - label_smoothing) * (c == target) + label_smoothing / classes for c in range(classes)]


def _cross_entropy(z: Vector, target: int, label_smoothing: float = 0.0) -> float:
    """−Σ_c q_c log softmax(z)_c."""
    q = smoothed_target(target, len(z), label_smoothing)
    return -sum(qc * lpc for qc, lpc in zip(q, log_softmax(z)))


def _cross_entropy_grad(z: Vector, target: int, label_smoothing: float = 0.0) -> Vector:
    """∂/∂z of −Σ_c q_c log softmax(z)_c = softmax(z) − q (because Σ_c q_c = 1)."""
    q = smoothed_target(target, len(z), label_smoothing)
    return [pc - qc for pc, qc in zip(softmax(z), q)]


def _nll(logp: Vector, target: int) -> float:
    """−log p_target: the score of the target class, negated (the input is log-probabilities)."""
    smoothed_target(target, len(logp))  # range check
    return -logp[target]


def _nll_grad(logp: Vector, target: int) -> Vector:
    """−onehot(target)."""
    return [-1.0 if c == target else 0.0 for c in range(len(logp))]


CLASS_LOSSES: dict[str, tuple[Callable[..., float], Callable[..., Vector]]] = {
    "cross_entropy": (_cross_entropy, _cross_entropy_grad),
    "nll": (_nll, _nll_grad),
}

LOSSES = (*ELEMENTWISE_LOSSES, *CLASS_LOSSES)


def _reduction_count(loss: str, outputs: Batch, reduction: str) -> int:
    """What 'mean' divides the sum by: N·K for the elementwise losses, N for the class losses."""
    if reduction == "sum":
        return 1
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'sum' (J must be a scalar), got {reduction!r}")
    return len(outputs) if loss in CLASS_LOSSES else sum(len(a) for a in outputs)


def loss_value(loss: str, outputs: Batch, targets: Sequence[Any], reduction: str = "mean",
               **attrs: Any) -> float:
    """J: Σ over the batch (and, elementwise, over the outputs) of ℓ, divided by the count for 'mean'.

    ``targets`` is a batch of vectors for the elementwise losses, a list of class indices for
    ``cross_entropy`` and ``nll``.
    """
    count = _reduction_count(loss, outputs, reduction)
    if loss in CLASS_LOSSES:
        ell = CLASS_LOSSES[loss][0]
        total = sum(ell(a, t, **attrs) for a, t in zip(outputs, targets, strict=True))
    elif loss in ELEMENTWISE_LOSSES:
        ell = ELEMENTWISE_LOSSES[loss][0]
        total = sum(ell(aj, yj, **attrs) for a, y in zip(outputs, targets, strict=True)
                    for aj, yj in zip(a, y, strict=True))
    else:
        raise ValueError(f"unknown loss {loss!r}; known: {list(LOSSES)}")
    return total / count


def loss_gradient(loss: str, outputs: Batch, targets: Sequence[Any], reduction: str = "mean",
                  **attrs: Any) -> Batch:
    """∂J/∂a⁽ᴸ⁾ for every example: ℓ′ (or the class loss's gradient), divided by the count for 'mean'."""
    count = _reduction_count(loss, outputs, reduction)
    if loss in CLASS_LOSSES:
        grad = CLASS_LOSSES[loss][1]
        return [[g / count for g in grad(a, t, **attrs)]
                for a, t in zip(outputs, targets, strict=True)]
    if loss in ELEMENTWISE_LOSSES:
        ell_prime = ELEMENTWISE_LOSSES[loss][1]
        return [[ell_prime(aj, yj, **attrs) / count for aj, yj in zip(a, y, strict=True)]
                for a, y in zip(outputs, targets, strict=True)]
    raise ValueError(f"unknown loss {loss!r}; known: {list(LOSSES)}")


# --- the backward pass -----------------------------------------------------------------------------

def output_delta(dJ_da: Vector, g_prime: Vector) -> Vector:
    """δ⁽ᴸ⁾ = ∂J/∂a⁽ᴸ⁾ ⊙ g′(z⁽ᴸ⁾)."""
    return [d * gp for d, gp in zip(dJ_da, g_prime, strict=True)]


def hidden_delta(W_next: Matrix, delta_next: Vector, g_prime: Vector) -> Vector:
    """δ⁽ˡ⁾ = (W⁽ˡ⁺¹⁾)ᵀ δ⁽ˡ⁺¹⁾ ⊙ g′(z⁽ˡ⁾), i.e. δᵢ = (Σⱼ Wⱼᵢ δⱼ) · g′(zᵢ).

    W⁽ˡ⁺¹⁾ is [out][in], so column i of it — the weights leaving unit i — is ``W[j][i]`` for all j.
    """
    return [sum(W_next[j][i] * delta_next[j] for j in range(len(W_next))) * gp
            for i, gp in enumerate(g_prime)]


def weight_gradient(deltas: Batch, a_prev: Batch) -> Matrix:
    """∂J/∂W⁽ˡ⁾ = Σ_batch δ⁽ˡ⁾ (a⁽ˡ⁻¹⁾)ᵀ, i.e. ∂J/∂Wⱼᵢ = Σₙ δⱼ⁽ⁿ⁾ aᵢ⁽ⁿ⁾ (an outer product per example)."""
    rows, cols = len(deltas[0]), len(a_prev[0])
    return [[sum(d[j] * a[i] for d, a in zip(deltas, a_prev, strict=True)) for i in range(cols)]
            for j in range(rows)]


def bias_gradient(deltas: Batch) -> Vector:
    """∂J/∂b⁽ˡ⁾ = Σ_batch δ⁽ˡ⁾."""
    return [sum(d[j] for d in deltas) for j in range(len(deltas[0]))]


def backward(cache: Cache, weights: Sequence[Matrix], dJ_da: Batch) -> tuple[list[Matrix], list[Vector]]:
    """∂J/∂W⁽ˡ⁾ and ∂J/∂b⁽ˡ⁾ for every layer, given ∂J/∂a⁽ᴸ⁾ for every example.

    Any scalar J of the outputs will do: ``dJ_da`` can come from :func:`loss_gradient` or be
    written by hand (the worked example's ½(a − y)² gives a − y).
    """
    L = len(weights)
    g_primes = [[activation_derivative(z, a, cache.activations[l])
                 for z, a in zip(cache.z[l], cache.a[l + 1], strict=True)] for l in range(L)]
    deltas: list[Batch] = [[] for _ in range(L)]
    deltas[L - 1] = [output_delta(d, gp) for d, gp in zip(dJ_da, g_primes[L - 1], strict=True)]
    for l in range(L - 2, -1, -1):
        deltas[l] = [hidden_delta(weights[l + 1], d_next, gp)
                     for d_next, gp in zip(deltas[l + 1], g_primes[l], strict=True)]
    dW = [weight_gradient(deltas[l], cache.a[l]) for l in range(L)]
    db = [bias_gradient(deltas[l]) for l in range(L)]
    return dW, db


def gradients(x_batch: Batch, y_batch: Sequence[Any], weights: Sequence[Matrix],
              biases: Sequence[Vector], activations: Sequence[str | tuple[str, dict[str, Any]]],
              loss: str, reduction: str = "mean",
              **loss_attrs: Any) -> tuple[float, list[Matrix], list[Vector]]:
    """(J, [∂J/∂W⁽ˡ⁾], [∂J/∂b⁽ˡ⁾]): forward, the loss and its gradient, backward.

    ``loss`` is one of :data:`LOSSES`; ``loss_attrs`` are its torch attributes (``beta`` for
    smooth_l1, ``delta`` for huber, ``label_smoothing`` for cross_entropy).
    """
    cache = forward(x_batch, weights, biases, activations)
    J = loss_value(loss, cache.outputs, y_batch, reduction, **loss_attrs)
    dJ_da = loss_gradient(loss, cache.outputs, y_batch, reduction, **loss_attrs)
    dW, db = backward(cache, weights, dJ_da)
    return J, dW, db
