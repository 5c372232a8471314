"""Layers in torch's layout, with every parameter given explicitly (no hidden randomness).

``Linear`` keeps ``weight`` as ``[out_features, in_features]`` and computes ``y = x Wᵀ + b``, as
``torch.nn.Linear``; ``MLP`` stacks them with one activation per layer, named as in the op table
(:data:`refimpl.ops.OPS`) or ``"identity"``. ``parameters()`` lists tensors in torch's order —
``layer0.weight, layer0.bias, layer1.weight, …`` — so optimizer states line up with torch's.
"""

from __future__ import annotations

from typing import Any, Sequence

from .numbers import FLOAT64
from .ops import OPS
from .tensor import Tensor, as_tensor, matmul, tensor

Activation = str | tuple[str, dict[str, Any]]


def _parameter(values: Any, shape: tuple[int, ...], name: str, system: Any) -> Tensor:
    """A leaf tensor of the given values, checked against the shape torch would give it."""
    t = tensor(values.tolist() if isinstance(values, Tensor) else values, system, requires_grad=True)
    if t.shape != shape:
        raise ValueError(f"{name} has shape {t.shape}, expected {shape}")
    return t


class Linear:
    """``y = x Wᵀ + b`` for ``x`` of shape ``(..., in_features)``; ``bias=None`` means no bias."""

    def __init__(self, in_features: int, out_features: int, weight: Any, bias: Any = None, *,
                 system: Any = FLOAT64) -> None:
        self.in_features, self.out_features = in_features, out_features
        self.weight = _parameter(weight, (out_features, in_features), "weight", system)
        self.bias = None if bias is None else _parameter(bias, (out_features,), "bias", system)

    def __call__(self, x: Any) -> Tensor:
        x = as_tensor(x, self.weight.system)
        y = matmul(x, self.weight.transpose(0, 1))
        return y if self.bias is None else y + self.bias

    forward = __call__

    def parameters(self) -> list[Tensor]:
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()


def _activation(spec: Activation) -> tuple[str, dict[str, Any]]:
    """``"tanh"`` or ``("leaky_relu", {"negative_slope": 0.2})``, checked against the op table."""
    name, attrs = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1]))
    if name == "identity":
        if attrs:
            raise ValueError("identity takes no attributes")
        return name, attrs
    if name not in OPS or OPS[name].arity != 1:
        raise ValueError(f"unknown activation {name!r}: use 'identity' or a unary op of refimpl.ops.OPS")
    OPS[name].attributes(attrs)  # an unknown attribute is an error now, not at the first call
    return name, attrs


class MLP:
    """Linear layers ``sizes[0] → sizes[1] → … → sizes[-1]``, each followed by its activation."""

    def __init__(self, sizes: Sequence[int], activations: Sequence[Activation],
                 weights: Sequence[Any], biases: Sequence[Any] | None = None, *,
                 system: Any = FLOAT64) -> None:
        n = len(sizes) - 1
        if n < 1 or len(activations) != n or len(weights) != n:
            raise ValueError(f"{len(sizes)} sizes need {n} activations and {n} weights, "
                             f"got {len(activations)} and {len(weights)}")
        biases = [None] * n if biases is None else list(biases)
        if len(biases) != n:
            raise ValueError(f"{n} layers need {n} biases (None for a layer without), got {len(biases)}")
        self.layers = [Linear(sizes[i], sizes[i + 1], weights[i], biases[i], system=system)
                       for i in range(n)]
        self.activations = [_activation(a) for a in activations]

    def __call__(self, x: Any) -> Tensor:
        h = as_tensor(x, self.layers[0].weight.system)
        for layer, (name, attrs) in zip(self.layers, self.activations):
            h = layer(h)
            if name != "identity":
                h = h.apply(name, **attrs)
        return h

    forward = __call__

    def parameters(self) -> list[Tensor]:
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()
