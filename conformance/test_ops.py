"""Each op on its own: small graphs of a single op (fan-out included), for every op supported."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl import OPS

from .assertions import assert_conforms
from .profiles import suite
from .strategies import graph_cases, tensor_graph_cases
from .tensor_ops import TENSOR_OPS


@pytest.mark.parametrize("op", sorted(OPS))
@suite()
@given(data=st.data())
def test_op(impl, op, data):
    if op not in impl.capabilities.ops:
        pytest.skip(f"{impl.name} does not support {op}")
    assert_conforms(impl, data.draw(graph_cases(ops=[op], max_nodes=2)))


@pytest.mark.parametrize("op", sorted(TENSOR_OPS))
@suite()
@given(data=st.data())
def test_tensor_op(impl, op, data):
    if op not in impl.capabilities.ops:
        pytest.skip(f"{impl.name} does not support {op}")
    assert_conforms(impl, data.draw(tensor_graph_cases(ops=[op], max_nodes=2)))
