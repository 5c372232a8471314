"""The report a person reads (conformance/report): summary.md and report.html from a run directory.

The run directories are real: cases judged by conformance.commands.verify with refimpl, the planted tanh
adapter and a training run with one gradient bent, written in the records contract's layout by
tests/report_fixtures.py.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest
from report_fixtures import SCRIPT, make_hostile_run, make_runs

from conformance.case.graph import GraphCase, Node, Tensor, case_to_json
from conformance.report import data, plots, render, write_atomic
from conformance.report.fmt import md
from conformance.report.graphdraw import draw_graph_case
from conformance.report.layout import Edge, place
from conformance.report.netdraw import draw_network_case
from conformance.verdict.outcomes import NONCONFORMING

PNG = b"\x89PNG\r\n\x1a\n"  # what a stubbed plot returns: the tests that stub are not about plots


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reports")
    out = make_runs(root)
    out["hostile"] = make_hostile_run(root)
    return out


@pytest.fixture(scope="module")
def rendered(runs: dict[str, Path]) -> Path:
    render(runs["current"], history=runs["history"], previous=runs["previous"], engine="python")
    return runs["current"]


@pytest.fixture
def fast_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ratio_distribution", "pass_heatmap", "trend"):
        monkeypatch.setattr(plots, name, lambda *a, **k: PNG)


def copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


def section(text: str, title: str) -> str:
    """A Markdown section: from its '## title' heading to the next '## ' heading."""
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 4)
    return text[start:] if end < 0 else text[start:end]


def glance(summary: str) -> dict[str, dict[str, str]]:
    lines = [ln for ln in section(summary, "At a glance").splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    return {r[0].strip("`"): dict(zip(head, r)) for r in rows}


def cases_table(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "records" / "cases.parquet")


# --- what render writes ---------------------------------------------------------------------------------

def test_render_writes_both_files(rendered: Path) -> None:
    summary = (rendered / "summary.md").read_text()
    page = (rendered / "report.html").read_text()
    assert summary.startswith("# Conformance report")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not list(rendered.glob(".*.tmp"))


def test_summary_counts_match_the_records(rendered: Path) -> None:
    df = cases_table(rendered)
    rows = glance((rendered / "summary.md").read_text())
    assert set(rows) == set(df["impl"])
    for impl, mine in df.groupby("impl"):
        row, counts = rows[impl], mine["verdict"].value_counts()
        assert int(row["cases"]) == len(mine)
        for verdict in ("pass", "fail", "convention", "torch-deviates", "nonfinite-mismatch", "error", "timeout"):
            assert int(row[verdict]) == counts.get(verdict, 0), (impl, verdict)
        bad = mine["verdict"].isin(NONCONFORMING).any()
        assert row["verdict"] == ("**DOES NOT CONFORM**" if bad else "**CONFORMS**")
    assert rows["refimpl"]["verdict"] == "**CONFORMS**"
    assert rows["planted-tanh"]["verdict"] == "**DOES NOT CONFORM**"


def test_the_headline_says_what_an_implementation_claims(runs: dict[str, Path], tmp_path: Path,
                                                        fast_plots: None) -> None:
    """refimpl declares float32 accumulation for the half dtypes (its half cases are judged by that
    bound): run.json keeps the claim and the summary and the page say it, per implementation; one
    whose run.json entry claims nothing is not named."""
    said = "bfloat16 reductions accumulated in float32; float16 reductions accumulated in float32"
    run = copy_run(runs["current"], tmp_path)
    meta = json.loads((run / "run.json").read_text())
    claiming = [i["name"] for i in meta["implementations"] if i["claims"]]
    assert "refimpl" in claiming and len(claiming) >= 2
    meta["implementations"][meta["impls"].index(claiming[-1])]["claims"] = {}
    (run / "run.json").write_text(json.dumps(meta))
    render(run, engine="python")
    summary, page = (run / "summary.md").read_text(), (run / "report.html").read_text()
    line = [ln for ln in summary.splitlines() if ln.startswith("Claims the tolerances follow")]
    assert len(line) == 1 and f"`refimpl`: {said}" in line[0]
    assert all(f"`{name}`" in line[0] for name in claiming[:-1]) and f"`{claiming[-1]}`" not in line[0]
    assert page.count(f"claims: {said}") == len(claiming) - 1


def test_summary_lists_the_planted_failure_with_its_reason_and_repro(rendered: Path) -> None:
    summary = (rendered / "summary.md").read_text()
    docs = [json.loads(p.read_text()) for p in sorted((rendered / "failures").glob("*.json"))]
    planted = [d for d in docs if d["impl"] == "planted-tanh"]
    assert planted, "the fixture must hold the planted adapter's minimal failure"
    failures = section(summary, "Failures: minimal cases")
    for d in docs:
        script = f"failures/{d['case']['id']}.py"
        assert (rendered / script).exists()
        block = failures[failures.index(d["case"]["id"]):]
        assert md(d["reason"].splitlines()[0]) in block.split("\n### ")[0]
        assert script in block.split("\n### ")[0]
    assert "grad[x0]" in planted[0]["reason"]  # tanh's derivative is the planted bug


def test_a_case_that_passed_before_is_a_regression_listed_first(rendered: Path, runs: dict[str, Path]) -> None:
    now, before = cases_table(rendered), cases_table(runs["previous"])
    passed = {(i, c) for i, c, v in zip(before["impl"], before["case_id"], before["verdict"]) if v not in NONCONFORMING}
    failing = {(i, c) for i, c, v in zip(now["impl"], now["case_id"], now["verdict"]) if v in NONCONFORMING}
    expected = passed & failing
    assert expected, "the fixture must contain a regression"
    summary = (rendered / "summary.md").read_text()
    regressions = section(summary, "Regressions")
    listed = set(re.findall(r"^- `([^`]+)` · [^`]+ · `([^`]+)`", regressions, re.M))
    assert listed == expected
    assert summary.index("## Regressions") < summary.index("## New failures") < summary.index("## Failures")
    page = (rendered / "report.html").read_text()
    start, end = page.index('<section id="regressions">'), page.index('<section id="failures">')
    for _, case_id in expected:
        assert case_id in page[start:end]
    assert page.index('id="regressions"') < page.index('id="failures"') < page.index('id="plots"')


def test_without_a_previous_run_there_are_no_regressions(runs: dict[str, Path], tmp_path: Path,
                                                          fast_plots: None) -> None:
    run = copy_run(runs["current"], tmp_path)
    render(run, engine="python")
    summary = (run / "summary.md").read_text()
    assert "## Regressions" not in summary and "## Non-conforming cases" in summary


# --- the page -----------------------------------------------------------------------------------------

class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs


def test_everything_from_the_implementation_is_escaped(runs: dict[str, Path]) -> None:
    render(runs["hostile"], engine="python")
    page = (runs["hostile"] / "report.html").read_text()
    parsed = Tags()
    parsed.feed(page)
    assert "script" not in parsed.tags and "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &quot;&amp;&#x27;" in page  # the reason, every character
    assert "hostile&lt;b&gt;&amp;&quot;" in page  # the implementation's name
    assert "&lt;script&gt;alert(&#x27;v&#x27;)&lt;/script&gt;" in page  # its version
    assert 'hostile<b>&"' not in page and "<b>node</b>" not in page
    summary = (runs["hostile"] / "summary.md").read_text()
    assert "<script>" not in summary and SCRIPT not in summary


def test_the_page_is_self_contained(rendered: Path) -> None:
    page = (rendered / "report.html").read_text()
    parsed = Tags()
    parsed.feed(page)
    assert not {"script", "link", "iframe", "object", "embed"} & set(parsed.tags)
    for name, value in parsed.attrs:
        if name in ("src", "href") and value:
            assert not re.match(r"\s*([a-z]+:)?//", value, re.I), value
            assert value.startswith(("data:image/png;base64,", "#", "failures/")), value
    assert "http://" not in page and "https://" not in page and "@import" not in page
    assert page.count("<img") >= 3  # distribution, heat map, trend (the history has two runs)
    assert "<svg" in page  # the failing cases' pictures


def test_without_matplotlib_the_page_says_so(runs: dict[str, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, mod, None)  # import raises ImportError
    run = copy_run(runs["current"], tmp_path)
    render(run, engine="python")
    page = (run / "report.html").read_text()
    assert "matplotlib is not installed" in page and "<img" not in page
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib is not installed" in err[0]


# --- CSV records, atomic writes -------------------------------------------------------------------------

def test_csv_records_give_the_same_summary(runs: dict[str, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, fast_plots: None) -> None:
    run = copy_run(runs["current"], tmp_path / "a")
    before = copy_run(runs["previous"], tmp_path / "a")
    render(run, previous=before, engine="python")
    from_parquet = (run / "summary.md").read_text()
    monkeypatch.setattr(data, "parquet_available", lambda: False)
    for p in [*run.rglob("*.parquet"), *before.rglob("*.parquet")]:
        p.unlink()
    render(run, previous=before, engine="python")
    assert (run / "summary.md").read_text() == from_parquet
    assert "## Regressions" in from_parquet


def test_a_render_that_fails_midway_leaves_the_previous_report(runs: dict[str, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               fast_plots: None) -> None:
    run = copy_run(runs["current"], tmp_path)
    render(run, engine="python")
    old = {n: (run / n).read_bytes() for n in ("summary.md", "report.html")}
    (run / "run.json").write_text(json.dumps({**json.loads((run / "run.json").read_text()), "complete": False}))

    def broken(*a: object, **k: object) -> str:
        raise RuntimeError("the page broke")

    # (a plot that fails only costs the page its plots: tests/test_report_optional.py)
    monkeypatch.setattr("conformance.report.render_page", broken)  # where render() looks it up
    with pytest.raises(RuntimeError, match="the page broke"):
        render(run, engine="python")
    assert {n: (run / n).read_bytes() for n in old} == old
    assert not list(run.glob(".*.tmp"))
    monkeypatch.undo()
    for name in ("ratio_distribution", "pass_heatmap", "trend"):
        monkeypatch.setattr(plots, name, lambda *a, **k: PNG)
    render(run, engine="python")  # the same run renders once the page works: the new state shows
    assert "This run is incomplete" in (run / "summary.md").read_text()


def test_write_atomic_keeps_the_old_file_when_the_rename_fails(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.html"
    write_atomic(target, "old")
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write_atomic(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.html"]


# --- pictures -------------------------------------------------------------------------------------------

CASE = GraphCase({"x": Tensor((2, 2), (0.3, -1.2, 0.7, 2.0)), "w": Tensor((), (0.5,))},
                 (Node("n0", "tanh", ("x",)), Node("n1", "mul", ("n0", "w")), Node("n2", "mul", ("n1", "n1")),
                  Node("n3", "sum", ("n2",), {"dim": None, "keepdim": False})),
                 "n3", Tensor((), (1.0,)), id="g-picture")


def entry(name: str, verdict: str, impl: float = 1.0, torch: float = 2.0) -> dict[str, object]:
    return dict(entry=name, verdict=verdict, implementation=impl, torch=torch, truth=torch, tolerance=1e-15,
                ratio=1e15 if verdict != "pass" else 0.1)


def marked(svg: str) -> dict[str, set[str]]:
    """node name -> the entries marked in its box."""
    root = ET.fromstring(svg)
    out: dict[str, set[str]] = {}
    for g in root.iter("g"):
        if "node" in g.get("class", "").split():
            out[g.get("data-node", "")] = {e.get("data-entry", "") for e in g.iter("g")
                                          if e.get("class") == "bad-entry"}
    return out


def test_graph_picture_is_xml_with_a_box_per_node_marking_exactly_the_disagreeing_entries() -> None:
    entries = [entry("value", "pass"), entry("grad[x][0]", "pass"), entry("grad[x][1]", "fail"),
               entry("grad[x][3]", "torch-deviates"), entry("grad[w]", "pass")]
    svg, note = draw_graph_case(case_to_json(CASE), entries, "t1", engine="python")
    boxes = marked(svg)
    assert note == ""
    assert set(boxes) == {"x", "w", "n0", "n1", "n2", "n3"}
    assert boxes["x"] == {"grad[x][1]", "grad[x][3]"}
    assert all(not v for k, v in boxes.items() if k != "x")
    svg2, _ = draw_graph_case(case_to_json(CASE), [entry("value", "fail")], "t2", engine="python")
    assert marked(svg2)["n3"] == {"value"}
    assert len(ET.fromstring(svg).findall(".//*[@class='edge']")) == 6  # n2 = n1·n1: two edges


def test_the_planted_failures_pictures_mark_their_entries(rendered: Path) -> None:
    for path in sorted((rendered / "failures").glob("*.json")):
        doc = json.loads(path.read_text())
        draw = draw_network_case if doc["kind"] == "network" else draw_graph_case
        svg, _ = draw(doc["case"], doc["entries"], "t", engine="python")
        shown = set().union(*marked(svg).values())
        bad = {e["entry"] for e in doc["entries"] if e["verdict"] != "pass"}
        assert bad and shown == bad, path.name
        if doc["kind"] == "network":
            assert marked(svg)["layer1"] == bad  # the bent gradient is layer1.weight's


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graphviz_draws_the_same_case() -> None:
    svg, _ = draw_graph_case(case_to_json(CASE), [entry("grad[x][1]", "fail")], "t3", engine="dot")
    assert "http://" not in svg and "grad[x][1]" in svg
    ET.fromstring(svg)


def test_layout_of_a_30_node_dag_has_no_overlaps_and_edges_point_down() -> None:
    import random

    rng = random.Random(1)
    nodes = [f"x{i}" for i in range(5)]
    edges = []
    for j in range(30):
        name = f"n{j}"
        for p, src in enumerate(rng.sample(nodes[-8:], 2)):
            edges.append(Edge(src, name, p, 2))
        nodes.append(name)
    size = {n: (80.0 + 7 * (hash(n) % 9), 40.0 + 16 * (len(n) % 3)) for n in nodes}
    placed = place(nodes, edges, size)
    rects = [(x, y, x + size[n][0], y + size[n][1]) for n, (x, y) in placed.boxes.items()]
    for i, a in enumerate(rects):
        assert a[0] >= 0 and a[1] >= 0 and a[2] <= placed.width and a[3] <= placed.height
        for b in rects[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    for e, route in zip(edges, placed.routes):
        assert placed.layers[e.src] < placed.layers[e.dst]
        assert all(p[1] < q[1] for p, q in pairwise(route))


def test_every_listing_of_a_regression_says_so(rendered: Path) -> None:
    page = (rendered / "report.html").read_text()
    table = page[page.index("All non-conforming cases"):page.index('<section id="plots">')]
    rows = re.findall(r'<tr class="nc">(.*?)</tr>', table, re.S)
    bent = [r for r in rows if "bent-net" in r]
    assert len(bent) == 1 and "regression (was pass)" in bent[0]


def test_an_empty_incomplete_run_says_so(tmp_path: Path) -> None:
    run = tmp_path / "r"
    (run / "records").mkdir(parents=True)
    pd.DataFrame(columns=["run_id", "impl", "case_id", "verdict"]).to_csv(run / "records" / "cases.csv", index=False)
    (run / "run.json").write_text(json.dumps({"run_id": "r", "impls": ["x"], "complete": False, "finished": None}))
    render(run, engine="python")
    summary, page = (run / "summary.md").read_text(), (run / "report.html").read_text()
    assert "NO CASES JUDGED" in summary and "This run is incomplete" in summary
    assert "NO CASES JUDGED" in page and "This run is incomplete" in page


def test_ratio_plot_takes_ratios_up_to_the_float_range() -> None:
    """A real nightly run had a case at 4.7e305 × tolerance (autograd) beside 0 and inf: the axis
    limits must stay floats (10**307 as an int broke matplotlib's log axis)."""
    cases = pd.DataFrame({"impl": ["a", "a", "b", "b"], "family": ["f", "f", "f", "g"],
                          "worst_ratio": [0.0, 4.681493e305, float("inf"), 0.3],
                          "verdict": ["pass", "fail", "fail", "pass"]})
    png = plots.ratio_distribution(cases)
    assert png.startswith(b"\x89PNG")
