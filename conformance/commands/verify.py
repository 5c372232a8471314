"""``conformance verify``: the suite as one command, for any implementation, outside pytest.

The same strategies and verdicts as ``pytest conformance``, organised in suites: every supported
op alone, random scalar graphs, random tensor graphs, float32 graphs, second order, deep chains and
training runs of MLPs (per dtype, per optimizer, per loss) — each drawn only from what the
implementation declares it supports. Every case is judged; the first
non-conforming case of a suite is then shrunk by hypothesis to a minimal one. Ops of the table the
implementation does not support are counted as ``unsupported`` (reported, never failed).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from conformance import kinds
from conformance.driver import OnCase, SuiteResult, counts_text, run_suite, same_cases_everywhere
from conformance.driver import failure_text as driver_failure_text
from conformance.impls import Implementation
from conformance.kinds.kind import Suite
from conformance.verdict.outcomes import COLUMNS, NONCONFORMING


def suites(impl: Implementation, examples: int) -> list[Suite]:
    """What to run for this implementation, given its declared capabilities (:func:`conformance.kinds.suites`)."""
    return kinds.suites(impl.capabilities, examples)


class Ticker:
    """A live progress line on a terminal (stderr, rewritten at most every ``every`` seconds);
    silent when stderr is not a terminal, where the per-suite lines are the progress."""

    def __init__(self, every: float = 0.5, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.every, self.last, self.width = every, 0.0, 0
        self.position = ""

    def __call__(self, suite: Suite, verdicts: Counter[str]) -> None:
        now = time.perf_counter()
        if not self.live or now - self.last < self.every:
            return
        self.last = now
        n = sum(verdicts.values())
        line = f"  {self.position} {suite.name}: {n}/{suite.size} cases  {counts_text(verdicts)}"
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def clear(self) -> None:
        if self.live and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def verify(impl: Implementation, examples: int, seed: int, progress: Callable[[str], None] = print,
           on_case: OnCase | None = None, ticker: Ticker | None = None) -> list[SuiteResult]:
    """Run every suite for ``impl``; suite ``i`` is seeded with ``seed + i`` so a run repeats exactly."""
    planned = suites(impl, examples)
    results = []
    with same_cases_everywhere():
        for i, suite in enumerate(planned):
            live: Counter[str] = Counter()

            def hook(s: Suite, seed: int, index: int, v: Any, seconds: float, live: Counter[str] = live) -> None:
                live[v.verdict] += 1
                if on_case is not None:
                    on_case(s, seed, index, v, seconds)
                if ticker is not None:
                    ticker(s, live)

            if ticker is not None:
                ticker.position = f"[{i + 1}/{len(planned)}]"
            r = run_suite(impl, suite, seed + i, on_case=hook)
            if ticker is not None:
                ticker.clear()
            results.append(r)
            progress(f"  {suite.name:<22} {r.cases:>5} cases  {counts_text(r.verdicts)}  ({r.seconds:.1f}s)")
    return results




def table(impl: Implementation, results: list[SuiteResult]) -> str:
    """Counts per op family and feature, with the ops the implementation does not support."""
    fams: dict[str, Counter] = {}
    for r in results:
        fams.setdefault(r.suite.family, Counter()).update(r.verdicts)
    unsupported = Counter(kinds.unsupported(impl.capabilities).values())
    head = f"{'family':<14} {'cases':>6} " + " ".join(f"{c[:8]:>8}" for c in COLUMNS) + f" {'unsupp.':>8}"
    lines = [head]
    for fam in sorted(set(fams) | set(unsupported)):
        c = fams.get(fam, Counter())
        lines.append(f"{fam:<14} {sum(c.values()):>6} " + " ".join(f"{c.get(k, 0):>8}" for k in COLUMNS)
                     + f" {unsupported.get(fam, 0):>8}")
    return "\n".join(lines)


def conforms(results: list[SuiteResult]) -> bool:
    return not any(r.failure or any(r.verdicts.get(k) for k in NONCONFORMING) for r in results)


def failure_text(r: SuiteResult) -> str:
    """A suite's minimal failing case: the verdict, the case as JSON and a torch script to paste."""
    assert r.failure is not None
    return driver_failure_text(r.suite.name, r.failure)
