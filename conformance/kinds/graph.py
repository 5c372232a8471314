"""The graph kind: a DAG of elementwise and tensor ops on leaf tensors, its value, its gradient
(a vector-Jacobian product with the case's cotangent) and, when asked, a Hessian-vector product.

Everything the suite needs of a graph case, gathered into one :class:`~conformance.kinds.kind.Kind`:
the case and its JSON (:mod:`conformance.case.graph`), torch's run (:mod:`conformance.oracle.run`), the
verdict (:mod:`conformance.verdict.graph`), the torch script (:mod:`conformance.oracle.repro`) and the suites
(:mod:`conformance.case.strategies`), declared here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from conformance.case import graph as cases
from conformance.case import masks, mechanics, precision
from conformance.case.dtypes import HALF, Reductions, claims_of
from conformance.case.geometry import KNOBS
from conformance.case.reduce import graph_candidates
from conformance.case.special import special_cases
from conformance.case.strategies import (
    DEEP_CHAIN_OPS,
    deep_chains,
    graph_cases,
    layer_fixed_cases,
    layer_op_cases,
    tensor_graph_cases,
    with_id,
)
from conformance.case.tensor_ops import LAYER_FAMILIES, TENSOR_OPS, layer_ops
from conformance.impls.explain import name_cause
from conformance.kinds.kind import Kind, Suite, tensor_bits
from conformance.oracle import repro
from conformance.oracle.run import node_values, run_torch
from conformance.verdict import graph as graph_verdict
from conformance.verdict.graph import CaseVerdict
from conformance.verdict.robustness import judge_robustness
from refimpl import OPS


def describe(case: cases.GraphCase) -> dict[str, Any]:
    depth: dict[str, int] = {}
    for node in case.nodes:
        depth[node.name] = 1 + max((depth.get(i, 0) for i in node.inputs), default=0)
    return dict(ops=" ".join(case.ops), nodes=len(case.nodes), depth=max(depth.values(), default=0),
                parameters=0, steps=0, dtype=case.dtype)


def family(case: cases.GraphCase) -> str:
    if case.second_order is not None:
        return "second order"
    if case.dtype != "float64":
        return case.dtype
    ops = case.ops
    if any(op not in OPS for op in ops):
        return "tensor"
    return OPS[ops[0]].family if len(ops) == 1 else "graphs"


def result_key(r: cases.GraphResult) -> Hashable:
    """A result as a hashable value, floats by their bits (NaN equals NaN, -0.0 is not 0.0)."""
    hvp = None if r.hvp is None else tuple((k, tensor_bits(v)) for k, v in r.hvp.items())
    return (r.error, tensor_bits(r.value), tuple((k, tensor_bits(v)) for k, v in r.grads.items()), hvp)


def suites(caps: Any, examples: int) -> list[Suite]:
    """Every op alone (its special points, then drawn cases), random scalar graphs, the mechanics
    shapes (:mod:`conformance.case.mechanics`), deep chains, tensor graphs, float32, second order —
    each only where the capabilities allow it. The last two (float32 tensor graphs, second order
    through tensors) come after every other suite of every kind, so that adding them left the seeds
    of the suites before them, and so their cases, as they were."""
    per_op = max(3, examples // 4)
    special = "float64" in caps.dtypes  # every op at its special points, first, at every seed
    out = [Suite(f"op {name}", spec.family, graph_cases(ops=[name], max_nodes=2), per_op,
                 special_cases(name) if special else ())
           for name, spec in OPS.items() if name in caps.ops]
    out += [Suite(f"op {name}", "tensor", tensor_graph_cases(ops=[name], max_nodes=2), per_op)
            for name, op in TENSOR_OPS.items() if name in caps.ops and not op.layer]
    if any(n in OPS for n in caps.ops):
        out.append(Suite("scalar graphs", "graphs", graph_cases(ops=caps.ops, max_nodes=12), examples))
        if set(mechanics.OPS) <= caps.ops and "float64" in caps.dtypes:
            out += [Suite(name, "graphs", strategy(), n) for name, (strategy, n) in mechanics.SUITES.items()]
        if set(DEEP_CHAIN_OPS) <= caps.ops:
            out.append(Suite("deep chains", "graphs", deep_chains(), 2))
    if _tensor_graphs(caps):
        out.append(Suite("tensor graphs", "tensor", tensor_graph_cases(ops=caps.ops), examples,
                         _order_cases("float64", caps)))
    if "float32" in caps.dtypes:
        out.append(Suite("float32 graphs", "float32", graph_cases(ops=caps.ops, dtype="float32", max_nodes=12),
                         examples))
    if caps.second_order:
        out.append(Suite("second order", "second order",
                         graph_cases(ops=caps.ops, max_nodes=6, second_order=True), examples))
    return out


def _order_cases(dtype: str, caps: Any) -> tuple[cases.GraphCase, ...]:
    """The cases that tell a claimed summation order from a running sum in ``dtype``
    (:func:`conformance.case.precision.order_cases`), first in the dtype's tensor-graph suite — only
    where the implementation claims an order for it (the suite is as it was for every other), and
    only those whose op it has."""
    claim = claims_of(caps).get(dtype)
    if claim is None or claim.summation is None:
        return ()
    return tuple(c for c in precision.order_cases(dtype) if set(c.ops) <= caps.ops)


def _tensor_graphs(caps: Any) -> bool:
    """Whether the capabilities hold a tensor op that random tensor graphs draw (not a layer op)."""
    return any(n in TENSOR_OPS and not TENSOR_OPS[n].layer for n in caps.ops)


def late_suites(caps: Any, examples: int) -> list[Suite]:
    """Graph suites added after the network suites existed: they run last (see :func:`suites`)."""
    out = []
    tensors = _tensor_graphs(caps)
    if tensors and "float32" in caps.dtypes:
        out.append(Suite("float32 tensor graphs", "float32", tensor_graph_cases(ops=caps.ops, dtype="float32"),
                         examples, _order_cases("float32", caps)))
    if tensors and caps.second_order:
        out.append(Suite("second order tensors", "second order",
                         tensor_graph_cases(ops=caps.ops, max_nodes=4, second_order=True), examples))
    per_op = max(3, examples // 4)
    layers = layer_ops(caps.ops)
    out += [Suite(f"op {name}", TENSOR_OPS[name].family, layer_op_cases(name, off=_off(caps, name)), per_op,
                  _fixed(name, caps))
            for name in layers]
    if layers and "float32" in caps.dtypes:
        out.append(_layers_in("float32", layers, examples, caps))
    return out


def half_suites(caps: Any, examples: int) -> list[Suite]:
    """float16 and bfloat16: the three kinds of graph the float32 suites draw, in each (a generation
    of their own: they came after the gradients-only networks)."""
    tensors, layers = _tensor_graphs(caps), layer_ops(caps.ops)
    return [s for dtype in HALF if dtype in caps.dtypes for s in _suites_in(dtype, caps, examples, tensors, layers)]


def _off(caps: Any, op: str) -> frozenset[str]:
    """The knobs of ``op``'s geometry the implementation does not take (``Capabilities.without``)."""
    return caps.without.get(op, frozenset())


