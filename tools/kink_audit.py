"""Audit: which entries escape the check (issue 14, item 8). Two steps, so that the same sample is
judged by two versions of the suite:

1. ``judge OUT.jsonl`` — draw random graph cases (``--n`` float64 and ``--n`` float32, from
   ``conformance.case.strategies.graph_cases`` with the scalar-graph suites' 12 nodes; ``--so`` more
   with a second-order request), run refimpl, torch and every zoo mutant of category ``graph`` or
   ``derivative`` that acts on a graph case, judge each with the graph kind's judge of whatever
   ``conformance`` is on ``PYTHONPATH``, and write one JSON line per (implementation, case): the
   verdict, every entry (name, implementation, torch, tolerance, verdict) and whether
   ``torch.testing.assert_close`` (its default tolerances for the dtype, NaN equal to NaN) flags the
   result against torch's. Only public names that every version has are used.
2. ``analyse BEFORE.jsonl AFTER.jsonl`` — with this version: per file, the cases where an entry is
   ``convention`` with a value outside the valid set (``conformance.verdict.kinks.valid_sets``: the
   values of every valid choice at every kink, widened by their tolerance; an entry no kink changes
   has no valid set, so any ``convention`` there is outside one), the entries that passed on a window
   that checks nothing (``conformance.verdict.graph.unchecked``) and those judged ``unchecked``, the
   mutant cases that assert_close flags but the suite passes or calls ``convention``, and refimpl's
   and torch's non-conforming cases (false alarms).

Usage (from the repository root; the first line with the version under audit on PYTHONPATH)::

    PYTHONPATH=. python tools/kink_audit.py judge after.jsonl --n 1000
    PYTHONPATH=. python tools/kink_audit.py analyse before.jsonl after.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any


def _draw(n: int, dtype: str, seed: int, second_order: bool = False) -> list[Any]:
    from conformance.case.strategies import graph_cases
    from conformance.driver import draw
    from conformance.kinds.kind import Suite

    strategy = graph_cases(dtype=dtype, max_nodes=6 if second_order else 12, second_order=second_order)
    return draw(Suite(f"audit {dtype}", "graphs", strategy, n), seed)


def _impls() -> list[Any]:
    from conformance.impls import RefImpl, TorchImpl
    from conformance.impls.zoo import MUTANTS, MutantImpl

    mutants = [MutantImpl(m) for m in MUTANTS.values()
               if m.category in ("graph", "derivative") and m.patch is not nullcontext]
    return [RefImpl(), TorchImpl(), *mutants]


def _assert_close_flags(result: Any, reference: Any, dtype: str) -> bool:
    import torch

    if result.error is not None:
        return True
    pairs = [(result.value, reference.value)]
    pairs += [(result.grads.get(k), t) for k, t in reference.grads.items()]
    pairs += [((result.hvp or {}).get(k), t) for k, t in (reference.hvp or {}).items()]
    for got, want in pairs:
        if got is None or tuple(got.shape) != tuple(want.shape):
            return True
        try:
            torch.testing.assert_close(torch.tensor(got.values, dtype=torch.float64),
                                       torch.tensor(want.values, dtype=torch.float64), equal_nan=True,
                                       **_DEFAULTS[dtype])
        except AssertionError:
            return True
    return False


# torch.testing.assert_close's defaults for the dtype under test (its table), applied to the values as given
_DEFAULTS = {"float64": dict(rtol=1e-7, atol=1e-7), "float32": dict(rtol=1.3e-6, atol=1e-5)}


def judge(path: Path, n: int, seed: int, so: int) -> None:
    from conformance.case.graph import GraphResult, case_to_json
    from conformance.kinds.graph import judge as graph_judge
    from conformance.oracle.run import run_torch

    samples = [("float64", _draw(n, "float64", seed)), ("float32", _draw(n, "float32", seed + 1))]
    if so:
        samples.append(("float64-so", _draw(so, "float64", seed + 2, second_order=True)))
    impls = _impls()
    start = time.time()
    with path.open("w", encoding="utf-8") as out:
        for sample, cases in samples:
            for i, case in enumerate(cases):
                reference = run_torch(case)
                for impl in impls:
                    try:
                        result = impl.run_graph(case)
                    except Exception as e:  # a mutant that raises gives an error result
                        result = GraphResult(error=f"{type(e).__name__}: {e}")
                    v = graph_judge(case, result, reference)
                    out.write(json.dumps({
                        "sample": sample, "index": i, "impl": impl.name, "case": case_to_json(case),
                        "verdict": str(v.verdict), "cause": v.cause,
                        "flagged": _assert_close_flags(result, reference, case.dtype),
                        "entries": [[e.name, _num(e.impl), _num(e.torch), _num(e.tol), str(e.verdict)]
                                    for e in v.entries],
                    }) + "\n")
                if i % 100 == 99:
                    print(f"{sample}: {i + 1} cases, {time.time() - start:.0f}s", file=sys.stderr, flush=True)


def _num(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)


def _float(x: float | str) -> float:
    return float(x)


def analyse(paths: list[Path]) -> None:
    from conformance.case.graph import case_from_json
    from conformance.verdict.graph import unchecked
    from conformance.verdict.kinks import ValidSet, valid_sets

    sets: dict[str, dict[str, Any]] = {}  # case id -> its valid sets, computed once for every file

    def valid(case_json: dict[str, Any]) -> dict[str, Any]:
        cid = case_json["id"]
        if cid not in sets:
            sets[cid] = valid_sets(case_from_json(case_json))
        return sets[cid]

    for path in paths:
        rows = [json.loads(line) for line in path.open(encoding="utf-8")]
        c: Counter[str] = Counter()
        examples: list[str] = []
        for r in rows:
            sample, impl, verdict = r["sample"], r["impl"], r["verdict"]
            mutant = impl.startswith("mutant:")
            c[f"{sample} judged"] += 1
            outside = []
            for name, x, t, tol, ev in r["entries"]:
                x, t, tol = _float(x), _float(t), _float(tol)
                if ev == "convention":
                    vs = valid(r["case"]).get(name)
                    if not isinstance(vs, ValidSet) or x not in vs:
                        outside.append((name, x, t, vs))
                if ev == "unchecked":
                    c[f"{sample} entries unchecked"] += 1
                if ev == "pass" and unchecked(2 * tol, t):
                    c[f"{sample} entries passed on a window that checks nothing"] += 1
            if outside:
                c[f"{sample} cases with a convention outside the valid set"] += 1
                if len(examples) < 5:
                    name, x, t, vs = outside[0]
                    examples.append(f"{impl} {r['case']['id']} {name}: {x!r} (torch {t!r}), valid {vs}")
            if mutant:
                c[f"{sample} mutant cases judged {verdict}"] += 1
            if mutant and r["flagged"]:
                c[f"{sample} mutant cases assert_close flags"] += 1
                if verdict in ("pass", "convention"):
                    c[f"{sample} ... of which the suite passes or calls convention"] += 1
                if verdict == "unchecked":
                    c[f"{sample} ... of which the suite calls unchecked"] += 1
            if not mutant:
                c[f"{sample} {impl} {verdict}"] += 1
            if impl == "refimpl" and any(valid(r["case"]).values()):
                c[f"{sample} cases where a choice at a kink changes an entry"] += 1
        print(f"== {path}")
        for k in sorted(c):
            print(f"  {k}: {c[k]}")
        for e in examples:
            print(f"  e.g. {e}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    j = sub.add_parser("judge")
    j.add_argument("out", type=Path)
    j.add_argument("--n", type=int, default=1000, help="cases per dtype")
    j.add_argument("--so", type=int, default=0, help="float64 cases with a second-order request")
    j.add_argument("--seed", type=int, default=0)
    a = sub.add_parser("analyse")
    a.add_argument("files", type=Path, nargs="+")
    args = p.parse_args(argv)
    if args.command == "judge":
        judge(args.out, args.n, args.seed, args.so)
    else:
        analyse(args.files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
