"""Known causes of a failure (conformance/explain.py): each explains what it reproduces and nothing
else — a planted bug of another kind stays unexplained, so calibration's budget can still fail."""

from __future__ import annotations

import pytest

from conformance.cases import GraphCase, GraphResult, Node, Tensor
from conformance.explain import FLUSH, explain
from conformance.impls import RefImpl
from conformance.run import run_refimpl
from conformance.strategies import with_id
from conformance.verify import check_case
from conformance.zoo import MUTANTS, MutantImpl


class FlushingImpl(RefImpl):
    """refimpl with subnormals flushed to zero, as XLA on CPU does."""

    name = "planted-ftz"

    def run_graph(self, case: GraphCase) -> GraphResult:
        return run_refimpl(case, FLUSH[case.dtype])


def _case(leaves: dict[str, float], nodes: list[tuple[str, str, tuple[str, ...]]], dtype: str = "float64",
          ct: float = 0.75) -> GraphCase:
    return with_id(GraphCase({k: Tensor.scalar(v) for k, v in leaves.items()},
                             tuple(Node(n, op, ins) for n, op, ins in nodes), nodes[-1][0],
                             Tensor.scalar(ct), dtype))


LOG_OF_SUBNORMAL = _case({"x": 1e-310}, [("n0", "log", ("x",))])
EXP_TO_SUBNORMAL = _case({"x": -100.0}, [("n0", "exp", ("x",))], "float32")


@pytest.mark.parametrize("case", [LOG_OF_SUBNORMAL, EXP_TO_SUBNORMAL], ids=["log-1e-310", "exp-f32"])
def test_flushing_subnormals_fails_and_is_explained_as_flush_to_zero(case):
    assert check_case(RefImpl(), case).verdict == "pass"
    judged = check_case(FlushingImpl(), case)
    assert not judged.conforms, judged.reason
    assert explain(case, judged.entries) == "flush-to-zero"


def test_a_wrong_derivative_is_not_explained():
    case = _case({"x": 0.3}, [("n0", "sigmoid", ("x",))])
    judged = check_case(MutantImpl(MUTANTS["sigmoid-1e-9"]), case)
    assert not judged.conforms
    assert explain(case, judged.entries) is None


def test_a_passing_case_needs_no_explanation():
    judged = check_case(RefImpl(), LOG_OF_SUBNORMAL)
    assert explain(LOG_OF_SUBNORMAL, judged.entries) is None


def test_mygrads_self_tie_is_explained():
    pytest.importorskip("mygrad", reason="mygrad not installed (extra 'libs')")
    from conformance.loading import resolve

    case = _case({"x": 0.7}, [("n0", "maximum", ("x", "x"))])
    judged = check_case(resolve("mygrad"), case)
    assert not judged.conforms, "mygrad 2.5 gives maximum(x, x)′ = 0"
    assert explain(case, judged.entries) == "self-tie"


def test_jaxs_flushed_subnormal_is_explained():
    pytest.importorskip("jax", reason="jax not installed (extra 'libs')")
    from conformance.loading import resolve

    judged = check_case(resolve("jax"), LOG_OF_SUBNORMAL)
    assert not judged.conforms, "XLA on CPU treats 1e-310 as 0: log is -inf"
    assert explain(LOG_OF_SUBNORMAL, judged.entries) == "flush-to-zero"
