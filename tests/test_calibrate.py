"""The false-alarm budget in CI: correct implementations — refimpl, and refimpl summing in other
orders — pass every case, with headroom; implementations that are missing or partial are reported
and skipped, not failed."""

from __future__ import annotations

import math
import os
import signal

import pytest

from conformance.case.graph import dumps
from conformance.case.tensor_ops import LAYER_FAMILIES
from conformance.commands import calibrate as cal
from conformance.commands import cli
from conformance.commands.mutants import Plan
from conformance.driver import PROFILES as PROFILE_EXAMPLES
from conformance.driver import WorkerDied, draw, worker_pool
from conformance.impls import RefImpl
from conformance.impls.zoo import snapshot
from conformance.kinds.graph import result_key

N = 1000  # per implementation: 2,000 cases in all


@pytest.mark.parametrize("impl", ["refimpl", "refimpl-reordered"])
def test_correct_implementations_raise_no_false_alarm(impl):
    results = cal.calibrate(impl, N, workers=2, seed=0, progress=lambda *a, **k: None)
    assert {fam for fam, _ in results} == set(cal.FAMILIES) and {dt for _, dt in results} == {"float64", "float32"}
    cases = sum(t.cases for t in results.values())
    assert cases >= 0.9 * N
    failures = [f for t in results.values() for f in t.failures_seen]
    assert not failures, failures[0]
    worst = max(max(t.ratios) for t in results.values())
    print(f"{impl}: {cases} cases, largest error/tolerance {worst:.3f}")
    assert worst < 1


#: the layer families each library's calibration includes: those whose failures all have a known cause
#: (calibrate --n 9000 --seed 0, docs/findings.md). Left out: autograd's convolution (a RecursionError
#: inside autograd's convolve on strided conv2d), statistics (vector_norm with keepdim: a ValueError in
#: autograd's norm VJP) and shaping (pad's reflect, replicate and circular modes: "Only constant mode
#: padding is supported"); mygrad's convolution (conv_nd refuses a dilated kernel whose k·d exceeds the
#: input, though its window is d·(k − 1) + 1) and statistics (vector_norm over two dims: "does not
#: support matrix norms") — errors, which no cause explains. jax leaves out every layer family: it
#: aborts the process on one convolution (tests/test_adapter_libs.py) and compiles each geometry anew.
LIBRARY_LAYERS = {
    "autograd": ("normalization", "indexing", "cumulative", "attention", "recurrent", "dropout"),
    "mygrad": ("normalization", "indexing", "cumulative", "attention", "recurrent", "shaping", "dropout"),
    "jax": (),
}


@pytest.mark.parametrize("lib", ["autograd", "mygrad", "jax"])
def test_every_failure_of_a_library_has_a_known_cause(lib):
    """The budget for the libraries: they fail (their bugs are real), and every failure is reproduced
    by a cause of conformance/impls/explain.py — none is a false alarm of the suite. The layer
    families whose failures are errors are left out (:data:`LIBRARY_LAYERS`); attention, which
    autograd and mygrad do not map, is skipped as unsupported."""
    pytest.importorskip(lib, reason=f"{lib} not installed (extra 'libs')")
    families = tuple(f for f in cal.FAMILIES if f not in LAYER_FAMILIES or f in LIBRARY_LAYERS[lib])
    results = cal.calibrate(lib, N, workers=2, seed=0, progress=lambda *a, **k: None, families=families)
    assert set(LIBRARY_LAYERS[lib]) - {"attention"} <= {fam for fam, _ in results}
    cases = sum(t.cases for t in results.values())
    failures = sum(t.failures for t in results.values())
    unexplained = [f for t in results.values() for f in t.failures_seen]
    print(f"{lib}: {cases} cases, {failures} failures, {len(unexplained)} unexplained")
    assert cases >= 0.9 * N
    assert not unexplained, unexplained[0]


