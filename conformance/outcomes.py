"""The verdict vocabulary, with nothing else: which verdicts exist, their order, which are charged.

Kept apart from the judges (which need refimpl) so that the records and the report can name
verdicts without importing any judge. A verdict is a :class:`Verdict` member; it *is* its string
(``Verdict.PASS == "pass"``), so the records, the journals and the JSON carry the plain name and a
verdict read back from them compares equal to the member, while a misspelt name in the code is an
``AttributeError`` at once instead of a comparison that is silently never true.
"""

from __future__ import annotations

from enum import Enum


class Verdict(str, Enum):
    """One entry's or one case's verdict."""

    ERROR = "error"  #: the implementation raised or returned something unusable
    TIMEOUT = "timeout"  #: the implementation ran out of time
    NONFINITE_MISMATCH = "nonfinite-mismatch"  #: NaN/inf where the truth is finite, or the reverse
    FAIL = "fail"  #: off torch and off the truth
    TORCH_DEVIATES = "torch-deviates"  #: torch is the one off the truth (reported, not charged)
    CONVENTION = "convention"  #: on a kink, where torch documents a choice (reported, not charged)
    PASS = "pass"  #: within 2·tolerance of torch

    def __str__(self) -> str:  # the name as written in the records: "fail", not "Verdict.FAIL"
        return self.value

    __format__ = str.__format__  # f"{v}" and f"{v:>8}" give the name too

    @property
    def charged(self) -> bool:
        """Whether this verdict makes an implementation non-conforming."""
        return self in NONCONFORMING


#: every verdict, worst first: a case's verdict is the worst of its entries'
ORDER: tuple[Verdict, ...] = tuple(Verdict)
#: the verdicts that make an implementation non-conforming (the others are reported only)
NONCONFORMING = frozenset({Verdict.ERROR, Verdict.TIMEOUT, Verdict.NONFINITE_MISMATCH, Verdict.FAIL})


def worst(verdicts: object) -> Verdict:
    """The worst of some verdicts (``pass`` for none): a case's verdict from its entries'."""
    return min((Verdict(v) for v in verdicts), key=ORDER.index, default=Verdict.PASS)  # type: ignore[union-attr]
