"""Layer ops — conv2d, conv1d, conv_transpose2d, max_pool2d, avg_pool2d (refimpl/conv.py), batch_norm,
layer_norm, group_norm (refimpl/norm.py), var, std, vector_norm (refimpl/statistics.py), cat, stack,
slice, pad (refimpl/shaping.py), dropout and the indexing ops (refimpl/indexing.py), attention,
recurrent cells, drawn by conformance/case/geometry.py: refimpl agrees with torch on hostile geometry,
the geometry is hostile by construction, and the layer mutants are caught (a tie split another way is
a convention; every tie given the whole gradient is caught by the leaf's gradient sum, ``gradsum``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conformance import kinds
from conformance.case.graph import GraphCase, Node, Tensor
from conformance.case.strategies import layer_fixed_cases
from conformance.case.tensor_ops import layer_ops
from conformance.driver import draw, judge_case, run_suite
from conformance.impls import RefImpl, TorchImpl
from conformance.impls.zoo import MUTANTS, MutantImpl
from refimpl import conv, norm, statistics
from refimpl.tensor import index_array, reduction_groups

LAYER_OPS = ("conv2d", "conv1d", "max_pool2d", "avg_pool2d", "batch_norm", "layer_norm", "group_norm", "index_select",
             "gather", "embedding", "scatter_add", "where", "masked_fill", "cumsum", "cumprod", "prod",
             "scaled_dot_product_attention", "lstm", "gru", "conv_transpose2d", "var", "std", "vector_norm", "cat",
             "stack", "slice", "pad", "dropout")
SEEDS = range(2)  # seeds 0-9: tools/kill_matrix.py (docs/mutants.md)


def _suite(name: str, examples: int = 12):
    return next((i, s) for i, s in enumerate(kinds.suites(RefImpl().capabilities, examples)) if s.name == f"op {name}")


@pytest.fixture(scope="module")
def drawn():
    """40 cases of each layer op's suite (seed 0)."""
    out = {}
    for name in LAYER_OPS:
        i, suite = _suite(name, 160)
        out[name] = draw(suite, i)
    return out


def test_every_layer_op_is_documented_for_other_languages():
    doc = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text()
    table = doc[doc.index("## Layer ops"):]
    assert all(f"`{name}`" in table for name in layer_ops())


def test_the_layer_ops_have_their_own_suites_and_family():
    names = [s.name for s in kinds.suites(RefImpl().capabilities, 12)]
    assert [n for n in names if n.removeprefix("op ") in LAYER_OPS] == [f"op {n}" for n in LAYER_OPS]
    families = {s.name.removeprefix("op "): s.family for s in kinds.suites(RefImpl().capabilities, 12)}
    assert [families[n] for n in LAYER_OPS] == ["convolution"] * 4 + ["normalization"] * 3 + ["indexing"] * 6 + [
        "cumulative"] * 3 + ["attention"] + ["recurrent"] * 2 + ["convolution"] + ["statistics"] * 3 + [
        "shaping"] * 4 + ["dropout"]


@pytest.mark.parametrize("name", LAYER_OPS)
def test_refimpl_and_torch_conform_on_every_drawn_case(drawn, name):
    for case in drawn[name][:12]:
        for impl in (RefImpl(), TorchImpl()):
            v = judge_case(impl, case)
            assert v.verdict == "pass", (impl.name, case.nodes[0].attrs, v.reason)


