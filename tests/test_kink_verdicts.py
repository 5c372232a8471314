"""Where a kink excuses a difference from torch, and where it must not.

Found by running real libraries (docs/findings.md): a kink once excused every entry of its case, a
node tied with itself counted as a tie, and an implementation returning the midpoint of the
one-sided slopes at a kink was judged right (the finite difference there *is* that midpoint) with
torch blamed. Each rule is pinned here with an implementation planted to hit it.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from conformance.case.graph import GraphCase, Node, Tensor, case_from_json
from conformance.case.strategies import layer_fixed_cases, with_id
from conformance.driver import judge_case as check
from conformance.impls import RefImpl
from conformance.impls.zoo import MUTANTS, MutantImpl
from conformance.oracle.run import evaluate, leaf_tensors, refimpl_system
from refimpl import FLOAT64, OPS


class Planted(RefImpl):
    """refimpl with some ops' local derivatives replaced, only while it runs a case."""

    def __init__(self, **derivatives):
        self.derivatives = derivatives

    def run_graph(self, case):
        real = dict(OPS)
        for op, d in self.derivatives.items():
            OPS[op] = dataclasses.replace(OPS[op], derivative=d)
        try:
            return super().run_graph(case)
        finally:
            OPS.update(real)


def case(leaves: dict[str, float], *nodes: tuple[str, str, tuple[str, ...], dict]) -> GraphCase:
    return with_id(GraphCase(leaves={k: Tensor.scalar(v) for k, v in leaves.items()},
                             nodes=tuple(Node(n, op, ins, attrs) for n, op, ins, attrs in nodes),
                             output=nodes[-1][0], cotangent=Tensor.scalar(1.0)))


ZERO_AT_TIES = Planted(maximum=lambda m, a, b, out: (m.zero, m.zero) if m.val(a) == m.val(b)
                       else (m.one, m.zero) if m.val(a) > m.val(b) else (m.zero, m.one))


def test_a_tie_between_two_nodes_is_a_convention():
    v = check(ZERO_AT_TIES, case({"x0": 0.7, "x1": 0.7}, ("n0", "maximum", ("x0", "x1"), {})))
    assert v.verdict == "convention", v.reason


def test_a_node_tied_with_itself_is_no_tie():
    """maximum(x, x) is x: its derivative is 1, and 0 is wrong, not a convention (mygrad 2.5.0)."""
    v = check(ZERO_AT_TIES, case({"x0": 0.7}, ("n0", "maximum", ("x0", "x0"), {})))
    assert v.verdict == "fail", v.reason


def test_the_midpoint_at_a_kink_is_a_convention_not_torch_deviating():
    """jax's clamp′ at a bound is ½, the finite difference's average of 0 and 1: torch's 1 is the
    documented reference there, so ½ is another convention — torch does not deviate."""
    half = Planted(clamp=lambda m, x, out, min, max: (m.one / 2 if m.val(x) in (min, max) else
                                                       m.one if min <= m.val(x) <= max else m.zero,))
    v = check(half, case({"x0": 1.0}, ("n0", "clamp", ("x0",), {"min": 1.0, "max": 2.0})))
    assert v.verdict == "convention", v.reason
    assert [e.verdict for e in v.entries if e.name == "grad[x0]"] == ["convention"]


def test_a_kink_excuses_only_the_leaves_behind_it():
    """relu(x0) at 0 is a kink; a wrong tanh′ on x1 in the same case is still a failure."""
    wrong_tanh = Planted(tanh=lambda m, x, out: (1 - out,),
                         relu=lambda m, x, out: (m.one if m.val(x) >= 0 else m.zero,))  # relu′(0) = 1
    v = check(wrong_tanh, case({"x0": 0.0, "x1": 0.5}, ("n0", "relu", ("x0",), {}), ("n1", "tanh", ("x1",), {}),
                               ("n2", "add", ("n0", "n1"), {})))
    verdicts = {e.name: e.verdict for e in v.entries}
    assert verdicts["grad[x0]"] == "convention" and verdicts["grad[x1]"] == "fail", verdicts
    assert v.verdict == "fail"


