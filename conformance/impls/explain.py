"""Known causes of a failure, each reproduced rather than guessed: calibration's budget is "no failure
that is not a true bug or a documented convention", so every failure of a library is either
*explained* by one of these — refimpl, changed in exactly the documented way, gives the library's
number — or counted as unexplained.

A cause explains a case when, for every failing entry, the changed refimpl's result is within twice
the larger of the entry's tolerance and the one the suite gives the changed formula (the rule by
which any implementation agrees with torch), or the entry is a gradient behind a node that the
changed forward puts on a kink or outside its op's domain (the library's convention there is its
own). Causes are tried one at a time, then in pairs that change different ops (a case can meet two
bugs of one library). Exact formula changes come first, ``flush-to-zero`` — the most lenient — last.

* ``self-tie`` — ``maximum(x, x)`` / ``minimum(x, x)`` given the gradient 0 instead of 1 (mygrad 2.5's
  tie rule, 0 to both sides, applied where the two sides have the same gradient): a bug
  (docs/findings.md). refimpl with that tie rule reproduces the entry.
* ``leaky-relu-0-at-0``, ``elu-0-at-0`` — the derivative 0 at the kink, outside the one-sided
  derivatives (slope or α, and 1) that any valid choice lies between: mygrad's leaky_relu is
  ``max(x, 0) + slope·min(x, 0)`` and its ties give nothing; tinygrad's elu′(0) is 0. Bugs.
* ``elu-from-output`` — elu′ computed from the output, ``out + α`` on x ≤ 0 (jax, mygrad): equal in
  exact arithmetic, but ``α·expm1(x) + α`` cancels — at x = −675 every digit of α·eˣ ≈ 1e-294 is
  lost and the gradient is 0. An accuracy bug: the derivative's relative error is up to 100%.
* ``elu-exp-minus-one`` — elu computed as ``α·(exp(x) − 1)`` for x < 0, and its derivative from
  that output (mygrad 2.5): the subtraction cancels for small |x| — elu(−4.9e-61) is 0 where it is
  −4.9e-61·α, and at x = −0.027 the last 3 bits are lost. An accuracy bug (torch and refimpl use
  expm1).
* ``log-softmax-minus-logsumexp`` — log_softmax as ``x − logsumexp(x)`` (mygrad): x and
  max + log Σ exp(x − max) cancel, so at x = [−709, −709] the result is off by 5.5e-14 (torch
  computes ``(x − max) − log Σ``). An accuracy bug.
* ``reciprocal-partial`` — log′ and div′ as g·(1/x) instead of g/x: 1/x overflows for a subnormal x
  (refimpl did this until it gained ``OpSpec.vjp``). A numerical bug.
* ``quotient-squared`` — div′ for the denominator as −g·a/b² (autograd, mygrad): b² overflows or
  underflows where −g·(a/b)/b does not, and the gradient is ±inf or 0 where the true one is finite.
  A numerical bug.
* ``inverse-square`` — div′ for the denominator as −(g·b⁻²)·a (jax: ``integer_pow(y, -2)``, 1/(y·y)):
  b⁻² overflows for |b| < 1e-19 in binary32, and 0·inf is NaN where the gradient of 0/b is 0.
  A numerical bug.
* ``power-cotangent-first`` — pow′ as ``(g·y)·x^(y−1)`` (autograd): for a tiny exponent y the
  product g·y is subnormal and keeps few digits, though x^(y−1) brings it back to a normal number
  (pow(x, x) at x = 1e-300 with g = 1e-20: the gradient is off by 1.3e-5 relative). An accuracy bug.
* ``abs-as-quotient`` — abs′ as ``g·x / |x|`` (autograd): for a subnormal x the product g·x keeps
  only the subnormal's few significant bits, so the gradient of abs at x = 1e-40 in binary32 is
  off by 8e-6 relative; differentiated again it leaves abs″ a rounding residue (5.55e-17 at
  x = −3.84) where the true value is 0. An accuracy bug.
* ``product-over-input-zeros-patched`` — prod′ as ``(g·prod)/x`` and cumprod′ as
  ``reverse-cumsum(g·cumprod)/x`` (autograd's prod, mygrad's cumprod; mygrad's prod is g·(prod/x),
  whose prod/x of one factor is exact), where the input is not 0; mygrad gives a lone zero
  (cumprod: a lane's first) the product of the others, and the other zeros 0. Equal in exact
  arithmetic, but the quotient rounds once more: a lane of one, prod([x])′ = g, is (g·x)/x, off by
  an ulp where the true gradient is exact. An accuracy loss, not charged.
* ``product-over-input`` — the same with no zero patched (autograd, ``grad_np_prod``): at a zero of
  the input the gradient is 0/0 = NaN, where it is the product of the others (0 when the lane has
  two zeros). A bug. refimpl's own prod and cumprod never divide (refimpl/indexing.py); the cause
  writes the quotient as a node ``over_input(x)`` that is 0 and whose backward divides by x.
* ``flush-to-zero`` — subnormals flushed to zero, inputs and results (FTZ + DAZ: XLA's CPU default,
  hence jax's): refimpl run in :class:`FlushNS`, to within the smallest normal number, and a
  subnormal input flushed onto a kink takes the library's convention there. A documented choice
  of the library, outside IEEE: the suite still judges it ``fail`` (the number is wrong for the
  dtype). The price: a wrong derivative *at a subnormal input on a kink* is put down to it too
  (tests/test_explain.py pins where that stops).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, replace
from typing import Any
from unittest import mock

from conformance.case.dtypes import DTYPES, DType
from conformance.case.graph import GraphCase
from conformance.case.tensor_ops import TENSOR_OPS
from conformance.impls.zoo.base import entries, replace_op
from conformance.oracle.run import evaluate, leaf_tensors, refimpl_system, run_refimpl
from conformance.tolerance.bounds import SAFETY, TINY, BoundNS, lift
from conformance.verdict.graph import (
    CaseVerdict,
    broadcast_lanes,
    entry_bounds,
    kinked_leaves,
    leaf_of,
    leaves_behind,
    result_entries,
    within,
)
from conformance.verdict.outcomes import NONCONFORMING, Verdict
from conformance.verdict.outcomes import worst as worst_of
from refimpl import OPS, indexing
from refimpl.engine import apply
from refimpl.numbers import PRIMITIVES, FloatNS
from refimpl.ops import REALS, OpSpec
from refimpl.tensor import Tensor, norm_dim, reduction_groups


def _flush(x: float, tiny: float) -> float:
    return math.copysign(0.0, x) if abs(x) < tiny else x


def _flushing(f: Callable[..., float], tiny: float, rnd: Callable[[float], float] = float) -> Any:
    """``f`` with its result flushed: the engine's add and mul, conversion and rounding, and the
    functions an op's formula calls (silu's sigmoid), as XLA's fused elementwise code flushes each
    intermediate."""
    return staticmethod(lambda *args: _flush(rnd(f(*args)), tiny))


def _flushing_system(d: DType) -> Any:
    """refimpl in dtype ``d`` with every subnormal input and result flushed to a signed zero (FTZ +
    DAZ): each function is binary64's, rounded to the format when the op is done, then flushed."""
    tiny = d.format.smallest_normal
    cls = type(f"Flush_{d.name}", (FloatNS,), {"name": f"{d.name}-ftz", "rounds": True})
    for f in ("convert", "round", "add", "mul", "div", *PRIMITIVES):
        setattr(cls, f, _flushing(getattr(FloatNS, f), tiny, d.cast))
    return cls()


