"""``conformance`` / ``python -m conformance``: the command line.

    verify     run the suite on an implementation and print a verdict table (the main job)
    ops        audit refimpl's op table against torch and an independent truth, op by op
    calibrate  measure false alarms of correct implementations over many cases
    list       the implementations it can find, and their capabilities
    replay     re-run one stored case (JSON) and print the comparison
    export     write a corpus of cases with torch's results and the truth, for offline testing

Exit codes: 0 the implementation conforms, 1 it does not, 2 bad usage (one line on stderr): an
implementation that cannot be found or loaded, a worker that cannot start, conflicting options.
An implementation run in this process (``--in-process``) that crashes ends the run with the crash's
own status (e.g. 134 for SIGABRT in a shell) after a message naming the case (commands/verify.py).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time


def _fail_usage(message: str) -> int:
    print(f"conformance: {message}", file=sys.stderr)
    return 2


def _impl(spec: str, args: argparse.Namespace | None = None) -> object:
    from conformance.impls.loading import resolve

    return resolve(spec, isolate=_isolate(args), timeout=getattr(args, "timeout", None))


def _isolate(args: argparse.Namespace | None) -> bool | None:
    """``--isolate`` → True, ``--in-process`` → False, neither → None (the default of
    :mod:`conformance.impls.loading`: a worker for every implementation but this project's own)."""
    if getattr(args, "isolate", False):
        return True
    return False if getattr(args, "in_process", False) else None


def _isolation_options(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--in-process", action="store_true",
                       help="run a Python implementation in this process (faster to start, for a debugger or a "
                            "profiler); a crash ends the run and a hang hangs it. Default: a worker process for "
                            "every implementation but this project's own (refimpl, torch, its library adapters)")
    where.add_argument("--isolate", action="store_true",
                       help="a worker process even for this project's own implementations (the default for any "
                            "other): a crash costs one case, not the run")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="per case, for an implementation in its own process (default 30); asks for a worker "
                        "for this project's own implementations too; not with --in-process")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"conformance: {message} (see 'conformance --help')\n")


#: subcommands that live in their own modules: name -> (module in this package, help). Each module
#: defines ``add_arguments(parser)`` and ``run(args) -> int`` and keeps heavy imports inside ``run``.
PLUGGED: dict[str, tuple[str, str]] = {
    "nightly": ("nightly", "every installed implementation, within a time budget, sharded or resumed: records"),
    "merge": ("merge", "combine the shards of a nightly run into one report"),
    "mutants": ("mutants", "run the suite against a zoo of buggy refimpls and print who killed each"),
}


