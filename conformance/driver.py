"""The one driver: draw a suite's cases from its seed, judge each, report it, shrink the first failure.

Every command runs suites through here — ``verify``, ``nightly``, ``mutants``, ``calibrate``,
``export`` and the pytest suite — and says what differs through arguments (cases drawn already, a
judge of its own, indices to skip, a budget that stops the run, hooks before and after each case, stop
at the first failure) instead of a loop of its own.

Drawing is separate from judging: :func:`draw` asks hypothesis for a suite's cases from the seed
alone (no test outcome steers the generation), so the same seed gives the same cases to every
command, in any process, whatever was judged before.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hseed

from conformance import kinds
from conformance.kinds.kind import Suite
from conformance.verdict.diagnosis import diagnose
from conformance.verdict.graph import CaseVerdict
from conformance.verdict.outcomes import ORDER, Verdict
from conformance.verdict.signature import same_failure, signature

#: cases per suite (the per-op and network suites take their share): what a profile means
PROFILES = {"dev": 10, "ci": 40, "nightly": 400}
QUIET: dict[str, Any] = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))
SHRINK_SECONDS = 20.0  # per run: every failing suite of a run shares it

#: called once per judged case: ``on_case(suite, seed, index, verdict, seconds)``
OnCase = Callable[[Suite, int, int, CaseVerdict, float], None]


@contextlib.contextmanager
def same_cases_everywhere() -> Iterator[None]:
    """Make a seed draw the same cases in any process. Hypothesis (6.13x on) mixes into its draws
    the constants found in the source of every *local* module imported so far, a pool that grows
    as modules are imported: a resumed run, a shard, or a run inside a test process that has
    imported more of the project would draw other cases from the same seed. While cases are drawn
    here, that pool is held empty (hypothesis's own constants remain). This reaches into
    hypothesis's internals, which is why pyproject.toml pins hypothesis to the tested releases;
    on a hypothesis without the pool it does nothing."""
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
        real, cache = providers._get_local_constants, providers.CONSTANTS_CACHE
    except (ImportError, AttributeError):
        yield
        return
    empty = Constants()
    providers._get_local_constants = lambda: empty
    cache.cache.clear()  # it holds the pool's values per kind of draw
    try:
        yield
    finally:
        providers._get_local_constants = real
        cache.cache.clear()


def draw(suite: Suite, seed: int) -> list[Any]:
    """The suite's fixed cases, then its ``examples`` cases drawn from ``seed`` alone."""
    drawn: list[Any] = list(suite.fixed)
    if suite.examples <= 0:
        return drawn

    @hseed(seed)
    @settings(max_examples=suite.examples, phases=[Phase.generate], **QUIET)
    @given(suite.strategy)
    def collect(case: Any) -> None:
        drawn.append(case)

    with same_cases_everywhere():
        collect()
    return drawn


def judge_case(impl: Any, case: Any, *, always_truth: bool = False) -> CaseVerdict:
    """The verdict on one case of any kind."""
    return kinds.of(case).check(impl, case, always_truth=always_truth)


def counts_text(verdicts: Counter[str]) -> str:
    """``pass 38, convention 2``: verdict counts, worst first."""
    return ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items(), key=lambda kv: ORDER.index(kv[0])))


@dataclass
class SuiteResult:
    suite: Suite
    seed: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    first_bad: tuple[int, CaseVerdict] | None = None  # the lowest-index non-conforming case judged
    failure: CaseVerdict | None = None  # the minimal non-conforming case, if any
    seconds: float = 0.0
    stopped_at: int | None = None  # the index of the first case not judged because ``stop()`` said so
    drawn: int = 0  # cases the suite has (judged, skipped or not reached)
    shrunk: Shrunk | None = None  # how the failure was shrunk (its note says if the budget stopped it)

    @property
    def cases(self) -> int:
        return sum(self.verdicts.values())