def _fixed(op: str, caps: Any, dtype: str = "float64") -> tuple[Any, ...]:
    """A layer op's fixed cases: its own geometry's corners, then those where it meets other ops (a
    −∞ mask before a softmax: :mod:`conformance.case.masks`) — these only for an implementation that
    has the other ops too (a set of layer functions has no softmax) and takes the whole of each (none
    it declares ``without``: a meeting of ops is not cut down to the parts it takes)."""
    return layer_fixed_cases(op, dtype, _off(caps, op)) + tuple(
        c for c in masks.fixed_cases(op, dtype) if set(c.ops) <= caps.ops and not set(c.ops) & set(caps.without))


def _layers_in(dtype: str, layers: list[str], examples: int, caps: Any) -> Suite:
    """Every layer op in ``dtype``, one suite (their fixed cases too)."""
    fixed = tuple(c for name in layers for c in _fixed(name, caps, dtype))
    return Suite(f"{dtype} layers", dtype, st.one_of(*(layer_op_cases(n, dtype, _off(caps, n)) for n in layers)),
                 examples, fixed)


def _suites_in(dtype: str, caps: Any, examples: int, tensors: bool, layers: list[str]) -> list[Suite]:
    """A narrow dtype's suites: scalar graphs, tensor graphs and layer ops in it, as far as the
    capabilities go. (float32's three came one by one, at the places that keep the seeds of the
    suites before them; the half-precision dtypes came together, after every other suite.)"""
    out = [Suite(f"{dtype} graphs", dtype, graph_cases(ops=caps.ops, dtype=dtype, max_nodes=12), examples)
           ] if any(n in OPS for n in caps.ops) else []
    if tensors:  # first, the format's hostile cases (conformance/case/precision.py) whose op it has
        fixed = tuple(c for c in precision.fixed_cases(dtype) if set(c.ops) <= caps.ops)
        out.append(Suite(f"{dtype} tensor graphs", dtype, tensor_graph_cases(ops=caps.ops, dtype=dtype), examples,
                         fixed))
    if layers:
        out.append(_layers_in(dtype, layers, examples, caps))
    return out