def test_the_same_difference_off_the_kink_fails():
    v = check(ZERO_AT_TIES, case({"x0": 0.7, "x1": 0.7}, ("n0", "mul", ("x0", "x1"), {}),
                                 ("n1", "maximum", ("n0", "x1"), {})))  # 0.49 vs 0.7: no tie
    assert v.verdict == "pass", v.reason  # the planted change only acts at ties


def test_a_tie_between_equal_functions_is_no_tie():
    """maximum(x, maximum(x, x)) is x too: the two operands tie with the same gradient, so every
    split gives 1 and mygrad's 0 is wrong (docs/findings.md)."""
    v = check(ZERO_AT_TIES, case({"x0": 0.7}, ("n0", "maximum", ("x0", "x0"), {}),
                                 ("n1", "maximum", ("x0", "n0"), {})))
    assert v.verdict == "fail", v.reason


def test_a_tie_in_a_tensor_lane_counts_where_the_split_matters():
    """Broadcast maximum of a (2,) leaf against a scalar leaf, tied in one lane only."""
    c = with_id(GraphCase(leaves={"a": Tensor((2,), (0.5, 2.0)), "b": Tensor.scalar(0.5)},
                          nodes=(Node("n0", "maximum", ("a", "b"), {}),
                                 Node("n1", "sum", ("n0",), {"dim": None, "keepdim": False})),
                          output="n1", cotangent=Tensor.scalar(1.0)))
    v = check(ZERO_AT_TIES, c)
    assert v.verdict == "convention", v.reason


class FirstOfTies(RefImpl):
    """amax sending a tie's whole gradient to the first of the tied (mygrad's ``argmax`` rule)."""

    def run_graph(self, case):
        import importlib
        from unittest import mock

        t = importlib.import_module("refimpl.tensor")  # the module: ``refimpl.tensor`` is also a function
        def first(values, pick):
            best = pick(u.data for u in values)
            return next(v for v in values if v.data == best)

        with mock.patch.object(t, "extreme_of", first):
            return super().run_graph(case)


def amax_case(values: tuple[float, ...], dim: int) -> GraphCase:
    return with_id(GraphCase(leaves={"x": Tensor((2, 2), values)},
                             nodes=(Node("n0", "amax", ("x",), {"dim": dim, "keepdim": False}),),
                             output="n0", cotangent=Tensor((2,), (1.0, -0.5))))


def test_a_tie_in_any_slice_of_an_amax_is_a_convention():
    """amax over dim 1 of [[3, 1], [2, 2]]: the tie is in the second row, below the overall max 3.
    Sending it all to the first is a convention (it was judged ``fail``: only ties at the overall
    maximum counted, so 80 mygrad cases in 20,000 were false alarms)."""
    v = check(FirstOfTies(), amax_case((3.0, 1.0, 2.0, 2.0), dim=1))
    assert v.verdict == "convention", v.reason


def test_the_first_of_ties_rule_off_a_tie_passes_and_a_wrong_slice_fails():
    assert check(FirstOfTies(), amax_case((3.0, 1.0, 2.0, 2.5), dim=1)).verdict == "pass"
    # the same tie, reduced over the other dim, is no tie at all: [3, 2] and [1, 2] have one maximum each
    assert check(FirstOfTies(), amax_case((3.0, 1.0, 2.0, 2.0), dim=0)).verdict == "pass"


# --- a convention is a valid choice (issue 14, item 8) -------------------------------------------------

class Answering(RefImpl):
    """refimpl's result with some entries replaced by given numbers (grad[x0] → 0.5, hvp[x0] → …)."""

    def __init__(self, **answers):
        self.answers = {k.replace("__", ""): v for k, v in answers.items()}

    def run_graph(self, case):
        r = super().run_graph(case)
        for name, v in self.answers.items():
            quantity, leaf = name.split("_", 1)
            table = r.grads if quantity == "grad" else r.hvp
            table[leaf] = Tensor(table[leaf].shape, (float(v),) * len(table[leaf].values))
        return r


