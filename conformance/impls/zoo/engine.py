"""refimpl's ``backprop``, copied with switches: each graph-mechanics mutant is one line of it.

:func:`backprop` with ``bug=""`` is refimpl's chain rule (the general loop of
``refimpl.engine.backprop``; its float64 fast path ``_accumulate`` computes the same numbers), and
``tests/test_mutants.py`` checks it is bit for bit refimpl's. Each ``bug`` changes one thing, marked
``# BUG`` below. :func:`installed` puts a variant where refimpl looks it up — the engine module
(``Value.backward``, ``grad``) and the tensor module (``Tensor.backward``, ``tensor.grad``).
"""

from __future__ import annotations

import importlib
from collections import deque
from collections.abc import Sequence
from functools import partial
from typing import Any

from conformance.impls.zoo.base import Patch, both, setting
from refimpl import engine
from refimpl.engine import GraphNS, Value, topological_order
from refimpl.numbers import round_to_float32

tensor = importlib.import_module("refimpl.tensor")  # the module: refimpl.tensor is also a function

BUGS = ("", "overwrite", "upstream-dropped", "seed-ignored", "breadth-first", "float32-accumulate")


def backprop(roots: Sequence[Value], cotangents: Sequence[Any], *, create_graph: bool = False,
             bug: str = "") -> dict[Value, Any]:
    """``refimpl.engine.backprop`` with one optional bug (see :data:`BUGS`)."""
    assert bug in BUGS, bug
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
        if bug == "seed-ignored":
            seed = ns.one  # BUG: backward() seeds ones whatever cotangent it is given
        if create_graph and not isinstance(seed, Value):
            seed = Value(seed, False, system=ns)
        grads[root] = seed if root not in grads else grads[root] + seed

    rounds = ns.rounds and not create_graph
    order = breadth_first(roots) if bug == "breadth-first" else reversed(topological_order(roots))
    for node in order:
        g = grads.get(node)
        parents = node.parents
        if g is None or not parents:
            continue
        derivative, attrs, vjp = node.op.derivative, node.attrs, node.op.vjp
        inputs = parents if create_graph else tuple(p.data for p in parents)
        out = node if create_graph else node.data
        if vjp is not None and bug != "upstream-dropped":  # g·∂out/∂p in torch's order (log: g / x)
            terms = [rnd(t) if rounds else t for t in vjp(m, g, *inputs, out, **attrs)]
        else:
            terms = []
            for d in derivative(m, *inputs, out, **attrs):
                gp = 0 * d if node.op.selects and d == 0 else g  # torch selects: a closed branch passes 0
                if bug == "upstream-dropped":
                    gp = 1  # BUG: parent.grad += local derivative, the upstream gradient forgotten
                terms.append(mul(gp, rnd(d)) if rounds else gp * d)
        for p, term in zip(parents, terms):
            if not p.requires_grad:
                continue
            prev = grads.get(p)
            if prev is None or bug == "overwrite":  # BUG (overwrite): = where the chain rule needs +=
                grads[p] = term
            elif rounds:
                grads[p] = add(prev, term)
            elif bug == "float32-accumulate" and not create_graph:
                grads[p] = round_to_float32(prev + term)  # BUG: the += done in a float32 accumulator
            else:
                grads[p] = prev + term
        if not node.retains_grad:
            del grads[node]
    return grads


def breadth_first(roots: Sequence[Value]) -> list[Value]:
    """Nodes in the order a queue first reaches them from the roots. Not a topological order: a node
    reached early by a short path is processed before a consumer that reaches it by a longer one."""
    order: list[Value] = []
    seen = set(roots)
    queue = deque(dict.fromkeys(roots))
    while queue:
        node = queue.popleft()
        order.append(node)
        for p in node.parents:
            if p.requires_grad and p not in seen:
                seen.add(p)
                queue.append(p)
    return order


def installed(bug: str) -> Patch:
    """refimpl with :func:`backprop` (and ``bug``) in place of its own, for the duration of a run."""
    variant = partial(backprop, bug=bug)
    return both(setting(engine, "backprop", variant), setting(tensor, "backprop", variant))
