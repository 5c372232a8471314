"""Reading a run directory (the records contract, /tmp/shared_spec/records.md) into plain tables.

The renderer must give the same report from the Parquet files and from the CSVs (a machine without
pyarrow only has the CSVs' reader), so both are normalised to one set of dtypes here: strings are
``str`` with ``""`` for missing, counts ``int``, measurements ``float`` (NaN and inf kept).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from conformance.case.dtypes import Reductions
from conformance.verdict.outcomes import COLUMNS, NONCONFORMING

CASE_STR = ("run_id", "started", "time", "impl", "impl_version", "torch_version", "shard", "suite", "family",
            "case_id", "kind", "ops", "dtype", "verdict", "reason", "case_json")
CASE_INT = ("seed", "index", "nodes", "depth", "parameters", "steps", "entries")
CASE_FLOAT = ("max_abs_error", "max_rel_error", "max_ulps", "worst_ratio", "seconds")
ENTRY_STR = ("run_id", "impl", "case_id", "entry", "verdict")
ENTRY_FLOAT = ("implementation", "torch", "truth", "tolerance", "abs_error", "ratio")
HISTORY_STR = ("run_id", "started", "impl", "impl_version", "torch_version", "profile")
HISTORY_FLOAT = ("worst_ratio", "seconds")


def parquet_available() -> bool:
    """Whether Parquet can be read here; the one switch between the two readers (tests patch it)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _normalise(df: pd.DataFrame, strs: tuple[str, ...], ints: tuple[str, ...],
               floats: tuple[str, ...]) -> pd.DataFrame:
    df = df.copy()
    for c in strs:
        if c not in df:
            df[c] = ""
        df[c] = [("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)) for v in df[c]]
    for c in ints:
        df[c] = pd.to_numeric(df[c], errors="coerce").fillna(0).astype("int64") if c in df else 0
    for c in floats:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64") if c in df else math.nan
    return df.reset_index(drop=True)


def read_table(stem: Path, strs: tuple[str, ...], ints: tuple[str, ...], floats: tuple[str, ...]) -> pd.DataFrame:
    """``stem.parquet`` when Parquet is readable and present, else ``stem.csv``."""
    parquet, csv = stem.with_suffix(".parquet"), stem.with_suffix(".csv")
    if parquet_available() and parquet.exists():
        df = pd.read_parquet(parquet)
    elif csv.exists():
        try:
            df = pd.read_csv(csv, dtype={c: str for c in strs}, keep_default_na=False,
                             na_values={c: ["", "nan", "NaN"] for c in (*ints, *floats)})
        except pd.errors.EmptyDataError:  # an empty table written without a header
            df = pd.DataFrame()
    else:
        raise FileNotFoundError(f"no records at {parquet} or {csv}")
    return _normalise(df, strs, ints, floats)


def _number(x: Any) -> float:
    """A float from a JSON value: numbers, NaN/Infinity literals, the strings "nan"/"inf", null."""
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class Failure:
    """One non-conforming case to show in full: a minimal case from failures/, or a row of the cases table."""

    impl: str
    suite: str
    case_id: str
    kind: str  # "graph" | "network"
    verdict: str
    reason: str
    case: dict[str, Any] | None  # the case as a JSON object (None if unreadable)
    entries: list[dict[str, Any]] = field(default_factory=list)
    repro: str = ""  # path of the torch script relative to the run directory, "" when there is none
    minimal: bool = False  # from failures/: the suite's shrunk case
    previous: str = ""  # the verdict of this case in the previous run ("" if it was not there)

    @property
    def key(self) -> tuple[str, str]:
        return self.impl, self.case_id


def one_line(text: Any) -> str:
    return " ".join(str(text or "").split())


def _entry(d: dict[str, Any]) -> dict[str, Any]:
    return {**{k: str(d.get(k, "") or "") for k in ENTRY_STR}, **{k: _number(d.get(k)) for k in ENTRY_FLOAT}}


def read_failures(run_dir: Path) -> list[Failure]:
    out = []
    for path in sorted((run_dir / "failures").glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            out.append(Failure("?", "?", path.stem, "graph", "error", f"unreadable failure file: {exc}", None,
                               minimal=True))
            continue
        case = doc.get("case") if isinstance(doc.get("case"), dict) else None
        script = path.with_suffix(".py")
        out.append(Failure(
            impl=str(doc.get("impl", "")), suite=str(doc.get("suite", "")),
            case_id=str((case or {}).get("id") or path.stem), kind=str(doc.get("kind", "graph")),
            verdict=str(doc.get("verdict", "")), reason=one_line(doc.get("reason")), case=case,
            entries=[_entry(e) for e in doc.get("entries", []) if isinstance(e, dict)],
            repro=f"failures/{script.name}" if script.exists() else "", minimal=True))
    return out


@dataclass
class Run:
    """A run directory's records, normalised."""

    path: Path
    meta: dict[str, Any]
    cases: pd.DataFrame
    entries: pd.DataFrame
    failures: list[Failure]

    @property
    def impls(self) -> list[str]:
        """The implementations, in run.json's order, then any others the records name."""
        names = [str(n) for n in self.meta.get("impls", [])]
        return names + sorted(set(self.cases["impl"]) - set(names))

    def claims(self, impl: str) -> str:
        """What run.json says the implementation claimed about how it computes, in words ("" when
        nothing: an older run, or no claim)."""
        for i in self.meta.get("implementations", []):
            if isinstance(i, dict) and i.get("name") == impl and isinstance(i.get("claims"), dict):
                acc, order = (c if isinstance(c := i["claims"].get(k), dict) else {}
                              for k in ("accumulate", "summation"))
                return "; ".join(Reductions(acc.get(d), order.get(d)).describe(d) for d in sorted({*acc, *order}))
        return ""

    def version(self, impl: str) -> str:
        for i in self.meta.get("implementations", []):
            if isinstance(i, dict) and i.get("name") == impl:
                return str(i.get("version", ""))
        rows = self.cases[self.cases["impl"] == impl]
        return str(rows["impl_version"].iloc[0]) if len(rows) else ""


def load_run(run_dir: Path) -> Run:
    meta_path = run_dir / "run.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    records = run_dir / "records"
    cases = read_table(records / "cases", CASE_STR, CASE_INT, CASE_FLOAT)
    try:
        entries = read_table(records / "entries", ENTRY_STR, (), ENTRY_FLOAT)
    except FileNotFoundError:  # a run where every case passed may have written no entries
        entries = _normalise(pd.DataFrame(), ENTRY_STR, (), ENTRY_FLOAT)
    return Run(run_dir, meta if isinstance(meta, dict) else {}, cases, entries, read_failures(run_dir))


def load_history(path: Path) -> pd.DataFrame | None:
    """history.parquet (or a .csv beside it when Parquet cannot be read); None when neither is readable."""
    ints = ("seed", "cases", *COLUMNS, "unsupported_ops")
    try:
        df = read_table(path.with_suffix(""), HISTORY_STR, ints, HISTORY_FLOAT)
    except (FileNotFoundError, OSError, ValueError):
        return None
    if "conforms" in df:
        df["conforms"] = [str(v).strip().lower() in ("true", "1") for v in df["conforms"]]
    else:
        df["conforms"] = sum(df[v] for v in NONCONFORMING) == 0
    return df
