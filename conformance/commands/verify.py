"""``conformance verify``: the suite as one command, for any implementation, outside pytest.

The same strategies and verdicts as ``pytest conformance``, organised in suites: every supported
op alone (its special points first), random scalar graphs, the graph-mechanics shapes, random
tensor graphs, float32 graphs, second order, deep chains and training runs of MLPs (per dtype, per
optimizer, per loss) — each drawn only from what the
implementation declares it supports. Every case is judged; the first
non-conforming case of a suite is then shrunk to a minimal one (:class:`conformance.driver.Shrinker`:
a part of that case that fails the same way; one time budget for the run). Ops of the table the
implementation does not support are counted as ``unsupported`` (reported, never failed).

A run that dies still names its case (:class:`Watch`). An implementation in this process
(``--in-process``, or one of this project's own) can end the run: ``os.abort()``, a segfault, an
exit, a kill. Before each case the run tells a small watcher process what is starting (and, with
``--report``, appends a ``started`` event to the journal, flushed); when the run ends without
saying it finished, the watcher prints on stderr the suite, the case and what to do — rerun with the
implementation in a worker process, where a crash is a verdict for that case. ``faulthandler`` prints
the Python stack of a fatal signal first. The same holds, with other advice, when the harness itself
dies (torch, memory) with the implementation in a worker.
"""

from __future__ import annotations

import faulthandler
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conformance import kinds
from conformance.driver import OnCase, Shrinker, SuiteResult, counts_text, run_suite, same_cases_everywhere
from conformance.driver import failure_text as driver_failure_text
from conformance.impls import Implementation
from conformance.impls.adapters.jsonl import CommandAdapter
from conformance.kinds.kind import Suite
from conformance.verdict.outcomes import COLUMNS, NONCONFORMING, STRICT, Verdict


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


#: the watcher: keeps the last line it is sent (a JSON string); prints it on stderr when its stdin
#: ends, unless that line is empty (the run finished). It ignores Ctrl-C, which the run reports.
WATCHER = """\
import json, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
last = b""
for last in sys.stdin.buffer:
    pass
if last.strip():
    sys.stderr.write(json.loads(last))
    sys.stderr.flush()
"""


class Watch:
    """What a run that dies leaves behind: the suite and case that were running (module docstring).

    ``started(suite, case, judged)`` before each run of the implementation (:func:`verify` calls it
    through :class:`Watched`); ``finished()`` once the suites are done; ``close()`` always (also the
    context manager, which calls ``finished()`` when no exception ended the run). Each costs a
    line into a pipe (and a journal line); nothing is printed when the run finishes."""

    def __init__(self, impl: Any, seed: int, recorder: Any = None, rerun: str = "with --isolate") -> None:
        self.impl_name, self.seed, self.recorder, self.rerun = impl.name, seed, recorder, rerun
        self.in_process = not isinstance(impl, CommandAdapter)
        self.proc: subprocess.Popen | None = None
        try:
            self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", WATCHER], stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL)
        except OSError:  # no watcher: the journal and faulthandler still say where
            pass
        self.faulthandler = not faulthandler.is_enabled() and sys.__stderr__ is not None  # pytest has its own
        if self.faulthandler:
            faulthandler.enable(file=sys.__stderr__)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.finished()
        self.close()

    def message(self, suite: str, case_id: str, judged: int) -> str:
        """What the watcher prints if the run ends during this case."""
        where = (f"conformance: the run ended during suite {suite!r}, case {case_id} ({judged} of its cases "
                 f"judged before it), {self.impl_name} running ")
        if self.in_process:
            where += "in this process: no table, no report.\n"
            advice = (f"conformance: rerun {self.rerun} to run it in a worker process: a crash or a hang is then "
                      f"a verdict for that case and the run goes on; --seed {self.seed} draws the same cases.\n")
        else:
            where += "in its own process: the harness itself stopped (torch, the judge, memory, a kill).\n"
            advice = f"conformance: --seed {self.seed} draws the same cases.\n"
        if self.recorder is not None:
            advice += (f"conformance: the journal {self.recorder.journal.path} holds the cases judged before it "
                       "and ends with this one's 'started' event\n")
        return where + advice

    def started(self, suite: str, case_id: str, judged: int) -> None:
        if self.recorder is not None:
            self.recorder.started(self.impl_name, suite, case_id, judged)
        self._send(self.message(suite, case_id, judged))

    def finished(self) -> None:
        self._send("")

    def _send(self, text: str) -> None:
        if self.proc is None or self.proc.stdin is None:
            return
        try:
            self.proc.stdin.write(json.dumps(text).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:  # the watcher is gone: carry on without it
            self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.faulthandler:
            faulthandler.disable()
            self.faulthandler = False


class Watched:
    """``impl`` as the driver sees it: each ``run_graph`` / ``run_network`` tells the watch first
    (shrinking included). Every other attribute is the implementation's."""

    def __init__(self, impl: Any, watch: Watch) -> None:
        self.impl, self.watch = impl, watch
        self.suite, self.judged = "", 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.impl, name)
        if name not in ("run_graph", "run_network"):
            return method

        def run(case: Any) -> Any:
            self.watch.started(self.suite, case.id, self.judged)
            return method(case)
        return run


