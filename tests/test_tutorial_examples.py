"""The seed tutorial's MLP through two more ways in (tools/adapter_matrix.py runs the whole matrix):
as course-assignment layer functions (examples/tutorial_layer_functions.py) and as a standalone
program speaking JSON Lines (examples/tutorial_jsonl.py, numpy and json only) — each conforms."""

from __future__ import annotations

import shlex
import sys

import pytest

from conformance import kinds
from conformance.driver import run_suite
from conformance.impls.loading import resolve


@pytest.mark.parametrize("spec", ["examples/tutorial_layer_functions.py",
                                  f"cmd:{shlex.quote(sys.executable)} examples/tutorial_jsonl.py"])
def test_the_tutorial_mlp_conforms(spec):
    impl = resolve(spec, isolate=None if spec.startswith("cmd:") else False)
    try:
        suites = [(i, s) for i, s in enumerate(kinds.suites(impl.capabilities, 8)) if s.family == "networks"]
        assert {s.name for _, s in suites} >= {"networks float64", "optimizer sgd", "loss mse", "gradients only"}
        for i, suite in suites:
            r = run_suite(impl, suite, i, first_failure_only=True)
            assert r.first_bad is None, (suite.name, r.first_bad[1].reason)
    finally:
        getattr(impl, "close", lambda: None)()
