"""A failure's signature: what a smaller case must keep to count as *the same* failure.

Shrinking keeps a smaller case only if it fails the way the original did: the same verdict class,
the same kind of error (``ZeroDivisionError``, not any exception), and the original's first charged
entry's kind among its own charged entries — a gradient stays a gradient, a bias a bias, a loss a
loss. A case that merely fails somehow (another op's bug, a crash the smaller shape provokes) is not
a smaller version of this failure, and the minimal case must point at the bug that was found.

The signature reads only entry names (:mod:`conformance.case.entrykey`), so it holds for every kind:
a graph's leaves are renamed when a node is cut into a leaf, and only the quantity counts there;
a network's parameters keep their role (``weight``, ``bias``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from conformance.case.entrykey import EntryKey

_QUANTITY_ORDER = ("value", "loss", "grad", "gradsum", "hvp", "param")
_EXCEPTION = re.compile(r"[A-Za-z_][\w.]*(?=:)")


@dataclass(frozen=True)
class Signature:
    verdict: str
    error: str | None  # the exception's type, or the first words of an error that is not one
    symptom: tuple[str, str | None] | None  # (quantity, role) of the first charged entry


def error_kind(reason: str) -> str:
    """``ZeroDivisionError`` of ``"ZeroDivisionError: float division by zero (at …)"``; the first
    three words of any other reason (``"result is missing"``, ``"nondeterministic: two runs"``)."""
    m = _EXCEPTION.match(reason)
    return m.group() if m else " ".join(reason.split()[:3])


def _symptom(name: str) -> tuple[tuple[int, int, bool], tuple[str, str | None]]:
    k = EntryKey.parse(name)
    role = None if k.target is None or "." not in k.target else k.target.rsplit(".", 1)[1]
    return (k.step or 0, _QUANTITY_ORDER.index(k.quantity), k.anchored), (k.quantity, role)


def symptoms(v: Any) -> set[tuple[str, str | None]]:
    """(quantity, role) of every entry carrying the case's verdict."""
    return {_symptom(e.name)[1] for e in v.entries if e.verdict == v.verdict}


def signature(v: Any) -> Signature:
    """The signature of a non-conforming verdict (a graph's or a network's)."""
    charged = sorted(_symptom(e.name) for e in v.entries if e.verdict == v.verdict)
    return Signature(v.verdict, error_kind(v.reason) if not v.entries else None,
                     charged[0][1] if charged else None)


def same_failure(sig: Signature, v: Any) -> bool:
    """Does verdict ``v`` (of a smaller case) show the failure ``sig`` was taken from?"""
    if v.conforms or v.verdict != sig.verdict:
        return False
    if sig.error is not None and (v.entries or error_kind(v.reason) != sig.error):
        return False
    return sig.symptom is None or sig.symptom in symptoms(v)
