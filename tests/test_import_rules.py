"""The import rules hold on the tree, and each check catches its violation when one is planted: an
upward import (the layer contract, .importlinter), a function-level import of the project and a
private name crossing modules (tools/check_imports.py)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_imports  # noqa: E402


def test_the_tree_keeps_the_rules():
    assert check_imports.main([str(ROOT / "conformance"), str(ROOT / "refimpl")]) == 0


@pytest.mark.parametrize("source, message", [
    ("def f():\n    from conformance.driver import draw\n", "function-level import of conformance.driver"),
    ("def f():\n    from . import kinds\n", "function-level import of ."),
    ("def f():\n    import refimpl.engine\n", "function-level import of refimpl.engine"),
    ("from conformance.verdict.graph import _within\n", "private name _within"),
    ("from .graph import _helper\n", "private name _helper"),
])
def test_a_planted_violation_is_caught(tmp_path, source, message, capsys):
    bad = tmp_path / "conformance" / "case" / "planted.py"
    bad.parent.mkdir(parents=True)
    bad.write_text(source)
    assert check_imports.main([str(bad)]) == 1
    assert message in capsys.readouterr().out


def test_heavy_libraries_may_load_in_a_function(tmp_path):
    ok = tmp_path / "fine.py"
    ok.write_text("def f():\n    import torch\n    from matplotlib import pyplot\n")
    assert check_imports.main([str(ok)]) == 0


@pytest.mark.skipif(importlib.util.find_spec("importlinter") is None,
                    reason="import-linter is not installed (the lint extra: ./dev lint installs it)")
def test_the_layer_contract_fails_on_a_planted_upward_import(tmp_path):
    """A copy of the packages with one upward import (the case layer importing the driver)."""
    for name in ("conformance", "refimpl"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    lint = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; "
            "sys.exit(c())"]
    clean = subprocess.run(lint, cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path)})
    assert clean.returncode == 0, clean.stdout + clean.stderr
    graph = tmp_path / "conformance" / "case" / "graph.py"
    graph.write_text(graph.read_text() + "\nfrom conformance.driver import draw  # planted: case imports driver\n")
    broken = subprocess.run(lint, cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path)})
    assert broken.returncode == 1
    assert "conformance.case.graph -> conformance.driver" in broken.stdout
