"""``conformance`` / ``python -m conformance``: the command line.

Exit codes: 0 the implementation conforms, 1 it does not, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
import time

IMPLEMENTATIONS = ("refimpl",)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"conformance: {message} (see 'conformance --help')\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="conformance", description="Check an implementation of backprop against torch.")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="run the op-by-op conformance check")
    v.add_argument("--impl", default="refimpl", help="implementation under test (default: refimpl)")
    v.add_argument("--max-examples", type=int, default=40, help="random points per op and setting")
    v.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("calibrate", help="measure false alarms: correct implementations over many cases")
    c.add_argument("--impl", default="refimpl")
    c.add_argument("--n", type=int, default=100_000, help="cases in all (default 100000)")
    c.add_argument("--dtype", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--family", nargs="+", default=None, help="only these op families (default: all)")
    c.add_argument("--show", type=int, default=3, help="print this many failing cases (default 3)")
    return p


def calibrate(args: argparse.Namespace) -> int:
    from . import calibrate as cal
    from .impls import available

    if args.impl not in available():
        print(f"conformance: unknown implementation {args.impl!r}; known: {', '.join(sorted(available()))}",
              file=sys.stderr)
        return 2
    if args.n < 1 or args.workers < 1:
        print("conformance: --n and --workers must be at least 1", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    print(f"conformance calibrate: impl={args.impl} vs torch, {args.n} cases, dtypes {' '.join(args.dtype)}, "
          f"{args.workers} workers, seed {args.seed}")
    families = tuple(args.family or cal.FAMILIES)
    unknown = set(families) - set(cal.FAMILIES)
    if unknown:
        print(f"conformance: unknown family {sorted(unknown)}; use {' '.join(cal.FAMILIES)}", file=sys.stderr)
        return 2
    results = cal.calibrate(args.impl, args.n, tuple(args.dtype), args.workers, args.seed, families=families)
    print("ratio = the worst entry's error/tolerance in each case (1 is the edge of passing)")
    print(cal.table(results))
    total = sum(t.cases for t in results.values())
    fails = sum(t.failures for t in results.values())
    worst = max((t for t in results.values()), key=lambda t: max(t.ratios, default=0.0))
    print(f"{total} cases, {fails} failures, {time.perf_counter() - t0:.0f}s")
    shown = [f for t in results.values() for f in t.failures_seen][:args.show]
    for i, f in enumerate(shown, 1):
        print(f"failure {i}: {f}")
    if not fails and max(worst.ratios, default=0.0) > 0.5:
        print("worst case:\n" + worst.worst_case)
    return 1 if fails else 0


def verify(args: argparse.Namespace) -> int:
    from . import opcheck

    if args.impl not in IMPLEMENTATIONS:
        print(f"conformance: unknown implementation {args.impl!r}; known: {', '.join(IMPLEMENTATIONS)}",
              file=sys.stderr)
        return 2
    if args.max_examples < 1:
        print("conformance: --max-examples must be at least 1", file=sys.stderr)
        return 2
    import torch

    import refimpl

    print(f"conformance verify: impl={args.impl} {refimpl.__version__}  torch={torch.__version__}  "
          f"seed={args.seed}  points/op/setting={args.max_examples}")
    t0 = time.perf_counter()
    results = opcheck.run(args.max_examples, args.seed)
    print("worst = the largest |error| / tolerance over the op's entries (pass: ≤ 1)")
    print(f"{'op':<12} {'cases':>6} {'fail':>5} {'worst':>8} {'torch worst':>12} {'kinks':>6}  verdict")
    for r in results:
        verdict = "pass" if r.ok else "FAIL"
        print(f"{r.op:<12} {r.cases:>6} {r.failed:>5} {r.worst_ratio:>8.3f} {r.torch_worst_ratio:>12.3f} "
              f"{r.kinks - len(r.kink_failures):>3}/{r.kinks:<2}  {verdict}")
    bad = [r for r in results if not r.ok]
    for r in bad:
        for line in (r.failures + r.kink_failures)[:5]:
            print("  " + line)
    deviates = [line for r in results for line in r.torch_deviates]
    if deviates:
        print(f"torch-deviates: torch is off the truth beyond tolerance on {len(deviates)} entries "
              "(reported, not charged to the implementation):")
        for line in deviates[:5]:
            print("  " + line)
    cases = sum(r.cases for r in results)
    print(f"{len(results) - len(bad)} of {len(results)} ops conform; {cases} points, "
          f"{sum(r.kinks for r in results)} kinks, {time.perf_counter() - t0:.1f}s")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "verify":
        return verify(args)
    if args.command == "calibrate":
        return calibrate(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
