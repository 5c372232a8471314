"""``conformance verify``: the suite as one command, for any implementation, outside pytest.

The same strategies and verdicts as ``pytest conformance``, organised in suites: every supported
op alone, random scalar graphs, random tensor graphs, float32 graphs, second order, deep chains and
training runs of MLPs (per dtype, per optimizer, per loss) — each drawn only from what the
implementation declares it supports. Every case is judged; the first
non-conforming case of a suite is then shrunk by hypothesis to a minimal one. Ops of the table the
implementation does not support are counted as ``unsupported`` (reported, never failed).
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import seed as hseed
from hypothesis import strategies as st
from hypothesis.errors import Flaky, NoSuchExample

from refimpl import OPS

from .assertions import check
from .impls import Implementation, run_safely
from .netstrategies import for_impl
from .networks import DTYPES, LOSS_ATTRS, OPTIMIZER_HYPER, NetworkCase, check_network
from .run import run_torch
from .strategies import DEEP_CHAIN_OPS, deep_chains, graph_cases, tensor_graph_cases
from .tensor_ops import TENSOR_OPS
from .verdict import NONCONFORMING, ORDER, CaseVerdict, disagrees

PROFILE_EXAMPLES = {"dev": 10, "ci": 40, "nightly": 400}  # per suite; per-op suites take a quarter
_QUIET = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))


#: called once per judged case (``on_case(suite, verdict, seconds)``): the report's records
OnCase = Callable[["Suite", CaseVerdict, float], None]


def check_case(impl: Implementation, case: Any) -> CaseVerdict:
    """The verdict on one case of either kind: a graph case or a training run."""
    return check_network(impl, case) if isinstance(case, NetworkCase) else check(impl, case)


@dataclass
class Suite:
    name: str
    family: str
    strategy: st.SearchStrategy[Any]
    examples: int


@dataclass
class SuiteResult:
    suite: Suite
    verdicts: Counter = field(default_factory=Counter)
    failure: CaseVerdict | None = None  # the minimal non-conforming case, if any
    seconds: float = 0.0


def suites(impl: Implementation, examples: int) -> list[Suite]:
    """What to run for this implementation, given its declared capabilities."""
    caps = impl.capabilities
    per_op = max(3, examples // 4)
    out = [Suite(f"op {name}", spec.family, graph_cases(ops=[name], max_nodes=2), per_op)
           for name, spec in OPS.items() if name in caps.ops]
    out += [Suite(f"op {name}", "tensor", tensor_graph_cases(ops=[name], max_nodes=2), per_op)
            for name in TENSOR_OPS if name in caps.ops]
    if any(n in OPS for n in caps.ops):
        out.append(Suite("scalar graphs", "graphs", graph_cases(ops=caps.ops, max_nodes=12), examples))
        if set(DEEP_CHAIN_OPS) <= caps.ops:
            out.append(Suite("deep chains", "graphs", deep_chains(), 2))
    if any(n in TENSOR_OPS for n in caps.ops):
        out.append(Suite("tensor graphs", "tensor", tensor_graph_cases(ops=caps.ops), examples))
    if "float32" in caps.dtypes:
        out.append(Suite("float32 graphs", "float32", graph_cases(ops=caps.ops, dtype="float32", max_nodes=12),
                         examples))
    if caps.second_order:
        out.append(Suite("second order", "second order",
                         graph_cases(ops=caps.ops, max_nodes=6, second_order=True), examples))
    if getattr(caps, "networks", False):  # as conformance/test_networks.py: a run costs ~10 graph cases
        dtypes = [d for d in DTYPES if d in caps.dtypes]
        out += [Suite(f"networks {d}", "networks", for_impl(impl, d), max(2, examples // 3)) for d in dtypes]
        each = max(3, examples // 8)  # the first run drawn is the minimal one, every knob off
        out += [Suite(f"optimizer {o}", "networks", for_impl(impl, dtypes[0], optimizers=[o]), each)
                for o in OPTIMIZER_HYPER if o in caps.optimizers]
        out += [Suite(f"loss {loss}", "networks", for_impl(impl, dtypes[0], losses=[loss]), each)
                for loss in LOSS_ATTRS if loss in caps.losses]
    return out


@contextlib.contextmanager
def same_cases_everywhere() -> Iterator[None]:
    """Make a seed draw the same cases in any process. Hypothesis (6.13x on) mixes into its draws
    the constants found in the source of every *local* module imported so far, a pool that grows
    as modules are imported: a resumed run, a shard, or a run inside a test process that has
    imported more of the project would draw other cases from the same seed. While cases are
    generated here, that pool is held empty (hypothesis's own constants remain). A no-op on a
    hypothesis without it."""
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


def run_suite(impl: Implementation, suite: Suite, seed: int, on_case: OnCase | None = None,
              ticker: Callable[[SuiteResult], None] | None = None) -> SuiteResult:
    result = SuiteResult(suite)
    first_bad: list[CaseVerdict] = []
    t0 = time.perf_counter()

    @hseed(seed)
    @settings(max_examples=suite.examples, phases=[Phase.generate], **_QUIET)
    @given(suite.strategy)
    def generate(case: Any) -> None:
        t = time.perf_counter()
        v = check_case(impl, case)
        result.verdicts[v.verdict] += 1
        if on_case is not None:
            on_case(suite, v, time.perf_counter() - t)
        if ticker is not None:
            ticker(result)
        if not v.conforms and not first_bad:
            first_bad.append(v)

    generate()
    if first_bad:  # a timeout is not shrunk: every try would cost the whole timeout
        shrunk = None if first_bad[0].verdict == "timeout" else _shrink(impl, suite, seed)
        result.failure = shrunk or first_bad[0]
    result.seconds = time.perf_counter() - t0
    return result


SHRINK_SECONDS = 60.0  # per suite: a crash or a huge answer makes every try slow


def _shrink(impl: Implementation, suite: Suite, seed: int) -> CaseVerdict | None:
    """Search again with shrinking on: hypothesis returns the smallest case that still disagrees
    with torch (the cheap test, no truth); the full verdict is then given to that case only. After
    ``SHRINK_SECONDS`` every new candidate counts as good (and one found bad stays bad, so the
    replay of the result agrees), which ends the search with the smallest case found so far. An
    implementation that answers the same case differently on two calls ends it too (flaky)."""
    deadline = time.monotonic() + SHRINK_SECONDS
    bad: set[str] = set()

    def still_bad(case: Any) -> bool:
        if time.monotonic() > deadline:
            return case.id in bad
        if isinstance(case, NetworkCase):  # no cheap pre-test for a training run: judge it outright
            found = not check_network(impl, case).conforms
        else:
            found = disagrees(case, run_safely(impl, case), run_torch(case))
        if found:
            bad.add(case.id)
        return found

    try:
        case = find(suite.strategy, still_bad, settings=settings(max_examples=max(50, 4 * suite.examples), **_QUIET),
                    random=random.Random(seed))
    except (NoSuchExample, Flaky):
        return None
    v = check_case(impl, case)
    return None if v.conforms else v  # e.g. torch-deviates: keep the original failure instead


def _counts(verdicts: Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items(), key=lambda kv: ORDER.index(kv[0])))


class Ticker:
    """A live progress line on a terminal (stderr, rewritten at most every ``every`` seconds);
    silent when stderr is not a terminal, where the per-suite lines are the progress."""

    def __init__(self, every: float = 0.5, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.every, self.last, self.width = every, 0.0, 0
        self.position = ""

    def __call__(self, r: SuiteResult) -> None:
        now = time.perf_counter()
        if not self.live or now - self.last < self.every:
            return
        self.last = now
        n = sum(r.verdicts.values())
        line = f"  {self.position} {r.suite.name}: {n}/{r.suite.examples} cases  {_counts(r.verdicts)}"
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
    with same_cases_everywhere():
        return _verify(impl, suites(impl, examples), seed, progress, on_case, ticker)


def _verify(impl: Implementation, planned: list[Suite], seed: int, progress: Callable[[str], None],
            on_case: OnCase | None, ticker: Ticker | None) -> list[SuiteResult]:
    results = []
    for i, suite in enumerate(planned):
        if ticker is not None:
            ticker.position = f"[{i + 1}/{len(planned)}]"
        r = run_suite(impl, suite, seed + i, on_case, ticker)
        if ticker is not None:
            ticker.clear()
        results.append(r)
        progress(f"  {suite.name:<22} {sum(r.verdicts.values()):>5} cases  {_counts(r.verdicts)}  ({r.seconds:.1f}s)")
    return results


COLUMNS = ("pass", "fail", "convention", "torch-deviates", "nonfinite-mismatch", "error", "timeout")


def table(impl: Implementation, results: list[SuiteResult]) -> str:
    """Counts per op family and feature, with the ops the implementation does not support."""
    fams: dict[str, Counter] = {}
    for r in results:
        fams.setdefault(r.suite.family, Counter()).update(r.verdicts)
    unsupported = Counter(spec.family for name, spec in OPS.items() if name not in impl.capabilities.ops)
    unsupported["tensor"] += sum(1 for name in TENSOR_OPS if name not in impl.capabilities.ops)
    unsupported = +unsupported  # drop the zero counts
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
    from . import cases, networks, repro

    v = r.failure
    assert v is not None
    if isinstance(v.case, NetworkCase):
        size, dumps, script = v.case.summary(), networks.dumps, networks.torch_script
    else:
        size, dumps, script = f"{len(v.case.nodes)} nodes", cases.dumps, repro.torch_script
    return (f"FAIL {r.suite.name}: minimal case {v.case.id} ({size}): {v.verdict}\n  {v.reason}\n"
            f"case JSON:\n{dumps(v.case)}\nreproduce with torch:\n{script(v.case)}")
