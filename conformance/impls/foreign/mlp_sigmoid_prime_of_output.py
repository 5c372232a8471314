"""Numpy MLP; bug: σ′ applied to the activation instead of the pre-activation.

``sigmoid_prime(z) = σ(z)(1 − σ(z))`` called with ``a = σ(z)``: σ(a)(1 − σ(a)), the classic slip of the
δ-equations.
"""

import numpy as np

#: what this network is, for the harness (conformance/impls/foreign/__init__.py reads it)
DECLARES = dict(activations=["sigmoid"], optimizers={"sgd": ["lr"]}, losses={"mse": ["mean"]}, layers=(1, 3))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


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
        delta = 2.0 / out.size * (out - y) * sigmoid_prime(out)
        dWs, dbs = [None] * len(self.weights), [None] * len(self.weights)
        for l in range(len(self.weights) - 1, -1, -1):
            dWs[l] = a[l].T @ delta
            dbs[l] = delta.sum(axis=0)
            if l:
                delta = (delta @ self.weights[l].T) * sigmoid_prime(a[l])
        return loss, dWs, dbs

    def update(self, dWs, dbs, lr):
        for l in range(len(self.weights)):
            self.weights[l] -= lr * dWs[l]
            self.biases[l] -= lr * dbs[l]