def verdict_of(impl, c, entry="grad[x0]"):
    v = check(impl, c)
    return v, {e.name: e.verdict for e in v.entries}.get(entry)


TIE = dataclasses.replace(case({"x0": -3.84, "x1": -3.84}, ("n0", "maximum", ("x0", "x1"), {})),
                          cotangent=Tensor.scalar(0.5))


@pytest.mark.parametrize("answer, expected", [
    (0.5, "convention"), (0.0, "convention"), (0.3, "convention"), (0.25, "pass"),
    (0.6, "fail"), (-0.1, "fail"), (1e6, "fail"),
    (math.nan, "nonfinite-mismatch"), (math.inf, "nonfinite-mismatch"),
])
def test_a_tie_may_split_the_gradient_only_between_0_and_g(answer, expected):
    """maximum(−3.84, −3.84) with cotangent 0.5: x0's share is valid anywhere in [0, 0.5]. 1e6, NaN or
    inf there was ``convention`` every time, whatever caused it."""
    v, got = verdict_of(Answering(grad_x0=answer), TIE)
    assert got == expected, v.reason
    assert v.conforms == (expected in ("pass", "convention"))


RELU_AT_0 = dataclasses.replace(case({"x0": 0.0}, ("n0", "relu", ("x0",), {})), cotangent=Tensor.scalar(2.0))


@pytest.mark.parametrize("answer, expected", [(0.3 * 2.0, "convention"), (2.0, "convention"), (0.0, "pass"),
                                              (1e6 * 2.0, "fail"), (-0.5, "fail")])
def test_relu_at_0_may_pass_any_share_of_the_gradient_and_no_more(answer, expected):
    v, got = verdict_of(Answering(grad_x0=answer), RELU_AT_0)
    assert got == expected, v.reason


def test_a_node_tied_with_itself_passes_the_whole_gradient_not_twice_it():
    """maximum(x, x) is x: any split of the tie gives g, so 2g is wrong (as 0 is, above)."""
    v, got = verdict_of(Answering(grad_x0=3.0), dataclasses.replace(
        case({"x0": 0.7}, ("n0", "maximum", ("x0", "x0"), {})), cotangent=Tensor.scalar(1.5)))
    assert got == "fail", v.reason


def test_a_tie_between_two_functions_of_one_leaf_keeps_the_split_summing_to_g():
    """maximum(x, x·y) at y = 1: x's gradient is s·g + (1 − s)·g·y = g whatever the split s; a share
    of [0, g] from each side (2g) is no valid choice. y's share, (1 − s)·g·x, is free in [0, g·x]."""
    c = case({"x0": 0.7, "x1": 1.0}, ("n0", "mul", ("x0", "x1"), {}), ("n1", "maximum", ("x0", "n0"), {}))
    assert verdict_of(Answering(grad_x0=2.0), c)[1] == "fail"
    assert verdict_of(Answering(grad_x1=0.0), c, "grad[x1]")[1] == "convention"
    assert verdict_of(Answering(grad_x1=0.7), c, "grad[x1]")[1] == "convention"
    assert verdict_of(Answering(grad_x1=0.8), c, "grad[x1]")[1] == "fail"


def test_an_amax_tie_may_not_give_one_element_more_than_the_whole_gradient():
    v = check(Answering(grad_x=2.0), amax_case((3.0, 1.0, 2.0, 2.0), dim=1))  # row 2's g is −0.5
    assert {e.name: e.verdict for e in v.entries}["grad[x][2]"] == "fail", v.reason


def test_clamp_at_a_bound_may_pass_the_gradient_or_not_and_nothing_else():
    c = case({"x0": 1.0}, ("n0", "clamp", ("x0",), {"min": 1.0, "max": 2.0}))
    assert verdict_of(Answering(grad_x0=0.0), c)[1] == "convention"
    assert verdict_of(Answering(grad_x0=0.5), c)[1] == "convention"
    assert verdict_of(Answering(grad_x0=-1.0), c)[1] == "fail"


