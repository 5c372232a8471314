"""A failure tells a person everything: the entry, the numbers, the tolerance, the case, a script."""

import dataclasses
import json
import re
import subprocess
import sys

import pytest

from conformance.assertions import assert_conforms
from conformance.case.graph import GraphCase, Node, Tensor, loads
from conformance.impls import RefImpl
from refimpl import OPS

CASE = GraphCase({"x": Tensor((2,), (0.3, -1.2)), "w": Tensor((2, 3), (0.5, -0.25, 1.5, 2.0, 0.75, -1.0))},
                 (Node("n0", "tanh", ("x",)), Node("n1", "matmul", ("n0", "w")),
                  Node("n2", "sum", ("n1",), {"dim": 0, "keepdim": False})),
                 "n2", Tensor((), (1.7,)), "float64", id="g-example")


def failure_message(monkeypatch) -> str:
    wrong = lambda m, x, out: (1 - out,)  # tanh' = 1 − t
    monkeypatch.setitem(OPS, "tanh", dataclasses.replace(OPS["tanh"], derivative=wrong))
    with pytest.raises(pytest.fail.Exception) as failed:
        assert_conforms(RefImpl(), CASE)
    return str(failed.value)


def test_message_names_the_entry_the_numbers_and_the_tolerance(monkeypatch):
    msg = failure_message(monkeypatch)
    assert "does not conform on case g-example" in msg and ": fail" in msg
    line = next(ln for ln in msg.splitlines() if "grad[x]" in ln)
    for word in ("implementation", "torch", "truth", "tolerance", "error/tolerance"):
        assert word in line, line


def test_message_carries_the_case_as_json(monkeypatch):
    msg = failure_message(monkeypatch)
    text = msg[msg.index("case JSON:") + len("case JSON:"):msg.index("reproduce with torch:")]
    assert loads(text.strip()) == CASE


def test_repro_script_runs_standalone_and_prints_torchs_numbers(monkeypatch, tmp_path):
    msg = failure_message(monkeypatch)
    script = msg[msg.index("reproduce with torch:") + len("reproduce with torch:"):].strip()
    path = tmp_path / "repro.py"
    path.write_text(script)
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, check=True, cwd=tmp_path)
    grads = {m[0]: json.loads(m[1]) for m in re.findall(r"^grad (\w+) (.*)$", out.stdout, re.M)}
    torch_in_msg = [float(v) for v in re.findall(r"grad\[x\]\[0\]: implementation \S+, torch (\S+?),", msg)]
    assert grads["x"][0] == torch_in_msg[0]