def unsupported(caps: Any) -> dict[str, str]:
    """The elementwise and tensor ops the capabilities leave out, by family."""
    out = {name: spec.family for name, spec in OPS.items() if name not in caps.ops}
    out.update({name: op.family for name, op in TENSOR_OPS.items() if name not in caps.ops})
    out.update({f"{name} with {KNOBS[name][k][0]}": TENSOR_OPS[name].family
                for name, knobs in caps.without.items() if name in caps.ops for k in sorted(knobs)})
    return out


def declared(caps: Any) -> str:
    """The graph cases the capabilities declare, in one line (``conformance list``)."""
    ops = sorted(caps.ops)
    if not ops:
        return "graphs: no"
    claims = "".join(f"; {claim.describe(d)}" for d, claim in claims_of(caps).items())
    without = "".join(f"; {op} without {', '.join(sorted(knobs))}" for op, knobs in sorted(caps.without.items()))
    return (f"graphs: dtypes {','.join(caps.dtypes)}; second order {'yes' if caps.second_order else 'no'}{claims}; "
            f"{len(ops)} ops: {' '.join(ops)}{without}")


def judge(case: cases.GraphCase, result: cases.GraphResult, torch_result: cases.GraphResult, *,
          always_truth: bool = False) -> CaseVerdict:
    """The graph judge, then the known cause of a failure named (conformance/impls/explain.py): a
    correct formula that loses precision on this case is ``known-cause``, not ``fail``; then a
    charged verdict on a case outside the working range is ``robustness``
    (conformance/verdict/robustness.py)."""
    v = name_cause(graph_verdict.judge(case, result, torch_result, always_truth=always_truth))
    return judge_robustness(v, torch_result)


def family_suite(family: str, dtype: str, ops: list[str] | None, n: int,
                 claims: Mapping[str, Reductions] = {}) -> Suite:
    """``n`` cases of one op family for calibration: graphs of up to 10 nodes over ``ops`` (None:
    every op), tensor graphs for the family ``tensor``, one layer op on its geometry for a layer family
    — with the implementation's claims about its reductions (``claims``: :func:`declare`)."""
    if family in LAYER_FAMILIES:
        strategy = st.one_of(*(layer_op_cases(n, dtype) for n in layer_ops(ops, family)))
    else:
        strategy = (tensor_graph_cases(ops=ops, dtype=dtype) if family == "tensor"
                    else graph_cases(ops=ops, dtype=dtype, max_nodes=10))
    return declare(Suite(f"{family} {dtype}", family, strategy, n), claims)


def declare(suite: Suite, claims: Mapping[str, Reductions]) -> Suite:
    """``suite`` with the implementation's claims about its reductions (dtype →
    :class:`~conformance.case.dtypes.Reductions`: the accumulation dtype and the summation order it
    declares) written into every case of a dtype it names: the tolerances are those of the claim. The
    draws are the same (a map), so no seed moves."""
    if not claims:
        return suite

    def mark(case: cases.GraphCase) -> cases.GraphCase:
        claim = claims.get(case.dtype)
        return case if claim is None else with_id(replace(case, claim=claim))

    return replace(suite, strategy=suite.strategy.map(mark), fixed=tuple(mark(c) for c in suite.fixed))


def declaring(suites_of: Callable[[Any, int], list[Suite]]) -> Callable[[Any, int], list[Suite]]:
    """``suites_of`` with the implementation's claims about its reductions (:func:`declare`)."""

    def suites_declaring(caps: Any, examples: int) -> list[Suite]:
        claims = claims_of(caps)
        return [declare(s, claims) for s in suites_of(caps, examples)]

    suites_declaring.__name__ = suites_of.__name__
    suites_declaring.__doc__ = suites_of.__doc__
    return suites_declaring


def admits(caps: Any, case: cases.GraphCase) -> bool:
    """Whether the capabilities take ``case``: its ops, its dtype, and a claim about reductions only
    if it is the implementation's own for that dtype (without one, the looser tolerances hold for
    anyone)."""
    return (set(case.ops) <= caps.ops and case.dtype in caps.dtypes
            and case.claim in (None, claims_of(caps).get(case.dtype)))


GRAPH = Kind(
    name="graph", format=cases.FORMAT, case_type=cases.GraphCase, method="run_graph",
    error_result=lambda message: cases.GraphResult(error=message),
    to_json=cases.case_to_json, from_json=cases.case_from_json, dumps=cases.dumps, loads=cases.loads,
    result_to_json=cases.result_to_json, result_from_json=cases.result_from_json,
    size=lambda case: f"{len(case.nodes)} nodes", describe=describe, family=family,
    run_torch=run_torch, judge=judge, smaller=lambda case: graph_candidates(case, node_values),
    torch_script=repro.torch_script,
    result_key=result_key, suites=declaring(suites), later=(declaring(late_suites), declaring(half_suites)),
    unsupported=unsupported, declared=declared, admits=admits,
    picture="conformance.report.graphdraw:draw_graph_case",
)
