"""Numpy MLP; bug: the tutorial's sigmoid MLP with the MSE derivative taken without its factor 2.

``d/da mean((a − y)²)`` written as ``(a − y) / size``: every gradient is half the truth.
"""

import numpy as np

#: what this network is, for the harness (conformance/impls/foreign/__init__.py reads it)
DECLARES = dict(activations=["sigmoid"], optimizers={"sgd": ["lr"]}, losses={"mse": ["mean"]}, layers=(1, 3))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class MLP:
    def __init__(self, weights, biases):
        self.weights = weights  # W_l: (in, out)
        self.biases = biases    # b_l: (out,)

    def forward(self, x):
        activations = [x]
        for W, b in zip(self.weights, self.biases):
            activations.append(sigmoid(activations[-1] @ W + b))
        return activations

    def backprop(self, x, y):
        """The loss and the gradients of every weight and bias, by the δ-equations."""
        a = self.forward(x)
        out = a[-1]
        loss = np.mean((out - y) ** 2)
        delta = 1.0 / out.size * (out - y) * out * (1 - out)
        dWs, dbs = [None] * len(self.weights), [None] * len(self.weights)
        for l in range(len(self.weights) - 1, -1, -1):
            dWs[l] = a[l].T @ delta
            dbs[l] = delta.sum(axis=0)
            if l:
                delta = (delta @ self.weights[l].T) * a[l] * (1 - a[l])
        return loss, dWs, dbs

    def update(self, dWs, dbs, lr):
        for l in range(len(self.weights)):
            self.weights[l] -= lr * dWs[l]
            self.biases[l] -= lr * dbs[l]