def test_a_hessian_vector_product_at_a_tie_follows_the_split():
    """maximum(x², y) at x = y = 1, v = (1, 1): with a's share s the Hessian is diag(2s, 0), so
    hvp[x] = 2s ∈ [0, 2]: torch's ½ gives 1; 0 is another choice, 3 none."""
    c = dataclasses.replace(case({"x0": 1.0, "x1": 1.0}, ("n0", "square", ("x0",), {}),
                                 ("n1", "maximum", ("n0", "x1"), {})),
                            second_order={"x0": Tensor.scalar(1.0), "x1": Tensor.scalar(1.0)})
    assert verdict_of(Answering(hvp_x0=0.0), c, "hvp[x0]")[1] == "convention"
    assert verdict_of(Answering(hvp_x0=3.0), c, "hvp[x0]")[1] == "fail"


def test_an_entry_behind_more_kinks_than_are_enumerated_is_unchecked_not_a_convention():
    """x through seven relus at 0: 2⁷ combinations of one-sided derivatives, more than kinks.MAX_RUNS."""
    nodes = [("n0", "relu", ("x0",), {})] + [(f"n{i}", "relu", (f"n{i - 1}",), {}) for i in range(1, 7)]
    v, got = verdict_of(Answering(grad_x0=0.5), case({"x0": 0.0}, *nodes))
    assert got == "unchecked" and v.verdict == "unchecked" and v.conforms, v.reason


def test_an_infinite_tolerance_checks_nothing_so_it_is_no_pass():
    """pow(x², √x²) at x = −2.02e-99: the error bound of the gradient overflows to inf, so any finite
    answer is within tolerance — seven gross mutants passed there with ratio 0."""
    c = case({"x0": -2.02e-99}, ("n0", "square", ("x0",), {}), ("n1", "sqrt", ("n0",), {}),
             ("n2", "pow", ("n0", "n1"), {}))
    for impl in (RefImpl(), Answering(grad_x0=12345.0)):
        v, got = verdict_of(impl, c)
        assert got == "unchecked" and v.verdict == "unchecked" and v.conforms, v.reason
    # NaN is wrong whatever the bound; the case is outside the working range (x² = 4e-198), so the
    # charged verdict is reported as robustness, and it keeps saying what it was
    v, got = verdict_of(Answering(grad_x0=math.nan), c)
    assert got == "robustness" and v.verdict == "robustness" and "nonfinite-mismatch" in v.reason, v.reason


def test_a_window_reaching_zero_from_the_value_is_unchecked():
    from conformance.verdict.graph import unchecked

    assert unchecked(math.inf, 1.0) and unchecked(math.inf, 0.0)
    assert unchecked(2.0, 1.5) and not unchecked(1.0, 1.5)
    assert not unchecked(1e-300, 0.0)  # a zero is checked to its tolerance
    assert not unchecked(math.inf, math.inf)  # inf only matches inf


ONE_SIDED = [  # op, attributes, point, left, right (docs/conventions.md, "Valid choices")
    ("relu", {}, (0.0,), (0.0,), (1.0,)),
    ("abs", {}, (0.0,), (-1.0,), (1.0,)),
    ("leaky_relu", {"negative_slope": 0.2}, (0.0,), (0.2,), (1.0,)),
    ("elu", {"alpha": 2.0}, (0.0,), (2.0,), (1.0,)),
    ("softplus", {"beta": 2.0, "threshold": 3.0}, (1.5,), (0.9525741268224334,), (1.0,)),
    ("clamp", {"min": -1.0}, (-1.0,), (0.0,), (1.0,)),
    ("clamp", {"max": 1.0}, (1.0,), (1.0,), (0.0,)),
    ("clamp", {"min": 0.5, "max": 0.5}, (0.5,), (0.0,), (0.0,)),
    ("maximum", {}, (0.75, 0.75), (0.0, 1.0), (1.0, 0.0)),
    ("minimum", {}, (0.75, 0.75), (1.0, 0.0), (0.0, 1.0)),
]


