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
"""

from __future__ import annotations

import importlib
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from unittest import mock

from conformance.case.dtypes import claims_of
from conformance.case.graph import dumps
from conformance.case.tensor_ops import LAYER_FAMILIES, TENSOR_OPS, layer_ops
from conformance.driver import run_suite, worker_pool
from conformance.impls import PairwiseRefImpl, RefImpl
from conformance.impls.loading import resolve
from conformance.kinds.graph import family_suite
from conformance.oracle.netrun import run_refimpl_network
from conformance.oracle.run import run_refimpl
from conformance.verdict.outcomes import NONCONFORMING, Verdict
from refimpl import OPS, engine

FAMILIES = [*sorted({s.family for s in OPS.values()}), "mixed", "tensor", *LAYER_FAMILIES]  # tensor: tensor graphs
MAX_KEPT = 20
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

def run_chunk(args: tuple[str, str, str, int, int]) -> Tally:
    """One worker's share: ``n`` cases of one family and dtype, from its own seed."""
    impl_name, fam, dtype, n, seed = args
    impl = load_impl(impl_name)
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

    # the same cases for a seed wherever it runs (the driver draws them from the seed alone)
    suite = family_suite(fam, dtype, family_ops(fam, impl.capabilities.ops), n, claims_of(impl.capabilities))
    run_suite(impl, suite, seed, on_case=one, shrink=False)
    return tally


def calibrate(impl: str = "refimpl", n: int = 100_000, dtypes: tuple[str, ...] = ("float64", "float32"),
              workers: int = 2, seed: int = 0, progress: Any = print,
              families: tuple[str, ...] = tuple(FAMILIES)) -> dict[tuple[str, str], Tally]:
    """``n`` cases in all, spread evenly over the supported families × dtypes, in ``workers``
    processes. Raises what :func:`load_impl` raises if the implementation cannot be loaded."""
    groups, _ = supported_groups(load_impl(impl), dtypes, families)
    results: dict[tuple[str, str], Tally] = {g: Tally() for g in groups}
    if not groups:
        return results
    per_group = max(1, n // len(groups))
    chunk = max(50, min(2000, per_group // max(1, workers)))
    jobs = []
    for g, (fam, dt) in enumerate(groups):
        left, k = per_group, 0
        while left > 0:
            size = min(chunk, left)
            jobs.append((impl, fam, dt, size, seed * 1_000_003 + g * 10_007 + k))
            left -= size
            k += 1
    t0, done, total = time.perf_counter(), 0, per_group * len(groups)
    # refimpl and its variants fork (fast); anything else — jax is multithreaded — starts afresh
    with worker_pool(workers, "fork" if impl in VARIANTS else "spawn") as pool:
        for job, tally in zip(jobs, pool.imap(run_chunk, jobs)):
            results[(job[1], job[2])].add(tally)
            done += tally.cases
            rate = done / (time.perf_counter() - t0)
            if done * 10 // total != (done - tally.cases) * 10 // total:  # every tenth
                progress(f"  {done}/{total} cases, {rate:.0f} cases/s", flush=True)
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
