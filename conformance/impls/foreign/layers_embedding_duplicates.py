"""Numpy layer functions; bug: embedding backward ``dW[input.ravel()] += dout.reshape(-1, D)``: repeats count once.

numpy's fancy ``+=`` reads, adds and writes back once per distinct index, so a row looked up k times gets one
lookup's gradient (the last), not k of them: pytorch#1528's "indexing with duplication" in numpy form (np.add.at is
the fix). Invisible while every token id in the batch is distinct; the forward is right.
"""

import numpy as np

BASE = "layers_assignment.py"


def embedding_forward(weight, input):
    input = np.asarray(input)
    return weight[input], (weight.shape, input)


def embedding_backward(dout, cache):
    (V, D), input = cache
    dW = np.zeros((V, D))
    dW[input.ravel()] += dout.reshape(-1, D)  # BUG: a repeated row gets only one of its gradients
    return (dW,)


LAYERS = {"embedding": (embedding_forward, embedding_backward)}
