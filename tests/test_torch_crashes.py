"""torch 2.13's float16 convolutions can segfault on CPU (docs/findings.md): the oracle never calls
them there (``TensorOp.torch_crashes``) — it runs the case in float32 and rounds every result to
float16. Run in a subprocess, so that a regression is a failed test, not a dead test session."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from conformance.case.dtypes import DTYPES
from conformance.case.graph import GraphCase, Node, Tensor, dumps
from conformance.case.strategies import with_id
from conformance.case.tensor_ops import TENSOR_OPS
from conformance.oracle.run import evaluate, leaf_tensors, refimpl_system

#: cases found by `conformance calibrate --dtype float16` (seed 2) on which torch's own float16 kernel
#: killed the process: conv_transpose2d (stride 3, padding 1, dilation (1, 3)), conv1d, conv2d
CASES = [
    ("conv_transpose2d", [(1, 2, 3, 2), (2, 1, 1, 1), (1,)],
     {"stride": [3, 3], "padding": [1, 1], "output_padding": [1, 0], "groups": 1, "dilation": [1, 3]}),
    ("conv1d", [(1, 3, 1), (6, 1, 1), (6,)], {"stride": 3, "padding": 2, "dilation": 2, "groups": 3}),
    ("conv2d", [(1, 3, 3, 1), (3, 1, 2, 1), (3,)],
     {"stride": [3, 2], "padding": [1, 1], "dilation": [1, 2], "groups": 3}),
]

SCRIPT = """
import json, sys
from conformance.case.graph import loads
from conformance.oracle.run import run_torch
case = loads(sys.stdin.read())
r, wide = run_torch(case), run_torch(case, "float32")
print(json.dumps({"value": list(r.value.values), "wide": list(wide.value.values),
                  "grads": {k: list(t.values) for k, t in r.grads.items()}}))
"""


def _case(op: str, shapes: list[tuple[int, ...]], attrs: dict) -> GraphCase:
    """One float16 node over leaves of simple float16 numbers, the cotangent from the same numbers."""
    values = [0.5, -1.25, 0.75, 1.5, -0.5, 0.25, 2.0, -1.0, 1.25]
    leaves = {f"x{i}": Tensor(s, tuple(values[(i + j) % len(values)] for j in range(math.prod(s))))
              for i, s in enumerate(shapes)}
    probe = GraphCase(leaves, (Node("n0", op, tuple(leaves), attrs),), "n0", Tensor((), (1.0,)), "float16")
    shape = evaluate(probe, leaf_tensors(probe, refimpl_system(probe), requires_grad=False))["n0"].shape
    ct = tuple(values[j % len(values)] for j in range(math.prod(shape)))
    return with_id(GraphCase(leaves, probe.nodes, "n0", Tensor(tuple(shape), ct), "float16"))


def test_the_convolutions_torch_crashes_on_are_declared():
    assert {op for op, spec in TENSOR_OPS.items() if "float16" in spec.torch_crashes} == \
        {"conv1d", "conv2d", "conv_transpose2d"}


def test_the_oracle_survives_the_cases_torch_crashed_on_and_rounds_float32():
    cast = DTYPES["float16"].cast
    for op, shapes, attrs in CASES:
        case = _case(op, shapes, attrs)
        out = subprocess.run([sys.executable, "-c", SCRIPT], input=dumps(case), capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, f"{op}: the oracle died ({out.returncode}): {out.stderr[-400:]}"
        got = json.loads(out.stdout)
        assert got["value"] == [cast(x) for x in got["wide"]], op
        assert set(got["grads"]) == set(case.leaves), op
