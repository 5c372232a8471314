"""Where a kink excuses a difference from torch, and where it must not.

Found by running real libraries (docs/findings.md): a kink once excused every entry of its case, a
node tied with itself counted as a tie, and an implementation returning the midpoint of the
one-sided slopes at a kink was judged right (the finite difference there *is* that midpoint) with
torch blamed. Each rule is pinned here with an implementation planted to hit it.
"""

from __future__ import annotations

import dataclasses

from conformance.case.graph import GraphCase, Node, Tensor
from conformance.case.strategies import with_id
from conformance.driver import judge_case as check
from conformance.impls import RefImpl
from refimpl import OPS


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
