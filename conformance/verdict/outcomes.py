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
    """One entry's or one case's verdict (:attr:`help` says what it means, in the report's words)."""

    ERROR = "error"
    TIMEOUT = "timeout"
    NONFINITE_MISMATCH = "nonfinite-mismatch"
    FAIL = "fail"
    ROBUSTNESS = "robustness"
    TORCH_DEVIATES = "torch-deviates"
    KNOWN_CAUSE = "known-cause"
    CONVENTION = "convention"
    UNCHECKED = "unchecked"
    PASS = "pass"

    def __str__(self) -> str:  # the name as written in the records: "fail", not "Verdict.FAIL"
        return self.value

    __format__ = str.__format__  # f"{v}" and f"{v:>8}" give the name too

    @property
    def charged(self) -> bool:
        """Whether this verdict makes an implementation non-conforming."""
        return self in NONCONFORMING

    @property
    def help(self) -> str:
        """What the verdict means, in one line."""
        return _HELP[self]


_HELP = {
    Verdict.ERROR: "the implementation raised or returned something unusable",
    Verdict.TIMEOUT: "the implementation ran out of time",
    Verdict.NONFINITE_MISMATCH: "NaN/inf where the truth is finite, or the reverse",
    Verdict.FAIL: "off torch and off the truth",
    Verdict.ROBUSTNESS: "would be charged, but an input, an intermediate or torch's answer is outside the working "
                        "range (conformance/verdict/robustness.py): reported in its own section, charged only "
                        "with --strict",
    Verdict.TORCH_DEVIATES: "torch is the one off the truth (reported, not charged)",
    Verdict.KNOWN_CAUSE: "off torch as a documented correct formula is, where it loses precision: the cause is "
                         "named (reported, not charged)",
    Verdict.CONVENTION: "on a kink, a valid choice other than torch's: between the one-sided derivatives, "
                        "a tie split any way (reported, not charged)",
    Verdict.UNCHECKED: "within tolerance, but a tolerance that checks nothing: infinite, or reaching zero from "
                       "the value; or too many kinks to enumerate (reported, not charged, not a pass)",
    Verdict.PASS: "within 2·tolerance of torch",
}


#: every verdict, worst first: a case's verdict is the worst of its entries'
ORDER: tuple[Verdict, ...] = tuple(Verdict)
#: the verdicts that make an implementation non-conforming (the others are reported only)
NONCONFORMING = frozenset({Verdict.ERROR, Verdict.TIMEOUT, Verdict.NONFINITE_MISMATCH, Verdict.FAIL})
#: what ``--strict`` charges too: the findings on extreme inputs (numerical robustness)
STRICT = NONCONFORMING | {Verdict.ROBUSTNESS}
#: the order of the count columns in tables (terminal, summary, history): passes first
COLUMNS: tuple[Verdict, ...] = (Verdict.PASS, Verdict.FAIL, Verdict.CONVENTION, Verdict.TORCH_DEVIATES,
                                Verdict.KNOWN_CAUSE, Verdict.UNCHECKED, Verdict.ROBUSTNESS, Verdict.NONFINITE_MISMATCH,
                                Verdict.ERROR,
                                Verdict.TIMEOUT)


def worst(verdicts: object) -> Verdict:
    """The worst of some verdicts (``pass`` for none): a case's verdict from its entries'."""
    return min((Verdict(v) for v in verdicts), key=ORDER.index, default=Verdict.PASS)  # type: ignore[union-attr]
