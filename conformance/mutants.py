"""``conformance mutants``: run the suite against every mutant of the zoo and print a kill matrix.

Each mutant (:mod:`conformance.zoo`) is refimpl with one realistic bug. The suites are verify's
(:func:`conformance.verify.suites`, refimpl's capabilities), in verify's order — one fixed order for
every mutant — with verify's strategies and seeds (suite ``i`` gets ``seed + i``), drawn from the
seed alone (:func:`conformance.verify.same_cases_everywhere`). A mutant's run stops at its first
non-conforming verdict (the kill); only the killing suite is then shrunk (:func:`conformance.verify._shrink`).

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
import multiprocessing
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from .verify import same_cases_everywhere

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
    suites: list[Any] = field(default_factory=list)
    _cases: dict[int, list[Any]] = field(default_factory=dict)
    _refs: dict[str, Reference] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from .impls import RefImpl
        from .verify import suites

        self.suites = suites(RefImpl(), self.examples)

    def cases(self, i: int) -> list[Any]:
        """Suite ``i``'s cases, drawn as :func:`conformance.verify.run_suite` draws them (from the seed alone)."""
        if i not in self._cases:
            from hypothesis import Phase, given, settings
            from hypothesis import seed as hseed

            from .verify import _QUIET

            drawn: list[Any] = []
            suite = self.suites[i]

            @hseed(self.seed + i)
            @settings(max_examples=suite.examples, phases=[Phase.generate], **_QUIET)
            @given(suite.strategy)
            def draw(case: Any) -> None:
                drawn.append(case)

            with same_cases_everywhere():
                draw()
            self._cases[i] = drawn
        return self._cases[i]

    def reference(self, case: Any) -> Reference:
        if case.id not in self._refs:
            from .impls import RefImpl

            refimpl = RefImpl()
            if _is_network(case):
                from .networks import run_network_safely, run_torch_network

                result, torch = run_network_safely(refimpl, case), run_torch_network(case)
            else:
                from .impls import run_safely
                from .run import run_torch

                result, torch = run_safely(refimpl, case), run_torch(case)
            self._refs[case.id] = Reference(_key(result), torch, _judge(case, result, torch))
        return self._refs[case.id]


def _is_network(case: Any) -> bool:
    from .networks import NetworkCase

    return isinstance(case, NetworkCase)


def _judge(case: Any, result: Any, torch: Any) -> Any:
    """What :func:`conformance.verify.check_case` decides, given torch's result."""
    if _is_network(case):
        from .networks import judge_network

        return judge_network(case, result, torch)
    from . import assertions
    from .verdict import judge

    return judge(case, result, torch, always_truth=assertions.TRUTH == "always")


def _key(result: Any) -> Any:
    """A result as a hashable value, floats by their bits (NaN equals NaN, -0.0 is not 0.0)."""
    def t(x: Any) -> Any:
        return None if x is None else (tuple(x.shape), tuple(float(v).hex() for v in x.values))

    if hasattr(result, "steps"):  # a training run
        return (result.error, tuple((t(s.loss), tuple((k, t(v)) for k, v in s.grads.items()),
                                     tuple((k, t(v)) for k, v in s.params.items())) for s in result.steps))
    hvp = None if result.hvp is None else tuple((k, t(v)) for k, v in result.hvp.items())
    return (result.error, t(result.value), tuple((k, t(v)) for k, v in result.grads.items()), hvp)


def hunt(impl: Any, plan: Plan, *, shrink: bool = True, expect: str = "kill", category: str = "") -> Outcome:
    """Run the suites in the plan's order until the first non-conforming verdict; shrink that suite."""
    from .impls import run_safely
    from .networks import run_network_safely

    out = Outcome(impl.name, category, expect, "survived")
    t0 = time.perf_counter()
    for i, suite in enumerate(plan.suites):
        for case in plan.cases(i):
            out.cases += 1
            net = _is_network(case)
            result = run_network_safely(impl, case) if net else run_safely(impl, case)
            ref = plan.reference(case)
            v = ref.verdict if _key(result) == ref.key else _judge(case, result, ref.torch)
            if not v.conforms:
                out.seconds = time.perf_counter() - t0
                out.status, out.suite, out.verdict = "killed", suite.name, v
                if shrink:
                    from .verify import _shrink

                    t1 = time.perf_counter()
                    with same_cases_everywhere(), warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # hypothesis on the size of a network case's repr
                        out.verdict = _shrink(impl, suite, plan.seed + i) or v
                    out.shrink_seconds = time.perf_counter() - t1
                return out
            if v.verdict == "convention" and ref.verdict.verdict == "pass" and out.status == "survived":
                out.status, out.suite, out.verdict = "convention", suite.name, v
    out.seconds = time.perf_counter() - t0
    return out


