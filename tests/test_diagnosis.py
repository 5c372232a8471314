"""The diagnosis line: how a failing quantity relates to torch's, each pattern shown on a planted
implementation at every seed claimed, through the driver as verify runs it (the minimal case)."""

from __future__ import annotations

import pytest

from conformance import kinds
from conformance.driver import failure_text, run_suite
from conformance.impls.adapters.network_class import NetworkClass
from conformance.impls.foreign import FOREIGN
from conformance.impls.loading import resolve
from conformance.verdict.diagnosis import diagnose

SEEDS = range(3)


@pytest.fixture(scope="module")
def example():
    return resolve("examples/numpy_mlp.py", isolate=False)


def _planted(example, change):
    """The example MLP with its gradients changed on the way out (torch's layout and order)."""
    def loss_and_grads(net, x, y):
        loss, grads = example.loss_and_grads(net, x, y)
        return loss, change(grads)
    return NetworkClass(name="planted", capabilities=example.capabilities, build=example.build,
                        loss_and_grads=loss_and_grads, step=example.step, params=example.params)


def _minimal(impl, seed):
    i, suite = next((i, s) for i, s in enumerate(kinds.suites(impl.capabilities, 40)) if s.name == "networks float64")
    r = run_suite(impl, suite, seed + i, first_failure_only=True)
    assert r.failure is not None, f"not caught at seed {seed}"
    return r


PLANTED = {
    "sign": (lambda gs: [-g for g in gs], "torch's × −1: the sign flipped"),
    "zero": (lambda gs: [0 * g for g in gs], "nothing reaches"),
    # on any other layer a transposed gradient has the wrong shape: an error, no pattern to name
    "transposed": (lambda gs: [g.T if g.ndim == 2 and g.shape[0] == g.shape[1] else g for g in gs],
                   "torch's transpose"),
    "permuted bias": (lambda gs: [g if g.ndim == 2 else g[::-1].copy() for g in gs], "in another order"),
}


@pytest.mark.parametrize("name", list(PLANTED))
def test_each_pattern_is_named_on_its_planted_bug_at_every_seed(example, name):
    change, words = PLANTED[name]
    for seed in SEEDS:
        r = _minimal(_planted(example, change), seed)
        assert any(words in line for line in diagnose(r.failure)), (seed, r.failure.case.summary(), r.failure.reason)


@pytest.mark.parametrize("engine, words", [
    ("mlp_bias_mean", "grad[layer0.bias]@1 = torch's × 1/2 (= 1/batch, batch 2): averaged over the batch"),
    ("mlp_mse_no_2", "= torch's × 1/2: a factor 2 missing"),
    ("mlp_no_zero_grad", "@2 = torch's (from the implementation's own parameters) + the step before's gradient"),
])
def test_the_foreign_mlps_bugs_are_diagnosed_at_every_seed(engine, words):
    impl = FOREIGN[engine].load()
    for seed in SEEDS:
        r = _minimal(impl, seed)
        assert any(words in line for line in diagnose(r.failure)), (seed, diagnose(r.failure), r.failure.reason)
        text = failure_text("s", r.failure)
        assert any(line.startswith("  diagnosis: ") and words in line for line in text.splitlines()), text


def test_no_pattern_no_line():
    """A wrong derivative that fits no pattern gets no diagnosis: a guess would mislead."""
    impl = FOREIGN["tanh_input"].load()
    i, suite = next((i, s) for i, s in enumerate(kinds.suites(impl.capabilities, 40)) if s.name == "op tanh")
    r = run_suite(impl, suite, i, first_failure_only=True)
    assert r.failure is not None and diagnose(r.failure) == []
    assert "diagnosis" not in failure_text("op tanh", r.failure)


def test_a_conforming_case_has_no_diagnosis(example):
    i, suite = next((i, s) for i, s in enumerate(kinds.suites(example.capabilities, 12)) if s.name == "loss mse")
    r = run_suite(example, suite, i, on_case=lambda s, sd, k, v, t: assert_none(v))
    assert r.first_bad is None


def assert_none(v):
    assert diagnose(v) == []

