"""The verdict vocabulary, with nothing else: which verdicts exist, their order, which are charged.

Kept apart from :mod:`conformance.verdict` (the graph judge, which needs refimpl) so that the
report and the records can name verdicts without importing any judge.
"""

from __future__ import annotations

#: every verdict, worst first: a case's verdict is the worst of its entries'
ORDER = ("error", "timeout", "nonfinite-mismatch", "fail", "torch-deviates", "convention", "pass")
#: the verdicts that make an implementation non-conforming (the others are reported only)
NONCONFORMING = frozenset({"error", "timeout", "nonfinite-mismatch", "fail"})
