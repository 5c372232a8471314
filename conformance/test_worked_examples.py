"""The chain-rule tutorials' worked examples as cases, for any implementation: judged like every
case, and held to the tutorials' own hand-computed numbers. They are fixed cases, not a suite of
``conformance verify``; under ``--conformance-report`` they are recorded as the suite
``worked examples``."""

import pytest
from hypothesis import strategies as st

from conformance.assertions import assert_conforms
from conformance.case.graph import GraphCase, Node, Tensor
from conformance.kinds.kind import Suite


def scalar_case(leaves, nodes, output, ct=1.0):
    return GraphCase({k: Tensor.scalar(v) for k, v in leaves.items()},
                     tuple(Node(n, op, tuple(ins)) for n, op, ins in nodes), output, Tensor.scalar(ct),
                     id=f"worked-{output}")


def quadratic(x):  # f(x) = 2x² − 3x + 4 with the constants as leaves that get gradients too
    return scalar_case({"x": x, "two": 2.0, "three": 3.0, "four": 4.0},
                       [("x2", "square", ["x"]), ("a", "mul", ["two", "x2"]), ("b", "mul", ["three", "x"]),
                        ("c", "sub", ["a", "b"]), ("f", "add", ["c", "four"])], "f")


EXAMPLES = [
    pytest.param(quadratic(2.0), {"x": 5.0}, id="2x^2-3x+4 at 2"),
    pytest.param(quadratic(6.0), {"x": 21.0}, id="2x^2-3x+4 at 6"),
    pytest.param(quadratic(-2.0), {"x": -11.0}, id="2x^2-3x+4 at -2"),
    pytest.param(quadratic(0.75), {"x": 0.0}, id="2x^2-3x+4 at 0.75"),
    pytest.param(scalar_case({"a": 3.0, "b": -2.0, "c": 8.0}, [("e", "mul", ["a", "b"]), ("d", "add", ["e", "c"])],
                             "d"), {"a": -2.0, "b": 3.0, "c": 1.0}, id="d=ab+c"),
    pytest.param(scalar_case({"a": 3.0, "b": -2.0, "c": 8.0, "f": -2.0},
                             [("e", "mul", ["a", "b"]), ("d", "add", ["e", "c"]), ("L", "mul", ["d", "f"])], "L"),
                 {"a": 4.0, "b": -6.0, "c": -2.0, "f": 2.0}, id="L=(ab+c)f"),
    pytest.param(scalar_case({"x": 0.0}, [("s", "sigmoid", ["x"])], "s"), {"x": 0.25}, id="sigmoid'(0)"),
]


#: what the records file these cases under (each case's index in it: its place in EXAMPLES)
WORKED = Suite("worked examples", "graphs", st.nothing(), len(EXAMPLES))


@pytest.mark.parametrize("index, case, expected", [pytest.param(i, *p.values, id=p.id) for i, p in enumerate(EXAMPLES)])
def test_worked_example(impl, conformance, index, case, expected):
    missing = {n.op for n in case.nodes} - set(impl.capabilities.ops)
    if missing:
        pytest.skip(f"{impl.name} does not support {', '.join(sorted(missing))}")
    record = conformance.on_case
    assert_conforms(impl, case, always_truth=conformance.always_truth,
                    on_case=None if record is None else lambda v, seconds: record(WORKED, 0, index, v, seconds))
    result = impl.run_graph(case)
    for leaf, slope in expected.items():
        assert result.grads[leaf].values[0] == slope, f"d{case.output}/d{leaf}"
