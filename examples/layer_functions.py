"""Layer functions as course assignments write them, verified as networks: ``conformance verify
--impl examples/layer_functions.py``.

Each layer is a forward returning ``(out, cache)`` and a backward taking ``(dout, cache)``; each loss
returns the loss and its gradient with respect to the scores (CS231n's ``layers.py`` style). The
harness composes them into each case's network (``layer_functions``, the last lines).
"""

import numpy as np

from conformance.impls.adapters.layer_functions import layer_functions


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    return dout * (cache > 0)


def sigmoid_forward(x):
    out = 1 / (1 + np.exp(-x))
    return out, out


def sigmoid_backward(dout, cache):
    return dout * cache * (1 - cache)


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -log_probs[np.arange(n), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return loss, dx / n


def mse_loss(x, y):
    diff = x - y
    return np.mean(diff ** 2), 2 * diff / diff.size


adapter = layer_functions(
    name="layer-functions", version="1.0", affine=(affine_forward, affine_backward),
    activations={"relu": (relu_forward, relu_backward), "sigmoid": (sigmoid_forward, sigmoid_backward)},
    losses={"cross_entropy": softmax_loss, "mse": mse_loss},
)
