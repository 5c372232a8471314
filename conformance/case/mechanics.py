"""Graph-mechanics cases: the shapes that catch the classic bugs of a backward pass, from ``+`` and ``*``.

A random DAG of a few nodes exercises an engine's local derivatives; the *mechanics* — visiting
every node once, after all of its consumers, and accumulating rather than assigning — go wrong only
on shapes a small random graph rarely has. Each strategy here fixes the shape and draws only the
numbers, so the bug it targets is caught at every seed, whatever the values:

* :func:`long_chain` — thousands of nodes deep: a recursive topological sort or a recursive
  backward hits Python's recursion limit (1,000) every time.
* :func:`diamonds` — one node reached from the output by paths of different lengths: a backward
  pass in breadth-first (level) order visits it before its gradient from the long path has
  arrived, and either drops that contribution or pushes the partial one twice.
* :func:`reuse` — one node consumed by many later nodes, and one leaf on both sides of an op
  (``x·x``, ``x + x``): ``grad = …`` instead of ``grad += …`` keeps only the last contribution.
* :func:`fan_in` — a wide sum of many leaves, each then reused: every leaf gets the cotangent.
* :func:`shared` — intermediate nodes shared between sub-expressions that meet again later.

Values stay in [0.5, 2] in magnitude (the chain contracts, so its values stay bounded too), and the
cotangent is drawn away from 1, so the gradients are ordinary numbers: nothing here is a question of
numerical robustness. Only ``add`` and ``mul`` are used, which every engine has.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from conformance.case.graph import GraphCase, Node, Tensor
from conformance.case.strategies import with_id

OPS = ("add", "mul")

_VALUE = st.floats(0.5, 2.0)
_SIGN = st.sampled_from([1.0, -1.0])
_COTANGENT = st.floats(0.5, 2.0).filter(lambda c: abs(c - 1.0) > 0.05)


@st.composite
def _value(draw: st.DrawFn) -> float:
    return draw(_VALUE) * draw(_SIGN)


class _Builder:
    """Nodes appended in topological order, named n0, n1, …"""

    def __init__(self) -> None:
        self.leaves: dict[str, Tensor] = {}
        self.nodes: list[Node] = []

    def leaf(self, x: float) -> str:
        name = f"x{len(self.leaves)}"
        self.leaves[name] = Tensor.scalar(x)
        return name

    def op(self, op: str, a: str, b: str) -> str:
        name = f"n{len(self.nodes)}"
        self.nodes.append(Node(name, op, (a, b)))
        return name

    def case(self, draw: st.DrawFn) -> GraphCase:
        ct = draw(_COTANGENT) * draw(_SIGN)
        return with_id(GraphCase(dict(self.leaves), tuple(self.nodes), self.nodes[-1].name, Tensor.scalar(ct)))


@st.composite
def long_chain(draw: st.DrawFn, min_nodes: int = 2000, max_nodes: int = 2400) -> GraphCase:
    """z ← z·y, z ← z + x, alternately, ``min_nodes``–``max_nodes`` nodes deep; |y| < 1 keeps z
    bounded (|z| ≤ |x|/(1 − |y|) + |z₀|) and y^1000 far above the underflow threshold."""
    g = _Builder()
    z, x = g.leaf(draw(_value())), g.leaf(draw(_value()))
    y = g.leaf(draw(st.floats(0.8, 0.99)) * draw(_SIGN))
    for j in range(draw(st.integers(min_nodes, max_nodes))):
        z = g.op("mul", z, y) if j % 2 == 0 else g.op("add", z, x)
    return g.case(draw)


@st.composite
def diamonds(draw: st.DrawFn) -> GraphCase:
    """u = x·y reaches the output directly and through a path of 3–6 more nodes; the output also
    depends on a second diamond nested in the first, so a level-order walk goes wrong twice."""
    g = _Builder()
    u = g.op("mul", g.leaf(draw(_value())), g.leaf(draw(_value())))
    long = u
    for j in range(draw(st.integers(3, 6))):
        long = g.op("add" if j % 2 == 0 else "mul", long, g.leaf(draw(_value())))
    inner = g.op("mul", long, u)  # paths of length 1 and ≥ 4 from u
    v = g.op("add", inner, g.leaf(draw(_value())))
    w = g.op("mul", v, g.leaf(draw(_value())))
    g.op("add", g.op("mul", w, u), inner)  # u again, and inner by a short and a longer path
    return g.case(draw)


@st.composite
def reuse(draw: st.DrawFn) -> GraphCase:
    """u = x·y used by 4–10 later nodes, summed; a leaf on both sides of ``*`` and of ``+``."""
    g = _Builder()
    x = g.leaf(draw(_value()))
    u = g.op("mul", x, g.leaf(draw(_value())))
    total = g.op("mul", u, g.leaf(draw(_value())))
    for _ in range(draw(st.integers(3, 9))):
        total = g.op("add", total, g.op("mul", u, g.leaf(draw(_value()))))
    both = g.op("mul", g.op("add", x, x), g.op("mul", x, x))  # (x + x)·(x·x)
    g.op("add", total, g.op("mul", both, u))
    return g.case(draw)


@st.composite
def fan_in(draw: st.DrawFn) -> GraphCase:
    """A sum of 16–64 leaves, multiplied by itself (every leaf reached twice through the sum)."""
    g = _Builder()
    n = draw(st.integers(16, 64))
    s = g.leaf(draw(_value()) / n)
    for _ in range(n - 1):
        s = g.op("add", s, g.leaf(draw(_value()) / n))
    g.op("mul", s, s)
    return g.case(draw)


@st.composite
def shared(draw: st.DrawFn) -> GraphCase:
    """a = x·y shared by b = a + z and c = a·z; d = b·c; then a and c are used once more."""
    g = _Builder()
    x, y, z = (g.leaf(draw(_value())) for _ in range(3))
    a = g.op("mul", x, y)
    b, c = g.op("add", a, z), g.op("mul", a, z)
    d = g.op("mul", b, c)
    g.op("add", g.op("mul", d, a), c)
    return g.case(draw)


#: suite name → (strategy, cases per run): the mechanics suites, in their fixed order
SUITES: dict[str, tuple[Callable[[], st.SearchStrategy[GraphCase]], int]] = {
    "mechanics chain": (long_chain, 2),
    "mechanics diamonds": (diamonds, 3),
    "mechanics reuse": (reuse, 3),
    "mechanics fan-in": (fan_in, 2),
    "mechanics shared": (shared, 3),
}