# --- running the zoo (in worker processes when asked) ----------------------------------------------------

_PLAN: Plan | None = None  # the parent's plan, inherited by forked workers
_SHRINK = True


def _one_thread() -> None:
    """A forked worker keeps torch to one thread: its cases are tiny, and an OpenMP pool inherited
    across fork from a parent that used torch (a test session) must never be entered."""
    import torch

    torch.set_num_threads(1)


def _reference_of(task: tuple[int, int]) -> tuple[str, Reference]:
    assert _PLAN is not None
    case = _PLAN.cases(task[0])[task[1]]
    return case.id, _PLAN.reference(case)


def _hunt_mutant(name: str) -> Outcome:
    from .zoo import MUTANTS, MutantImpl

    assert _PLAN is not None
    m = MUTANTS[name]
    out = hunt(MutantImpl(m), _PLAN, shrink=_SHRINK, expect=m.expect, category=m.category)
    out.name = m.name
    return out


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
    workers — then each mutant (one per worker at a time). Workers are forked from this process,
    which draws the cases (refimpl only) but never runs torch itself."""
    global _PLAN, _SHRINK
    plan = Plan(examples, seed)
    t0 = time.perf_counter()
    tasks = list({c.id: (i, j) for i in range(len(plan.suites)) for j, c in enumerate(plan.cases(i))}.values())
    _PLAN, _SHRINK = plan, shrink
    ctx = multiprocessing.get_context("fork")
    try:
        if workers > 1:
            with ctx.Pool(workers, initializer=_one_thread) as pool:
                plan._refs.update(pool.imap_unordered(_reference_of, tasks, chunksize=4))
        control = control_outcome(plan, time.perf_counter() - t0)
        if progress:
            progress(control)
        outcomes = []
        if workers > 1 and len(names) > 1:
            with ctx.Pool(workers, initializer=_one_thread) as pool:
                for out in pool.imap(_hunt_mutant, names):
                    outcomes.append(out)
                    if progress:
                        progress(out)
        else:
            for name in names:
                outcomes.append(_hunt_mutant(name))
                if progress:
                    progress(outcomes[-1])
    finally:
        _PLAN = None
    return control, outcomes, plan


# --- the kill matrix --------------------------------------------------------------------------------------

def case_line(v: Any) -> str:
    """The case in one line: its id and its size."""
    if v is None:
        return "-"
    c = v.case
    if _is_network(c):
        return f"{c.id} ({'→'.join(map(str, c.sizes))}, {c.n_params} params, {c.steps} step(s), {c.dtype})"
    return f"{c.id} ({len(c.nodes)} node(s), {c.dtype})"


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
    from .zoo import MUTANTS

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

    from .verify import PROFILE_EXAMPLES, SuiteResult, failure_text

    examples = args.max_examples or PROFILE_EXAMPLES[args.profile]
    names = list(dict.fromkeys(args.only)) if args.only else list(MUTANTS)
    print(f"conformance mutants: {len(names)} mutant(s), profile={args.profile}, cases/suite={examples}, "
          f"seed={args.seed}, one fixed suite order (verify's), stop at the first kill")
    print(header())
    t0 = time.perf_counter()
    control, outcomes, plan = run_zoo(names, examples, args.seed, shrink=not args.no_shrink,
                                      workers=args.workers, progress=lambda o: print(row(o), flush=True))
    print()
    print(summary(control, outcomes))
    print(f"{time.perf_counter() - t0:.0f}s in all")
    if args.details:
        suites = {s.name: s for s in plan.suites}
        for o in outcomes:
            if o.status == "killed":
                print(f"\n--- {o.name}\n" + failure_text(SuiteResult(suites[o.suite], failure=o.verdict)))
    return 0 if control.status != "killed" and all(o.ok for o in outcomes) else 1