#: per dtype, refimpl flushing subnormals, and the smallest normal number below which it flushes
FLUSH = {name: _flushing_system(d) for name, d in DTYPES.items()}
SMALLEST_NORMAL = {name: d.format.smallest_normal for name, d in DTYPES.items()}


@dataclass(frozen=True)
class Reproduction:
    """What refimpl changed by one cause gives: per entry, the result and the tolerance the suite
    would give it; and the leaves behind a node the changed forward puts on a kink."""

    entries: dict[str, tuple[float, float]]
    excused: frozenset[str] = frozenset()  # leaves behind a kink, or an input outside its op's domain

    def reproduces(self, e: Any) -> bool:
        """Whether the failing entry ``e`` (name, impl, tol) is this cause's result, within twice the
        larger of the two tolerances — the rule by which an implementation agrees with torch — or
        is a gradient behind a point where the changed forward leaves the op no single derivative:
        a kink, where the library's convention is its own business (mygrad's elu(−5e-11) is exactly
        0 in binary32, where its leaky_relu′(0) = 0), or outside the op's domain (jax's
        ``power(x, 0.0)′`` at a flushed x = 0 is 0·0⁻¹ = NaN)."""
        if leaf_of(e.name) in self.excused:
            return True
        if e.name not in self.entries:
            return False
        y, tol = self.entries[e.name]
        return within(e.impl, y, 2 * max(e.tol, tol))


