"""Mixed precision (issue 17): an implementation declares the dtype it accumulates its reductions in,
and its cases are judged by the tolerances of that claim.

The emulation (refimpl.numbers.MixedNS) is checked against arithmetic done by hand and against
torch's CPU kernels (which accumulate float16 and bfloat16 in float32); the declaration travels from
the capabilities into every case of the dtype (JSON, ids, shrinking, admission) and into the bounds;
a storage-accumulating implementation that claims float32 accumulation fails the hostile sums, the
correct one passes them.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
from dataclasses import replace

import pytest
import torch

from conformance import kinds
from conformance.case.dtypes import HALF, Reductions, accumulation, emulation
from conformance.case.graph import GraphCase, case_from_json, case_to_json
from conformance.case.precision import fixed_cases
from conformance.case.strategies import with_id
from conformance.driver import draw
from conformance.driver import judge_case as check
from conformance.impls import Capabilities, RefImpl, TorchImpl
from conformance.impls.adapters.jsonl import CommandAdapter, StartError
from conformance.impls.loading import resolve
from conformance.impls.zoo import MUTANTS, MutantImpl
from conformance.oracle.run import refimpl_raw
from conformance.tolerance.bounds import SAFETY, bound_system
from refimpl import FORMATS, mixed_system, system, tensor
from refimpl.tensor import matmul


def stagnant(dtype: str) -> GraphCase:
    """1 then 63 terms of ¾u: a partial sum held in the format never moves (conformance/case/precision.py)."""
    return next(c for c in fixed_cases(dtype) if c.nodes[0].op == "sum" and c.leaves["x"].values[0] == 1.0)


def declared(case: GraphCase, acc: str | None = "float32") -> GraphCase:
    return with_id(replace(case, claim=None if acc is None else Reductions(acc)))


# --- the emulation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", HALF)
def test_a_sum_of_ones_keeps_counting_in_float32_and_stalls_in_the_format(dtype):
    """4096 ones: float16 stalls at 2048 (2049 is not a float16 number), bfloat16 at 256; accumulated
    in float32 the total is 4096 — torch's CPU sum of the same tensor."""
    ones = [1.0] * 4096
    stored, mixed = system(dtype), mixed_system(dtype, "float32")
    assert tensor(ones, stored).sum().item() == {"float16": 2048.0, "bfloat16": 256.0}[dtype]
    assert tensor(ones, mixed).sum().item() == 4096.0
    assert torch.ones(4096, dtype=getattr(torch, dtype)).sum().item() == 4096.0


@pytest.mark.parametrize("dtype", HALF)
def test_mixed_sums_and_dot_products_are_the_float32_total_rounded_once(dtype):
    f, mixed = FORMATS[dtype], mixed_system(dtype, "float32")
    small = f.round(0.75 * f.unit_roundoff)
    xs = [1.0] + [small] * 63
    want = f.round(1.0 + 63 * small)  # exact in float32: every partial sum is a float32 number
    assert want > 1.0
    assert tensor(xs, mixed).sum().item() == want
    assert tensor(xs, system(dtype)).sum().item() == 1.0  # stagnates in the format
    dot = matmul(tensor(xs, mixed).reshape(1, 64), tensor([1.0] * 64, mixed).reshape(64, 1))
    assert dot.item() == want
    t = torch.tensor(xs, dtype=getattr(torch, dtype))
    assert t.sum().item() == want and (t.reshape(1, 64) @ torch.ones(64, 1, dtype=t.dtype)).item() == want


def test_the_gradient_of_a_mixed_sum_is_the_graphs():
    """Only the total's value changes: every term's gradient is still the cotangent."""
    x = tensor([1.0, 2.0**-12, 2.0**-12], mixed_system("float16", "float32"))
    x.sum().backward()
    assert [v.grad for v in x.elements] == [1.0, 1.0, 1.0]


def test_an_accumulator_narrower_than_storage_is_refused():
    with pytest.raises(ValueError, match="narrower"):
        mixed_system("bfloat16", "float16")  # float16's range is smaller than bfloat16's
    assert system("float16+float32").name == "float16+float32"
    with pytest.raises(ValueError, match="wider"):
        accumulation("float32", "float16")
    with pytest.raises(ValueError, match="wider"):
        accumulation("float16", "float16")
    with pytest.raises(ValueError, match="unknown dtype"):
        accumulation("float16", "float128")
    assert accumulation("float16", None) is None and emulation("float16", None) is emulation("float16")


# --- the bound ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", HALF)
def test_the_claim_tightens_the_bound_of_a_reduction_to_one_storage_rounding(dtype):
    """Stored: n − 1 roundings in the format (the stagnated 1.0 is inside it); accumulated in float32:
    one rounding of the total plus float32's — about one ulp, and the stagnated 1.0 far outside."""
    case, u = stagnant(dtype), FORMATS[dtype].unit_roundoff
    exact = math.fsum(case.leaves["x"].values)
    (plain,), _, _ = refimpl_raw(case, bound_system(dtype))
    (claim,), _, _ = refimpl_raw(declared(case), bound_system(dtype, Reductions("float32")))
    assert plain.e >= 63 * u * exact > abs(1.0 - exact)
    assert u * exact <= claim.e <= 1.01 * u * exact + 63 * 2.0**-24 * exact
    assert SAFETY * claim.e < abs(1.0 - exact)


# --- the declaration, from capabilities to cases -------------------------------------------------------------

