"""The scalar chain-rule engine.

A :class:`Value` is a number that remembers how it was made: the op (an :class:`~refimpl.ops.OpSpec`),
its parents (a tuple), and the op's attributes. ``backward`` walks the graph in reverse
topological order — computed iteratively, so a chain of a million nodes needs no recursion — and
applies the chain rule one edge at a time::

    parent.grad += node.grad * ∂node/∂parent

The ``+=`` is what makes fan-out right by construction: a node used twice receives two
contributions. Gradients of intermediate nodes live in a dictionary for the duration of one
backward pass; only leaves (and nodes marked with :meth:`Value.retain_grad`) keep theirs, and a
leaf's ``.grad`` accumulates across calls, exactly as ``tensor.grad`` does in torch when
``backward(retain_graph=True)`` is called twice. refimpl never frees the graph, so there is no
"backward through the graph a second time" error: a second call simply adds the same gradient again.

With ``create_graph=True`` the local derivatives are evaluated by the same op declarations, but on
graph nodes instead of numbers (see :class:`GraphNS`), so the gradient is itself a differentiable
graph: Hessian-vector products are ``grad(dot(grad(f, x, create_graph=True), v), x)``.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from .numbers import FLOAT64, PRIMITIVES
from .ops import OPS, OpSpec

_NO_ATTRS: dict[str, Any] = {}
_new_value = object.__new__


class Value:
    """A scalar in the graph. Leaves are made by the user; inner nodes by ops."""

    __slots__ = ("data", "grad", "op", "parents", "attrs", "ns", "requires_grad", "retains_grad",
                 "label")

    def __init__(self, data: Any, requires_grad: bool = True, *, system: Any = FLOAT64,
                 label: str = "") -> None:
        self.data = system.convert(data)
        self.grad: Any = system.zero if requires_grad else None
        self.op: OpSpec | None = None
        self.parents: tuple[Value, ...] = ()
        self.attrs = _NO_ATTRS
        self.ns = system
        self.requires_grad = requires_grad
        self.retains_grad = False
        self.label = label

    def __repr__(self) -> str:
        made = f", op={self.op.name}" if self.op else ""
        return f"Value(data={self.data!r}, grad={self.grad!r}{made})"

    @property
    def is_leaf(self) -> bool:
        return self.op is None

    def retain_grad(self) -> Value:
        """Keep this inner node's gradient in ``.grad`` after backward (torch's ``retain_grad``)."""
        self.retains_grad = True
        return self

    def zero_grad(self) -> None:
        self.grad = self.ns.zero if (self.requires_grad and self.is_leaf) or self.retains_grad else None

    def backward(self, grad: Any = None, *, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) · grad into every leaf's ``.grad`` (``grad`` defaults to 1)."""
        grads = backprop((self,), (grad,), create_graph=create_graph)
        for node, g in grads.items():
            if node.is_leaf or node.retains_grad:
                node.grad = g if node.grad is None else node.grad + g

    # --- Python operators ---------------------------------------------------------------------
    def __add__(self, other: Any) -> Value:
        return _binary(_ADD, self, other)

    def __radd__(self, other: Any) -> Value:
        return _binary(_ADD, other, self)

    def __sub__(self, other: Any) -> Value:
        return _binary(_SUB, self, other)

    def __rsub__(self, other: Any) -> Value:
        return _binary(_SUB, other, self)

    def __mul__(self, other: Any) -> Value:
        return _binary(_MUL, self, other)

    def __rmul__(self, other: Any) -> Value:
        return _binary(_MUL, other, self)

    def __truediv__(self, other: Any) -> Value:
        return _binary(_DIV, self, other)

    def __rtruediv__(self, other: Any) -> Value:
        return _binary(_DIV, other, self)

    def __neg__(self) -> Value:
        return _unary(_NEG, self, _NO_ATTRS)

    def __pow__(self, exponent: Any) -> Value:
        if isinstance(exponent, Value):
            return apply(OPS["pow"], self, exponent)
        if type(exponent) is int:  # x ** 2: the commonest attribute op, kept off the generic path
            ns = self.ns
            data = ns.round(_POW_INT.forward(ns, self.data, exponent)) if ns.rounds \
                else _POW_INT.forward(ns, self.data, exponent)
            rg = self.requires_grad
            return _node(data, _POW_INT, (self,) if rg else (), {"exponent": exponent}, ns, rg)
        return apply(OPS["pow_scalar"], self, exponent=exponent)

    def __rpow__(self, base: Any) -> Value:
        return apply(OPS["pow"], base, self)


