"""Op attributes as the op table declares them (``OpSpec.attrs``, ``OpSpec.attr_domain``) against
what the suite draws and tries: every drawn attribute is one the op takes, and lies inside the
domain the op declares for it. The strategies keep their own ranges (changing a draw would change
every seeded case); this test is what makes them answer to the table."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.case.netstrategies import ACT_ATTRS
from conformance.case.strategies import ATTRS
from conformance.oracle.opcheck import ATTR_VARIANTS
from refimpl.numbers import round_to_float32
from refimpl.ops import OPS

DRAWN = {"strategies.ATTRS": ATTRS, "netstrategies.ACT_ATTRS": ACT_ATTRS}


def _check(where: str, op: str, attrs: dict[str, Any]) -> None:
    spec = OPS[op]
    unknown = set(attrs) - set(spec.attrs)
    assert not unknown, f"{where} gives {op} attributes it does not take: {sorted(unknown)}"
    for k, v in attrs.items():
        if k in spec.attr_domain:
            dom = spec.attr_domain[k]
            assert v in dom, f"{where}: {op}({k}={v!r}) outside its declared domain {dom}"


def test_declared_domains_are_of_attributes_the_op_takes():
    for spec in OPS.values():
        assert set(spec.attr_domain) <= set(spec.attrs), spec.name
        for k, dom in spec.attr_domain.items():
            default = spec.attrs[k]
            assert default is None or default in dom, f"{spec.name}'s default {k}={default!r} is outside {dom}"


def test_every_op_with_attributes_has_them_drawn():
    assert set(ATTRS) == {s.name for s in OPS.values() if s.attrs}


@settings(max_examples=300, database=None, deadline=None)
@given(st.data())
def test_drawn_attributes_lie_in_the_declared_domains(data):
    for where, strategies in DRAWN.items():
        for op, strategy in strategies.items():
            attrs = data.draw(strategy, label=f"{where}[{op}]")
            _check(where, op, attrs)
            # networks cast attributes to the dtype: binary32 rounding must not leave the domain
            _check(f"{where} (float32)", op, {k: round_to_float32(v) if isinstance(v, float) else v
                                              for k, v in attrs.items()})


def test_op_check_variants_lie_in_the_declared_domains():
    for op, variants in ATTR_VARIANTS.items():
        for attrs in variants:
            _check("opcheck.ATTR_VARIANTS", op, attrs)
