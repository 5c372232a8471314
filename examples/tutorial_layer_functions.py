"""The seed tutorial's MLP as course-assignment layer functions, verified as networks: ``conformance
verify --impl examples/tutorial_layer_functions.py``.

Sigmoid layers with a bias, the mean squared error, plain SGD (the harness takes the step): each layer
is a forward returning ``(out, cache)`` and a backward taking ``(dout, cache)``, the loss returns the
loss and its gradient with respect to the scores, as an assignment's ``layers.py`` writes them
(``w`` of shape (in, out)). The harness composes them into each case's network (the last lines);
``examples/layer_functions.py`` is the same with relu and the softmax loss.
"""

import numpy as np

from conformance.impls.adapters.layer_functions import layer_functions


def affine_forward(x, w, b):
    out = x @ w + b
    cache = (x, w)
    return out, cache


def affine_backward(dout, cache):
    x, w = cache
    dx = dout @ w.T
    dw = x.T @ dout
    db = np.sum(dout, axis=0)
    return dx, dw, db


def sigmoid_forward(x):
    out = 1 / (1 + np.exp(-x))
    cache = out
    return out, cache


def sigmoid_backward(dout, cache):
    out = cache
    dx = dout * out * (1 - out)
    return dx


def mse_loss(x, y):
    loss = np.mean((x - y) ** 2)
    dx = 2 * (x - y) / x.size
    return loss, dx


adapter = layer_functions(
    name="tutorial-layer-functions", version="1.0", affine=(affine_forward, affine_backward),
    activations={"sigmoid": (sigmoid_forward, sigmoid_backward)}, losses={"mse": mse_loss},
)
