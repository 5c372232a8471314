"""The micrograd adapter: PyPI micrograd 0.1.0 and a clone, capabilities by probing, what conforms,
where micrograd diverges (docs/findings.md), planted bugs caught and shrunk, and bad specs."""

import math
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis.errors import NoSuchExample

from conformance.case.graph import GraphCase, Node, Tensor
from conformance.case.strategies import graph_cases
from conformance.driver import judge_case as check
from conformance.impls.adapters.micrograd import MicrogradAdapter, MicrogradSpecError, load_micrograd
from conformance.oracle.run import evaluate, leaf_tensors
from refimpl import FLOAT64

CLONE = Path(__file__).parent / "fixtures" / "micrograd_clone.py"
MICROGRAD_OPS = {"add", "sub", "mul", "div", "neg", "pow_int", "pow_scalar", "square", "reciprocal", "relu"}
CLONE_OPS = MICROGRAD_OPS | {"tanh", "exp", "log", "sigmoid"}
RANDOM = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])
SEARCH = settings(max_examples=400, derandomize=True, database=None, deadline=None)


@pytest.fixture(scope="module")
def micrograd():
    return load_micrograd("micrograd")


@pytest.fixture(scope="module")
def clone():
    return load_micrograd(str(CLONE))


def one(op, *xs, ct=1.0, **attrs):
    leaves = {f"x{i}": Tensor.scalar(x) for i, x in enumerate(xs)}
    return GraphCase(leaves, (Node("n0", op, tuple(leaves), attrs),), "n0", Tensor.scalar(ct))


def chain(depth, ct=1.5):
    """z ← z + x, z ← z·y, alternately: ``depth`` nodes, each one deeper than the last; values bounded."""
    nodes, prev = [], "z"
    for j in range(depth):
        nodes.append(Node(f"n{j}", "mul" if j % 2 else "add", (prev, "y" if j % 2 else "x")))
        prev = f"n{j}"
    leaves = {"x": Tensor.scalar(0.25), "y": Tensor.scalar(0.5), "z": Tensor.scalar(0.1)}
    return GraphCase(leaves, tuple(nodes), prev, Tensor.scalar(ct))


def planted(tmp_path, old, new, name):
    """A copy of the clone with one line of its text changed: a clone with a bug."""
    text = CLONE.read_text()
    assert text.count(old) == 1, old
    path = tmp_path / f"{name}.py"
    path.write_text(text.replace(old, new))
    return load_micrograd(str(path))


# --- PyPI micrograd 0.1.0 ------------------------------------------------------------------------

def test_micrograd_identity_and_probed_capabilities(micrograd):
    assert (micrograd.name, micrograd.version) == ("micrograd", "0.1.0")
    # 0.1.0 has relu but no tanh/exp/log/sigmoid; division and negation go through * and **
    assert micrograd.capabilities.ops == MICROGRAD_OPS
    assert micrograd.capabilities.dtypes == ("float64",) and not micrograd.capabilities.second_order
    assert load_micrograd("micrograd.engine").capabilities.ops == MICROGRAD_OPS


def _known_divergence(case, verdict):
    """x**0 at x == 0: micrograd's backward computes 0 · 0.0**-1 and raises (docs/findings.md)."""
    if verdict.verdict != "error" or "ZeroDivisionError" not in verdict.reason:
        return False
    env = evaluate(case, leaf_tensors(case, FLOAT64, requires_grad=False))
    return any(n.op == "pow_int" and n.attrs.get("exponent") == 0 and env[n.inputs[0]].elements[0].data == 0
               for n in case.nodes)


@RANDOM
@given(graph_cases(ops=MICROGRAD_OPS, max_nodes=6))
def test_micrograd_random_graphs_conform(micrograd, case):
    v = check(micrograd, case)
    assert v.conforms or _known_divergence(case, v), f"{v.verdict}: {v.reason}"


def test_micrograd_x_pow_0_at_0_is_an_error(micrograd):
    v = check(micrograd, one("pow_int", 0.0, exponent=0))  # torch: value 1, gradient 0
    assert v.verdict == "error" and "ZeroDivisionError" in v.reason and "in backward" in v.reason