@pytest.mark.parametrize("op, attrs, point, left, right", ONE_SIDED, ids=[f"{r[0]}{r[1]}" for r in ONE_SIDED])
def test_the_one_sided_derivatives_are_the_ops_own_branches_next_to_the_point(op, attrs, point, left, right):
    """refimpl.ops.one_sided evaluates the op's derivative as if its first input were just left or
    right of the point: the same as the derivative at the neighbouring floats, and nothing declared."""
    from refimpl import FLOAT64
    from refimpl.ops import one_sided

    spec = OPS[op]
    attrs = spec.attributes(attrs)
    out = spec.forward(FLOAT64, *point, **attrs)
    for side, expected in ((-1, left), (+1, right)):
        got = one_sided(spec, side)(FLOAT64, *point, out, **attrs)
        assert got == pytest.approx(expected, rel=1e-12)
        near = (math.nextafter(point[0], side * math.inf), *point[1:])
        assert got == pytest.approx(spec.derivative(FLOAT64, *near, spec.forward(FLOAT64, *near, **attrs), **attrs),
                                    rel=1e-12)


def _abs_at_0_into_an_hvp() -> GraphCase:
    """g(|x0|) with g′(0) ≠ 0 and g(0) = 0 — log1p(cos n) + cos(n)^(erf(n)/x1) at n = |0| — asked
    for its HVP: the gradient is g(0)·abs′(0) = 0 whatever the choice c = abs′(0), the HVP g′(0)·c²·v
    is 0 at torch's c = 0 and g′(0)·v at c = ±1 (drawn at ci, seed 0, by the joined graphs)."""
    leaves = {"x0": Tensor.scalar(0.0), "x1": Tensor.scalar(-3.84)}
    nodes = (Node("n0", "abs", ("x0",)), Node("n1", "erf", ("n0",)), Node("n2", "div", ("n1", "x1")),
             Node("n3", "cos", ("n0",)), Node("n4", "log1p", ("n3",)), Node("n5", "pow", ("n3", "n2")),
             Node("n6", "add", ("n4", "n5")))
    so = {"x0": Tensor.scalar(1.0496512148220685), "x1": Tensor.scalar(0.0)}
    return with_id(GraphCase(leaves, nodes, "n6", Tensor.scalar(0.5), second_order=so))


def test_a_valid_kink_choice_met_twice_by_an_hvp_is_a_convention_and_a_wrong_hvp_still_fails():
    """The HVP meets abs′(0) twice (c²): the one-sided ends ±1 give the same value, torch's 0 another;
    every c in [−1, 1] is valid, so torch's choice is enumerated too (verdict/kinks.py, _options)."""
    case = _abs_at_0_into_an_hvp()
    assert check(RefImpl(), case).verdict == "pass"
    v = check(MutantImpl(MUTANTS["abs-grad-1-at-0"]), case)
    assert v.verdict == "convention", v.reason

    class WrongHVP(RefImpl):
        def run_graph(self, c):
            r = super().run_graph(c)
            r.hvp = {k: Tensor(t.shape, tuple(3 * x - 1.0 for x in t.values)) for k, t in r.hvp.items()}
            return r

    assert check(WrongHVP(), case).verdict == "fail"


# --- a root of an exact 0: torch masks the slope to 0, NaN is as valid (TensorOp.singular) ------------

class AtRoots(RefImpl):
    """refimpl's result with grad[x0] at the given flat indices replaced by one number."""

    def __init__(self, at: list[int], answer: float):
        self.at, self.answer = at, answer

    def run_graph(self, case):
        r = super().run_graph(case)
        g = list(r.grads["x0"].values)
        for i in self.at:
            g[i] = self.answer
        r.grads["x0"] = Tensor(r.grads["x0"].shape, tuple(g))
        return r


