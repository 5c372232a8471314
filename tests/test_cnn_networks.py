"""Network cases that open with a small CNN (conformance/case/layerkinds.py): the format, refimpl against
torch in training and gradients-only runs, the planted CNN bugs caught, smaller cases, and the
implementations that do not declare feature layers (``unsupported``, never a failure)."""

from __future__ import annotations

import json
import math
import random
from importlib.resources import files

import jsonschema
import pytest
from helpers_networks import stack_cases, suite_named
from hypothesis import given, settings

from conformance import kinds
from conformance.case.grain import outside
from conformance.case.graph import Tensor
from conformance.case.layerkinds import LAYER_KINDS, STACKS, STRUCTURAL
from conformance.case.network import (
    Batch,
    Feature,
    Layer,
    NetworkCase,
    case_from_json,
    case_to_json,
    check_case,
    dumps,
    loads,
    with_id,
)
from conformance.case.reduce import network_candidates
from conformance.driver import draw, run_suite
from conformance.impls import Capabilities
from conformance.impls.adapters.network_class import NetworkClass
from conformance.impls.zoo import MUTANTS, MutantImpl
from conformance.kinds.network import unsupported
from conformance.oracle.netrun import run_refimpl_network, run_torch_network
from conformance.verdict.network import judge_network


def _case() -> NetworkCase:
    """test_networks_meta.py's hand-made 2→3→2 tanh/identity MSE run with SGD, two steps."""
    w0 = Tensor((3, 2), (0.5, -0.25, 0.125, 0.75, -0.5, 0.3))
    w1 = Tensor((2, 3), (0.2, -0.4, 0.6, 0.1, 0.3, -0.7))
    layers = (Layer(2, 3, "tanh", {}, w0, Tensor((3,), (0.1, 0.0, -0.1))), Layer(3, 2, "identity", {}, w1, None))
    batches = tuple(Batch(Tensor((2, 2), (1.0, -1.0, 0.5, 2.0)), Tensor((2, 2), (0.3, -0.2, 0.1, 0.4)))
                    for _ in range(2))
    return NetworkCase(layers, "mse", "mean", {}, "sgd", dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0,
                                                             nesterov=False, maximize=False), batches)


CASE_SCHEMA = json.loads((files("conformance") / "schema" / "network-case.schema.json").read_text())
KINDS = sorted(STACKS["cnn"])


def cnn(dtype: str = "float64", **kw):
    return stack_cases("cnn", dtype, **kw)


# --- the format ----------------------------------------------------------------------------------------

def test_an_mlp_case_keeps_its_json_and_its_id():
    doc = case_to_json(_case())
    assert "features" not in doc
    assert with_id(_case()).id == "n-d4e3f96d3266"  # as before feature layers existed


def test_the_schema_declares_every_layer_kind_and_its_parameters():
    items = CASE_SCHEMA["properties"]["features"]["items"]
    assert items["properties"]["kind"]["enum"] == list(LAYER_KINDS)
    declared = {o["properties"]["kind"]["const"]: o["properties"]["params"]["required"] for o in items["oneOf"]}
    assert declared == {k: list(kind.params) for k, kind in LAYER_KINDS.items()}


@settings(max_examples=15, deadline=None)
@given(cnn("float32"))
def test_cnn_cases_match_the_schema_round_trip_and_name_parameters_in_torch_order(case):
    assert case.features[0].kind == "conv2d" and len(case.batches[0].x.shape) == 4
    doc = case_to_json(case)
    jsonschema.validate(doc, CASE_SCHEMA)
    assert case_from_json(json.loads(json.dumps(doc))) == case and loads(dumps(case)) == case
    want = [f"layer{i}.{p}" for i, f in enumerate(case.features) for p, t in f.params.items() if t is not None]
    assert case.param_names[:len(want)] == want
    assert case.param_names[len(want)] == f"layer{len(case.features)}.weight"


# --- refimpl conforms; planted bugs do not ----------------------------------------------------------------

