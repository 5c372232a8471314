"""A hand-written network (numpy, plain Python) as an implementation under test, in a few lines.

The seed tutorials' network is a class with its weights, a forward pass, a backward pass that
returns the gradient of every parameter (the δ-equations), and an SGD step. :class:`NetworkClass`
runs network cases through such a class from a small declaration — the adapter is the few lambdas
that say how to build the model, how to get the loss and gradients of one batch, and (optionally)
how to take a step::

    adapter = NetworkClass(
        name="tutorial-mlp", version="1.0",
        capabilities=NetworkClass.declare(activations=["sigmoid"], optimizers={"sgd": ["lr"]},
                                          losses={"mse": ["mean"]}, layers=(2, 2)),
        build=lambda params, case: MLP(*params),          # params: W0, b0, W1, b1, … (numpy arrays)
        loss_and_grads=lambda net, x, y: net.backprop(x, y),   # -> (loss, [dW0, db0, dW1, db1, …])
        step=lambda net, grads, lr: net.update(grads, lr),      # optional
        params=lambda net: [net.W0, net.b0, net.W1, net.b1],    # optional: the arrays after a step
    )

The parameters come in torch's layout and order (``conformance/case/network.py``): per layer the
weight ``(out, in)`` then the bias ``(out,)`` when the case has one — the order of
``case.param_names``. Gradients are returned in the same order and shapes. ``x`` is ``(batch, in)``
and ``y`` the targets (``(batch, out)``; class indices ``(batch,)`` as integers). ``case`` is there
for a network that needs to know more than its parameters (its activations:
``[la.activation for la in case.layers]``, the reduction). Without ``step``, the harness takes
plain SGD itself: ``p -= lr · g`` on the arrays ``build`` was given (a model that copies them needs
``params``). Without ``params``, the parameters after a step are those arrays. Each step is
``loss_and_grads`` (the model's own forward and backward) then the step, on that step's batch. A
gradients-only run (one batch, no optimizer: the seed tutorials' first contract) is
``loss_and_grads`` alone; every declaration takes them.

Everything is checked: a gradient of the wrong shape, a loss that is not a number, a list of the
wrong length is an ``error`` naming it. No graph cases: ``capabilities.ops`` is empty unless the
declaration gives ops and ``run_graph``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.case.grain import Grain
from conformance.case.graph import Tensor
from conformance.case.network import CLASS_LOSSES, NO_OPTIMIZER, OPTIMIZER_HYPER, NetworkCase, NetworkResult, StepResult
from conformance.impls import Capabilities


def _arrays(case: NetworkCase) -> list[np.ndarray]:
    out = []
    for la in case.layers:
        out.append(np.array(la.weight.values, dtype=np.float64).reshape(la.weight.shape))
        if la.bias is not None:
            out.append(np.array(la.bias.values, dtype=np.float64))
    return out


def checked_tensor(a: Any, shape: tuple[int, ...], what: str) -> Tensor:
    """``a`` (an array of the implementation's) as a case tensor of ``shape``, or an error naming ``what``."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{what} is {type(a).__name__} of dtype {arr.dtype}, not an array of real numbers")
    if arr.shape != shape and arr.size == math.prod(shape) and arr.ndim == 2 and 1 in arr.shape and len(shape) == 1:
        arr = arr.reshape(shape)  # a bias kept as a column or row vector, (n, 1) or (1, n)
    if arr.shape != shape:
        hint = " (the transpose's shape: a gradient laid out transposed?)" if arr.shape == shape[::-1] else ""
        raise ValueError(f"{what} has shape {list(arr.shape)}, expected {list(shape)}{hint}")
    return Tensor(shape, tuple(float(v) for v in arr.reshape(-1)))


def _number(x: Any, what: str) -> float:
    arr = np.asarray(x)
    if arr.size != 1 or isinstance(x, bool) or not (isinstance(x, numbers.Real) or arr.dtype.kind in "fiu"):
        raise TypeError(f"{what} is {type(x).__name__} {np.shape(x)}, not one real number")
    return float(arr.reshape(-1)[0])


@dataclass
class NetworkClass:
    """See the module doc."""

    name: str
    capabilities: Capabilities
    build: Callable[[list[np.ndarray], NetworkCase], Any]
    loss_and_grads: Callable[[Any, np.ndarray, np.ndarray], tuple[Any, Sequence[Any]]]
    step: Callable[[Any, Sequence[Any], float], Any] | None = None
    params: Callable[[Any], Sequence[Any]] | None = None
    version: str = "unknown"

    @staticmethod
    def declare(*, activations: Iterable[str], optimizers: Any = ("sgd",), losses: Any = ("mse",),
                output_activations: Iterable[str] | None = None, bias: Iterable[bool] = (True,),
                layers: tuple[int, int] = (1, 4), batch_sizes: tuple[int, int] = (1, 16),
                dtypes: tuple[str, ...] = ("float64",)) -> Capabilities:
        """Capabilities for a networks-only implementation (conformance/case/grain.py). Gradients-only
        runs (optimizer ``none``: ``loss_and_grads`` alone) come with any declaration; ``optimizers=()``
        declares only them, for a network with a backward and no update yet."""
        grain = Grain.of(optimizers, OPTIMIZER_HYPER)
        return Capabilities(frozenset(), dtypes, networks=True, activations=frozenset(activations),
                            output_activations=None if output_activations is None else frozenset(output_activations),
                            optimizers={**grain, NO_OPTIMIZER: ()}, losses=losses, bias=frozenset(bias), layers=layers,
                            batch_sizes=batch_sizes)

    def run_network(self, case: NetworkCase) -> NetworkResult:
        """The case's training run through the declared functions (see the module doc)."""
        names = case.param_names
        shapes = [self._shape(case, n) for n in names]
        arrays = _arrays(case)
        model = self.build(arrays, case)
        lr = float(case.hyper.get("lr", 0.0))
        steps = []
        for t, batch in enumerate(case.batches, 1):
            x = np.array(batch.x.values, dtype=np.float64).reshape(batch.x.shape)
            y = np.array(batch.y.values, dtype=np.float64).reshape(batch.y.shape)
            if case.loss in CLASS_LOSSES:
                y = y.astype(np.int64)
            loss, grads = self.loss_and_grads(model, x, y)
            grads = list(grads)
            if len(grads) != len(names):
                raise ValueError(f"step {t}: {len(grads)} gradients for {len(names)} parameters ({', '.join(names)})")
            loss_t = (checked_tensor(loss, batch.y.shape[:1] if case.loss in CLASS_LOSSES else batch.y.shape,
                              f"step {t}: the loss") if case.reduction == "none"
                      else Tensor.scalar(_number(loss, f"step {t}: the loss")))
            grad_t = {n: checked_tensor(g, s, f"step {t}: the gradient of {n}")
                      for n, g, s in zip(names, grads, shapes)}
            if case.gradients_only:  # the loss and the gradients are the whole run
                steps.append(StepResult(loss_t, grad_t, {}))
                continue
            if self.step is not None:
                self.step(model, grads, lr)
            else:
                for p, g in zip(arrays, grads):
                    p -= lr * np.asarray(g, dtype=np.float64).reshape(p.shape)
            after = list(self.params(model)) if self.params is not None else arrays
            if len(after) != len(names):
                raise ValueError(f"step {t}: params() gave {len(after)} arrays for {len(names)} parameters")
            params_t = {n: checked_tensor(p, s, f"step {t}: {n} after the step")
                        for n, p, s in zip(names, after, shapes)}
            steps.append(StepResult(loss_t, grad_t, params_t))
        return NetworkResult(steps)

    @staticmethod
    def _shape(case: NetworkCase, name: str) -> tuple[int, ...]:
        la = case.layers[int(name[len("layer"):name.index(".")])]
        return (la.out_features, la.in_features) if name.endswith(".weight") else (la.out_features,)

