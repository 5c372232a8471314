"""A misbehaving Python implementation: every misbehaviour is a verdict with a one-line reason, and
the run goes on — in process where that is possible, in a worker process (``--isolate``) for the
rest: hangs (per-case timeout), crashes (abort, segfault, exit), garbage on stdout, megabytes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from test_adapter_jsonl import validate  # the protocol schema, with the case and result schemas

from conformance import driver
from conformance.case.graph import GraphCase, Node, Tensor
from conformance.case.graph import case_to_json as graph_case_json
from conformance.case.netstrategies import network_cases
from conformance.case.network import case_to_json as network_case_json
from conformance.case.network import result_to_json
from conformance.case.strategies import with_id
from conformance.commands import cli
from conformance.driver import judge_case as check
from conformance.impls.loading import resolve
from conformance.oracle.netrun import run_refimpl_network

ADAPTER = str(Path(__file__).parent / "fixtures" / "misbehaving_adapter.py")
ROOT = Path(__file__).resolve().parents[1]


def _case(op: str) -> GraphCase:
    return with_id(GraphCase(leaves={"x0": Tensor.scalar(0.25), "x1": Tensor.scalar(-1.5)},
                             nodes=(Node("n0", op, ("x0", "x1") if op == "add" else ("x0",)),),
                             output="n0", cotangent=Tensor.scalar(1.0)))


TANH, ADD = _case("tanh"), _case("add")

# mode → (verdict, start of the reason) for the tanh case; None: the mode needs a worker process
IN_PROCESS = {
    "ok": ("pass", ""),
    "raise": ("error", "ValueError: this engine has no tanh yet"),
    "nan": ("nonfinite-mismatch", ""),
    "wrong-shape": ("error", "grad[x0] has shape (2, 3), expected ()"),
    "none-grad": ("error", "result is missing grad[x0]"),
    "wrong-type": ("error", "unusable result: "),
    "garbage": ("pass", ""),
    "huge": ("error", "grad[x0] has shape (2000000,), expected ()"),
}
ISOLATED = {
    **IN_PROCESS,
    "hang": ("timeout", "timeout: no answer within 2s (process killed)"),
    "abort": ("error", "crash: the process was killed by SIGABRT"),
    "segfault": ("error", "crash: the process was killed by SIGSEGV"),
    "exit": ("error", "crash: the process exited with code 3"),
}


@pytest.mark.parametrize("mode", list(IN_PROCESS))
def test_in_process(mode, monkeypatch):
    monkeypatch.setenv("MISBEHAVE", mode)
    impl = resolve(ADAPTER)
    verdict, reason = IN_PROCESS[mode]
    v = check(impl, TANH)
    assert (v.verdict, v.reason[:len(reason)]) == (verdict, reason), v.reason
    assert "\n" not in v.reason
    assert check(impl, ADD).verdict == "pass"  # and the next case is judged as usual


@pytest.mark.parametrize("mode", list(ISOLATED))
def test_isolated(mode, monkeypatch):
    monkeypatch.setenv("MISBEHAVE", mode)  # the worker inherits the environment
    with resolve(ADAPTER, isolate=True, timeout=2.0 if mode == "hang" else 60.0) as impl:
        verdict, reason = ISOLATED[mode]
        assert check(impl, ADD).verdict == "pass"
        v = check(impl, TANH)
        assert (v.verdict, v.reason[:len(reason)]) == (verdict, reason), v.reason
        assert "\n" not in v.reason
        assert check(impl, ADD).verdict == "pass"  # the run goes on, in a fresh worker if it had to
        crashed = mode in ("hang", "abort", "segfault", "exit")
        assert impl.restarts == (1 if crashed else 0)


@pytest.mark.parametrize("mode", ["hang", "abort"])
def test_a_whole_run_completes(mode, monkeypatch, capsys):
    """``conformance verify --isolate``: the table, the failure and the verdict line are printed."""
    monkeypatch.setenv("MISBEHAVE", mode)
    monkeypatch.setattr(driver, "SHRINK_SECONDS", 3.0)
    code = cli.main(["verify", "--impl", ADAPTER, "--isolate", "--timeout", "1", "--max-examples", "3",
                     "--seed", "0"])
    out = capsys.readouterr().out
    assert code == 1
    verdict = ISOLATED[mode][0]
    assert "FAIL op tanh: minimal case" in out and f"): {verdict}\n" in out
    assert "  op add                     3 cases  pass 3" in out
    assert out.rstrip().splitlines()[-1].startswith("misbehaving DOES NOT CONFORM: ")


def test_timeout_needs_a_process_of_its_own(capsys):
    assert cli.main(["verify", "--impl", ADAPTER, "--timeout", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "add --isolate" in err


def test_unknown_implementation_in_a_worker_is_bad_usage(capsys):
    assert cli.main(["verify", "--impl", "no/such/adapter.py", "--isolate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such file" in err


@settings(max_examples=3, deadline=None)
@given(case=network_cases("float64"))
def test_training_runs_through_a_worker(case):
    """The protocol's networks extension: a network case gives the same result in a worker."""
    with resolve("refimpl", isolate=True) as impl:
        assert impl.capabilities.networks
        got = impl.run_network(case)
    assert result_to_json(got) == result_to_json(run_refimpl_network(case))


def test_the_worker_does_not_import_torch():
    """A worker serves the implementation only; without torch it starts in a fraction of the time."""
    code = ("import sys, conformance.commands.serve, conformance.impls.loading, conformance.verdict.graph; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


@settings(max_examples=1, deadline=None)
@given(net=network_cases("float64"))
def test_worker_messages_follow_the_protocol_schema(net):
    """What ``conformance.commands.serve`` writes — hello with the networks extension, a graph result, a
    network result — validates against conformance/schema/jsonl-protocol.schema.json."""
    lines = [{"type": "hello", "protocol": 1}, {"type": "case", "case": graph_case_json(ADD)},
             {"type": "case", "case": network_case_json(net)}, {"type": "bye"}]
    for msg in lines:
        validate(msg)
    out = subprocess.run([sys.executable, "-m", "conformance.commands.serve", "refimpl"], cwd=ROOT, text=True,
                         input="".join(json.dumps(m) + "\n" for m in lines), capture_output=True, timeout=120)
    replies = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["type"] for r in replies] == ["hello", "result", "result"] and out.returncode == 0, out.stderr
    assert set(replies[0]["capabilities"]["networks"]) == {"activations", "losses", "optimizers"}
    for r in replies:
        validate(r)
