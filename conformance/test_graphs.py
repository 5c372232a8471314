"""Random DAGs over every supported op: fan-out, reuse, kinks, cancellation; float64 and float32."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .assertions import assert_conforms
from .strategies import deep_chains, graph_cases


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@given(data=st.data())
def test_random_graph(impl, dtype, data):
    if dtype not in impl.capabilities.dtypes:
        pytest.skip(f"{impl.name} does not support {dtype}")
    assert_conforms(impl, data.draw(graph_cases(ops=impl.capabilities.ops, dtype=dtype, max_nodes=12)))


@settings(max_examples=3)
@given(data=st.data())
def test_deep_chain(impl, data):
    assert_conforms(impl, data.draw(deep_chains()))


@given(data=st.data())
def test_second_order(impl, data):
    if not impl.capabilities.second_order:
        pytest.skip(f"{impl.name} does not do second order")
    assert_conforms(impl, data.draw(graph_cases(ops=impl.capabilities.ops, max_nodes=6, second_order=True)))
