"""Minimal means minimal: a failing case shrinks to a part of itself that fails the same way.

Through the driver, as ``verify`` and ``pytest conformance`` use it (:class:`conformance.driver.Shrinker`),
on engines not derived from refimpl (the foreign zoo) and at every seed claimed: a single-op bug
ends on one node holding that op; the minimal case keeps the original's failure (an exception stays
that exception, it does not wander to another bug of the same engine); a budget that stops the
search says so. Network bugs: tests/test_networks_meta.py (one layer, batch ≤ 2, one step)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, find, given, settings

from conformance import kinds
from conformance.case.graph import GraphCase, Node, Tensor
from conformance.case.netstrategies import network_cases
from conformance.case.network import Batch, InvalidCase, check_case
from conformance.case.reduce import graph_candidates, network_candidates
from conformance.case.strategies import graph_cases, tensor_graph_cases, with_id
from conformance.driver import Shrinker, failure_text, judge_case, run_suite
from conformance.impls import RefImpl
from conformance.impls.foreign import FOREIGN
from conformance.oracle.netrun import run_refimpl_network
from conformance.oracle.run import node_values, run_refimpl
from conformance.verdict.signature import same_failure, signature

SEEDS = range(3)
#: engine → the op its bug is in (one planted bug each: the minimal case is that op alone)
SINGLE_OP = {"tanh_input": "tanh", "div_denominator": "div", "log_squared": "log", "sigmoid_twice": "sigmoid",
             "div_no_square": "div"}


def _scalar_graphs(impl):
    planned = kinds.suites(impl.capabilities, 40)
    i = next(i for i, s in enumerate(planned) if s.name == "scalar graphs")
    return planned[i], i


@pytest.mark.parametrize("engine", sorted(SINGLE_OP))
def test_a_single_op_bug_shrinks_to_that_op_alone_at_every_seed(engine):
    impl = FOREIGN[engine].load()
    suite, i = _scalar_graphs(impl)
    for seed in SEEDS:
        r = run_suite(impl, suite, seed + i, first_failure_only=True)
        assert r.failure is not None, f"{engine} not caught at seed {seed}"
        case = r.failure.case
        assert [n.op for n in case.nodes] == [SINGLE_OP[engine]], (seed, case.nodes)
        assert r.shrunk is not None and r.shrunk.complete and r.shrunk.note == ""
        assert set(case.ops) <= set(r.first_bad[1].case.ops)  # a part of the case that failed


def test_an_overwritten_fan_out_shrinks_to_one_node_reusing_a_leaf():
    impl = FOREIGN["fanout_overwrite"].load()
    suite, i = _scalar_graphs(impl)
    for seed in SEEDS:
        r = run_suite(impl, suite, seed + i, first_failure_only=True)
        assert r.failure is not None, seed
        (node,) = r.failure.case.nodes
        assert len(node.inputs) == 2 and node.inputs[0] == node.inputs[1], node


class TanhWrongDivRaises(RefImpl):
    """Two bugs: tanh′ ignores its upstream gradient (a wrong value), and any case with a div raises."""

    name = "planted-two-bugs"

    def run_graph(self, case):
        if any(n.op == "div" for n in case.nodes):
            raise ZeroDivisionError("planted")
        r = run_refimpl(case)
        if any(n.op == "tanh" for n in case.nodes):
            r.grads = {k: Tensor(g.shape, tuple(2 * v + 1 for v in g.values)) for k, g in r.grads.items()}
        return r


def _case(nodes, leaves):
    return with_id(GraphCase({k: Tensor.scalar(v) for k, v in leaves.items()}, tuple(nodes), nodes[-1].name,
                             Tensor.scalar(1.0)))


def test_shrinking_keeps_to_the_failure_it_started_from():
    # tanh comes first in the case: a shrinker that kept any failing part would stop at tanh alone
    case = _case([Node("n0", "tanh", ("x0",)), Node("n1", "div", ("x1", "x2")), Node("n2", "mul", ("n0", "n1"))],
                 {"x0": 0.3, "x1": 1.5, "x2": 2.5})
    impl = TanhWrongDivRaises()
    first = judge_case(impl, case)
    assert first.verdict == "error" and "ZeroDivisionError" in first.reason
    tanh_alone = next(c for c in kinds.of(case).smaller(case) if c.ops == ("tanh",))
    assert judge_case(impl, tanh_alone).verdict == "fail"  # the other bug is there to be found
    assert not same_failure(signature(first), judge_case(impl, tanh_alone))
    shrunk = Shrinker()(impl, first)
    assert [n.op for n in shrunk.verdict.case.nodes] == ["div"]
    assert shrunk.verdict.verdict == "error" and "ZeroDivisionError" in shrunk.verdict.reason


def test_a_budget_that_stops_shrinking_says_so():
    impl = FOREIGN["tanh_input"].load()
    suite, i = _scalar_graphs(impl)
    r = run_suite(impl, suite, i, first_failure_only=True, shrinker=Shrinker(seconds=0.0))
    assert r.shrunk is not None and not r.shrunk.complete
    assert r.failure is r.first_bad[1]  # nothing tried: the case as found
    assert "shrinking stopped at its budget" in r.shrunk.note and "a smaller case may exist" in r.shrunk.note
    assert r.shrunk.note in failure_text(suite.name, r.failure, r.shrunk.note)


def test_one_budget_is_shared_by_the_suites_of_a_run():
    impl = FOREIGN["tanh_input"].load()
    suite, i = _scalar_graphs(impl)
    shrinker = Shrinker(seconds=30.0)
    run_suite(impl, suite, i, first_failure_only=True, shrinker=shrinker)
    assert 0 < 30.0 - shrinker.left < 30.0


# --- every candidate is a valid, smaller case ----------------------------------------------------------

QUICK = settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@QUICK
@given(graph_cases(max_nodes=8) | tensor_graph_cases(max_nodes=4) | graph_cases(max_nodes=4, second_order=True))
def test_graph_candidates_are_valid_parts_of_the_case(case):
    for c in graph_candidates(case, node_values):
        assert c != case and set(c.ops) <= set(case.ops) and len(c.nodes) <= len(case.nodes)
        assert c.output in {n.name for n in c.nodes}
        assert set(c.leaves) >= {i for n in c.nodes for i in n.inputs} - {n.name for n in c.nodes}
        assert c.cotangent.shape == tuple(node_values(c)[c.output].shape)
        assert all(math.isfinite(v) for t in c.leaves.values() for v in t.values)
        run_refimpl(c)  # refimpl runs it: shapes and domains hold


@QUICK
@given(network_cases(max_depth=3, max_width=5, max_batch=4, max_steps=3))
def test_network_candidates_are_valid_and_no_bigger(case):
    seen = 0
    for c in network_candidates(case):
        seen += 1
        check_case(c)
        assert c.id != case.id
        assert c.steps <= case.steps and len(c.layers) <= len(case.layers) and c.n_params <= case.n_params
        assert c.batches[0].x.shape[0] <= case.batches[0].x.shape[0]
    assert seen or (case.n_params == 1 and case.steps == 1)


def test_a_batch_left_with_only_ignored_targets_is_not_a_candidate():
    """Keeping the first sample of a batch whose first target is ``ignore_index`` would leave a mean
    over no target (0/0: refimpl raised, the shrinker crashed); check_case rejects it, so the
    shrinker passes it by."""
    case = find(network_cases(max_depth=2, max_width=3, max_batch=3, max_steps=1),
                lambda c: c.loss == "cross_entropy" and c.reduction == "mean" and c.batches[0].x.shape[0] >= 2,
                settings=settings(max_examples=2000, database=None, suppress_health_check=list(HealthCheck)))
    x = case.batches[0].x
    ys = (-100.0, *(0.0,) * (x.shape[0] - 1))
    case = check_case(replace(case, batches=(Batch(x, Tensor((x.shape[0],), ys)),)))
    with pytest.raises(InvalidCase, match="every target is ignore_index"):
        one = Batch(Tensor((1, x.shape[1]), x.values[:x.shape[1]]), Tensor((1,), (-100.0,)))
        check_case(replace(case, batches=(one,)))
    candidates = list(network_candidates(case))
    assert candidates and all(any(y != -100 for y in b.y.values) for c in candidates for b in c.batches)
    for c in candidates:
        run_refimpl_network(c)  # each runs