def run_suite(impl: Any, suite: Suite, seed: int, *, cases: Iterable[Any] | None = None,
              judge: Callable[[Any], CaseVerdict] | None = None, always_truth: bool = False,
              on_case: OnCase | None = None, skip: Iterable[int] = (), stop: Callable[[], bool] | None = None,
              before_case: Callable[[int], None] | None = None, first_failure_only: bool = False,
              shrink: bool = True, shrinker: Shrinker | None = None) -> SuiteResult:
    """Judge a suite's cases (``cases``, or those :func:`draw` gives for ``seed``) in order.

    ``judge(case)`` replaces the plain verdict (mutants reuse refimpl's where the results are the
    same bits); ``skip`` holds indices judged before (a resumed run) or not to be judged (cases that
    killed the process); ``stop()`` is asked before each case (a budget); ``before_case(index)`` is
    called just before a case is judged (calibrate records the index: a worker process that dies
    names the case it was judging); ``first_failure_only`` ends the suite at its first
    non-conforming case. The first non-conforming case is then shrunk (unless ``shrink`` is off, it
    is a timeout, or the run was stopped) into :attr:`SuiteResult.failure`, by ``shrinker`` (a
    run's budget shared by its suites) or a new :class:`Shrinker`."""
    result = SuiteResult(suite, seed)
    t0 = time.perf_counter()
    judge = judge or (lambda case: judge_case(impl, case, always_truth=always_truth))
    skipped = set(skip)
    todo = draw(suite, seed) if cases is None else list(cases)
    result.drawn = len(todo)
    for index, case in enumerate(todo):
        if index in skipped:
            continue
        if stop is not None and stop():
            result.stopped_at = index
            break
        if before_case is not None:
            before_case(index)
        t = time.perf_counter()
        v = judge(case)
        result.verdicts[v.verdict] += 1
        if on_case is not None:
            on_case(suite, seed, index, v, time.perf_counter() - t)
        if not v.conforms and result.first_bad is None:
            result.first_bad = (index, v)
            if first_failure_only:
                break
    if result.first_bad is not None:
        v = result.first_bad[1]
        # a timeout is not shrunk: every try would cost the whole timeout
        if shrink and result.stopped_at is None and v.verdict != Verdict.TIMEOUT:
            result.shrunk = (shrinker or Shrinker())(impl, v)
            v = result.shrunk.verdict
        result.failure = v
    result.seconds = time.perf_counter() - t0
    return result


@dataclass
class Shrunk:
    """What shrinking made of a failing case: the smallest case found that fails the same way
    (:mod:`conformance.verdict.signature`), how many smaller cases were tried, how many were kept,
    and whether the search finished or its budget ended it."""

    verdict: CaseVerdict
    tries: int = 0
    kept: int = 0
    complete: bool = True
    budget: float = 0.0

    @property
    def note(self) -> str:
        """Empty when the search finished; otherwise says that the case may not be minimal."""
        if self.complete:
            return ""
        return (f"shrinking stopped at its budget ({self.budget:g} s for the run) after {self.tries} tries "
                f"({self.kept} kept): a smaller case may exist")


