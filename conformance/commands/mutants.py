"""``conformance mutants``: run the suite against every mutant of the zoo and print a kill matrix.

Each mutant (:mod:`conformance.impls.zoo`) is refimpl with one realistic bug. The suites are verify's
(:func:`conformance.kinds.suites`, refimpl's capabilities), in verify's order — one fixed order for
every mutant — with verify's strategies and seeds (suite ``i`` gets ``seed + i``), drawn from the
seed alone (:func:`conformance.driver.draw`). A mutant's run stops at its first
non-conforming verdict (the kill); only the killing suite is then shrunk (:class:`conformance.driver.Shrinker`).

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

``--zoo foreign`` runs the foreign zoo instead (:mod:`conformance.impls.foreign`: standalone engines
that are not refimpl) through verify's suites for each engine's own capabilities, through every
suite, at seeds ``seed .. seed + K - 1`` (``--seeds K``), unshrunk by default, and prints a matrix
engine × seed: each row must be as its registry entry expects at every seed, with the planted bug
among the reported failures (:class:`ForeignRow`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from conformance import kinds
from conformance.driver import PROFILES, Shrinker, draw, failure_text, run_suite, worker_pool
from conformance.impls import RefImpl
from conformance.impls.foreign import FOREIGN, Foreign
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
    seed: int = 0
    #: (suite, verdict): the first non-conforming case of each suite run — only the killing one,
    #: unless the hunt went on through every suite (:func:`hunt`'s ``every_suite``)
    failures: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Killed, or caught as convention when its bug is a kink convention; not killed when it is
        correct (the control, a correct foreign engine)."""
        if self.expect in ("survive", "conforms"):
            return self.status != "killed"
        return self.status == "killed" or (self.status == "convention" and self.expect == "convention")

    @property
    def label(self) -> str:
        if self.expect == "survive":  # the control
            return "not killed" if self.status != "killed" else "KILLED (false alarm)"
        return {"killed": "killed", "convention": "caught as convention", "survived": "SURVIVED"}[self.status]


@dataclass
class Plan:
    """The suites in their fixed order, their cases (drawn once) and refimpl's reference on each.

    The suites are those of an implementation with ``capabilities`` (refimpl's by default: one
    order for every mutant), as verify gives them (:func:`conformance.kinds.suites`)."""

    examples: int
    seed: int
    capabilities: Any = None  # default: RefImpl.capabilities
    suites: list[Suite] = field(default_factory=list)
    drawn: dict[int, list[Any]] = field(default_factory=dict)
    references: dict[str, Reference] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.capabilities = self.capabilities or RefImpl.capabilities
        self.suites = kinds.suites(self.capabilities, self.examples)

    def declaring(self, capabilities: Any) -> Plan:
        """The plan of an implementation that declares ``capabilities`` (a mutant with a claim about its
        reductions: :attr:`~conformance.impls.zoo.base.Mutant.declares`): the same examples and seed, its
        own suites and cases, refimpl's references shared — a reference is keyed by the case's id, which
        names the claim, so a case the claim leaves as it was is not judged again."""
        if capabilities is None or capabilities == self.capabilities:
            return self
        return Plan(self.examples, self.seed, capabilities, references=self.references)

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


def hunt(impl: Any, plan: Plan, *, shrink: bool = True, expect: str = "kill", category: str = "",
         every_suite: bool = False, ops: frozenset[str] = frozenset()) -> Outcome:
    """Run the suites in the plan's order until the first non-conforming verdict; shrink that suite.
    With ``every_suite``, go on through every suite (each still stops at its first non-conforming
    case), collecting each suite's in :attr:`Outcome.failures`, as verify would report them. With
    ``ops`` (a mutant that can change cases of those ops only), a case without them keeps refimpl's
    verdict, not run again."""
    out = Outcome(impl.name, category, expect, "survived", seed=plan.seed)
    t0 = time.perf_counter()

    def seen(suite: Suite, seed: int, index: int, v: Any, seconds: float) -> None:
        out.cases += 1
        if v.verdict == "convention" and out.status == "survived" and plan.reference(v.case).verdict.verdict == "pass":
            out.status, out.suite, out.verdict = "convention", suite.name, v

    def judge(case: Any) -> Any:
        if ops and not ops & set(getattr(case, "ops", ())):
            return plan.reference(case).verdict  # bit for bit refimpl's computation (Mutant.ops)
        return plan.judge(impl, case)

    for i, suite in enumerate(plan.suites):
        r = run_suite(impl, suite, plan.seed + i, cases=plan.cases(i), judge=judge, on_case=seen,
                      first_failure_only=True, shrink=False)
        if r.first_bad is None:
            continue
        out.failures.append((suite.name, r.first_bad[1]))
        if out.status == "killed":  # a later suite of an every-suite hunt
            continue
        out.seconds = time.perf_counter() - t0
        out.status, out.suite, out.verdict = "killed", suite.name, r.first_bad[1]
        if shrink:
            t1 = time.perf_counter()
            out.verdict = Shrinker()(impl, out.verdict).verdict
            out.shrink_seconds = time.perf_counter() - t1
        if not every_suite:
            return out
    if out.status != "killed" or every_suite:
        out.seconds = time.perf_counter() - t0
    return out


