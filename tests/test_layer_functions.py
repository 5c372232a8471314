"""Course-assignment layer functions composed by the harness (conformance/impls/adapters/layer_functions.py,
examples/layer_functions.py): the example conforms at every seed; each classic slip of such a file is
caught at every seed, with its diagnosis where the failure has a known shape; layer ops run one per
case through their pair, and a backward that returns the wrong gradients is an error naming them."""

from __future__ import annotations

import json
import shlex
import sys

import numpy as np
import pytest

from conformance import kinds
from conformance.case.geometry import KNOBS, uses
from conformance.case.graph import GraphCase, Node
from conformance.case.strategies import layer_fixed_cases
from conformance.driver import draw, judge_case, run_suite
from conformance.impls.adapters.jsonl import CommandAdapter, StartError
from conformance.impls.adapters.layer_functions import layer_functions
from conformance.impls.foreign import FOREIGN
from conformance.impls.loading import resolve
from conformance.kinds import graph as graph_kind
from conformance.verdict.diagnosis import diagnose

SEEDS = range(3)


@pytest.fixture(scope="module")
def example():
    return resolve("examples/layer_functions.py", isolate=False)


@pytest.fixture(scope="module")
def module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("_layer_functions_example", "examples/layer_functions.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _suites(impl, examples=12):
    return [(i, s) for i, s in enumerate(kinds.suites(impl.capabilities, examples)) if s.family == "networks"]


def test_the_example_declares_what_it_was_given_and_conforms_at_every_seed(example):
    caps = example.capabilities
    assert caps.activations == caps.output_activations == {"relu", "sigmoid", "identity"}
    assert dict(caps.losses) == {"cross_entropy": {"mean"}, "mse": {"mean"}}
    assert dict(caps.optimizers) == {"sgd": {"lr"}, "none": set()}
    for seed in SEEDS:
        for i, suite in _suites(example):
            r = run_suite(example, suite, seed + i, first_failure_only=True)
            assert r.first_bad is None, (seed, suite.name, r.first_bad[1].reason)


def _with(module, **changes):
    parts = dict(affine=(module.affine_forward, module.affine_backward),
                 activations={"relu": (module.relu_forward, module.relu_backward),
                              "sigmoid": (module.sigmoid_forward, module.sigmoid_backward)},
                 losses={"cross_entropy": module.softmax_loss, "mse": module.mse_loss})
    return layer_functions(name="planted", **{**parts, **changes})


def _bias_mean(module):
    def affine_backward(dout, cache):
        dx, dw, _ = module.affine_backward(dout, cache)
        return dx, dw, dout.mean(axis=0)
    return {"affine": (module.affine_forward, affine_backward)}


def _softmax_not_averaged(module):
    def softmax_loss(x, y):
        loss, dx = module.softmax_loss(x, y)
        return loss, dx * x.shape[0]
    return {"losses": {"cross_entropy": softmax_loss}}


def _sigmoid_of_input(module):
    def sigmoid_forward(x):
        out, _ = module.sigmoid_forward(x)
        return out, x  # the cache holds the input, the backward uses it as the output
    return {"activations": {"sigmoid": (sigmoid_forward, module.sigmoid_backward)}}


@pytest.mark.parametrize("slip, words", [
    (_bias_mean, "averaged over the batch"),
    (_softmax_not_averaged, "summed over the batch"),
    (_sigmoid_of_input, None),
])
def test_a_slip_in_one_function_is_caught_at_every_seed(module, slip, words):
    impl = _with(module, **slip(module))
    i, suite = _suites(impl, 40)[0]
    for seed in SEEDS:
        r = run_suite(impl, suite, seed + i, first_failure_only=True)
        assert r.failure is not None, f"not caught at seed {seed}"
        assert len(r.failure.case.layers) == 1 or words is None, r.failure.case.summary()
        if words:
            assert any(words in line for line in diagnose(r.failure)), (seed, diagnose(r.failure), r.failure.reason)


def _conv_case():
    return layer_fixed_cases("conv2d")[0]


def _foreign(name):
    return FOREIGN[name].load()


def test_layer_ops_alone_declare_only_them_and_run_one_op_per_case():
    impl = _foreign("layers_assignment")
    assert not impl.capabilities.networks
    case = _conv_case()
    result = impl.run_graph(case)
    assert result.value.shape == case.cotangent.shape and set(result.grads) == set(case.leaves)
    two = GraphCase(case.leaves, (*case.nodes, Node("n1", "conv2d", ("n0", "x1", "x2"), case.nodes[0].attrs)), "n1",
                    case.cotangent)
    with pytest.raises(ValueError, match="one layer op per case, got 2 nodes"):
        impl.run_graph(two)


@pytest.mark.parametrize("backward, message", [
    (lambda dout, cache: (cache, cache), "conv2d backward gave 2 gradients for 3 inputs \\(x0, x1, x2\\)"),
    (lambda dout, cache: (cache, cache[..., :1], cache), "the gradient of x1 has shape"),
])
def test_a_backward_that_returns_the_wrong_gradients_is_an_error_naming_them(backward, message):
    impl = layer_functions(name="slips", ops={"conv2d": (lambda x, w, b, **attrs: (np.zeros((1, 4, 3, 4)), x),
                                                         backward)})
    case = _conv_case()
    with pytest.raises((ValueError, TypeError), match=message):
        impl.run_graph(case)
    v = judge_case(impl, case)
    assert v.verdict == "error" and message.replace("\\", "").split(" (")[0][:20] in v.reason


# --- part of an op: the knobs an implementation declares it does not take (Capabilities.without) ---

ALL_KNOBS = [(op, frozenset(knobs)) for op, knobs in KNOBS.items()]
ONE_KNOB = [(op, frozenset({k})) for op, knobs in KNOBS.items() for k in knobs]


def _drawn(op, off, seed, n=60):
    impl = layer_functions(name="part", ops={op: (None, None)}, without={op: off})
    (suite,) = [s for s in kinds.suites(impl.capabilities, 4 * n) if s.name == f"op {op}"]
    return suite, draw(suite, seed)


@pytest.mark.parametrize("op, off", ALL_KNOBS + ONE_KNOB,
                         ids=lambda v: v if isinstance(v, str) else "+".join(sorted(v)))
def test_a_knob_left_out_is_in_no_case_drawn_or_fixed(op, off):
    for seed in SEEDS:
        suite, cases = _drawn(op, off, seed)
        assert len(cases) >= 60 and suite.fixed, (op, off)  # a corner case without the knobs remains
        for case in (*suite.fixed, *cases):
            shapes = [t.shape for t in case.leaves.values()]
            assert not uses(op, case.nodes[0].attrs, shapes) & off, (op, off, case.nodes[0].attrs, shapes)


def test_what_is_left_stays_hostile():
    """Without every other knob, an assignment's convolution and max pool still meet sizes the stride
    does not divide, several channels, and (the pool) windows that overlap and tie; without the
    remainder too, windows still overlap and tie, and every size is one the stride divides."""
    def but(op, *kept):
        return frozenset(KNOBS[op]) - set(kept)

    def left_over(c):
        return "remainder" in uses(c.nodes[0].op, c.nodes[0].attrs, [t.shape for t in c.leaves.values()])

    convs = [c for seed in SEEDS for c in _drawn("conv2d", but("conv2d", "remainder"), seed)[1]]
    assert sum(map(left_over, convs)) >= len(convs) // 5
    assert sum(c.leaves["x0"].shape[1] > 1 for c in convs) >= len(convs) // 3
    assert sum(c.nodes[0].attrs["stride"][0] > 1 and c.nodes[0].attrs["padding"][0] > 0 for c in convs) >= 20
    for off in (but("max_pool2d", "remainder"), but("max_pool2d")):
        pools = [c for seed in SEEDS for c in _drawn("max_pool2d", off, seed)[1]]
        overlap = [c for c in pools
                   if any(map(int.__lt__, c.nodes[0].attrs["stride"], c.nodes[0].attrs["kernel_size"]))]
        assert len(overlap) >= len(pools) // 4
        assert sum(len(set(c.leaves["x0"].values)) < len(c.leaves["x0"].values) for c in overlap) >= len(overlap) // 2
        assert sum(map(left_over, pools)) >= (len(pools) // 5 if "remainder" not in off else 0)
    assert not any(map(left_over, (c for seed in SEEDS for c in _drawn("conv2d", but("conv2d"), seed)[1])))


def test_without_the_declaration_an_assignment_fails_on_what_it_does_not_take():
    """layers_cs231n conforms with its WITHOUT (the foreign zoo); given the full op it does not take
    (its glue passes stride[0] for both axes, and nothing of dilation or groups), the suite says so."""
    f = FOREIGN["layers_cs231n"]
    full = layer_functions(name="cs231n-full", ops=f.load().ops)
    declared = f.load()
    assert declared.capabilities.without and not full.capabilities.without
    for impl in (declared, full):
        for seed in SEEDS:
            suites = kinds.suites(impl.capabilities, 12)
            verdicts = {v for i, s in enumerate(suites) for v, n in run_suite(impl, s, seed + i).verdicts.items()
                        if n and v != "pass"}
            if impl is declared:
                assert not verdicts, (seed, verdicts)
            else:  # wrong numbers where it reads one stride for two, errors where the shapes then differ
                assert verdicts & {"fail", "error"}, (seed, verdicts)


def test_the_declaration_is_checked_and_shown():
    with pytest.raises(ValueError, match="unknown knob\\(s\\) of conv2d 'group'; known: groups, dilation, per_axis"):
        layer_functions(name="x", ops={"conv2d": (None, None)}, without={"conv2d": ["group"]})
    with pytest.raises(ValueError, match="'relu' has no knobs to leave out"):
        layer_functions(name="x", ops={}, without={"relu": ["x"]})
    impl = FOREIGN["layers_cs231n"].load()
    assert graph_kind.declared(impl.capabilities).endswith(
        "conv2d without dilation, groups, per_axis; max_pool2d without ceil_mode, dilation, padding, per_axis")
    left_out = kinds.unsupported(impl.capabilities)
    assert left_out["conv2d with groups > 1"] == left_out["max_pool2d with ceil_mode=True"] == "convolution"


def test_the_declaration_crosses_the_worker_and_the_protocol(tmp_path):
    """A user's file runs in a worker (conformance.commands.serve): its hello carries ``without``; a
    JSON Lines program declares it the same way, and a wrong one is a one-line start error."""
    user = tmp_path / "my_layers.py"
    user.write_text("from conformance.impls.foreign import FOREIGN\nadapter = FOREIGN['layers_cs231n'].load()\n")
    impl = resolve(str(user), isolate=True)
    try:
        assert impl.capabilities.without == FOREIGN["layers_cs231n"].load().capabilities.without
    finally:
        impl.close()
    ok = {"ops": ["conv2d"], "without": {"conv2d": ["groups", "dilation"]}}
    adapter = CommandAdapter(_hello_program(ok), start_timeout=10.0)
    try:
        assert adapter.capabilities.without == {"conv2d": {"groups", "dilation"}}
    finally:
        adapter.close()
    for bad, says in (({**ok, "without": ["groups"]}, "capabilities.without must be an object"),
                      ({**ok, "without": {"conv2d": "groups"}}, "capabilities.without must be an object"),
                      ({**ok, "without": {"conv2d": ["stride"]}}, "capabilities.without: unknown knob")):
        with pytest.raises(StartError, match=says) as info:
            CommandAdapter(_hello_program(bad), start_timeout=10.0)
        assert "\n" not in str(info.value)


def _hello_program(capabilities: dict) -> str:
    """A program that answers the hello with ``capabilities`` and then waits for the bye."""
    hello = {"type": "hello", "protocol": 1, "name": "part", "version": "1", "capabilities": capabilities}
    code = f"import sys; sys.stdin.readline(); print({json.dumps(json.dumps(hello))}, flush=True); sys.stdin.read()"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"