def test_the_reordered_refimpl_really_rounds_differently():
    """Otherwise its calibration would be refimpl's again: on tensor cases (sums of three or more
    terms) its results differ from refimpl's in the last bits, and only there."""
    reordered = cal.load_impl("refimpl-reordered")
    plans = [Plan(PROFILE_EXAMPLES["ci"], seed) for seed in (0, 1)]
    suites = ("tensor graphs", "op matmul", "op sum", "op mean")  # where sums of three or more terms are
    cases = [c for p in plans for name in suites for c in p.cases([s.name for s in p.suites].index(name))]
    before = snapshot()
    differ = 0
    for case in cases:
        mine, ref = reordered.run_graph(case), RefImpl().run_graph(case)
        differ += result_key(mine) != result_key(ref)
        for k, g in ref.grads.items():
            assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-300) or a == b
                       for a, b in zip(mine.grads[k].values, g.values)), case.id
    assert differ >= 3, f"{differ} of {len(cases)} cases"  # 6 of 80 tensor graphs when written; 5 of 140 now
    assert snapshot() == before  # the reordering is undone after each run


def test_unsupported_families_and_dtypes_are_skipped():
    class Partial(RefImpl):
        capabilities = RefImpl.capabilities.__class__(frozenset({"add", "mul", "tanh", "sum"}), ("float64",))

    groups, skipped = cal.supported_groups(Partial(), ("float64", "float32"), tuple(cal.FAMILIES))
    assert groups == [("arithmetic", "float64"), ("trig-sigmoid", "float64"), ("mixed", "float64"),
                      ("tensor", "float64")]
    assert "float32 (dtype not supported)" in skipped and "exp-log float64" in skipped
    assert cal.family_ops("arithmetic", Partial.capabilities.ops) == ["add", "mul"]
    assert cal.family_ops("tensor", Partial.capabilities.ops) == ["add", "mul", "sum", "tanh"]
    assert cal.family_ops("mixed", RefImpl.capabilities.ops) is None  # refimpl draws as it always has


def test_an_unavailable_implementation_is_reported_not_fatal(capsys):
    assert cli.main(["calibrate", "--impl", "no-such-impl", "refimpl-float32", "--n", "40", "--workers", "1",
                     "--family", "arithmetic"]) == 0
    out = capsys.readouterr().out
    assert "no-such-impl: not available (LookupError: unknown implementation 'no-such-impl'" in out
    assert "refimpl-float32 (" in out and "skipped, not supported: float64 (dtype not supported)" in out
    assert "arithmetic     float32" in out and "refimpl-float32: " in out and " 0 failures" in out
    assert cli.main(["calibrate", "--impl", "no-such-impl", "--n", "10"]) == 2
    assert "none of no-such-impl is available" in capsys.readouterr().err


# --- false alarms found by calibration (drawn with hypothesis's local constants on), pinned until fixed -----

def test_a_float32_sum_in_another_order_conforms():
    from conformance.case.graph import GraphCase, Node, Tensor
    from conformance.case.strategies import with_id
    from conformance.driver import judge_case as check_case

    x = Tensor((4,), (-278.1526794433594, 278.1526794433594, -3.8399999141693115, -3.8399999141693115))
    case = with_id(GraphCase({"x": x}, (Node("n0", "sum", ("x",), {"dim": 0, "keepdim": False}),), "n0",
                             Tensor.scalar(1.0), "float32"))
    assert check_case(RefImpl(), case).verdict == "pass"
    assert check_case(cal.load_impl("refimpl-reordered"), case).conforms


def test_refimpl_conforms_where_a_local_derivative_overflows():
    from conformance.case.graph import GraphCase, Node, Tensor
    from conformance.case.strategies import with_id
    from conformance.driver import judge_case as check_case

    case = with_id(GraphCase({"x": Tensor.scalar(-709.8169182277372)},
                             (Node("n0", "exp", ("x",)), Node("n1", "log", ("n0",))), "n1",
                             Tensor.scalar(0.912718735357057), "float64"))
    judged = check_case(RefImpl(), case)
    # 1/exp(x) overflows in the bound: the gradient's tolerance is infinite, so the entry is unchecked
    # (counted, not charged) rather than a pass that checks nothing
    assert judged.conforms and judged.verdict == "unchecked", judged


def _dies(x: int) -> int:
    if x == 2:
        os.kill(os.getpid(), signal.SIGSEGV)  # what torch 2.13's float16 convolutions did (docs/findings.md)
    return x


