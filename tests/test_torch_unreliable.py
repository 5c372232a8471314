"""torch 2.13's float16 convolutions, and its bfloat16 conv2d, can segfault on CPU (docs/findings.md):
the oracle never calls them there (``TensorOp.torch_unreliable``) — it runs the case in float32 and rounds
every result to the case's format. Run in a subprocess, so that a regression is a failed test, not a
dead test session."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from conformance.case.dtypes import DTYPES
from conformance.case.graph import GraphCase, Node, Tensor, dumps
from conformance.case.strategies import with_id
from conformance.case.tensor_ops import TENSOR_OPS
from conformance.oracle.run import evaluate, leaf_tensors, refimpl_system, run_torch

#: cases on which torch's own kernel killed the process: found by `conformance calibrate --dtype float16`
#: (seed 2: conv_transpose2d, conv1d, conv2d) and by `conformance calibrate --impl torch --dtype bfloat16`
#: (seed 5, session 15: conv2d's input gradient, dilation 2 over a padded row of 1)
CASES = [
    ("conv_transpose2d", "float16", [(1, 2, 3, 2), (2, 1, 1, 1), (1,)],
     {"stride": [3, 3], "padding": [1, 1], "output_padding": [1, 0], "groups": 1, "dilation": [1, 3]}),
    ("conv1d", "float16", [(1, 3, 1), (6, 1, 1), (6,)], {"stride": 3, "padding": 2, "dilation": 2, "groups": 3}),
    ("conv2d", "float16", [(1, 3, 3, 1), (3, 1, 2, 1), (3,)],
     {"stride": [3, 2], "padding": [1, 1], "dilation": [1, 2], "groups": 3}),
    ("conv2d", "bfloat16", [(1, 4, 1, 5), (4, 4, 2, 3), (4,)],
     {"stride": [1, 1], "padding": [1, 0], "dilation": [2, 2], "groups": 1}),
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


def _case(op: str, dtype: str, shapes: list[tuple[int, ...]], attrs: dict) -> GraphCase:
    """One node over leaves of simple numbers (exact in both formats), the cotangent from the same numbers."""
    values = [0.5, -1.25, 0.75, 1.5, -0.5, 0.25, 2.0, -1.0, 1.25]
    leaves = {f"x{i}": Tensor(s, tuple(values[(i + j) % len(values)] for j in range(math.prod(s))))
              for i, s in enumerate(shapes)}
    probe = GraphCase(leaves, (Node("n0", op, tuple(leaves), attrs),), "n0", Tensor((), (1.0,)), dtype)
    shape = evaluate(probe, leaf_tensors(probe, refimpl_system(probe), requires_grad=False))["n0"].shape
    ct = tuple(values[j % len(values)] for j in range(math.prod(shape)))
    return with_id(GraphCase(leaves, probe.nodes, "n0", Tensor(tuple(shape), ct), dtype))


def test_the_convolutions_torch_unreliable_on_are_declared():
    declared = {dt: {op for op, spec in TENSOR_OPS.items() if dt in spec.torch_unreliable}
                for dt in ("float16", "bfloat16")}
    convolutions = {"conv1d", "conv2d", "conv_transpose2d"}
    assert declared == {"float16": convolutions, "bfloat16": convolutions}


@pytest.mark.parametrize(("op", "dtype", "shapes", "attrs"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_the_oracle_survives_the_cases_torch_crashed_on_and_rounds_float32(op, dtype, shapes, attrs):
    case = _case(op, dtype, shapes, attrs)
    out = subprocess.run([sys.executable, "-c", SCRIPT], input=dumps(case), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, f"{op} {dtype}: the oracle died ({out.returncode}): {out.stderr[-400:]}"
    got = json.loads(out.stdout)
    assert got["value"] == [DTYPES[dtype].cast(x) for x in got["wide"]], op
    assert set(got["grads"]) == set(case.leaves), op


#: torch 2.13's bfloat16 conv1d, conv2d and conv_transpose2d weight gradients at a tap that meets
#: only padding read memory they never wrote: 0 in some runs, anything else (1.23e-16, NaN, −1.06e23)
#: in others (`conformance calibrate --impl torch --dtype bfloat16 --seed 5`, session 15: cases judged
#: differently on two runs). conv1d: x (1, 2, 2), w (4, 1, 4), stride 3, padding 1, groups 2 — tap 3 of
#: every filter meets only the right pad; conv_transpose2d: found the same way, in the convolution family
UNWRITTEN = [
    ("conv1d", "bfloat16", [(1, 2, 2), (4, 1, 4), (4,)], {"stride": 3, "padding": 1, "dilation": 1, "groups": 2}),
    ("conv_transpose2d", "bfloat16", [(1, 1, 3, 1), (1, 2, 2, 3), (2,)],
     {"stride": [1, 3], "padding": [0, 1], "output_padding": [0, 0], "groups": 1, "dilation": [1, 1]}),
]


@pytest.mark.parametrize("spec", UNWRITTEN, ids=[u[0] for u in UNWRITTEN])
def test_the_oracle_gives_the_same_gradient_every_run_where_torch_reads_unwritten_memory(spec):
    import torch

    case = _case(*spec)
    got = set()
    for _ in range(50):
        del [torch.randn(64, 64) for _ in range(3)][:]  # freed memory holding numbers, as in a long run
        r = run_torch(case)
        got.add(repr(sorted((k, t.values) for k, t in r.grads.items())))  # repr: NaN compares equal
    assert len(got) == 1, f"{len(got)} different results in 50 runs: {sorted(got)[:2]}"
