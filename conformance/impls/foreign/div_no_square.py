"""Tape style; bug: the denominator of a quotient gets −a/b instead of −a/b².

The vector-Jacobian product of ``div`` forgets the second division by b: −g·(a/b) instead of
−g·(a/b)/b. Otherwise the correct tape engine.
"""

import math

TAPE = []  # (output, inputs, vjp): vjp(g) gives the gradient of each input


class Value:
    def __init__(self, data):
        self.data = data
        self.grad = 0.0
        self.position = None  # on the tape, for values an op produced

    def __repr__(self):
        return f"Value({self.data!r}, grad={self.grad!r})"


def record(data, inputs, vjp):
    out = Value(data)
    out.position = len(TAPE)
    TAPE.append((out, inputs, vjp))
    return out


def as_value(x):
    return x if isinstance(x, Value) else Value(x)


def add(a, b):
    return record(a.data + b.data, (a, b), lambda g: (g, g))


def mul(a, b):
    return record(a.data * b.data, (a, b), lambda g: (g * b.data, g * a.data))


def div(a, b):
    q = a.data / b.data
    return record(q, (a, b), lambda g: (g / b.data, -g * q))


def power(a, n):
    if n == 0:
        return record(a.data**n, (a,), lambda g: (0.0,))
    return record(a.data**n, (a,), lambda g: (g * n * a.data ** (n - 1),))


def relu(a):
    return record(a.data if a.data > 0 else 0.0, (a,), lambda g: (g if a.data > 0 else 0.0,))


def tanh(a):
    t = math.tanh(a.data)
    return record(t, (a,), lambda g: (g * (1 - t * t),))


def exp(a):
    e = math.exp(a.data)
    return record(e, (a,), lambda g: (g * e,))


def log(a):
    return record(math.log(a.data), (a,), lambda g: (g / a.data,))


def sigmoid(a):
    x = a.data
    s = 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))
    return record(s, (a,), lambda g: (g * s * (1 - s),))


def backward(out):
    if out.position is None:  # a leaf: nothing recorded
        out.grad = 1.0
        return
    out.grad = 1.0
    for node, inputs, vjp in reversed(TAPE[: out.position + 1]):
        for x, g in zip(inputs, vjp(node.grad)):
            x.grad += g
    TAPE.clear()


Value.__add__ = lambda self, other: add(self, as_value(other))
Value.__radd__ = lambda self, other: add(as_value(other), self)
Value.__mul__ = lambda self, other: mul(self, as_value(other))
Value.__rmul__ = lambda self, other: mul(as_value(other), self)
Value.__truediv__ = lambda self, other: div(self, as_value(other))
Value.__rtruediv__ = lambda self, other: div(as_value(other), self)
Value.__neg__ = lambda self: mul(self, Value(-1.0))
Value.__sub__ = lambda self, other: add(self, -as_value(other))
Value.__rsub__ = lambda self, other: add(as_value(other), -self)
Value.__pow__ = power
Value.relu = relu
Value.tanh = tanh
Value.exp = exp
Value.log = log
Value.sigmoid = sigmoid
Value.backward = backward