def test_a_worker_that_dies_is_an_error_not_a_hang():
    """multiprocessing.Pool replaced a dead worker and waited for ever for its task (a float16
    calibration hung so); the pool now says a worker died."""
    with worker_pool(2) as pool:
        got = pool.imap(_dies, [0, 1])
        assert list(got) == [0, 1]
    with pytest.raises(WorkerDied, match="a worker process died"), worker_pool(2) as pool:
        list(pool.imap(_dies, [0, 1, 2, 3]))
    with pytest.raises(WorkerDied), worker_pool(1) as pool:
        list(pool.imap_unordered(_dies, [2, 0]))


# --- an implementation that kills its worker ------------------------------------------------------------

class _KillsItsProcess(RefImpl):
    """refimpl, but its process dies (as torch 2.13's did in its bfloat16 conv2d backward) on the
    cases whose ids are in ``deadly`` (every case if ``deadly`` is None)."""

    def __init__(self, deadly: set[str] | None) -> None:
        super().__init__()
        self.deadly = deadly

    def run_graph(self, case):
        if self.deadly is None or case.id in self.deadly:
            os.kill(os.getpid(), signal.SIGSEGV)
        return super().run_graph(case)


def _kills_its_process(monkeypatch, deadly: set[str] | None) -> str:
    """The name calibrate loads it by, in this process and in the workers it forks (which inherit
    the patches; a spawned worker would load a named implementation in a process of its own)."""
    name, impl, load = "kills-its-process", _KillsItsProcess(deadly), cal.load_impl
    monkeypatch.setattr(cal, "load_impl", lambda spec: impl if spec == name else load(spec))
    monkeypatch.setattr(cal, "VARIANTS", (*cal.VARIANTS, name))
    return name


def test_a_case_that_kills_the_worker_is_an_unexplained_failure_and_the_rest_is_judged(monkeypatch, capsys):
    """The calibration completes: the case that killed its worker is named (index, JSON) and counted
    as an ``error``, and every other case of every job is judged."""
    name = _kills_its_process(monkeypatch, set())
    n, k = 120, 17
    jobs = cal.plan_jobs(name, [("arithmetic", "float64")], n, 2, 0)
    assert len(jobs) == 2  # one dies while the other is judged or done
    deadly = draw(cal.job_suite(jobs[1]), jobs[1].seed)[k]
    cal.load_impl(name).deadly = {deadly.id}
    lines = []
    results = cal.calibrate(name, n, ("float64",), workers=2, seed=0, families=("arithmetic",),
                            progress=lambda *a, **_: lines.append(a))
    t = results[("arithmetic", "float64")]
    assert t.cases == n and t.verdicts["error"] == 1 and t.failures == t.unexplained == 1
    assert t.failures_seen == [f"crash: the worker process died judging case {k} of arithmetic float64 "
                               f"(job seed {jobs[1].seed})\n{dumps(deadly)}"]
    assert lines[-1][0].startswith(f"  {n}/{n} cases")
    assert any(line[0].startswith("  a worker process died: the ") for line in lines), lines  # said, not silent
    assert cli.main(["calibrate", "--impl", name, "--n", str(n), "--dtype", "float64", "--family", "arithmetic"]) == 1
    out = capsys.readouterr().out
    assert f"arithmetic     float64      {n}     1     0" in out
    assert f"{name}: {n} cases, 1 failures (1 unexplained)" in out
    assert f"unexplained failure 1: crash: the worker process died judging case {k} of arithmetic float64" in out


def test_a_job_that_keeps_killing_its_worker_is_lost(monkeypatch, capsys):
    """Past MAX_CRASHES cases the job is lost: the calibration says it is not complete."""
    name = _kills_its_process(monkeypatch, None)
    assert cli.main(["calibrate", "--impl", name, "--n", "40", "--dtype", "float64", "--family", "arithmetic",
                     "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert (f"{name}: not calibrated: a worker process died judging case {cal.MAX_CRASHES} of arithmetic float64 "
            f"(job seed 0), after {cal.MAX_CRASHES} cases that killed it were set aside; the job's 40 cases are "
            f"lost") in err
