"""Random DAGs: scalar graphs over every op (fan-out, reuse, kinks, cancellation), tensor graphs
(broadcasting, reductions, matmul, softmax family), long chains, second order; float64 and float32."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .assertions import assert_conforms
from .profiles import suite
from .strategies import DEEP_CHAIN_OPS, deep_chains, graph_cases, tensor_graph_cases
from .tensor_ops import TENSOR_OPS

DTYPES = ["float64", "float32"]


def _need(impl, dtype=None, ops=(), tensors=False):
    caps = impl.capabilities
    if dtype is not None and dtype not in caps.dtypes:
        pytest.skip(f"{impl.name} does not support {dtype}")
    missing = sorted(set(ops) - set(caps.ops))
    if missing:
        pytest.skip(f"{impl.name} does not support {', '.join(missing)}")
    if tensors and not set(caps.ops) & set(TENSOR_OPS):
        pytest.skip(f"{impl.name} supports no tensor op (scalar graphs only)")


@pytest.mark.parametrize("dtype", DTYPES)
@suite()
@given(data=st.data())
def test_random_scalar_graph(impl, dtype, data):
    _need(impl, dtype)
    assert_conforms(impl, data.draw(graph_cases(ops=impl.capabilities.ops, dtype=dtype, max_nodes=12)))


@pytest.mark.parametrize("dtype", DTYPES)
@suite()
@given(data=st.data())
def test_random_tensor_graph(impl, dtype, data):
    _need(impl, dtype, tensors=True)
    assert_conforms(impl, data.draw(tensor_graph_cases(ops=impl.capabilities.ops, dtype=dtype)))


@suite(max_examples=3)
@given(data=st.data())
def test_deep_chain(impl, data):
    _need(impl, ops=DEEP_CHAIN_OPS)
    assert_conforms(impl, data.draw(deep_chains()))


@suite()
@given(data=st.data())
def test_second_order(impl, data):
    if not impl.capabilities.second_order:
        pytest.skip(f"{impl.name} does not do second order")
    assert_conforms(impl, data.draw(graph_cases(ops=impl.capabilities.ops, max_nodes=6, second_order=True)))


@suite(max_examples=40)
@given(data=st.data())
def test_second_order_through_tensors(impl, data):
    _need(impl, tensors=True)
    if not impl.capabilities.second_order:
        pytest.skip(f"{impl.name} does not do second order")
    assert_conforms(impl, data.draw(tensor_graph_cases(ops=impl.capabilities.ops, max_nodes=4,
                                                       second_order=True)))