_ADD, _SUB, _MUL, _DIV, _NEG, _POW_INT = (OPS[n] for n in ("add", "sub", "mul", "div", "neg", "pow_int"))


def _node(data: Any, spec: OpSpec, parents: tuple[Value, ...], attrs: dict[str, Any], ns: Any,
          requires_grad: bool) -> Value:
    """An inner node: ``data`` made by ``spec`` from ``parents`` (none if it needs no gradient)."""
    v = _new_value(Value)
    v.data, v.grad, v.op, v.parents, v.attrs = data, None, spec, parents, attrs
    v.ns, v.requires_grad, v.retains_grad, v.label = ns, requires_grad, False, ""
    return v


def value_method(spec: OpSpec) -> Any:
    """The :class:`Value` method of a unary op of the table: ``x.tanh()``, ``x.clamp(min=0.0)``."""

    def method(self: Value, **attrs: Any) -> Value:
        return _unary(spec, self, attrs)

    method.__name__ = spec.name
    method.__doc__ = f"{spec.name}(self) — see refimpl.ops.OPS[{spec.name!r}] (torch: {spec.torch})."
    return method


for _spec in OPS.values():  # every unary op is also a method: x.tanh(), x.clamp(min=0.0), ...
    if _spec.arity == 1 and not hasattr(Value, _spec.name):
        setattr(Value, _spec.name, value_method(_spec))


def _convert_attrs(spec: OpSpec, attrs: dict[str, Any], ns: Any) -> dict[str, Any]:
    """Bring numeric attributes into the number system; integer-typed ones (pow_int) stay ints."""
    out = {}
    for k, v in attrs.items():
        integer = isinstance(spec.attrs.get(k), int) and not isinstance(spec.attrs.get(k), bool)
        numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
        out[k] = ns.convert(v) if numeric and not integer else v
    return out


def apply(spec: OpSpec | str, *inputs: Any, **attrs: Any) -> Value:
    """Apply an op to Values (plain numbers become constants in the first Value's system)."""
    if isinstance(spec, str):
        spec = OPS[spec]
    if len(inputs) != spec.arity:
        raise TypeError(f"{spec.name} takes {spec.arity} input(s), got {len(inputs)}")
    if spec.arity == 2:
        return _binary(spec, *inputs, **attrs)
    (x,) = inputs
    return _unary(spec, x if isinstance(x, Value) else _constant(x, FLOAT64), attrs)


def _unary(spec: OpSpec, x: Value, attrs: dict[str, Any]) -> Value:
    ns = x.ns
    if attrs or spec.attrs:
        attrs = _convert_attrs(spec, spec.attributes(attrs), ns)
        data = spec.forward(ns, x.data, **attrs)
    else:
        attrs = _NO_ATTRS
        data = spec.forward(ns, x.data)
    if ns.rounds:
        data = ns.round(data)
    rg = x.requires_grad
    return _node(data, spec, (x,) if rg else (), attrs, ns, rg)


def _constant(x: Any, ns: Any) -> Value:
    """A number inside a formula (``x * 0.5``): a leaf that needs no gradient."""
    v = _new_value(Value)
    v.data, v.grad, v.op, v.parents, v.attrs = ns.convert(x), None, None, (), _NO_ATTRS
    v.ns, v.requires_grad, v.retains_grad, v.label = ns, False, False, ""
    return v


def _binary(spec: OpSpec, a: Any, b: Any, **attrs: Any) -> Value:
    if not isinstance(a, Value):
        a = _constant(a, b.ns if isinstance(b, Value) else FLOAT64)
    if not isinstance(b, Value):
        b = _constant(b, a.ns)
    ns = a.ns
    if b.ns is not ns:
        raise TypeError(f"{spec.name}: cannot mix number systems {ns.name} and {b.ns.name}")
    if attrs:
        spec.attributes(attrs)  # binary ops take no attributes: reject any clearly
    data = spec.forward(ns, a.data, b.data)
    if ns.rounds:
        data = ns.round(data)
    v = _new_value(Value)  # inlined _node: this is the hot path of every graph
    v.data, v.grad, v.op, v.attrs, v.ns, v.retains_grad, v.label = data, None, spec, _NO_ATTRS, ns, False, ""
    v.requires_grad = rg = a.requires_grad or b.requires_grad
    v.parents = (a, b) if rg else ()
    return v