class Shrinker:
    """Makes failing cases minimal, on one time budget for a whole run (``seconds``).

    The search tries the kind's smaller versions of the case (:mod:`conformance.case.reduce`: one
    node, one layer, one step, fewer samples, knobs off, simpler numbers), keeps the first on which
    the implementation fails the same way (:func:`conformance.verdict.signature.same_failure`) and
    starts again from it, until no smaller version fails so; a version the implementation's
    capabilities do not admit is never tried. The minimal case is thus a part of
    the case that failed, showing the same failure; it is judged once more in full (two runs) at
    the end. When the budget is spent the smallest case so far is kept and :attr:`Shrunk.note` says
    so."""

    def __init__(self, seconds: float | None = None) -> None:
        self.budget = SHRINK_SECONDS if seconds is None else seconds
        self.left = self.budget

    def __call__(self, impl: Any, first: CaseVerdict) -> Shrunk:
        kind = kinds.of(first.case)
        caps = getattr(impl, "capabilities", None)
        sig = signature(first)
        out = Shrunk(first, budget=self.budget)
        start = time.monotonic()
        try:
            improved = True
            while improved:
                improved = False
                for candidate in kind.smaller(out.verdict.case):
                    if time.monotonic() - start > self.left:
                        out.complete = False
                        return out
                    if caps is not None and not kind.admits(caps, candidate):
                        continue  # outside what the implementation declares: never drawn for it
                    out.tries += 1
                    v = self._judge(kind, impl, candidate)
                    if v is not None and same_failure(sig, v):
                        out.verdict, out.kept, improved = v, out.kept + 1, True
                        break
        finally:
            self.left -= time.monotonic() - start
            if out.verdict is not first:  # the full check: two runs, as every case gets
                again = kind.check(impl, out.verdict.case)
                out.verdict = again if same_failure(sig, again) else out.verdict
        return out

    @staticmethod
    def _judge(kind: Any, impl: Any, case: Any) -> CaseVerdict | None:
        try:
            return kind.judge(case, kind.run(impl, case), kind.run_torch(case))
        except Exception:  # a candidate the harness cannot judge is not smaller, it is skipped
            return None


def failure_text(suite: str, v: CaseVerdict, note: str = "") -> str:
    """A suite's minimal failing case: the verdict, the case as JSON and a torch script to paste
    (``note``: what shrinking says when it did not finish)."""
    k = kinds.of(v.case)
    return (f"FAIL {suite}: minimal case {v.case.id} ({k.size(v.case)}): {v.verdict}\n  {v.reason}\n"
            + "".join(f"  diagnosis: {line}\n" for line in diagnose(v))
            + (f"  ({note})\n" if note else "") +
            f"case JSON:\n{k.dumps(v.case)}\nreproduce with torch:\n{k.torch_script(v.case)}")


def _worker_start(initializer: Callable[..., None] | None, args: tuple[Any, ...]) -> None:
    import torch

    torch.set_num_threads(1)
    if initializer is not None:
        initializer(*args)


class WorkerDied(RuntimeError):
    """A worker process of :func:`worker_pool` died (a segfault in a library, the OOM killer): the
    tasks not yet received are lost — said at once, instead of waiting for ever. What then is the
    caller's choice: ``calibrate`` re-runs them and names the case that killed the worker."""


class WorkerPool:
    """``imap`` / ``imap_unordered`` over a :class:`concurrent.futures.ProcessPoolExecutor`: unlike
    ``multiprocessing.Pool``, which replaces a dead worker and waits for ever for the task it held,
    a dead worker breaks the pool and the caller gets :class:`WorkerDied`."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """Results in the order of ``items``."""
        futures = [self.executor.submit(fn, x) for x in items]
        return (self._result(f) for f in futures)

    def imap_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any], chunksize: int = 1) -> Iterator[Any]:
        """Results as they come (``chunksize`` is accepted for ``multiprocessing.Pool``'s signature)."""
        from concurrent.futures import as_completed

        futures = [self.executor.submit(fn, x) for x in items]
        return (self._result(f) for f in as_completed(futures))

    @staticmethod
    def _result(future: Any) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return future.result()
        except BrokenProcessPool:
            raise WorkerDied("a worker process died (a crash in a library, or killed); its work is lost") from None


def worker_pool(workers: int, start: str = "fork", initializer: Callable[..., None] | None = None,
                initargs: tuple[Any, ...] = ()) -> WorkerPool:
    """A process pool for commands that spread suites or cases over processes (``mutants``,
    ``calibrate``). Each worker keeps torch to one thread — the cases are tiny, and an OpenMP pool
    inherited across fork from a parent that used torch (a test session) must never be entered —
    then runs ``initializer(*initargs)`` (how a command hands its workers what they share). A worker
    that dies raises :class:`WorkerDied` in the caller (:class:`WorkerPool`)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return WorkerPool(ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(start),
                                          initializer=_worker_start, initargs=(initializer, initargs)))
