"""``conformance nightly``: every installed implementation, within a time budget, with records.

    conformance nightly [--impl all|X …] [--budget 30m | --max-examples N] [--profile P] [--seed S]
                        [--shard i/n] [--suites GLOB …] [--out reports/] [--resume RUN_DIR]

The suites and verdicts of ``conformance verify`` (suite ``i`` of an implementation seeded with
``seed + i``), for several implementations in one run, written as records
(:mod:`conformance.records`) to a new ``<out>/<run-id>/``, with ``<out>/history.parquet`` and a
rendered report. Every row holds its case as JSON (``conformance replay`` re-runs a graph case).

* ``--impl all`` (the default): every implementation ``conformance list`` finds; one that fails
  to load is listed with the reason and skipped. A named one that fails to load is bad usage. Each
  runs where ``conformance verify`` runs it (:mod:`conformance.impls.loading`): in a worker process
  for any but this project's own, so a crash or a hang (30 s per case) is a verdict, not the end.
* ``--budget``: no new case is started once it is spent; the run still writes its report, and
  run.json's ``cut`` says where it stopped. Shrinking is skipped once the budget is spent.
* ``--seed``: default the UTC date as ``YYYYMMDD``, so every shard started that night agrees.
* ``--shard i/n``: the (implementation, suite) pairs, in order, are dealt round-robin; pair ``k``
  goes to shard ``k mod n + 1``. Every suite runs whole in one shard with the seed it has
  unsharded, so the union of the shards is the unsharded run: same case ids, same verdicts, same
  minimal failures. ``conformance merge`` (:mod:`conformance.commands.merge`) joins them.
* ``--resume RUN_DIR``: continue a run that was killed, from its journal and with its run.json's
  settings: finished suites are skipped, recorded cases (impl, suite, index) are not judged again
  (hypothesis still generates them, cheaply, to reach the next one), and the records hold each case once.
* ``$HYPOTHESIS_DATABASE`` (a directory, as for ``pytest conformance``): past minimal failures are
  kept there, per (implementation, suite), and judged again first, as the suite ``"<suite> (replayed)"``,
  so a bug found once is checked every night even when the seed no longer draws it. A full run
  (unsharded, or the merge of the shards) updates it: new minimal failures are saved, replayed cases
  that now conform are removed; shards only read it, so their union stays the unsharded run.

Exit codes: 0 every implementation conforms (on what ran), 1 some implementation does not, 2 bad
usage (one line on stderr).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from conformance import kinds
from conformance.commands import verify as ver
from conformance.driver import PROFILES, Shrinker, SuiteResult, counts_text, judge_case, same_cases_everywhere
from conformance.driver import run_suite as run_suite_once
from conformance.impls import available
from conformance.impls.loading import resolve
from conformance.kinds.kind import Suite
from conformance.records import Recorder, now_iso, read_journals, read_json
from conformance.report import render_or_note
from conformance.verdict.outcomes import NONCONFORMING, Verdict

REPLAYED = " (replayed)"  # the suite name of a suite's stored failures, judged again


class Usage(Exception):
    """Bad usage: one line for stderr, exit 2."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--impl", nargs="+", default=None, metavar="X",
                   help="'all' (default: every implementation found) or names, module:attr, path.py, cmd:…")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--budget", default=None, help="stop starting cases after this long: 90s, 30m, 2h")
    size.add_argument("--max-examples", type=int, default=None, help="cases per suite (default: by profile)")
    p.add_argument("--profile", choices=list(PROFILES), default=None, help="cases per suite (default nightly)")
    p.add_argument("--seed", type=int, default=None, help="default: today's UTC date as YYYYMMDD (printed)")
    p.add_argument("--shard", default=None, metavar="i/n", help="run the i-th of n parts (default 1/1)")
    p.add_argument("--suites", nargs="+", default=None, metavar="GLOB",
                   help="only suites whose name matches one of these patterns ('op t*', 'networks*')")
    p.add_argument("--out", default="reports", help="where the run directory is created (default reports/)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run")


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise Usage(f"--shard must be i/n with 1 <= i <= n, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_budget(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh]?)", text.strip())
    if not m or float(m.group(1)) <= 0:
        raise Usage(f"--budget must be a positive duration like 90s, 30m or 2h, got {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def date_seed() -> int:
    """Today's UTC date as an integer (20261122): every shard of one night derives the same seed."""
    return int(datetime.now(timezone.utc).strftime("%Y%m%d"))


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """What the run does, from the command line or, with --resume, from the run's own run.json."""
    if args.resume:
        given = [f"--{k.replace('_', '-')}" for k in ("impl", "budget", "max_examples", "profile", "seed", "shard",
                                                      "suites") if getattr(args, k) is not None]
        if given:
            raise Usage(f"--resume takes its settings from RUN_DIR/run.json; drop {' '.join(given)}")
        try:
            meta = read_json(Path(args.resume) / "run.json")
        except (OSError, ValueError):
            raise Usage(f"{args.resume!r} is not a run directory (no readable run.json)") from None
        if meta.get("complete"):
            raise Usage(f"{args.resume!r} is already complete: nothing to resume")
        if "impl_specs" not in meta:
            raise Usage(f"{args.resume!r} was not written by conformance nightly: it cannot be resumed")
        return dict(specs=meta["impl_specs"], skipped=meta.get("skipped", []), profile=meta["profile"],
                    examples=meta["max_examples"], seed=int(meta["seed"]), shard=parse_shard(meta["shard"]),
                    budget=meta["budget_seconds"], suites=meta.get("suites"), meta=meta)
    if args.max_examples is not None and args.max_examples < 1:
        raise Usage("--max-examples must be at least 1")
    profile = args.profile or "nightly"
    return dict(specs=args.impl or ["all"], skipped=[], profile=profile,
                examples=args.max_examples or PROFILES[profile],
                seed=args.seed if args.seed is not None else date_seed(),
                shard=parse_shard(args.shard or "1/1"), budget=parse_budget(args.budget) if args.budget else None,
                suites=args.suites, meta=None)


def load_impls(specs: list[str], skipped: list[dict[str, str]]) -> tuple[list[tuple[str, Any]], list[dict[str, str]]]:
    """Resolve every spec (``all`` = every registered name); a named one that fails is bad usage, one
    found through ``all`` that fails is skipped with its reason."""
    out: list[tuple[str, Any]] = []
    for spec in specs:
        names = sorted(available()) if spec == "all" else [spec]
        for name in names:
            if any(name == s for s, _ in out) or any(name == s["impl"] for s in skipped):
                continue
            try:
                out.append((name, resolve(name)))
            except Exception as exc:  # an installed adapter may fail to import in any way
                reason = " ".join(str(exc).split()) or type(exc).__name__
                if spec != "all":
                    raise Usage(f"cannot load --impl {name!r}: {reason}") from None
                skipped.append({"impl": name, "reason": reason})
    names = [i.name for _, i in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise Usage(f"two implementations are named {sorted(dup)[0]!r}: their records would mix")
    return out, skipped


class Progress:
    """One live line on stderr: cases judged, cases/s, verdict counts. Rewritten in place on a
    terminal; elsewhere (CI logs) a new line every ``every`` seconds."""

    def __init__(self, every: float | None = None, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.every = every if every is not None else (0.5 if self.live else 30.0)
        self.t0 = self.last = time.monotonic()
        self.counts: Counter[str] = Counter()
        self.where, self.width = "", 0

    def case(self, verdict: str) -> None:
        self.counts[verdict] += 1
        if time.monotonic() - self.last >= self.every:
            self.show()

    def text(self) -> str:
        n = sum(self.counts.values())
        rate = n / max(time.monotonic() - self.t0, 1e-9)
        return f"{n} cases, {rate:.1f} cases/s  {counts_text(self.counts)}  {self.where}".rstrip()

    def show(self, final: bool = False) -> None:
        self.last = time.monotonic()
        line = self.text()
        if self.live:
            self.stream.write("\r" + line.ljust(self.width) + ("\n" if final else ""))
            self.width = 0 if final else len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class Budget:
    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.cut: dict[str, Any] | None = None  # where the run stopped when the budget ran out

    def spent(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


def run_suite(impl: Any, suite: Suite, seed: int, rec: Any, budget: Budget, progress: Progress,
              skip: set[int], prior_bad: list[tuple[int, dict[str, Any]]]) -> Counter[str]:
    """One suite through the driver, with what a nightly run adds: cases already in the journal
    (``skip``) are drawn but not judged, no case starts once the budget is spent, and the suite's
    minimal failing case goes to failures/. The first non-conforming case (the one shrinking falls
    back to) is the lowest index, whether judged now or before a resume."""
    def seen(s: Suite, seed: int, index: int, v: Any, seconds: float) -> None:
        rec.on_case(impl)(s, seed, index, v, seconds)
        progress.case(v.verdict)

    r = run_suite_once(impl, suite, seed, on_case=seen, skip=skip, stop=budget.spent, shrink=False)
    if r.stopped_at is not None and budget.cut is None:
        budget.cut = {"impl": impl.name, "suite": suite.name, "index": r.stopped_at, "at": now_iso()}
    first = min([*([r.first_bad] if r.first_bad else []), *prior_bad], key=lambda b: b[0], default=None)
    failure = None
    if first is not None:
        v = first[1] if not isinstance(first[1], dict) else _rejudge(impl, first[1])
        shrunk = None if budget.spent() or v is None or v.verdict == Verdict.TIMEOUT else Shrinker()(impl, v).verdict
        failure = shrunk or v
        if failure is not None:
            rec.failure(impl.name, suite.name, failure)
    if budget.cut is None:
        rec.event(kind="suite", impl=impl.name, suite=suite.name, seed=seed, cases=r.drawn,
                  failure=None if failure is None else failure.case.id)
    return r.verdicts


def database() -> Any:
    """The example database named by ``$HYPOTHESIS_DATABASE``, or None."""
    path = os.environ.get("HYPOTHESIS_DATABASE")
    if not path:
        return None
    from hypothesis.database import DirectoryBasedExampleDatabase

    return DirectoryBasedExampleDatabase(path)


def _key(impl: str, suite: str) -> bytes:
    return f"conformance-nightly/{impl}/{suite}".encode()


def _blob(case_doc: dict[str, Any]) -> bytes:
    return json.dumps(case_doc, sort_keys=True).encode()


def replay_stored(impl: Any, suite: Any, seed: int, rec: Any, db: Any, progress: Progress,
                  skip: set[int]) -> Counter[str]:
    """Judge again the minimal failures stored for this (implementation, suite), in a fixed order."""
    stored = []
    for blob in sorted(db.fetch(_key(impl.name, suite.name))):
        try:
            stored.append(kinds.load(json.loads(blob)))
        except (ValueError, KeyError):
            stored.append(None)  # a stored case this version cannot read: its index stays taken
    replayed = Suite(suite.name + REPLAYED, suite.family, suite.strategy, len(stored))
    unreadable = {i for i, c in enumerate(stored) if c is None}

    def seen(s: Suite, seed: int, index: int, v: Any, seconds: float) -> None:
        rec.on_case(impl)(s, seed, index, v, seconds)
        progress.case(v.verdict)

    r = run_suite_once(impl, replayed, seed, cases=stored, on_case=seen, skip=skip | unreadable, shrink=False)
    if r.first_bad is not None:  # still failing: it is the suite's minimal case again
        rec.failure(impl.name, replayed.name, r.first_bad[1])
    return r.verdicts


def sync_database(run_dir: Path, cases: Any) -> None:
    """After a full run: save its minimal failures, remove the stored ones that now conform."""

    db = database()
    if db is None:
        return
    for path in sorted((run_dir / "failures").glob("*.json")) if (run_dir / "failures").exists() else []:
        doc = json.loads(path.read_text(encoding="utf-8"))
        db.save(_key(doc["impl"], doc["suite"].removesuffix(REPLAYED)), _blob(doc["case"]))
    fixed = cases[cases["suite"].str.endswith(REPLAYED) & ~cases["verdict"].isin(sorted(NONCONFORMING))]
    for impl, suite, text in zip(fixed["impl"], fixed["suite"], fixed["case_json"]):
        db.delete(_key(impl, suite.removesuffix(REPLAYED)), _blob(json.loads(text)))


def _rejudge(impl: Any, row: dict[str, Any]) -> Any:
    """The verdict on a case recorded before a resume (its JSON is in the row)."""
    v = judge_case(impl, kinds.named(row["kind"]).loads(row["case_json"]))
    return None if v.conforms else v


def _command(s: dict[str, Any]) -> str:
    """The command line that repeats this run (the date-derived seed written out)."""
    size = f"--budget {s['budget']:g}s" if s["budget"] else f"--max-examples {s['examples']}"
    parts = ["conformance nightly --impl", *map(shlex.quote, s["specs"]), f"--profile {s['profile']}", size,
             f"--seed {s['seed']}", f"--shard {s['shard'][0]}/{s['shard'][1]}"]
    if s["suites"]:
        parts += ["--suites", *map(shlex.quote, s["suites"])]
    return " ".join(parts)


def plan(impls: list[Any], examples: int, patterns: list[str] | None) -> list[tuple[Any, int, Any]]:
    """Every (implementation, suite index, suite) of the run, in order: what shards split."""
    return [(impl, i, s) for impl in impls for i, s in enumerate(kinds.suites(impl.capabilities, examples))
            if not patterns or any(fnmatch.fnmatchcase(s.name, p) for p in patterns)]


def run(args: argparse.Namespace) -> int:
    try:
        s = _settings(args)
        loaded, skipped = load_impls(s["specs"], s["skipped"])
    except Usage as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    if not loaded:
        print("conformance: no implementation could be loaded", file=sys.stderr)
        return 2
    try:
        return _run(s, [impl for _, impl in loaded], [spec for spec, _ in loaded], skipped, args)
    finally:
        for _, impl in loaded:
            getattr(impl, "close", lambda: None)()


def _run(s: dict[str, Any], impls: list[Any], specs: list[str], skipped: list[dict[str, str]],
         args: argparse.Namespace) -> int:
    import torch

    for sk in skipped:
        print(f"conformance nightly: skipped {sk['impl']}: {sk['reason']}", file=sys.stderr)
    shard_i, shard_n = s["shard"]
    if s["meta"] is not None:
        rec = Recorder.reopen(Path(args.resume))
    else:
        s["specs"] = specs
        try:
            rec = Recorder.create(Path(args.out), command=_command(s), impls=impls, profile=s["profile"],
                                  seed=s["seed"], shard=f"{shard_i}/{shard_n}", budget_seconds=s["budget"],
                                  impl_specs=specs, skipped=skipped, max_examples=s["examples"],
                                  suites=s["suites"], cut=None,
                                  seeds="suite i of an implementation (conformance verify's order) has seed + i")
        except OSError as exc:
            print(f"conformance: cannot create a run directory in {args.out!r}: {exc.strerror}", file=sys.stderr)
            return 2
    print(f"conformance nightly: {' '.join(i.name for i in impls)}  torch={torch.__version__}  "
          f"profile={s['profile']}  cases/suite={s['examples']}  seed={s['seed']} (repeat with --seed {s['seed']})  "
          f"shard {shard_i}/{shard_n}" + (f"  budget {s['budget']:g}s" if s["budget"] else ""))
    print(f"run directory: {rec.run_dir}" + ("  (resumed)" if s["meta"] is not None else ""))

    done_suites: set[tuple[str, str]] = set()
    done: dict[tuple[str, str], set[int]] = {}
    prior_bad: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    for obj in read_journals(rec.run_dir):  # a resumed run: what the journal already holds
        if "event" in obj and obj["event"].get("kind") == "suite":
            done_suites.add((obj["event"]["impl"], obj["event"]["suite"]))
        elif "case" in obj:
            row = obj["case"]
            key = (row["impl"], row["suite"])
            done.setdefault(key, set()).add(row["index"])
            if row["verdict"] in NONCONFORMING:
                prior_bad.setdefault(key, []).append((row["index"], row))

    work = plan(impls, s["examples"], s["suites"])
    mine = [w for k, w in enumerate(work) if k % shard_n == shard_i - 1]
    budget, progress, db = Budget(s["budget"]), Progress(), database()
    t0 = time.perf_counter()
    with same_cases_everywhere():
        _work(mine, s, rec, budget, progress, db, done_suites, done, prior_bad)
    progress.where = f"{time.perf_counter() - t0:.0f}s"
    progress.show(final=True)

    run_dir = rec.finish(cut=budget.cut or rec.meta.get("cut"), history=shard_n == 1, render=render_or_note)
    if shard_n == 1:
        sync_database(run_dir, rec.cases)
    return _summary(rec, impls, run_dir, budget, len(mine))


def _work(mine: list[tuple[Any, int, Any]], s: dict[str, Any], rec: Any, budget: Budget, progress: Progress,
          db: Any, done_suites: set[tuple[str, str]], done: dict[tuple[str, str], set[int]],
          prior_bad: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]]) -> None:
    """This shard's suites, in order, minus those the journal says are finished."""
    for k, (impl, i, suite) in enumerate(mine, 1):
        key = (impl.name, suite.name)
        if key in done_suites:
            continue
        if budget.spent():
            budget.cut = budget.cut or {"impl": impl.name, "suite": suite.name, "index": 0, "at": now_iso()}
            break
        progress.where = f"[{k}/{len(mine)}] {impl.name}: {suite.name}"
        t = time.perf_counter()
        counts = Counter() if db is None else replay_stored(impl, suite, s["seed"] + i, rec, db, progress,
                                                           done.get((impl.name, suite.name + REPLAYED), set()))
        counts += run_suite(impl, suite, s["seed"] + i, rec, budget, progress, done.get(key, set()),
                            prior_bad.get(key, []))
        print(f"  {impl.name:<12} {suite.name:<22} {sum(counts.values()):>5} cases  {counts_text(counts)}  "
              f"({time.perf_counter() - t:.1f}s)", flush=True)
        if budget.cut is not None:
            break


def _summary(rec: Any, impls: list[Any], run_dir: Path, budget: Budget, planned: int) -> int:
    """Per implementation: the verify table, CONFORMS or not, the failures; then where the report is."""
    cases = rec.cases
    bad = False
    for impl in impls:
        mine = cases[cases["impl"] == impl.name]
        results = []
        for (suite, family), group in mine.groupby(["suite", "family"], sort=False):
            results.append(SuiteResult(Suite(suite, family, None, 0), verdicts=Counter(group["verdict"])))  # type: ignore[arg-type]
        ok = ver.conforms(results)
        bad |= not ok
        print(f"\n{ver.table(impl, results)}")
        print(f"{impl.name} {'CONFORMS' if ok else 'DOES NOT CONFORM'}: {len(mine)} cases in {len(results)} suites"
              + ("" if ok else f", {mine['verdict'].isin(sorted(NONCONFORMING)).sum()} non-conforming"))
    failures = sorted((run_dir / "failures").glob("*.json")) if (run_dir / "failures").exists() else []
    for f in failures:
        print(f"minimal failing case: {f}")
    if budget.cut:
        c = budget.cut
        print(f"budget of {budget.seconds:g}s spent: stopped at {c['impl']} {c['suite']!r} case {c['index']}")
    print(f"report: {run_dir}")
    return 1 if bad else 0