def test_micrograd_relu_at_zero_is_torchs_convention(micrograd):
    for x in (0.0, -0.0):
        case = one("relu", x, ct=-1.5)
        assert check(micrograd, case).verdict == "pass"
        assert micrograd.run_graph(case).grads["x0"].values == (0.0,)


def test_micrograd_deep_chain_is_a_recursion_error(micrograd):
    # Python's default limit, pinned: an imported library may have raised it (tinygrad sets 10000)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        _deep_chain_is_a_recursion_error(micrograd)
    finally:
        sys.setrecursionlimit(limit)


def _deep_chain_is_a_recursion_error(micrograd):
    assert check(micrograd, chain(400)).verdict == "pass"  # well under the recursion limit
    v = check(micrograd, chain(5000))
    assert v.verdict == "error" and v.reason.startswith("RecursionError:"), v.reason
    assert "5000 nodes deep" in v.reason
    assert micrograd.run_graph(chain(20)).error is None  # the interpreter has recovered


def test_micrograd_recursion_error_depends_on_the_recursion_limit(micrograd):
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10000)
    try:
        assert check(micrograd, chain(2000)).verdict == "pass"
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("case, message", [
    (one("div", 1.0, 0.0), "ZeroDivisionError"),          # torch: inf, gradients inf and -inf
    (one("reciprocal", 0.0), "ZeroDivisionError"),        # torch: inf, gradient -inf
    (one("square", 1e200), "OverflowError"),              # float ** int raises; torch: inf
    (one("pow_scalar", -8.0, exponent=1 / 3), "complex"),  # outside pow_scalar's domain; torch: nan
])
def test_micrograd_where_ieee_gives_inf_or_nan_it_raises(micrograd, case, message):
    v = check(micrograd, case)
    assert v.verdict == "error" and message in v.reason, v.reason
    assert "\n" not in v.reason


def test_micrograd_product_overflow_is_ieee(micrograd):
    assert check(micrograd, one("mul", 1e200, 1e200)).verdict == "pass"  # inf, as torch


def test_cotangent_scales_gradients_not_the_value(micrograd):
    r = micrograd.run_graph(one("mul", 3.0, -2.0, ct=0.5))
    assert r.value.values == (-6.0,)
    assert (r.grads["x0"].values, r.grads["x1"].values) == ((-1.0,), (1.5,))
    assert micrograd.run_graph(one("mul", 3.0, -2.0, ct=0.5)) == r  # fresh Values: nothing accumulates


def test_unused_leaf_has_zero_gradient(micrograd):
    case = GraphCase({"a": Tensor.scalar(2.0), "b": Tensor.scalar(5.0)}, (Node("n0", "relu", ("a",)),), "n0",
                     Tensor.scalar(1.0))
    r = micrograd.run_graph(case)
    assert r.grads["b"].values == (0.0,) and isinstance(r.grads["b"].values[0], float)


@pytest.mark.parametrize("case, message", [
    (one("tanh", 0.5), "does not support tanh"),
    (GraphCase({"a": Tensor((2,), (1.0, 2.0))}, (Node("n0", "neg", ("a",)),), "n0", Tensor((2,), (1.0, 1.0))),
     "scalars"),
    (GraphCase({"a": Tensor.scalar(1.0)}, (Node("n0", "neg", ("a",)),), "n0", Tensor.scalar(1.0), "float32"),
     "float32"),
])
def test_cases_it_cannot_run_are_errors_not_crashes(micrograd, case, message):
    r = micrograd.run_graph(case)
    assert r.error and message in r.error and r.value is None


# --- a clone: discovery by probing, conformance, planted bugs -----------------------------------

def test_clone_discovery(clone):
    assert (clone.name, clone.version) == ("micrograd_clone", "0.0.1-clone")
    assert clone.capabilities.ops == CLONE_OPS


@RANDOM
@given(graph_cases(ops=CLONE_OPS, max_nodes=6))
def test_clone_random_graphs_conform(clone, case):
    v = check(clone, case)
    assert v.conforms, f"{v.verdict}: {v.reason}"


def test_clone_iterative_sort_handles_deep_chains(clone):
    assert check(clone, chain(5000)).verdict == "pass"


