"""``conformance mutants``: run the suite against every mutant of the zoo and print a kill matrix.

Each mutant (:mod:`conformance.impls.zoo`) is refimpl with one realistic bug. The suites are verify's
(:func:`conformance.kinds.suites`, refimpl's capabilities), in verify's order — one fixed order for
every mutant — with verify's strategies and seeds (suite ``i`` gets ``seed + i``), drawn from the
seed alone (:func:`conformance.driver.draw`). A mutant's run stops at its first
non-conforming verdict (the kill); only the killing suite is then shrunk (:func:`conformance.driver.shrink_case`).

Outcomes, and the rule for kinks: ``killed`` — some case is ``fail``, ``nonfinite-mismatch``,
``error`` or ``timeout``. ``caught as convention`` — no case is, but at least one case is judged
``convention`` where unmutated refimpl passes the very same case: the suite saw the difference and
put it down to a documented kink (torch's choice at a point where the derivative does not exist),
which conforms by design. ``survived`` — neither. A mutant whose bug is a kink convention is
expected to be caught as convention; every other mutant must be killed.

Speed without changing the verdicts: the cases of each suite are drawn once, and refimpl's own
result, torch's result and the verdict on refimpl are computed once per case (the *control*). The
verdict is a pure function of (case, result, torch's result), so where a mutant's result is bit for
bit refimpl's, refimpl's verdict is its verdict; every other result is judged in full.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from conformance import kinds
from conformance.driver import PROFILES, draw, failure_text, run_suite, shrink_case, worker_pool
from conformance.impls import RefImpl
from conformance.impls.zoo import MUTANTS, MutantImpl
from conformance.kinds.kind import Suite

NAME_WIDTH = 36


@dataclass
class Reference:
    """Refimpl's run of one case, torch's, and the verdict on refimpl: what every mutant is held to."""

    key: Any
    torch: Any
    verdict: Any  # CaseVerdict


@dataclass
class Outcome:
    name: str
    category: str
    expect: str
    status: str  # "killed" | "convention" | "survived"
    suite: str = ""  # the suite that killed it (or judged it convention)
    verdict: Any = None  # the (minimal) non-conforming case's CaseVerdict, or the first convention one
    seconds: float = 0.0  # to the kill (first non-conforming verdict); else the whole run
    shrink_seconds: float = 0.0
    cases: int = 0  # cases the mutant ran

    @property
    def ok(self) -> bool:
        """Killed, or caught as convention when its bug is a kink convention."""
        return self.status == "killed" or (self.status == "convention" and self.expect == "convention")

    @property
    def label(self) -> str:
        if self.expect == "survive":  # the control
            return "not killed" if self.status != "killed" else "KILLED (false alarm)"
        return {"killed": "killed", "convention": "caught as convention", "survived": "SURVIVED"}[self.status]


@dataclass
class Plan:
    """The suites in their fixed order, their cases (drawn once) and refimpl's reference on each."""

    examples: int
    seed: int
    suites: list[Suite] = field(default_factory=list)
    drawn: dict[int, list[Any]] = field(default_factory=dict)
    references: dict[str, Reference] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.suites = kinds.suites(RefImpl.capabilities, self.examples)

    def cases(self, i: int) -> list[Any]:
        """Suite ``i``'s cases, as every command draws them (:func:`conformance.driver.draw`)."""
        if i not in self.drawn:
            self.drawn[i] = draw(self.suites[i], self.seed + i)
        return self.drawn[i]

    def reference(self, case: Any) -> Reference:
        if case.id not in self.references:
            k = kinds.of(case)
            result, torch = k.run(RefImpl(), case), k.run_torch(case)
            self.references[case.id] = Reference(k.result_key(result), torch, k.judge(case, result, torch))
        return self.references[case.id]

    def judge(self, impl: Any, case: Any) -> Any:
        """The verdict on ``impl``'s result: refimpl's where the results are the same bits (the
        verdict is a pure function of case, result and torch's result), else judged in full."""
        ref, k = self.reference(case), kinds.of(case)
        result = k.run(impl, case)
        return ref.verdict if k.result_key(result) == ref.key else k.judge(case, result, ref.torch)


