"""Numpy MLP; bug: the tutorial's sigmoid MLP with the bias gradient averaged over the batch.

The output δ already carries the loss's 1/n; ``delta.mean(axis=0)`` divides by n once more, where the
weight gradient (``a.T @ delta``) sums. Right at batch 1, 1/n of the truth otherwise.
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
        delta = 2.0 / out.size * (out - y) * out * (1 - out)
        dWs, dbs = [None] * len(self.weights), [None] * len(self.weights)
        for l in range(len(self.weights) - 1, -1, -1):
            dWs[l] = a[l].T @ delta
            dbs[l] = delta.mean(axis=0)
            if l:
                delta = (delta @ self.weights[l].T) * a[l] * (1 - a[l])
        return loss, dWs, dbs

    def update(self, dWs, dbs, lr):
        for l in range(len(self.weights)):
            self.weights[l] -= lr * dWs[l]
            self.biases[l] -= lr * dbs[l]
