"""A numpy MLP written like the seed tutorials, verified as a network: ``conformance verify --impl
examples/numpy_mlp.py``.

The network (the first part) knows nothing of the suite: sigmoid layers, the mean squared error,
the δ-equations for the gradients and a plain SGD step, in the tutorials' layout (a batch is the
rows of ``x``, a layer is ``a @ W + b`` with ``W`` of shape (in, out)). The adapter (the last
part, a dozen lines) says what the network is and how to call it: the harness hands it the case's
parameters in torch's layout (``W`` of shape (out, in), then ``b``, per layer) and reads the loss,
the gradients and the parameters after each step back in the same layout.
"""

import numpy as np

from conformance.impls.adapters.network_class import NetworkClass


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class MLP:
    def __init__(self, weights, biases):
        self.weights, self.biases = weights, biases

    def backprop(self, x, y):
        """The loss and every gradient, by the δ-equations."""
        a = [x]
        for W, b in zip(self.weights, self.biases):
            a.append(sigmoid(a[-1] @ W + b))
        loss = np.mean((a[-1] - y) ** 2)
        delta = 2.0 / a[-1].size * (a[-1] - y) * a[-1] * (1 - a[-1])
        dWs, dbs = [], []
        for l in range(len(self.weights) - 1, -1, -1):
            dWs.insert(0, a[l].T @ delta)
            dbs.insert(0, delta.sum(axis=0))
            delta = (delta @ self.weights[l].T) * a[l] * (1 - a[l])
        return loss, dWs, dbs

    def update(self, dWs, dbs, lr):
        for W, b, dW, db in zip(self.weights, self.biases, dWs, dbs):
            W -= lr * dW
            b -= lr * db


# --- the adapter -----------------------------------------------------------------------------------

def loss_and_grads(net, x, y):
    loss, dWs, dbs = net.backprop(x, y)
    return loss, [g for dW, db in zip(dWs, dbs) for g in (dW.T, db)]  # torch's order and layout


adapter = NetworkClass(
    name="numpy-mlp", version="1.0",
    capabilities=NetworkClass.declare(activations=["sigmoid"], optimizers={"sgd": ["lr"]}, losses={"mse": ["mean"]}),
    build=lambda params, case: MLP([W.T.copy() for W in params[0::2]], [b.copy() for b in params[1::2]]),
    loss_and_grads=loss_and_grads,
    step=lambda net, grads, lr: net.update([g.T for g in grads[0::2]], grads[1::2], lr),
    params=lambda net: [p for W, b in zip(net.weights, net.biases) for p in (W.T, b)],
)
