"""What the report does when an optional piece is missing or a part of it fails after the run: Graphviz
``dot`` absent or broken, a plot that raises, a page that cannot be rendered. Each is one line on
stderr; the records, summary.md and (unless the page itself failed) report.html are still written.

The run directories are tests/report_fixtures.py's (failing graph and network cases, so there are
pictures to draw).
"""

from __future__ import annotations

import functools
import json
import shutil
import stat
from pathlib import Path

import pytest
from report_fixtures import make_runs

import conformance.report
from conformance import records
from conformance.report import plots, render

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_runs(tmp_path_factory.mktemp("reports"))


@pytest.fixture
def run(runs: dict[str, Path], tmp_path: Path) -> Path:
    """A copy of the current run, without a rendered report."""
    out = Path(shutil.copytree(runs["current"], tmp_path / "out" / runs["current"].name))
    for name in ("summary.md", "report.html"):
        (out / name).unlink(missing_ok=True)
    return out


@pytest.fixture
def fast_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ratio_distribution", "pass_heatmap", "trend"):
        monkeypatch.setattr(plots, name, lambda *a, **k: PNG)


@pytest.fixture
def no_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH without Graphviz: an empty directory."""
    empty = tmp_path / "bin-empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("dot") is None


def stderr_lines(capsys: pytest.CaptureFixture) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def pictures(run: Path) -> int:
    return (run / "report.html").read_text().count('<figure class="picture">')


def test_engine_dot_without_dot_is_one_note_and_the_builtin_layout(run: Path, no_dot: None, fast_plots: None,
                                                                   capsys: pytest.CaptureFixture) -> None:
    render(run, engine="dot")
    assert (run / "summary.md").read_text().startswith("#")
    assert pictures(run) >= 2  # every failing case still has its picture (graph and network)
    err = stderr_lines(capsys)
    assert len(err) == 1, err
    assert "Graphviz `dot` is not on PATH" in err[0] and "built-in layout" in err[0]
    assert f"{pictures(run)} failing case pictures" in err[0]


def test_engine_auto_without_dot_is_silent(run: Path, no_dot: None, fast_plots: None,
                                           capsys: pytest.CaptureFixture) -> None:
    """auto means Graphviz if it is there: its absence is the documented fallback, not news."""
    render(run, engine="auto")
    assert pictures(run) >= 2 and capsys.readouterr().err == ""


def test_a_failing_dot_is_one_note(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_plots: None,
                                   capsys: pytest.CaptureFixture) -> None:
    bin_dir = tmp_path / "bin-bad-dot"
    bin_dir.mkdir()
    dot = bin_dir / "dot"
    dot.write_text("#!/bin/sh\necho 'Error: <stdin>: syntax error in line 3' >&2\necho more >&2\nexit 1\n")
    dot.chmod(dot.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))
    render(run, engine="auto")
    assert pictures(run) >= 2
    err = stderr_lines(capsys)
    assert len(err) == 1, err
    assert "Graphviz `dot` failed (exit status 1: Error: <stdin>: syntax error in line 3)" in err[0]


def test_a_plot_that_raises_is_one_note_and_the_page_is_written(run: Path, monkeypatch: pytest.MonkeyPatch,
                                                                fast_plots: None,
                                                                capsys: pytest.CaptureFixture) -> None:
    def broken(*a: object, **k: object) -> bytes:
        raise ValueError("Axis limits cannot be NaN or Inf\nsecond line")

    monkeypatch.setattr(plots, "pass_heatmap", broken)
    render(run, engine="python")
    html = (run / "report.html").read_text()
    assert "Plots are not shown: ValueError: Axis limits cannot be NaN or Inf." in html and "<img" not in html
    assert (run / "summary.md").exists()
    err = stderr_lines(capsys)
    assert err == ["conformance report: no plots in report.html: ValueError: Axis limits cannot be NaN or Inf"]


# --- after the run: records.conclude (what verify --report, nightly and merge call) -------------------

def conclude(run: Path) -> None:
    meta = json.loads((run / "run.json").read_text())
    records.conclude(run, meta, None, history=False, render=conformance.report.render_or_note)


def test_the_run_with_engine_dot_and_no_dot_still_writes_summary_and_report(
        run: Path, no_dot: None, fast_plots: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(conformance.report, "render", functools.partial(render, engine="dot"))
    before = {p: p.read_bytes() for p in (run / "records").iterdir()}
    conclude(run)
    assert (run / "summary.md").exists() and pictures(run) >= 2
    assert {p: p.read_bytes() for p in (run / "records").iterdir()} == before
    err = stderr_lines(capsys)
    assert len(err) == 1 and "Graphviz `dot` is not on PATH" in err[0], err


def test_a_page_that_cannot_be_rendered_keeps_summary_and_records(run: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  fast_plots: None,
                                                                  capsys: pytest.CaptureFixture) -> None:
    def broken(*a: object, **k: object) -> str:
        raise KeyError("worst_ratio")

    monkeypatch.setattr(conformance.report, "render_page", broken)  # where render() looks it up
    conclude(run)  # no traceback
    assert "## " in (run / "summary.md").read_text() and not (run / "report.html").exists()
    assert (run / "records" / "cases.parquet").exists()
    assert stderr_lines(capsys) == [f"conformance: report.html not written (KeyError: 'worst_ratio'); "
                                    f"summary.md and records/ are in {run}"]


def test_records_that_cannot_be_read_are_one_note(run: Path, fast_plots: None, capsys: pytest.CaptureFixture) -> None:
    for p in (run / "records").iterdir():
        p.write_bytes(b"\x00garbage")
    conclude(run)
    assert not (run / "summary.md").exists() and not (run / "report.html").exists()
    err = stderr_lines(capsys)
    assert len(err) == 1 and err[0].startswith("conformance: summary.md and report.html not written (")
    assert err[0].endswith(f"); records/ are in {run}")
