"""Network cases that open with a recurrent layer (an LSTM or a GRU over a sequence, its last step into
the Linear layers; conformance/case/layerkinds.py): the format, torch's side against torch's own cells,
refimpl against torch in training and gradients-only runs, the planted bugs of a backward through
time caught, smaller cases, the suites appended after every earlier one, and implementations that
do not declare recurrent layers."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from importlib.resources import files

import jsonschema
import pytest
import torch
from helpers_networks import stack_cases, suite_named
from hypothesis import find, given, settings

from conformance import kinds
from conformance.case.grain import outside
from conformance.case.graph import Tensor
from conformance.case.layerkinds import STACKS
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
from conformance.impls import RefImpl
from conformance.impls.zoo import MUTANTS, MutantImpl
from conformance.kinds.network import unsupported
from conformance.oracle import composed
from conformance.oracle.netrun import run_refimpl_network, run_torch_network
from conformance.verdict.network import judge_network

CASE_SCHEMA = json.loads((files("conformance") / "schema" / "network-case.schema.json").read_text())
RNN = sorted(STACKS["rnn"])
RNN_PARAMS = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]


def rnn(dtype: str = "float64", **kw):
    return stack_cases("rnn", dtype, **kw)


# --- the format ----------------------------------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(rnn("float32"))
def test_rnn_cases_match_the_schema_round_trip_and_name_parameters_as_torch(case):
    (f,) = case.features
    assert f.kind in ("lstm", "gru") and len(case.batches[0].x.shape) == 3
    _, steps, inputs = case.batches[0].x.shape
    hidden = f.params["weight_hh_l0"].shape[1]
    gates = {"lstm": 4, "gru": 3}[f.kind]
    assert steps >= 2 and f.params["weight_ih_l0"].shape == (gates * hidden, inputs)
    assert case.layers[0].in_features == hidden  # the last step's output, (B, H)
    doc = case_to_json(case)
    jsonschema.validate(doc, CASE_SCHEMA)
    assert case_from_json(json.loads(json.dumps(doc))) == case and loads(dumps(case)) == case
    assert case.param_names[:5] == [*(f"layer0.{p}" for p in RNN_PARAMS), "layer1.weight"]


def test_the_simplest_rnn_case_is_an_lstm_of_hidden_size_1_over_two_steps():
    """Every draw shrinks to its plainest: an output size of 1 (where "wrong when the output size is
    1" bugs live) and two steps (one carried state) are drawn, and reached first."""
    case = find(rnn(), lambda c: True)
    (f,) = case.features
    assert f.kind == "lstm" and f.params["weight_hh_l0"].shape == (4, 1)
    assert case.batches[0].x.shape[1:] == (2, 1)


def test_a_recurrent_layer_of_another_shape_is_refused():
    case = _hand_made_rnn("gru")
    f = case.features[0]
    wrong = replace(f, params={**f.params, "weight_ih_l0": Tensor((9, 3), (0.0,) * 27)})  # I is 2
    with pytest.raises(ValueError, match="weight_ih_l0 has shape"):
        check_case(replace(case, features=(wrong,)))
    flat = replace(case, batches=tuple(Batch(Tensor((b.x.shape[0], 6), b.x.values), b.y) for b in case.batches))
    with pytest.raises(ValueError, match="rank"):
        check_case(flat)


# --- torch's side ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_torch_side_is_the_last_step_of_torchs_own_cells(kind):
    """The oracle (torch.nn.LSTM / GRU, batch first, through functional_call) against the loop people
    write around torch.lstm_cell / gru_cell from a zero state: the same values and gradients."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 2, dtype=torch.float64, generator=g)
    gates, hidden = {"lstm": 4, "gru": 3}[kind], 1
    shapes = [(gates * hidden, 2), (gates * hidden, hidden), (gates * hidden,), (gates * hidden,)]
    params = [torch.randn(s, dtype=torch.float64, generator=g, requires_grad=True) for s in shapes]
    got = getattr(composed, f"{kind}_last_step")(x, *params)
    (got ** 2).sum().backward()
    grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    h = torch.zeros(2, hidden, dtype=torch.float64)
    c = h
    for t in range(3):
        if kind == "lstm":
            h, c = torch.lstm_cell(x[:, t], (h, c), *params)
        else:
            h = torch.gru_cell(x[:, t], h, *params)
    (h ** 2).sum().backward()
    assert torch.allclose(got, h) and all(torch.allclose(a, p.grad) for a, p in zip(grads, params))


# --- refimpl conforms; planted bugs do not ----------------------------------------------------------------

def test_a_carry_bug_shrinks_to_two_steps():
    """At one step nothing is carried and the bug is silent: the smallest failing run has two."""
    suite, i = suite_named("rnn float64")
    r = run_suite(MutantImpl(MUTANTS["gru-no-carry"]), suite, i, first_failure_only=True)
    case = r.failure.case
    assert case.features[0].kind == "gru" and case.batches[0].x.shape[1] == 2, case.summary()
    assert case.n_params <= r.first_bad[1].case.n_params


def test_rnn_suites_come_after_every_earlier_suite():
    """Appended: without recurrent layers (nor the transformer block, a later generation) declared, the
    suites are exactly the first ones of the full list (every earlier suite keeps its index, and with
    it its seed)."""
    caps = RefImpl.capabilities
    full = [s.name for s in kinds.suites(caps, 40)]
    later = set(RNN) | set(STACKS.get("transformer", ()))
    before = [s.name for s in kinds.suites(replace(caps, layer_kinds=caps.layer_kinds - later), 40)]
    assert full[:len(before)] == before
    assert full[len(before):len(before) + 3] == ["rnn float64", "rnn float32", "rnn gradients only"]


def test_smaller_rnn_cases_are_valid_and_reach_the_mlp_alone():
    suite, i = suite_named("rnn float64")
    case = max(draw(suite, i), key=lambda c: c.batches[0].x.shape[1] * c.batches[0].x.shape[2])
    smaller = list(network_candidates(case))
    assert smaller and any(not c.features for c in smaller)
    assert any(c.features and c.batches[0].x.shape[1] < case.batches[0].x.shape[1] for c in smaller)
    for c in smaller[:12]:
        run_refimpl_network(c)  # valid: it runs


def test_an_implementation_without_recurrent_layers_gets_no_rnn_suite_and_unsupported():
    caps = replace(RefImpl.capabilities, layer_kinds=RefImpl.capabilities.layer_kinds - set(RNN))
    assert not [s for s in kinds.suites(caps, 10) if s.name.startswith("rnn ")]
    assert {"layer kind lstm", "layer kind gru"} <= set(unsupported(caps))
    suite, i = suite_named("rnn float64")
    assert all(outside(caps, c) is not None for c in draw(suite, i))


def _hand_made_rnn(kind: str, optimizer: str = "none") -> NetworkCase:
    """x [3, 4, 2] (three sequences of four steps) → LSTM or GRU of hidden size 1 → last step → Linear(1, 2)
    → mse; gradients only, or two SGD steps."""
    rng = random.Random(16)

    def t(*shape: int) -> Tensor:
        return Tensor(shape, tuple(round(rng.uniform(-1.0, 1.0), 3) for _ in range(math.prod(shape))))

    g = {"lstm": 4, "gru": 3}[kind]
    feature = Feature(kind, {}, {"weight_ih_l0": t(g, 2), "weight_hh_l0": t(g, 1), "bias_ih_l0": t(g),
                                 "bias_hh_l0": t(g)})
    steps = 1 if optimizer == "none" else 2
    hyper = {} if optimizer == "none" else dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0,
                                                nesterov=False, maximize=False)
    return with_id(check_case(NetworkCase(
        (Layer(1, 2, "identity", {}, t(2, 1), t(2)),), "mse", "mean", {},
        optimizer, hyper, tuple(Batch(t(3, 4, 2), t(3, 2)) for _ in range(steps)), features=(feature,))))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("optimizer", ["none", "sgd"])
def test_refimpl_conforms_on_a_hand_made_rnn(kind, optimizer):
    case = _hand_made_rnn(kind, optimizer)
    v = judge_network(case, run_refimpl_network(case), run_torch_network(case))
    assert v.verdict == "pass", v.reason


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_the_hand_made_rnn_catches_the_carry_dropped(kind):
    case = _hand_made_rnn(kind)
    v = judge_network(case, MutantImpl(MUTANTS[f"{kind}-no-carry"]).run_network(case), run_torch_network(case))
    assert v.verdict == "fail", v.reason
    wrong = {e.name for e in v.entries if e.verdict == "fail"}
    assert any("weight_hh_l0" in e for e in wrong), sorted(wrong)  # the recurrent weight's gradient
