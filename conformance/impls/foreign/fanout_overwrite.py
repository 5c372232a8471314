"""Tuple style; bug: ``=`` instead of ``+=`` in the chain rule — fan-out overwrites gradients.

``backward()`` assigns ``parent.grad = local * node.grad``: right wherever each value is used once,
wrong as soon as a value feeds two ops (or one op twice, x·x): the last contribution wins.
Otherwise the correct tuple engine.
"""

import math


class Value:
    __slots__ = ("data", "grad", "parents")

    def __init__(self, data, parents=()):
        self.data = data
        self.grad = 0.0
        self.parents = parents

    def __repr__(self):
        return f"Value({self.data}, grad={self.grad})"

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, ((self, 1.0), (other, 1.0)))

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, ((self, other.data), (other, self.data)))

    def __truediv__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        q = self.data / other.data
        return Value(q, ((self, 1.0 / other.data), (other, -q / other.data)))

    def __pow__(self, n):
        assert isinstance(n, (int, float))
        d = n * self.data ** (n - 1) if n != 0 else 0.0
        return Value(self.data**n, ((self, d),))

    def __neg__(self):
        return Value(-self.data, ((self, -1.0),))

    def __sub__(self, other):
        return self + (-other)

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def __rsub__(self, other):
        return (-self) + other

    def __rtruediv__(self, other):
        return Value(other) / self

    def relu(self):
        return Value(self.data if self.data > 0 else 0.0, ((self, 1.0 if self.data > 0 else 0.0),))

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, ((self, 1.0 - t * t),))

    def exp(self):
        e = math.exp(self.data)
        return Value(e, ((self, e),))

    def log(self):
        return Value(math.log(self.data), ((self, 1.0 / self.data),))

    def sigmoid(self):
        x = self.data
        s = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
        return Value(s, ((self, s * (1.0 - s)),))

    def backward(self):
        order, visited = [], {id(self)}
        stack = [(self, 0)]
        while stack:  # depth-first, parents before the node: a topological order
            node, i = stack.pop()
            if i < len(node.parents):
                stack.append((node, i + 1))
                parent = node.parents[i][0]
                if id(parent) not in visited:
                    visited.add(id(parent))
                    stack.append((parent, 0))
            else:
                order.append(node)
        self.grad = 1.0
        for node in reversed(order):
            for parent, local in node.parents:
                parent.grad = local * node.grad
