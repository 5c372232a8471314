"""How fast is the conformance harness? A script, not a test.

Draws graph cases the way the ``ci`` profile does (scalar DAGs of up to 30 nodes, and tensor
graphs), then, in one process and on the same cases, times:

* bare torch — ``run_torch`` alone: what any check must pay at least;
* the harness — the implementation under test (refimpl), torch, the error-bound run and the
  verdict (the truth is only computed on disagreement, which correct implementations rarely hit);
* generation — hypothesis drawing the cases.

Prints cases per second per core and the ratio harness / bare torch (targets: ≥ 200 cases/s for
graphs of ≤ 30 nodes; ≤ 5×). Rounds are interleaved and the medians reported, since this machine
is noisy. ``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from hypothesis import HealthCheck, Phase, given, seed, settings

from conformance.case.strategies import graph_cases, tensor_graph_cases
from conformance.driver import judge_case as check
from conformance.impls import RefImpl
from conformance.oracle.run import run_torch


def draw_cases(strategy, n: int, s: int) -> tuple[list, float]:
    cases = []

    @seed(s)
    @settings(max_examples=n, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(case):
        cases.append(case)

    t0 = time.perf_counter()
    collect()
    return cases, time.perf_counter() - t0


def time_it(fn, cases) -> float:
    t0 = time.perf_counter()
    for c in cases:
        fn(c)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="cases per kind (default 400)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()

    impl = RefImpl()
    kinds = {"scalar graphs (<= 30 nodes)": graph_cases(max_nodes=30),
             "tensor graphs (<= 6 nodes)": tensor_graph_cases()}
    report = {}
    for label, strategy in kinds.items():
        cases, t_gen = draw_cases(strategy, args.n, 1)
        for c in cases[:20]:  # warm up torch's dispatcher and the caches
            check(impl, c)
        bare, harness = [], []
        for _ in range(args.rounds):
            bare.append(time_it(run_torch, cases))
            harness.append(time_it(lambda c: check(impl, c), cases))
        b, h = statistics.median(bare), statistics.median(harness)
        nodes = statistics.mean(len(c.nodes) for c in cases)
        report[label] = {"cases": len(cases), "mean_nodes": nodes, "bare_torch_s": b, "harness_s": h,
                         "generation_s": t_gen, "harness_cases_per_s": len(cases) / h,
                         "with_generation_cases_per_s": len(cases) / (h + t_gen), "harness_over_torch": h / b}
        print(f"{label}: {len(cases)} cases, {nodes:.1f} nodes on average")
        print(f"  bare torch   {b:7.2f} s   {len(cases) / b:8.0f} cases/s")
        print(f"  harness      {h:7.2f} s   {len(cases) / h:8.0f} cases/s   ({h / b:.2f}x bare torch)")
        print(f"  + generation {t_gen:7.2f} s   {len(cases) / (h + t_gen):8.0f} cases/s end to end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
