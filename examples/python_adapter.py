"""A complete Python adapter: ``conformance verify --impl examples/python_adapter.py``.

The implementation under test here is forward-mode differentiation with dual numbers — a different
road to the same gradients, so it makes a fair example. An adapter is any object with ``name``,
``version``, ``capabilities`` and ``run_graph(case) -> GraphResult``; the module-level name
``adapter`` is what ``--impl path.py`` looks for (or say ``path.py:OtherName``).
"""

import math

from conformance.case.graph import GraphResult, Tensor
from conformance.impls import Capabilities


class Dual:
    """a + b·ε with ε² = 0: the b part carries the derivative along with the value."""

    def __init__(self, a, b=0.0):
        self.a, self.b = a, b

    def __add__(self, o):
        return Dual(self.a + o.a, self.b + o.b)

    def __sub__(self, o):
        return Dual(self.a - o.a, self.b - o.b)

    def __mul__(self, o):
        return Dual(self.a * o.a, self.a * o.b + self.b * o.a)

    def __truediv__(self, o):
        return Dual(self.a / o.a, (self.b * o.a - self.a * o.b) / (o.a * o.a))


def _tanh(x):
    t = math.tanh(x.a)
    return Dual(t, (1 - t * t) * x.b)


def _exp(x):
    e = math.exp(x.a)
    return Dual(e, e * x.b)


OPS = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
       "div": lambda x, y: x / y, "neg": lambda x: Dual(-x.a, -x.b), "tanh": _tanh, "exp": _exp}


class DualNumbers:
    name = "dual-numbers"
    version = "1.0"
    capabilities = Capabilities(ops=frozenset(OPS), dtypes=("float64",))

    def run_graph(self, case):
        if any(t.shape != () for t in case.leaves.values()):
            return GraphResult(error="scalar leaves only")
        ct = case.cotangent.values[0]
        grads, value = {}, None
        for seed in case.leaves:  # one forward pass per leaf: dε/d(seed) = 1
            env = {k: Dual(t.values[0], 1.0 if k == seed else 0.0) for k, t in case.leaves.items()}
            for node in case.nodes:
                env[node.name] = OPS[node.op](*(env[i] for i in node.inputs))
            out = env[case.output]
            value, grads[seed] = out.a, Tensor.scalar(ct * out.b)
        return GraphResult(value=Tensor.scalar(value), grads=grads)


adapter = DualNumbers
