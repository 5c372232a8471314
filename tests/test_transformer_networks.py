"""Network cases that open with a pre-norm transformer block (layer norm → self-attention → residual add,
layer norm → MLP → residual add over a sequence, flattened into the Linear layers;
conformance/case/layerkinds.py): the format, torch's side against torch.nn.TransformerEncoderLayer,
refimpl against torch in training and gradients-only runs, the planted attention and layer-norm bugs
caught, smaller cases, the suites appended after every earlier one, and implementations that do not
declare the block."""

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
from conformance.case.layerkinds import BLOCK_PARAMS, LAYER_KINDS
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
from conformance.driver import draw
from conformance.impls import RefImpl
from conformance.impls.zoo import MUTANTS, MutantImpl
from conformance.kinds.network import unsupported
from conformance.oracle import composed
from conformance.oracle.netrun import bounds, run_refimpl_network, run_torch_network
from conformance.verdict.network import judge_network

CASE_SCHEMA = json.loads((files("conformance") / "schema" / "network-case.schema.json").read_text())
BLOCK = ["transformer_block"]
#: the bugs of the ops inside the block: attention's (dV from P, not Pᵀ — silent when the query and key
#: lengths are equal, as in self-attention; dQ, dK without the scale) and layer norm's over (N, D) only
MUTANTS_IN_BLOCK = ["attention-dv-untransposed", "attention-backward-unscaled", "layer-norm-2d-count"]


def block(dtype: str = "float64", **kw):
    return stack_cases("transformer", dtype, **kw)


def _module(d: int, nhead: int, f: int, activation: str, eps: float) -> torch.nn.Module:
    return torch.nn.TransformerEncoderLayer(d, nhead, f, dropout=0.0, activation=activation, layer_norm_eps=eps,
                                            batch_first=True, norm_first=True, dtype=torch.float64, device="meta")


# --- the format ----------------------------------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(block("float32"))
def test_block_cases_match_the_schema_round_trip_and_name_parameters_as_torch(case):
    (f,) = case.features
    _, t, d = case.batches[0].x.shape
    assert t >= 2 and d % f.attrs["nhead"] == 0 and case.layers[0].in_features == t * d  # flattened
    doc = case_to_json(case)
    jsonschema.validate(doc, CASE_SCHEMA)
    assert case_from_json(json.loads(json.dumps(doc))) == case and loads(dumps(case)) == case
    module = _module(d, f.attrs["nhead"], f.params["linear1.weight"].shape[0], f.attrs["activation"], 1e-5)
    torch_names = [f"layer0.{n}" for n, _ in module.named_parameters()]
    assert case.param_names[:len(torch_names) + 1] == [*torch_names, "layer1.weight"]
    assert [tuple(p.shape) for _, p in module.named_parameters()] == [f.params[p].shape for p in BLOCK_PARAMS]


def test_the_simplest_block_case_has_one_head_relu_and_a_feed_forward_width_of_1():
    case = find(block(), lambda c: True)
    (f,) = case.features
    assert f.attrs == LAYER_KINDS["transformer_block"].plain and f.params["linear1.weight"].shape == (1, 2)
    assert case.batches[0].x.shape[1:] == (2, 2)


def test_heads_that_do_not_divide_the_width_are_refused():
    case = _hand_made_block()
    f = case.features[0]
    with pytest.raises(ValueError, match="heads"):
        check_case(replace(case, features=(replace(f, attrs={**f.attrs, "nhead": 3}),)))


# --- torch's side ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_torch_side_is_torchs_transformer_encoder_layer(activation):
    """The oracle, written with torch.nn.functional, against the module people write:
    TransformerEncoderLayer(norm_first=True, dropout=0.0, batch_first=True) — values and gradients."""
    g = torch.Generator().manual_seed(5)
    module = _module(4, 2, 3, activation, 1e-3)
    params = {n: torch.randn(p.shape, dtype=torch.float64, generator=g, requires_grad=True)
              for n, p in module.named_parameters()}
    x = torch.randn(2, 3, 4, dtype=torch.float64, generator=g)
    want = torch.func.functional_call(module, params, (x,))
    (want ** 2).sum().backward()
    grads = {n: p.grad.clone() for n, p in params.items()}
    for p in params.values():
        p.grad = None
    got = composed.transformer_block(x, *params.values(), nhead=2, activation=activation, layer_norm_eps=1e-3)
    (got ** 2).sum().backward()
    assert torch.allclose(got, want)
    assert all(torch.allclose(params[n].grad, grads[n]) for n in params)


# --- refimpl conforms; planted bugs do not ----------------------------------------------------------------

