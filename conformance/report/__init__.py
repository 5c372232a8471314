"""The report a person reads: ``summary.md`` and ``report.html`` for one run directory.

:func:`render` reads the records (the contract in ``docs/reports.md``: Parquet when pyarrow is
importable, else the CSVs), the minimal failures, ``run.json``, optionally the history and the
previous run, and writes both files. Everything is computed in memory first and each file is then
replaced atomically (temp file in the same directory, fsync, ``os.replace``): a failure while
rendering leaves the previous report exactly as it was, and a reader never sees half a page.

Modules: :mod:`.data` reads, :mod:`.facts` decides what to say, :mod:`.summary` and :mod:`.page`
say it, :mod:`.plots` (matplotlib, imported lazily), :mod:`.graphdraw` / :mod:`.netdraw` /
:mod:`.layout` draw the failing cases.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from conformance.report import graphdraw
from conformance.report.data import load_history, load_run
from conformance.report.facts import gather
from conformance.report.fmt import one_line
from conformance.report.page import render_page
from conformance.report.summary import render_summary

__all__ = ["render", "write_atomic"]


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` all at once: a temp file beside it, flushed to disk, renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def render(run_dir: Path, history: Path | None = None, previous: Path | None = None, *,
           engine: str = "auto", html: bool = True) -> None:
    """Write ``run_dir/summary.md`` and ``run_dir/report.html`` (only summary.md if not ``html``).

    ``history``: ``history.parquet`` for the trend (skipped if unreadable). ``previous``: an earlier
    run directory, for regressions. ``engine``: how failing graphs are drawn — ``auto`` (Graphviz
    when ``dot`` is on PATH, else the built-in layout), ``dot`` or ``python``. When Graphviz was
    asked for (``dot``, or ``auto`` with ``dot`` on PATH) and could not draw, the pictures use the
    built-in layout and one line on stderr says why; plots that fail are left out with one line too.
    """
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    before, note = None, ""
    if previous is not None:
        try:
            before = load_run(Path(previous))
        except (OSError, ValueError) as exc:
            note = f"the previous run {previous} could not be read ({exc})"
    hist = load_history(Path(history)) if history is not None else None
    facts = gather(run, before, note, hist)
    summary = render_summary(facts)
    if not html:
        write_atomic(run_dir / "summary.md", summary)
        return
    graphdraw.DOT_PROBLEMS.clear()
    page = render_page(facts, engine=engine)
    write_atomic(run_dir / "summary.md", summary)
    write_atomic(run_dir / "report.html", page)
    if graphdraw.DOT_PROBLEMS:
        n = len(graphdraw.DOT_PROBLEMS)
        sys.stderr.write(f"conformance report: {graphdraw.DOT_PROBLEMS[0]}: {n} failing case picture{'s' * (n > 1)}"
                         " drawn with the built-in layout instead\n")


def render_or_note(run_dir: Path, history: Path | None, previous: Path | None) -> None:
    """summary.md and report.html. The run is over and its records are written: a failure here is one
    line on stderr, never a traceback, and summary.md is still written when only the page failed."""
    try:
        render(run_dir, history=history, previous=previous)
        return
    except Exception as exc:
        why = one_line(exc)
    try:
        render(run_dir, history=history, previous=previous, html=False)
        lost, kept = "report.html", "summary.md and records/ are"
    except Exception:
        lost, kept = "summary.md and report.html", "records/ are"
    sys.stderr.write(f"conformance: {lost} not written ({why}); {kept} in {run_dir}\n")
