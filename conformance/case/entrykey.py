"""An entry's name, parsed once: what quantity, of which leaf or parameter, at which position and step.

Every number the suite judges is an *entry*, named in the records, the journals, the failure files
and the report by a string such as ``value``, ``grad[x0][3]``, ``hvp[w]``, ``loss@2``,
``grad[layer0.weight][1,0]@3`` or ``anchored:param[layer1.bias][0]@2``. The names are stable (they
are what people read and diff), so they stay strings in the records; this module is the one place
that builds them and the one place that reads them back:

* ``quantity``: ``value`` or ``loss`` (the output), ``grad``, ``hvp`` or ``param`` (of a target);
* ``target``: the leaf (graph cases) or parameter (``layer0.weight``) the quantity belongs to;
* ``index``: the position in the tensor — flat (``[3]``) for graph cases, row and column
  (``[1,0]``) for a network's weight matrix; ``()`` for a scalar;
* ``step``: the training step, counted from 1 (network cases), else None;
* ``anchored``: the entry of step ``t ≥ 2`` recomputed by torch from the implementation's own
  parameters after step ``t − 1`` (see the network judge).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

#: the quantities that belong to a target (a leaf or a parameter): written ``grad[x0]``;
#: ``gradsum[x0]`` is the sum of a leaf's gradient entries, judged where ties make each entry a
#: choice (conformance/verdict/kinks.py): every valid split of a tie sums to the same
TARGETED = frozenset({"grad", "hvp", "param", "gradsum"})
#: the quantities of the output itself: written ``value``, ``loss``
OUTPUT = frozenset({"value", "loss"})
ANCHOR = "anchored:"

_KEY = re.compile(r"^(?P<anchored>anchored:)?(?P<quantity>[a-z]+)(?P<brackets>(?:\[[^\]]*\])*)(?:@(?P<step>\d+))?$")
_INDEX = re.compile(r"\d+(?:,\d+)*")


@dataclass(frozen=True, order=True)
class EntryKey:
    """An entry's name as data; ``str(key)`` is the name, :meth:`parse` its inverse."""

    quantity: str
    target: str | None = None
    index: tuple[int, ...] = ()
    step: int | None = None
    anchored: bool = False

    def __post_init__(self) -> None:
        if self.quantity not in TARGETED | OUTPUT:
            raise ValueError(f"unknown entry quantity {self.quantity!r}")
        if (self.target is not None) != (self.quantity in TARGETED):
            raise ValueError(f"{self.quantity!r} entries {'need' if self.target is None else 'have no'} target")

    def __str__(self) -> str:
        target = f"[{self.target}]" if self.target is not None else ""
        index = f"[{','.join(map(str, self.index))}]" if self.index else ""
        step = f"@{self.step}" if self.step is not None else ""
        return f"{ANCHOR if self.anchored else ''}{self.quantity}{target}{index}{step}"

    @classmethod
    def parse(cls, name: str) -> EntryKey:
        """The key of an entry name (``ValueError`` for a name no judge writes)."""
        m = _KEY.match(name)
        if m is None:
            raise ValueError(f"not an entry name: {name!r}")
        quantity, brackets = m["quantity"], re.findall(r"\[([^\]]*)\]", m["brackets"])
        target = brackets.pop(0) if quantity in TARGETED and brackets else None
        if len(brackets) > 1 or (brackets and not _INDEX.fullmatch(brackets[0])):
            raise ValueError(f"not an entry name: {name!r}")
        index = tuple(int(i) for i in brackets[0].split(",")) if brackets else ()
        try:
            return cls(quantity, target, index, None if m["step"] is None else int(m["step"]),
                       m["anchored"] is not None)
        except ValueError as exc:
            raise ValueError(f"not an entry name: {name!r} ({exc})") from None

    def at(self, step: int | None) -> EntryKey:
        """The same entry at another step."""
        return replace(self, step=step)

    def anchor(self, anchored: bool = True) -> EntryKey:
        """The same entry, anchored (or, with False, free-running)."""
        return replace(self, anchored=anchored)


def key(name: str) -> EntryKey:
    """Shorthand for :meth:`EntryKey.parse`."""
    return EntryKey.parse(name)
