"""Numpy MLP, correct: a sigmoid MLP as the tutorials derive it — forward, the δ-equations, SGD.

Layout of the tutorials: a batch is the rows of ``x`` (n, in), a layer is ``a @ W + b`` with ``W``
(in, out). The loss is the mean squared error over the batch and the outputs,
``L = mean((a_L − y)²)``; its δ-equations:

    δ_L = 2/(n·k) · (a_L − y) ⊙ σ′(z_L)          σ′(z) = a (1 − a), from the layer's output
    δ_l = (δ_{l+1} W_{l+1}ᵀ) ⊙ σ′(z_l)
    ∂L/∂W_l = a_{l−1}ᵀ δ_l        ∂L/∂b_l = Σ_rows δ_l

and plain SGD, ``W ← W − lr ∂L/∂W``. Sigmoid in every layer.
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
            dbs[l] = delta.sum(axis=0)
            if l:
                delta = (delta @ self.weights[l].T) * a[l] * (1 - a[l])
        return loss, dWs, dbs

    def update(self, dWs, dbs, lr):
        for l in range(len(self.weights)):
            self.weights[l] -= lr * dWs[l]
            self.biases[l] -= lr * dbs[l]