def _excused(case: GraphCase, ns: Any, kinked_before: frozenset[str]) -> frozenset[str]:
    """The leaves behind a node that, computed in ``ns``, sits on a kink or has an input outside its
    op's domain — kinks the unchanged case has already (its leaves ``kinked_before``) excuse nothing:
    the judge held the failing entry to the valid choices there (conformance/verdict/kinks.py), and
    a cause does not change which choices are valid."""
    env = evaluate(case, leaf_tensors(case, ns))
    off = []
    for n in case.nodes:
        spec = OPS.get(n.op)
        if spec is None:
            continue
        args = [env[i] for i in n.inputs]
        lanes = broadcast_lanes([a.shape for a in args])
        if any(a.elements[i].data not in dom for idx in lanes for a, i, dom in zip(args, idx, spec.domain)):
            off.append(n)
    return (kinked_leaves(case, ns) - kinked_before) | leaves_behind(case, off)


Patch = Callable[[], AbstractContextManager[Any]]


@dataclass(frozen=True)
class Cause:
    """refimpl changed in one documented way: some of its formulas replaced (``patches``, entered
    around the run — the zoo's ``replace_op`` for an op), or its number system flushing
    subnormals. Asked only of cases using one of ``ops`` (all cases if empty)."""

    ops: frozenset[str] = frozenset()
    patches: tuple[Patch, ...] = ()
    flush: bool = False
    #: a correct formula (exact in real arithmetic) that loses precision where it disagrees: its
    #: cases are ``known-cause``, not charged. False: a bug, or a choice outside IEEE (still ``fail``)
    correct: bool = True
    note: str = ""  #: what it is and where it loses, in one line, for the verdict's reason

    def __add__(self, other: Cause) -> Cause:
        return Cause(self.ops | other.ops, self.patches + other.patches, self.flush or other.flush,
                     self.correct and other.correct, f"{self.note}; and {other.note}")

    def reproduce(self, case: GraphCase, kinked_before: frozenset[str] | None = None) -> Reproduction | None:
        """The changed refimpl on ``case``: each entry with the tolerance the suite would give the
        changed formula — a library evaluating it rounds in its own way (numpy's exp is not
        refimpl's), as a correct library rounds differently from torch. A flushing run is held
        to the smallest normal number instead: which results are flushed is the library's business
        (a comparison sees a subnormal input as 0 — DAZ — while a select passes it through
        unflushed: jax's ``where(x >= 0, x, s·x)`` returns x = −1e-40 itself)."""
        if self.ops and not any(n.op in self.ops for n in case.nodes):
            return None
        if kinked_before is None:
            kinked_before = kinked_at_start(case)
        if self.flush:  # a constant is flushed where it is used, as an input is (DAZ)
            case = _flushed_attributes(case)
        ns = FLUSH[case.dtype] if self.flush else refimpl_system(case)
        floor = SMALLEST_NORMAL[case.dtype] if self.flush else 0.0
        with ExitStack() as stack:
            for patch in self.patches:
                stack.enter_context(patch())
            got, bounds = result_entries(run_refimpl(case, ns)), entry_bounds(case)
            excused = _excused(case, ns, kinked_before)
        return Reproduction({k: (x, max(floor, SAFETY * float(bounds[k].e) + TINY))
                             for k, x in got.items() if k in bounds}, excused)


