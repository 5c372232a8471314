"""The assertion of a pytest test: judge a case and fail with everything a person needs to reproduce."""

from __future__ import annotations

import pytest

from . import kinds
from .driver import judge_case
from .records import judged
from .verdict import CaseVerdict

TRUTH = "arbitrate"  # or "always": set by the pytest plugin (--conformance-truth; always in the nightly profile)


def assert_conforms(impl: object, case: object, *, always_truth: bool | None = None) -> CaseVerdict:
    """Fail unless the case's verdict is pass, convention or torch-deviates (``always_truth``: by
    default the plugin's :data:`TRUTH`)."""
    __tracebackhide__ = True
    always = TRUTH == "always" if always_truth is None else always_truth
    # judge_case(impl, case), recorded when pytest runs with --conformance-report
    v = judged(lambda i, c: judge_case(i, c, always_truth=always), impl, case)
    if not v.conforms:
        pytest.fail(failure_message(impl, v), pytrace=False)
    return v


def failure_message(impl: object, v: CaseVerdict) -> str:
    k = kinds.of(v.case)
    return (f"{getattr(impl, 'name', impl)} does not conform on case {v.case.id} ({k.size(v.case)}, "
            f"{v.case.dtype}): {v.verdict}\n  {v.reason}\n"
            f"case JSON:\n{k.dumps(v.case)}\nreproduce with torch:\n{k.torch_script(v.case)}")
