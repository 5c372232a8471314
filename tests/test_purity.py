"""refimpl is standard library only: importing all of it pulls in neither torch nor numpy."""

import ast
import subprocess
import sys
from pathlib import Path

import refimpl

SOURCES = sorted(Path(refimpl.__file__).parent.glob("*.py"))
FORBIDDEN = {"torch", "numpy", "jax", "scipy"}


def test_no_module_of_refimpl_imports_an_array_library():
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_importing_refimpl_loads_no_array_library():
    code = ("import sys, refimpl, refimpl.tensor, refimpl.nn, refimpl.losses, refimpl.optim, "
            "refimpl.textbook, refimpl.gradcheck; "
            f"print(sorted(m for m in {sorted(FORBIDDEN)!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