def _remainder(size: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (size + 2 * p - d * (k - 1) - 1) % s


def test_the_geometry_is_hostile_by_construction(drawn):
    convs = [c.nodes[0].attrs | {"shape": c.leaves["x0"].shape, "k": c.leaves["x1"].shape}
             for c in drawn["conv2d"]]
    assert sum(a["groups"] > 1 for a in convs) >= 10
    assert sum(a["stride"] != a["dilation"] for a in convs) >= 10
    assert sum(_remainder(a["shape"][2], a["k"][2], a["stride"][0], a["padding"][0], a["dilation"][0]) > 0
               for a in convs) >= 10  # the stride does not divide what is left
    pools = [(c.nodes[0].attrs, c.leaves["x0"]) for c in drawn["max_pool2d"]]
    assert sum(a["stride"][0] < a["kernel_size"][0] or a["stride"][1] < a["kernel_size"][1] for a, _ in pools) >= 10
    ties = sum(any(len(t) > 1 for t in conv.max_pool_ties(_rt(x), **a)) for a, x in pools)
    assert ties >= 10  # windows whose maxima tie
    avgs = [c.nodes[0].attrs for c in drawn["avg_pool2d"]]
    assert sum(a["ceil_mode"] for a in avgs) >= 10 and sum(not a["count_include_pad"] for a in avgs) >= 10


def _constant_group(case, groups_of) -> bool:
    """Whether some group the normalization normalizes holds one value only (variance 0)."""
    x = case.leaves["x0"]
    attrs = {k: v for k, v in case.nodes[0].attrs.items() if k != "eps"}
    return any(len({x.values[i] for i in g}) == 1 for g in groups_of(x.shape, **attrs)[0])


def test_the_normalizations_are_hostile_by_construction(drawn):
    # a channel of equal values (variance 0): judged at every seed, and now and then drawn
    assert any(_constant_group(c, norm.batch_norm_groups) for c in layer_fixed_cases("batch_norm"))
    assert sum(_constant_group(c, norm.batch_norm_groups) for c in drawn["batch_norm"]) >= 2
    assert sum(len(c.leaves["x0"].shape) > 2 for c in drawn["batch_norm"]) >= 15
    layer = [(c.leaves["x0"].shape, c.nodes[0].attrs["normalized_shape"]) for c in drawn["layer_norm"]]
    assert sum(len(s) == 3 and s[1] != s[2] for s, _ in layer) >= 10  # [B, T, H] with T ≠ H
    assert sum(len(n) == 2 for _, n in layer) >= 10
    assert sum(c.nodes[0].attrs["num_groups"] > 1 for c in drawn["group_norm"]) >= 15
    assert len({c.nodes[0].attrs["eps"] for c in drawn["group_norm"]}) == 3


def _zeros_per_lane(case) -> int:
    """The most zeros any lane along the case's dim holds."""
    x = case.leaves["x0"]
    d = case.nodes[0].attrs["dim"] % len(x.shape)
    _, lanes = reduction_groups(x.shape, (d,))
    return max(sum(x.values[i] == 0 for i in lane) for lane in lanes)


def test_indices_repeat_and_products_meet_zeros_by_construction(drawn):
    for op in ("index_select", "embedding"):
        for c in drawn[op]:
            (_, flat) = index_array(c.nodes[0].attrs["index" if op == "index_select" else "input"])
            assert len(set(flat)) < len(flat), (op, c.nodes[0].attrs)  # a repeat, every case
    for op in ("gather", "scatter_add"):
        assert all(len(set(index_array(c.nodes[0].attrs["index"])[1])) < math.prod(index_array(
            c.nodes[0].attrs["index"])[0]) for c in drawn[op])
    for op in ("prod", "cumprod"):
        zeros = [_zeros_per_lane(c) for c in drawn[op]]
        assert sum(z >= 1 for z in zeros) >= 15 and sum(z >= 2 for z in zeros) >= 2, (op, zeros)
        assert _zeros_per_lane(layer_fixed_cases(op)[0]) == 2  # two zeros in a lane, at every seed
    masks = [sum(index_array_bools(c.nodes[0].attrs["mask"])) for c in drawn["masked_fill"]]
    assert sum(m > 0 for m in masks) >= 30


def test_attention_lengths_and_widths_differ_by_construction(drawn):
    shapes = [[c.leaves[k].shape for k in ("x0", "x1", "x2")] for c in drawn["scaled_dot_product_attention"]]
    assert sum(q[-2] != k[-2] for q, k, _ in shapes) >= 15 and sum(q[-2] > k[-2] for q, k, _ in shapes) >= 6
    assert sum(k[-1] != v[-1] for _, k, v in shapes) >= 15
    assert sum(c.nodes[0].attrs["is_causal"] for c in drawn["scaled_dot_product_attention"]) >= 10


def test_recurrent_cells_run_several_steps_and_sometimes_one_hidden_unit(drawn):
    for op in ("lstm", "gru"):
        shapes = [(c.leaves["x0"].shape, c.leaves["x1"].shape) for c in drawn[op]]
        assert sum(x[0] > 1 for x, _ in shapes) >= 25 and sum(h[-1] == 1 for _, h in shapes) >= 5, op
        assert any(c.leaves["x1"].shape[-1] == 1 for c in layer_fixed_cases(op))  # H = 1, at every seed


def test_transposed_convolutions_are_hostile_by_construction(drawn):
    convs = [c.nodes[0].attrs for c in drawn["conv_transpose2d"]]
    assert sum(a["groups"] > 1 for a in convs) >= 12
    assert sum(a["stride"] != a["dilation"] for a in convs) >= 25
    assert sum(max(a["output_padding"]) > 0 for a in convs) >= 20
    # output_padding where padding puts input in the extra rows: a backward that drops them is off there
    assert sum(any(o > 0 and p > 0 for o, p in zip(a["output_padding"], a["padding"])) for a in convs) >= 10
    fixed = layer_fixed_cases("conv_transpose2d")[0]  # the first: every knob at once
    a = fixed.nodes[0].attrs
    assert a["groups"] > 1 and all(o > 0 and p > 0 for o, p in zip(a["output_padding"], a["padding"]))
    assert all(s != d for s, d in zip(a["stride"], a["dilation"]))


def _radicands_at_zero(case) -> int:
    """How many outputs of a std or norm case take the root of an exact 0."""
    x, attrs = _rt(case.leaves["x0"]), case.nodes[0].attrs
    radicands = statistics.var(x, **attrs) if case.nodes[0].op == "std" else statistics.squared_norms(x, **attrs)
    return sum(statistics.at_zero(radicands))


def test_statistics_meet_constant_and_zero_slices_by_construction(drawn):
    for op in ("std", "vector_norm"):
        assert all(_radicands_at_zero(c) for c in layer_fixed_cases(op)[:1]), op  # at every seed
        assert sum(_radicands_at_zero(c) > 0 for c in drawn[op]) >= (5 if op == "std" else 2), op
        assert sum(len(c.leaves["x0"].shape) == 3 for c in drawn[op]) >= 20
        assert sum(isinstance(c.nodes[0].attrs["dim"], list) for c in drawn[op]) >= 10
    assert {c.nodes[0].attrs["correction"] for c in drawn["var"]} == {0, 1}


def test_refimpl_gives_torchs_zero_at_a_root_of_zero():
    """std of a constant slice, the norm of a slice of zeros: torch 2.13 masks the gradient to 0, and so
    does refimpl (NaN is the other valid answer: tests/test_kink_verdicts.py)."""
    for op, at in (("std", [2, 3, 8, 9]), ("vector_norm", [0, 1, 4, 5])):
        case = layer_fixed_cases(op)[0]
        for impl in (RefImpl(), TorchImpl()):
            grads = impl.run_graph(case).grads["x0"].values
            assert [grads[i] for i in at] == [0.0] * 4, (op, impl.name)


def test_shaping_and_dropout_are_hostile_by_construction(drawn):
    cats = [[c.leaves[k].shape for k in c.leaves] for c in drawn["cat"]]
    dims = [c.nodes[0].attrs["dim"] for c in drawn["cat"]]
    sizes = [[s[d] for s in shapes] for shapes, d in zip(cats, dims)]
    assert sum(len(n) == 3 and n[0] != n[1] for n in sizes) >= 25 and all(n[0] != n[1] for n in sizes)
    assert sum(1 in n for n in sizes) >= 15
    pads = [(c.nodes[0].attrs, c.leaves["x0"].shape) for c in drawn["pad"]]
    assert {a["mode"] for a, _ in pads} == {"constant", "reflect", "replicate", "circular"}
    assert {len(s) for _, s in pads} == {3, 4}
    widest = {"reflect": lambda n: n - 1, "circular": lambda n: n}
    assert sum(any(w == widest[a["mode"]](n) for w, n in zip(a["pad"], [m for m in reversed(s) for _ in (0, 1)]))
               for a, s in pads if a["mode"] in widest) >= 8  # as wide as torch takes
    assert all(a["pad"][k] != a["pad"][k + 1] for a, _ in pads for k in range(0, len(a["pad"]), 2))
    drops = [c.nodes[0].attrs for c in drawn["dropout"]]
    assert all(0 < sum(index_array_bools(a["mask"])) < len(index_array_bools(a["mask"])) for a in drops)
    assert {a["p"] for a in drops} >= {0.1, 0.5} and sum(a["p"] != 0.5 for a in drops) >= 20


def index_array_bools(nested) -> list[bool]:
    return [v for row in nested for v in index_array_bools(row)] if isinstance(nested, list) else [nested]


def _rt(t):
    from refimpl.tensor import Tensor as RTensor

    return RTensor.from_flat(list(t.values), t.shape, requires_grad=False)


@pytest.mark.parametrize("mutant, op, expect", [
    ("max-pool-overwrite", "max_pool2d", "fail"),
    ("max-pool-every-tie", "max_pool2d", "fail"),
    ("max-pool-tie-split", "max_pool2d", "convention"),
    ("avg-pool-kernel-divisor", "avg_pool2d", "fail"),
    ("conv-groups-weight-grad", "conv2d", "fail"),
    ("batch-norm-constant-stats", "batch_norm", "fail"),
    ("layer-norm-2d-count", "layer_norm", "fail"),
    ("norm-weight-bias-swapped", "group_norm", "fail"),
    ("embedding-last-duplicate", "embedding", "fail"),
    ("masked-fill-through-mask", "masked_fill", "fail"),
    ("cumsum-forward-order", "cumsum", "fail"),
    ("prod-zero-gradient", "prod", "fail"),
    ("attention-dv-untransposed", "scaled_dot_product_attention", "fail"),
    ("attention-backward-unscaled", "scaled_dot_product_attention", "fail"),
    ("lstm-no-carry", "lstm", "fail"),
    ("gru-no-carry", "gru", "fail"),
    ("conv-transpose-stride-dilation-swapped", "conv_transpose2d", "fail"),
    ("conv-transpose-output-padding-dropped", "conv_transpose2d", "fail"),
    ("std-mean-constant", "std", "fail"),
    ("var-backward-wrong-correction", "var", "fail"),
    ("pad-edge-overwrite", "pad", "fail"),
    ("cat-split-first-size", "cat", "fail"),
    ("dropout-backward-no-mask", "dropout", "fail"),
    ("dropout-scaled-by-inverse-p", "dropout", "fail"),
])
def test_each_layer_mutant_is_caught_at_every_seed(mutant, op, expect):
    impl = MutantImpl(MUTANTS[mutant])
    i, suite = _suite(op, 40)  # the ci profile's 10 cases
    for seed in SEEDS:
        r = run_suite(impl, suite, seed + i, shrink=False, first_failure_only=True)  # as verify
        worst = "fail" if r.verdicts.get("fail") or r.verdicts.get("error") else \
            "convention" if r.verdicts.get("convention") else "pass"
        assert worst == expect, (mutant, seed, dict(r.verdicts))


def test_every_tie_given_the_whole_gradient_fails_on_the_leafs_sum():
    """Each entry of a tie may take any share of the gradient; together they take it once."""
    impl = MutantImpl(MUTANTS["max-pool-every-tie"])
    i, suite = _suite("max_pool2d")
    v = next(v for c in draw(suite, i) if (v := judge_case(impl, c)).verdict == "fail")
    (gs,) = [e for e in v.entries if e.name == "gradsum[x0]"]
    assert gs.verdict == "fail" and gs.impl > gs.torch and math.isfinite(gs.impl)
    assert any(e.verdict == "convention" for e in v.entries if e.name.startswith("grad[x0]"))


def test_a_nan_leaking_through_where_is_not_charged():
    """where(c, x, sqrt(x)) at x = 0, c true: torch's gradient is NaN (0·∞ in the branch not taken),
    the function's is 1 (refimpl's, which selects). The truth arbitrates: torch-deviates for 1, pass
    for torch's NaN — neither charged (docs/conventions.md)."""
    taken = {"condition": [True, False, False]}
    case = GraphCase({"x": Tensor((3,), (0.0, 1.0, 4.0))},
                     (Node("n0", "sqrt", ("x",)), Node("n1", "where", ("x", "n0"), taken)),
                     "n1", Tensor((3,), (1.0,) * 3))
    ref, torch = judge_case(RefImpl(), case), judge_case(TorchImpl(), case)
    assert ref.verdict == "torch-deviates" and ref.conforms, ref.reason
    (leak,) = [e for e in ref.entries if e.name == "grad[x][0]"]
    assert (leak.impl, leak.truth) == (1.0, 1.0) and math.isnan(leak.torch)
    assert torch.verdict == "pass"
