"""Report records: every judged case as a row, written so that nothing is lost and nothing is overwritten.

The contract with the renderer (:mod:`conformance.report`) is the run directory ``<out>/<run-id>/``
(``docs/reports.md``): ``records/cases.{parquet,csv}`` (one row per judged case),
``records/entries.{parquet,csv}`` (every entry of every case whose verdict is not ``pass``),
``failures/<case_id>.{json,py}`` (each suite's minimal non-conforming case and a torch script),
``run.json``, then ``summary.md`` / ``report.html`` from the renderer; ``<out>/history.parquet``
gains one row per (run, implementation).

Why a journal: a nightly run takes hours and may be killed. Each case is appended to
``records/journal*.jsonl`` as soon as it is judged (one line per case, flushed at once, fsynced in
batches), so a SIGKILL loses at most the case being judged and ``conformance nightly --resume``
continues from the journal. The tables are always built from the journals at the end, which makes
a resumed run, a run over several pytest-xdist workers (one journal each) and an uninterrupted run
the same code path. Every file that is replaced is written to a temporary file in the same
directory, fsynced and renamed over (``os.replace``), so a reader sees the old or the new file,
never half of one; a run directory is created exclusively, so an earlier report is never touched.

Errors are measured against the truth where the verdict computed it, otherwise against torch; the
ulps are those of the reference value in the case's dtype (binary32 spacing for float32, and so on).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from conformance import kinds
from conformance.case import dtypes
from conformance.verdict.graph import CaseVerdict, Entry
from conformance.verdict.outcomes import NONCONFORMING, ORDER, Verdict

#: the cases table: column -> pandas dtype (docs/reports.md, the renderer's contract)
CASE_COLUMNS: dict[str, str] = {
    "run_id": "object", "started": "object", "time": "object", "impl": "object", "impl_version": "object",
    "torch_version": "object", "shard": "object", "suite": "object", "family": "object", "case_id": "object",
    "seed": "int64", "index": "int64", "kind": "object", "ops": "object", "nodes": "int64", "depth": "int64",
    "parameters": "int64", "steps": "int64", "dtype": "object", "entries": "int64", "max_abs_error": "float64",
    "max_rel_error": "float64", "max_ulps": "float64", "worst_ratio": "float64", "verdict": "object",
    "reason": "object", "seconds": "float64", "case_json": "object", "output": "object",
}
ENTRY_COLUMNS: dict[str, str] = {
    "run_id": "object", "impl": "object", "case_id": "object", "entry": "object", "implementation": "float64",
    "torch": "float64", "truth": "float64", "tolerance": "float64", "abs_error": "float64", "ratio": "float64",
    "verdict": "object",
}
HISTORY_COLUMNS: dict[str, str] = {
    "run_id": "object", "started": "object", "impl": "object", "impl_version": "object", "torch_version": "object",
    "profile": "object", "seed": "int64", "cases": "int64", **{v: "int64" for v in reversed(ORDER)},
    "unsupported_ops": "int64", "conforms": "bool", "worst_ratio": "float64", "seconds": "float64",
}
HISTORY = "history.parquet"


# --- time, ids, durable files -----------------------------------------------------------------------

def now_iso() -> str:
    """ISO 8601 UTC with milliseconds: sorts as text."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    """UTC time and a short random suffix (``20261122T101530Z-3f9a``): unique, and sorts by time."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def new_run_dir(out: Path) -> Path:
    """A new, empty ``out/<run-id>/``, created exclusively: an existing directory is never reused."""
    out.mkdir(parents=True, exist_ok=True)
    while True:
        path = out / new_run_id()
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def atomic_write(path: Path, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` all at once (temp file in the same directory, fsync, rename)."""
    tmp = _write_temp(path, data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_new(path: Path, data: bytes | str) -> bool:
    """Create ``path`` with ``data`` atomically, never replacing anything; False if it already exists."""
    tmp = _write_temp(path, data.encode() if isinstance(data, str) else data)
    try:
        os.link(tmp, path)  # atomic and exclusive: fails if the name is taken
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    _fsync_dir(path.parent)
    return True


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def write_json(path: Path, doc: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(doc, indent=1, default=str) + "\n")


# --- the journal --------------------------------------------------------------------------------------

class Journal:
    """Append-only JSON Lines: each line written through at once (a SIGKILL loses nothing written),
    fsynced every ``every`` lines or ``seconds`` (what a power cut may lose)."""

    def __init__(self, path: Path, every: int = 50, seconds: float = 1.0) -> None:
        self.path, self.every, self.seconds = path, every, seconds
        self._f: io.TextIOWrapper | None = None
        self._pending, self._last = 0, time.monotonic()

    def append(self, obj: dict[str, Any]) -> None:
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            repair(self.path)
            self._f = open(self.path, "a", encoding="utf-8")  # kept open for the run
        self._f.write(json.dumps(obj) + "\n")
        self._f.flush()
        self._pending += 1
        if self._pending >= self.every or time.monotonic() - self._last >= self.seconds:
            self.sync()

    def sync(self) -> None:
        if self._f is not None and self._pending:
            os.fsync(self._f.fileno())
        self._pending, self._last = 0, time.monotonic()

    def close(self) -> None:
        self.sync()
        if self._f is not None:
            self._f.close()
            self._f = None


def repair(path: Path) -> None:
    """Cut a line left half-written by a kill, so that appending after it starts a clean line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
            os.fsync(f.fileno())


def read_journals(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Every complete line of every journal of a run (``records/journal*.jsonl``, by name)."""
    for path in sorted((run_dir / "records").glob("journal*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # the half-written last line of a killed run
                with contextlib.suppress(json.JSONDecodeError):
                    yield json.loads(line)


# --- rows ---------------------------------------------------------------------------------------------

def ulp(x: float, dtype: str) -> float:
    """The spacing of the dtype's numbers at ``x`` (:meth:`conformance.case.dtypes.DType.ulp`)."""
    return dtypes.dtype(dtype).ulp(x)


def errors(e: Entry, dtype: str) -> tuple[float, float, float]:
    """|error|, relative error and error in ulps of one entry, against the truth when the verdict
    computed it, else against torch. Equal values (NaN and NaN included) are 0; a non-finite
    mismatch is inf (NaN when a NaN is involved)."""
    ref = e.truth if e.truth is not None else e.torch
    x = e.impl
    if x == ref or (math.isnan(x) and math.isnan(ref)):
        return 0.0, 0.0, 0.0
    if not (math.isfinite(x) and math.isfinite(ref)):
        bad = math.nan if math.isnan(x) or math.isnan(ref) else math.inf
        return bad, bad, bad
    err = abs(x - ref)
    return err, (err / abs(ref) if ref else math.inf), err / ulp(ref, dtype)


def _worst(values: Iterable[float]) -> float:
    """The max, NaN if any is NaN, NaN for none (an error verdict has no entries)."""
    vals = list(values)
    if not vals or any(math.isnan(v) for v in vals):
        return math.nan
    return max(vals)


def describe(case: Any) -> dict[str, Any]:
    """The case columns that depend only on the case."""
    k = kinds.of(case)
    return dict(case_id=case.id, kind=k.name, **k.describe(case), case_json=k.dumps(case))


def family_of(case: Any) -> str:
    """The family ``conformance verify`` would file a case under (for cases found outside a suite)."""
    return kinds.of(case).family(case)


def entry_row(run_id: str, impl: str, case_id: str, e: Entry, dtype: str) -> dict[str, Any]:
    return dict(run_id=run_id, impl=impl, case_id=case_id, entry=e.name, implementation=e.impl, torch=e.torch,
                truth=math.nan if e.truth is None else e.truth, tolerance=e.tol, abs_error=errors(e, dtype)[0],
                ratio=e.ratio, verdict=e.verdict)


def rows(v: CaseVerdict, **context: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The cases row of a verdict (``context``: run_id, started, impl, impl_version, torch_version,
    shard, suite, family, seed, index, seconds) and its entries rows (none for a pass)."""
    info = describe(v.case)
    errs = [errors(e, info["dtype"]) for e in v.entries]
    case = dict(context, time=now_iso(), **info, entries=len(v.entries),
                max_abs_error=_worst(a for a, _, _ in errs), max_rel_error=_worst(r for _, r, _ in errs),
                max_ulps=_worst(u for _, _, u in errs), worst_ratio=_worst(e.ratio for e in v.entries),
                verdict=v.verdict, reason=v.reason.splitlines()[0] if v.reason else "",
                output="\n".join(v.output))
    entries = [] if v.verdict == Verdict.PASS else [entry_row(context["run_id"], context["impl"], v.case.id, e,
                                                        info["dtype"]) for e in v.entries]
    return {k: case[k] for k in CASE_COLUMNS}, entries


def frame(records: list[dict[str, Any]], columns: dict[str, str]) -> Any:
    import pandas as pd

    df = pd.DataFrame(records, columns=list(columns))
    return df.astype(columns) if len(df) else pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def tables(run_dir: Path) -> tuple[Any, Any]:
    """The cases and entries tables of a run, from its journals: each (impl, suite, index) once."""
    seen: set[tuple[str, str, int]] = set()
    cases, entries = [], []
    for obj in read_journals(run_dir):
        if "case" not in obj:
            continue
        row = obj["case"]
        key = (row["impl"], row["suite"], row["index"])
        if key in seen:
            continue
        seen.add(key)
        cases.append(row)
        entries += obj.get("entries", [])
    return frame(cases, CASE_COLUMNS), frame(entries, ENTRY_COLUMNS)


def write_tables(run_dir: Path, cases: Any, entries: Any) -> None:
    """records/{cases,entries}.{parquet,csv}, each replaced atomically."""
    out = run_dir / "records"
    out.mkdir(exist_ok=True)
    for name, df in (("cases", cases), ("entries", entries)):
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write(out / f"{name}.parquet", buf.getvalue())
        atomic_write(out / f"{name}.csv", df.to_csv(index=False))


# --- failures -----------------------------------------------------------------------------------------

def failure_files(impl: str, suite: str, v: CaseVerdict, run_id: str = "") -> tuple[str, str]:
    """The minimal failing case as a JSON document (case, verdict, entries) and a torch script."""
    k = kinds.of(v.case)
    dtype = v.case.dtype
    doc = {"impl": impl, "suite": suite, "verdict": v.verdict, "reason": v.reason,
           "kind": k.name, "case": k.to_json(v.case),
           "entries": [entry_row(run_id, impl, v.case.id, e, dtype) for e in v.entries]}
    script = k.torch_script(v.case)
    header = f"# {impl} {v.verdict} on {suite!r}: case {v.case.id}\n"
    return json.dumps(doc, indent=1) + "\n", header + script


def store_failure(run_dir: Path, name: str, doc: str, script: str) -> Path:
    """failures/<name>.json and .py, never replacing another failure: the same case found twice (a
    resumed suite, two shards) is stored once; a different one under the same name gets ``-2``, ``-3``…"""
    out = run_dir / "failures"
    out.mkdir(exist_ok=True)
    for k in range(1, 1000):
        stem = name if k == 1 else f"{name}-{k}"
        path = out / f"{stem}.json"
        if path.exists() and path.read_text(encoding="utf-8") == doc:
            write_new(out / f"{stem}.py", script)  # in case a kill came between the two files
            return path
        if write_new(path, doc):
            write_new(out / f"{stem}.py", script)
            return path
    raise RuntimeError(f"too many failures named {name}")


# --- the recorder -------------------------------------------------------------------------------------

def _version(impl: Any) -> str:
    try:
        return str(impl.version)
    except Exception:  # a version property of the implementation under test may raise
        return "?"


def claims(impl: Any) -> dict[str, dict[str, str]]:
    """What the implementation declares about how it computes, that its cases' tolerances follow
    (run.json, the report's headline): ``{"accumulate": {storage dtype: accumulation dtype},
    "summation": {dtype: order}}``, each part only when claimed."""
    caps = impl.capabilities
    out = {key: dict(getattr(caps, key, {}) or {}) for key in ("accumulate", "summation")}
    return {key: claim for key, claim in out.items() if claim}


def unsupported_ops(impl: Any) -> list[str]:
    """What the implementation does not support, of every kind (run.json, the history's count)."""
    return sorted(kinds.unsupported(impl.capabilities))


class Recorder:
    """Writes one run directory: journal lines as cases are judged, then the tables and run.json."""

    def __init__(self, run_dir: Path, meta: dict[str, Any], journal: str = "journal.jsonl") -> None:
        self.run_dir, self.meta = run_dir, meta
        self.journal = Journal(run_dir / "records" / journal)
        self.versions: dict[str, str] = {i["name"]: i["version"] for i in meta.get("implementations", [])}
        self.counts: Counter[str] = Counter()  # verdicts recorded by this process
        self.cases: Any = None  # the cases table, once finished

    @classmethod
    def create(cls, out: Path, *, command: str, impls: list[Any], profile: str, seed: int, shard: str = "1/1",
               budget_seconds: float | None = None, **extra: Any) -> Recorder:
        """A new run directory ``out/<run-id>/`` with its run.json (``finished`` null, not complete)."""
        import torch

        run_dir = new_run_dir(out)
        meta: dict[str, Any] = {
            "run_id": run_dir.name, "started": now_iso(), "finished": None, "command": command,
            "impls": [i.name for i in impls], "profile": profile, "seed": seed, "shard": shard,
            "torch_version": str(torch.__version__), "budget_seconds": budget_seconds, "complete": False,
            "implementations": [{"name": i.name, "version": _version(i), "unsupported_ops": unsupported_ops(i),
                                 "claims": claims(i)} for i in impls],
            **extra,
        }
        (run_dir / "records").mkdir()
        write_json(run_dir / "run.json", meta)
        return cls(run_dir, meta)

    @classmethod
    def reopen(cls, run_dir: Path, journal: str = "journal.jsonl") -> Recorder:
        """Continue writing a run directory (a resumed run, or a pytest-xdist worker's own journal)."""
        return cls(run_dir, read_json(run_dir / "run.json"), journal)

    def record(self, impl: Any, suite: str, family: str, seed: int, index: int, v: CaseVerdict,
               seconds: float) -> None:
        """Journal one judged case (and its entries if it is not a pass)."""
        name = impl.name
        if name not in self.versions:
            self.versions[name] = _version(impl)
        case, entries = rows(v, run_id=self.meta["run_id"], started=self.meta["started"], impl=name,
                             impl_version=self.versions[name], torch_version=self.meta["torch_version"],
                             shard=self.meta["shard"], suite=suite, family=family, seed=seed, index=index,
                             seconds=seconds)
        self.journal.append({"case": case, "entries": entries})
        self.counts[v.verdict] += 1

    def started(self, impl_name: str, suite: str, case_id: str, judged: int) -> None:
        """Journal a case about to run (``{"event": {"kind": "started", …}}``), flushed, not fsynced:
        if the run dies with it (an implementation in the harness's process), the journal's last line
        names it. The tables skip it."""
        self.journal.append({"event": {"kind": "started", "impl": impl_name, "suite": suite, "case": case_id,
                                       "judged": judged}})

    def event(self, **obj: Any) -> None:
        """Journal something that is not a case (a suite finished, the budget ran out)."""
        self.journal.append({"event": obj})
        self.journal.sync()

    def failure(self, impl_name: str, suite: str, v: CaseVerdict) -> Path:
        return store_failure(self.run_dir, v.case.id, *failure_files(impl_name, suite, v, self.meta["run_id"]))

    # --- the driver's OnCase hook ----------------------------------------------------------------

    def on_case(self, impl: Any) -> Any:
        """The driver's ``on_case`` hook recording ``impl``'s cases (verify, nightly, the pytest plugin)."""
        def hook(suite: Any, seed: int, index: int, v: CaseVerdict, seconds: float) -> None:
            self.record(impl, suite.name, suite.family, seed, index, v, seconds)
        return hook

    def failures(self, impl: Any, results: list[Any]) -> None:
        """Each suite's minimal failing case (the driver's SuiteResult.failure) into failures/."""
        for r in results:
            if r.failure is not None:
                self.failure(impl.name, r.suite.name, r.failure)

    # --- the end ---------------------------------------------------------------------------------

    def finish(self, *, history: bool = True, render: Renderer | None = None, **update: Any) -> Path:
        """Close the journal, write the tables and run.json (finished, complete), append the history
        rows, render the report; returns the run directory."""
        self.journal.close()
        cases, entries = tables(self.run_dir)
        write_tables(self.run_dir, cases, entries)
        self.cases = cases
        self.meta.update(update, finished=now_iso(), complete=True)
        write_json(self.run_dir / "run.json", self.meta)
        conclude(self.run_dir, self.meta, cases, history=history, render=render)
        return self.run_dir


# --- history, previous run, rendering -----------------------------------------------------------------

def history_rows(meta: dict[str, Any], cases: Any) -> list[dict[str, Any]]:
    """One row per implementation of a run: verdict counts, conforms, worst ratio, seconds judged."""
    info = {i["name"]: i for i in meta.get("implementations", [])}
    out = []
    for name in meta["impls"]:
        mine = cases[cases["impl"] == name]
        counts = Counter(mine["verdict"])
        worst = mine["worst_ratio"].max() if len(mine) else math.nan
        out.append({
            "run_id": meta["run_id"], "started": meta["started"], "impl": name,
            "impl_version": info.get(name, {}).get("version", "?"), "torch_version": meta["torch_version"],
            "profile": meta["profile"], "seed": int(meta["seed"]), "cases": len(mine),
            **{v: counts.get(v, 0) for v in reversed(ORDER)},
            "unsupported_ops": len(info.get(name, {}).get("unsupported_ops", [])),
            "conforms": not any(counts.get(v) for v in NONCONFORMING),
            "worst_ratio": float(worst), "seconds": float(mine["seconds"].sum()),
        })
    return out


def append_history(out: Path, new_rows: list[dict[str, Any]]) -> Path:
    """Add rows to ``out/history.parquet``: read, concatenate, write a temp file, replace — under a
    lock, so two runs finishing at once in the same directory both keep their rows."""
    import fcntl  # POSIX; imported here so that importing this module works everywhere

    import pandas as pd

    path = out / HISTORY
    with open(out / ".history.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        new = frame(new_rows, HISTORY_COLUMNS)
        old = pd.read_parquet(path) if path.exists() else None
        if old is not None:  # a count column added since the older rows were written (a new verdict): 0 there
            for column, dtype in HISTORY_COLUMNS.items():
                if column not in old and dtype == "int64":
                    old[column] = 0
        df = new if old is None or not len(old) else pd.concat([old, new], ignore_index=True)
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write(path, buf.getvalue())
    return path


def is_full_run(meta: dict[str, Any]) -> bool:
    """A complete run over all the work (unsharded or merged), not one shard of it."""
    return bool(meta.get("complete")) and str(meta.get("shard", "1/1")).endswith("/1")


def previous_run(out: Path, meta: dict[str, Any]) -> Path | None:
    """The latest earlier full run in ``out`` over the same implementations (for regressions)."""
    best: tuple[str, Path] | None = None
    for d in out.iterdir():
        try:
            other = read_json(d / "run.json")
        except (OSError, ValueError):
            continue
        if (other.get("run_id") != meta["run_id"] and is_full_run(other)
                and sorted(other.get("impls", [])) == sorted(meta["impls"])
                and other.get("started", "") < meta["started"] and (best is None or other["started"] > best[0])):
            best = (other["started"], d)
    return None if best is None else best[1]


#: writes summary.md / report.html for a run: ``render(run_dir, history, previous)`` (the report's
#: :func:`conformance.report.render_or_note`, handed down by the command: records sit below the report)
Renderer = Callable[[Path, "Path | None", "Path | None"], None]


def conclude(run_dir: Path, meta: dict[str, Any], cases: Any, *, history: bool, render: Renderer | None) -> None:
    """After the records: the history rows (full runs only: a shard's rows come with its merge) and
    the rendered summary.md / report.html."""
    out = run_dir.parent
    hist = append_history(out, history_rows(meta, cases)) if history and is_full_run(meta) else None
    if render is not None:
        render(run_dir, hist, previous_run(out, meta))
