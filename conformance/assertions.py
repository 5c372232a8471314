"""The assertions of the suite's pytest tests: judge, and fail with everything a person needs to reproduce.

Nothing here is configured from outside: the truth mode and the records hook are arguments (the
pytest suite takes them from the plugin's ``conformance`` fixture).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from conformance import kinds
from conformance.driver import OnCase, SuiteResult, counts_text, judge_case
from conformance.verdict.diagnosis import diagnose
from conformance.verdict.graph import CaseVerdict
from conformance.verdict.outcomes import Verdict


def assert_conforms(impl: Any, case: Any, *, always_truth: bool = False,
                    on_case: Callable[[CaseVerdict, float], None] | None = None, strict: bool = False) -> CaseVerdict:
    """Fail unless the case's verdict is pass, convention, torch-deviates, known-cause, unchecked or
    robustness (with ``strict``, robustness fails too). ``always_truth``: compute the truth for every
    entry; ``on_case(verdict, seconds)`` is called with the verdict (records)."""
    __tracebackhide__ = True
    t = time.perf_counter()
    v = judge_case(impl, case, always_truth=always_truth)
    if on_case is not None:
        on_case(v, time.perf_counter() - t)
    if not v.conforms or (strict and v.verdict == Verdict.ROBUSTNESS):
        pytest.fail(failure_message(impl, v), pytrace=False)
    return v


def failure_message(impl: object, v: CaseVerdict) -> str:
    """One non-conforming case: the verdict and its reason, the case as JSON, a torch script."""
    k = kinds.of(v.case)
    return (f"{getattr(impl, 'name', impl)} does not conform on case {v.case.id} ({k.size(v.case)}, "
            f"{v.case.dtype}): {v.verdict}\n  {v.reason}\n"
            + "".join(f"  diagnosis: {line}\n" for line in diagnose(v)) +
            f"case JSON:\n{k.dumps(v.case)}\nreproduce with torch:\n{k.torch_script(v.case)}")


def suite_failure_message(impl: object, r: SuiteResult) -> str:
    """A failed suite: where it failed (suite, seed, the first non-conforming case's index and the counts),
    then its minimal failing case (:func:`failure_message`)."""
    assert r.failure is not None
    where = f"case {r.first_bad[0]} of {r.drawn}" if r.first_bad is not None else "a case"
    shrunk = ("case (not shrunk)" if r.shrunk is None else "minimal case" if r.shrunk.complete
              else f"smallest case found ({r.shrunk.note})")
    return (f"suite {r.suite.name!r} (seed {r.seed}): {where} does not conform; {counts_text(r.verdicts)}; "
            f"the {shrunk} follows\n" + failure_message(impl, r.failure))


def robustness_hook(findings: list[CaseVerdict], then: OnCase | None) -> OnCase:
    """The driver's ``on_case`` hook that also keeps every ``robustness`` verdict in ``findings``."""
    def hook(suite: Any, seed: int, index: int, v: Any, seconds: float) -> None:
        if v.verdict == Verdict.ROBUSTNESS:
            findings.append(v)
        if then is not None:
            then(suite, seed, index, v, seconds)
    return hook


def robustness_message(impl: object, r: SuiteResult, findings: list[CaseVerdict], first: int = 3) -> str:
    """A suite failed under ``--conformance-strict`` by its robustness findings: how many, the first
    few reasons, and the first one as a case to reproduce."""
    reasons = "".join(f"\n  {v.reason}" for v in findings[:first])
    more = f"\n  … and {len(findings) - first} more" if len(findings) > first else ""
    return (f"suite {r.suite.name!r} (seed {r.seed}): {len(findings)} robustness finding(s) (charged by "
            f"--conformance-strict); {counts_text(r.verdicts)}{reasons}{more}\nthe first follows\n"
            + failure_message(impl, findings[0]))