def kinked_at_start(case: GraphCase) -> frozenset[str]:
    """The leaves behind a kink of the unchanged case (in binary64, and in its dtype's refimpl)."""
    return kinked_leaves(case) | kinked_leaves(case, refimpl_system(case))


def _flushed_attributes(case: GraphCase) -> GraphCase:
    tiny = SMALLEST_NORMAL[case.dtype]
    nodes = tuple(replace(n, attrs={k: _flush(v, tiny) if isinstance(v, float) else v for k, v in n.attrs.items()})
                  for n in case.nodes)
    return replace(case, nodes=nodes)


def _patched(ops: tuple[str, ...], *changes: tuple[str, dict[str, Any]], correct: bool = True,
             note: str = "") -> Cause:
    """A cause: refimpl with each ``(op, {field: value})`` change made, asked only of cases that
    use one of ``ops``."""
    return Cause(frozenset(ops), tuple(replace_op(name, **fields) for name, fields in changes), correct=correct,
                 note=note)


def _zero_on_tie(name: str) -> tuple[str, dict[str, Any]]:
    """A tie of maximum/minimum passes 0 to both sides. Where the tied sides have different
    gradients that is a kink (``convention``, never a failure); where they have the same —
    ``maximum(x, x)`` — every valid choice gives it, and 0 is wrong."""
    spec = OPS[name]

    def derivative(m: Any, a: Any, b: Any, out: Any) -> tuple[Any, Any]:
        return (m.zero, m.zero) if m.val(a) == m.val(b) else spec.derivative(m, a, b, out)

    return name, {"derivative": derivative}


def _mul(m: Any, a: Any, b: Any) -> Any:
    """``a·b`` rounded as the number system rounds one operation (binary32: to binary32): a library
    evaluates its formula one array operation at a time, each rounded to the dtype."""
    return m.mul(a, b) if hasattr(m, "mul") else a * b  # create_graph's namespace: graph nodes


def _add(m: Any, a: Any, b: Any) -> Any:
    return m.add(a, b) if hasattr(m, "add") else a + b


def _elu_exp_minus_one(m: Any, x: Any, alpha: float) -> Any:
    return x if m.val(x) >= 0 else _mul(m, alpha, _add(m, m.round(m.exp(x)), -m.one))


def _tanh_exp_ratio(m: Any, x: Any) -> Any:
    """tanh as (e²ˣ − 1)/(e²ˣ + 1), each operation rounded: the lecture's formula (micrograd's video)."""
    e = m.round(m.exp(_mul(m, 2, x)))
    return m.div(_add(m, e, -m.one), _add(m, e, m.one))


def _inverse_square(m: Any, g: Any, a: Any, b: Any, out: Any) -> tuple[Any, Any]:
    """jax's div′: ``div(g, y)`` and the transpose of ``mul(mul(neg(g), x), integer_pow(y, -2))``."""
    inv_sq = m.round(m.div(m.one, _mul(m, b, b)))
    return m.div(g, b), -_mul(m, _mul(m, g, inv_sq), a)


def _power_cotangent_first(m: Any, g: Any, a: Any, b: Any, out: Any) -> tuple[Any, Any]:
    """autograd's power′: ``g * y * x ** (y - 1)`` and ``g * log(x) * ans``, left to right."""
    return (_mul(m, _mul(m, g, b), m.round(m.pow(a, _add(m, b, -m.one)))),
            _mul(m, _mul(m, g, m.round(m.log(a))), out))


def _power_scalar_cotangent_first(m: Any, g: Any, x: Any, out: Any, exponent: Any) -> tuple[Any]:
    return (_mul(m, _mul(m, g, exponent), m.round(m.pow(x, exponent - 1))) if exponent else _mul(m, g, m.zero),)