# --- running the zoo (in worker processes when asked) ----------------------------------------------------

#: a worker process's share of the work — :func:`run_zoo`'s plan and whether to shrink; :func:`run_foreign`'s
#: cases per suite, whether to shrink and the plans it has built — handed to it by the pool's initializer
#: (:func:`_receive`, inherited through fork, never pickled). Only ever set in a worker: the parent passes
#: the same as arguments.
_WORKER: dict[str, Any] = {}


def _receive(share: dict[str, Any]) -> None:
    _WORKER.update(share)


def spread(tasks: list[Any], here: Callable[[Any], Outcome], in_worker: Callable[[Any], Outcome], workers: int,
           share: dict[str, Any]) -> Iterator[Outcome]:
    """Each task's outcome, in the tasks' order: ``here(task)`` in this process, or with ``workers``
    processes ``in_worker(task)`` in forked workers that received ``share`` (:data:`_WORKER`)."""
    if workers > 1 and len(tasks) > 1:
        with worker_pool(workers, initializer=_receive, initargs=(share,)) as pool:
            yield from pool.imap(in_worker, tasks)
    else:
        yield from map(here, tasks)


def _reference_of(task: tuple[int, int]) -> tuple[str, Reference]:
    plan: Plan = _WORKER["plan"]
    case = plan.cases(task[0])[task[1]]
    return case.id, plan.reference(case)


def hunt_mutant(name: str, plan: Plan, shrink: bool = True) -> Outcome:
    """:func:`hunt` the zoo's mutant ``name``."""
    m = MUTANTS[name]
    out = hunt(MutantImpl(m), plan.declaring(m.declares), shrink=shrink, expect=m.expect, category=m.category,
               ops=m.ops)
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
        with worker_pool(workers, initializer=_receive, initargs=(dict(plan=plan),)) as pool:
            plan.references.update(pool.imap_unordered(_reference_of, tasks, chunksize=4))
    control = control_outcome(plan, time.perf_counter() - t0)
    if progress:
        progress(control)
    outcomes = []
    for out in spread(names, lambda name: hunt_mutant(name, plan, shrink), _hunt_in_worker, workers,
                      dict(plan=plan, shrink=shrink)):
        outcomes.append(out)
        if progress:
            progress(out)
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


# --- the foreign zoo: standalone engines, every suite, several seeds -------------------------------------

#: a cell of the foreign matrix: what verify would say of the engine at that seed
CELL = {"survived": "CONFORMS", "killed": "DOES NOT CONFORM", "convention": "convention"}
EXPECTED_CELL = {"conforms": "CONFORMS", "kill": "DOES NOT CONFORM", "convention": "convention"}
FOREIGN_WIDTH = max(len(name) for name in FOREIGN)  # the longest engine name


@dataclass
class ForeignRow:
    """One foreign engine at every seed: an :class:`Outcome` per seed, each from a hunt through
    every suite (each suite's first non-conforming case in :attr:`Outcome.failures`)."""

    entry: Foreign
    outcomes: list[Outcome]

    def expected(self, o: Outcome) -> bool:
        return CELL[o.status] == EXPECTED_CELL[self.entry.expect]

    def evidence(self, o: Outcome) -> tuple[str, Any] | None:
        """The first reported case of this seed that shows the planted bug: among the failures for a
        bug, the case judged convention for a kink convention."""
        reported = [(o.suite, o.verdict)] if self.entry.expect == "convention" and o.status == "convention" \
            else o.failures
        return next(((s, v) for s, v in reported if self.entry.shows_bug(s, v)), None)

    def found(self) -> int:
        """Seeds at which the planted bug is among the reported cases."""
        return sum(self.evidence(o) is not None for o in self.outcomes)

    @property
    def ok(self) -> bool:
        """As expected at every seed — and, for a planted bug, seen at every seed."""
        return all(self.expected(o) for o in self.outcomes) and (
            self.entry.expect == "conforms" or self.found() == len(self.outcomes))

    def example(self) -> tuple[int, str, Any] | None:
        """(seed, suite, verdict) to show: the first evidence of the bug, else the first failure."""
        for o in self.outcomes:
            e = self.evidence(o)
            if e:
                return (o.seed, *e)
        return next(((o.seed, *o.failures[0]) for o in self.outcomes if o.failures), None)


