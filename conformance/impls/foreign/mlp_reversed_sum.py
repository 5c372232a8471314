"""Numpy MLP, correct: the tutorial's sigmoid MLP with every sum taken by hand, last term first.

The same δ-equations as mlp_tutorial.py; the matrix products and the bias sums are Python loops that add the
terms in reverse order — another rounding of the same sums.
"""

import numpy as np

#: what this network is, for the harness (conformance/impls/foreign/__init__.py reads it)
DECLARES = dict(activations=["sigmoid"], optimizers={"sgd": ["lr"]}, losses={"mse": ["mean"]}, layers=(1, 3))


def matmul(a, b):
    """a @ b with each sum taken from its last term to its first."""
    out = np.zeros((a.shape[0], b.shape[1]))
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            s = 0.0
            for k in range(a.shape[1] - 1, -1, -1):
                s += a[i, k] * b[k, j]
            out[i, j] = s
    return out


def column_sums(d):
    out = np.zeros(d.shape[1])
    for j in range(d.shape[1]):
        s = 0.0
        for i in range(d.shape[0] - 1, -1, -1):
            s += d[i, j]
        out[j] = s
    return out


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class MLP:
    def __init__(self, weights, biases):
        self.weights = weights  # W_l: (in, out)
        self.biases = biases    # b_l: (out,)

    def forward(self, x):
        activations = [x]
        for W, b in zip(self.weights, self.biases):
            activations.append(sigmoid(matmul(activations[-1], W) + b))
        return activations

    def backprop(self, x, y):
        """The loss and the gradients of every weight and bias, by the δ-equations."""
        a = self.forward(x)
        out = a[-1]
        loss = np.mean((out - y) ** 2)
        delta = 2.0 / out.size * (out - y) * out * (1 - out)
        dWs, dbs = [None] * len(self.weights), [None] * len(self.weights)
        for l in range(len(self.weights) - 1, -1, -1):
            dWs[l] = matmul(a[l].T, delta)
            dbs[l] = column_sums(delta)
            if l:
                delta = matmul(delta, self.weights[l].T) * a[l] * (1 - a[l])
        return loss, dWs, dbs

    def update(self, dWs, dbs, lr):
        for l in range(len(self.weights)):
            self.weights[l] -= lr * dWs[l]
            self.biases[l] -= lr * dbs[l]
