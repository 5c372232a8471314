"""The layer and precision mutants of the refimpl zoo at many seeds: each against the suites made for
its bug, as verify runs them.

For every mutant of category ``layers`` (conformance/impls/zoo/layers.py) and every seed, the suite
``op NAME`` of the op it patches is run — for one of category ``precision``
(conformance/impls/zoo/precision.py), every float16 and bfloat16 suite — at the ci size (its
fixed corner cases, then its drawn cases; seeded as verify seeds it, ``seed + the suite's index``),
stopping at the first non-conforming case, as verify does. A row is as expected when the mutant is
caught at every seed — killed, or for a kink convention reported as ``convention`` — and unmutated
refimpl passes the same cases (a row is caught at a seed when any of its suites catches it).
``conformance mutants`` runs the whole zoo at one seed; this is the many-seed view::

    .venv/bin/python tools/kill_matrix.py --seeds 10                        # the layer mutants
    .venv/bin/python tools/kill_matrix.py --category precision --seeds 10   # the precision mutants
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from conformance import kinds
from conformance.case.dtypes import HALF
from conformance.driver import PROFILES, run_suite
from conformance.impls import RefImpl
from conformance.impls.zoo import MUTANTS, MutantImpl


def outcome(verdicts: dict[str, int]) -> str:
    return ("killed" if verdicts.get("fail") or verdicts.get("error") or verdicts.get("nonfinite-mismatch")
            else "convention" if verdicts.get("convention") else "survived")


def targets(m: Any, suites: list[Any]) -> list[str]:
    """The suites made for a mutant's bug: its op's for a layer mutant, the half-precision ones for a
    precision mutant."""
    if m.category == "layers":
        return [f"op {op}" for op in sorted(m.ops)]
    return [s.name for s in suites if s.family in HALF]


def cell(m: Any, names: list[str], suites: list[Any], index: dict[str, int], seed: int) -> str:
    """The mutant's outcome at ``seed``: the first suite that catches it decides (unmutated refimpl
    must pass every suite that was run)."""
    for name in names:
        suite, s = suites[index[name]], seed + index[name]
        if outcome(run_suite(RefImpl(), suite, s, shrink=False, first_failure_only=True).verdicts) != "survived":
            return "CONTROL FAILS"
        got = outcome(run_suite(MutantImpl(m), suite, s, shrink=False, first_failure_only=True).verdicts)
        if got != "survived":
            return got
    return "survived"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--profile", default="ci", choices=sorted(PROFILES))
    parser.add_argument("--category", default="layers", choices=["layers", "precision"])
    args = parser.parse_args()
    suites = list(kinds.suites(RefImpl().capabilities, PROFILES[args.profile]))
    index = {s.name: i for i, s in enumerate(suites)}
    bad = 0
    t0 = time.perf_counter()
    for m in (m for m in MUTANTS.values() if m.category == args.category):
        names = targets(m, suites)
        cells = [cell(m, names, suites, index, seed) for seed in range(args.seeds)]
        want = "convention" if m.expect == "convention" else "killed"
        ok = all(c == want for c in cells)
        bad += not ok
        where = names[0] if len(names) == 1 else f"{len(names)} suites: {names[0]} …"
        print(f"{m.name:<40} {where:<36} {cells.count(want)}/{len(cells)} {want:<10} {'yes' if ok else 'NO'}")
    print(f"as expected at every seed: {'all' if not bad else f'{bad} rows not'}; "
          f"{time.perf_counter() - t0:.0f}s")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
