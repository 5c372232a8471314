"""Finding the implementation a user names with ``--impl``.

* a registered name: built in (``refimpl``, ``torch``) or from the entry-point group
  ``backprop_conformance.implementations`` (how a third-party package registers its adapter);
* ``module:attribute`` — an adapter class or factory (or an instance) importable from Python;
* ``path/to/adapter.py`` or ``path/to/adapter.py:attribute`` — the same, from a file
  (attribute defaults to ``adapter``);
* ``micrograd:<module or path.py>`` — any module with micrograd's ``Value`` API, by duck typing;
* ``cmd:<command line>`` — any program speaking the JSON Lines protocol (docs/protocol.md).

Where it runs (``isolate``):

* **In a worker process by default** — every implementation a user brings: a path, a
  ``module:attribute``, a ``micrograd:`` engine, an entry point registered by another package. The
  worker is ``python -m conformance.commands.serve SPEC`` behind a
  :class:`~conformance.impls.adapters.jsonl.CommandAdapter`: a hang is a ``timeout`` (``timeout``
  seconds per case, default :data:`DEFAULT_TIMEOUT`), a segfault, ``os.abort()`` or ``sys.exit()``
  an ``error`` for that case (a fresh worker takes the next one), and the run always ends with its
  table and report. The cost is one process start and one JSON line each way per case.
* **In this process by default** — this project's own implementations (:func:`ours`): ``refimpl``,
  ``torch`` and the library adapters this project registers (``conformance.impls.adapters``: jax,
  mygrad, autograd, tinygrad). Their code is this project's, tested here; a crash in them is a bug of
  the harness (as one in torch, which always runs in this process, would be). The mutant zoo does not
  come through here and runs in process too (``conformance mutants``).
* ``isolate=True`` puts any of them in a worker; ``isolate=False`` keeps any in this process (to
  debug it with a breakpoint or a profiler), where a crash ends the run; ``conformance verify``
  names the case that was running (:mod:`conformance.commands.verify`). A ``timeout`` asks for a
  worker: with ``isolate=None`` it gets one, with ``isolate=False`` it is a :class:`LookupError`.
* ``cmd:`` is a process of its own whatever ``isolate`` says, except ``isolate=False``: an error.

A name that cannot be resolved is a :class:`LookupError` with one line saying what to do; what can be
checked without running the implementation's code (a registered name, a file, a top-level module) is
checked here, before a worker starts.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from conformance.impls import BUILTIN, Implementation, available, load
from conformance.impls.adapters.jsonl import CommandAdapter, StartError
from conformance.impls.adapters.micrograd import load_micrograd

DEFAULT_TIMEOUT = 30.0  # seconds per case, for implementations in their own process
#: the package holding this project's own adapters: registered names pointing here run in process
OWN_ADAPTERS = "conformance.impls.adapters."
#: what a worker writes to stderr before its one-line reason when it cannot load SPEC (exit code 2)
SERVE_PREFIX = "conformance.commands.serve: "


def ours(spec: str) -> bool:
    """True for this project's own implementations, which run in this process unless asked
    otherwise: the built-ins and the entry points pointing into :data:`OWN_ADAPTERS`."""
    if spec in BUILTIN:
        return True
    found = available().get(spec)
    return found is not None and str(getattr(found, "value", "")).startswith(OWN_ADAPTERS)


def resolve(spec: str, *, isolate: bool | None = None, timeout: float | None = None) -> Implementation:
    """The implementation ``spec`` names, in a worker process or in this one (the module's docstring:
    ``isolate=None`` is the default — a worker for everything but :func:`ours`); ``timeout`` is per
    case, for a worker."""
    if spec.startswith("cmd:"):
        if isolate is False:
            raise LookupError(f"{spec!r} is a program: it always runs in its own process (drop --in-process)")
        return CommandAdapter(spec.split(":", 1)[1], timeout=timeout or DEFAULT_TIMEOUT)
    if isolate is None:
        isolate = timeout is not None or not ours(spec)
    if isolate:
        check(spec)
        return _worker(spec, timeout or DEFAULT_TIMEOUT)
    if timeout is not None:
        raise LookupError(f"a per-case timeout needs the implementation in its own process: drop --in-process "
                          f"for {spec!r}")
    return _in_process(spec)


def check(spec: str) -> None:
    """What can be said against ``spec`` without running its code (no import of the implementation):
    a :class:`LookupError` naming an unknown name, a missing file, a top-level module that is not there."""
    if spec.startswith("micrograd:"):
        target = spec.split(":", 1)[1].strip()
        if target.endswith(".py") and not Path(target).is_file():
            raise LookupError(f"no such file {target!r} (for --impl {spec!r})")
        return
    if spec in available():
        return
    path, dot_py, attr = spec.partition(".py")
    if dot_py and (attr == "" or attr.startswith(":")):
        if not Path(path + ".py").is_file():
            raise LookupError(f"no such file {path + '.py'!r} (for --impl)")
        return
    if ":" in spec:
        module = spec.partition(":")[0]
        top = module.split(".")[0]
        if not all(part.isidentifier() for part in module.split(".")):
            raise LookupError(f"{module!r} is not a module name (for --impl {spec!r})")
        if importlib.util.find_spec(top) is None:
            raise LookupError(f"cannot import {module!r} for --impl {spec!r}: No module named {top!r}")
        return
    raise _unknown(spec)


def _unknown(spec: str) -> LookupError:
    return LookupError(f"unknown implementation {spec!r}; known: {', '.join(sorted(available()))}, "
                       "or module:attribute, path.py[:attribute], micrograd:<module>, cmd:<command line>")


def _worker(spec: str, timeout: float) -> CommandAdapter:
    """``spec`` served by ``python -m conformance.commands.serve`` (the same interpreter). A worker
    that cannot load it exits before the handshake; its one-line reason becomes the LookupError."""
    try:
        return CommandAdapter([sys.executable, "-m", "conformance.commands.serve", spec], timeout=timeout)
    except StartError as exc:
        text = str(exc)
        reason = text.partition(SERVE_PREFIX)[2]
        raise LookupError(reason.split(" | ")[0] if reason else text) from None


def _in_process(spec: str) -> Implementation:
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
    raise _unknown(spec)


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
    runs = ("run_graph", "run_network")
    impl = obj() if isinstance(obj, type) or (callable(obj) and not any(hasattr(obj, r) for r in runs)) else obj
    missing = [a for a in ("name", "capabilities") if not hasattr(impl, a)]
    if not any(hasattr(impl, r) for r in runs):
        missing.append("run_graph or run_network")
    if missing:
        raise LookupError(f"{spec!r} is not an adapter: it lacks {', '.join(missing)} (see the README's "
                          "adapter protocol)")
    return impl  # type: ignore[no-any-return]
