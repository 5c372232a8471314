"""A −∞ mask before a softmax is a charged case (conformance/case/masks.py).

* refimpl passes the masked cases in every dtype, and so does torch against itself; numpy layer
  functions are judged on the fill alone (a backward that forgets the mask is charged);
* masking by arithmetic (``x·keep + fill·mask``, the zoo's ``masked-fill-arithmetic``) is charged on
  them in every dtype — not excused as ``robustness`` — and passes the same graph with the −10⁹ fill
  people write instead, which is why the −∞ cases are needed;
* the −∞ is the fill's alone: as a leaf, or carried into another node, it still puts a case outside
  the working range;
* a −∞ attribute is the string ``"-inf"`` in the case's JSON (strict JSON) and in the torch script a
  name that Python reads.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace

import pytest

from conformance import kinds
from conformance.case.dtypes import DTYPES
from conformance.case.graph import GraphCase, Node, Tensor, dumps, loads
from conformance.case.masks import fixed_cases
from conformance.case.strategies import with_id
from conformance.driver import judge_case
from conformance.impls import RefImpl, TorchImpl
from conformance.impls.foreign import FOREIGN
from conformance.impls.zoo import MUTANTS, MutantImpl
from conformance.oracle.repro import torch_script
from conformance.verdict.robustness import extreme

ARITHMETIC = MutantImpl(MUTANTS["masked-fill-arithmetic"])


def _with_fill(case: GraphCase, value: float) -> GraphCase:
    fill = replace(case.nodes[0], attrs={**case.nodes[0].attrs, "value": value})
    return with_id(replace(case, nodes=(fill, *case.nodes[1:]), id=""))


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_correct_implementations_pass_the_masked_cases(dtype):
    cases = fixed_cases("masked_fill", dtype)
    assert [c.nodes[-1].op for c in cases] == ["masked_fill", "softmax", "logsumexp"]
    for impl in (RefImpl(), TorchImpl()):
        for case in cases:
            v = judge_case(impl, case)
            assert v.verdict == "pass", f"{impl.name} {case.nodes[-1].op} {dtype}: {v.verdict}: {v.reason}"


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_masking_by_arithmetic_is_charged_for_minus_infinity_only(dtype):
    for case in fixed_cases("masked_fill", dtype):
        assert extreme(case) is None, "a −∞ fill is a mask, inside the working range"
        v = judge_case(ARITHMETIC, case)
        assert v.verdict in ("fail", "nonfinite-mismatch"), f"{case.nodes[-1].op} {dtype}: {v.verdict}: {v.reason}"
        assert "implementation nan" in v.reason
        big = -1e9 if math.isfinite(DTYPES[dtype].cast(-1e9)) else -1e4  # float16's −1e9 is −∞ itself
        finite = judge_case(ARITHMETIC, _with_fill(case, big))
        assert finite.verdict == "pass", f"with −1e9 the arithmetic is right: {finite.verdict}: {finite.reason}"


def test_layer_functions_are_judged_on_the_fill_alone():
    """A course-assignment masked_fill (forward/backward with a cache, no softmax): the fill alone is
    its −∞ case; the correct one passes, the one whose backward forgets the mask is charged (the
    truth's finite differences leave the constant −∞ outputs out: it is 0 there, not NaN)."""
    alone = fixed_cases("masked_fill")[0]
    assert judge_case(FOREIGN["layers_assignment"].load(), alone).verdict == "pass"
    v = judge_case(FOREIGN["layers_masked_fill_grad_through_mask"].load(), alone)
    assert v.verdict == "fail" and "truth 0.0" in v.reason, v.reason


def test_minus_infinity_elsewhere_is_still_outside_the_working_range():
    case = fixed_cases("masked_fill")[1]
    x = case.leaves["x"]
    leaf = with_id(replace(case, leaves={"x": Tensor(x.shape, (-math.inf, *x.values[1:]))}, id=""))
    assert extreme(leaf) is not None
    carried = with_id(GraphCase({"x": x}, (case.nodes[0], Node("n1", "add", ("n0", "n0"))), "n1",
                                Tensor(x.shape, (1.0,) * 8)))
    assert "node n1" in extreme(carried)  # the fill's −∞ carried into another node is not a mask any more


def test_the_fill_is_strict_json_and_valid_python():
    case = fixed_cases("masked_fill", "float32")[2]
    text = dumps(case)

    def no_constants(name: str) -> float:
        raise AssertionError(f"{name} is not JSON")

    doc = json.loads(text, parse_constant=no_constants)
    assert doc["nodes"][0]["attrs"]["value"] == "-inf"
    assert loads(text) == case and case.nodes[0].attrs["value"] == -math.inf
    assert kinds.load(json.loads(text)) == case
    out = subprocess.run([sys.executable, "-c", torch_script(case)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    value = json.loads(out.stdout.splitlines()[0].removeprefix("value "))
    assert value[0] == pytest.approx(math.log(math.exp(0.5) + math.exp(2.0)), rel=1e-6)
    assert value[1] == pytest.approx(0.25)  # the one kept score of row 1
