"""The JSON Lines adapter (``conformance/impls/adapters/jsonl.py``, ``docs/protocol.md``).

* the Node.js example engine (``examples/node/engine.js``) conforms on random graphs and on the
  layer-op suites of the ops it implements (conv2d, max_pool2d) at seeds 0–9, a bug planted in
  those ops is caught at each of them, and every message of its run follows
  ``conformance/schema/jsonl-protocol.schema.json``;
* each misbehaviour of ``tests/fixtures/jsonl_misbehaving.py`` becomes the right one-line error
  (or timeout) for its case, passes through to the verdict when it is about numbers, and the run
  goes on with the next case in a fresh process;
* no process is left behind: not after close(), not after a kill, not at interpreter exit.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource

from conformance import kinds
from conformance.case.graph import GraphCase, Node, Tensor, case_to_json
from conformance.case.strategies import graph_cases, tensor_graph_cases
from conformance.case.tensor_ops import TENSOR_OPS
from conformance.driver import PROFILES, run_suite
from conformance.driver import judge_case as check
from conformance.impls.adapters import jsonl
from conformance.impls.adapters.jsonl import CommandAdapter, StartError, is_timeout
from conformance.oracle.run import run_torch
from conformance.verdict.graph import judge

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "examples" / "node" / "engine.js"
FIXTURE = ROOT / "tests" / "fixtures" / "jsonl_misbehaving.py"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node (Node.js) is not on PATH: the example engine cannot run")
TIMEOUT = 2.0  # per case, for the fixture; short so that the hangs cost little

SCHEMAS = {name: json.loads((files("conformance") / "schema" / f"{name}.schema.json").read_text())
           for name in ("graph-case", "graph-result", "network-case", "network-result", "jsonl-protocol")}
REGISTRY = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in SCHEMAS.values())
PROTOCOL_ID = SCHEMAS["jsonl-protocol"]["$id"]


def validate(message: object, definition: str | None = None) -> None:
    """Against the whole protocol schema (one of its messages), or against one ``$defs`` entry."""
    schema = SCHEMAS["jsonl-protocol"] if definition is None else {"$ref": f"{PROTOCOL_ID}#/$defs/{definition}"}
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(message)


def _state(pid: int) -> str | None:
    """The process's state letter (``Z`` for a zombie), or None when it no longer exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc: all we can tell is whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return "?"
    return stat.rpartition(")")[2].split()[0]


