"""Training runs through a micrograd-like ``nn`` module: ``MLP(nin, nouts)`` of ``Layer``s of ``Neuron``s.

micrograd's ``nn.py`` (and the clones that copy it) build an MLP from the engine's Values:
``MLP(nin, [n1, n2, …])`` with ``.layers``, each with ``.neurons``, each with ``parameters()`` —
its weights then its bias — and a call ``mlp(x)`` on a list of inputs; ``zero_grad()`` and
``parameters()`` on the whole. Where the module has that (:func:`find_mlp`), the adapter runs
network cases through it, the way micrograd's own demo trains:

* the MLP is built with the case's sizes and every parameter is loaded from the case
  (``neuron.parameters()[j].data``: weight ``j``, then the bias);
* each step: ``zero_grad()``, the forward of every sample of the batch, the loss built from the
  engine's own Values — MSE as ``Σ (out − y)·(out − y)``, times ``1/N`` for the mean — then
  ``loss.backward()``; the gradients are read from ``.grad``, and SGD updates every parameter of
  ``parameters()`` in place, ``p.data -= lr · p.grad``, as the demo does.

Declared, at the grain of what such an MLP is (conformance/case/grain.py): plain SGD (``lr``), MSE
with mean or sum, layers with bias, and the activations :func:`find_mlp` finds at each position.
Those are found by running the module's own MLP once on one input (``w = 0.5, b = 0, x = −1``):
ReLU gives 0, tanh −0.4621…, a sigmoid 0.3775…, none −0.5. That identifies what the class *is*
(micrograd: ReLU hidden layers, a linear last layer; the lecture's version: tanh everywhere); it
judges nothing — a module whose MLP gives none of these runs no network cases, and says why.
"""

from __future__ import annotations

import importlib
import math
import random
from dataclasses import dataclass
from typing import Any

from conformance.case.graph import Tensor
from conformance.case.network import NetworkCase, NetworkResult, StepResult

#: what one neuron with w = 0.5, b = 0 gives on x = −1 (its pre-activation −0.5), per activation
SIGNATURES = {"identity": -0.5, "relu": 0.0, "tanh": math.tanh(-0.5), "sigmoid": 1 / (1 + math.exp(0.5))}


@dataclass(frozen=True)
class MLPModule:
    """A micrograd-like MLP class and the activations found at each position."""

    mlp: Any  # the class: MLP(nin, nouts)
    hidden: str  # the activation of every layer but the last
    output: str  # the activation of the last layer


def _neuron_params(neuron: Any) -> list[Any]:
    return list(neuron.parameters())


def _layers(mlp: Any) -> list[list[Any]]:
    """The model's neurons, layer by layer (``mlp.layers[i].neurons``)."""
    return [list(layer.neurons) for layer in mlp.layers]


def _outputs(out: Any) -> list[Any]:
    """A layer's or the MLP's output as a list (micrograd returns a lone Value for one output)."""
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _identify(value: float) -> str | None:
    for name, want in SIGNATURES.items():
        if math.isclose(value, want, rel_tol=1e-9, abs_tol=1e-12):
            return name
    return None


def find_mlp(module: Any) -> tuple[MLPModule | None, str]:
    """The module's MLP class (``module.MLP``, or ``module.nn.MLP`` of a package) with its
    activations, or None and why not."""
    cls = getattr(module, "MLP", None)
    if cls is None and hasattr(module, "__path__"):
        try:
            cls = getattr(importlib.import_module(f"{module.__name__}.nn"), "MLP", None)
        except ImportError:
            cls = None
    if cls is None:
        return None, "no MLP class (module.MLP or module.nn.MLP)"
    state = random.getstate()  # an MLP draws its initial weights from the global generator
    try:
        model = cls(1, [1, 1])
        found = []
        for neurons in _layers(model):
            for p in _neuron_params(neurons[0]):
                p.data = 0.0
            ps = _neuron_params(neurons[0])
            ps[0].data = 0.5
            out = _outputs(neurons[0]([-1.0]))[0]
            found.append(_identify(float(out.data)))
    except Exception as exc:  # not micrograd's nn API: no training runs, and the reason is kept
        return None, f"its MLP is not micrograd's (MLP(1, [1, 1]): {type(exc).__name__}: {exc})"
    finally:
        random.setstate(state)
    if len(found) != 2 or None in found:
        return None, f"its MLP's activations are none of {', '.join(SIGNATURES)}"
    return MLPModule(cls, found[0], found[1]), ""


def _load(model: Any, case: NetworkCase) -> None:
    for layer, neurons in zip(case.layers, _layers(model)):
        n_in = layer.in_features
        for k, neuron in enumerate(neurons):
            ps = _neuron_params(neuron)
            for j in range(n_in):
                ps[j].data = float(layer.weight.values[k * n_in + j])
            ps[n_in].data = float(layer.bias.values[k]) if layer.bias is not None else 0.0


def _read(model: Any, case: NetworkCase, what: str) -> dict[str, Tensor]:
    out = {}
    for i, (layer, neurons) in enumerate(zip(case.layers, _layers(model))):
        n_in = layer.in_features
        rows = [[float(getattr(p, what)) for p in _neuron_params(n)] for n in neurons]
        out[f"layer{i}.weight"] = Tensor((layer.out_features, n_in), tuple(v for r in rows for v in r[:n_in]))
        out[f"layer{i}.bias"] = Tensor((layer.out_features,), tuple(r[n_in] for r in rows))
    return out


def run_mlp(found: MLPModule, case: NetworkCase) -> NetworkResult:
    """One training run (see the module doc); the caller turns an exception into an error result."""
    state = random.getstate()
    try:
        model = found.mlp(case.sizes[0], [la.out_features for la in case.layers])
    finally:
        random.setstate(state)
    _load(model, case)
    lr = float(case.hyper.get("lr", 0.0))
    steps = []
    for batch in case.batches:
        model.zero_grad()
        n, n_in = batch.x.shape
        n_out = case.sizes[-1]
        total = None
        for b in range(n):
            out = _outputs(model([float(v) for v in batch.x.values[b * n_in:(b + 1) * n_in]]))
            for o in range(n_out):
                d = out[o] + (-float(batch.y.values[b * n_out + o]))
                total = d * d if total is None else total + d * d
        loss = total * (1.0 / (n * n_out)) if case.reduction == "mean" else total
        loss.backward()
        grads = _read(model, case, "grad")
        if case.gradients_only:
            steps.append(StepResult(Tensor.scalar(float(loss.data)), grads, {}))
            continue
        for p in model.parameters():
            p.data -= lr * p.grad
        steps.append(StepResult(Tensor.scalar(float(loss.data)), grads, _read(model, case, "data")))
    return NetworkResult(steps)