def hunt(impl: Any, plan: Plan, *, shrink: bool = True, expect: str = "kill", category: str = "") -> Outcome:
    """Run the suites in the plan's order until the first non-conforming verdict; shrink that suite."""
    out = Outcome(impl.name, category, expect, "survived")
    t0 = time.perf_counter()

    def seen(suite: Suite, seed: int, index: int, v: Any, seconds: float) -> None:
        out.cases += 1
        if v.verdict == "convention" and out.status == "survived" and plan.reference(v.case).verdict.verdict == "pass":
            out.status, out.suite, out.verdict = "convention", suite.name, v

    for i, suite in enumerate(plan.suites):
        r = run_suite(impl, suite, plan.seed + i, cases=plan.cases(i), judge=lambda case: plan.judge(impl, case),
                      on_case=seen, first_failure_only=True, shrink=False)
        if r.first_bad is not None:
            out.seconds = time.perf_counter() - t0
            out.status, out.suite, out.verdict = "killed", suite.name, r.first_bad[1]
            if shrink:
                t1 = time.perf_counter()
                out.verdict = shrink_case(impl, suite, plan.seed + i) or out.verdict
                out.shrink_seconds = time.perf_counter() - t1
            return out
    out.seconds = time.perf_counter() - t0
    return out


# --- running the zoo (in worker processes when asked) ----------------------------------------------------

#: a worker process's share of :func:`run_zoo`'s work — the plan and whether to shrink — handed to it by the
#: pool's initializer (:func:`_receive`, inherited through fork, never pickled). Only ever set in a worker:
#: the parent passes its plan as an argument.
_WORKER: dict[str, Any] = {}


def _receive(plan: Plan, shrink: bool) -> None:
    _WORKER.update(plan=plan, shrink=shrink)


def _reference_of(task: tuple[int, int]) -> tuple[str, Reference]:
    plan: Plan = _WORKER["plan"]
    case = plan.cases(task[0])[task[1]]
    return case.id, plan.reference(case)


def hunt_mutant(name: str, plan: Plan, shrink: bool = True) -> Outcome:
    """:func:`hunt` the zoo's mutant ``name``."""
    m = MUTANTS[name]
    out = hunt(MutantImpl(m), plan, shrink=shrink, expect=m.expect, category=m.category)
    out.name = m.name
    return out


def _hunt_in_worker(name: str) -> Outcome:
    return hunt_mutant(name, _WORKER["plan"], _WORKER["shrink"])


def control_outcome(plan: Plan, seconds: float) -> Outcome:
    """refimpl itself, judged on every case of the plan (its references): it must not be killed."""
    out = Outcome("refimpl (control)", "control", "survive", "survived", seconds=seconds)
    for i, suite in enumerate(plan.suites):
        for case in plan.cases(i):
            out.cases += 1
            v = plan.reference(case).verdict
            if not v.conforms and out.status != "killed":
                out.status, out.suite, out.verdict = "killed", suite.name, v
    return out


def run_zoo(names: list[str], examples: int, seed: int, *, shrink: bool = True, workers: int = 1,
            progress: Any = None) -> tuple[Outcome, list[Outcome], Plan]:
    """The control first — refimpl's reference on every case, the expensive part, split over the
    workers — then each mutant (one per worker at a time). Workers are forked from this process
    (:func:`conformance.driver.worker_pool`, the plan handed over by its initializer), which draws the
    cases (refimpl only) but never runs torch itself."""
    plan = Plan(examples, seed)
    t0 = time.perf_counter()
    tasks = list({c.id: (i, j) for i in range(len(plan.suites)) for j, c in enumerate(plan.cases(i))}.values())
    if workers > 1:
        with worker_pool(workers, initializer=_receive, initargs=(plan, shrink)) as pool:
            plan.references.update(pool.imap_unordered(_reference_of, tasks, chunksize=4))
    control = control_outcome(plan, time.perf_counter() - t0)
    if progress:
        progress(control)
    outcomes = []
    if workers > 1 and len(names) > 1:
        with worker_pool(workers, initializer=_receive, initargs=(plan, shrink)) as pool:
            for out in pool.imap(_hunt_in_worker, names):
                outcomes.append(out)
                if progress:
                    progress(out)
    else:
        for name in names:
            outcomes.append(hunt_mutant(name, plan, shrink))
            if progress:
                progress(outcomes[-1])
    return control, outcomes, plan


