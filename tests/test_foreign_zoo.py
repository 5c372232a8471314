"""The foreign zoo (conformance/impls/foreign): standalone engines that are not refimpl.

Every registered engine loads and is standalone; every planted bug is real (on a hand-written case
the buggy engine's numbers differ from its correct sibling's, which passes); and a small run of
``conformance mutants --zoo foreign`` (dev profile, two seeds) finds every row as expected — but
for the holes listed, each with its reason, which are strict: once a row is as expected, its entry
must go."""

from __future__ import annotations

import ast
import math
import sys

import pytest

from conformance.case.grain import HYPER_OFF
from conformance.case.graph import GraphCase, Node, Tensor
from conformance.case.network import Batch, Layer, NetworkCase, check_case, with_id
from conformance.case.strategies import layer_fixed_cases
from conformance.case.tensor_ops import layer_ops
from conformance.commands import cli
from conformance.commands.mutants import ForeignRow, Outcome, foreign_summary, run_foreign
from conformance.driver import PROFILES
from conformance.driver import judge_case as check
from conformance.impls.adapters.micrograd import op_table
from conformance.impls.foreign import FOREIGN, STYLES
from refimpl import OPS

SEEDS = [0, 1]

#: rows not as expected at dev size, seeds 0 and 1, and why (docs/mutants.md, "The foreign zoo")
HOLES: dict[str, str] = {}  # engine → why its row is not yet as expected (a strict xfail): none today

CORRECT = {style: next(f for f in FOREIGN.values() if f.style == style and f.expect == "conforms")
           for style in STYLES}
#: the styles that run graph cases of elementwise ops (numpy MLPs run training runs, layer functions layer ops)
GRAPH_STYLES = [s for s in STYLES if s not in ("numpy", "layers")]


def one(op, *xs, ct=1.0, **attrs):
    leaves = {f"x{i}": Tensor.scalar(x) for i, x in enumerate(xs)}
    return GraphCase(leaves, (Node("n0", op, tuple(leaves), attrs),), "n0", Tensor.scalar(ct))


def graph(leaves, nodes, ct=1.0):
    return GraphCase({k: Tensor.scalar(v) for k, v in leaves.items()}, tuple(Node(*n) for n in nodes),
                     nodes[-1][0], Tensor.scalar(ct))


def chain(depth):
    """z ← z + x, z ← z·y alternately, ``depth`` nodes deep; values bounded."""
    nodes, prev = [], "z"
    for j in range(depth):
        nodes.append((f"n{j}", "mul" if j % 2 else "add", (prev, "y" if j % 2 else "x")))
        prev = f"n{j}"
    return graph({"x": 0.25, "y": 0.5, "z": 0.1}, nodes, ct=1.5)


#: per buggy engine, a case on which the bug shows (ops the adapter may not offer yet are run directly)
SHOWS = {
    "bfs_order": graph({"x": 0.5, "y": 1.5}, [("v", "mul", ("x", "y")), ("t1", "tanh", ("v",)),
                                              ("t2", "tanh", ("t1",)), ("o", "add", ("v", "t2"))]),
    "recursive_topo": chain(3000),
    "pow_exponent": one("pow_int", 1.5, exponent=3),
    "sigmoid_twice": one("sigmoid", -2.0),
    "tanh_input": one("tanh", 1.25),
    "div_denominator": one("div", 1.5, -4.0),
    "relu_at_zero": one("relu", 0.0),
    "exp_taylor": one("exp", 2.0),
    "div_no_square": one("div", 1.5, -4.0),
    "fanout_overwrite": graph({"x": 3.0}, [("n0", "mul", ("x", "x"))]),
    "log_squared": one("log", 0.25),
    "float32_storage": one("add", 0.1, 0.2),
}
#: per buggy numpy MLP, its correct sibling (the same network without the bug)
MLP_SIBLING = {"mlp_bias_mean": "mlp_tutorial", "mlp_mse_no_2": "mlp_tutorial", "mlp_transposed_dw": "mlp_tutorial",
               "mlp_sigmoid_prime_of_output": "mlp_tutorial", "mlp_no_zero_grad": "mlp_tutorial",
               "mlp_last_nonlinear": "mlp_linear_output"}


#: per buggy set of layer functions, the op whose first fixed hostile case shows its bug
LAYER_SHOWS = {name: f.planted.removeprefix("op:") for name, f in FOREIGN.items()
               if f.style == "layers" and f.expect != "conforms"}


