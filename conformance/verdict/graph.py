"""Deciding, entry by entry, whether an implementation's result conforms.

Each entry — the output value, each leaf's gradient, each HVP component — has a tolerance
``tol = SAFETY × bound`` from refimpl's running error bound in the dtype under test
(:mod:`conformance.tolerance.bounds`). Two results that are each within ``tol`` of the truth are within
``2·tol`` of each other, so:

* ``pass``            — the implementation is within ``2·tol`` of torch;
* otherwise, for an entry that a choice at a kink changes, the valid set decides
  (:mod:`conformance.verdict.kinks`: the values of every valid choice at every kink, widened by
  their tolerance; NaN too where the kink is a root of 0, whose slope torch masks): ``convention``
  inside it, ``fail`` (``nonfinite-mismatch`` for NaN/inf) outside — the finite difference there
  averages the one-sided slopes and is no truth;
* for any other entry the truth arbitrates (a finite difference of the forward at 50 digits for
  gradients, the 50-digit forward for values, refimpl at 50 digits for HVPs):
  ``torch-deviates`` if the implementation is within ``tol`` of the truth and torch is not,
  ``fail`` otherwise;
* ``nonfinite-mismatch`` — NaN/inf where the truth is finite, or the reverse;
* ``unchecked`` — an entry that would pass, but whose check says nothing: its tolerance is
  infinite (the error bound overflowed), or its window around a non-zero reference reaches zero
  (``2·tol ≥ |torch|``, or ``tol ≥ |truth|`` where the truth arbitrates: a dropped gradient would
  pass), or it is behind more kinks than are enumerated. Reported, not charged, never a pass;
* ``error`` — the implementation raised or returned something unusable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conformance.case.entrykey import EntryKey
from conformance.case.graph import GraphCase, GraphResult
from conformance.case.tensor_ops import TENSOR_OPS, singular_outputs, tied_candidates
from conformance.oracle.opcheck import kink_points
from conformance.oracle.run import evaluate, leaf_tensors, refimpl_raw, run_refimpl, truth_gradient
from conformance.tolerance.bounds import SAFETY, TINY, bound_system
from conformance.verdict.kinks import TooManyKinks, ValidSet, broadcast_lanes, valid_sets
from conformance.verdict.outcomes import NONCONFORMING, ORDER, Verdict
from refimpl import FLOAT64, OPS, Value, grad, mpmath_system


@dataclass
class Entry:
    name: str
    impl: float
    torch: float
    tol: float
    verdict: str
    truth: float | None = None
    #: at a kink: the values the valid choices give (conformance/verdict/kinks.py), or why they were not enumerated
    valid: ValidSet | TooManyKinks | None = None

    @property
    def ratio(self) -> float:
        """How far from passing, 1 being the edge: |impl − torch| / 2·tol, or |impl − truth| / tol
        when the truth had to arbitrate, or the distance from the valid set at a kink over its slack."""
        if isinstance(self.valid, ValidSet):
            return self.valid.ratio(self.impl)
        ref = self.truth if self.truth is not None else self.torch
        if not (math.isfinite(self.impl) and math.isfinite(ref)):
            return 0.0 if self.impl == ref or (math.isnan(self.impl) and math.isnan(ref)) else math.inf
        return abs(self.impl - ref) / (self.tol if self.truth is not None else 2 * self.tol)

    def describe(self) -> str:
        truth = "" if self.truth is None else f", truth {self.truth!r}"
        valid = "" if self.valid is None else \
            f", at a kink: {'valid ' if isinstance(self.valid, ValidSet) else ''}{self.valid}"
        return (f"{self.name}: implementation {self.impl!r}, torch {self.torch!r}{truth}{valid}, "
                f"tolerance {self.tol:.3g}, error/tolerance {self.ratio:.3g} → {self.verdict}")


@dataclass
class CaseVerdict:
    case: GraphCase
    verdict: str
    entries: list[Entry] = field(default_factory=list)
    reason: str = ""
    #: the known cause that reproduces the failing entries (conformance/impls/explain.py), if any
    cause: str | None = None
    #: what the implementation wrote while it ran the case (warnings, stderr: kinds/kind.py
    #: ``captured_output``) — never part of the verdict's text; the records and the report keep it
    output: list[str] = field(default_factory=list)

    @property
    def conforms(self) -> bool:
        return self.verdict not in NONCONFORMING

    @property
    def worst_ratio(self) -> float:
        return max((e.ratio for e in self.entries), default=0.0)


def within(a: float, b: float, slack: float) -> bool:
    """Within ``slack`` of each other; non-finite values only match themselves (NaN matches NaN).
    Equal numbers are within any slack, a NaN one too: where the error analysis itself meets
    inf·0 (a gradient beyond float16 on the way into x⁰) the tolerance is NaN, and torch judged
    against itself, bit for bit, was charged ``fail`` (float16 calibration, 100,000 cases, seed 5)."""
    if math.isfinite(a) and math.isfinite(b):
        return a == b or abs(a - b) <= slack
    return a == b or (math.isnan(a) and math.isnan(b))


def kinked_leaves(case: GraphCase, system: Any = FLOAT64) -> frozenset[str]:
    """The leaves whose gradient passes through a node sitting exactly on a kink — an elementwise
    node with an input on one of its op's declared kinks, a tie of ``maximum``/``minimum`` between
    two *different* nodes, an ``amax`` with tied candidates: the points where torch documents a
    convention. The judge itself holds an entry there to the valid choices
    (:func:`conformance.verdict.kinks.valid_sets`, entry by entry); the known causes ask this, to
    see which leaves a changed forward puts behind a kink (conformance/impls/explain.py). A tie
    counts only where the tied operands have different gradients — where the split can matter: ``maximum(x, x)`` and
    ``maximum(x, maximum(x, x))`` are ``x``, with one right derivative. The forward runs in
    ``system`` (binary64: where the case's inputs sit exactly on a kink)."""
    leaves = leaf_tensors(case, system, requires_grad=True)
    env = evaluate(case, leaves)
    leaf_values = [e for t in leaves.values() for e in t.elements]
    return leaves_behind(case, [n for n in case.nodes if on_kink(n, [env[i] for i in n.inputs], leaf_values)])


def leaves_behind(case: GraphCase, nodes: list[Any]) -> frozenset[str]:
    """The leaves that ``nodes`` depend on."""
    inputs = {n.name: n.inputs for n in case.nodes}
    seen: set[str] = set()
    todo = [i for n in nodes for i in n.inputs]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += inputs.get(name, ())
    return frozenset(seen & set(case.leaves))


def on_kink(n: Any, args: list[Any], leaves: list[Value]) -> bool:
    """Whether node ``n``, given its evaluated inputs ``args``, sits on a kink: an input on one of
    its elementwise op's declared kink points, a tie (maximum/minimum, or a tensor op's ``ties``
    rule) between candidates whose gradients with respect to ``leaves`` differ, or an output its
    tensor op's ``singular`` rule puts at a root of 0."""
    if n.op in TENSOR_OPS:  # a tie by the op's declared rule (amax: within any one slice it reduces)
        return any(_split_matters(tied, leaves) for tied in tied_candidates(n.op, args, n.attrs)) or \
            any(singular_outputs(n.op, args, n.attrs))
    spec = OPS.get(n.op)
    if spec is None or not spec.kinks:
        return False
    ties = any(k.at == "tie" for k in spec.kinks)  # maximum, minimum: a == b, wherever it happens
    points = [] if ties else kink_points(spec, spec.attributes(n.attrs))
    for idx in broadcast_lanes([a.shape for a in args]):
        operands = [a.elements[i] for a, i in zip(args, idx)]
        xs = tuple(float(v.data) for v in operands)
        if xs in points or (ties and xs[0] == xs[1] and _split_matters(operands, leaves)):
            return True
    return False


def _split_matters(tied: list[Value], leaves: list[Value]) -> bool:
    """Whether tied candidates (of a max, a min, an amax) have different gradients with respect to
    the leaves: only then do torch's even split and another convention give different results."""
    if len(tied) < 2:
        return False
    slopes = [tuple(0.0 if g is None else float(g) for g in grad(v, leaves, 1.0, allow_unused=True))
              if v.requires_grad else (0.0,) * len(leaves) for v in tied]
    return len(set(slopes)) > 1


def leaf_of(entry: str) -> str | None:
    """``grad[x0][3]`` → ``x0``; ``value…`` → None."""
    return EntryKey.parse(entry).target


def _flat(quantity: str, leaf: str | None, shape: tuple[int, ...], values: Any) -> dict[str, Any]:
    """A tensor's values by entry name: ``value`` for a scalar, ``grad[x0][3]`` (flat index) for a tensor."""
    if not shape:
        return {str(EntryKey(quantity, leaf)): values[0]}
    return {str(EntryKey(quantity, leaf, (i,))): v for i, v in enumerate(values)}


def shape_problem(impl: GraphResult, torch_result: GraphResult) -> str | None:
    """A result tensor whose shape differs from torch's, or whose values do not fill its shape: one
    line saying which, before any entry is compared (a wrong shape can be megabytes of values)."""
    pairs = [("value", impl.value, torch_result.value)]
    pairs += [(str(EntryKey("grad", k)), impl.grads.get(k), t) for k, t in torch_result.grads.items()]
    pairs += [(str(EntryKey("hvp", k)), (impl.hvp or {}).get(k), t) for k, t in (torch_result.hvp or {}).items()]
    for name, got, want in pairs:
        if want is None:
            continue
        if got is None:
            return f"result is missing {name}"
        if not (isinstance(getattr(got, "shape", None), tuple) and isinstance(getattr(got, "values", None), tuple)):
            return f"unusable result: {name} is a {type(got).__name__}, not a Tensor"
        shape, n = tuple(got.shape), len(got.values)
        if shape != tuple(want.shape):
            return f"{name} has shape {shape}, expected {tuple(want.shape)}"
        if n != math.prod(shape):
            return f"{name} has {n} values for its shape {shape}"
    return None


def result_entries(r: GraphResult) -> dict[str, float]:
    """Every entry of a result by name: ``value[…]``, ``grad[leaf][…]``, ``hvp[leaf][…]``."""
    out = _flat("value", None, r.value.shape, r.value.values) if r.value is not None else {}
    for k, t in r.grads.items():
        out.update(_flat("grad", k, t.shape, t.values))
    for k, t in (r.hvp or {}).items():
        out.update(_flat("hvp", k, t.shape, t.values))
    return out


def entry_bounds(case: GraphCase) -> dict[str, Any]:
    """Every entry's running error bound (a :class:`~conformance.tolerance.bounds.Bounded`), named as in
    :func:`result_entries`: refimpl run in the error-bound system of the case's dtype."""
    value, grads, hvp = refimpl_raw(case, bound_system(case.dtype, case.claim))
    out = _flat("value", None, case.cotangent.shape, value)
    for k, g in grads.items():
        out.update(_flat("grad", k, case.leaves[k].shape, g))
    for k, h in (hvp or {}).items():
        out.update(_flat("hvp", k, case.leaves[k].shape, h))
    return out


class _Truth:
    """The arbiter, computed entry by entry and only where the implementation and torch disagree."""

    def __init__(self, case: GraphCase) -> None:
        self.case = case
        self._hi: dict[str, tuple[float, float]] | None = None
        self._index = {name: (k, i) for k, t in case.leaves.items()
                       for i, name in enumerate(_flat("grad", k, t.shape, range(len(t.values))))}

    def __getitem__(self, name: str) -> tuple[float, float]:
        if name in self._index:
            return truth_gradient(self.case, *self._index[name])
        if self._hi is None:  # values and HVPs: refimpl at 50 digits, one run for all of them
            value, _, hvp = refimpl_raw(self.case, mpmath_system(50))
            hi = {k: (float(v), 0.0) for k, v in _flat("value", None, self.case.cotangent.shape, value).items()}
            for k, h in (hvp or {}).items():
                hi.update({n: (float(v), 0.0) for n, v in _flat("hvp", k, self.case.leaves[k].shape, h).items()})
            self._hi = hi
        return self._hi[name]


def arbitrate(x: float, t: float, true: float, slack: float, excuse: Callable[[], Any]) -> tuple[str, Any]:
    """The verdict of an entry where the implementation (``x``) and torch (``t``) disagree, given the
    truth and how far from it an honest result may be. ``excuse()`` — asked only when the
    implementation is off the truth — says whether a documented convention (a kink) explains it;
    what it returned comes back with the verdict."""
    impl_ok, torch_ok = within(x, true, slack), within(t, true, slack)
    if impl_ok:
        return ("pass" if torch_ok else "torch-deviates"), None
    why = excuse()
    if why:
        return "convention", why
    if math.isfinite(x) != math.isfinite(true):
        return "nonfinite-mismatch", None
    return "fail", None


def torch_witnesses(case: GraphCase) -> bool:
    """Whether torch's result is a witness for the case's tolerances: two results within ``tol`` of
    the truth are within ``2·tol`` of each other, so agreeing with torch passes an entry — when torch
    itself is within ``tol``. That holds for the bounds of any order, and for a claim of float32
    accumulation of half-precision data (torch's CPU kernels accumulate so: ``TorchImpl`` declares
    it); it does not for a claimed summation order, whose bound torch's kernels (a BLAS dot product, a
    vectorized running sum) need not meet: an implementation that breaks the claim may agree with
    torch exactly (a running sum of the stagnating terms, 1.0, is torch's float32 matmul too). There
    refimpl computing the claim is a second witness, whose result the claim's bound is derived for
    (the truth for every entry would be the other way: a finite difference at 50 digits per entry,
    seconds for a 64-term matmul)."""
    return case.claim is None or case.claim.summation is None


def judge(case: GraphCase, impl: GraphResult, torch_result: GraphResult, *,
          always_truth: bool = False) -> CaseVerdict:
    """The verdict on one case: every entry, then the worst of them.

    With ``always_truth`` (the nightly profile) every entry is also held against the truth, not
    only those where the implementation and torch disagree. For a case declared under a summation
    order torch alone is no witness (:func:`torch_witnesses`): an entry agrees when it is within
    ``2·tol`` of torch's *and* of refimpl computing what the claim says (refimpl-pairwise:
    :func:`conformance.oracle.run.run_refimpl` follows the case's claim); otherwise the truth decides.
    """
    if impl.error is not None:  # adapters mark a case that ran out of time with the prefix "timeout:"
        return CaseVerdict(case, "timeout" if impl.error.startswith("timeout:") else "error", reason=impl.error)
    problem = shape_problem(impl, torch_result)
    if problem:
        return CaseVerdict(case, "error", reason=problem)
    got, want = result_entries(impl), result_entries(torch_result)
    missing = sorted(set(want) - set(got))
    if missing:
        return CaseVerdict(case, "error", reason=f"result is missing {', '.join(missing)}")
    bounds, truth = entry_bounds(case), _Truth(case)
    claimed = None if torch_witnesses(case) else result_entries(run_refimpl(case))  # the claim's witness
    kinked: dict[str, ValidSet | TooManyKinks] | None = None
    entries = []
    for name, t in want.items():
        x = got[name]
        tol = SAFETY * float(bounds[name].e) + TINY
        agree = within(x, t, 2 * tol) and (claimed is None or within(x, claimed.get(name, math.nan), 2 * tol))
        if agree and not always_truth and not unchecked(2 * tol, t):
            entries.append(Entry(name, x, t, tol, Verdict.PASS))
            continue
        # disagreeing, or agreeing with a torch so near 0 that agreeing says nothing (rounding noise
        # around an exact 0, as a normalized group of one element gives): the truth decides
        if kinked is None:
            kinked = valid_sets(case)
        valid = kinked.get(name)
        if valid is not None:
            # at a kink the finite difference averages the one-sided slopes: it is no truth there;
            # torch's documented choice is one valid answer, and any other valid one is a convention
            entries.append(Entry(name, x, t, tol, at_kink(x, agree, 2 * tol, t, valid), valid=valid))
            continue
        true, fd_err = truth[name]
        # no truth to hold an agreement with torch to: NaN (a domain's edge), or a pole of the exact
        # function that the format's rounding moved both off (bfloat16: n·(1/n) − 1 is 0 exactly, and
        # its x⁻² infinite, where refimpl and torch both round to a finite −2097152); or no tolerance
        # to hold it to the truth with (NaN: the error analysis met inf·0 on the way)
        if agree and (math.isnan(true) or (math.isinf(true) and math.isfinite(x)) or math.isnan(tol)):
            entries.append(Entry(name, x, t, tol, Verdict.UNCHECKED, truth=true))
            continue
        verdict, _ = arbitrate(x, t, true, tol + fd_err, lambda: False)
        entries.append(Entry(name, x, t, tol, unchecked_if(verdict, tol + fd_err, true), truth=true))
    entries += tie_sums(entries, kinked or {})
    worst = min((e.verdict for e in entries), key=ORDER.index, default="pass")
    bad = [e for e in entries if e.verdict == worst and worst != "pass"]
    return CaseVerdict(case, worst, entries, reason=bad[0].describe() if bad else "")


def tie_sums(entries: list[Entry], kinked: dict[str, ValidSet | TooManyKinks]) -> list[Entry]:
    """A leaf whose gradient entries were each a valid choice at a tie (``convention``) may still
    have made choices no split gives: a max pool's mask ``x == max`` sends the whole gradient to
    each of k tied elements — each entry inside [0, g], their sum k·g. Each valid split sums to the
    same total, so the leaf's sum (``gradsum[x0]``) is judged against its own valid set."""
    by_leaf: dict[str, list[Entry]] = {}
    for e in entries:
        key = EntryKey.parse(e.name)
        if key.quantity == "grad" and key.target is not None:
            by_leaf.setdefault(key.target, []).append(e)
    out = []
    for leaf, es in by_leaf.items():
        valid = kinked.get(str(EntryKey("gradsum", leaf)))
        if not isinstance(valid, ValidSet) or not any(e.verdict == Verdict.CONVENTION for e in es):
            continue
        x, t, tol = math.fsum(e.impl for e in es), math.fsum(e.torch for e in es), math.fsum(e.tol for e in es)
        verdict = at_kink(x, within(x, t, 2 * tol), 2 * tol, t, valid)
        out.append(Entry(str(EntryKey("gradsum", leaf)), x, t, tol, verdict, valid=valid))
    return out


def unchecked(window: float, reference: float) -> bool:
    """Whether a check within ``window`` of ``reference`` says nothing: the window is infinite (the
    error bound overflowed), or it reaches zero from a non-zero finite reference — a dropped
    gradient, 0, would pass it, and so would the reference's negation when ``window ≥ 2·|reference|``.
    A non-finite reference is checked exactly (inf only matches inf); a zero one to its window."""
    if not math.isfinite(reference):
        return False
    return not window < math.inf or (reference != 0 and window >= abs(reference))


def unchecked_if(verdict: str, window: float, reference: float) -> str:
    """``verdict``, unless it is a pass that a window saying nothing gave: then ``unchecked``."""
    return Verdict.UNCHECKED if verdict == Verdict.PASS and unchecked(window, reference) else verdict


def at_kink(x: float, agree: bool, window: float, t: float, valid: ValidSet | TooManyKinks) -> str:
    """The verdict of an entry that a choice at a kink changes: ``pass`` within ``window`` of torch
    (``t``), else ``convention`` inside the valid set, ``fail`` (or ``nonfinite-mismatch``) outside
    it; ``unchecked`` where the valid set was not enumerated or its slack is infinite."""
    if agree:
        return unchecked_if(Verdict.PASS, window, t)
    if isinstance(valid, TooManyKinks) or not valid.slack < math.inf:
        return Verdict.UNCHECKED
    if x in valid:
        return Verdict.CONVENTION
    if math.isfinite(x) != valid.finite:
        return Verdict.NONFINITE_MISMATCH
    return Verdict.FAIL