def test_transformer_suites_come_after_every_earlier_suite():
    caps = RefImpl.capabilities
    full = [s.name for s in kinds.suites(caps, 40)]
    before = [s.name for s in kinds.suites(replace(caps, layer_kinds=caps.layer_kinds - set(BLOCK)), 40)]
    assert full[:len(before)] == before
    assert full[len(before):] == ["transformer float64", "transformer float32", "transformer gradients only"]


def test_smaller_block_cases_are_valid_and_reach_the_mlp_alone():
    suite, i = suite_named("transformer float64")
    # (a case with an ignored class target is left out: cut to its first sample, that sample's target may
    # be the ignored one, and a loss over no target has no gradient — the shrinker's, not the block's)
    case = max((c for c in draw(suite, i) if all(y != -100 for b in c.batches for y in b.y.values)),
               key=lambda c: c.n_params)
    smaller = list(network_candidates(case))
    assert smaller and any(not c.features for c in smaller)
    for c in smaller[:10]:
        run_refimpl_network(c)  # valid: it runs


def test_an_implementation_without_the_block_gets_no_transformer_suite_and_unsupported():
    caps = replace(RefImpl.capabilities, layer_kinds=RefImpl.capabilities.layer_kinds - set(BLOCK))
    assert not [s for s in kinds.suites(caps, 10) if s.name.startswith("transformer ")]
    assert "layer kind transformer_block" in unsupported(caps)
    suite, i = suite_named("transformer float64")
    assert all(outside(caps, c) is not None for c in draw(suite, i))


def _hand_made_block(optimizer: str = "none") -> NetworkCase:
    """x [2, 3, 4] (two sequences of three steps of width 4) → a block of 2 heads, gelu, feed-forward
    width 3 → flatten 12 → Linear(12, 2) → mse; gradients only, or two SGD steps."""
    rng = random.Random(16)

    def t(*shape: int, lo: float = -1.0, hi: float = 1.0) -> Tensor:
        return Tensor(shape, tuple(round(rng.uniform(lo, hi), 3) for _ in range(math.prod(shape))))

    shapes = LAYER_KINDS["transformer_block"].shapes((3, 4), {"nhead": 2}, {"linear1.weight": (3, 4)})
    params = {p: t(*shapes[p], lo=0.5, hi=1.5) if p.startswith("norm") and p.endswith("weight") else t(*shapes[p])
              for p in BLOCK_PARAMS}
    feature = Feature("transformer_block", {"nhead": 2, "activation": "gelu", "layer_norm_eps": 1e-5}, params)
    steps = 1 if optimizer == "none" else 2
    hyper = {} if optimizer == "none" else dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0,
                                                nesterov=False, maximize=False)
    return with_id(check_case(NetworkCase(
        (Layer(12, 2, "identity", {}, t(2, 12), t(2)),), "mse", "mean", {},
        optimizer, hyper, tuple(Batch(t(2, 3, 4), t(2, 2)) for _ in range(steps)), features=(feature,))))


@pytest.mark.parametrize("optimizer", ["none", "sgd"])
def test_refimpl_conforms_on_a_hand_made_block(optimizer):
    case = _hand_made_block(optimizer)
    v = judge_network(case, run_refimpl_network(case), run_torch_network(case))
    assert v.verdict == "pass", v.reason


@pytest.mark.parametrize("mutant", MUTANTS_IN_BLOCK)
def test_the_hand_made_block_catches_each_planted_bug(mutant):
    case = _hand_made_block()
    v = judge_network(case, MutantImpl(MUTANTS[mutant]).run_network(case), run_torch_network(case))
    assert v.verdict == "fail", v.reason


def test_a_relu_input_at_0_inside_the_block_is_a_near_kink():
    """The block's feed-forward relu is watched as a Linear layer's is: a unit whose weight row and
    bias are 0 has the input 0 exactly — a branch the rounding decides, which the judge may take as
    the explanation of a disagreement."""
    case = _hand_made_block()
    f = case.features[0]
    w1, b1 = f.params["linear1.weight"], f.params["linear1.bias"]
    zero_unit = {"linear1.weight": Tensor(w1.shape, (0.0,) * 4 + w1.values[4:]),
                 "linear1.bias": Tensor(b1.shape, (0.0, *b1.values[1:]))}
    relu = replace(f, attrs={**f.attrs, "activation": "relu"}, params={**f.params, **zero_unit})
    _, near = bounds(replace(case, features=(relu,)))
    assert any("layer0 relu input" in what for _, what in near), near
    _, near = bounds(replace(case, features=(replace(f, params={**f.params, **zero_unit}),)))  # gelu: no kink
    assert not any("layer0" in what for _, what in near), near