def mlp_case(output: str) -> NetworkCase:
    """Two square sigmoid layers (the last ``output``), MSE mean, plain SGD, two steps of batch 2:
    every numpy bug shows on it (a square layer for the transposed gradient, batch 2 for the
    averaged bias, two steps for the gradients never zeroed)."""
    def t(shape, *vals):
        return Tensor(shape, tuple(vals))

    layers = (Layer(2, 2, "sigmoid", {}, t((2, 2), 0.5, -0.3, 0.8, 0.1), t((2,), 0.1, -0.2)),
              Layer(2, 2, output, {}, t((2, 2), -0.6, 0.4, 0.2, 0.9), t((2,), 0.05, 0.3)))
    batch = Batch(t((2, 2), 1.0, -0.5, 0.25, 2.0), t((2, 2), 0.3, 0.7, 0.9, 0.1))
    hyper = {"lr": 0.5, **HYPER_OFF["sgd"]}
    return with_id(check_case(NetworkCase(layers, "mse", "mean", {}, "sgd", hyper, (batch, batch))))


def run_directly(value_cls, case):
    """Value and gradients through the engine's ``Value`` API, without the adapter's checks (its
    result types, its error results): the raw numbers, the cotangent applied as the adapter does."""
    table = op_table(value_cls)
    leaves = {k: value_cls(t.values[0]) for k, t in case.leaves.items()}
    env = dict(leaves)
    for n in case.nodes:
        env[n.name] = table[n.op].call(*(env[i] for i in n.inputs), OPS[n.op].attributes(n.attrs))
    out = env[case.output]
    out.backward()
    return out.data, {k: v.grad * case.cotangent.values[0] for k, v in leaves.items()}


@pytest.fixture(scope="module")
def loaded():
    impls = {name: f.load() for name, f in FOREIGN.items()}
    yield impls
    for impl in impls.values():
        if hasattr(impl, "close"):
            impl.close()


def test_the_registry():
    assert len(FOREIGN) >= 15
    assert {f.style for f in FOREIGN.values()} == set(STYLES)
    assert {f.expect for f in FOREIGN.values()} == {"conforms", "kill", "convention"}
    assert set(SHOWS) | set(MLP_SIBLING) | set(LAYER_SHOWS) == {n for n, f in FOREIGN.items() if f.expect != "conforms"}
    for f in FOREIGN.values():
        assert f.path.is_file(), f.path


@pytest.mark.parametrize("name", list(FOREIGN))
def test_every_engine_loads_and_stands_alone(loaded, name):
    f, impl = FOREIGN[name], loaded[name]
    if f.style == "numpy":  # a network: training runs, tutorial-style (NetworkClass over its MLP class)
        assert impl.capabilities.networks and not impl.capabilities.ops
    elif f.style == "layers":  # every layer op through the layer-function adapter; CS231n's two, part of each
        cs231n = name.startswith("layers_cs231n")
        assert impl.capabilities.ops == ({"conv2d", "max_pool2d"} if cs231n else set(layer_ops()))
        assert bool(impl.capabilities.without) == cs231n and not impl.capabilities.networks
    else:
        assert {"add", "sub", "mul", "div", "neg", "relu"} <= impl.capabilities.ops, impl.capabilities.ops
    tree = ast.parse(f.path.read_text())
    first = (ast.get_docstring(tree) or "").split("\n")[0].lower()  # says the style, and correct or which bug
    assert {"jsonl": "json lines"}.get(f.style, f.style[:5]) in first, first
    assert {"conforms": "correct", "kill": "bug:", "convention": "not a bug"}[f.expect] in first, first
    imported = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names) | ({"numpy"} if f.style in ("numpy", "layers") else set())


@pytest.mark.parametrize("name", list(SHOWS))
def test_every_planted_bug_is_real(loaded, name):
    """The buggy engine's numbers differ from its correct sibling's on the hand-written case, and the
    sibling passes it."""
    f, case = FOREIGN[name], SHOWS[name]
    sibling = CORRECT[f.style]
    assert check(loaded[sibling.name], case).verdict == "pass"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # Python's default: an imported library may have raised it
    try:
        got = run_directly(loaded[name].value_cls, case)
    except RecursionError:
        assert name == "recursive_topo"
        return
    finally:
        sys.setrecursionlimit(limit)
    want = run_directly(loaded[sibling.name].value_cls, case)
    pairs = [(got[0], want[0])] + [(got[1][k], want[1][k]) for k in want[1]]
    assert any(not math.isclose(a, b, rel_tol=1e-12) for a, b in pairs), (got, want)
    if f.expect == "convention":
        assert check(loaded[name], case).verdict == "convention"


@pytest.mark.parametrize("name", list(MLP_SIBLING))
def test_every_planted_network_bug_is_real(loaded, name):
    """On a hand-written training run the buggy MLP's numbers differ from its correct sibling's,
    which passes it."""
    sibling = MLP_SIBLING[name]
    (output,) = loaded[sibling].capabilities.output_activations
    case = mlp_case(output)
    assert check(loaded[sibling], case).verdict == "pass"
    got, want = loaded[name].run_network(case), loaded[sibling].run_network(case)
    nums = lambda r: [v for st in r.steps for t in (st.loss, *st.grads.values()) for v in t.values]
    assert any(not math.isclose(a, b, rel_tol=1e-12) for a, b in zip(nums(got), nums(want)))
    assert not check(loaded[name], case).conforms


