"""Course-assignment layer functions as an implementation under test: the harness composes them.

Course assignments (CS231n's ``layers.py`` and its many descendants) write each layer as a pair:
``forward(x, …) -> (out, cache)`` and ``backward(dout, cache) -> (dx, …)``, and each loss as
``loss(scores, y) -> (loss, dscores)``. :func:`layer_functions` turns such functions into a
:class:`~conformance.impls.adapters.network_class.NetworkClass`: for each training step the harness
runs ``affine`` then the activation, layer by layer, the loss on the last output, then the backward
functions in reverse, each with the cache its forward returned, and plain SGD::

    adapter = layer_functions(
        name="cs231n", affine=(affine_forward, affine_backward),       # w of shape (in, out)
        activations={"relu": (relu_forward, relu_backward)},
        losses={"cross_entropy": softmax_loss, "mse": mse_loss},
    )

``affine_forward(x, w, b) -> (out, cache)`` with ``x`` (n, in), ``w`` (in, out), ``b`` (out,);
``affine_backward(dout, cache) -> (dx, dw, db)``. An activation's pair takes and gives one array
(``relu_forward(x) -> (out, cache)``, ``relu_backward(dout, cache) -> dx``); ``identity`` needs no
functions. A loss returns the mean over the batch (the reduction the declaration gets:
``{"mse": ["mean"]}``) and its gradient with respect to the scores; class targets come as integers.
What the adapter declares follows from what it is given: the activations at every position, the
losses with mean reduction, plain SGD, layers with bias.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from conformance.impls.adapters.network_class import NetworkClass

Forward = Callable[..., tuple[Any, Any]]
Backward = Callable[[Any, Any], Any]


def layer_functions(*, name: str, affine: tuple[Forward, Backward],
                    activations: Mapping[str, tuple[Forward, Backward]],
                    losses: Mapping[str, Callable[[Any, Any], tuple[Any, Any]]], version: str = "unknown",
                    layers: tuple[int, int] = (1, 4), batch_sizes: tuple[int, int] = (1, 16)) -> NetworkClass:
    """A NetworkClass that composes the functions into the case's network (module doc)."""
    affine_forward, affine_backward = affine

    def loss_and_grads(params: list[Any], x: Any, y: Any, case: Any) -> tuple[Any, list[Any]]:
        caches, a = [], x
        for i, layer in enumerate(case.layers):
            w, b = params[2 * i], params[2 * i + 1]
            a, affine_cache = affine_forward(a, w.T, b)  # the assignment's (in, out) weight
            act_cache = None
            if layer.activation != "identity":
                a, act_cache = activations[layer.activation][0](a)
            caches.append((affine_cache, act_cache, layer.activation))
        loss, dout = losses[case.loss](a, y)
        grads: list[Any] = [None] * len(params)
        for i in range(len(case.layers) - 1, -1, -1):
            affine_cache, act_cache, activation = caches[i]
            if activation != "identity":
                dout = activations[activation][1](dout, act_cache)
            dout, dw, db = affine_backward(dout, affine_cache)
            grads[2 * i], grads[2 * i + 1] = dw.T, db
        return loss, grads

    acts = frozenset(activations) | {"identity"}
    return NetworkClass(
        name=name, version=version,
        capabilities=NetworkClass.declare(activations=acts, optimizers={"sgd": ["lr"]},
                                          losses={k: ["mean"] for k in losses}, bias=(True,), layers=layers,
                                          batch_sizes=batch_sizes),
        build=lambda params, case: (params, case),
        loss_and_grads=lambda model, x, y: loss_and_grads(model[0], x, y, model[1]),
    )
