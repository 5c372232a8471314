"""The mutant zoo: realistic bugs planted in refimpl, which the suite must catch.

Each mutant is refimpl with one small, readable change — a wrong local derivative, a chain-rule slip,
a tensor or layer bug, an optimizer off torch's algorithm, a numerics mistake, a half-precision one — applied only while
the mutant runs (:mod:`.base`). ``conformance mutants`` (:mod:`conformance.commands.mutants`) runs the suite
against each and prints who killed it; docs/mutants.md says why each bug is realistic.
"""

from __future__ import annotations

from conformance.impls.zoo import derivatives, graph, layers, numerics, optimizers, precision, tensors
from conformance.impls.zoo.base import CATEGORIES, Mutant, MutantImpl, snapshot

MUTANTS: dict[str, Mutant] = {m.name: m for mod in (derivatives, graph, tensors, optimizers, numerics, layers,
                                                           precision)
                              for m in mod.MUTANTS}

__all__ = ["CATEGORIES", "MUTANTS", "Mutant", "MutantImpl", "snapshot"]