@pytest.mark.parametrize("name", list(LAYER_SHOWS))
def test_every_planted_layer_bug_is_real(loaded, name):
    """On one of its op's fixed hostile cases the buggy set's numbers differ from the correct set's —
    its gradients only, but for a forward bug (``entry:value``) — or it raises; the correct set
    passes every one, the buggy one fails (or errs on) that one."""
    forward_bug = "entry:value" in FOREIGN[name].planted
    shown = []
    op = LAYER_SHOWS[name].split()[0]
    for case in layer_fixed_cases(op, off=loaded[name].capabilities.without.get(op, frozenset())):
        correct = loaded["layers_assignment"]
        assert check(correct, case).verdict == "pass"
        want = correct.run_graph(case)
        try:
            got = loaded[name].run_graph(case)
        except Exception:  # a bug that breaks the shapes (dV = P·dO with L ≠ S; a squeeze at H = 1)
            shown.append(check(loaded[name], case).verdict == "error")
            continue
        if _differ(got.value.values, want.value.values) != forward_bug:
            shown.append(False)  # a forward bug must show in the value, any other must leave it right
        elif forward_bug or _differ(_grads(got), _grads(want)):
            shown.append(check(loaded[name], case).verdict in ("fail", "nonfinite-mismatch"))
    assert any(shown), name


def _differ(xs, ys) -> bool:
    return any(not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(xs, ys))


def _grads(result) -> list[float]:
    return [v for k in sorted(result.grads) for v in result.grads[k].values]


def test_correct_engines_sort_deep_graphs_without_recursion(loaded):
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        for style in GRAPH_STYLES:
            assert check(loaded[CORRECT[style].name], chain(5000)).verdict == "pass", style
    finally:
        sys.setrecursionlimit(limit)


def test_the_jsonl_engine_runs_deep_chains(loaded):
    """It has sin: verify's deep-chain suite reaches it (z ← sin(z) + x, z ← tanh(z)·y)."""
    nodes, prev = [], "z"
    for j in range(1500):
        nodes += [(f"s{j}", "sin" if j % 2 == 0 else "tanh", (prev,)),
                  (f"n{j}", "add" if j % 2 == 0 else "mul", (f"s{j}", "x" if j % 2 == 0 else "y"))]
        prev = f"n{j}"
    assert check(loaded["jsonl_engine"], graph({"x": 0.3, "y": 0.9, "z": -0.2}, nodes)).verdict == "pass"


@pytest.fixture(scope="module")
def matrix():
    return {r.entry.name: r for r in run_foreign(list(FOREIGN), PROFILES["dev"], SEEDS, workers=2)}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=HOLES[n]))
                                  if n in HOLES else n for n in FOREIGN])
def test_every_row_is_as_expected(matrix, name):
    row = matrix[name]
    assert [o.seed for o in row.outcomes] == SEEDS
    assert row.ok, [(o.seed, o.status, [(s, v.verdict, v.reason[:120]) for s, v in o.failures]) for o in row.outcomes]


def test_the_command(capsys):
    assert cli.main(["mutants", "--seeds", "2"]) == 2  # several seeds: the foreign zoo only
    assert cli.main(["mutants", "--zoo", "foreign", "--only", "nosuch"]) == 2
    assert cli.main(["mutants", "--zoo", "foreign", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in FOREIGN)
    assert cli.main(["mutants", "--zoo", "foreign", "--profile", "dev", "--seeds", "2", "--workers", "1",
                     "--only", "closures", "tanh_input"]) == 0
    out = capsys.readouterr().out
    assert "seed 0" in out and "seed 1" in out and "as expected at every seed: 2/2 engines" in out
    assert "DOES NOT CONFORM DOES NOT CONFORM" in out and "op tanh" in out


def test_a_row_is_as_expected_only_with_the_planted_bug_at_every_seed(loaded):
    entry = FOREIGN["tanh_input"]
    tanh = check(loaded["tanh_input"], SHOWS["tanh_input"])
    div = check(loaded["div_denominator"], SHOWS["div_denominator"])
    assert not tanh.conforms and not div.conforms

    def outcome(seed, failures):
        first = failures[0] if failures else ("", None)
        return Outcome(entry.name, entry.style, entry.expect, "killed" if failures else "survived", *first,
                       seed=seed, failures=failures)

    good = outcome(0, [("op tanh", tanh)])
    assert ForeignRow(entry, [good, outcome(1, [("op div", div), ("scalar graphs", tanh)])]).ok
    assert not ForeignRow(entry, [good, outcome(1, [])]).ok  # it conforms at seed 1
    row = ForeignRow(entry, [good, outcome(1, [("op div", div)])])  # killed at seed 1, but not by its bug
    assert not row.ok and row.found() == 1
    assert "planted bug (op:tanh) not among the reported cases at seed 1" in foreign_summary([row])
