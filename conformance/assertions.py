"""Assertion helpers: run a case, judge it, and fail with everything a person needs to reproduce."""

from __future__ import annotations

import pytest

from .cases import GraphCase, dumps
from .impls import Implementation, run_safely
from .records import judged
from .repro import torch_script
from .run import run_torch
from .verdict import CaseVerdict, judge

TRUTH = "arbitrate"  # or "always": set by the pytest plugin (--truth; always in the nightly profile)


def check(impl: Implementation, case: GraphCase) -> CaseVerdict:
    return judge(case, run_safely(impl, case), run_torch(case), always_truth=TRUTH == "always")


def assert_conforms(impl: Implementation, case: GraphCase) -> CaseVerdict:
    """Fail unless the case's verdict is pass, convention or torch-deviates."""
    __tracebackhide__ = True
    v = judged(check, impl, case)  # check(impl, case), recorded under pytest --report
    if not v.conforms:
        pytest.fail(f"{impl.name} does not conform on case {case.id} ({len(case.nodes)} nodes, "
                    f"{case.dtype}): {v.verdict}\n  {v.reason}\n"
                    f"case JSON:\n{dumps(case)}\nreproduce with torch:\n{torch_script(case)}",
                    pytrace=False)
    return v
