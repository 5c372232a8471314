"""Shared checks for the network-stack tests (CNN, recurrent, transformer): each stack's test file
and tests/test_network_stacks.py (the checks every stack shares, parametrized over them) draw from
here."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from conformance import kinds
from conformance.case.layerkinds import STACKS
from conformance.case.netstrategies import network_cases
from conformance.impls import RefImpl
from conformance.kinds.kind import Suite
from conformance.kinds.network import CNN_SIZES


def suite_named(name: str) -> tuple[Suite, int]:
    """refimpl's suite ``name`` at the ci size, with its index (verify seeds suite i with seed + i)."""
    suites = kinds.suites(RefImpl.capabilities, 40)
    i = next(i for i, s in enumerate(suites) if s.name == name)
    return suites[i], i


def stack_cases(stack: str, dtype: str = "float64", **kw: Any) -> st.SearchStrategy[Any]:
    """Training runs whose features are drawn from the kinds of ``stack`` (``cnn``, ``rnn``,
    ``transformer``: :data:`conformance.case.layerkinds.STACKS`), at the CNN suites' sizes."""
    return network_cases(dtype, layer_kinds=sorted(STACKS[stack]), **{**CNN_SIZES, **kw})
