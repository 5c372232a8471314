"""Every case runs twice: results judged differently are an ``error`` named nondeterministic; results
that differ only within the tolerance are not a defect."""

import math
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

from conformance.case.graph import GraphCase, GraphResult, Node, Tensor
from conformance.driver import judge_case
from conformance.impls import RefImpl
from conformance.impls.adapters.micrograd import load_micrograd

SET_ORDER = Path(__file__).parent / "fixtures" / "set_order_engine.py"


def chain() -> GraphCase:
    """((x·y) + z)·y: n0 and n1 are both inner nodes, so their order in backward matters."""
    leaves = {"x": Tensor.scalar(0.5), "y": Tensor.scalar(2.0), "z": Tensor.scalar(3.0)}
    nodes = (Node("n0", "mul", ("x", "y")), Node("n1", "add", ("n0", "z")), Node("n2", "mul", ("n1", "y")))
    return GraphCase(leaves, nodes, "n2", Tensor.scalar(1.5), id="g-set-order")


def test_a_backward_in_set_order_is_reported_nondeterministic():
    impl = load_micrograd(str(SET_ORDER))
    random.seed(0)  # the engine shuffles with the random module (standing for set order)
    verdicts = [judge_case(impl, chain()) for _ in range(20)]
    flagged = [v for v in verdicts if v.verdict == "error"]
    assert flagged, Counter(v.verdict for v in verdicts)
    assert all(v.reason.startswith("nondeterministic: two runs of the same case were judged ") for v in flagged)
    assert all(("fail" in v.reason and "pass" in v.reason) for v in flagged)


class Jitter(RefImpl):
    """refimpl, its gradients moved by one ulp in a direction that changes from call to call."""

    name = "jitter"

    def __init__(self) -> None:
        self.calls = 0

    def run_graph(self, case: GraphCase) -> GraphResult:
        r = super().run_graph(case)
        self.calls += 1
        step = math.inf if self.calls % 2 else -math.inf
        grads = {k: Tensor(t.shape, tuple(math.nextafter(v, step) for v in t.values)) for k, t in r.grads.items()}
        return replace(r, grads=grads)


def test_results_that_differ_within_the_tolerance_are_no_defect():
    impl = Jitter()
    v = judge_case(impl, chain())
    assert impl.calls == 2  # it did run twice, and the two results differ
    assert v.verdict == "pass", v.reason
