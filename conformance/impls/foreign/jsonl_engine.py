"""A scalar reverse-mode engine in its own process, speaking the JSON Lines protocol; correct.

Run as ``conformance verify --impl "cmd:python conformance/impls/foreign/jsonl_engine.py"``
(docs/protocol.md). Standalone: the standard library only, nothing of the conformance suite.

Style: operator overloading on ``Var``, each var holding its parents with their local derivatives
and a creation counter. Creation order is a topological order (an input always exists before the
op that uses it), so ``grad()`` collects the graph with an explicit stack and sweeps it by
decreasing counter — no recursion, no sort of the graph structure. Scalars in binary64 only;
anything else (tensors, float32, second order) is answered with an error result. Where Python's
float arithmetic raises and IEEE arithmetic gives ±inf (``x ** n`` overflowing) it gives ±inf. Textbook
derivatives: d(a/b)/db = −(a/b)/b, d(x**n)/dx = n·x**(n−1), tanh′ = 1 − out², sigmoid′ =
out·(1 − out), exp′ = out, sqrt′ = 1/(2·out).
"""

import itertools
import json
import math
import sys

_counter = itertools.count()


class Var:
    __slots__ = ("grad", "n", "parents", "value")

    def __init__(self, value, parents=()):
        self.value = value
        self.parents = parents  # ((parent, local derivative), ...)
        self.grad = 0.0
        self.n = next(_counter)

    def __add__(self, o):
        return Var(self.value + o.value, ((self, 1.0), (o, 1.0)))

    def __sub__(self, o):
        return Var(self.value - o.value, ((self, 1.0), (o, -1.0)))

    def __mul__(self, o):
        return Var(self.value * o.value, ((self, o.value), (o, self.value)))

    def __truediv__(self, o):
        q = self.value / o.value
        return Var(q, ((self, 1.0 / o.value), (o, -q / o.value)))

    def __neg__(self):
        return Var(-self.value, ((self, -1.0),))

    def __pow__(self, n):
        d = 0.0 if n == 0 else n * power(self.value, n - 1)
        return Var(power(self.value, n), ((self, d),))


def power(x, n):
    """x**n with IEEE overflow: Python raises OverflowError where binary64 gives ±inf."""
    try:
        return x**n
    except OverflowError:
        return -math.inf if x < 0 and n == int(n) and int(n) % 2 else math.inf


def unary(f, df_of_x_and_y):
    def op(x):
        y = f(x.value)
        return Var(y, ((x, df_of_x_and_y(x.value, y)),))
    return op


def _sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


OPS = {
    "add": lambda a, b, k: a + b,
    "sub": lambda a, b, k: a - b,
    "mul": lambda a, b, k: a * b,
    "div": lambda a, b, k: a / b,
    "neg": lambda a, k: -a,
    "square": lambda a, k: a**2,
    "reciprocal": lambda a, k: a**-1,
    "pow_int": lambda a, k: a ** int(k["exponent"]),
    "pow_scalar": lambda a, k: a ** float(k["exponent"]),
    "exp": lambda a, k: unary(math.exp, lambda x, y: y)(a),
    "log": lambda a, k: unary(math.log, lambda x, y: 1.0 / x)(a),
    "sqrt": lambda a, k: unary(math.sqrt, lambda x, y: 0.5 / y)(a),
    "sin": lambda a, k: unary(math.sin, lambda x, y: math.cos(x))(a),
    "cos": lambda a, k: unary(math.cos, lambda x, y: -math.sin(x))(a),
    "tanh": lambda a, k: unary(math.tanh, lambda x, y: 1.0 - y * y)(a),
    "sigmoid": lambda a, k: unary(_sigmoid, lambda x, y: y * (1.0 - y))(a),
    "relu": lambda a, k: unary(lambda x: x if x > 0 else 0.0, lambda x, y: 1.0 if x > 0 else 0.0)(a),
}


def grad(out, seed):
    """Accumulate d(seed·out)/d(every var out depends on) into ``.grad``."""
    found, stack = {id(out): out}, [out]
    while stack:
        for parent, _ in stack.pop().parents:
            if id(parent) not in found:
                found[id(parent)] = parent
                stack.append(parent)
    out.grad = seed
    for v in sorted(found.values(), key=lambda v: v.n, reverse=True):
        for parent, local in v.parents:
            parent.grad += local * v.grad


def number(x):
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def read_number(x):
    return float(x)  # "inf", "-inf" and "nan" parse as well as numbers


def scalar(x):
    return {"shape": [], "values": [number(x)]}


def run(case):
    if case.get("dtype", "float64") != "float64":
        raise ValueError(f"dtype {case['dtype']} is not supported (float64 only)")
    if case.get("second_order") is not None:
        raise ValueError("no second order")
    for name, t in case["leaves"].items():
        if t["shape"]:
            raise ValueError(f"leaf {name} has shape {t['shape']}: scalars only")
    leaves = {name: Var(read_number(t["values"][0])) for name, t in case["leaves"].items()}
    env = dict(leaves)
    for node in case["nodes"]:
        if node["op"] not in OPS:
            raise ValueError(f"op {node['op']} is not supported")
        args = [env[i] for i in node["inputs"]]
        env[node["name"]] = OPS[node["op"]](*args, node.get("attrs") or {})
    out = env[case["output"]]
    grad(out, read_number(case["cotangent"]["values"][0]))
    return {"format": "backprop-conformance/graph-result", "version": 1, "value": scalar(out.value),
            "grads": {name: scalar(v.grad) for name, v in leaves.items()}, "hvp": None}


def main():
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["type"] == "hello":
            reply = {"type": "hello", "protocol": 1, "name": "jsonl-engine", "version": "1.0",
                     "capabilities": {"ops": sorted(OPS), "dtypes": ["float64"], "second_order": False}}
        elif msg["type"] == "case":
            try:
                result = run(msg["case"])
            except Exception as exc:
                result = {"format": "backprop-conformance/graph-result", "version": 1,
                          "error": f"{type(exc).__name__}: {exc}", "grads": {}}
            reply = {"type": "result", "id": msg["case"]["id"], "result": result}
        else:
            break
        sys.stdout.write(json.dumps(reply, allow_nan=False) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
