"""Calibration: run correct implementations over many random cases and measure the false alarms.

refimpl rounds differently from torch (different formulas, different summation orders, correctly
rounded sqrt where torch's is not), so it is the natural "correct but not identical" witness:
every case must pass, and the distribution of error/tolerance ratios shows how much headroom the
tolerances leave. Cases are drawn by the same hypothesis strategies the suite uses (generation
only, no shrinking), per op family so that a ratio can be attributed, in float64 and float32, and
the work is split across processes.

Implementations, by name: ``refimpl``; ``refimpl-reordered`` — refimpl summing in other orders
(reductions and dot products right to left, the chain rule's fan-out contributions arriving in
another topological order): as correct as refimpl, but it rounds differently from the algorithm
the tolerances are computed from, which is exactly what the safety factor must absorb;
``refimpl-float32`` — refimpl's float32 emulation against torch float32 alone (the float32 half of
``refimpl``); ``refimpl-pairwise`` — refimpl summing every reduction pairwise and claiming it
(:class:`conformance.impls.PairwiseRefImpl`: the tighter tolerances of the claim must hold for it);
and any implementation :func:`conformance.impls.loading.resolve` finds (``torch``, an
installed adapter such as ``jax`` or ``autograd``, ``module:attribute``). One that cannot be loaded
is reported as not available; families or dtypes it does not support are skipped.

An implementation that crashes gets a verdict, it does not take the calibration down. These run in
the worker processes, where a segfault kills the worker and breaks the pool (torch 2.13's bfloat16
conv2d backward did, once in 100,000 cases): the results received are kept, each job that was
running is run again alone, and when its worker dies again the case it had begun (each job records
the index of the case it is about to judge) is counted as an ``error`` — an unexplained failure,
shown with its JSON — and set aside, and the job runs again without it; the other jobs go on in a
pool. A job whose worker dies before its first case, or on more than :data:`MAX_CRASHES` cases, is
lost, and the calibration is not complete (:class:`~conformance.driver.WorkerDied`).
"""

from __future__ import annotations

import importlib
import math
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any
from unittest import mock

from conformance.case.dtypes import claims_of
from conformance.case.graph import dumps
from conformance.case.tensor_ops import LAYER_FAMILIES, TENSOR_OPS, layer_ops
from conformance.driver import WorkerDied, draw, run_suite, worker_pool
from conformance.impls import PairwiseRefImpl, RefImpl
from conformance.impls.loading import resolve
from conformance.kinds.graph import family_suite
from conformance.oracle.netrun import run_refimpl_network
from conformance.oracle.run import run_refimpl
from conformance.verdict.outcomes import NONCONFORMING, Verdict
from refimpl import OPS, engine

FAMILIES = [*sorted({s.family for s in OPS.values()}), "mixed", "tensor", *LAYER_FAMILIES]  # tensor: tensor graphs
MAX_KEPT = 20
#: cases of one job that may kill its worker (each counted as an ``error``) before the job is lost
MAX_CRASHES = 3
#: implementations that are refimpl run another way: they load without plugins, in a forked worker
VARIANTS = ("refimpl", "refimpl-reordered", "refimpl-float32", "refimpl-pairwise", "torch")


@dataclass
class Tally:
    cases: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ratios: list[float] = field(default_factory=list)  # the worst entry ratio of every case
    worst_case: str = ""
    failures_seen: list[str] = field(default_factory=list)  # the first few failing cases, as JSON
    causes: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # failures by known cause

    def add(self, other: Tally) -> None:
        self.cases += other.cases
        for k, v in other.verdicts.items():
            self.verdicts[k] += v
        if other.ratios and (not self.ratios or max(other.ratios) > max(self.ratios)):
            self.worst_case = other.worst_case
        self.ratios += other.ratios
        self.failures_seen += other.failures_seen[:MAX_KEPT - len(self.failures_seen)]
        for k, v in other.causes.items():
            self.causes[k] += v

    @property
    def unexplained(self) -> int:
        """Failures no known cause (:mod:`conformance.impls.explain`) reproduces: the false-alarm budget."""
        return self.failures - sum(self.causes.values())

    @property
    def failures(self) -> int:
        """Cases off torch beyond tolerance: the charged ones and those a correct formula's known
        cause accounts for (``known-cause``, which calibration counts as explained failures), and the
        ``robustness`` ones (charged under ``verify --strict``: a false alarm there too)."""
        return sum(v for k, v in self.verdicts.items()
                   if k in NONCONFORMING or k in (Verdict.KNOWN_CAUSE, Verdict.ROBUSTNESS))

    def quantile(self, q: float) -> float:
        if not self.ratios:
            return math.nan
        xs = sorted(self.ratios)
        return xs[min(len(xs) - 1, int(q * len(xs)))]