def test_probing_is_by_behaviour_not_by_name(clone):
    base = clone.value_cls

    class Odd(base):
        def tanh(self):  # present, but not tanh
            return self.exp()

        def exp(self):  # present, but unimplemented
            raise NotImplementedError

        def sigmoid(self):  # right forward, broken backward: supported, and then reported
            out = base(1 / (1 + math.exp(-self.data)), (self,), "sigmoid")
            out._backward = lambda: 1 / 0
            return out

    adapter = MicrogradAdapter(Odd, name="odd")
    assert adapter.capabilities.ops == CLONE_OPS - {"tanh", "exp"}
    v = check(adapter, one("sigmoid", 0.5))
    assert v.verdict == "error" and "ZeroDivisionError" in v.reason


def fails(impl):
    return lambda case: not check(impl, case).conforms


def test_planted_tanh_derivative_is_caught_and_shrinks(tmp_path):
    buggy = planted(tmp_path, "(1 - t**2) * out.grad", "(1 - t) * out.grad", "tanh_bug")
    case = find(graph_cases(ops=buggy.capabilities.ops, max_nodes=6), fails(buggy), settings=SEARCH)
    assert len(case.nodes) <= 2 and any(n.op == "tanh" for n in case.nodes), case.nodes


def test_planted_fan_out_overwrite_is_caught_and_shrinks(tmp_path):
    # the classic: ``=`` where the chain rule needs ``+=``, in mul's backward
    buggy = planted(tmp_path, "self.grad += other.data * out.grad", "self.grad = other.data * out.grad",
                    "overwrite_bug")
    case = find(graph_cases(ops=buggy.capabilities.ops, max_nodes=6), fails(buggy), settings=SEARCH)
    used = [i for n in case.nodes for i in n.inputs]
    assert len(case.nodes) <= 3 and len(used) > len(set(used)), case.nodes


@pytest.mark.parametrize("spoilt, found", [
    ("str(v.grad)", "a str ('-3.0')"),  # float("-3.0") would take it: the result would pass, the bug unseen
    ("v.grad < 0", "a bool (True)"),
    ("complex(v.grad)", "a complex ((-3+0j))"),
    ("None", "a NoneType (None)"),
    ("[v.grad]", "a list ([-3.0])"),
    ("Value(v.grad)", "a Value (Value(data=-3.0, grad=0.0))"),
])
def test_a_gradient_that_is_not_a_real_number_is_an_error_naming_its_type(tmp_path, spoilt, found):
    buggy = planted(tmp_path, "            v._backward()\n",
                    f"            v._backward()\n        for v in topo:\n            v.grad = {spoilt}\n", "typed")
    v = check(buggy, one("mul", 0.5, -3.0))
    assert v.verdict == "error", v.reason
    assert f"TypeError: the gradient of x0 is {found}, not a real number" in v.reason, v.reason


def test_correct_clone_is_not_flagged(clone):
    with pytest.raises(NoSuchExample):
        find(graph_cases(ops=clone.capabilities.ops, max_nodes=6), fails(clone),
             settings=settings(SEARCH, max_examples=100))


# --- bad specs -----------------------------------------------------------------------------------

def _bad(spec):
    with pytest.raises(MicrogradSpecError) as info:
        load_micrograd(spec)
    assert isinstance(info.value, LookupError) and isinstance(info.value, ValueError)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_bad_specs_are_one_line_errors(tmp_path):
    assert "no micrograd-like Value class" in _bad("json")
    assert "no such file" in _bad(str(tmp_path / "nowhere.py"))
    assert "cannot import" in _bad("no_such_module_xyz")
    assert "neither a module name nor a path" in _bad("not a module")
    (tmp_path / "novalue.py").write_text("x = 1\n")
    assert "looked for novalue.Value and novalue.engine.Value" in _bad(str(tmp_path / "novalue.py"))
    (tmp_path / "notvalue.py").write_text("class Value:\n    def __init__(self, data):\n        self.data = data\n")
    assert "Value(1.5) * Value(2.0)" in _bad(str(tmp_path / "notvalue.py"))
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom\\nsecond line')\n")
    assert "RuntimeError: boom second line" in _bad(str(tmp_path / "broken.py"))
    (tmp_path / "notes.txt").write_text("hello\n")
    assert "not a .py file" in _bad(str(tmp_path / "notes.txt"))
