"""NetworkClass: a hand-written numpy network verified from a few lines of declaration
(conformance/impls/adapters/network_class.py, examples/numpy_mlp.py)."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import kinds
from conformance.driver import draw, judge_case, run_suite
from conformance.impls.adapters.network_class import NetworkClass
from conformance.impls.loading import resolve

SEEDS = range(3)


@pytest.fixture(scope="module")
def example():
    return resolve("examples/numpy_mlp.py", isolate=False)


def _suites(impl, examples=12):
    return [(i, s) for i, s in enumerate(kinds.suites(impl.capabilities, examples)) if s.family == "networks"]


def test_the_example_conforms_at_every_seed(example):
    assert example.name == "numpy-mlp" and not example.capabilities.ops and example.capabilities.networks
    for seed in SEEDS:
        for i, suite in _suites(example):
            r = run_suite(example, suite, seed + i, first_failure_only=True)
            assert r.first_bad is None, (seed, suite.name, r.first_bad[1].reason)


def _first_case(impl):
    """The first drawn run of two layers or more (seed by seed: a seed may draw none)."""
    i, suite = _suites(impl)[0]
    return next(c for seed in range(i, i + 100) for c in draw(suite, seed) if len(c.layers) >= 2)


def _variant(example, **changes):
    fields = dict(name="variant", capabilities=example.capabilities, build=example.build,
                  loss_and_grads=example.loss_and_grads, step=example.step, params=example.params)
    return NetworkClass(**{**fields, **changes})


@pytest.mark.parametrize("change, message", [
    (lambda f: (lambda net, x, y: (f(net, x, y)[0], f(net, x, y)[1][:-1])), "gradients for"),
    (lambda f: (lambda net, x, y: (f(net, x, y)[0], [np.zeros((7, 7)), *f(net, x, y)[1][1:]])), "has shape [7, 7]"),
    (lambda f: (lambda net, x, y: ("0.5", f(net, x, y)[1])), "not one real number"),
    (lambda f: (lambda net, x, y: (f(net, x, y)[0], [g.astype(complex) for g in f(net, x, y)[1]])),
     "not an array of real"),
])
def test_a_malformed_answer_is_an_error_naming_it(example, change, message):
    impl = _variant(example, loss_and_grads=change(example.loss_and_grads))
    v = judge_case(impl, _first_case(example))
    assert v.verdict == "error" and message in v.reason, v.reason


def test_without_step_the_harness_takes_the_sgd_step_on_the_arrays_it_gave(example):
    """A model that keeps the arrays it is built with needs neither ``step`` nor ``params``."""
    impl = _variant(example, step=None, params=None,
                    build=lambda params, case: type("Keep", (), {"params": params})(),
                    loss_and_grads=lambda m, x, y: example.loss_and_grads(example.build(m.params, None), x, y))
    case = _first_case(example)
    assert judge_case(impl, case).verdict == "pass"


def test_the_plain_run_network_example_conforms_and_its_slip_is_caught():
    """examples/plain_network.py answers with the types themselves (docs/networks.md); the same
    code with the bias gradient averaged over the batch fails at every seed."""
    plain = resolve("examples/plain_network.py", isolate=False)
    suites = _suites(plain, 6)
    assert {s.name for _, s in suites} == {"networks float64", "optimizer sgd", "loss mse", "gradients only"}
    module = type(plain).run_network.__globals__  # the example module's namespace
    right = module["step"]

    def averaged(layers, x, y, reduction):
        loss, grads = right(layers, x, y, reduction)
        return loss, [(gW, [g / len(x) for g in gb]) for gW, gb in grads]

    for seed in SEEDS:
        for i, suite in suites:
            assert run_suite(plain, suite, seed + i, first_failure_only=True).first_bad is None, (seed, suite.name)
        try:
            module["step"] = averaged
            bad = [run_suite(plain, s, seed + i, first_failure_only=True).first_bad for i, s in suites]
        finally:
            module["step"] = right
        assert any(b is not None and b[1].verdict == "fail" for b in bad), seed