def hunt_foreign(name: str, seed: int, examples: int, plans: dict[Any, Plan], shrink: bool = False) -> Outcome:
    """:func:`hunt` the foreign engine ``name`` through every suite its capabilities give, at ``seed``;
    ``plans`` keeps each (capabilities, seed)'s plan (its cases and references) for the next engine."""
    entry = FOREIGN[name]
    impl = entry.load()
    try:
        key = (impl.capabilities, examples, seed)
        if key not in plans:
            plans[key] = Plan(examples, seed, impl.capabilities)
        out = hunt(impl, plans[key], shrink=shrink, expect=entry.expect, category=entry.style, every_suite=True)
    finally:
        if hasattr(impl, "close"):  # a JSON Lines program
            impl.close()
    out.name = entry.name
    return out


def _hunt_foreign_in_worker(task: tuple[str, int]) -> Outcome:
    return hunt_foreign(*task, _WORKER["examples"], _WORKER["plans"], _WORKER["shrink"])


def run_foreign(names: list[str], examples: int, seeds: list[int], *, shrink: bool = False, workers: int = 1,
                progress: Callable[[ForeignRow], None] | None = None) -> list[ForeignRow]:
    """Every engine at every seed (one task each, spread over the workers); a row is complete, and
    handed to ``progress``, when its last seed is."""
    plans: dict[Any, Plan] = {}
    rows: list[ForeignRow] = []
    done: list[Outcome] = []
    tasks = [(name, seed) for name in names for seed in seeds]
    for out in spread(tasks, lambda task: hunt_foreign(*task, examples, plans, shrink), _hunt_foreign_in_worker,
                      workers, dict(examples=examples, plans={}, shrink=shrink)):
        done.append(out)
        if len(done) == len(seeds):
            rows.append(ForeignRow(FOREIGN[out.name], done))
            done = []
            if progress:
                progress(rows[-1])
    return rows


def foreign_header(seeds: list[int]) -> str:
    cells = " ".join(f"{'seed ' + str(s):<16}" for s in seeds)
    return (f"{'implementation':<{FOREIGN_WIDTH}} {'style':<8} {'expect':<10} {cells}  {'as expected':<11} "
            f"{'bug seen':<8}  failing case")


def foreign_row(row: ForeignRow) -> str:
    cells = " ".join(f"{CELL[o.status]:<16}" for o in row.outcomes)
    n = len(row.outcomes)
    hits = sum(row.expected(o) for o in row.outcomes)
    expected = "yes" if hits == n else f"NO ({hits}/{n})"
    seen = "-" if row.entry.expect == "conforms" else f"{row.found()}/{n}"
    ex = row.example()
    case = "-" if ex is None else f"seed {ex[0]}, {ex[1]}: {case_line(ex[2])} {ex[2].verdict}"
    if ex is not None and row.entry.expect != "conforms" and not row.entry.shows_bug(ex[1], ex[2]):
        case += " (not the planted bug)"
    return (f"{row.entry.name:<{FOREIGN_WIDTH}} {row.entry.style:<8} {row.entry.expect:<10} {cells}  "
            f"{expected:<11} {seen:<8}  {case}")


def foreign_summary(rows: list[ForeignRow]) -> str:
    good = [r for r in rows if r.ok]
    lines = [f"as expected at every seed: {len(good)}/{len(rows)} engines"]
    for r in rows:
        if r.ok:
            continue
        wrong: dict[str, list[str]] = {}
        for o in r.outcomes:
            if not r.expected(o):
                wrong.setdefault(CELL[o.status], []).append(str(o.seed))
        cells = ", ".join(f"{cell} at seed{'s' * (len(at) > 1)} {', '.join(at)}" for cell, at in wrong.items())
        missed = [str(o.seed) for o in r.outcomes if r.expected(o) and r.entry.expect != "conforms"
                  and r.evidence(o) is None]
        why = "; ".join(part for part in (
            cells and f"{cells} (expected {EXPECTED_CELL[r.entry.expect]})",
            missed and f"planted bug ({r.entry.planted}) not among the reported cases at seed"
                       f"{'s' * (len(missed) > 1)} {', '.join(missed)}")
            if part)
        lines.append(f"NOT AS EXPECTED: {r.entry.name} ({r.entry.bug}): {why}")
    return "\n".join(lines)


