"""Run verify's suites on public micrograd-style engines (``.py`` files with a ``Value`` class) at
several seeds, as ``conformance mutants --zoo foreign`` runs the foreign zoo, and say for every
failing suite whether its failures hold at ordinary magnitudes or only at extreme ones.

    PYTHONPATH=. python tools/public_engines.py --seeds 0-9 --json out.json ENGINE.py [ENGINE.py ...]

Per engine and seed: the suites of verify (the engine's own capabilities, profile ci unless
``--profile``), suite ``i`` seeded ``seed + i``, no shrinking — :func:`conformance.commands.mutants.hunt`
through every suite (each stops at its first non-conforming case), the cell being what verify would
say (:data:`~conformance.commands.mutants.CELL`). Then every suite is run once more to its end
(:func:`conformance.driver.run_suite` on the same drawn cases, the plan's cached torch results) to
collect *every* case not judged ``pass`` (``every`` in the JSON), so that a verdict decided only by
an extreme-magnitude input (|x| < 1e-100 or > 1e100, a subnormal, a non-finite number, torch's
answer beyond 1e100) shows.

Engines are loaded in this one process by path (:func:`conformance.impls.adapters.micrograd.load_micrograd`):
run engines whose siblings share a module name (two ``utils.py``) in separate invocations.
Nothing here changes the suite; this is a driver around its functions.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from conformance import kinds
from conformance.commands.mutants import CELL, Plan, hunt
from conformance.driver import PROFILES, run_suite
from conformance.impls.adapters.micrograd import load_micrograd

TINY, HUGE = 1e-100, 1e100


def _extreme(x: float) -> bool:
    return not math.isfinite(x) or abs(x) > HUGE or (x != 0 and abs(x) < TINY)


def extreme_reasons(v: Any) -> list[str]:
    """Why a case verdict rests on extreme magnitudes: its inputs (leaves, numeric attributes,
    cotangent) or torch's numbers in the failing entries; empty when nothing is extreme."""
    case, why = v.case, []
    for name, t in case.leaves.items():
        why += [f"leaf {name}={x!r}" for x in t.values if _extreme(x)]
    for n in case.nodes:
        why += [f"{n.name}.{k}={a!r}" for k, a in n.attrs.items()
                if isinstance(a, (int, float)) and not isinstance(a, bool) and _extreme(float(a))]
    why += [f"cotangent={x!r}" for x in case.cotangent.values if _extreme(x)]
    why += [f"torch {e.name}={e.torch!r}" for e in v.entries
            if e.verdict not in ("pass", "torch-deviates", "known-cause", "convention") and _extreme(e.torch)]
    return why


def case_summary(v: Any) -> dict[str, Any]:
    case = v.case
    return dict(
        id=case.id, ops=list(case.ops), nodes=len(case.nodes), verdict=str(v.verdict), reason=v.reason,
        leaves={k: list(t.values) for k, t in case.leaves.items()} if len(case.nodes) <= 40 else "(large)",
        bad_entries=[dict(name=e.name, impl=e.impl, torch=e.torch, tol=e.tol, verdict=str(e.verdict), truth=e.truth)
                     for e in v.entries if str(e.verdict) not in ("pass", "torch-deviates", "known-cause",
                                                                    "convention")][:6],
        extreme=extreme_reasons(v),
        json=kinds.of(case).dumps(case) if len(case.nodes) <= 40 else None,
    )


def every_verdict(impl: Any, plan: Plan) -> dict[str, list[Any]]:
    """Per suite, every case verdict other than ``pass`` (same cases, torch's results from the plan)."""
    out: dict[str, list[Any]] = {}
    for i, suite in enumerate(plan.suites):
        seen: list[Any] = out.setdefault(suite.name, [])
        run_suite(impl, suite, plan.seed + i, cases=plan.cases(i), judge=lambda case: plan.judge(impl, case),
                  on_case=lambda s, seed, index, v, t, seen=seen: seen.append(v) if str(v.verdict) != "pass" else None,
                  first_failure_only=False, shrink=False)
    return out


def compact(v: Any) -> dict[str, Any]:
    """One verdict in a line's worth: for tallying which bug shows at which seed."""
    case = v.case
    return dict(verdict=str(v.verdict), ops=list(case.ops), nodes=len(case.nodes), reason=v.reason[:240],
                leaves={k: t.values[0] for k, t in case.leaves.items()} if len(case.leaves) <= 8 else None,
                extreme=extreme_reasons(v))


def run_engine(path: str, name: str, seeds: list[int], examples: int, plans: dict[Any, Plan]) -> dict[str, Any]:
    impl = load_micrograd(path, name=name)
    row: dict[str, Any] = dict(engine=name, path=path, ops=sorted(impl.capabilities.ops), seeds={})
    for seed in seeds:
        t0 = time.perf_counter()
        key = (impl.capabilities, examples, seed)
        if key not in plans:
            plans[key] = Plan(examples, seed, impl.capabilities)
        plan = plans[key]
        out = hunt(impl, plan, shrink=False, expect="conforms", every_suite=True)
        suites = []
        every = every_verdict(impl, plan)
        for suite_name, first in out.failures:
            bad = [v for v in every[suite_name] if not v.conforms]
            ordinary = [v for v in bad if not extreme_reasons(v)]
            suites.append(dict(suite=suite_name, first=case_summary(first), failing=len(bad),
                               ordinary=len(ordinary), extreme_only=not ordinary,
                               first_ordinary=case_summary(ordinary[0]) if ordinary else None))
        conv = None
        if out.status == "convention":
            conv = dict(suite=out.suite, case=case_summary(out.verdict))
        row["seeds"][seed] = dict(cell=CELL[out.status], cases=out.cases, failures=suites, convention=conv,
                                  every={name: [compact(v) for v in vs] for name, vs in every.items() if vs},
                                  seconds=round(time.perf_counter() - t0, 1))
        decided_by_extreme = bool(suites) and all(s["extreme_only"] for s in suites)
        listed = ", ".join(f"{s['suite']} ({s['failing']}, ordinary {s['ordinary']})" for s in suites) or "-"
        print(f"{name:<32} seed {seed}: {CELL[out.status]:<16} {out.cases:>4} cases "
              f"{time.perf_counter() - t0:6.1f}s  failing suites: {listed}"
              f"{'  [DECIDED BY EXTREME INPUTS ONLY]' if decided_by_extreme else ''}", flush=True)
    return row


def parse_seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("engines", nargs="+", metavar="ENGINE.py", help="engine files (name: owner__repo folder)")
    p.add_argument("--seeds", default="0-9", help="seeds, e.g. 0-9 (default)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="ci")
    p.add_argument("--json", default=None, help="write every row here")
    args = p.parse_args(argv)
    seeds, examples = parse_seeds(args.seeds), PROFILES[args.profile]
    plans: dict[Any, Plan] = {}
    rows, t0 = [], time.perf_counter()
    for path in args.engines:
        name = next((part for part in Path(path).parts if "__" in part), Path(path).stem)
        rows.append(run_engine(path, name, seeds, examples, plans))
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    print(f"{time.perf_counter() - t0:.0f}s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