def _log_softmax_minus_logsumexp() -> AbstractContextManager[Any]:
    """log_softmax as ``x − logsumexp(x)`` (mygrad): x and max + log Σ exp(x − max) cancel."""
    tensor = importlib.import_module("refimpl.tensor")  # the module: ``refimpl.tensor`` is also a function

    def log_softmax(lane: list[Any]) -> list[Any]:
        if not lane:
            return []
        total = tensor.logsumexp_of(lane)
        return [x - total for x in lane]

    return mock.patch.object(tensor, "log_softmax_of", log_softmax)


def _log1p_within(ulps: float) -> Patch:
    """log1p trusted to ``ulps`` instead of LIBM_ULPS: XLA's binary64 log1p (jax 0.10.2) is off by up
    to 127 ulps near x = −0.414 (50,000 points against mpmath; its binary32 log1p: 2.2 ulps)."""

    def patch() -> AbstractContextManager[Any]:
        trusted = BoundNS.log1p
        return mock.patch.object(BoundNS, "log1p", lift(trusted.f, trusted.df, ulps))  # type: ignore[attr-defined]

    return patch


#: the gradient that reaches it, divided by its input: ``y = over_input(x)`` is 0, and ``y·c`` added
#: to an output sends g·c to y, so x receives ``(g·c)/x`` — the library's order (autograd: ``g * ans``,
#: then ``/ x``); refimpl's other ops never divide by an input to get a product's gradient
_OVER_INPUT = OpSpec("over_input", 1, lambda m, x: m.zero, lambda m, x, out: (m.div(m.one, x),), "", (REALS,),
                     vjp=lambda m, g, x, out: (m.div(g, x),))


def _product_over_input(x: Tensor, dim: int, running: bool, keepdim: bool, zeros_patched: bool) -> Tensor:
    """prod (``running``: cumprod) whose backward is the product over the input: input i of a lane
    receives ``(Σ_k g_k·c_k)/x_i`` over the outputs c_k that contain it (prod: the one, ``g·prod/x``;
    cumprod: the reverse running sum of ``g·cumprod``, over x). The value is refimpl's, exactly.

    ``zeros_patched`` (mygrad): the zero of a lane that has exactly one (cumprod: its first zero)
    gets the chain rule's product of the others, as mygrad recomputes it with that zero set to 1,
    and the other zeros 0 (mygrad's ``nan_to_num``; the true gradient there is 0 too). Not patched
    (autograd): every input is divided, so a zero's gradient is 0/0 = NaN."""
    d = norm_dim(dim, x.ndim)
    _, lanes = reduction_groups(x.shape, (d,) if x.ndim else ())
    live: set[int] = set()  # the patched zeros: their gradient is refimpl's chain rule
    divided: set[int] = set()
    for lane in lanes:
        zeros = [i for i in lane if x.elements[i].data == 0]
        if zeros_patched and zeros and (running or len(zeros) == 1):
            live.add(zeros[0])
        divided.update(i for i in lane if not zeros_patched or x.elements[i].data != 0)
    constants = x.detach().elements
    held = Tensor([v if i in live else constants[i] for i, v in enumerate(x.elements)], x.shape, x.system)
    right = indexing.cumprod(held, dim) if running else indexing.prod(held, dim, keepdim)
    over = {i: apply(_OVER_INPUT, x.elements[i]) for i in divided}
    out, values = list(right.elements), right.detach().elements  # each output as a constant, before the terms
    for j, lane in enumerate(lanes):
        for k, o in enumerate(lane if running else [j]):
            c = values[o]
            for i in lane[:k + 1] if running else lane:
                if i in over:
                    out[o] = out[o] + over[i] * c
    return Tensor(out, right.shape, right.system)


def _over_input_patch(zeros_patched: bool) -> Patch:
    """prod and cumprod of refimpl with :func:`_product_over_input`'s backward."""

    def prod(x: Tensor, dim: int, keepdim: bool = False) -> Tensor:
        return _product_over_input(x, dim, False, keepdim, zeros_patched)

    def cumprod(x: Tensor, dim: int) -> Tensor:
        return _product_over_input(x, dim, True, False, zeros_patched)

    return entries(TENSOR_OPS, prod=replace(TENSOR_OPS["prod"], refimpl=prod),
                   cumprod=replace(TENSOR_OPS["cumprod"], refimpl=cumprod))