# --- the kill matrix --------------------------------------------------------------------------------------

def case_line(v: Any) -> str:
    """The case in one line: its id and its size."""
    if v is None:
        return "-"
    return f"{v.case.id} ({kinds.of(v.case).size(v.case)}, {v.case.dtype})"


def row(o: Outcome) -> str:
    verdict = "-" if o.verdict is None else o.verdict.verdict
    when = f"{o.seconds:.1f}s" if o.status == "killed" else f"({o.seconds:.0f}s)"
    return (f"{o.name:<{NAME_WIDTH}} {o.category:<10} {o.label:<21} {o.suite or '-':<22} {verdict:<18} "
            f"{when:>7}  {case_line(o.verdict)}")


def header() -> str:
    return (f"{'mutant':<{NAME_WIDTH}} {'category':<10} {'outcome':<21} {'by suite':<22} {'verdict':<18} "
            f"{'to kill':>7}  minimal case")


def summary(control: Outcome, outcomes: list[Outcome]) -> str:
    killed = [o for o in outcomes if o.status == "killed"]
    conv = [o for o in outcomes if o.expect == "convention"]
    caught = [o for o in conv if o.status == "convention"]
    bad = [o for o in outcomes if not o.ok]
    times = [o.seconds for o in killed]
    lines = [f"killed {len(killed)}/{len(outcomes)}"
             + (f" (kill expected: {sum(o.status == 'killed' for o in outcomes if o.expect == 'kill')}/"
                f"{sum(o.expect == 'kill' for o in outcomes)}; caught as convention: {len(caught)}/{len(conv)})"
                if conv else "")
             + (f"; time to kill median {statistics.median(times):.1f}s, max {max(times):.1f}s" if times else "")]
    if bad:
        lines.append("NOT CAUGHT: " + ", ".join(f"{o.name} ({o.label})" for o in bad))
    lines.append(f"control: refimpl {'NOT KILLED' if control.status != 'killed' else 'KILLED (a false alarm)'}"
                 f" over {control.cases} cases in {control.seconds:.0f}s")
    return "\n".join(lines)


# --- the command ------------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=["dev", "ci", "nightly"], default="ci",
                   help="cases per suite as verify's profile (default: ci)")
    p.add_argument("--max-examples", type=int, default=None, help="cases per suite (default: by profile)")
    p.add_argument("--seed", type=int, default=0, help="suite i is seeded with seed + i, as in verify (default 0)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="only these mutants")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--no-shrink", action="store_true", help="report the first killing case, unshrunk")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--details", action="store_true",
                   help="print each killing case in full: JSON and a torch script (verify.failure_text)")


def run(args: argparse.Namespace) -> int:
    def usage(message: str) -> int:
        print(f"conformance: {message}", file=sys.stderr)
        return 2

    if args.list:
        for m in MUTANTS.values():
            note = "  [expected: caught as convention]" if m.expect == "convention" else ""
            print(f"{m.name:<{NAME_WIDTH}} {m.category:<10} {m.bug}{note}")
        return 0
    unknown = [n for n in args.only or [] if n not in MUTANTS]
    if unknown:
        return usage(f"unknown mutant {', '.join(unknown)} (see 'conformance mutants --list')")
    if args.max_examples is not None and args.max_examples < 1:
        return usage("--max-examples must be at least 1")
    if args.workers < 1:
        return usage("--workers must be at least 1")

    examples = args.max_examples or PROFILES[args.profile]
    names = list(dict.fromkeys(args.only)) if args.only else list(MUTANTS)
    print(f"conformance mutants: {len(names)} mutant(s), profile={args.profile}, cases/suite={examples}, "
          f"seed={args.seed}, one fixed suite order (verify's), stop at the first kill")
    print(header())
    t0 = time.perf_counter()
    control, outcomes, _ = run_zoo(names, examples, args.seed, shrink=not args.no_shrink,
                                      workers=args.workers, progress=lambda o: print(row(o), flush=True))
    print()
    print(summary(control, outcomes))
    print(f"{time.perf_counter() - t0:.0f}s in all")
    if args.details:
        for o in outcomes:
            if o.status == "killed":
                print(f"\n--- {o.name}\n" + failure_text(o.suite, o.verdict))
    return 0 if control.status != "killed" and all(o.ok for o in outcomes) else 1
