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

Layer ops (convolution, pooling, normalization) come the same way, each as a pair under its op's
name (``conformance list`` shows the names), and are judged one at a time on their hostile geometry::

    layer_functions(name="cs231n", ops={"conv2d": (conv_forward, conv_backward),
                                        "max_pool2d": (max_pool_forward, max_pool_backward)})

``forward(*inputs, **attrs) -> (out, cache)`` takes the op's inputs as float64 arrays in torch's order
(``conv2d``: x, weight, bias; a normalization: x, weight, bias) and its attributes as keywords with
torch's names (pairs as tuples: ``stride=(2, 1)``; indices and masks as int64 and bool arrays:
``index``, ``input`` of embedding, ``condition``, ``mask``); ``backward(dout, cache)`` returns one
gradient per input, in the same order. ``affine`` and the rest may be left out for layer ops alone.
An assignment's op often takes only part of torch's (one stride and one padding for both axes, no
dilation, no groups): ``without={"conv2d": ["groups", "dilation", "per_axis"]}`` says so, and those
cases are not drawn (the knobs per op: ``conformance.case.geometry.KNOBS``; docs/layers.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from conformance.case.graph import GraphCase, GraphResult
from conformance.impls import Capabilities
from conformance.impls.adapters._common import node_attrs
from conformance.impls.adapters.network_class import NetworkClass, checked_tensor

Forward = Callable[..., tuple[Any, Any]]
Backward = Callable[[Any, Any], Any]


@dataclass
class LayerFunctions(NetworkClass):
    """A :class:`NetworkClass` that also runs graph cases of one layer op through its pair."""

    ops: Mapping[str, tuple[Forward, Backward]] = field(default_factory=dict)

    def run_graph(self, case: GraphCase) -> GraphResult:
        """``forward`` on the leaves, ``backward`` on the cotangent and the cache (the module doc)."""
        if len(case.nodes) != 1:
            raise ValueError(f"layer functions run one layer op per case, got {len(case.nodes)} nodes")
        (node,) = case.nodes
        forward, backward = self.ops[node.op]
        arrays = {k: np.array(t.values, dtype=np.float64).reshape(t.shape) for k, t in case.leaves.items()}
        out, cache = forward(*(arrays[i] for i in node.inputs), **node_attrs(node))  # indices, masks: arrays
        ct = case.cotangent
        grads = backward(np.array(ct.values, dtype=np.float64).reshape(ct.shape), cache)
        grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
        if len(grads) != len(node.inputs):
            raise ValueError(f"{node.op} backward gave {len(grads)} gradients for {len(node.inputs)} inputs "
                             f"({', '.join(node.inputs)})")
        total: dict[str, Any] = {k: np.zeros(t.shape) for k, t in case.leaves.items()}
        for i, g in zip(node.inputs, grads):  # a leaf fed to two inputs gets both gradients
            shape = case.leaves[i].shape
            total[i] = total[i] + np.reshape(checked_tensor(g, shape, f"the gradient of {i}").values, shape)
        return GraphResult(value=checked_tensor(out, ct.shape, f"{node.op}'s output"),
                           grads={k: checked_tensor(g, case.leaves[k].shape, k) for k, g in total.items()})


def _unusable(*_: Any) -> Any:
    raise TypeError("no network functions were given (affine, activations, losses)")


def layer_functions(*, name: str, affine: tuple[Forward, Backward] | None = None,
                    activations: Mapping[str, tuple[Forward, Backward]] | None = None,
                    losses: Mapping[str, Callable[[Any, Any], tuple[Any, Any]]] | None = None,
                    ops: Mapping[str, tuple[Forward, Backward]] | None = None, version: str = "unknown",
                    layers: tuple[int, int] = (1, 4), batch_sizes: tuple[int, int] = (1, 16),
                    without: Mapping[str, Any] | None = None) -> LayerFunctions:
    """An implementation that composes the functions into each case's network, and runs each layer
    op's pair on its cases (module doc). ``without``: per op, the knobs of its geometry the functions
    do not take (``{"conv2d": ["groups", "dilation", "per_axis"]}``; ``Capabilities.without``)."""
    ops, without = dict(ops or {}), dict(without or {})
    if affine is None:
        return LayerFunctions(name=name, version=version, capabilities=Capabilities(frozenset(ops), without=without),
                              build=_unusable, loss_and_grads=_unusable, ops=ops)
    activations, losses = dict(activations or {}), dict(losses or {})
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
    caps = NetworkClass.declare(activations=acts, optimizers={"sgd": ["lr"]}, losses={k: ["mean"] for k in losses},
                                bias=(True,), layers=layers, batch_sizes=batch_sizes)
    return LayerFunctions(
        name=name, version=version, capabilities=replace(caps, ops=frozenset(ops), without=without),
        build=lambda params, case: (params, case),
        loss_and_grads=lambda model, x, y: loss_and_grads(model[0], x, y, model[1]), ops=ops,
    )