def test_capabilities_check_the_declaration():
    assert RefImpl.capabilities.accumulate == TorchImpl.capabilities.accumulate == {"float16": "float32",
                                                                                      "bfloat16": "float32"}
    assert Capabilities(frozenset({"add"}), ("float64",), accumulate={"float16": "float32"}).accumulate == {}
    assert replace(RefImpl.capabilities, dtypes=("float64", "float16")).accumulate == {"float16": "float32"}
    with pytest.raises(ValueError, match="wider"):
        Capabilities(frozenset({"add"}), ("float32",), accumulate={"float32": "bfloat16"})


def test_the_json_carries_the_declaration_only_when_there_is_one():
    case = stagnant("bfloat16")
    assert "accumulate" not in case_to_json(case)  # a case without it keeps its document and its id
    mixed = declared(case)
    doc = case_to_json(mixed)
    assert doc["accumulate"] == "float32" and mixed.id != case.id
    assert case_from_json(json.loads(json.dumps(doc))) == mixed
    with pytest.raises(ValueError, match="wider"):
        case_from_json({**doc, "accumulate": "float16"})


def test_the_suites_of_a_declared_dtype_carry_it_and_draw_the_same_numbers():
    plain = replace(RefImpl.capabilities, accumulate={})
    with_claim, without = (kinds.suites(caps, 3) for caps in (RefImpl.capabilities, plain))
    assert [s.name for s in with_claim] == [s.name for s in without]
    for a, b in zip(with_claim, without):
        if a.family not in HALF:
            continue
        for ca, cb in zip(draw(a, 7), draw(b, 7)):
            assert (ca.accumulate, cb.accumulate) == ("float32", None)
            assert replace(ca, claim=None, id="") == replace(cb, id="")
            assert ca.id == declared(cb).id


def test_only_the_implementation_that_declares_it_is_held_to_a_claim():
    graph = kinds.of(stagnant("float16"))
    plain = replace(RefImpl.capabilities, accumulate={})
    assert graph.admits(RefImpl.capabilities, declared(stagnant("float16")))
    assert not graph.admits(plain, declared(stagnant("float16")))
    assert graph.admits(plain, stagnant("float16")) and graph.admits(RefImpl.capabilities, stagnant("float16"))


# --- verdicts ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("op", ["sum", "matmul"])
def test_storage_accumulation_passes_without_the_claim_and_fails_with_it(dtype, op):
    """The correct implementations (refimpl's emulation, torch) pass the stagnating reductions either
    way; accumulating in the format passes without a claim and fails under a claim of float32."""
    case = next(c for c in fixed_cases(dtype) if c.nodes[0].op == op and 1.0 in c.leaves["x"].values[:1])
    bug = MutantImpl(MUTANTS["accumulate-in-half"])
    for impl in (RefImpl(), TorchImpl()):
        assert check(impl, case).verdict == "pass"
        assert check(impl, declared(case)).verdict == "pass"
    assert check(bug, case).verdict == "pass"  # no claim: rounding every partial sum is honest
    v = check(bug, declared(case))
    assert v.verdict == "fail", v.reason
    assert v.entries[0].impl == 1.0 and v.entries[0].torch > 1.0


def test_a_gemm_accumulating_in_half_is_caught_and_its_sums_are_not_charged():
    bug = MutantImpl(MUTANTS["matmul-accumulates-in-half"])
    by_op = {c.nodes[0].op: declared(c) for c in fixed_cases("float16") if 1.0 in c.leaves["x"].values[:1]}
    assert check(bug, by_op["matmul"]).verdict == "fail"
    assert check(bug, by_op["sum"]).verdict == "pass"


# --- JSON Lines: the declaration in the hello ---------------------------------------------------------------

def _hello_program(capabilities: dict) -> str:
    """A program that answers the hello with ``capabilities`` and then waits for the bye."""
    hello = {"type": "hello", "protocol": 1, "name": "mixed", "version": "1", "capabilities": capabilities}
    code = f"import sys; sys.stdin.readline(); print({json.dumps(json.dumps(hello))}, flush=True); sys.stdin.read()"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def test_a_json_lines_program_declares_its_accumulation():
    ok = {"ops": ["add", "sum"], "dtypes": ["float64", "float16"], "accumulate": {"float16": "float32"}}
    adapter = CommandAdapter(_hello_program(ok), start_timeout=10.0)
    try:
        assert adapter.capabilities.accumulate == {"float16": "float32"}
    finally:
        adapter.close()
    for bad, says in (({**ok, "accumulate": {"bfloat16": "float32"}}, "from dtypes it declares"),
                      ({**ok, "accumulate": ["float32"]}, "must be an object"),
                      ({**ok, "accumulate": {"float16": ["float32"]}}, "must be an object"),
                      ({**ok, "accumulate": {"float16": "float128"}}, "unknown dtype"),
                      ({**ok, "accumulate": {"float16": "bfloat16"}}, "must be a wider dtype")):
        with pytest.raises(StartError, match=says) as info:
            CommandAdapter(_hello_program(bad), start_timeout=10.0)
        assert "\n" not in str(info.value)


def test_an_implementation_in_a_worker_keeps_its_claim():
    """A user's implementation runs in a worker (conformance.commands.serve): its hello carries the
    claim, so its half-precision cases are judged by it as in this process."""
    impl = resolve("refimpl", isolate=True)
    try:
        assert impl.capabilities.accumulate == RefImpl.capabilities.accumulate
        case = declared(stagnant("float16"))
        assert kinds.of(case).admits(impl.capabilities, case)
        assert check(impl, case).verdict == "pass"
    finally:
        impl.close()
