"""Calibration: run correct implementations over many random cases and measure the false alarms.

refimpl rounds differently from torch (different formulas, different summation orders, correctly
rounded sqrt where torch's is not), so it is the natural "correct but not identical" witness:
every case must pass, and the distribution of error/tolerance ratios shows how much headroom the
tolerances leave. Cases are drawn by the same hypothesis strategies the suite uses (generation
only, no shrinking), per op family so that a ratio can be attributed, in float64 and float32, and
the work is split across processes.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from refimpl import OPS

FAMILIES = [*sorted({s.family for s in OPS.values()}), "mixed", "tensor"]  # tensor: tensor_graph_cases
MAX_KEPT = 20


@dataclass
class Tally:
    cases: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ratios: list[float] = field(default_factory=list)  # the worst entry ratio of every case
    worst_case: str = ""
    failures_seen: list[str] = field(default_factory=list)  # the first few failing cases, as JSON

    def add(self, other: Tally) -> None:
        self.cases += other.cases
        for k, v in other.verdicts.items():
            self.verdicts[k] += v
        if other.ratios and (not self.ratios or max(other.ratios) > max(self.ratios)):
            self.worst_case = other.worst_case
        self.ratios += other.ratios
        self.failures_seen += other.failures_seen[:MAX_KEPT - len(self.failures_seen)]

    @property
    def failures(self) -> int:
        from .verdict import NONCONFORMING

        return sum(v for k, v in self.verdicts.items() if k in NONCONFORMING)

    def quantile(self, q: float) -> float:
        if not self.ratios:
            return math.nan
        xs = sorted(self.ratios)
        return xs[min(len(xs) - 1, int(q * len(xs)))]


def _ops_of(fam: str) -> list[str] | None:
    return None if fam in ("mixed", "tensor") else [s.name for s in OPS.values() if s.family == fam]


def run_chunk(args: tuple[str, str, str, int, int]) -> Tally:
    """One worker's share: ``n`` cases of one family and dtype, from its own seed."""
    impl_name, fam, dtype, n, seed = args
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    from .assertions import check
    from .cases import dumps
    from .impls import load
    from .strategies import graph_cases, tensor_graph_cases

    impl = load(impl_name)
    tally = Tally()

    @hseed(seed)
    @settings(max_examples=n, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(tensor_graph_cases(dtype=dtype) if fam == "tensor" else graph_cases(ops=_ops_of(fam), dtype=dtype,
                                                                                  max_nodes=10))
    def one(case: Any) -> None:
        v = check(impl, case)
        tally.cases += 1
        tally.verdicts[v.verdict] += 1
        if not v.conforms and len(tally.failures_seen) < MAX_KEPT:
            tally.failures_seen.append(f"{v.reason}\n{dumps(case)}")
        r = v.worst_ratio
        if not tally.ratios or r > max(tally.ratios):
            tally.worst_case = dumps(case) if not v.conforms or r > 0.5 else case.id
        tally.ratios.append(r)

    one()
    return tally


def calibrate(impl: str = "refimpl", n: int = 100_000, dtypes: tuple[str, ...] = ("float64", "float32"),
              workers: int = 2, seed: int = 0, progress: Any = print,
              families: tuple[str, ...] = tuple(FAMILIES)) -> dict[tuple[str, str], Tally]:
    """``n`` cases in all, spread evenly over families × dtypes, in ``workers`` processes."""
    groups = [(fam, dt) for dt in dtypes for fam in FAMILIES if fam in families]
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
    results: dict[tuple[str, str], Tally] = {g: Tally() for g in groups}
    t0, done, total = time.perf_counter(), 0, per_group * len(groups)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        for job, tally in zip(jobs, pool.imap(run_chunk, jobs)):
            results[(job[1], job[2])].add(tally)
            done += tally.cases
            rate = done / (time.perf_counter() - t0)
            if done * 10 // total != (done - tally.cases) * 10 // total:  # every tenth
                progress(f"  {done}/{total} cases, {rate:.0f} cases/s", flush=True)
    return results


def table(results: dict[tuple[str, str], Tally]) -> str:
    lines = [f"{'family':<14} {'dtype':<8} {'cases':>7} {'fail':>5} {'conv':>5} {'t-dev':>5} "
             f"{'p50':>7} {'p99':>7} {'p99.9':>7} {'max':>7}"]
    total = Tally()
    for (fam, dt), t in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        total.add(t)
        conv, dev = t.verdicts.get("convention", 0), t.verdicts.get("torch-deviates", 0)
        lines.append(f"{fam:<14} {dt:<8} {t.cases:>7} {t.failures:>5} {conv:>5} {dev:>5} "
                     f"{t.quantile(0.5):>7.3f} {t.quantile(0.99):>7.3f} "
                     f"{t.quantile(0.999):>7.3f} {max(t.ratios, default=math.nan):>7.3f}")
    lines.append(f"{'all':<14} {'':<8} {total.cases:>7} {total.failures:>5} "
                 f"{total.verdicts.get('convention', 0):>5} {total.verdicts.get('torch-deviates', 0):>5} "
                 f"{total.quantile(0.5):>7.3f} {total.quantile(0.99):>7.3f} {total.quantile(0.999):>7.3f} "
                 f"{max(total.ratios, default=math.nan):>7.3f}")
    return "\n".join(lines)
