"""Class-per-op style; bug: the denominator of a quotient gets 1/b, the numerator's derivative.

``Div.backward`` copies the first line for the second input: d(a/b)/db = 1/b instead of −a/b².
Otherwise the correct class-per-op engine.
"""

import math
from collections import deque


class Op:
    """One node of the graph: its inputs, the forward formula, and how gradients flow back."""

    def __init__(self, *inputs):
        self.inputs = inputs

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, out):
        """Add this op's contribution to the gradient of each input, given ``out.grad``."""
        raise NotImplementedError


class Add(Op):
    def forward(self, a, b):
        return a + b

    def backward(self, out):
        a, b = self.inputs
        a.grad += out.grad
        b.grad += out.grad


class Mul(Op):
    def forward(self, a, b):
        return a * b

    def backward(self, out):
        a, b = self.inputs
        a.grad += b.data * out.grad
        b.grad += a.data * out.grad


class Div(Op):
    def forward(self, a, b):
        return a / b

    def backward(self, out):
        a, b = self.inputs
        a.grad += out.grad / b.data
        b.grad += out.grad / b.data


class Pow(Op):
    def __init__(self, x, n):
        super().__init__(x)
        self.n = n

    def forward(self, x):
        return x**self.n

    def backward(self, out):
        (x,) = self.inputs
        if self.n != 0:
            x.grad += self.n * x.data ** (self.n - 1) * out.grad


class Relu(Op):
    def forward(self, x):
        return max(x, 0.0)

    def backward(self, out):
        (x,) = self.inputs
        if x.data > 0:
            x.grad += out.grad


class Tanh(Op):
    def forward(self, x):
        return math.tanh(x)

    def backward(self, out):
        (x,) = self.inputs
        x.grad += (1 - out.data * out.data) * out.grad


class Exp(Op):
    def forward(self, x):
        return math.exp(x)

    def backward(self, out):
        (x,) = self.inputs
        x.grad += out.data * out.grad


class Log(Op):
    def forward(self, x):
        return math.log(x)

    def backward(self, out):
        (x,) = self.inputs
        x.grad += out.grad / x.data


class Sigmoid(Op):
    def forward(self, x):
        if x < 0:
            z = math.exp(x)
            return z / (1 + z)
        return 1 / (1 + math.exp(-x))

    def backward(self, out):
        (x,) = self.inputs
        x.grad += out.data * (1 - out.data) * out.grad


class Value:
    def __init__(self, data, op=None):
        self.data = float(data)
        self.grad = 0.0
        self.op = op

    def __repr__(self):
        return f"Value({self.data}, grad={self.grad})"

    @staticmethod
    def lift(x):
        return x if isinstance(x, Value) else Value(x)

    @staticmethod
    def apply(op):
        return Value(op.forward(*(v.data for v in op.inputs)), op)

    def __add__(self, other):
        return Value.apply(Add(self, Value.lift(other)))

    def __mul__(self, other):
        return Value.apply(Mul(self, Value.lift(other)))

    def __truediv__(self, other):
        return Value.apply(Div(self, Value.lift(other)))

    def __pow__(self, n):
        if not isinstance(n, (int, float)):
            raise TypeError("the exponent must be a number")
        return Value.apply(Pow(self, n))

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-Value.lift(other))

    def __radd__(self, other):
        return Value.lift(other) + self

    def __rsub__(self, other):
        return Value.lift(other) - self

    def __rmul__(self, other):
        return Value.lift(other) * self

    def __rtruediv__(self, other):
        return Value.lift(other) / self

    def relu(self):
        return Value.apply(Relu(self))

    def tanh(self):
        return Value.apply(Tanh(self))

    def exp(self):
        return Value.apply(Exp(self))

    def log(self):
        return Value.apply(Log(self))

    def sigmoid(self):
        return Value.apply(Sigmoid(self))

    def backward(self):
        # how many times each value is consumed by an op of this graph
        consumers = {id(self): 0}
        seen, todo = {id(self)}, [self]
        while todo:
            v = todo.pop()
            if v.op is None:
                continue
            for x in v.op.inputs:
                consumers[id(x)] = consumers.get(id(x), 0) + 1
                if id(x) not in seen:
                    seen.add(id(x))
                    todo.append(x)
        # Kahn: a value is ready once every op that consumes it has passed its gradient on
        self.grad = 1.0
        ready = deque([self])
        while ready:
            v = ready.popleft()
            if v.op is None:
                continue
            v.op.backward(v)
            for x in v.op.inputs:
                consumers[id(x)] -= 1
                if consumers[id(x)] == 0:
                    ready.append(x)
