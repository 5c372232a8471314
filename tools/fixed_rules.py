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
rule's noise, not the bug's). A mutant that declares a claim of its own (``Mutant.declares``:
``naive-order-claims-pairwise`` claims pairwise summation) is run on the cases of an implementation
making that claim, against refimpl declaring the same (the correct implementation of the claim).

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


def half_cases(dt: str, n: int, seed: int, capabilities: Any) -> list[Any]:
    """The cases of the ``dt`` suites of an implementation declaring ``capabilities``, ``n`` drawn per
    suite (after the fixed ones), as verify draws them (its claims are carried by the cases)."""
    suites = kinds.suites(capabilities, n)
    return [c for i, s in enumerate(suites) if s.family == dt for c in draw(s, seed + i)]


def declaring(capabilities: Any) -> RefImpl:
    """Unmutated refimpl declaring ``capabilities`` (a mutant's, :attr:`Mutant.declares`): it computes
    what its cases' claims say, so it is the correct implementation of the same claim."""
    impl = RefImpl()
    impl.capabilities = capabilities
    return impl


def charged(impl: Any, case: Any) -> bool:
    return judge_case(impl, case).verdict in NONCONFORMING


@dataclass
class Bench:
    """The cases of one declaration in one dtype, torch's results on them, and what every rule says
    of the correct implementation of that declaration there (a flag it raises too is the rule's
    noise, not a mutant's)."""

    dt: str
    cases: list[Any]
    torch: list[GraphResult]
    reference: list[Any]  # the correct implementation's results, to see which cases a mutant changes
    clean: dict[str, list[bool]]  # rule name → flagged, per case, for the correct implementation

    @classmethod
    def of(cls, dt: str, n: int, seed: int, capabilities: Any) -> Bench:
        correct = declaring(capabilities)
        cases = half_cases(dt, n, seed, capabilities)
        torch_results = [run_torch(c) for c in cases]
        got = [GRAPH.run(correct, c) for c in cases]
        clean = {r.name: [r.flags(g, w, dt) for g, w in zip(got, torch_results)] for r in RULES}
        clean["derived"] = [charged(correct, c) for c in cases]
        return cls(dt, cases, torch_results, [GRAPH.result_key(g) for g in got], clean)

    def missed(self, impl: Any) -> dict[str, bool] | None:
        """Per rule, whether it misses the mutant ``impl``: flags none of the cases the mutant changes
        among those it passes for the correct implementation (None: the mutant changes no case)."""
        got = [GRAPH.run(impl, c) for c in self.cases]
        differs = [i for i, g in enumerate(got) if GRAPH.result_key(g) != self.reference[i]]
        if not differs:
            return None
        out = {r.name: not any(r.flags(got[i], self.torch[i], self.dt) for i in differs if not self.clean[r.name][i])
               for r in RULES}
        out["derived"] = not any(charged(impl, self.cases[i]) for i in differs if not self.clean["derived"][i])
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=PROFILES["ci"], help="cases per suite (default: the ci size)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    names = [r.name for r in RULES] + ["derived"]
    print(f"{'dtype':<9} {'rule':<13} " + " ".join(f"{h:>18}" for h in ("false alarms: refimpl", "f32-rounded",
                                                                         "mutants missed")))
    benches: dict[tuple[str, int], Bench] = {}  # by dtype and declaration: refimpl's, each claim a mutant makes

    def bench(dt: str, capabilities: Any) -> Bench:
        key = (dt, id(capabilities))
        if key not in benches:
            benches[key] = Bench.of(dt, args.n, args.seed, capabilities)
        return benches[key]

    for dt in HALF:
        plain = bench(dt, RefImpl.capabilities)
        f32 = Float32Rounded()
        f32_alarms = {r.name: sum(r.flags(GRAPH.run(f32, c), w, dt) for c, w in zip(plain.cases, plain.torch))
                      for r in RULES}
        f32_alarms["derived"] = sum(charged(f32, c) for c in plain.cases)
        missed = dict.fromkeys(names, 0)
        visible, unseen = 0, []
        for m in (m for m in MUTANTS.values() if m.expect == "kill"):
            # a mutant with a claim of its own (Mutant.declares) is run on that claim's cases, against
            # the correct implementation of the claim
            verdicts = bench(dt, m.declares or RefImpl.capabilities).missed(MutantImpl(m))
            if verdicts is None:
                continue
            visible += 1
            for name in names:
                missed[name] += verdicts[name]
            if verdicts["derived"]:
                unseen.append(m.name)
        for name in names:
            print(f"{dt:<9} {name:<13} {sum(plain.clean[name]):>12}/{len(plain.cases):<5} "
                  f"{f32_alarms[name]:>12}/{len(plain.cases):<5} {missed[name]:>12}/{visible:<5}")
        print(f"{dt:<9} missed by the derived tolerance: {', '.join(unseen) or 'none'}")
    print(f"{time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