def _dies(pid: int, within: float = 3.0) -> bool:
    """The process is gone or a zombie within ``within`` seconds (SIGKILL takes effect asynchronously)."""
    deadline = time.monotonic() + within
    while _state(pid) not in (None, "Z"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _our_children() -> list[str]:
    """Command lines of this process's children that run the fixture (Linux only)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and FIXTURE.name in cmdline:
            out.append(cmdline)
    return out


@pytest.fixture(autouse=True)
def no_process_left_behind():
    yield
    if Path("/proc/self/stat").exists():
        assert _our_children() == []


def scalar_case(case_id: str) -> GraphCase:
    """tanh(x0 · x1) with a fan-out-free pair of leaves; ``bad…`` ids trigger the fixture."""
    return GraphCase({"x0": Tensor.scalar(0.7), "x1": Tensor.scalar(-1.3)},
                     (Node("n0", "mul", ("x0", "x1")), Node("n1", "tanh", ("n0",))), "n1", Tensor.scalar(1.5),
                     id=case_id)


def fixture_adapter(mode: str, **kw) -> CommandAdapter:
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(FIXTURE))} {mode}"
    return CommandAdapter(command, timeout=kw.pop("timeout", TIMEOUT), start_timeout=kw.pop("start_timeout", 10.0),
                          **kw)


# --- the Node.js example ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def node():
    if NODE is None:
        pytest.skip("node (Node.js) is not on PATH: the example engine cannot run")
    with jsonl.from_spec(f"cmd:{shlex.quote(NODE)} {shlex.quote(str(ENGINE))}", timeout=10.0) as adapter:
        yield adapter


@needs_node
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_node_engine_conforms_on_random_scalar_graphs(node, data):
    case = data.draw(graph_cases(ops=node.capabilities.ops, max_nodes=6))
    v = check(node, case)
    assert v.conforms, f"{v.verdict}: {v.reason}\n{json.dumps(case_to_json(case))}"


@needs_node
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_node_engine_conforms_on_tensor_graphs_with_broadcasting(node, data):
    case = data.draw(tensor_graph_cases(ops=node.capabilities.ops, max_nodes=4))
    v = check(node, case)
    assert v.conforms, f"{v.verdict}: {v.reason}\n{json.dumps(case_to_json(case))}"


@needs_node
def test_node_engine_declares_itself(node):
    assert node.name == "node-micrograd" and node.version
    assert node.capabilities.ops == {"add", "sub", "mul", "div", "neg", "pow_int", "relu", "tanh", "exp", "log",
                                     "sigmoid", "conv2d", "max_pool2d"}
    assert node.capabilities.dtypes == ("float64",) and not node.capabilities.second_order


SEEDS = range(10)


def _layer_suites(caps: Any) -> list[tuple[int, Any]]:
    """The layer-op suites verify gives the engine, with their index (verify seeds suite i with seed + i)."""
    suites = enumerate(kinds.suites(caps, PROFILES["ci"]))
    return [(i, s) for i, s in suites if s.name.removeprefix("op ") in TENSOR_OPS]


@needs_node
def test_node_engine_conforms_on_its_layer_ops(node):
    """conv2d and max_pool2d composed from its scalar ops (a layer op over JSON Lines: tensors and
    list-valued attributes), on the op suites verify runs — their fixed hostile corners (groups,
    stride ≠ dilation, ties in overlapping windows, ceil_mode's dropped last window) included — at
    seeds 0–9."""
    suites = _layer_suites(node.capabilities)
    assert [s.name for _, s in suites] == ["op conv2d", "op max_pool2d"]
    for seed in SEEDS:
        for i, suite in suites:
            r = run_suite(node, suite, seed + i, shrink=False)
            assert r.first_bad is None, f"{suite.name} seed {seed}: {r.first_bad[1].verdict}: {r.first_bad[1].reason}"


#: one-line bugs a JavaScript author could write in the engine's layer ops: (find, replace with)
NODE_LAYER_BUGS = {
    "conv-stride-dilation-swapped": ("const ih = oh * s0 - p0 + kh * d0; // the input row of tap kh",
                                     "const ih = oh * d0 - p0 + kh * s0; // the input row of tap kh"),
    "conv-groups-ignored": ("group * Cg + c, ih, iw)", "c, ih, iw)"),
    "pool-ceil-keeps-last-window": ("if (ceil && (out - 1) * s >= size + p) out -= 1;", ""),
}


@needs_node
@pytest.mark.parametrize("bug", sorted(NODE_LAYER_BUGS))
def test_a_planted_bug_in_the_node_layer_ops_is_caught_at_every_seed(bug, tmp_path):
    find, planted = NODE_LAYER_BUGS[bug]
    source = ENGINE.read_text()
    assert source.count(find) == 1, f"the line to plant {bug} in is gone from engine.js"
    buggy = tmp_path / "engine.js"
    buggy.write_text(source.replace(find, planted))
    with jsonl.from_spec(f"cmd:{shlex.quote(NODE)} {shlex.quote(str(buggy))}", timeout=10.0) as impl:
        suites = _layer_suites(impl.capabilities)
        for seed in SEEDS:
            first = next((r.first_bad[1] for i, s in suites
                          if (r := run_suite(impl, s, seed + i, shrink=False, first_failure_only=True)).first_bad),
                         None)
            assert first is not None, f"{bug} survives the layer-op suites at seed {seed}"
            assert first.verdict in ("fail", "error"), first.reason


@needs_node
def test_node_engine_round_trips_nonfinite_numbers_and_signed_zero(node):
    def run(op, *xs):
        case = GraphCase({f"x{i}": Tensor.scalar(x) for i, x in enumerate(xs)},
                         (Node("n0", op, tuple(f"x{i}" for i in range(len(xs)))),), "n0", Tensor.scalar(1.5))
        got, want = node.run_graph(case), run_torch(case)
        assert got.error is None, got.error
        for a, b in [(got.value.values[0], want.value.values[0]),
                     *((got.grads[k].values[0], want.grads[k].values[0]) for k in case.leaves)]:
            assert (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b)), \
                (op, xs, got, want)

    run("exp", 1000.0)               # value inf, gradient inf
    run("neg", 0.0)                  # value -0.0
    run("add", math.inf, 1.0)        # an infinite leaf, sent as "inf"
    run("mul", math.nan, 2.0)        # NaN in, NaN out
    run("relu", -0.0)                # relu(-0) is -0, gradient 0 (the kink convention)
    run("mul", 5e-324, 0.5)          # subnormals survive the text round trip


@needs_node
def test_node_engine_answers_unsupported_cases_with_an_error_result(node):
    case = scalar_case("float32-case")
    f32 = GraphCase(case.leaves, case.nodes, case.output, case.cotangent, "float32", id="f32")
    assert node.run_graph(f32).error == "dtype float32 is not supported (float64 only)"
    sin = GraphCase({"x": Tensor.scalar(1.0)}, (Node("n0", "sin", ("x",)),), "n0", Tensor.scalar(1.0), id="sin")
    assert node.run_graph(sin).error == 'unsupported op "sin"'
    assert node.run_graph(scalar_case("after")).error is None  # errors as results: the same process goes on
    assert node.restarts == 0


@needs_node
def test_the_traffic_with_the_node_engine_follows_the_protocol_schema():
    sent, received = [], []

    def transcript(direction, line):
        (sent if direction == "sent" else received).append(json.loads(line))

    with CommandAdapter([NODE, str(ENGINE)], transcript=transcript) as adapter:
        for case in (scalar_case("g-1"), GraphCase({"x": Tensor.scalar(1.0)}, (Node("n0", "sin", ("x",)),), "n0",
                                                   Tensor.scalar(1.0), id="g-2")):
            adapter.run_graph(case)
        pid = adapter.pid
    assert _state(pid) is None
    assert [m["type"] for m in sent] == ["hello", "case", "case", "bye"]
    assert [m["type"] for m in received] == ["hello", "result", "result"]
    validate(sent[0], "hello")
    validate(received[0], "hello-reply")
    for m in sent[1:3]:
        validate(m, "case")
    for m in received[1:]:
        validate(m, "result")
    validate(sent[3], "bye")
    for m in sent + received:
        validate(m)
    assert received[2]["result"]["error"] == 'unsupported op "sin"'


def test_the_schema_rejects_what_the_adapter_rejects():
    ok = {"type": "hello", "protocol": 1, "name": "x", "version": "1", "capabilities": {"ops": ["add"]}}
    validate(ok, "hello-reply")
    for bad in ({**ok, "protocol": 2}, {**ok, "name": ""}, {**ok, "capabilities": {"dtypes": ["float64"]}},
                {**ok, "capabilities": {"ops": ["add"], "dtypes": ["float8"]}}):
        with pytest.raises(jsonschema.ValidationError):
            validate(bad, "hello-reply")
    result = {"format": "backprop-conformance/graph-result", "version": 1, "error": "boom", "grads": {}}
    validate({"type": "result", "id": "c", "result": result}, "result")
    for bad in ({"type": "result", "result": {**result, "format": "x"}},
                {"type": "result", "result": result, "extra": 1},
                {"type": "result", "result": {**result, "grads": {"x": {"shape": [], "values": ["NaN"]}}}}):
        with pytest.raises(jsonschema.ValidationError):
            validate(bad, "result")


# --- misbehaviour: each becomes an error for its case, and the run goes on -----------------------

# mode → (what the bad case's error says, whether the process is replaced)
ERRORS = {
    "abort": (r"^crash: the process was killed by SIGABRT \(signal 6\) before answering$", True),
    "segfault": (r"^crash: the process was killed by SIGSEGV \(signal 11\) before answering$", True),
    "exit": (r"^crash: the process exited with code 3 before answering; stderr: fatal: giving up on this case$",
             True),
    "hang": (r"^timeout: no answer within 2s \(process killed\); stderr: thinking very hard$", True),
    "garbage": (r"^protocol error: stdout line is not JSON: 'Computing gradients\.\.\. done!'$", True),
    "huge": (r"^protocol error: answer line longer than 16777216 bytes \(16 MiB\); process killed$", True),
    "wrong-type": (r"^protocol error: expected a result message, got type 'hello'", True),
    "wrong-id": (r"^protocol error: the result is for case 'some-other-case', not 'bad-1'$", True),
    "bare-nan": (r'^malformed result: bare NaN is not JSON; write the strings "nan", "inf", "-inf"$', False),
    "malformed": (r"^malformed result: grads\[x0\]: shape \[3\] needs 3 values, got 1$", False),
}


@pytest.mark.parametrize("mode", sorted(ERRORS))
def test_a_misbehaving_case_is_a_one_line_error_and_the_run_goes_on(mode):
    pattern, restarts = ERRORS[mode]
    with fixture_adapter(mode) as adapter:
        assert check(adapter, scalar_case("good-1")).verdict == "pass"
        first = adapter.pid
        t0 = time.monotonic()
        result = adapter.run_graph(scalar_case("bad-1"))
        assert time.monotonic() - t0 < TIMEOUT + 3
        assert result.error is not None and "\n" not in result.error
        assert re.search(pattern, result.error), result.error
        assert is_timeout(result) == (mode == "hang")
        v = judge(scalar_case("bad-1"), result, run_torch(scalar_case("bad-1")))
        assert v.verdict == ("timeout" if mode == "hang" else "error") and v.reason == result.error
        # the next case runs, in a fresh process when the stream could not be trusted any more
        assert check(adapter, scalar_case("good-2")).verdict == "pass"
        assert (adapter.pid != first) == restarts
        assert adapter.restarts == (1 if restarts else 0)
        pids = list(adapter.pids)
    assert all(_state(pid) is None for pid in pids)  # killed and reaped: no zombie


@pytest.mark.parametrize("mode, verdict, reason", [
    ("nan", "nonfinite-mismatch", "grad[x0]: implementation nan"),
    ("missing", "error", "result is missing grad[x0]"),
    ("null-grad", "error", "result is missing grad[x0]"),
    ("wrong-shape", "error", "grad[x0] has shape (2,), expected ()"),
])
def test_wrong_numbers_pass_through_to_the_verdict(mode, verdict, reason):
    with fixture_adapter(mode) as adapter:
        r = adapter.run_graph(scalar_case("bad-1"))
        assert r.error is None
        v = check(adapter, scalar_case("bad-1"))
        assert v.verdict == verdict and v.reason.startswith(reason), v.reason
        assert check(adapter, scalar_case("good-1")).verdict == "pass"
        assert adapter.restarts == 0


def test_a_null_gradient_is_a_missing_entry():
    doc = {"format": "backprop-conformance/graph-result", "version": 1, "error": None,
           "value": {"shape": [], "values": [1.0]}, "grads": {"x0": None, "x1": {"shape": [], "values": ["-inf"]}},
           "hvp": {"x0": None}}
    r = jsonl.result_document(doc)
    assert r.grads == {"x1": Tensor((), (-math.inf,))} and r.hvp == {}


def test_a_timeout_kills_the_whole_process_group():
    with fixture_adapter("hang-grandchild") as adapter:
        result = adapter.run_graph(scalar_case("bad-1"))
        assert is_timeout(result), result.error
        grandchild = int(re.search(r"grandchild (\d+)", result.error).group(1))
        assert _dies(grandchild)  # killed (a zombie only until its new parent reaps it)
        assert check(adapter, scalar_case("good-1")).verdict == "pass"


def test_unsolicited_output_is_charged_to_the_next_case_and_the_process_replaced():
    with fixture_adapter("unsolicited") as adapter:
        assert adapter.run_graph(scalar_case("bad-1")).error is None  # its answer was right…
        time.sleep(0.3)  # …and the extra line has arrived
        error = adapter.run_graph(scalar_case("good-1")).error
        assert error.startswith("protocol error: unsolicited output after the answer to case bad-1 and before "
                                "this case was sent: "), error
        assert adapter.restarts == 0
        assert check(adapter, scalar_case("good-2")).verdict == "pass"
        assert adapter.restarts == 1


def test_stderr_is_drained_and_never_parsed():
    with fixture_adapter("stderr-flood") as adapter:  # 1 MB of stderr per case: a full pipe would hang it
        for i in range(4):
            assert check(adapter, scalar_case(f"good-{i}")).verdict == "pass"
        assert adapter.restarts == 0


def test_a_restart_that_fails_is_reported_and_given_up_after_three_attempts():
    with fixture_adapter("abort") as adapter:
        assert adapter.run_graph(scalar_case("bad-1")).error.startswith("crash:")
        adapter.argv = ["/nonexistent/engine"]
        for _ in range(3):
            assert adapter.run_graph(scalar_case("good-1")).error == \
                "restart failed: cannot start '/nonexistent/engine': No such file or directory"
        assert adapter.run_graph(scalar_case("good-1")).error.endswith("(3 attempts; not retried)")


# --- start-up ---------------------------------------------------------------------------------------

def test_a_wrong_protocol_version_is_refused_at_the_handshake():
    with pytest.raises(StartError, match=r"speaks protocol 2; this harness speaks 1$"):
        fixture_adapter("wrong-protocol")


def test_a_missing_hello_times_out_with_a_clear_error():
    with pytest.raises(StartError, match=r"^timeout: .* did not answer the hello within 1s$"):
        fixture_adapter("no-hello", start_timeout=1.0)


@pytest.mark.parametrize("command, message", [
    ("/nonexistent/engine --flag", r"^cannot start '/nonexistent/engine --flag': No such file or directory$"),
    (f"{shlex.quote(sys.executable)} -c pass", r"exited with code 0 before answering the hello$"),
    (f"{shlex.quote(sys.executable)} -c \"print('ready')\"",
     r"answered the hello with a line that is not JSON: 'ready'"),
    ("", r"^empty command line$"),
    ("node 'engine.js", r"^cannot split the command line .*: No closing quotation$"),
])
def test_a_command_that_cannot_start_is_a_one_line_start_error(command, message):
    with pytest.raises(StartError, match=message) as info:
        CommandAdapter(command, start_timeout=10.0)
    assert "\n" not in str(info.value)


def test_from_spec_needs_the_cmd_prefix():
    with pytest.raises(ValueError, match="cmd:<command line>"):
        jsonl.from_spec("node engine.js")


# --- closing ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["ok", "linger"])
def test_close_says_bye_and_reaps_the_process(mode):
    adapter = fixture_adapter(mode)
    pid = adapter.pid
    t0 = time.monotonic()
    adapter.close(grace=0.5)  # "ok" exits at bye; "linger" ignores it and is killed after the grace
    assert time.monotonic() - t0 < (0.4 if mode == "ok" else 2.0)
    assert _state(pid) is None and adapter.pid is None
    with pytest.raises(RuntimeError, match="is closed"):
        adapter.run_graph(scalar_case("good-1"))
    adapter.close()  # twice is fine


def test_no_process_outlives_the_interpreter_or_a_forgotten_adapter():
    script = textwrap.dedent(f"""
        import gc, sys
        from conformance.impls.adapters.jsonl import CommandAdapter
        fixture = {str(FIXTURE)!r}
        forgotten = CommandAdapter([sys.executable, fixture, "linger"])
        pid = forgotten.pid
        del forgotten
        gc.collect()
        print(pid)                      # killed by its finalizer already
        kept = CommandAdapter([sys.executable, fixture, "linger"])
        print(kept.pid)                 # never closed: killed at interpreter exit
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    pids = [int(line) for line in out.stdout.split()]
    assert len(pids) == 2
    assert [_state(pid) for pid in pids] == [None, None]  # "linger" would have outlived its parent
