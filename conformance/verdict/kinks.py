"""The valid answers at kinks: what an implementation may give where torch documents a choice.

Where a node sits exactly on a kink — relu, abs, leaky_relu, elu at 0, softplus at threshold/β,
clamp at a bound, a tie of maximum/minimum, a tie within a slice of amax, a root of an exact 0 (std
of a constant slice, the norm of a slice of zeros: ``TensorOp.singular``) — its local derivative is
a choice, and torch's is one of several. A choice is *valid* when it lies between the op's
one-sided derivatives (the op's own branches just left and just right of the point:
:func:`refimpl.ops.one_sided`) or is torch's own (clamp at min == max passes the gradient, though
the function is flat on both sides); a tie may split the gradient any way that sums to it; a root
of 0 may pass 0 (torch masks its slope, 1/(2·0), there) or NaN (the unmasked formula: 1/(2·0)
times the radicand's slope, 0).

An entry's valid set is every value the backward pass gives over every valid choice at every kink
at once. Each entry is a multilinear function of the choices: a path from a leaf to the output
passes a kink's node once, through one of its edges, and a choice mixes its extreme options
linearly (λ·left + (1 − λ)·right; a tie's split s, 1 − s; amax's weights on a simplex) — the HVP
too, as a choice is a constant of x. A multilinear function on a product of simplices takes its
least and greatest values at the vertices, so the valid set of an entry is exactly the interval
between its least and greatest value over the combinations of extreme options: refimpl's backward
run once per combination, with those local derivatives installed on the kinks' nodes. The split of
a tie is exact within an entry (maximum(x, x·y) at y = 1: x's gradient is g whatever the split;
maximum(x, x) is no kink at all), not across entries: two leaves of one tie may each take any share
between 0 and g, though their shares sum to g.

The runs are in the kink bound system (:func:`~conformance.tolerance.bounds.kink_bound_system`:
binary64 values, the error bounds of the dtype under test), so each combination carries its own
tolerance; the set is widened by twice the largest. Only the kinks an entry depends on are
enumerated for it (a gradient entry: the kinks its leaf element reaches; an HVP entry: every kink),
in at most :data:`MAX_RUNS` backward passes per case; the entries that would need more are reported
as such (:class:`TooManyKinks`) and judged ``unchecked``.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

from conformance.case.entrykey import EntryKey
from conformance.case.graph import GraphCase
from conformance.case.tensor_ops import TENSOR_OPS, singular_outputs, tied_candidates
from conformance.oracle.opcheck import kink_points
from conformance.oracle.run import differentiate, evaluate, leaf_tensors
from conformance.tolerance.bounds import SAFETY, TINY, bound_system, kink_bound_system
from refimpl import OPS, Value
from refimpl.engine import topological_order
from refimpl.ops import REALS, OpSpec, one_sided
from refimpl.tensor import broadcast_map, broadcast_shapes

MAX_RUNS = 64  # backward passes per case spent on combinations of choices

#: the local derivative of an amax output that sends the whole gradient to one tied candidate
CHOSEN = OpSpec("chosen", 1, lambda m, x: x, lambda m, x, out: (m.one,), "", (REALS,),
                note="a tie of amax resolved to one candidate (conformance/verdict/kinks.py)")


#: the local derivatives of a root of an exact 0 with respect to its radicand: torch's mask, and the
#: unmasked formula's NaN (TensorOp.singular)
MASKED = OpSpec("masked", 1, lambda m, x: x, lambda m, x, out: (m.zero,), "", (REALS,),
                note="a root of 0 with its slope masked to 0, torch's choice (conformance/verdict/kinks.py)")
UNMASKED = OpSpec("unmasked", 1, lambda m, x: x, lambda m, x, out: (m.convert(math.nan),), "", (REALS,),
                  note="a root of 0 with the slope 1/(2·0)·0 = NaN, the other valid choice")


@dataclass(frozen=True)
class ValidSet:
    """The values an entry takes over the valid choices at the kinks it depends on."""

    lo: float  #: the least finite value (inf when none is finite)
    hi: float  #: the greatest finite value (−inf when none is finite)
    slack: float  #: twice the largest tolerance among the values: how far an honest answer may be outside
    nonfinite: frozenset[str] = frozenset()  #: "inf", "-inf", "nan" where a choice gives them
    kinks: int = 0  #: the kinks the entry depends on

    def __contains__(self, x: float) -> bool:
        if math.isnan(x):
            return "nan" in self.nonfinite
        if math.isinf(x) and repr(x) in self.nonfinite:
            return True
        return self.lo - self.slack <= x <= self.hi + self.slack

    def ratio(self, x: float) -> float:
        """How far ``x`` is outside the set, over the slack: 1 is the edge (0 inside, inf for a
        non-finite value the set does not hold)."""
        if not math.isfinite(x):
            return 0.0 if x in self else math.inf
        gap = max(self.lo - x, x - self.hi, 0.0)
        return gap / self.slack if gap else 0.0

    @property
    def finite(self) -> bool:
        """Whether some choice gives a finite value."""
        return self.lo <= self.hi

    @property
    def is_point(self) -> bool:
        """Whether every choice gives the same value (within its tolerance): the kinks do not
        matter to this entry — maximum(x, x·y) at y = 1, for x."""
        if not self.finite:
            return len(self.nonfinite) == 1
        return not self.nonfinite and self.hi - self.lo <= self.slack / 2

    def __str__(self) -> str:
        parts = [f"[{self.lo!r}, {self.hi!r}] ± {self.slack:.3g}"] if self.finite else []
        parts += sorted(self.nonfinite)
        return f"{' or '.join(parts)} (over the valid choices at {self.kinks} kink(s))"


@dataclass(frozen=True)
class TooManyKinks:
    """An entry behind more kinks than :data:`MAX_RUNS` backward passes can enumerate."""

    kinks: int
    combinations: int

    def __str__(self) -> str:
        return (f"behind {self.kinks} kinks: {self.combinations} combinations of choices, more than the "
                f"{MAX_RUNS} enumerated")


@dataclass
class _Kink:
    node: Value
    options: list[tuple[OpSpec, tuple[Value, ...]]]  # each: the (op, parents) to install on the node


def valid_sets(case: GraphCase) -> dict[str, ValidSet | TooManyKinks]:
    """The entries (by name) whose value depends on a choice at a kink, each with its valid set —
    or, past :data:`MAX_RUNS`, the reason it was not enumerated. Entries no kink touches, or that
    every choice gives the same value, are left out: the truth judges them.

    Kinks are where the binary64 forward sits on one; in a narrower dtype also where the format's
    own forward does — rounding makes kinks: tanh(x) and x are one bfloat16 number for a small x, so
    ``minimum(tanh(x), x)`` is a tie an implementation in bfloat16 must resolve, though the exact
    function has none there (its truth follows one branch). An entry behind both gets the hull of its
    two valid sets."""
    found = _valid_sets_in(case, kink_bound_system(case.dtype, case.claim))
    if case.dtype == "float64":
        return found
    for name, v in _valid_sets_in(case, bound_system(case.dtype, case.claim)).items():
        w = found.setdefault(name, v)
        if isinstance(v, ValidSet) and isinstance(w, ValidSet) and w is not v:
            found[name] = ValidSet(min(v.lo, w.lo), max(v.hi, w.hi), max(v.slack, w.slack), v.nonfinite | w.nonfinite,
                                   max(v.kinks, w.kinks))
        elif isinstance(v, TooManyKinks):
            found[name] = v
    return found


def _valid_sets_in(case: GraphCase, system: Any) -> dict[str, ValidSet | TooManyKinks]:
    """:func:`valid_sets` with the forward, and so the kinks, in ``system``."""
    leaves = leaf_tensors(case, system)
    env = evaluate(case, leaves)
    out = env[case.output]
    reached = {id(v) for v in topological_order(out.elements)}
    kinks = [k for k in find_kinks(case, env, second_order=case.second_order is not None) if id(k.node) in reached]
    if not kinks:
        return {}
    grad_names = {k: _names("grad", k, case.leaves[k].shape) for k in case.leaves}
    element_of = {id(v): (k, i) for k, t in leaves.items() for i, v in enumerate(t.elements)}
    depends: dict[str, set[int]] = {}
    for j, kink in enumerate(kinks):
        for leaf, i in (element_of[e] for e in _leaves_behind(kink.node, element_of)):
            depends.setdefault(grad_names[leaf][i], set()).add(j)
    for k in case.leaves:  # a leaf's gradient sum: the kinks of all its entries (each split sums to one total)
        behind = set().union(*(depends.get(name, set()) for name in grad_names[k]))
        if behind and len(grad_names[k]) > 1:
            depends[str(EntryKey("gradsum", k))] = behind
    if case.second_order is not None:
        depends.update({name: set(range(len(kinks))) for k in case.leaves
                        for name in _names("hvp", k, case.leaves[k].shape)})
    plans, too_many = _plan({name: frozenset(s) for name, s in depends.items()}, kinks)
    values: dict[str, list[Any]] = {}
    for kinkset, names in plans:
        ordered = sorted(kinkset)
        for combo in itertools.product(*(range(len(kinks[j].options)) for j in ordered)):
            got = _run(case, leaves, out, system, [(kinks[j], i) for j, i in zip(ordered, combo)])
            for name in names:
                values.setdefault(name, []).append(got[name])
    result: dict[str, ValidSet | TooManyKinks] = dict(too_many)
    for name, vs in values.items():
        valid = _valid_set(vs, len(depends[name]))
        if not valid.is_point or EntryKey.parse(name).quantity == "gradsum":
            result[name] = valid
    return result


def find_kinks(case: GraphCase, env: dict[str, Any], second_order: bool = False) -> list[_Kink]:
    """Every scalar node of the evaluated case sitting on a kink, with the extreme options of its
    local derivative: a node of an elementwise op with an input on one of the op's kink points (its
    one-sided derivatives, and torch's where that lies outside them), a tie of maximum/minimum
    between two different nodes (all to a, all to b), an amax output with tied candidates (all to
    one of them), an output its op's ``singular`` rule puts at a root of 0 (0 or NaN). Options that
    give the same local derivative are one (with ``second_order`` the one-sided derivatives are kept
    apart: elu′ with α = 1 is continuous at 0, elu″ is not; and torch's choice between them is kept
    too: a second-order entry is not monotone in the choice)."""
    found = []
    for n in case.nodes:
        args = [env[i] for i in n.inputs]
        outs = env[n.name].elements
        if n.op in TENSOR_OPS:
            for o, tied in zip(outs, tied_candidates(n.op, args, n.attrs)):
                distinct = list({id(v): v for v in tied}.values())
                if len(distinct) > 1 and o.parents and not any(o is v for v in distinct):
                    found.append(_Kink(o, [(CHOSEN, (v,)) for v in distinct]))
            for o, at in zip(outs, singular_outputs(n.op, args, n.attrs)):
                if at and len(o.parents) == 1:  # the root's own node, over its radicand
                    found.append(_Kink(o, [(MASKED, o.parents), (UNMASKED, o.parents)]))
            continue
        spec = OPS.get(n.op)
        if spec is None or not spec.kinks:
            continue
        ties = any(k.at == "tie" for k in spec.kinks)
        points = [] if ties else kink_points(spec, spec.attributes(n.attrs))
        for o, idx in zip(outs, broadcast_lanes([a.shape for a in args])):
            operands = [a.elements[i] for a, i in zip(args, idx)]
            xs = tuple(float(v.data) for v in operands)
            on = (xs[0] == xs[1] and operands[0] is not operands[1]) if ties else xs in points
            if on and o.parents:
                options = _options(spec, o, second_order)
                if len(options) > 1:
                    found.append(_Kink(o, options))
    return found


def broadcast_lanes(shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """For each position of the broadcast result, the flat index into every operand."""
    out = broadcast_shapes(*shapes)
    maps = [broadcast_map(s, out) for s in shapes]
    return list(zip(*maps))


def _options(spec: OpSpec, node: Value, second_order: bool) -> list[tuple[OpSpec, tuple[Value, ...]]]:
    """The extreme local derivatives of ``node`` (an op on a kink) as (op, parents) to install."""
    sides = [one_sided(spec, -1), one_sided(spec, +1)]
    candidates = sides + ([spec.derivative] if spec.arity == 1 else [])  # a tie's even split lies between
    keep = [0, 1]
    if spec.arity == 1:
        m, (x,) = node.ns, [p.data for p in node.parents]
        left, right, point = (float(f(m, x, node.data, **node.attrs)[0]) for f in candidates)
        keep = [0, 1] if second_order or left != right else [0]
        if not min(left, right) <= point <= max(left, right):
            keep.append(2)  # torch's choice outside the one-sided derivatives (clamp at min == max)
        elif second_order and point not in (left, right):
            # a Hessian-vector product meets the choice c twice (abs′(0)² here): not monotone in c,
            # so the ends alone do not span it — torch's choice inside (abs′(0) = 0) is one more
            keep.append(2)
    return [(replace(spec, derivative=candidates[i], vjp=None), node.parents) for i in keep]


def _leaves_behind(node: Value, leaves: dict[int, Any]) -> set[int]:
    """The ids of the leaf elements ``node`` depends on."""
    seen: set[int] = set()
    todo = [node]
    while todo:
        v = todo.pop()
        for p in v.parents:
            if id(p) not in seen:
                seen.add(id(p))
                todo.append(p)
    return seen & set(leaves)


def _plan(depends: dict[str, frozenset[int]],
          kinks: list[_Kink]) -> tuple[list[tuple[frozenset[int], list[str]]], dict[str, TooManyKinks]]:
    """Which sets of kinks to enumerate, for which entries: the largest sets first, an entry whose
    kinks are within a set already planned shares its runs, and the budget of runs is spent once."""
    def combinations(s: frozenset[int]) -> int:
        return math.prod(len(kinks[j].options) for j in s)

    plans: list[tuple[frozenset[int], list[str]]] = []
    too_many: dict[str, TooManyKinks] = {}
    budget = MAX_RUNS
    for name, s in sorted(depends.items(), key=lambda kv: (-len(kv[1]), -combinations(kv[1]), kv[0])):
        plan = next((p for p in plans if s <= p[0]), None)
        if plan is not None:
            plan[1].append(name)
        elif combinations(s) <= budget:
            budget -= combinations(s)
            plans.append((s, [name]))
        else:
            too_many[name] = TooManyKinks(len(s), combinations(s))
    return plans, too_many


def _run(case: GraphCase, leaves: dict[str, Any], out: Any, system: Any,
         choices: list[tuple[_Kink, int]]) -> dict[str, Any]:
    """Every gradient and HVP entry (by name, in ``system``) with each kink's chosen option installed."""
    saved = [(k.node, k.node.op, k.node.parents) for k, _ in choices]
    try:
        for k, i in choices:
            k.node.op, k.node.parents = k.options[i]
        grads, hvp = differentiate(case, leaves, out, system)
    finally:
        for node, op, parents in saved:
            node.op, node.parents = op, parents
    got = {}
    for quantity, table in (("grad", grads), ("hvp", hvp or {})):
        for k, values in table.items():
            got.update(zip(_names(quantity, k, case.leaves[k].shape), values))
    for k, values in grads.items():
        got[str(EntryKey("gradsum", k))] = functools.reduce(system.add, values)
    return got


def _valid_set(values: list[Any], kinks: int) -> ValidSet:
    finite = [v for v in values if math.isfinite(float(v))]
    nonfinite = frozenset(repr(float(v)) for v in values if not math.isfinite(float(v)))
    tol = max((SAFETY * float(v.e) + TINY for v in finite), default=TINY)
    lo = min((float(v) for v in finite), default=math.inf)
    hi = max((float(v) for v in finite), default=-math.inf)
    return ValidSet(lo, hi, 2 * tol, nonfinite, kinks)


def _names(quantity: str, leaf: str, shape: tuple[int, ...]) -> list[str]:
    """The entry names of a leaf's elements, as the judge writes them."""
    if not shape:
        return [str(EntryKey(quantity, leaf))]
    return [str(EntryKey(quantity, leaf, (i,))) for i in range(math.prod(shape))]