def run_foreign_command(args: argparse.Namespace, examples: int, names: list[str]) -> int:
    seeds = list(range(args.seed, args.seed + args.seeds))
    print(f"conformance mutants --zoo foreign: {len(names)} engine(s), profile={args.profile}, "
          f"cases/suite={examples}, seeds {seeds[0]}..{seeds[-1]}, every suite (verify's), "
          f"{'shrinking' if args.shrink else 'no shrinking'}")
    print(foreign_header(seeds))
    t0 = time.perf_counter()
    rows = run_foreign(names, examples, seeds, shrink=bool(args.shrink), workers=args.workers,
                       progress=lambda r: print(foreign_row(r), flush=True))
    print()
    print(foreign_summary(rows))
    print(f"{time.perf_counter() - t0:.0f}s in all")
    if args.details:
        for r in rows:
            ex = r.example()
            if ex is not None:
                print(f"\n--- {r.entry.name}, seed {ex[0]}\n" + failure_text(ex[1], ex[2]))
    return 0 if all(r.ok for r in rows) else 1


# --- the command ------------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--zoo", choices=["refimpl", "foreign"], default="refimpl",
                   help="refimpl: refimpl with planted bugs, a kill matrix at one seed (default); foreign: "
                        "standalone engines (conformance/impls/foreign), every suite, a matrix engine x seed")
    p.add_argument("--profile", choices=["dev", "ci", "nightly"], default="ci",
                   help="cases per suite as verify's profile (default: ci)")
    p.add_argument("--max-examples", type=int, default=None, help="cases per suite (default: by profile)")
    p.add_argument("--seed", type=int, default=0, help="suite i is seeded with seed + i, as in verify (default 0)")
    p.add_argument("--seeds", type=int, default=1, metavar="K",
                   help="--zoo foreign: run at seeds seed .. seed+K-1 (default 1)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="only these mutants (engines)")
    p.add_argument("--list", action="store_true", help="list the mutants (engines) and exit")
    p.add_argument("--shrink", action=argparse.BooleanOptionalAction, default=None,
                   help="shrink the first killing case (default: yes for the refimpl zoo, no for the foreign zoo)")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--details", action="store_true",
                   help="print each killing case in full: JSON and a torch script (verify.failure_text)")


def run(args: argparse.Namespace) -> int:
    def usage(message: str) -> int:
        print(f"conformance: {message}", file=sys.stderr)
        return 2

    foreign = args.zoo == "foreign"
    zoo: dict[str, Any] = FOREIGN if foreign else MUTANTS
    if args.list:
        for m in zoo.values():
            if foreign:
                print(f"{m.name:<{FOREIGN_WIDTH}} {m.style:<8} {m.expect:<10} {m.bug}")
            else:
                note = "  [expected: caught as convention]" if m.expect == "convention" else ""
                print(f"{m.name:<{NAME_WIDTH}} {m.category:<10} {m.bug}{note}")
        return 0
    unknown = [n for n in args.only or [] if n not in zoo]
    if unknown:
        return usage(f"unknown {'engine' if foreign else 'mutant'} {', '.join(unknown)} "
                     f"(see 'conformance mutants --zoo {args.zoo} --list')")
    if args.max_examples is not None and args.max_examples < 1:
        return usage("--max-examples must be at least 1")
    if args.workers < 1:
        return usage("--workers must be at least 1")
    if args.seeds < 1 or (args.seeds > 1 and not foreign):
        return usage("--seeds must be at least 1, and more than 1 only with --zoo foreign "
                     "(the refimpl zoo's kill matrix is one seed: give --seed)")

    examples = args.max_examples or PROFILES[args.profile]
    names = list(dict.fromkeys(args.only)) if args.only else list(zoo)
    if foreign:
        return run_foreign_command(args, examples, names)
    print(f"conformance mutants: {len(names)} mutant(s), profile={args.profile}, cases/suite={examples}, "
          f"seed={args.seed}, one fixed suite order (verify's), stop at the first kill")
    print(header())
    t0 = time.perf_counter()
    control, outcomes, _ = run_zoo(names, examples, args.seed, shrink=args.shrink is not False,
                                      workers=args.workers, progress=lambda o: print(row(o), flush=True))
    print()
    print(summary(control, outcomes))
    print(f"{time.perf_counter() - t0:.0f}s in all")
    if args.details:
        for o in outcomes:
            if o.status == "killed":
                print(f"\n--- {o.name}\n" + failure_text(o.suite, o.verdict))
    return 0 if control.status != "killed" and all(o.ok for o in outcomes) else 1
