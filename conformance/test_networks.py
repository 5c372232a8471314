"""Short training runs of random MLPs, judged entry by entry: every activation, loss, reduction and
optimizer (with random hyperparameters), 1–5 steps, float64 and float32.

A network run costs far more than a graph case, so each test runs a fraction of the profile's
``max_examples`` (ci: 40 random runs per dtype, then 6 per optimizer and 6 per loss).
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .assertions import assert_conforms
from .netstrategies import for_impl
from .networks import LOSS_ATTRS, OPTIMIZER_HYPER
from .profiles import active, suite

_N = active().max_examples  # the suite's profile (conformance/profiles.py), selected before collection
RANDOM = suite(max_examples=max(2, _N // 3))
EACH = suite(max_examples=max(1, _N // 20))


def _supports(impl, dtype="float64", loss=None, optimizer=None):
    caps = impl.capabilities
    if not getattr(caps, "networks", False):
        pytest.skip(f"{impl.name} does not run networks")
    if dtype not in caps.dtypes:
        pytest.skip(f"{impl.name} does not support {dtype}")
    if loss is not None and loss not in caps.losses:
        pytest.skip(f"{impl.name} does not support the loss {loss}")
    if optimizer is not None and optimizer not in caps.optimizers:
        pytest.skip(f"{impl.name} does not support the optimizer {optimizer}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@RANDOM
@given(data=st.data())
def test_random_network(impl, dtype, data):
    _supports(impl, dtype)
    assert_conforms(impl, data.draw(for_impl(impl, dtype)))


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_HYPER))
@EACH
@given(data=st.data())
def test_every_optimizer(impl, optimizer, data):
    _supports(impl, optimizer=optimizer)
    dtype = data.draw(st.sampled_from([d for d in ("float64", "float32") if d in impl.capabilities.dtypes]))
    assert_conforms(impl, data.draw(for_impl(impl, dtype, optimizers=[optimizer])))


@pytest.mark.parametrize("loss", list(LOSS_ATTRS))
@EACH
@given(data=st.data())
def test_every_loss(impl, loss, data):
    _supports(impl, loss=loss)
    assert_conforms(impl, data.draw(for_impl(impl, "float64", losses=[loss])))
