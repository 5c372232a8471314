"""The suite earns its keep: planted bugs are caught, and the failing case shrinks to a few nodes.

Caught by a hypothesis search (``find``) over the strategy; shrunk by the driver's Shrinker, as
verify and pytest conformance shrink."""

import dataclasses
from unittest import mock

import pytest
import torch
from hypothesis import find, settings
from hypothesis.errors import NoSuchExample

from conformance.case.graph import GraphCase, GraphResult, Tensor
from conformance.case.strategies import graph_cases, tensor_graph_cases
from conformance.driver import Shrinker, judge_case
from conformance.impls import RefImpl, TorchImpl
from conformance.oracle import names as oracle
from conformance.oracle.run import evaluate, leaf_tensors, run_torch
from conformance.verdict.graph import judge
from refimpl import FLOAT64, OPS, Value, topological_order

SEARCH = settings(max_examples=400, database=None, derandomize=True, deadline=None)


def overwrite_backprop(root: Value, cotangent: float) -> dict[Value, float]:
    """The classic fan-out bug: ``grad = …`` where the chain rule needs ``grad += …``."""
    grads = {root: cotangent}
    for node in reversed(topological_order([root])):
        g = grads.get(node)
        if g is None or not node.parents:
            continue
        partials = node.op.derivative(node.ns, *(p.data for p in node.parents), node.data, **node.attrs)
        for p, d in zip(node.parents, partials):
            if p.requires_grad:
                grads[p] = g * d  # BUG: overwrites what another path contributed
    return grads


class OverwritingImpl(RefImpl):
    name = "planted-overwrite"

    def run_graph(self, case: GraphCase) -> GraphResult:
        leaves = leaf_tensors(case, FLOAT64)
        (out,) = evaluate(case, leaves)[case.output].elements  # scalar cases
        grads = overwrite_backprop(out, case.cotangent.values[0])
        return GraphResult(Tensor.scalar(out.data),
                           {k: Tensor.scalar(float(grads.get(t.elements[0], 0.0))) for k, t in leaves.items()})


class _TransposedMatmul(torch.autograd.Function):
    """2-D matmul whose gradient for the left operand comes out transposed (reshaped to fit)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return (b @ g.T).reshape(a.shape), a.T @ g  # BUG: should be g @ b.T


class TransposedMatmulImpl(TorchImpl):
    name = "planted-transposed-matmul"

    def run_graph(self, case: GraphCase) -> GraphResult:
        real = oracle.resolve

        def resolve(name):
            if name != "torch.matmul":
                return real(name)
            return lambda a, b: _TransposedMatmul.apply(a, b) if a.dim() == b.dim() == 2 else torch.matmul(a, b)

        with mock.patch.object(oracle, "resolve", resolve):
            return run_torch(case)


class IgnoresCotangent(RefImpl):
    name = "planted-ignores-cotangent"

    def run_graph(self, case: GraphCase) -> GraphResult:
        return super().run_graph(dataclasses.replace(case, cotangent=Tensor.scalar(1.0)))


def fails(impl):
    return lambda case: not judge(case, impl.run_graph(case), run_torch(case)).conforms


def minimal_failure(impl, strategy=graph_cases, **kwargs):
    """The first failing case a search finds, shrunk as verify shrinks it (conformance.driver.Shrinker)."""
    found = find(strategy(**kwargs), fails(impl), settings=SEARCH)
    shrunk = Shrinker()(impl, judge_case(impl, found))
    assert shrunk.complete, shrunk.note
    case = shrunk.verdict.case
    print(f"{impl.name}: shrunk to {len(case.nodes)} node(s), {len(case.leaves)} leaf/leaves: "
          f"{[(n.op, n.inputs) for n in case.nodes]}")
    return case


def test_wrong_tanh_derivative_is_caught_and_shrinks(monkeypatch):
    wrong = lambda m, x, out: (1 - out,)  # tanh' = 1 − t instead of 1 − t²
    monkeypatch.setitem(OPS, "tanh", dataclasses.replace(OPS["tanh"], derivative=wrong))
    case = minimal_failure(RefImpl(), max_nodes=8)
    assert [n.op for n in case.nodes] == ["tanh"]


def test_overwritten_fan_out_is_caught_and_shrinks():
    case = minimal_failure(OverwritingImpl(), max_nodes=8)
    assert len(case.nodes) == 1
    used = [i for n in case.nodes for i in n.inputs]
    assert len(used) > len(set(used)), "the minimal case must reuse a value (that is the bug)"


def test_transposed_matmul_gradient_is_caught_and_shrinks():
    case = minimal_failure(TransposedMatmulImpl(), tensor_graph_cases, ops=["matmul", "tanh", "add", "sum"],
                           max_nodes=6)
    assert [n.op for n in case.nodes] == ["matmul"]
    print("shapes:", {k: t.shape for k, t in case.leaves.items()})


def test_ignored_cotangent_is_caught():
    case = minimal_failure(IgnoresCotangent(), max_nodes=4)
    assert len(case.nodes) == 1


@pytest.mark.parametrize("op", ["sigmoid", "exp", "div"])
def test_one_part_in_a_billion_is_caught(op, monkeypatch):
    spec = OPS[op]
    off = lambda *a, **k: tuple(d * (1 + 1e-9) for d in spec.derivative(*a, **k))
    monkeypatch.setitem(OPS, op, dataclasses.replace(spec, derivative=off, vjp=None))  # vjp: log, div
    case = minimal_failure(RefImpl(), ops=[op], max_nodes=2)
    assert [n.op for n in case.nodes] == [op]


def test_correct_refimpl_is_not_flagged():
    with pytest.raises(NoSuchExample):
        find(graph_cases(max_nodes=8), fails(RefImpl()), settings=settings(SEARCH, max_examples=150))
