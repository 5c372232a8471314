"""The case format: exact JSON round trips, the schema in the repo, and clear errors."""

import json
import math
from importlib.resources import files

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.case.graph import (
    GraphCase,
    GraphResult,
    Node,
    Tensor,
    case_from_json,
    case_to_json,
    dumps,
    loads,
    result_from_json,
    result_to_json,
)
from conformance.case.strategies import graph_cases
from conformance.impls import RefImpl
from conformance.kinds.graph import GRAPH

SCHEMA_DIR = files("conformance") / "schema"
CASE_SCHEMA = json.loads((SCHEMA_DIR / "graph-case.schema.json").read_text())
RESULT_SCHEMA = json.loads((SCHEMA_DIR / "graph-result.schema.json").read_text())


def same_bits(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


@settings(max_examples=200)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True), min_size=1, max_size=6))
def test_every_float_round_trips_bit_for_bit(xs):
    case = GraphCase({"x": Tensor((len(xs),), tuple(xs))}, (Node("n0", "neg", ("x",)),), "n0",
                     Tensor((len(xs),), tuple(xs)))
    back = loads(dumps(case))
    assert all(same_bits(a, b) for a, b in zip(back.leaves["x"].values, xs, strict=True))
    jsonschema.validate(case_to_json(case), CASE_SCHEMA)


@settings(max_examples=60, deadline=None)
@given(graph_cases(max_nodes=6, second_order=True))
def test_generated_cases_and_results_match_the_schema_and_round_trip(case):
    doc = case_to_json(case)
    jsonschema.validate(doc, CASE_SCHEMA)
    assert case_from_json(json.loads(json.dumps(doc))) == case
    result = RefImpl().run_graph(case)
    rdoc = result_to_json(result)
    jsonschema.validate(rdoc, RESULT_SCHEMA)
    back = result_from_json(json.loads(json.dumps(rdoc)))
    assert GRAPH.result_key(back) == GRAPH.result_key(result)  # by bits: a NaN gradient equals itself


@pytest.mark.parametrize("change, message", [
    ({"format": "something-else"}, "not a graph case"),
    ({"version": 99}, "version 99 is not supported"),
])
def test_wrong_format_or_version_is_a_clear_error(change, message):
    doc = {**case_to_json(GraphCase({"x": Tensor.scalar(1.0)}, (Node("n0", "neg", ("x",)),), "n0",
                                    Tensor.scalar(1.0))), **change}
    with pytest.raises(ValueError, match=message):
        case_from_json(doc)


def test_shape_and_values_must_agree():
    doc = case_to_json(GraphCase({"x": Tensor.scalar(1.0)}, (Node("n0", "neg", ("x",)),), "n0",
                                 Tensor.scalar(1.0)))
    doc["leaves"]["x"] = {"shape": [2, 2], "values": [1.0]}
    with pytest.raises(ValueError, match=r"shape \[2, 2\] needs 4 values, got 1"):
        case_from_json(doc)


def test_error_results_round_trip():
    r = GraphResult(error="ZeroDivisionError: float division by zero")
    assert result_from_json(result_to_json(r)) == r


@pytest.mark.parametrize("dtype, between", [("float32", 1 + 2.0**-30), ("float16", 1 + 2.0**-12),
                                            ("bfloat16", 1 + 2.0**-9)])
def test_narrow_cases_must_hold_numbers_of_their_format(dtype, between):
    """A number between two of the format's (1 and its successor) is refused, where it is an
    attribute and where it is a leaf; the same case of numbers of the format loads."""
    doc = case_to_json(GraphCase({"x": Tensor.scalar(0.5)}, (Node("n0", "pow_scalar", ("x",), {"exponent": between}),),
                                 "n0", Tensor.scalar(1.0), dtype=dtype))
    with pytest.raises(ValueError, match=rf"attribute exponent={between} of node n0 is not a {dtype} number"):
        case_from_json(doc)
    doc["nodes"][0]["attrs"]["exponent"] = 0.5
    doc["leaves"]["x"]["values"] = [between]
    with pytest.raises(ValueError, match=f"leaf x holds a value that is not a {dtype} number"):
        case_from_json(doc)
    doc["leaves"]["x"]["values"] = [1.0]
    assert case_from_json(doc).dtype == dtype