def _parser() -> argparse.ArgumentParser:
    from conformance.case.dtypes import DTYPES  # in the function, as cli's other imports of the project

    p = _Parser(prog="conformance", description="Check an implementation of backprop against torch.")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="run the suite on an implementation (the main job)")
    v.add_argument("--impl", default="refimpl", help="implementation under test (default: refimpl)")
    v.add_argument("--profile", choices=["dev", "ci", "nightly"], default="dev")
    v.add_argument("--max-examples", type=int, default=None, help="cases per suite (default: by profile)")
    v.add_argument("--seed", type=int, default=None, help="default: random, printed so a run can be repeated")
    v.add_argument("--report", default=None, metavar="DIR", help="write records and a report to DIR/<run-id>/")
    v.add_argument("--strict", action="store_true", default=False,
                   help="charge the robustness findings too (cases outside the working range): exit 1 on them")
    _isolation_options(v)
    o = sub.add_parser("ops", help="audit refimpl's op table, op by op, against torch and the truth")
    o.add_argument("--max-examples", type=int, default=40, help="random points per op and setting")
    o.add_argument("--seed", type=int, default=0)
    ls = sub.add_parser("list", help="the implementations it can find, and their capabilities")
    ls.add_argument("--impl", nargs="*", default=None, help="also describe these (module:attr, path.py, …)")
    r = sub.add_parser("replay", help="re-run one stored case and print the comparison")
    r.add_argument("case", help="a graph-case JSON file")
    r.add_argument("--impl", default="refimpl")
    _isolation_options(r)
    e = sub.add_parser("export", help="a corpus of cases with torch's results and the truth, as JSON files")
    e.add_argument("--out", required=True, help="a new or empty directory")
    e.add_argument("--n", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("calibrate", help="measure false alarms: correct implementations over many cases")
    c.add_argument("--impl", nargs="+", default=["refimpl"],
                   help="one or more: refimpl, refimpl-reordered, refimpl-float32, refimpl-pairwise, or any "
                        "implementation --impl of verify finds (default: refimpl)")
    c.add_argument("--n", type=int, default=100_000, help="cases per implementation (default 100000)")
    c.add_argument("--dtype", nargs="+", default=["float64", "float32"], choices=list(DTYPES),
                   help="default: float64 float32 (the half-precision dtypes on request)")
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--family", nargs="+", default=None, help="only these op families (default: all)")
    c.add_argument("--show", type=int, default=3, help="print this many failing cases (default 3)")
    for name, (module, help_) in PLUGGED.items():
        importlib.import_module(f".{module}", __package__).add_arguments(sub.add_parser(name, help=help_))
    return p


def calibrate(args: argparse.Namespace) -> int:
    from conformance.commands import calibrate as cal
    from conformance.driver import WorkerDied

    if args.n < 1 or args.workers < 1:
        return _fail_usage("--n and --workers must be at least 1")
    families = tuple(args.family or cal.FAMILIES)
    unknown = set(families) - set(cal.FAMILIES)
    if unknown:
        return _fail_usage(f"unknown family {sorted(unknown)}; use {' '.join(cal.FAMILIES)}")
    t0 = time.perf_counter()
    print(f"conformance calibrate: {' '.join(args.impl)} vs torch, {args.n} cases each, dtypes "
          f"{' '.join(args.dtype)}, {args.workers} workers, seed {args.seed}")
    print("ratio = the worst entry's error/tolerance in each case (1 is the edge of passing)")
    ran, fails = 0, 0
    for name in dict.fromkeys(args.impl):
        try:
            impl = cal.load_impl(name)
        except Exception as exc:  # an adapter whose library is missing or broken: report, go on
            print(f"\n{name}: not available ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
            continue
        ran += 1
        groups, skipped = cal.supported_groups(impl, tuple(args.dtype), families)
        print(f"\n{name} ({getattr(impl, 'version', '?')}) vs torch")
        if skipped:
            print(f"skipped, not supported: {', '.join(skipped)}")
        if not groups:
            continue
        t1 = time.perf_counter()
        try:
            results = cal.calibrate(name, args.n, tuple(args.dtype), args.workers, args.seed, families=families)
        except WorkerDied as exc:  # a job lost: its worker died on more cases than calibrate sets aside (each
            # an unexplained failure), or before its first case — said, and the calibration is not complete
            print(f"{name}: not calibrated: {exc}", file=sys.stderr)
            fails += 1
            continue
        print(cal.table(results))
        total = cal.Tally()
        for t in results.values():
            total.add(t)
        fails += total.unexplained
        known = "".join(f", {v} {k}" for k, v in sorted(total.causes.items(), key=lambda kv: -kv[1]))
        worst = max(total.ratios, default=0.0)
        print(f"{name}: {total.cases} cases, {total.failures} failures ({total.unexplained} unexplained{known}), "
              f"largest ratio {worst:.3f}, {time.perf_counter() - t1:.0f}s")
        for i, f in enumerate([f for t in results.values() for f in t.failures_seen][:args.show], 1):
            print(f"unexplained failure {i}: {f}")
        if not total.failures and worst > 0.5:
            print("worst case:\n" + total.worst_case)
    if not ran:
        return _fail_usage(f"none of {' '.join(args.impl)} is available")
    print(f"\n{fails} unexplained failures in all (the budget is 0; known causes: conformance/impls/explain.py), "
          f"{time.perf_counter() - t0:.0f}s")
    return 1 if fails else 0


def verify(args: argparse.Namespace) -> int:
    import random

    import torch

    from conformance.commands import verify as ver
    from conformance.driver import PROFILES
    from conformance.impls.adapters.jsonl import CommandAdapter

    if args.timeout is not None and args.timeout <= 0:
        return _fail_usage("--timeout must be positive")
    if args.max_examples is not None and args.max_examples < 1:
        return _fail_usage("--max-examples must be at least 1")
    try:
        impl = _impl(args.impl, args)
    except LookupError as exc:
        return _fail_usage(str(exc))
    examples = args.max_examples or PROFILES[args.profile]
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    where = "in its own process" if isinstance(impl, CommandAdapter) else "in process"
    print(f"conformance verify: impl={impl.name} {impl.version} ({where})  torch={torch.__version__}  "
          f"profile={args.profile}  cases/suite={examples}  seed={seed} (repeat with --seed {seed})")
    t0 = time.perf_counter()
    rec = None
    if args.report:
        import shlex
        from pathlib import Path

        from conformance.records import Recorder

        try:
            command = f"conformance verify --impl {shlex.quote(args.impl)} --max-examples {examples} --seed {seed}"
            rec = Recorder.create(Path(args.report), impls=[impl], profile=args.profile, seed=seed, command=command,
                                  max_examples=examples)
        except OSError as exc:
            getattr(impl, "close", lambda: None)()
            return _fail_usage(f"cannot write a report in {args.report!r}: {exc.strerror}")
    try:
        rerun = "without --in-process" if args.in_process else "with --isolate"
        findings: dict[str, list[str]] = {}
        output = ver.Output()
        with ver.Watch(impl, seed, rec, rerun) as watch:  # a run that dies names its case (verify's docstring)
            results = ver.verify(impl, examples, seed, ticker=ver.Ticker(),
                                 on_case=rec.on_case(impl) if rec else None, watch=watch, robustness=findings,
                                 output=output)
    finally:
        getattr(impl, "close", lambda: None)()
    print()
    print(ver.table(impl, results))
    if any(r.failure for r in results):
        print("\n" + ver.failures_text(results))
    if findings:
        print("\n" + ver.robustness_text(findings))
    judged = sum(sum(r.verdicts.values()) for r in results)
    if output.cases:
        print("\n" + output.text(impl.name, judged, rec is not None))
    ok = ver.conforms(results, strict=args.strict)
    strict = " (--strict: robustness findings charged)" if args.strict and findings else ""
    print(f"{impl.name} {'CONFORMS' if ok else 'DOES NOT CONFORM'}{strict}: "
          f"{judged} cases in {len(results)} suites, "
          f"{time.perf_counter() - t0:.0f}s")
    if rec is not None:
        rec.failures(impl, results)
        from conformance.report import render_or_note

        print(f"report: {rec.finish(render=render_or_note)}")
    return 0 if ok else 1


def ops(args: argparse.Namespace) -> int:
    from conformance.oracle import opcheck

    if args.max_examples < 1:
        return _fail_usage("--max-examples must be at least 1")
    import torch

    import refimpl

    print(f"conformance ops: refimpl {refimpl.__version__}  torch={torch.__version__}  "
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


def list_impls(args: argparse.Namespace) -> int:
    from conformance import kinds
    from conformance.impls import available

    names = sorted(available()) + list(args.impl or [])
    for name in names:
        try:
            impl = _impl(name)
        except Exception as exc:  # an installed adapter that fails to load is worth a line, not a crash
            print(f"{name:<12} cannot be loaded: {exc}")
            continue
        print(f"{impl.name} {impl.version}")
        for kind in kinds.KINDS:
            print(f"  {kind.declared(impl.capabilities)}")
        getattr(impl, "close", lambda: None)()
    return 0


def replay(args: argparse.Namespace) -> int:
    import json

    from conformance import kinds
    from conformance.driver import judge_case

    try:
        case = kinds.load(json.loads(open(args.case).read()))
    except OSError as exc:
        return _fail_usage(f"cannot read {args.case!r}: {exc.strerror}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return _fail_usage(f"{args.case!r} is not a case: {exc}")
    try:
        impl = _impl(args.impl, args)
    except LookupError as exc:
        return _fail_usage(str(exc))
    try:
        v = judge_case(impl, case)
    finally:
        getattr(impl, "close", lambda: None)()
    print(f"case {case.id} ({kinds.of(case).size(case)}, {case.dtype}) on {impl.name}: {v.verdict}")
    for e in v.entries:
        print("  " + e.describe())
    if v.reason and not v.entries:
        print("  " + v.reason)
    return 0 if v.conforms else 1


def export(args: argparse.Namespace) -> int:
    from conformance.commands.export import export_corpus

    if args.n < 1:
        return _fail_usage("--n must be at least 1")
    try:
        written = export_corpus(args.out, args.n, args.seed)
    except FileExistsError as exc:
        return _fail_usage(str(exc))
    print(f"wrote {written} cases to {args.out} (each: case, torch's float64 result, the truth)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"verify": verify, "ops": ops, "calibrate": calibrate, "list": list_impls, "replay": replay,
                "export": export}
    if args.command in PLUGGED:
        return importlib.import_module(f".{PLUGGED[args.command][0]}", __package__).run(args)  # type: ignore[no-any-return]
    return commands[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
