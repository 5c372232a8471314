"""Fixed tolerance rules against the derived per-entry tolerance, in float16 and bfloat16: on the
same cases, how many false alarms each gives on correct implementations and how many mutants it
misses (issue 17's comparison).

The cases are the half-precision suites' (``float16 graphs``, ``… tensor graphs``, ``… layers``,
their fixed hostile cases first), drawn at ``--seed`` as verify draws them, ``--n`` per suite.

Correct implementations (every flagged case is a false alarm):

* ``refimpl`` — refimpl's emulation of the format with float32 accumulation, as refimpl declares
  it (``capabilities.accumulate``; the cases carry the claim): every op's result rounded once to the
  format, a sum's or dot product's partial sums to float32 (``refimpl.numbers.MixedNS``);
* ``float32, rounded`` — torch computing in float32, each result then rounded once to the format:
  the mixed-precision ideal (float32 arithmetic, half-precision storage).

Mutants: every mutant of the zoo (conformance/impls/zoo/) that is a bug (not a valid choice at a
kink) and whose results differ from refimpl's on at least one of these cases (the others cannot be
seen here by any rule); a mutant is *missed* by a rule that flags none of the cases it changes
among those the rule passes for refimpl (a flag the correct implementation raises too is the
rule's noise, not the bug's).

Rules, each comparing the implementation's value and gradients with torch's in the same dtype:

* ``assert_close`` — torch.testing's defaults: |a − b| ≤ atol + rtol·|b|, float16 rtol 1e-3,
  bfloat16 rtol 1.6e-2, atol 1e-5;
* ``check_grads`` — jax.test_util's gradient tolerance, float16 1e-2, bfloat16 1e-1, as atol and
  rtol both multiplied by the array's size (``_assert_numpy_close``);
* ``rtol 1e-2`` — a flat relative tolerance, no absolute one;
* ``derived`` — the suite's verdict: the per-entry tolerance from the computation, the truth
  arbitrating (a charged verdict: fail, nonfinite-mismatch, error).

NaN equals NaN and infinities must match for every fixed rule (torch's ``equal_nan``)::

    .venv/bin/python tools/fixed_rules.py --n 100
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from typing import Any

from conformance import kinds
from conformance.case.dtypes import HALF, dtype
from conformance.case.graph import GraphResult, Tensor
from conformance.driver import PROFILES, draw, judge_case
from conformance.impls import RefImpl
from conformance.impls.zoo import MUTANTS, MutantImpl
from conformance.kinds.graph import GRAPH
from conformance.oracle.run import run_torch
from conformance.verdict.outcomes import NONCONFORMING


@dataclass(frozen=True)
class Rule:
    name: str
    atol: dict[str, float]
    rtol: dict[str, float]
    per_size: bool = False  # both tolerances times the array's size (jax)

    def flags(self, got: GraphResult, want: GraphResult, dt: str) -> bool:
        """Whether the rule rejects ``got`` against torch's ``want``."""
        if got.error is not None:
            return True
        pairs = [(got.value, want.value)] + [(got.grads.get(k), t) for k, t in want.grads.items()]
        for a, b in pairs:
            if a is None or b is None or a.shape != b.shape:
                return True
            k = len(a.values) if self.per_size else 1
            atol, rtol = self.atol[dt] * k, self.rtol[dt] * k
            for x, y in zip(a.values, b.values):
                if math.isnan(x) or math.isnan(y):
                    if not (math.isnan(x) and math.isnan(y)):
                        return True
                elif math.isinf(x) or math.isinf(y):
                    if x != y:
                        return True
                elif abs(x - y) > atol + rtol * abs(y):
                    return True
        return False


RULES = (
    Rule("assert_close", {"float16": 1e-5, "bfloat16": 1e-5}, {"float16": 1e-3, "bfloat16": 1.6e-2}),
    Rule("check_grads", {"float16": 1e-2, "bfloat16": 1e-1}, {"float16": 1e-2, "bfloat16": 1e-1}, per_size=True),
    Rule("rtol 1e-2", {"float16": 0.0, "bfloat16": 0.0}, {"float16": 1e-2, "bfloat16": 1e-2}),
)


class Float32Rounded:
    """torch in float32, each result rounded once to the case's format: the mixed-precision ideal."""

    name = "float32, rounded"

    def run_graph(self, case: Any) -> GraphResult:
        r = run_torch(case, dtype="float32")
        cast = dtype(case.dtype).cast

        def rounded(t: Tensor | None) -> Tensor | None:
            return None if t is None else Tensor(t.shape, tuple(cast(v) for v in t.values))

        return GraphResult(value=rounded(r.value), grads={k: rounded(t) for k, t in r.grads.items()},
                           error=r.error)


def half_cases(dt: str, n: int, seed: int) -> list[Any]:
    """The cases of the ``dt`` suites, ``n`` drawn per suite (after the fixed ones), as verify draws them."""
    suites = kinds.suites(RefImpl().capabilities, n)
    return [c for i, s in enumerate(suites) if s.family == dt for c in draw(s, seed + i)]


def charged(impl: Any, case: Any) -> bool:
    return judge_case(impl, case).verdict in NONCONFORMING


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=PROFILES["ci"], help="cases per suite (default: the ci size)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    names = [r.name for r in RULES] + ["derived"]
    print(f"{'dtype':<9} {'rule':<13} " + " ".join(f"{h:>18}" for h in ("false alarms: refimpl", "f32-rounded",
                                                                         "mutants missed")))
    for dt in HALF:
        cases = half_cases(dt, args.n, args.seed)
        torch_results = [run_torch(c) for c in cases]
        alarms: dict[str, dict[str, int]] = {}
        flagged: dict[str, dict[str, list[bool]]] = {}
        for impl in (RefImpl(), Float32Rounded()):
            got = [GRAPH.run(impl, c) for c in cases]
            flagged[impl.name] = {r.name: [r.flags(g, w, dt) for g, w in zip(got, torch_results)] for r in RULES}
            flagged[impl.name]["derived"] = [charged(impl, c) for c in cases]
            alarms[impl.name] = {name: sum(f) for name, f in flagged[impl.name].items()}
        reference = [GRAPH.result_key(r) for r in (GRAPH.run(RefImpl(), c) for c in cases)]
        missed = dict.fromkeys(names, 0)
        visible, unseen = 0, []
        for m in (m for m in MUTANTS.values() if m.expect == "kill"):
            impl = MutantImpl(m)
            got = [GRAPH.run(impl, c) for c in cases]
            differs = [i for i, g in enumerate(got) if GRAPH.result_key(g) != reference[i]]
            if not differs:
                continue
            visible += 1
            # caught: a case the rule flags for the mutant and not for refimpl (a flag the bug explains)
            clean = flagged["refimpl"]
            for r in RULES:
                seen = (i for i in differs if not clean[r.name][i])
                missed[r.name] += not any(r.flags(got[i], torch_results[i], dt) for i in seen)
            if not any(charged(impl, cases[i]) for i in differs if not clean["derived"][i]):
                missed["derived"] += 1
                unseen.append(m.name)
        for name in names:
            print(f"{dt:<9} {name:<13} {alarms['refimpl'][name]:>12}/{len(cases):<5} "
                  f"{alarms['float32, rounded'][name]:>12}/{len(cases):<5} {missed[name]:>12}/{visible:<5}")
        print(f"{dt:<9} missed by the derived tolerance: {', '.join(unseen) or 'none'}")
    print(f"{time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
