"""The summation-order claim (issue 17, item 4): an implementation declares that its reductions are
summed pairwise (``capabilities.summation``), alone or with an accumulation dtype; its cases carry the
claim, the bound of an n-term sum is ⌈log2 n⌉·u·Σ|xᵢ| instead of (n − 1)·u·Σ|xᵢ|, refimpl-pairwise
(the correct implementation of the claim) passes, and a running sum under the claim fails.

The hand figures: the stagnating sum of a format (1, then 63 terms t = ¾u; an ulp at 1 is 2u, so t
is 0.375 ulp) — a running sum rounds every t away and ends at 1; pairwise, the first pair (1, t)
rounds to 1 and every other pair is 2t = 0.75 ulp, exact; then 1 + 2t → 1 + 1 ulp and 4t = 1.5 ulp;
1 + 2.5 ulp → 1 + 2 ulps (a tie, to even) and 8t = 3 ulps; then 1 + 5, 1 + 11, 1 + 23 ulps, each
exact. The truth is 1 + 23.625 ulps.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
from dataclasses import replace

import pytest

from conformance import kinds
from conformance.case.dtypes import HALF, Reductions, claims_of, emulation, reductions
from conformance.case.graph import GraphCase, case_from_json, case_to_json
from conformance.case.precision import fixed_cases, order_cases
from conformance.case.strategies import with_id
from conformance.commands.mutants import Plan
from conformance.driver import draw
from conformance.driver import judge_case as check
from conformance.impls import PAIRWISE, Capabilities, PairwiseRefImpl, RefImpl
from conformance.impls.adapters.jsonl import CommandAdapter, StartError
from conformance.impls.loading import resolve
from conformance.impls.zoo import MUTANTS, MutantImpl
from conformance.oracle import repro
from conformance.oracle.run import refimpl_raw, run_refimpl
from conformance.tolerance.bounds import SAFETY, Accumulation, bound_system
from refimpl import FORMATS, system
from refimpl.numbers import left_to_right, pairwise_sum

DTYPES4 = ("float64", "float32", "float16", "bfloat16")
PAIRWISE_ALONE = Reductions(summation="pairwise")


def stagnant_sum(dtype: str) -> GraphCase:
    return next(c for c in order_cases(dtype) if c.nodes[0].op == "sum")


def claimed(case: GraphCase, claim: Reductions | None = PAIRWISE_ALONE) -> GraphCase:
    return with_id(replace(case, claim=claim))


# --- the order ------------------------------------------------------------------------------------------

def test_pairwise_sum_halves_recursively():
    """The tree, written out by an ``add`` that records it: the first ⌈n/2⌉ terms, then the rest."""
    def show(a: str, b: str) -> str:
        return f"({a}+{b})"

    assert pairwise_sum(list("abcd"), show) == "((a+b)+(c+d))"
    assert pairwise_sum(list("abcde"), show) == "(((a+b)+c)+(d+e))"
    assert pairwise_sum(["a"], show) == "a"
    assert left_to_right(list("abcd"), show) == "(((a+b)+c)+d)"


@pytest.mark.parametrize("n, depth", [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (64, 6), (65, 7), (1000, 10)])
def test_roundings_per_term_are_the_depth_of_the_tree(n, depth):
    """⌈log2 n⌉ for a claimed pairwise order, n − 1 for any order."""
    assert Accumulation(2.0**-24, 0.0, pairwise=True).roundings(n) == depth
    assert Accumulation(2.0**-24, 0.0).roundings(n) == max(n - 1, 0)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_the_emulation_sums_pairwise_in_the_format(dtype):
    """1 + 23 ulps pairwise (the module docstring's hand steps), 1 running; the truth 1 + 23.625."""
    xs = list(stagnant_sum(dtype).leaves["x"].values)
    ulp = 2 * FORMATS[dtype].unit_roundoff
    ns = emulation(dtype, PAIRWISE_ALONE)
    assert ns.reduce(None, xs) == 1.0 + 23 * ulp
    assert system(dtype).add(1.0, xs[1]) == 1.0  # each term alone is rounded away
    value, _, _ = refimpl_raw(claimed(stagnant_sum(dtype)), ns)
    assert value[0] == 1.0 + 23 * ulp
    value, _, _ = refimpl_raw(stagnant_sum(dtype), system(dtype))
    assert value[0] == 1.0


def test_float64_has_a_pairwise_system_too():
    xs = list(stagnant_sum("float64").leaves["x"].values)
    assert emulation("float64", PAIRWISE_ALONE).reduce(None, xs) == 1.0 + 23 * 2.0**-52
    assert emulation("float64") is system("float64")  # no claim: binary64 itself


# --- the bound ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES4)
def test_the_claim_bounds_a_sum_by_log2_n_roundings(dtype):
    """64 terms: 6·u·Σ|xᵢ| (+ the n − 1 subnormal terms), where any order allows 63·u·Σ|xᵢ|; the
    running sum's 1.0 is outside the claim's tolerance, the pairwise total inside."""
    case, u = stagnant_sum(dtype), FORMATS[dtype].unit_roundoff
    spread = math.fsum(case.leaves["x"].values)
    (plain,), _, _ = refimpl_raw(case, bound_system(dtype))
    (pair,), _, _ = refimpl_raw(claimed(case), bound_system(dtype, PAIRWISE_ALONE))
    eta = FORMATS[dtype].smallest_subnormal if dtype != "float32" else 2.0**-149
    low = 1 - 1e-9  # Σ|xᵢ| is itself summed in binary64 by the bound (a relative u less, at most)
    assert plain.e >= low * 63 * u * spread
    assert low * 6 * u * spread <= pair.e <= 6 * u * spread + 63 * eta + 1e-300
    assert SAFETY * pair.e < abs(1.0 - spread)  # a running sum is caught
    assert abs(emulation(dtype, PAIRWISE_ALONE).reduce(None, list(case.leaves["x"].values)) - spread) <= pair.e


def test_with_an_accumulation_dtype_the_claim_adds_the_storage_rounding():
    """float16 stored, float32 accumulated, pairwise: 6·u₃₂·Σ|xᵢ| + u₁₆·|Σ| (+ subnormals)."""
    case = stagnant_sum("float16")
    spread, u16, u32 = math.fsum(case.leaves["x"].values), 2.0**-11, 2.0**-24
    claim = Reductions("float32", "pairwise")
    (both,), _, _ = refimpl_raw(claimed(case, claim), bound_system("float16", claim))
    (acc,), _, _ = refimpl_raw(claimed(case, Reductions("float32")), bound_system("float16", Reductions("float32")))
    v = FORMATS["float16"].round(spread)
    slack = 63 * 2.0**-149 + 2.0**-24
    assert 6 * u32 * spread + u16 * v <= both.e <= 6 * u32 * spread + u16 * v + slack
    assert 63 * u32 * spread + u16 * v <= acc.e <= 63 * u32 * spread + u16 * v + slack


# --- the declaration -------------------------------------------------------------------------------------

def test_capabilities_check_and_narrow_the_order():
    caps = Capabilities(frozenset({"sum"}), ("float64", "float32"), summation={"float32": "pairwise",
                                                                              "float16": "pairwise"})
    assert caps.summation == {"float32": "pairwise"}  # only the dtypes it has
    assert claims_of(caps) == {"float32": PAIRWISE_ALONE}
    with pytest.raises(ValueError, match="not an order"):
        Capabilities(frozenset({"sum"}), ("float32",), summation={"float32": "kahan"})
    with pytest.raises(ValueError, match="unknown dtype"):
        Capabilities(frozenset({"sum"}), ("float32",), summation={"float128": "pairwise"})
    both = claims_of(PairwiseRefImpl.capabilities)
    assert both["bfloat16"] == Reductions("float32", "pairwise") and both["float16"] == PAIRWISE_ALONE
    assert claims_of(RefImpl.capabilities) == {d: Reductions("float32") for d in HALF}
    assert reductions("float32") is None


def test_the_json_carries_the_order_only_when_claimed_and_old_ids_stay():
    plain = stagnant_sum("float16")
    acc = claimed(plain, Reductions("float32"))
    # the ids these cases had before orders could be claimed (main at e3849bb)
    assert (plain.id, acc.id) == ("g-ac7c1ccc47d3", "g-a148df4aefaa")
    assert "summation" not in case_to_json(acc) and "accumulate" not in case_to_json(plain)
    both = claimed(plain, Reductions("float32", "pairwise"))
    doc = case_to_json(both)
    assert (doc["accumulate"], doc["summation"]) == ("float32", "pairwise")
    assert len({plain.id, acc.id, both.id, claimed(plain).id}) == 4
    assert case_from_json(json.loads(json.dumps(doc))) == both
    with pytest.raises(ValueError, match="not an order"):
        case_from_json({**doc, "summation": "naive"})


def test_the_suites_open_with_the_order_cases_only_under_the_claim():
    """float64 and float32 tensor graphs: the stagnating sum and matmul first, carrying the claim —
    only for an implementation that claims an order; the drawn cases are the same numbers."""
    claim, plain = kinds.suites(PairwiseRefImpl.capabilities, 3), kinds.suites(RefImpl.capabilities, 3)
    assert [s.name for s in claim] == [s.name for s in plain]
    by_name = {s.name: (a, s) for a, s in zip(claim, plain)}
    for name, dtype in (("tensor graphs", "float64"), ("float32 tensor graphs", "float32")):
        a, b = by_name[name]
        assert b.fixed == ()
        assert [c.ops for c in a.fixed] == [("sum",), ("matmul",)]
        assert all(c.claim == PAIRWISE_ALONE and c.dtype == dtype for c in a.fixed)
        for ca, cb in zip(draw(a, 5)[len(a.fixed):], draw(b, 5), strict=True):
            assert replace(ca, claim=None, id="") == replace(cb, id="")
    a, b = by_name["bfloat16 tensor graphs"]
    # refimpl's (float32 accumulation alone): the cases it had before orders could be claimed
    assert [c.id for c in b.fixed] == [claimed(c, Reductions("float32")).id for c in fixed_cases("bfloat16")]
    assert all(c.claim == Reductions("float32", "pairwise") for c in a.fixed)


def test_only_the_implementation_that_claims_the_order_is_held_to_it():
    graph, case = kinds.of(stagnant_sum("float32")), claimed(stagnant_sum("float32"))
    assert graph.admits(PairwiseRefImpl.capabilities, case)
    assert not graph.admits(RefImpl.capabilities, case)
    other = claimed(stagnant_sum("float32"), Reductions("float64", "pairwise"))  # a claim, not its own
    assert not graph.admits(PairwiseRefImpl.capabilities, other)
    assert graph.admits(PairwiseRefImpl.capabilities, stagnant_sum("float32"))  # no claim: anyone's


# --- the verdicts ---------------------------------------------------------------------------------------

#: the order mutant with refimpl-pairwise's whole claim (the zoo's leaves float64 out: a cost, not a reason)
RUNNING_SUM = MutantImpl(replace(MUTANTS["naive-order-claims-pairwise"], declares=PairwiseRefImpl.capabilities))


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_the_pairwise_implementation_passes_and_a_running_sum_fails(dtype):
    claim = claims_of(PairwiseRefImpl.capabilities)[dtype]
    for case in order_cases(dtype):
        case = claimed(case, claim)
        assert check(PairwiseRefImpl(), case).conforms, case.ops
        v = check(RUNNING_SUM, case)
        assert v.verdict == "fail", (case.ops, v.reason)
        assert RUNNING_SUM.run_graph(case).value.values == (1.0,)


def test_agreeing_with_torch_does_not_meet_a_claimed_order():
    """torch's float32 matmul of the stagnating row is a running sum too (1.0): the mutant agrees
    with it bit for bit, and still fails, against the truth."""
    case = claimed(next(c for c in order_cases("float32") if c.ops == ("matmul",)))
    v = check(RUNNING_SUM, case)
    (entry,) = [e for e in v.entries if e.name.startswith("value")]
    assert entry.impl == entry.torch == 1.0 and v.verdict == "fail"


def test_with_a_wider_accumulator_the_order_is_not_seen_through_half_storage():
    """bfloat16 accumulated in float32: both orders give the same float32 total's rounding — the claim is
    honest and free, and a running sum under it is no bug the format shows."""
    case = claimed(stagnant_sum("bfloat16"), Reductions("float32", "pairwise"))
    assert check(RUNNING_SUM, case).conforms and check(PairwiseRefImpl(), case).conforms
    assert RUNNING_SUM.run_graph(case) == run_refimpl(case)


# --- JSON Lines and the worker -----------------------------------------------------------------------------

def hello_program(capabilities: dict) -> str:
    """A program that answers the hello with ``capabilities`` and then waits for the bye."""
    hello = {"type": "hello", "protocol": 1, "name": "ordered", "version": "1", "capabilities": capabilities}
    code = f"import sys; sys.stdin.readline(); print({json.dumps(json.dumps(hello))}, flush=True); sys.stdin.read()"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def test_a_json_lines_program_claims_an_order():
    ok = {"ops": ["sum"], "dtypes": ["float32", "float16"], "accumulate": {"float16": "float32"},
          "summation": {"float32": "pairwise", "float16": "pairwise"}}
    adapter = CommandAdapter(hello_program(ok), start_timeout=10.0)
    try:
        assert claims_of(adapter.capabilities) == {"float32": PAIRWISE_ALONE,
                                                   "float16": Reductions("float32", "pairwise")}
    finally:
        adapter.close()
    kahan = r"capabilities\.summation: summation 'kahan' is not an order"  # the hello's key named
    for bad, says in (({**ok, "summation": {"float32": "kahan"}}, kahan),
                      ({**ok, "summation": ["pairwise"]}, "must be an object"),
                      ({**ok, "summation": {"float32": ["pairwise"]}}, "not an order"),
                      ({**ok, "summation": {"bfloat16": "pairwise"}}, "from dtypes it declares")):
        with pytest.raises(StartError, match=says) as info:
            CommandAdapter(hello_program(bad), start_timeout=10.0)
        assert "\n" not in str(info.value)


def test_an_implementation_in_a_worker_keeps_its_order():
    """serve's hello carries ``summation``: the claim, and so the cases, are those of this process."""
    impl = resolve("conformance.impls:PairwiseRefImpl", isolate=True)
    try:
        assert claims_of(impl.capabilities) == claims_of(PairwiseRefImpl.capabilities)
        assert impl.capabilities.summation == PAIRWISE
        case = claimed(stagnant_sum("float32"))
        assert kinds.of(case).admits(impl.capabilities, case)
        assert check(impl, case).conforms
    finally:
        impl.close()


def test_the_zoo_runs_a_claiming_mutant_on_the_suites_of_its_claim():
    """``conformance mutants``: the order mutant is hunted through the suites of an implementation
    making its claim (refimpl's references shared, keyed by case id); every other mutant, refimpl's."""
    plan = Plan(3, 0)
    mutant = MUTANTS["naive-order-claims-pairwise"]
    own = plan.declaring(mutant.declares)
    assert own is not plan and own.references is plan.references and own.capabilities == mutant.declares
    assert plan.declaring(MUTANTS["accumulate-in-half"].declares) is plan
    i = [s.name for s in own.suites].index("float32 tensor graphs")
    first = own.cases(i)[0]
    assert first.claim == PAIRWISE_ALONE and first.ops == ("sum",)
    assert plan.cases(i)[0].claim is None and "float64" not in mutant.declares.summation


def test_the_torch_script_says_the_case_claims_an_order():
    """torch promises no order: the script of a claimed case says what the case assumes."""
    script = repro.torch_script(claimed(stagnant_sum("float16"), Reductions("float32", "pairwise")))
    assert "declares pairwise summation of float16" in script and "declares float32 accumulation" in script
    assert "summation" not in repro.torch_script(stagnant_sum("float16"))
