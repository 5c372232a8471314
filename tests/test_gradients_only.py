"""Gradients-only runs: the loss and every gradient for given parameters and one batch, no
optimizer (optimizer ``none``: conformance/case/network.py) — the contract of a network that has a
forward and a backward and no update yet."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conformance import kinds
from conformance.case import network as netcases
from conformance.case.network import NO_OPTIMIZER, InvalidCase, StepResult
from conformance.driver import draw, judge_case, run_suite
from conformance.impls import RefImpl
from conformance.impls.adapters.network_class import NetworkClass
from conformance.impls.loading import resolve
from conformance.oracle.netrepro import torch_script
from conformance.oracle.netrun import run_torch_network

SEEDS = range(3)


@pytest.fixture(scope="module")
def example():
    return resolve("examples/numpy_mlp.py", isolate=False)


def _gradients_suite(impl, examples=12):
    return next((i, s) for i, s in enumerate(kinds.suites(impl.capabilities, examples)) if s.name == "gradients only")


@pytest.fixture(scope="module")
def cases():
    """Gradients-only runs of refimpl's suite, seed 0 (every loss, activation and reduction)."""
    i, suite = _gradients_suite(RefImpl(), 40)
    return draw(suite, i)


def test_a_gradients_only_case_is_one_batch_with_no_optimizer(cases):
    assert cases and all(c.gradients_only and c.steps == 1 and c.hyper == {} for c in cases)
    assert len({c.loss for c in cases}) >= 3  # drawn over the losses, not one corner
    c = cases[0]
    assert netcases.loads(netcases.dumps(c)) == c and "gradients only" in c.summary()
    with pytest.raises(InvalidCase, match="one batch"):
        netcases.check_case(replace(c, batches=c.batches * 2))
    assert not any(k.startswith("param[") for k in netcases.entries(c, run_torch_network(c).steps))


def test_the_torch_script_takes_no_step(cases):
    script = torch_script(cases[0])
    assert "torch.optim" not in script and "opt.step()" not in script and "p.grad" in script


def test_refimpl_passes_and_a_result_without_parameters_is_judged_on_loss_and_gradients(cases):
    impl = RefImpl()
    for c in cases[:8]:
        v = judge_case(impl, c)
        assert v.conforms, (c.summary(), v.reason)
    c = max(cases, key=lambda c: c.n_params)
    torch_steps = run_torch_network(c).steps

    class NoParams:
        name, version, capabilities = "no-params", "1", impl.capabilities

        def run_network(self, case):
            return netcases.NetworkResult([StepResult(s.loss, s.grads, {}) for s in torch_steps])

    assert judge_case(NoParams(), c).verdict == "pass"

    class WrongGrad(NoParams):
        def run_network(self, case):
            s = torch_steps[0]
            name = case.param_names[-1]
            bad = replace(s.grads[name], values=tuple(2 * v + 1 for v in s.grads[name].values))
            return netcases.NetworkResult([StepResult(s.loss, {**s.grads, name: bad}, {})])

    v = judge_case(WrongGrad(), c)
    assert v.verdict == "fail" and f"grad[{c.param_names[-1]}]" in v.reason, v.reason


def test_a_network_without_an_optimizer_runs_gradients_only_and_its_bug_is_caught(example):
    """``optimizers=()``: no training run is drawn, only gradients-only runs — and a bias gradient
    averaged over the batch fails them at every seed."""
    caps = NetworkClass.declare(activations=["sigmoid"], optimizers=(), losses={"mse": ["mean"]})
    assert dict(caps.optimizers) == {NO_OPTIMIZER: set()}
    impl = NetworkClass(name="no-optimizer", capabilities=caps, build=example.build,
                        loss_and_grads=example.loss_and_grads)
    suites = [(i, s) for i, s in enumerate(kinds.suites(caps, 12))]
    assert {s.name for _, s in suites} == {"networks float64", "loss mse", "gradients only"}
    assert all(c.gradients_only for i, s in suites for c in draw(s, i))

    def averaged(net, x, y):
        loss, grads = example.loss_and_grads(net, x, y)
        return loss, [g / (x.shape[0] if g.ndim == 1 else 1) for g in grads]

    buggy = NetworkClass(name="bias-averaged", capabilities=caps, build=example.build, loss_and_grads=averaged)
    for seed in SEEDS:
        for i, suite in suites:
            assert run_suite(impl, suite, seed + i, first_failure_only=True).first_bad is None, (seed, suite.name)
        caught = [run_suite(buggy, s, seed + i, first_failure_only=True).first_bad for i, s in suites]
        assert any(b is not None and b[1].verdict == "fail" for b in caught), seed


def test_every_declaration_of_a_network_class_takes_gradients_only_runs(example):
    assert NO_OPTIMIZER in example.capabilities.optimizers
    i, suite = _gradients_suite(example)
    r = run_suite(example, suite, i, first_failure_only=True)
    assert r.first_bad is None and r.cases == suite.size
    c = draw(suite, i)[0]
    assert example.run_network(c).steps[0].params == {}
    assert np.isfinite(example.run_network(c).steps[0].loss.values[0])