def topological_order(roots: Iterable[Value]) -> list[Value]:
    """Every node that requires grad below ``roots``, each after all its parents (iterative DFS).

    Depth-first with an explicit stack of parent iterators, so the depth of the graph is limited
    by memory, not by Python's recursion limit.
    """
    order: list[Value] = []
    visited: set[Value] = set()
    for root in roots:
        if root in visited:
            continue
        visited.add(root)
        stack = [(root, iter(root.parents))]
        while stack:
            node, pending = stack[-1]
            for p in pending:
                if p.requires_grad and p not in visited:  # constants need no gradient
                    visited.add(p)
                    stack.append((p, iter(p.parents)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


class GraphNS:
    """The namespace ``m`` for ``create_graph=True``: op formulas build graph nodes.

    Functions given a :class:`Value` apply the corresponding op; given plain numbers (constants
    inside a formula) they defer to the underlying number system. There is one for every function of
    :data:`refimpl.numbers.PRIMITIVES` (each the op of the same name; see :func:`graph_function`),
    so a new primitive needs nothing here.
    """

    rounds = False  # graph nodes round their own values when they are made

    def __init__(self, base: Any) -> None:
        self.base = base
        self.name = f"{base.name}+graph"
        self.one, self.zero, self.convert = base.one, base.zero, base.convert

    @property
    def pi(self) -> Any:
        return self.base.pi

    @staticmethod
    def round(x: Any) -> Any:
        return x

    @staticmethod
    def val(x: Any) -> Any:
        return x.data if isinstance(x, Value) else x

    def div(self, a: Any, b: Any) -> Any:
        if isinstance(a, Value) or isinstance(b, Value):
            return apply(_DIV, a, b)
        return self.base.div(a, b)

    def pow(self, a: Any, b: Any) -> Any:
        if isinstance(b, Value):
            return apply(OPS["pow"], a, b)
        if isinstance(a, Value):
            return a ** b
        return self.base.pow(a, b)


def graph_function(name: str) -> Any:
    """:class:`GraphNS`'s function ``name`` (``m.exp``): on a :class:`Value` it applies the op of the
    same name, building a node; on a plain number it is the underlying system's function."""
    spec = OPS[name]

    def fn(self: GraphNS, x: Any) -> Any:
        return apply(spec, x) if isinstance(x, Value) else getattr(self.base, name)(x)

    fn.__name__ = name
    return fn


# every unary primitive of the number systems, from its one declaration (pow, binary, is above)
for _p in PRIMITIVES.values():
    if _p.arity == 1:
        setattr(GraphNS, _p.name, graph_function(_p.name))


def backprop(roots: Sequence[Value], cotangents: Sequence[Any], *,
             create_graph: bool = False) -> dict[Value, Any]:
    """The chain rule over the graph below ``roots``: ``{node: d(Σ cotangentᵢ·rootᵢ)/d(node)}``.

    Returns the gradient of every leaf that requires one (and of retained inner nodes).
    A cotangent of ``None`` means 1.
    """
    if not roots:
        return {}
    ns = roots[0].ns
    m = GraphNS(ns) if create_graph else ns
    add, mul, rnd = ns.add, ns.mul, ns.round
    grads: dict[Value, Any] = {}
    for root, ct in zip(roots, cotangents, strict=True):
        if root.ns is not ns:
            raise TypeError("backprop: roots from different number systems")
        seed = ns.one if ct is None else (ct if isinstance(ct, Value) else ns.convert(ct))
        if create_graph and not isinstance(seed, Value):
            seed = Value(seed, False, system=ns)
        grads[root] = seed if root not in grads else grads[root] + seed

    rounds = ns.rounds and not create_graph
    order = topological_order(roots)
    if not (create_graph or rounds):
        _accumulate(order, grads, m)
        return grads
    for node in reversed(order):
        g = grads.get(node)
        parents = node.parents
        if g is None or not parents:
            continue
        derivative, attrs = node.op.derivative, node.attrs
        if node.op.vjp is not None:  # g·∂out/∂p in torch's order (log: g / x)
            inputs = parents if create_graph else tuple(p.data for p in parents)
            products = node.op.vjp(m, g, *inputs, node if create_graph else node.data, **attrs)
            for p, c in zip(parents, products):
                if p.requires_grad:
                    prev = grads.get(p)
                    if rounds:
                        c = rnd(c)
                        grads[p] = c if prev is None else add(prev, c)
                    else:
                        grads[p] = c if prev is None else prev + c
            if not node.retains_grad:
                del grads[node]
            continue
        if create_graph:
            partials = derivative(m, *parents, node, **attrs)
        elif len(parents) == 1:
            partials = derivative(m, parents[0].data, node.data, **attrs)
        else:
            partials = derivative(m, parents[0].data, parents[1].data, node.data, **attrs)
        selects = node.op.selects
        for p, d in zip(parents, partials):
            if not p.requires_grad:
                continue
            gp = 0 * d if selects and d == 0 else g  # torch selects: a closed branch passes 0, not 0·inf
            prev = grads.get(p)
            if rounds:  # float32 emulation: round the partial, the product and the sum
                contribution = add(prev, mul(gp, rnd(d))) if prev is not None else mul(gp, rnd(d))
            else:
                contribution = prev + gp * d if prev is not None else gp * d
            grads[p] = contribution
        if not node.retains_grad:
            del grads[node]
    return grads


def _accumulate(order: list[Value], grads: dict[Value, Any], m: Any) -> None:
    """The chain rule in plain arithmetic: ``backprop``'s loop, unrolled for one and two parents."""
    get = grads.get
    for node in reversed(order):
        g = get(node)
        parents = node.parents
        if g is None or not parents:
            continue
        op, attrs = node.op, node.attrs
        derivative = op.derivative
        if op.vjp is not None:  # g·∂out/∂p in torch's order (log: g / x)
            products = op.vjp(m, g, *(p.data for p in parents), node.data, **attrs)
            for p, c in zip(parents, products):
                if p.requires_grad:
                    prev = get(p)
                    grads[p] = c if prev is None else prev + c
        elif len(parents) == 1:
            (p,) = parents  # a lone parent of a node that requires grad requires grad itself
            (d,) = derivative(m, p.data, node.data, **attrs) if attrs else derivative(m, p.data, node.data)
            if d == 0 and op.selects:  # torch selects: a closed branch passes nothing, not 0·inf
                d = g = 0 * d
            prev = get(p)
            grads[p] = g * d if prev is None else prev + g * d
        else:
            a, b = parents
            da, db = derivative(m, a.data, b.data, node.data)
            ga = g if not op.selects or da != 0 else 0 * da
            gb = g if not op.selects or db != 0 else 0 * db
            if a.requires_grad:
                prev = get(a)
                grads[a] = ga * da if prev is None else prev + ga * da
            if b.requires_grad:
                prev = get(b)
                grads[b] = gb * db if prev is None else prev + gb * db
        if not node.retains_grad:
            del grads[node]


def grad(outputs: Value | Sequence[Value], inputs: Value | Sequence[Value],
         grad_outputs: Any = None, *, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Any, ...]:
    """d(Σ grad_outputsᵢ·outputsᵢ)/d(inputs), like ``torch.autograd.grad``; ``.grad`` is untouched."""
    outs = (outputs,) if isinstance(outputs, Value) else tuple(outputs)
    ins = (inputs,) if isinstance(inputs, Value) else tuple(inputs)
    if grad_outputs is None:
        cts: tuple[Any, ...] = (None,) * len(outs)
    else:
        cts = (grad_outputs,) if not isinstance(grad_outputs, (list, tuple)) else tuple(grad_outputs)
    for x in ins:
        if not x.requires_grad:
            raise ValueError(f"grad: input {x!r} does not require grad")
    grads = backprop(outs, cts, create_graph=create_graph)
    result = []
    for x in ins:
        g = grads.get(x)
        if g is None and not allow_unused:
            raise ValueError(f"grad: input {x!r} is not reachable from the outputs "
                             "(pass allow_unused=True to get None)")
        result.append(g)
    return tuple(result)


def zero_grad(values: Iterable[Value]) -> None:
    """Reset the gradient of every value (between optimisation steps)."""
    for v in values:
        v.zero_grad()
