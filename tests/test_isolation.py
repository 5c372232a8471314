"""A misbehaving Python implementation: every misbehaviour is a verdict with a one-line reason, and
the run goes on — in a worker process, where a user's implementation runs by default: hangs (per-case
timeout), crashes (abort, segfault, exit), garbage on stdout, megabytes; in process (``--in-process``)
for what can be judged there, and a crash there names its suite and case before the run dies."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from importlib.metadata import EntryPoint
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
from conformance.impls import loading
from conformance.impls.adapters.jsonl import CommandAdapter
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
    impl = resolve(ADAPTER, isolate=False)
    verdict, reason = IN_PROCESS[mode]
    v = check(impl, TANH)
    assert (v.verdict, v.reason[:len(reason)]) == (verdict, reason), v.reason
    assert "\n" not in v.reason
    assert check(impl, ADD).verdict == "pass"  # and the next case is judged as usual


@pytest.mark.parametrize("mode", list(ISOLATED))
def test_isolated(mode, monkeypatch):
    monkeypatch.setenv("MISBEHAVE", mode)  # the worker inherits the environment
    with resolve(ADAPTER, timeout=2.0 if mode == "hang" else None) as impl:  # a worker: the default
        verdict, reason = ISOLATED[mode]
        assert check(impl, ADD).verdict == "pass"
        v = check(impl, TANH)
        assert (v.verdict, v.reason[:len(reason)]) == (verdict, reason), v.reason
        assert "\n" not in v.reason
        assert check(impl, ADD).verdict == "pass"  # the run goes on, in a fresh worker if it had to
        crashed = mode in ("hang", "abort", "segfault", "exit")
        assert impl.restarts == (1 if crashed else 0)


def test_where_an_implementation_runs_by_default(monkeypatch):
    """A worker for what a user brings (a path, module:attr, micrograd:, another package's entry
    point); this project's own in process; a timeout asks for a worker; --in-process refuses one."""
    theirs = EntryPoint("theirs", "their_package.adapter:Impl", "backprop_conformance.implementations")
    found = {**loading.available(), "theirs": theirs}
    monkeypatch.setattr(loading, "available", lambda: found)
    assert [loading.ours(s) for s in ("refimpl", "torch", "mygrad", "jax", "theirs", ADAPTER, "json:loads",
                                      "micrograd:micrograd")] == [True, True, True, True, False, False, False, False]
    with resolve(ADAPTER) as impl:
        assert isinstance(impl, CommandAdapter) and impl.name == "misbehaving"
    assert not isinstance(resolve("refimpl"), CommandAdapter)
    with resolve("refimpl", timeout=5.0) as impl:
        assert isinstance(impl, CommandAdapter) and impl.timeout == 5.0
    with pytest.raises(LookupError, match="drop --in-process"):
        resolve(ADAPTER, isolate=False, timeout=5.0)


@pytest.mark.parametrize("mode", ["hang", "abort"])
def test_a_whole_run_completes(mode, monkeypatch, capsys, tmp_path):
    """``conformance verify --impl path.py`` with no option about isolation: a crash or a hang is a
    verdict, and the table, the failure, the verdict line and the report are all there."""
    monkeypatch.setenv("MISBEHAVE", mode)
    monkeypatch.setattr(driver, "SHRINK_SECONDS", 3.0)
    timeout = ["--timeout", "1"] if mode == "hang" else []  # the default timeout is 30 s
    code = cli.main(["verify", "--impl", ADAPTER, *timeout, "--max-examples", "3", "--seed", "0",
                     "--report", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    verdict = ISOLATED[mode][0]
    assert "impl=misbehaving 0.1.0 (in its own process)" in out
    assert "FAIL op tanh: minimal case" in out and f"): {verdict}\n" in out
    assert re.search(r"\n  op add +(\d+) cases  pass \1 ", out), out  # its fixed cases and 3 drawn
    assert out.rstrip().splitlines()[-2].startswith("misbehaving DOES NOT CONFORM: ")
    (run_dir,) = tmp_path.glob("*/run.json")
    assert json.loads(run_dir.read_text())["complete"] and (run_dir.parent / "summary.md").exists()


def test_in_process_a_crash_names_its_suite_and_case(tmp_path):
    """``--in-process``: os.abort() in the implementation ends the run (today's behaviour, asked for),
    but stderr says which suite and case were running and how to get a verdict instead, faulthandler
    shows the stack, and the journal's last line is that case's "started" event."""
    env = dict(os.environ, MISBEHAVE="abort", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "conformance", "verify", "--impl", ADAPTER, "--in-process",
                           "--max-examples", "2", "--seed", "0", "--report", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGABRT, proc.stderr
    assert "Fatal Python error: Aborted" in proc.stderr and "in run_graph" in proc.stderr  # faulthandler
    said = re.search(r"conformance: the run ended during suite 'op tanh', case (\S+) \(0 of its cases judged "
                     r"before it\), misbehaving running in this process", proc.stderr)
    assert said, proc.stderr
    assert "rerun without --in-process" in proc.stderr and "--seed 0" in proc.stderr
    (journal,) = tmp_path.glob("*/records/journal.jsonl")
    last = json.loads(journal.read_text().splitlines()[-1])
    assert last == {"event": {"kind": "started", "impl": "misbehaving", "suite": "op tanh", "case": said[1],
                              "judged": 0}}
    assert "(in process)" in proc.stdout and "DOES NOT CONFORM" not in proc.stdout


def test_a_finished_run_says_nothing_more(monkeypatch, capfd):
    """The watcher is silent when the run finishes."""
    monkeypatch.setenv("MISBEHAVE", "ok")
    assert cli.main(["verify", "--impl", ADAPTER, "--in-process", "--max-examples", "1", "--seed", "0"]) == 0
    assert "the run ended" not in capfd.readouterr().err


def test_timeout_in_process_is_bad_usage(capsys):
    assert cli.main(["verify", "--impl", ADAPTER, "--in-process", "--timeout", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "drop --in-process" in err


@pytest.mark.parametrize("argv, message", [
    (["--impl", "no/such/adapter.py"], "no such file"),  # checked before a worker starts
    (["--impl", "no/such/adapter.py", "--isolate"], "no such file"),
    (["--impl", "cmd:true", "--in-process"], "always runs in its own process"),
    (["--impl", "refimpl", "--in-process", "--isolate"], "not allowed with argument"),
    (["--impl", "BROKEN"], "failed to load: RuntimeError: broken at import"),  # the worker's one line
])
def test_bad_usage_exits_2_with_one_line(argv, message, capsys, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('broken at import')\n")
    argv = [str(broken) if a == "BROKEN" else a for a in argv]
    try:
        code = cli.main(["verify", *argv])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


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
    assert set(replies[0]["capabilities"]["networks"]) == {"activations", "output_activations", "losses", "optimizers",
                                                           "bias", "layers", "batch_sizes", "layer_kinds"}
    assert replies[0]["capabilities"]["accumulate"] == {"float16": "float32", "bfloat16": "float32"}
    for r in replies:
        validate(r)