# --- the implementations ------------------------------------------------------------------------------

def _sum_right_to_left(values: list[Any], system: Any) -> Any:
    if not values:
        return _tensor_module().constant(system.zero, system)
    total = values[-1]
    for v in reversed(values[:-1]):
        total = total + v
    return _tensor_module().reduced(total, values)  # a mixed-precision system's accumulation


def _dot_right_to_left(xs: list[Any], ys: list[Any], system: Any) -> Any:
    if not xs:
        return _tensor_module().constant(system.zero, system)
    terms = [x * y for x, y in zip(reversed(xs), reversed(ys))]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return _tensor_module().reduced(total, terms, list(zip(reversed(xs), reversed(ys))))


def _topological_order_parents_reversed(roots: Any) -> list[Any]:
    """``refimpl.engine.topological_order`` visiting each node's parents right to left: another
    valid order, in which a value used several times receives its contributions in another order."""
    order: list[Any] = []
    visited: set[Any] = set()
    for root in roots:
        if root in visited:
            continue
        visited.add(root)
        stack = [(root, iter(root.parents[::-1]))]
        while stack:
            node, pending = stack[-1]
            for p in pending:
                if p.requires_grad and p not in visited:
                    visited.add(p)
                    stack.append((p, iter(p.parents[::-1])))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def _tensor_module() -> Any:
    return importlib.import_module("refimpl.tensor")  # the module: ``refimpl.tensor`` is also a function


@contextmanager
def reordered() -> Iterator[None]:
    """refimpl summing in other orders, for the duration of one run (the judge, which runs refimpl
    to compute tolerances and the truth, never sees it: the suite is single-threaded)."""
    tensor = _tensor_module()
    with mock.patch.object(tensor, "sum_of", _sum_right_to_left), \
            mock.patch.object(tensor, "dot_of", _dot_right_to_left), \
            mock.patch.object(engine, "topological_order", _topological_order_parents_reversed):
        yield


def _reordered_impl() -> Any:
    class ReorderedRefImpl(RefImpl):
        """refimpl with reductions, dot products and fan-out accumulation in other orders."""

        name = "refimpl-reordered"

        def run_graph(self, case: Any) -> Any:
            with reordered():
                return run_refimpl(case)

        def run_network(self, case: Any) -> Any:
            with reordered():
                return run_refimpl_network(case)

    return ReorderedRefImpl()


def _float32_impl() -> Any:
    impl = RefImpl()
    impl.name = "refimpl-float32"
    impl.capabilities = replace(impl.capabilities, dtypes=("float32",))
    return impl


_LOADED: dict[str, Any] = {}


def load_impl(name: str) -> Any:
    """The implementation ``name`` names (once per process); LookupError or the loader's exception
    if it cannot be loaded."""
    if name not in _LOADED:
        if name == "refimpl-reordered":
            _LOADED[name] = _reordered_impl()
        elif name == "refimpl-float32":
            _LOADED[name] = _float32_impl()
        elif name == "refimpl-pairwise":
            _LOADED[name] = PairwiseRefImpl()
        else:
            _LOADED[name] = resolve(name)
    return _LOADED[name]


def family_ops(fam: str, supported: frozenset[str]) -> list[str] | None:
    """The ops a family's cases may use for an implementation supporting ``supported``: ``None``
    means every op (refimpl's default draws); ``[]`` means the family is not supported at all."""
    every = set(OPS) | set(TENSOR_OPS)
    if fam in LAYER_FAMILIES:
        return sorted(layer_ops(supported, fam))
    if fam == "tensor":
        return (None if every <= supported else sorted(supported & every)) if supported & set(TENSOR_OPS) else []
    ops = [s.name for s in OPS.values() if fam == "mixed" or s.family == fam]
    return None if fam == "mixed" and set(ops) <= supported else [op for op in ops if op in supported]


def supported_groups(impl: Any, dtypes: tuple[str, ...], families: tuple[str, ...]) -> tuple[
        list[tuple[str, str]], list[str]]:
    """The (family, dtype) groups to run, and those skipped because the implementation lacks them."""
    caps = impl.capabilities
    groups, skipped = [], []
    for dt in dtypes:
        if dt not in caps.dtypes:
            skipped.append(f"{dt} (dtype not supported)")
            continue
        for fam in FAMILIES:
            if fam not in families:
                continue
            if family_ops(fam, caps.ops) == []:
                skipped.append(f"{fam} {dt}")
            else:
                groups.append((fam, dt))
    return groups, skipped


