"""The layer mutants of the refimpl zoo at many seeds: each against its op's suite, as verify runs it.

For every mutant of category ``layers`` (conformance/impls/zoo/layers.py) and every seed, the suite
``op NAME`` of the op it patches is run at the ci size (its fixed corner cases, then its drawn
cases; seeded as verify seeds it, ``seed + the suite's index``), stopping at the first
non-conforming case, as verify does. A row is as expected when the mutant is caught at every seed —
killed, or for a kink convention reported as ``convention`` — and unmutated refimpl passes the same
cases. ``conformance mutants`` runs the whole zoo at one seed; this is the many-seed view of the
layer ops::

    .venv/bin/python tools/layer_kill_matrix.py --seeds 10
"""

from __future__ import annotations

import argparse
import time

from conformance import kinds
from conformance.driver import PROFILES, run_suite
from conformance.impls import RefImpl
from conformance.impls.zoo import MUTANTS, MutantImpl


def outcome(verdicts: dict[str, int]) -> str:
    return ("killed" if verdicts.get("fail") or verdicts.get("error") or verdicts.get("nonfinite-mismatch")
            else "convention" if verdicts.get("convention") else "survived")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--profile", default="ci", choices=sorted(PROFILES))
    args = parser.parse_args()
    suites = list(kinds.suites(RefImpl().capabilities, PROFILES[args.profile]))
    index = {s.name: i for i, s in enumerate(suites)}
    bad = 0
    t0 = time.perf_counter()
    for m in (m for m in MUTANTS.values() if m.category == "layers"):
        (op,) = m.ops
        name = f"op {op}"
        cells = []
        for seed in range(args.seeds):
            mutant = run_suite(MutantImpl(m), suites[index[name]], seed + index[name], shrink=False,
                               first_failure_only=True)
            control = run_suite(RefImpl(), suites[index[name]], seed + index[name], shrink=False,
                                first_failure_only=True)
            cells.append(outcome(mutant.verdicts) if outcome(control.verdicts) == "survived" else "CONTROL FAILS")
        want = "convention" if m.expect == "convention" else "killed"
        ok = all(c == want for c in cells)
        bad += not ok
        print(f"{m.name:<40} {name:<36} {cells.count(want)}/{len(cells)} {want:<10} {'yes' if ok else 'NO'}")
    print(f"as expected at every seed: {'all' if not bad else f'{bad} rows not'}; "
          f"{time.perf_counter() - t0:.0f}s")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