def verify(impl: Implementation, examples: int, seed: int, progress: Callable[[str], None] = print,
           on_case: OnCase | None = None, ticker: Ticker | None = None, watch: Watch | None = None,
           robustness: dict[str, list[str]] | None = None, output: Output | None = None) -> list[SuiteResult]:
    """Run every suite for ``impl``; suite ``i`` is seeded with ``seed + i`` so a run repeats exactly.
    ``watch`` hears of each case before it runs; ``robustness`` collects, per suite, the reasons of
    its ``robustness`` verdicts (:func:`robustness_text`); ``output`` what the implementation wrote."""
    planned = suites(impl, examples)
    watched = Watched(impl, watch) if watch is not None else None
    shrinker = Shrinker()  # one budget for the run's failures
    results = []
    with same_cases_everywhere():
        for i, suite in enumerate(planned):
            live: Counter[str] = Counter()

            def hook(s: Suite, seed: int, index: int, v: Any, seconds: float, live: Counter[str] = live) -> None:
                live[v.verdict] += 1
                if output is not None:
                    output.add(v)
                if robustness is not None and v.verdict == Verdict.ROBUSTNESS:
                    robustness.setdefault(s.name, []).append(v.reason)
                if watched is not None:
                    watched.judged += 1
                if on_case is not None:
                    on_case(s, seed, index, v, seconds)
                if ticker is not None:
                    ticker(s, live)

            if ticker is not None:
                ticker.position = f"[{i + 1}/{len(planned)}]"
            if watched is not None:
                watched.suite, watched.judged = suite.name, 0
            r = run_suite(impl if watched is None else watched, suite, seed + i, on_case=hook, shrinker=shrinker)
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


def conforms(results: list[SuiteResult], strict: bool = False) -> bool:
    """No charged verdict; with ``strict``, no ``robustness`` finding either."""
    charged = STRICT if strict else NONCONFORMING
    return not any(r.failure or any(r.verdicts.get(k) for k in charged) for r in results)


@dataclass
class Output:
    """What an implementation wrote (warnings, stderr) over a run: the cases that wrote something,
    and each distinct line with the number of cases it came from. Kept out of the verdicts; the
    records keep every case's own (column ``output``)."""

    cases: int = 0
    lines: Counter[str] = field(default_factory=Counter)

    def add(self, v: Any) -> None:
        if v.output:
            self.cases += 1
            self.lines.update(set(v.output))

    def text(self, name: str, judged: int, report: bool, first: int = 3) -> str:
        """A short section after the verdict table: how much, the most frequent lines, where the rest is."""
        if not self.cases:
            return ""
        where = ("all of it is in the report's cases table, column output" if report
                 else "add --report DIR to keep all of it")
        lines = [f"output: {name} wrote {len(self.lines)} distinct line(s) (warnings, stderr) in {self.cases} of "
                 f"{judged} cases, kept out of the verdicts; {where}"]
        lines += [f"  {n}× {line}" for line, n in self.lines.most_common(first)]
        if len(self.lines) > first:
            lines.append(f"  … and {len(self.lines) - first} more distinct line(s)")
        return "\n".join(lines)


def robustness_text(findings: dict[str, list[str]], first: int = 3) -> str:
    """The robustness section: per suite, how many findings and the first few reasons."""
    if not findings:
        return ""
    total = sum(len(v) for v in findings.values())
    lines = [f"robustness: {total} case(s) outside the working range would be charged "
             "(not charged without --strict; conformance/verdict/robustness.py)"]
    for suite, reasons in findings.items():
        lines.append(f"  {suite}: {len(reasons)}")
        lines += [f"    {r}" for r in reasons[:first]]
        if len(reasons) > first:
            lines.append(f"    … and {len(reasons) - first} more")
    return "\n".join(lines)


def failures_text(results: list[SuiteResult]) -> str:
    """Every failing suite's minimal case, each case printed once: a suite whose minimal case was
    printed for an earlier suite refers to it in one line."""
    shown: dict[str, str] = {}
    parts = []
    for r in results:
        if r.failure is None:
            continue
        first = shown.setdefault(r.failure.case.id, r.suite.name)
        if first != r.suite.name:
            parts.append(f"FAIL {r.suite.name}: minimal case {r.failure.case.id}, the same case as {first!r} "
                         f"above: {r.failure.verdict}")
        else:
            parts.append(failure_text(r))
    return "\n\n".join(parts)


def failure_text(r: SuiteResult) -> str:
    """A suite's minimal failing case: the verdict, the case as JSON and a torch script to paste."""
    assert r.failure is not None
    return driver_failure_text(r.suite.name, r.failure, r.shrunk.note if r.shrunk else "")