# --- the runs -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """One worker's share: ``n`` cases of one family and dtype, drawn from its own ``seed``, less
    the indices in ``skip`` (cases known to kill the worker). ``progress`` is a file in which the
    worker records the index of the case it is about to judge: it exists once the job has started,
    and names the case when the worker dies."""

    impl: str
    family: str
    dtype: str
    n: int
    seed: int
    skip: tuple[int, ...] = ()
    progress: str = ""

    @property
    def name(self) -> str:
        """How a crash names the job: what draws its cases again."""
        return f"{self.family} {self.dtype} (job seed {self.seed})"


def job_suite(job: Job) -> Any:
    """The job's suite: the same cases for a seed wherever it runs (the driver draws them from the
    seed alone), in a worker that judges them and in the parent that names one that killed it."""
    impl = load_impl(job.impl)
    return family_suite(job.family, job.dtype, family_ops(job.family, impl.capabilities.ops), job.n,
                        claims_of(impl.capabilities))


@contextmanager
def _recording(path: str) -> Iterator[Callable[[int], None] | None]:
    """A ``before_case`` hook writing each index into ``path`` (one write each, in place: the
    kernel keeps it when the process dies the next instant); None without a path."""
    if not path:
        yield None
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)

    def record(index: int) -> None:
        os.pwrite(fd, b"%20d" % index, 0)

    try:
        yield record
    finally:
        os.close(fd)


def _recorded(path: str) -> int | None:
    """The index a job recorded last, or None if it judged none."""
    with open(path, "rb") as f:
        text = f.read().strip()
    return int(text) if text else None


def run_chunk(job: Job) -> Tally:
    """One worker's share (:class:`Job`)."""
    impl = load_impl(job.impl)
    tally = Tally()

    def one(suite: Any, seed: int, index: int, v: Any, seconds: float) -> None:
        case = v.case
        tally.cases += 1
        tally.verdicts[v.verdict] += 1
        if v.cause:  # named by the judge (conformance/impls/explain.py)
            tally.causes[v.cause] += 1
        elif (not v.conforms or v.verdict == Verdict.ROBUSTNESS) and len(tally.failures_seen) < MAX_KEPT:
            # the unexplained ones are shown
            tally.failures_seen.append(f"{v.reason}\n{dumps(case)}")
        r = v.worst_ratio
        if not tally.ratios or r > max(tally.ratios):
            tally.worst_case = dumps(case) if not v.conforms or r > 0.5 else case.id
        tally.ratios.append(r)

    with _recording(job.progress) as record:
        run_suite(impl, job_suite(job), job.seed, on_case=one, skip=job.skip, shrink=False, before_case=record)
    return tally


def _numbered(item: tuple[int, Job]) -> tuple[int, Tally]:
    """:func:`run_chunk` for a pool whose results come in any order."""
    return item[0], run_chunk(item[1])


def crash_tally(job: Job, index: int) -> Tally:
    """The case at ``index`` killed the job's worker: a charged failure (``error``), shown as the
    others are, with its case JSON drawn here from the job's seed."""
    case = draw(job_suite(job), job.seed)[index]
    reason = f"crash: the worker process died judging case {index} of {job.name}"
    return Tally(cases=1, verdicts=defaultdict(int, {Verdict.ERROR: 1}),
                 failures_seen=[f"{reason}\n{dumps(case)}"])


def run_alone(job: Job, start: str) -> Tally:
    """A job whose worker may have died, alone in a fresh one-worker pool. When its worker dies
    again, the case it had begun is the one that kills it: counted (:func:`crash_tally`), and the
    job runs again without it. A job that dies before any case, or more than :data:`MAX_CRASHES`
    times, is lost: :class:`WorkerDied`."""
    crashes = Tally()
    while True:
        with suppress(FileNotFoundError):
            os.remove(job.progress)  # a record of the last attempt would name the wrong case
        try:
            with worker_pool(1, start) as pool:
                crashes.add(next(pool.imap(run_chunk, [job])))
            return crashes
        except WorkerDied as exc:
            index = _recorded(job.progress) if os.path.exists(job.progress) else None
            if index is None or len(job.skip) >= MAX_CRASHES:
                where = "before its first case" if index is None else f"judging case {index}"
                raise WorkerDied(f"a worker process died {where} of {job.name}, after {len(job.skip)} cases "
                                 f"that killed it were set aside; the job's {job.n} cases are lost") from exc
            crashes.add(crash_tally(job, index))
            job = replace(job, skip=(*job.skip, index))


