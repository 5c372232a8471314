"""Finding the implementation a user names with ``--impl``.

* a registered name: built in (``refimpl``, ``torch``) or from the entry-point group
  ``backprop_conformance.implementations`` (how a third-party package registers its adapter);
* ``module:attribute`` — an adapter class or factory (or an instance) importable from Python;
* ``path/to/adapter.py`` or ``path/to/adapter.py:attribute`` — the same, from a file
  (attribute defaults to ``adapter``);
* ``micrograd:<module or path.py>`` — any module with micrograd's ``Value`` API, by duck typing;
* ``cmd:<command line>`` — any program speaking the JSON Lines protocol (docs/protocol.md).

Any of them but ``cmd:`` runs in this process unless ``isolate`` asks for a worker process
(:mod:`conformance.commands.serve`): then a hang is a ``timeout`` and a crash costs one case, not the run.

A name that cannot be resolved is a :class:`LookupError` with one line saying what to do.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from conformance.impls import Implementation, available, load
from conformance.impls.adapters.jsonl import CommandAdapter
from conformance.impls.adapters.micrograd import load_micrograd

DEFAULT_TIMEOUT = 30.0  # seconds per case, for implementations in their own process


def resolve(spec: str, *, isolate: bool = False, timeout: float | None = None) -> Implementation:
    """The implementation ``spec`` names. ``isolate`` runs a Python one in a worker process
    (``python -m conformance.commands.serve SPEC``); ``timeout`` (seconds per case) needs a process of its
    own — ``cmd:`` or ``isolate`` — since a call in this process cannot be interrupted safely."""
    if spec.startswith("cmd:") or isolate:
        if spec.startswith("cmd:"):
            return CommandAdapter(spec.split(":", 1)[1], timeout=timeout or DEFAULT_TIMEOUT)
        return CommandAdapter([sys.executable, "-m", "conformance.commands.serve", spec],
                              timeout=timeout or DEFAULT_TIMEOUT)
    if timeout is not None:
        raise LookupError(f"a per-case timeout needs the implementation in its own process: add --isolate "
                          f"(or use cmd:) for {spec!r}")
    if spec.startswith("micrograd:"):
        return load_micrograd(spec.split(":", 1)[1])
    if spec in available():
        return load(spec)
    path, _, attr = spec.partition(".py")
    if _ and (attr == "" or attr.startswith(":")):
        return _instantiate(_from_file(Path(path + ".py"), attr[1:] or "adapter"), spec)
    if ":" in spec:
        module, _, attr = spec.partition(":")
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise LookupError(f"cannot import {module!r} for --impl {spec!r}: {exc}") from None
        return _instantiate(_attr(mod, attr, spec), spec)
    raise LookupError(f"unknown implementation {spec!r}; known: {', '.join(sorted(available()))}, "
                      "or module:attribute, path.py[:attribute], micrograd:<module>, cmd:<command line>")


def _from_file(path: Path, attr: str) -> Any:
    if not path.is_file():
        raise LookupError(f"no such file {str(path)!r} (for --impl)")
    spec = importlib.util.spec_from_file_location(f"_conformance_impl_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return _attr(mod, attr, str(path))


def _attr(mod: Any, attr: str, spec: str) -> Any:
    if not hasattr(mod, attr):
        raise LookupError(f"{spec!r}: module {mod.__name__!r} has no attribute {attr!r}")
    return getattr(mod, attr)


def _instantiate(obj: Any, spec: str) -> Implementation:
    impl = obj() if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "run_graph")) else obj
    missing = [a for a in ("name", "capabilities", "run_graph") if not hasattr(impl, a)]
    if missing:
        raise LookupError(f"{spec!r} is not an adapter: it lacks {', '.join(missing)} (see the README's "
                          "adapter protocol)")
    return impl  # type: ignore[no-any-return]
