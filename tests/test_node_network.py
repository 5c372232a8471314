"""Training runs in another language: the Node.js example engine's network extension
(``examples/node/engine.js``, ``docs/protocol.md`` "Extension: training runs").

* its hello declares exactly the grain it implements (activations, losses with their reductions
  and attributes, SGD with every hyperparameter, gradients-only runs, bias, sizes);
* its training runs conform on drawn cases of every network suite it gets, and every line it
  exchanges follows the protocol schema (network-case and network-result payloads);
* a one-line bug planted in a copy of its network code (the bias gradient averaged over the batch,
  MSE's derivative without its factor 2) is charged: the suite's drawing finds a ``fail``, with the
  diagnosis that names the bug, on a case the unpatched engine gets right.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections import Counter
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from conformance import kinds
from conformance.case.network import OPTIMIZER_HYPER
from conformance.driver import draw, judge_case, run_suite
from conformance.impls.adapters.jsonl import CommandAdapter
from conformance.verdict.diagnosis import diagnose

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "examples" / "node" / "engine.js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node (Node.js) is not on PATH: the example engine cannot run")
EXAMPLES = 8  # cases per suite as the profiles count them: 2-3 runs per network suite


def engine(path: Path) -> CommandAdapter:
    return CommandAdapter(f"{shlex.quote(NODE or 'node')} {shlex.quote(str(path))}", timeout=30.0)


def network_suites(caps):
    """The network suites (training runs, gradients only) with their index, which is their seed
    offset in ``conformance verify``."""
    return [(i, s) for i, s in enumerate(kinds.suites(caps, EXAMPLES)) if s.family == "networks"]


@pytest.fixture(scope="module")
def node():
    with engine(ENGINE) as adapter:
        yield adapter


def test_the_hello_declares_what_the_engine_implements(node):
    caps = node.capabilities
    assert caps.networks and caps.dtypes == ("float64",)
    acts = {"identity", "relu", "leaky_relu", "sigmoid", "tanh"}
    assert caps.activations == acts and caps.output_activations == acts
    reductions = {"mean", "sum", "none"}
    assert dict(caps.losses) == {"mse": reductions, "l1": reductions,
                                 "bce_with_logits": reductions | {"weight", "pos_weight"}}
    assert dict(caps.optimizers) == {"sgd": set(OPTIMIZER_HYPER["sgd"]), "none": set()}
    assert caps.bias == {True, False} and caps.layers == (1, 4) and caps.batch_sizes == (1, 16)


def test_its_training_runs_conform(node):
    judged = Counter()
    for i, suite in network_suites(node.capabilities):
        for case in draw(suite, i):
            v = judge_case(node, case)
            assert v.conforms, f"{suite.name}: {v.verdict}: {v.reason}\n{case.summary()}"
            judged[case.optimizer] += 1
    assert judged["sgd"] >= 10 and judged["none"] >= 3 and node.restarts == 0  # gradients-only runs too


def test_an_unsupported_case_is_an_error_result_and_the_engine_goes_on(node):
    _, suite = network_suites(node.capabilities)[0]
    case = draw(suite, 0)[0]
    other = replace(case, loss="smooth_l1", loss_attrs={"beta": 1.0}, id="n-unsupported")
    assert node.run_network(other).error == 'unsupported loss "smooth_l1"'
    assert judge_case(node, case).conforms and node.restarts == 0


def test_its_network_traffic_follows_the_protocol_schema(node):
    """Every line exchanged over two runs and an unsupported case validates against
    jsonl-protocol.schema.json, whose payloads are the network-case and network-result schemas."""
    schemas = {name: json.loads((files("conformance") / "schema" / f"{name}.schema.json").read_text())
               for name in ("graph-case", "graph-result", "network-case", "network-result", "jsonl-protocol")}
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    validator = jsonschema.Draft202012Validator(schemas["jsonl-protocol"], registry=registry)
    lines = []
    suites = {s.name: (i, s) for i, s in network_suites(node.capabilities)}
    cases = [draw(suite, i)[-1] for i, suite in (suites["optimizer sgd"], suites["gradients only"])]
    cases.append(replace(cases[0], loss="huber", loss_attrs={"delta": 1.0}, id="n-huber"))
    with CommandAdapter(node.argv, transcript=lambda direction, line: lines.append(json.loads(line))) as impl:
        results = [impl.run_network(case) for case in cases]
    assert [r.error for r in results] == [None, None, 'unsupported loss "huber"']
    assert [m["type"] for m in lines] == ["hello", "hello", *["case", "result"] * 3, "bye"]
    for m in lines:
        validator.validate(m)
    sgd, grads_only, _ = [m["result"] for m in lines if m["type"] == "result"]
    assert len(sgd["steps"]) == cases[0].steps and set(sgd["steps"][0]["params"]) == set(cases[0].param_names)
    assert len(grads_only["steps"]) == 1 and grads_only["steps"][0]["params"] == {}
    assert set(grads_only["steps"][0]["grads"]) == set(cases[1].param_names)


# One line of the network code and the bug it becomes; the suite that reaches it (the bias bug needs a
# batch of 2 or more and a layer with bias: not the suite's first, minimal run), and the diagnosis
# the verdict must name (conformance/verdict/diagnosis.py).
PLANTED = {
    "bias gradient averaged over the batch": (
        "dB[o] += delta[b][o];", "dB[o] += delta[b][o] / delta.length;", "networks float64",
        "(= 1/batch, batch {batch}): averaged over the batch where the loss sums?"),
    "mse without its factor 2": (
        "grad: (o, y) => 2 * (o - y) }", "grad: (o, y) => (o - y) }", "loss mse",
        "= torch's × 1/2: a factor 2 missing"),
}


@pytest.mark.parametrize("bug", PLANTED)
def test_a_planted_bug_in_the_backward_is_charged(node, tmp_path, bug):
    line, planted, suite_name, diagnosis = PLANTED[bug]
    source = ENGINE.read_text()
    assert source.count(line) == 1, f"the line to patch is no longer in engine.js: {line}"
    buggy = tmp_path / "engine.js"
    buggy.write_text(source.replace(line, planted))
    with engine(buggy) as impl:
        i, suite = next((i, s) for i, s in network_suites(impl.capabilities) if s.name == suite_name)
        result = run_suite(impl, suite, i, first_failure_only=True, shrink=False)
    assert result.first_bad is not None, f"{bug}: not caught in {result.verdicts}"
    _, v = result.first_bad
    assert v.verdict == "fail" and not v.conforms, (v.verdict, v.reason)
    want = diagnosis.format(batch=v.case.batches[0].x.shape[0])
    assert any(want in d for d in diagnose(v)), (want, diagnose(v))
    # the case that caught it is one the unpatched engine gets right: what was charged is the bug
    assert judge_case(node, v.case).conforms