def run_jobs(jobs: list[Job], workers: int, start: str, received: Callable[[Tally], None],
             said: Callable[[str], None] = print) -> list[Tally]:
    """Every job's tally, in the order of ``jobs`` (``received(tally)`` as each arrives). A worker
    that dies breaks the pool: the tallies received are kept, the jobs that had started and not
    been received are run again one by one (:func:`run_alone`, which names the case that killed
    the worker), and the jobs that had not started go on in a pool again. Each death is ``said``,
    so one that does not repeat alone (the OOM killer, a signal from outside) is not silent."""
    tallies: dict[int, Tally] = {}
    with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
        jobs = [replace(job, progress=os.path.join(tmp, str(i))) for i, job in enumerate(jobs)]
        pending = list(range(len(jobs)))
        while pending:
            try:
                with worker_pool(workers, start) as pool:
                    for i, tally in pool.imap_unordered(_numbered, [(i, jobs[i]) for i in pending]):
                        tallies[i] = tally
                        received(tally)
            except WorkerDied:
                started = [i for i in pending if i not in tallies and os.path.exists(jobs[i].progress)]
                if not started:  # died outside every job (starting up): nothing to set aside
                    raise
                said(f"  a worker process died: the {len(started)} job(s) it may have been running run again, "
                     "one at a time, to find the case")
                for i in started:
                    tallies[i] = run_alone(jobs[i], start)
                    received(tallies[i])
            pending = [i for i in pending if i not in tallies]
    return [tallies[i] for i in range(len(jobs))]


def plan_jobs(impl: str, groups: list[tuple[str, str]], n: int, workers: int, seed: int) -> list[Job]:
    """``n`` cases spread evenly over the groups, in jobs small enough to keep ``workers`` busy."""
    per_group = max(1, n // len(groups))
    chunk = max(50, min(2000, per_group // max(1, workers)))
    jobs = []
    for g, (fam, dt) in enumerate(groups):
        left, k = per_group, 0
        while left > 0:
            size = min(chunk, left)
            jobs.append(Job(impl, fam, dt, size, seed * 1_000_003 + g * 10_007 + k))
            left -= size
            k += 1
    return jobs


def calibrate(impl: str = "refimpl", n: int = 100_000, dtypes: tuple[str, ...] = ("float64", "float32"),
              workers: int = 2, seed: int = 0, progress: Any = print,
              families: tuple[str, ...] = tuple(FAMILIES)) -> dict[tuple[str, str], Tally]:
    """``n`` cases in all, spread evenly over the supported families × dtypes, in ``workers``
    processes. Raises what :func:`load_impl` raises if the implementation cannot be loaded, and
    :class:`WorkerDied` if a job is lost (:func:`run_alone`)."""
    groups, _ = supported_groups(load_impl(impl), dtypes, families)
    results: dict[tuple[str, str], Tally] = {g: Tally() for g in groups}
    if not groups:
        return results
    jobs = plan_jobs(impl, groups, n, workers, seed)
    t0, done, total = time.perf_counter(), 0, sum(job.n for job in jobs)

    def received(tally: Tally) -> None:
        nonlocal done
        done += tally.cases
        rate = done / (time.perf_counter() - t0)
        if done * 10 // total != (done - tally.cases) * 10 // total:  # every tenth
            progress(f"  {done}/{total} cases, {rate:.0f} cases/s", flush=True)

    # refimpl and its variants fork (fast); anything else — jax is multithreaded — starts afresh
    start = "fork" if impl in VARIANTS else "spawn"
    for job, tally in zip(jobs, run_jobs(jobs, workers, start, received, lambda text: progress(text, flush=True))):
        results[(job.family, job.dtype)].add(tally)
    return results


def _r(x: float) -> str:
    """A ratio in 7 characters: fixed point where it is small, exponent form where it is not."""
    return f"{x:>7.3f}" if not x >= 1000 else f"{x:>7.1e}"


def table(results: dict[tuple[str, str], Tally]) -> str:
    lines = [f"{'family':<14} {'dtype':<8} {'cases':>7} {'fail':>5} {'known':>5} {'conv':>5} {'t-dev':>5} "
             f"{'p50':>7} {'p99':>7} {'p99.9':>7} {'max':>7}"]
    total = Tally()
    for (fam, dt), t in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        total.add(t)
        conv, dev = t.verdicts.get("convention", 0), t.verdicts.get("torch-deviates", 0)
        lines.append(f"{fam:<14} {dt:<8} {t.cases:>7} {t.failures:>5} {t.failures - t.unexplained:>5} "
                     f"{conv:>5} {dev:>5} "
                     f"{_r(t.quantile(0.5))} {_r(t.quantile(0.99))} {_r(t.quantile(0.999))} "
                     f"{_r(max(t.ratios, default=math.nan))}")
    lines.append(f"{'all':<14} {'':<8} {total.cases:>7} {total.failures:>5} "
                 f"{total.failures - total.unexplained:>5} "
                 f"{total.verdicts.get('convention', 0):>5} {total.verdicts.get('torch-deviates', 0):>5} "
                 f"{_r(total.quantile(0.5))} {_r(total.quantile(0.99))} {_r(total.quantile(0.999))} "
                 f"{_r(max(total.ratios, default=math.nan))}")
    return "\n".join(lines)