CAUSES: dict[str, Cause] = {
    # exact changes of one formula first; flushing, which excuses more, last
    "self-tie": _patched(("maximum", "minimum"), _zero_on_tie("maximum"), _zero_on_tie("minimum"), correct=False,
                         note="maximum(x, x) and minimum(x, x) given the gradient 0 instead of 1: a bug"),
    "leaky-relu-0-at-0": _patched(("leaky_relu",), ("leaky_relu", {"derivative": lambda m, x, out, negative_slope: (
        m.zero if m.val(x) == 0 else m.one if m.val(x) > 0 else negative_slope,)}), correct=False,
        note="leaky_relu′(0) = 0, outside its one-sided derivatives [slope, 1] (mygrad: max(x, 0) + "
             "slope·min(x, 0), whose ties give nothing): a bug"),
    "elu-0-at-0": _patched(("elu",), ("elu", {"derivative": lambda m, x, out, alpha: (
        m.zero if m.val(x) == 0 else m.one if m.val(x) > 0 else alpha * m.exp(x),)}), correct=False,
        note="elu′(0) = 0, outside its one-sided derivatives [α, 1] (tinygrad): a bug"),
    "elu-from-output": _patched(("elu",), ("elu", {"derivative": lambda m, x, out, alpha:
                                                  (m.one if m.val(x) > 0 else out + alpha,)}),
                                note="elu′ computed from the output as out + α, which cancels for very negative x"),
    "elu-exp-minus-one": _patched(("elu",), ("elu", {"forward": _elu_exp_minus_one,
                                                    "derivative": lambda m, x, out, alpha:
                                                    (m.one if m.val(x) >= 0 else _add(m, out, alpha),)}),
                                  note="elu as α·(exp(x) − 1) rather than α·expm1(x), which cancels for small |x|"),
    "tanh-exp-ratio": _patched(("tanh",), ("tanh", {"forward": _tanh_exp_ratio}), correct=False,
                               note="tanh as (e²ˣ − 1)/(e²ˣ + 1) (the lecture's formula), which cancels near 0 — "
                                    "tanh(x) = 0 for |x| < 5.6e-17 — and overflows past x ≈ 355: an inaccurate tanh"),
    "log-softmax-minus-logsumexp": Cause(frozenset({"log_softmax"}), (_log_softmax_minus_logsumexp,),
                                         note="log_softmax as x − logsumexp(x), which cancels for large |x|"),
    "log1p-128-ulps": Cause(frozenset({"log1p"}), (_log1p_within(128),), correct=False,
                            note="a log1p off by up to 128 ulps (XLA's binary64 log1p): an inaccurate primitive"),
    "reciprocal-partial": _patched(("log", "div"), ("log", {"vjp": None}), ("div", {"vjp": None}),
                                   note="log′ and div′ as g·(1/x), where 1/x overflows for a subnormal x"),
    "quotient-squared": _patched(("div",), ("div", {"vjp": lambda m, g, a, b, out:
                                                    (m.div(g, b), m.div(_mul(m, -g, a), _mul(m, b, b)))}),
                                 note="div′ for the denominator as −g·a/b², where b² overflows or underflows"),
    "inverse-square": _patched(("div",), ("div", {"vjp": _inverse_square}),
                               note="div′ for the denominator as −(g·b⁻²)·a, where b⁻² overflows"),
    "power-cotangent-first": _patched(("pow", "pow_scalar", "pow_int"), ("pow", {"vjp": _power_cotangent_first}),
                                      ("pow_scalar", {"vjp": _power_scalar_cotangent_first}),
                                      ("pow_int", {"vjp": _power_scalar_cotangent_first}),
                                      note="pow′ as (g·y)·x^(y−1), where g·y is subnormal for a tiny exponent"),
    "abs-as-quotient": _patched(("abs",), ("abs", {"vjp": lambda m, g, x, out:
                                                  (m.div(_mul(m, g, x), out) if m.val(x) != 0 else
                                                   _mul(m, g, m.zero),)}),
                                note="abs′ as g·x/|x|, where g·x loses the digits of a subnormal x"),
    "product-over-input-zeros-patched": Cause(
        frozenset({"prod", "cumprod"}), (_over_input_patch(True),),
        note="prod′ and cumprod′ as (g·prod)/x and reverse-cumsum(g·cumprod)/x where the input is not 0 "
             "(autograd, mygrad; mygrad gives a lone zero the product of the others): the quotient rounds once more"),
    "product-over-input": Cause(frozenset({"prod", "cumprod"}), (_over_input_patch(False),), correct=False,
                                note="prod′ as (g·prod)/x with no zero patched (autograd): NaN (0/0) at a zero "
                                     "of the input, where the gradient is the product of the others: a bug"),
    "flush-to-zero": Cause(flush=True, correct=False,
                           note="subnormals flushed to zero (FTZ + DAZ): a choice outside IEEE"),
}


