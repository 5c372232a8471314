"""The registry: every kind of case, and the suites an implementation runs, in one fixed order.

:data:`KINDS` is the one list of kinds. Everything that handles a case of unknown kind — a journal
row, a stored failure, a JSON request, a verdict to record — finds its :class:`~conformance.kinds.kind.Kind`
here, by the case's type, its JSON ``format`` or its records name. :func:`suites` is the one
declaration of what runs: ``verify``, ``nightly``, ``mutants``, the pytest suite and the reports
all iterate it, and suite ``i`` of the list is seeded with ``seed + i`` by every one of them.
"""

from __future__ import annotations

from typing import Any

from conformance.kinds.graph import GRAPH
from conformance.kinds.kind import Kind, Suite
from conformance.kinds.network import NETWORK

KINDS: tuple[Kind, ...] = (GRAPH, NETWORK)


def of(case: Any) -> Kind:
    """The kind of a case object."""
    for k in KINDS:
        if isinstance(case, k.case_type):
            return k
    raise TypeError(f"not a case of any kind: {type(case).__name__}")


def named(name: str) -> Kind:
    """The kind called ``name`` (the records' ``kind`` column)."""
    for k in KINDS:
        if k.name == name:
            return k
    raise LookupError(f"no case kind named {name!r}; known: {', '.join(k.name for k in KINDS)}")


def by_format(fmt: Any) -> Kind:
    """The kind whose case documents carry ``format`` (``ValueError`` for none)."""
    for k in KINDS:
        if k.format == fmt:
            return k
    raise ValueError(f"unknown case format {fmt!r}; known: {', '.join(k.format for k in KINDS)}")


def load(doc: dict[str, Any]) -> Any:
    """A case from its JSON document, whatever its kind."""
    return by_format(doc.get("format")).from_json(doc)


def unsupported(caps: Any) -> dict[str, str]:
    """What an implementation does not support, of every kind: name → the family it counts under."""
    return {name: family for k in KINDS for name, family in k.unsupported(caps).items()}


def suites(caps: Any, examples: int) -> list[Suite]:
    """What an implementation with capabilities ``caps`` runs, ``examples`` cases per suite (network
    and per-op suites take their share of it): every kind's suites, then every kind's later ones,
    generation by generation (:attr:`Kind.later`)."""
    generations = [k.suites for k in KINDS], *([k.later[g] for k in KINDS if g < len(k.later)]
                                                for g in range(max(len(k.later) for k in KINDS)))
    return [s for generation in generations for make in generation for s in make(caps, examples)]
