"""Capabilities at the grain people implement: per optimizer its hyperparameters, per loss its
reductions and attributes, activations per position, bias, layers and batch sizes. Strategies draw
only inside the declaration; what is left out is ``unsupported`` (counted), never an ``error``."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance import kinds
from conformance.case.grain import HYPER_OFF, Grain, outside
from conformance.case.netstrategies import for_capabilities
from conformance.case.network import OPTIMIZER_HYPER
from conformance.commands import cli
from conformance.driver import draw, judge_case
from conformance.impls import Capabilities, RefImpl
from conformance.oracle.netrun import run_torch_network

#: the seed tutorials' network: sigmoid layers with bias, MSE with mean reduction, plain SGD
TUTORIAL = Capabilities(frozenset(), networks=True, activations=frozenset({"sigmoid"}),
                        optimizers={"sgd": ["lr"]}, losses={"mse": ["mean"]}, bias=frozenset({True}),
                        layers=(2, 2), batch_sizes=(1, 4))
QUICK = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@QUICK
@given(for_capabilities(TUTORIAL))
def test_the_tutorial_declaration_draws_only_what_it_declares(case):
    assert case.optimizer == "sgd" and case.loss == "mse" and case.reduction == "mean"
    assert {k: v for k, v in case.hyper.items() if k != "lr"} == HYPER_OFF["sgd"]
    assert len(case.layers) == 2 and all(la.activation == "sigmoid" and la.bias is not None for la in case.layers)
    assert 1 <= case.batches[0].x.shape[0] <= 4


LEAN = Capabilities(frozenset(), networks=True, activations=frozenset({"relu", "tanh"}),
                    output_activations=frozenset({"identity"}),
                    optimizers={"adam": ["lr", "betas"], "sgd": ["lr", "momentum", "nesterov"]},
                    losses={"cross_entropy": ["sum"], "huber": ["mean", "none", "delta"]},
                    bias=frozenset({False}))


@QUICK
@given(for_capabilities(LEAN))
def test_a_narrow_declaration_holds_in_every_case(case):
    hidden, last = case.layers[:-1], case.layers[-1]
    assert all(la.activation in ("relu", "tanh") for la in hidden) and last.activation == "identity"
    assert all(la.bias is None for la in case.layers)
    taken = LEAN.optimizers[case.optimizer] | {"lr"}
    assert all(case.hyper[k] == v for k, v in HYPER_OFF[case.optimizer].items() if k not in taken)
    assert case.reduction in LEAN.losses[case.loss]
    if case.loss == "cross_entropy":  # weight, label smoothing, ignored targets: not taken
        assert case.loss_attrs["weight"] is None and case.loss_attrs["label_smoothing"] == 0.0
        assert all(y >= 0 for b in case.batches for y in b.y.values)
    if case.optimizer == "sgd" and case.hyper["nesterov"]:
        assert case.hyper["momentum"] > 0 and case.hyper["dampening"] == 0


@QUICK
@given(st.sampled_from([LEAN, TUTORIAL]).flatmap(lambda caps: for_capabilities(caps).map(lambda c: (caps, c))))
def test_every_case_drawn_for_a_declaration_is_admitted_by_it(drawn):
    caps, case = drawn
    assert outside(caps, case) is None and kinds.of(case).admits(caps, case)
    assert kinds.of(case).admits(RefImpl.capabilities, case)


def test_a_case_outside_a_declaration_is_named():
    case = next(c for c in draw(next(s for s in kinds.suites(RefImpl.capabilities, 40)
                                     if s.name == "networks float64"), 0) if c.optimizer != "sgd")
    assert outside(TUTORIAL, case) == f"optimizer {case.optimizer}"
    tutorial_case = draw(next(s for s in kinds.suites(TUTORIAL, 40) if s.name == "networks float64"), 0)[0]
    assert outside(TUTORIAL, tutorial_case) is None
    assert outside(LEAN, tutorial_case) is not None


def test_a_narrow_declaration_reaches_what_it_does_declare():
    suite = next(s for s in kinds.suites(LEAN, 40) if s.name == "networks float64")
    cases = draw(suite, 0) + draw(suite, 1)
    assert {c.optimizer for c in cases} == {"adam", "sgd"}
    assert any(c.hyper.get("momentum", 0) > 0 for c in cases if c.optimizer == "sgd")
    assert {c.loss for c in cases} == {"cross_entropy", "huber"}


def test_names_alone_take_everything_and_draw_the_same_cases():
    names = Capabilities(frozenset(), dtypes=("float64", "float32"), networks=True,
                         activations=RefImpl.capabilities.activations, optimizers=list(OPTIMIZER_HYPER),
                         losses=list(RefImpl.capabilities.losses))
    assert names.optimizers == RefImpl.capabilities.optimizers and names.losses == RefImpl.capabilities.losses
    drawn = [[c.id for c in draw(next(s for s in kinds.suites(caps, 40) if s.name == "networks float64"), 0)]
             for caps in (names, RefImpl.capabilities)]
    assert drawn[0] == drawn[1]


def test_what_is_left_out_is_counted_as_unsupported():
    left = kinds.unsupported(TUTORIAL)
    assert "sgd.momentum" in left and "mse.sum" in left and "optimizer adam" in left and "loss l1" in left
    assert "hidden activation relu" in left and "layers without bias" in left and "sgd.lr" not in left
    assert set(left.values()) >= {"networks"}
    assert not {k for k in kinds.unsupported(RefImpl.capabilities) if "." in k or k.startswith(("loss", "optim"))}


@pytest.mark.parametrize("bad, message", [
    (dict(optimizers={"sgd": ["lr", "betas"]}), "sgd takes"),
    (dict(optimizers={"sgdd": ["lr"]}), "unknown name"),
    (dict(losses={"mse": "mean"}), "not the string"),
    (dict(layers=(0, 2)), "capabilities.layers"),
])
def test_a_wrong_declaration_is_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        Capabilities(frozenset(), networks=True, **bad)


def test_grains_are_hashable_mappings():
    g = Grain.of({"sgd": ["lr"]}, OPTIMIZER_HYPER)
    assert "sgd" in g and list(g) == ["sgd"] and g["sgd"] == {"lr"} and hash(g) == hash(Grain({"sgd": {"lr"}}))


def test_list_prints_each_declaration(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "networks: optimizers sgd adam adamw rmsprop adagrad none (gradients only);" in out
    assert "graphs: dtypes float64,float32" in out


def test_a_misspelt_activation_is_refused_not_silently_never_drawn():
    with pytest.raises(ValueError, match=r"unknown activation.*'Sigmoid'"):
        Capabilities(frozenset(), networks=True, activations={"Sigmoid", "tanh"}, losses=["mse"], optimizers=["sgd"])
    with pytest.raises(ValueError, match=r"unknown activation.*'swish'"):
        Capabilities(frozenset(), networks=True, activations={"tanh"}, output_activations={"swish"})


def test_a_gradient_with_the_right_count_and_the_wrong_shape_is_an_error():
    """A (1, 2) weight's gradient given as (2, 1): judged as unusable, not read in another layout."""
    impl = RefImpl()
    i, suite = next((i, s) for i, s in enumerate(kinds.suites(impl.capabilities, 12)) if s.name == "networks float64")
    case = next(c for seed in range(i, i + 50) for c in draw(suite, seed)
                if c.layers[0].weight.shape[0] != c.layers[0].weight.shape[1])
    steps = run_torch_network(case).steps
    g = steps[0].grads["layer0.weight"]
    steps[0].grads["layer0.weight"] = replace(g, shape=g.shape[::-1])

    class Relabelled:
        name, version, capabilities = "relabelled", "1", impl.capabilities

        def run_network(self, c):
            return type(run_torch_network(case))(steps)

    v = judge_case(Relabelled(), case)
    assert v.verdict == "error" and "has shape" in v.reason, v.reason
