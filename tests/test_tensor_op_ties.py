"""Tensor ops declare where they choose among tied elements (``TensorOp.ties``) and where they take a
root of 0 (``TensorOp.singular``) as data; the verdicts' kink finder reads those fields and names no op."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from conformance.case.tensor_ops import (
    SINGULAR_RULES,
    TENSOR_OPS,
    TIE_RULES,
    declare,
    singular_outputs,
    tied_candidates,
)
from conformance.verdict import graph as verdict
from conformance.verdict import kinks
from refimpl import Value
from refimpl.tensor import Tensor


def test_every_tensor_op_declares_a_known_tie_rule_or_none():
    for op in TENSOR_OPS.values():
        assert op.ties == "" or op.ties in TIE_RULES, op.name
    assert {op.name for op in TENSOR_OPS.values() if op.ties} == {"amax", "max_pool2d"}


def test_an_unknown_tie_rule_is_refused_when_declared():
    with pytest.raises(ValueError, match="unknown ties rule"):
        declare(dataclasses.replace(TENSOR_OPS["amax"], name="amin", ties="min-somewhere"))
    assert "amin" not in TENSOR_OPS


def test_amax_ties_are_found_in_every_reduced_slice():
    x = Tensor([Value(v) for v in (3.0, 1.0, 2.0, 2.0)], (2, 2))
    groups = [[e.data for e in g] for g in tied_candidates("amax", [x], {"dim": 1, "keepdim": False})]
    assert groups == [[3.0], [2.0, 2.0]]  # the tie is below the overall maximum 3
    groups = [[e.data for e in g] for g in tied_candidates("amax", [x], {"dim": [0, 1], "keepdim": True})]
    assert groups == [[3.0]]
    assert list(tied_candidates("sum", [x], {"dim": 1, "keepdim": False})) == []
    assert list(tied_candidates("relu", [x], {})) == []  # elementwise: OpSpec.kinks, not this


def test_the_kink_finder_names_no_op():
    for finder in (verdict.on_kink, kinks.find_kinks):
        source = inspect.getsource(finder)
        for name in TENSOR_OPS:
            assert f'"{name}"' not in source


def test_every_tensor_op_declares_a_known_singular_rule_or_none():
    assert {op.name: op.singular for op in TENSOR_OPS.values() if op.singular} == {
        "std": "zero-variance", "vector_norm": "zero-slices"}
    assert all(op.singular in SINGULAR_RULES for op in TENSOR_OPS.values() if op.singular)
    with pytest.raises(ValueError, match="unknown singular rule"):
        declare(dataclasses.replace(TENSOR_OPS["std"], name="mad", singular="somewhere"))
    assert "mad" not in TENSOR_OPS


def test_roots_of_zero_are_found_in_every_reduced_slice():
    x = Tensor([Value(v) for v in (2.0, 2.0, 0.0, 0.0, 1.0, -1.0)], (3, 2))
    assert singular_outputs("std", [x], {"dim": 1, "correction": 1, "keepdim": False}) == [True, True, False]
    assert singular_outputs("vector_norm", [x], {"dim": 1, "keepdim": True}) == [False, True, False]
    assert singular_outputs("vector_norm", [x], {"dim": 0, "keepdim": False}) == [False, False]
    assert singular_outputs("var", [x], {"dim": 1, "correction": 1, "keepdim": False}) == []  # smooth at 0
