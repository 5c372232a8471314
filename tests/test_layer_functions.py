"""Course-assignment layer functions composed by the harness (conformance/impls/adapters/layer_functions.py,
examples/layer_functions.py): the example conforms at every seed; each classic slip of such a file is
caught at every seed, with its diagnosis where the failure has a known shape; layer ops run one per
case through their pair, and a backward that returns the wrong gradients is an error naming them."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import kinds
from conformance.case.graph import GraphCase, Node
from conformance.case.strategies import layer_fixed_cases
from conformance.driver import judge_case, run_suite
from conformance.impls.adapters.layer_functions import layer_functions
from conformance.impls.foreign import FOREIGN
from conformance.impls.loading import resolve
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
