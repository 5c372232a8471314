"""The import rules the layer contract cannot see, checked on the source (run by ``./dev lint``).

1. No function-level import of the project's own modules. An import inside a function hides a
   dependency from the reader (and, before the contract existed, hid upward imports); it is kept
   only for heavy or optional third-party libraries (torch, matplotlib, the libraries an adapter
   drives), which load when a command needs them. The exceptions are listed in :data:`ALLOWED`,
   each with its reason.
2. No private name imported from another module of the project (``from x import _name``), relative
   imports included (ruff's PLC2701 sees only absolute ones).

Usage: ``python tools/check_imports.py [PATH ...]`` (default: conformance refimpl). Prints one line
per problem, ``path:line: message``; exit 0 when there is none, 1 otherwise.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PROJECT = ("conformance", "refimpl")

#: modules allowed function-level imports of the project, and why
ALLOWED = {
    "conformance/commands/cli.py": "the command line imports a command's module when that command runs: "
                                   "`conformance --help` answers in 0.1 s instead of 0.9 s",
    "conformance/plugin.py": "pytest loads the plugin in every session of the environment (another "
                             "project's too); it imports the suite only when the session runs it",
}


def _target(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        return ["." * node.level + (node.module or "")]
    return [node.module or ""]


def _ours(name: str) -> bool:
    return name.startswith(".") or name.split(".")[0] in PROJECT


def problems(path: Path, rel: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or any(rel.endswith(a) for a in ALLOWED):
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                out += [f"{rel}:{node.lineno}: function-level import of {t} (import it at the top of the module)"
                        for t in _target(node) if _ours(t)]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _ours(_target(node)[0]):
            out += [f"{rel}:{node.lineno}: private name {a.name} imported from {_target(node)[0]}"
                    for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return out


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path(p) for p in PROJECT]
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py") if root.is_dir() else [root]):
            found += problems(path, path.as_posix())
    for line in sorted(set(found)):
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