def _candidates(case: GraphCase) -> Iterator[tuple[str, Cause]]:
    """Every cause the case's ops can meet, then every pair of them that change different ops (a
    library has several bugs, and one case can meet two: mygrad's ``elu(minimum(x, x))``)."""
    used = {n.op for n in case.nodes}
    names = [k for k, c in CAUSES.items() if not c.ops or c.ops & used]
    yield from ((k, CAUSES[k]) for k in names)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if not CAUSES[a].ops & CAUSES[b].ops:
                yield f"{a} + {b}", CAUSES[a] + CAUSES[b]


def explain(case: GraphCase, entries: list[Any]) -> str | None:
    """The name of the known cause (or pair of causes) that reproduces every failing entry of
    ``entries`` (verdict entries: name, impl, tol, verdict), or None."""
    found = find_cause(case, entries)
    return None if found is None else found[0]


def find_cause(case: GraphCase, entries: list[Any]) -> tuple[str, Cause] | None:
    """:func:`explain`, with the cause itself."""
    bad = [e for e in entries if e.verdict in NONCONFORMING]
    if not bad:
        return None
    kinked_before = kinked_at_start(case)
    # a cause explains what its changed formula does differently: where refimpl unchanged gives the
    # failing answer as well, no change is at work (refimpl itself differs from torch there: a
    # torch deviation, or refimpl patched under test) and no cause is named
    unchanged = Cause().reproduce(case, kinked_before)
    if unchanged is not None and all(unchanged.reproduces(e) for e in bad):
        return None
    for name, cause in _candidates(case):
        try:
            got = cause.reproduce(case, kinked_before)
        except (ArithmeticError, ValueError):
            continue
        if got is not None and all(got.reproduces(e) for e in bad):
            return name, cause
    return None


#: the verdicts a known cause can account for: wrong numbers (an exception or a timeout cannot be)
EXPLAINABLE = frozenset({Verdict.FAIL, Verdict.NONFINITE_MISMATCH})


def name_cause(v: CaseVerdict) -> CaseVerdict:
    """The verdict with its known cause named, if one reproduces every failing entry. A correct
    formula's cause turns the failing entries, and so the case, into ``known-cause`` (not charged:
    the derivative is right, the formula loses precision at these inputs); any other cause stays
    charged and is named in the reason. A verdict no cause reproduces is returned as it is."""
    if v.conforms or v.verdict not in EXPLAINABLE:
        return v
    found = find_cause(v.case, v.entries)
    if found is None:
        return v
    name, cause = found
    if not cause.correct:
        return replace(v, cause=name, reason=f"{v.reason} (reproduced by the known cause {name}: {cause.note})")
    entries = [replace(e, verdict=Verdict.KNOWN_CAUSE) if e.verdict in NONCONFORMING else e for e in v.entries]
    worst = worst_of(e.verdict for e in entries)
    first = next(e for e in entries if e.verdict == Verdict.KNOWN_CAUSE)
    return replace(v, verdict=worst, entries=entries, cause=name,
                   reason=f"known cause {name}: {cause.note}; the first entry: {first.describe()}")
