"""The network stack suites' fixed hostile cases (conformance/case/netfixed.py; issue 16: "a bug that only
a hostile input shows must be caught at every seed"): they are valid cases inside the capabilities,
refimpl conforms on each, and every planted bug of a stack is caught by them alone — in every suite of
the stack — so whatever the seed draws. An implementation gets none of a layer kind it does not declare."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
from helpers_networks import suite_named

from conformance import kinds
from conformance.case.grain import outside
from conformance.case.layerkinds import STACKS
from conformance.case.netfixed import TEMPLATES, loss_fixed, stack_fixed
from conformance.case.network import case_from_json, case_to_json, check_case, with_id
from conformance.driver import draw, judge_case
from conformance.impls import RefImpl
from conformance.impls.zoo import MUTANTS, MutantImpl
from conformance.kinds import network
from conformance.verdict.outcomes import NONCONFORMING, Verdict

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from kill_matrix import stack_mutant  # which mutants a stack's training runs can reach

CAPS = RefImpl.capabilities
SUITES = [f"{stack} {what}" for stack in sorted(STACKS) for what in ("float64", "float32", "gradients only")]
#: planted bugs of a stack that no training run can charge, and why: an exact tie in max pooling is a
#: kink, where the network verdict reports any other gradient as a convention (the op's own suite,
#: ``op max_pool2d``, charges it: there a tie's subgradients are checked)
NOT_CHARGEABLE = {"max-pool-every-tie": "a tie is a kink in a training run: reported as a convention"}
KILLS = [(stack, m.name) for stack in sorted(STACKS) for m in MUTANTS.values()
         if stack_mutant(m, stack) and m.expect == "kill" and m.name not in NOT_CHARGEABLE]


@pytest.mark.parametrize("name", SUITES)
def test_every_stack_suite_opens_with_valid_fixed_cases_refimpl_conforms_on(name):
    suite, _ = suite_named(name)
    stack = name.split()[0]
    assert len(suite.fixed) == len(TEMPLATES[stack])  # refimpl declares every kind: every template
    for case in suite.fixed:
        assert check_case(case) is case and with_id(case).id == case.id
        assert case_from_json(case_to_json(case)) == case
        assert outside(CAPS, case) is None
        assert {f.kind for f in case.features} <= set(STACKS[stack])
        assert case.gradients_only == (name.endswith("gradients only"))
        assert case.dtype == ("float32" if name.endswith("float32") else "float64")
        assert case.steps == (1 if case.gradients_only else 2)
        params = [v for t in case.features[0].params.values() if t is not None for v in t.values]
        assert len(set(params)) == len(params)  # non-uniform: no two parameters alike
        v = judge_case(RefImpl(), case)
        assert v.verdict == Verdict.PASS, f"{case.id}: {v.reason}"


def test_the_fixed_cases_do_not_move_the_drawn_ones(monkeypatch):
    """Only ``fixed`` is new: every suite keeps its place (hence its seed), its strategy and its size,
    and a stack suite draws the same cases after its fixed ones as it would without them."""
    with_fixed = kinds.suites(CAPS, 40)
    monkeypatch.setattr(network, "stack_fixed", lambda *a: ())
    without = kinds.suites(CAPS, 40)
    assert [(s.name, s.examples) for s in with_fixed] == [(s.name, s.examples) for s in without]
    assert sorted(a.name for a, b in zip(with_fixed, without) if a.fixed != b.fixed) == sorted(SUITES)
    i = [s.name for s in with_fixed].index("rnn float64")
    assert [c.id for c in draw(with_fixed[i], i)[len(with_fixed[i].fixed):]] == [c.id for c in draw(without[i], i)]


@pytest.mark.parametrize("stack, mutant", KILLS)
def test_the_fixed_cases_alone_catch_each_planted_bug_of_the_stack(stack, mutant):
    """Each planted bug a stack's runs can reach gets a charged verdict on some fixed case of each
    suite of the stack — fixed cases are the same at every seed, so it is caught at every seed."""
    for what in ("float64", "float32", "gradients only"):
        suite, _ = suite_named(f"{stack} {what}")
        verdicts = []
        for case in suite.fixed:
            verdicts.append(judge_case(MutantImpl(MUTANTS[mutant]), case).verdict)
            if verdicts[-1] in NONCONFORMING:
                break
        assert verdicts[-1] in NONCONFORMING, f"{mutant} survives the fixed cases of {stack} {what}: {verdicts}"


def test_a_tie_bug_is_reported_as_a_convention_on_the_exact_ties():
    """max-pool-every-tie cannot be charged in a training run (a tie is a kink); the ties case shows it
    at every seed, as a convention, and refimpl passes the same case."""
    suite, _ = suite_named("cnn float64")
    ties = [c for c in suite.fixed if c.features[0].params["weight"].shape[2:] == (1, 1)]
    assert len(ties) == 1
    assert judge_case(MutantImpl(MUTANTS["max-pool-every-tie"]), ties[0]).verdict == Verdict.CONVENTION


def test_every_stack_has_fixed_cases_and_planted_bugs_they_catch():
    assert set(TEMPLATES) == set(STACKS)
    assert {stack for stack, _ in KILLS} == set(STACKS)


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_an_implementation_gets_no_fixed_case_of_a_kind_it_does_not_declare(stack):
    """Each kind of the stack left out in turn, and each kind alone: no fixed case holds an undeclared
    kind, each is inside the capabilities, and every template with a declared kind keeps a case of
    what is left of it."""
    for keep in [set(STACKS[stack]) - {k} for k in STACKS[stack]] + [{k} for k in STACKS[stack]]:
        caps = replace(CAPS, layer_kinds=frozenset(keep) | (CAPS.layer_kinds - set(STACKS[stack])))
        suites = [s for s in kinds.suites(caps, 40) if s.name.startswith(f"{stack} ")]
        assert len(suites) == (3 if keep else 0)
        for s in suites:
            assert len(s.fixed) == sum(any(spec.kind in keep for spec in t.layers) for t in TEMPLATES[stack])
            for case in s.fixed:
                assert {f.kind for f in case.features} <= keep, (keep, case.summary())
                assert case.features and outside(caps, case) is None
    none = replace(CAPS, layer_kinds=CAPS.layer_kinds - set(STACKS[stack]))
    assert stack_fixed(stack, none, "float64", ["sgd"]) == ()


def test_the_fixed_cases_take_the_declared_loss_optimizer_and_activations():
    caps = replace(CAPS, losses={"cross_entropy": ("mean",)}, optimizers={"adam": ("lr",), "rmsprop": ("lr",)},
                   activations=frozenset({"relu"}), output_activations=frozenset({"tanh"}), layers=(2, 3))
    cases = stack_fixed("cnn", caps, "float64", ["adam", "rmsprop"])
    assert len(cases) == len(TEMPLATES["cnn"])
    assert [c.optimizer for c in cases] == ["adam", "rmsprop", "adam", "rmsprop"]
    for case in cases:
        assert outside(caps, case) is None
        assert (case.loss, case.reduction) == ("cross_entropy", "mean")
        assert [la.activation for la in case.layers] == ["relu", "tanh"]
    assert judge_case(RefImpl(), cases[0]).verdict == Verdict.PASS


# --- a loss suite's hostile run: logits far apart (netfixed.LOGIT_GAP) ---

def _example_with_loss(loss=None):
    """The layer-function example (examples/layer_functions.py), its cross entropy replaced by ``loss``."""
    import importlib.util

    from conformance.impls.adapters.layer_functions import layer_functions
    spec = importlib.util.spec_from_file_location("_layer_functions_example", "examples/layer_functions.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return layer_functions(name="example", affine=(mod.affine_forward, mod.affine_backward),
                           activations={"relu": (mod.relu_forward, mod.relu_backward)},
                           losses={"cross_entropy": loss or mod.softmax_loss})


def _log_of_probability(x, y):
    """CS231n-style and shifted (no overflow), but ``−log`` of the probability: inf once it underflows."""
    import numpy as np
    shifted = x - x.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    n = x.shape[0]
    dx = probs.copy()
    dx[np.arange(n), y] -= 1
    return -np.log(probs[np.arange(n), y]).mean(), dx / n


def test_the_cross_entropy_suite_opens_with_logits_far_apart_and_catches_log_of_probability_at_every_seed():
    """A diverged run's logits (a gap of 1,800) at every seed: refimpl and the example's log-softmax
    loss (shifted logits, log of the sum) pass; ``−log(softmax[y])`` gives inf for the loss and is
    charged at every seed — drawn runs reach such logits about one seed in ten."""
    (case,) = loss_fixed("cross_entropy", CAPS, "float64")
    assert judge_case(RefImpl(), case).verdict == Verdict.PASS
    correct, naive = _example_with_loss(), _example_with_loss(_log_of_probability)
    for seed in range(5):
        for impl, charged in ((correct, False), (naive, True)):
            suites = kinds.suites(impl.capabilities, 40)
            (suite,) = [s for s in suites if s.name == "loss cross_entropy"]
            first = draw(suite, seed)[0]  # the fixed run, first whatever the seed draws after it
            assert first == suite.fixed[0] and first.loss == "cross_entropy"
            v = judge_case(impl, first)
            assert (v.verdict in NONCONFORMING) == charged, (impl.name, v.verdict, v.reason)
            if charged:
                assert "the first: loss@1: implementation inf, torch 1800.0" in v.reason, v.reason
