"""The suites of ``conformance verify``, one test item each, through the one driver.

``test_suite[op add]``, ``test_suite[scalar graphs]``, ``test_suite[networks float64]`` …: the list
is :func:`conformance.kinds.suites` for the implementation's capabilities at the profile's cases per
suite, in its order, and suite ``i`` gets the seed ``seed + i`` (conformance/plugin.py), so a run of
``pytest conformance`` judges exactly the cases of ``conformance verify`` with the same profile and
seed: every op alone, random scalar graphs, deep chains, tensor graphs, float32, second order and
short training runs of MLPs (per dtype, per optimizer, per loss). A suite fails on its first
non-conforming case, shrunk to a minimal one, shown as JSON with a torch script that reproduces it.
A ``robustness`` verdict (a case outside the working range) fails it only under ``--conformance-strict``.
"""

import pytest

from conformance.assertions import robustness_hook, robustness_message, suite_failure_message
from conformance.driver import run_suite
from conformance.plugin import planned_suites


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.name == "test_suite":
        metafunc.parametrize("suite, seed", [pytest.param(suite, seed, id=suite.name)
                                             for suite, seed in planned_suites(metafunc.config)])


def test_suite(impl, conformance, suite, seed):
    findings: list = []
    on_case = robustness_hook(findings, conformance.on_case) if conformance.strict else conformance.on_case
    r = run_suite(impl, suite, seed, always_truth=conformance.always_truth, on_case=on_case)
    if r.failure is not None:
        conformance.failure(impl, suite.name, r.failure)
        pytest.fail(suite_failure_message(impl, r), pytrace=False)
    if findings:  # --conformance-strict
        pytest.fail(robustness_message(impl, r, findings), pytrace=False)