#: per op, its fixed case whose slice of flat indices ``at`` takes the root of 0 (conformance/case/geometry.py)
ROOTS_OF_ZERO = {"std": [2, 3, 8, 9], "vector_norm": [0, 1, 4, 5]}


@pytest.mark.parametrize("op", sorted(ROOTS_OF_ZERO))
@pytest.mark.parametrize("answer, expected", [(math.nan, "convention"), (0.0, "pass"), (0.5, "fail"),
                                              (math.inf, "nonfinite-mismatch")])
def test_at_a_root_of_zero_nan_is_a_convention_and_nothing_else(op, answer, expected):
    """std of a constant slice and the norm of a slice of zeros: torch 2.13 (and refimpl) give 0; NaN —
    the unmasked formula, pytorch#2421 before its fix, jax#21723 — is the other valid answer."""
    at = ROOTS_OF_ZERO[op]
    v = check(AtRoots(at, answer), layer_fixed_cases(op)[0])
    verdicts = {e.name: e.verdict for e in v.entries}
    assert {verdicts[f"grad[x0][{i}]"] for i in at} == {expected}, v.reason


def test_nan_off_a_root_of_zero_fails():
    v = check(AtRoots([0], math.nan), layer_fixed_cases("std")[0])  # x[0, 0, 0]: a slice whose values differ
    assert v.verdict == "nonfinite-mismatch", v.reason


#: from the bfloat16 calibration: x0·x1 = 1.25e-5, and tanh of it is the same bfloat16 number — a tie of
#: ``minimum`` that rounding makes (in binary64 tanh(a) < a); refimpl and torch agree bit for bit and are
#: 3 tolerances off the truth, which follows the exact function's one branch
ROUNDED_TIE = '{"format":"backprop-conformance/graph-case","version":1,"id":"g-7585df60aac8","dtype":"bfloat16","leaves":{"x0":{"shape":[],"values":[-3.84375]},"x1":{"shape":[],"values":[-3.248453140258789e-06]}},"nodes":[{"name":"n0","op":"mul","inputs":["x0","x1"],"attrs":{}},{"name":"n1","op":"tanh","inputs":["n0"],"attrs":{}},{"name":"n2","op":"minimum","inputs":["n1","n0"],"attrs":{}},{"name":"n3","op":"pow_scalar","inputs":["n1"],"attrs":{"exponent":0.0}},{"name":"n4","op":"sub","inputs":["n3","n2"],"attrs":{}},{"name":"n5","op":"minimum","inputs":["n4","n3"],"attrs":{}},{"name":"n6","op":"tanh","inputs":["n5"],"attrs":{}},{"name":"n7","op":"pow","inputs":["n6","n4"],"attrs":{}},{"name":"n8","op":"sqrt","inputs":["n6"],"attrs":{}},{"name":"n9","op":"maximum","inputs":["n2","n7"],"attrs":{}},{"name":"n10","op":"add","inputs":["n8","n9"],"attrs":{}}],"output":"n10","cotangent":{"shape":[],"values":[-2.0]},"second_order":null}'  # noqa: E501


def test_a_kink_made_by_rounding_has_the_formats_valid_choices():
    """The tie exists in the case's format, not in binary64: its valid choices come from the format's
    forward, and torch's choice there (which refimpl shares) is not charged."""
    case = case_from_json(json.loads(ROUNDED_TIE))
    wide = evaluate(case, leaf_tensors(case, FLOAT64, requires_grad=False))
    narrow = evaluate(case, leaf_tensors(case, refimpl_system(case), requires_grad=False))
    assert wide["n1"].item() != wide["n0"].item() and narrow["n1"].item() == narrow["n0"].item()
    v = check(RefImpl(), case)
    assert v.verdict == "unchecked" and v.conforms, v.reason
    (e,) = [e for e in v.entries if e.name == "grad[x0]"]
    assert e.valid is not None and e.valid.lo <= e.impl <= e.valid.hi
