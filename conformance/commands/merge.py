"""``conformance merge RUN_DIR… --out reports/``: the shards of a nightly run as one run.

The shards must be the same run cut in parts — the same seed, profile, cases per suite,
implementations, suite patterns and torch — each complete, and together cover ``1..n`` exactly
once; otherwise one line on stderr and exit 2. The merged run is a new run directory (a new run
id; the shards are only read): the shards' records concatenated (each row keeps its ``shard``), the
minimal failing cases of all shards, a run.json whose ``merged_from`` names the shards, one history
row per implementation, and the rendered report (regressions against the previous full run in ``--out``).

Exit codes: 0 every implementation conforms, 1 some does not, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from conformance.commands.nightly import Usage as ShardUsage
from conformance.commands.nightly import parse_shard, sync_database
from conformance.records import (
    conclude,
    history_rows,
    new_run_dir,
    now_iso,
    read_json,
    store_failure,
    write_json,
    write_tables,
)
from conformance.report import render_or_note
from conformance.verdict.outcomes import COLUMNS

#: run.json fields the shards of one run must agree on
SAME = ("seed", "profile", "max_examples", "impls", "suites", "torch_version", "budget_seconds")


class Usage(Exception):
    pass


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="the shard directories of one nightly run")
    p.add_argument("--out", default="reports", help="where the merged run directory is created (default reports/)")


def check_shards(dirs: list[Path]) -> list[dict[str, Any]]:
    """Each shard's run.json, once they are known to be the parts of one run."""
    metas = []
    for d in dirs:
        try:
            meta = read_json(d / "run.json")
        except (OSError, ValueError):
            raise Usage(f"{str(d)!r} is not a run directory (no readable run.json)") from None
        if not meta.get("complete") or not (d / "records" / "cases.parquet").exists():
            raise Usage(f"{str(d)!r} is incomplete: finish it with 'conformance nightly --resume {d}'")
        metas.append(meta)
    for key in SAME:
        values = {repr(m.get(key)) for m in metas}
        if len(values) > 1:
            a, b = metas[0], next(m for m in metas if repr(m.get(key)) != repr(metas[0].get(key)))
            raise Usage(f"the shards are not one run: {key} is {a.get(key)!r} in {a['run_id']} "
                        f"but {b.get(key)!r} in {b['run_id']}")
    try:
        shards = [parse_shard(m["shard"]) for m in metas]
    except ShardUsage:
        raise Usage(f"unreadable shard field in {', '.join(m['run_id'] for m in metas)}") from None
    n = shards[0][1]
    got = sorted(i for i, _ in shards)
    if any(k != n for _, k in shards) or got != list(range(1, n + 1)):
        raise Usage(f"shards must cover 1..n exactly once, got {', '.join(f'{i}/{k}' for i, k in shards)}")
    return metas


def merge(dirs: list[Path], out: Path) -> tuple[Path, dict[str, Any], Any]:
    """Write the merged run directory; returns it, its run.json and its cases table."""
    import json

    import pandas as pd

    metas = check_shards(dirs)
    run_dir = new_run_dir(out)
    first = metas[0]
    meta = {k: first.get(k) for k in ("command", "impls", "profile", "seed", "torch_version", "budget_seconds",
                                      "implementations", "max_examples", "suites", "seeds")}
    meta.update(run_id=run_dir.name, started=min(m["started"] for m in metas), finished=None, shard="1/1",
                complete=False, merged_from=[m["run_id"] for m in metas],
                command=f"conformance merge {' '.join(str(d) for d in dirs)} --out {out}",
                cut=[m["cut"] for m in metas if m.get("cut")] or None, skipped=first.get("skipped", []))
    (run_dir / "records").mkdir()
    write_json(run_dir / "run.json", meta)
    cases = pd.concat([pd.read_parquet(d / "records" / "cases.parquet") for d in dirs], ignore_index=True)
    entries = pd.concat([pd.read_parquet(d / "records" / "entries.parquet") for d in dirs], ignore_index=True)
    cases["run_id"], cases["started"], entries["run_id"] = meta["run_id"], meta["started"], meta["run_id"]
    write_tables(run_dir, cases, entries)
    for d in dirs:
        for f in sorted((d / "failures").glob("*.json")) if (d / "failures").exists() else []:
            doc = f.read_text(encoding="utf-8")
            script = f.with_suffix(".py").read_text(encoding="utf-8") if f.with_suffix(".py").exists() else ""
            store_failure(run_dir, json.loads(doc)["case"]["id"], doc, script)
    meta.update(finished=now_iso(), complete=True)
    write_json(run_dir / "run.json", meta)

    conclude(run_dir, meta, cases, history=True, render=render_or_note)
    sync_database(run_dir, cases)
    return run_dir, meta, cases


def run(args: argparse.Namespace) -> int:
    try:
        run_dir, meta, cases = merge([Path(d) for d in args.runs], Path(args.out))
    except Usage as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    ok = True
    for row in history_rows(meta, cases):
        ok &= row["conforms"]
        counts = ", ".join(f"{v} {row[v]}" for v in COLUMNS if row[v])
        print(f"{row['impl']} {'CONFORMS' if row['conforms'] else 'DOES NOT CONFORM'}: {row['cases']} cases  {counts}")
    print(f"merged {len(args.runs)} shards (seed {meta['seed']}) into {run_dir}")
    print(f"report: {run_dir}")
    return 0 if ok else 1