def test_a_grouped_conv_weight_gradient_bug_shrinks_to_a_grouped_conv():
    suite, i = suite_named("cnn float64")
    r = run_suite(MutantImpl(MUTANTS["conv-groups-weight-grad"]), suite, i, first_failure_only=True)
    case = r.failure.case
    assert any(f.kind == "conv2d" and f.attrs["groups"] > 1 for f in case.features), case.summary()
    assert case.n_params <= r.first_bad[1].case.n_params


def test_smaller_cnn_cases_are_valid_and_reach_the_mlp_alone():
    suite, i = suite_named("cnn float64")
    case = max(draw(suite, i), key=lambda c: len(c.features))
    smaller = list(network_candidates(case))
    assert smaller and any(not c.features for c in smaller)
    assert any(len(c.features) == len(case.features) - 1 for c in smaller)
    for c in smaller[:12]:
        run_refimpl_network(c)  # valid: it runs


# --- implementations without feature layers ------------------------------------------------------------

def test_an_implementation_without_layer_kinds_gets_no_cnn_suite_and_unsupported():
    caps = NetworkClass.declare(activations=["tanh", "relu"], optimizers=["sgd", "adam"])  # a hand-written network
    assert not caps.layer_kinds
    assert not [s for s in kinds.suites(caps, 10) if s.name.startswith("cnn ")]
    assert {f"layer kind {k}" for k in STRUCTURAL} <= set(unsupported(caps))
    suite, i = suite_named("cnn float64")
    assert all(outside(caps, c) is not None for c in draw(suite, i))


def test_unknown_layer_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown layer kind"):
        Capabilities(frozenset(), networks=True, layer_kinds={"conv3d"})


def _hand_made_cnn(optimizer: str = "none") -> NetworkCase:
    """x [2, 2, 4, 4] → conv2d (groups 2, padding [1, 0]) → relu → max_pool2d 2×2 stride 1 (windows
    overlap) → batch_norm → flatten 16 → Linear(16, 3) → mse; gradients only, or two SGD steps."""
    rng = random.Random(16)

    def t(*shape: int, lo: float = -1.0, hi: float = 1.0) -> Tensor:
        return Tensor(shape, tuple(round(rng.uniform(lo, hi), 3) for _ in range(math.prod(shape))))

    features = (
        Feature("conv2d", {"stride": [1, 1], "padding": [1, 0], "dilation": [1, 1], "groups": 2},
                {"weight": t(2, 1, 2, 2), "bias": t(2)}),
        Feature("relu", {}),
        Feature("max_pool2d", {"kernel_size": [2, 2], "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1],
                               "ceil_mode": False}),
        Feature("batch_norm", {"eps": 1e-5}, {"weight": t(2, lo=0.5, hi=1.5), "bias": t(2)}),
    )
    steps = 1 if optimizer == "none" else 2
    hyper = {} if optimizer == "none" else dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0,
                                                nesterov=False, maximize=False)
    return with_id(check_case(NetworkCase(
        (Layer(16, 3, "identity", {}, t(3, 16), t(3)),), "mse", "mean", {},
        optimizer, hyper, tuple(Batch(t(2, 2, 4, 4), t(2, 3)) for _ in range(steps)), features=features)))


@pytest.mark.parametrize("optimizer", ["none", "sgd"])
def test_refimpl_conforms_on_a_hand_made_cnn(optimizer):
    case = _hand_made_cnn(optimizer)
    assert case.param_names == ["layer0.weight", "layer0.bias", "layer3.weight", "layer3.bias",
                                "layer4.weight", "layer4.bias"]
    v = judge_network(case, run_refimpl_network(case), run_torch_network(case))
    assert v.verdict == "pass", v.reason


@pytest.mark.parametrize("mutant", ["conv-groups-weight-grad", "max-pool-overwrite", "flatten-backward-channels-last",
                                    "batch-norm-constant-stats"])
def test_the_hand_made_cnn_catches_each_planted_bug(mutant):
    case = _hand_made_cnn()
    v = judge_network(case, MutantImpl(MUTANTS[mutant]).run_network(case), run_torch_network(case))
    assert v.verdict == "fail", v.reason
