"""micrograd, and anything with its ``Value`` API, as an implementation under test.

PyPI ``micrograd`` 0.1.0 (``micrograd.engine.Value``) and the many clones of it share one scalar
API: ``Value(x)``; ``.data`` and ``.grad``; ``+ - * /``; ``**`` with a number; ``relu()``; in
many clones also ``tanh() exp() log() sigmoid()``; and ``.backward()``, which seeds the output's
gradient with 1 and accumulates (``+=``) into every ``.grad`` of the graph.

:class:`MicrogradAdapter` wraps such a module, nothing being assumed from its name:

* **capabilities by probing** — every op of the case format that maps onto the API (table
  ``PROBES``) is tried on a few small numbers and kept only when it runs and gives the right,
  finite, real value (``Value(0.5).tanh().data`` ≈ ``math.tanh(0.5)``). Only the forward is
  probed: a wrong or failing *backward* is what the suite exists to report, so it must never make
  an op silently "unsupported". float64 only, no second order.
* **the cotangent** is applied as ``out * Value(cotangent)`` and ``backward()`` is called on that
  product. Setting ``out.grad = cotangent`` would need the clone's internal per-node backward
  (``_backward``, ``_backward_fn``, …: names differ between clones) because every clone's
  ``backward()`` overwrites the seed with 1; the product works with every clone, and its local
  derivative hands ``out`` exactly ``cotangent · 1``. The value reported is ``out`` itself, not
  the product.
* **fresh Values per case**: micrograd never resets ``.grad``, so nothing is reused.
* **failures are results**: any exception — micrograd's recursive topological sort raising
  ``RecursionError`` on a deep graph, ``ZeroDivisionError`` where IEEE arithmetic gives inf,
  ``OverflowError`` from ``float ** int`` — becomes ``GraphResult(error="Type: message (...)")``,
  which the harness judges ``error``. So is a complex number (``Value(-8.0) ** (1/3)`` in Python).

:func:`load_micrograd` takes a module name (``micrograd``, ``micrograd.engine``) or a path to a
``.py`` file, and finds the ``Value`` class as ``module.Value`` or ``module.engine.Value``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import numbers
import reprlib
import sys
import traceback
from collections.abc import Callable
from importlib.metadata import distribution, packages_distributions
from pathlib import Path
from types import ModuleType
from typing import Any

from conformance.case.graph import GraphCase, GraphResult, Tensor
from conformance.impls import Capabilities
from refimpl import OPS

__all__ = ["APPLY", "PROBES", "MicrogradAdapter", "MicrogradSpecError", "find_value_class", "load_micrograd",
           "probe_ops"]


class MicrogradSpecError(LookupError, ValueError):
    """A spec or module that gives no usable ``Value`` class (one line says why). Both a
    :class:`LookupError` (what ``--impl`` resolution catches) and a :class:`ValueError`."""


def _unary(method: str) -> Callable[[Any, dict[str, Any]], Any]:
    return lambda a, attrs: getattr(a, method)()


#: how each supported op of the case format is expressed with the Value API (a, b: Values)
APPLY: dict[str, Callable[..., Any]] = {
    "add": lambda a, b, attrs: a + b,
    "sub": lambda a, b, attrs: a - b,
    "mul": lambda a, b, attrs: a * b,
    "div": lambda a, b, attrs: a / b,
    "neg": lambda a, attrs: -a,
    "pow_int": lambda a, attrs: a ** int(attrs["exponent"]),
    "pow_scalar": lambda a, attrs: a ** float(attrs["exponent"]),
    "square": lambda a, attrs: a ** 2,
    "reciprocal": lambda a, attrs: a ** -1,
    "relu": _unary("relu"),
    "tanh": _unary("tanh"),
    "exp": _unary("exp"),
    "log": _unary("log"),
    "sigmoid": _unary("sigmoid"),
}


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


#: per op: (inputs, attrs, expected value) — small, exactly representable inputs, both signs
PROBES: dict[str, list[tuple[tuple[float, ...], dict[str, Any], float]]] = {
    "add": [((0.5, 2.0), {}, 2.5), ((-1.25, 0.5), {}, -0.75)],
    "sub": [((0.5, 2.0), {}, -1.5), ((-1.25, -0.5), {}, -0.75)],
    "mul": [((0.5, -3.0), {}, -1.5), ((-1.25, -2.0), {}, 2.5)],
    "div": [((1.5, -4.0), {}, -0.375), ((-3.0, 0.5), {}, -6.0)],
    "neg": [((1.5,), {}, -1.5), ((-0.25,), {}, 0.25)],
    "pow_int": [((-2.0,), {"exponent": 3}, -8.0), ((2.0,), {"exponent": -2}, 0.25)],
    "pow_scalar": [((2.25,), {"exponent": 0.5}, 1.5), ((4.0,), {"exponent": -1.5}, 0.125)],
    "square": [((-3.0,), {}, 9.0), ((0.5,), {}, 0.25)],
    "reciprocal": [((-4.0,), {}, -0.25), ((0.5,), {}, 2.0)],
    "relu": [((-1.0,), {}, 0.0), ((2.0,), {}, 2.0)],
    "tanh": [((0.5,), {}, math.tanh(0.5)), ((-2.0,), {}, math.tanh(-2.0))],
    "exp": [((0.5,), {}, math.exp(0.5)), ((-2.0,), {}, math.exp(-2.0))],
    "log": [((2.0,), {}, math.log(2.0)), ((0.25,), {}, math.log(0.25))],
    "sigmoid": [((0.5,), {}, _sigmoid(0.5)), ((-2.0,), {}, _sigmoid(-2.0))],
}


def _oneline(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


_SHORT = reprlib.Repr()  # attributes, not keywords: Repr(maxstring=…) needs Python 3.12
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist = 40, 60, 4


def _short(x: Any) -> str:
    """``repr(x)``, cut short: a message names what was found without quoting a whole graph."""
    return _SHORT.repr(x)


def _real(x: Any, what: str) -> float:
    """``x`` as a plain float when it is a real number, else a ``TypeError`` naming its type.

    A real number is a :class:`numbers.Real` that is not a ``bool``: Python's ``int`` and ``float``,
    ``fractions.Fraction``, and numpy's integer and floating scalars (registered as ``numbers.Real``).
    Not ``float(x)``, which would take the string ``"0.5"``, nor anything else an engine's bug can
    leave in ``.data`` or ``.grad`` — a str, a list, bytes, None, a complex number, a ``Value`` inside
    the ``Value``. A ``bool`` is a comparison's result (``grad = x > 0``), not a gradient, although it
    is an ``int`` to Python; a correct engine multiplies it into a number before it gets there
    (numpy's ``bool_`` is no ``numbers.Real`` at all)."""
    if isinstance(x, numbers.Real) and not isinstance(x, bool):
        return float(x)
    raise TypeError(f"{what} is a {type(x).__name__} ({_short(x)}), not a real number")


def _plausible(got: float, want: float) -> bool:
    return math.isfinite(got) and abs(got - want) <= 1e-9 * max(1.0, abs(want))


def probe_ops(value_cls: type) -> frozenset[str]:
    """The ops whose forward runs and gives the right finite real value at every probe point."""
    found = set()
    for op, points in PROBES.items():
        try:
            ok = all(_plausible(_real(APPLY[op](*(value_cls(x) for x in xs), OPS[op].attributes(attrs)).data, op),
                                want)
                     for xs, attrs, want in points)
        except Exception:  # a missing method, an assertion, a TypeError: the op is not there
            ok = False
        if ok:
            found.add(op)
    return frozenset(found)


def _value_like(cls: Any) -> str | None:
    """Why ``cls`` is not micrograd's ``Value`` API, or None when it is.

    The API at all, not its correctness: values that ``*`` and ``+`` must get right for anything to
    be judged, and a ``.grad`` attribute after ``backward()``. What that gradient holds — its value,
    or a type that is no real number — is a result of the cases, judged there."""
    if not isinstance(cls, type):
        return f"is a {type(cls).__name__}, not a class"
    try:
        a, b = cls(1.5), cls(2.0)
        if _real(a.data, "Value(1.5).data") != 1.5:
            return f"Value(1.5).data is {a.data!r}"
        out = a * b + cls(0.5)
        if _real(out.data, "the value") != 3.5:
            return f"Value(1.5) * Value(2.0) + Value(0.5) gives {out.data!r}, not 3.5"
        out.backward()
        a.grad  # noqa: B018 — there, whatever it holds
    except Exception as exc:
        return f"Value(1.5) * Value(2.0) + Value(0.5), then .backward(), failed: {_oneline(exc)}"
    return None


def find_value_class(module: Any, label: str | None = None) -> type:
    """``module.Value``, else ``module.engine.Value`` (imported if ``module`` is a package)."""
    label = label or getattr(module, "__name__", repr(module))
    if isinstance(module, type):
        why = _value_like(module)
        if why:
            raise MicrogradSpecError(f"{label}: not a micrograd-like Value class: it {why}")
        return module
    candidates: list[tuple[str, Any]] = []
    if hasattr(module, "Value"):
        candidates.append((f"{label}.Value", module.Value))
    engine = getattr(module, "engine", None)
    if engine is None and hasattr(module, "__path__"):  # a package: its engine submodule
        try:
            engine = importlib.import_module(f"{module.__name__}.engine")
        except ImportError:
            engine = None
    if engine is not None and hasattr(engine, "Value"):
        candidates.append((f"{label}.engine.Value", engine.Value))
    if not candidates:
        raise MicrogradSpecError(f"{label}: no micrograd-like Value class (looked for {label}.Value and "
                                 f"{label}.engine.Value)")
    reasons = []
    for where, cls in candidates:
        why = _value_like(cls)
        if why is None:
            return cls  # type: ignore[no-any-return]
        reasons.append(f"{where} {why}")
    raise MicrogradSpecError(f"{label}: no micrograd-like Value class: {'; '.join(reasons)}")


def _version(module: ModuleType | type) -> str:
    """``__version__`` of the module or its package, else the version of the installed
    distribution that ships the module's file, else "unknown"."""
    mod = sys.modules.get(module.__module__) if isinstance(module, type) else module
    if mod is None:
        return "unknown"
    top = mod.__name__.split(".")[0]
    for m in (mod, sys.modules.get(top)):
        v = getattr(m, "__version__", None)
        if isinstance(v, str) and v:
            return v
    file = getattr(mod, "__file__", None)
    if not file:
        return "unknown"
    try:
        here = Path(file).resolve()
        for name in packages_distributions().get(top, []):
            dist = distribution(name)
            if any(Path(str(dist.locate_file(f))).resolve() == here for f in dist.files or []):
                return str(dist.version)
    except Exception:  # broken metadata is no reason to fail: the version is informative only
        pass
    return "unknown"


def _depth(case: GraphCase) -> int:
    depth = dict.fromkeys(case.leaves, 0)
    for n in case.nodes:
        depth[n.name] = 1 + max((depth.get(i, 0) for i in n.inputs), default=0)
    return depth.get(case.output, 0)


class MicrogradAdapter:
    """An implementation under test built on a micrograd-like ``Value`` class (see the module doc)."""

    def __init__(self, module: Any, name: str | None = None) -> None:
        label = name or getattr(module, "__name__", None) or repr(module)
        self.value_cls = find_value_class(module, label)
        self.name = name or label.split(".")[0]
        self.version = _version(module)
        self.capabilities: Capabilities = self._probe()

    def _probe(self) -> Capabilities:
        return Capabilities(probe_ops(self.value_cls), ("float64",), second_order=False)

    def __repr__(self) -> str:
        return f"MicrogradAdapter({self.name} {self.version}: {', '.join(sorted(self.capabilities.ops))})"

    def _unusable(self, case: GraphCase) -> str | None:
        if case.dtype != "float64":
            return f"ValueError: {self.name} computes in Python floats: dtype {case.dtype} is not supported"
        if case.second_order is not None:
            return f"ValueError: {self.name} has no second order (its gradients are plain numbers)"
        shaped = [f"{k} {list(t.shape)}" for k, t in case.leaves.items() if t.shape != ()]
        if shaped or case.cotangent.shape != ():
            return f"ValueError: {self.name} Values are scalars: non-scalar {', '.join(shaped) or 'cotangent'}"
        missing = sorted({n.op for n in case.nodes} - self.capabilities.ops)
        if missing:
            return f"ValueError: {self.name} does not support {', '.join(missing)}"
        return None

    def run_graph(self, case: GraphCase) -> GraphResult:
        """The case's output and the gradient of ``cotangent · output``; any failure is an error result."""
        why = self._unusable(case)
        if why:
            return GraphResult(error=why)
        V = self.value_cls
        stage = "forward"
        try:
            leaves = {k: V(float(t.values[0])) for k, t in case.leaves.items()}  # fresh: .grad starts at 0
            env: dict[str, Any] = dict(leaves)
            for n in case.nodes:
                env[n.name] = APPLY[n.op](*(env[i] for i in n.inputs), OPS[n.op].attributes(n.attrs))
            out = env[case.output]
            value = _real(out.data, f"the value of {case.output}")
            stage = "backward"
            (out * V(float(case.cotangent.values[0]))).backward()
            grads = {k: Tensor.scalar(_real(v.grad, f"the gradient of {k}")) for k, v in leaves.items()}
        except Exception as exc:  # the implementation under test may raise anything
            return GraphResult(error=self._describe(exc, stage, case))
        return GraphResult(Tensor.scalar(value), grads)

    def _describe(self, exc: Exception, stage: str, case: GraphCase) -> str:
        tb = traceback.extract_tb(exc.__traceback__)
        here = tb and Path(tb[-1].filename).resolve() == Path(__file__).resolve()  # raised by _real()
        where = f", at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb and not here else ""
        extra = ""
        if isinstance(exc, RecursionError):
            extra = f"; graph {_depth(case)} nodes deep, recursion limit {sys.getrecursionlimit()}"
        return f"{_oneline(exc)} (in {stage}{where}{extra})"


def _load_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise MicrogradSpecError(f"no such file {str(path)!r}")
    if path.suffix != ".py":
        raise MicrogradSpecError(f"{str(path)!r} is not a .py file")
    path = path.resolve()
    tag = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    modname = f"_micrograd_under_test_{path.stem}_{tag}"  # the same stem in two places never collides
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise MicrogradSpecError(f"cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module  # some modules (dataclasses, pickling) look themselves up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[modname]
        raise MicrogradSpecError(f"cannot load {str(path)!r}: {_oneline(exc)}") from None
    return module


def load_micrograd(spec: str, name: str | None = None) -> MicrogradAdapter:
    """An adapter for a module name (``micrograd``, ``micrograd.engine``) or a ``.py`` file.

    Every failure is a :class:`MicrogradSpecError` (a ``LookupError`` and a ``ValueError``) with
    one line saying what is wrong."""
    spec = spec.strip()
    if not spec:
        raise MicrogradSpecError("empty micrograd spec: give a module name (micrograd) or a path to a .py file")
    if spec.endswith(".py") or "/" in spec or "\\" in spec or Path(spec).is_file():
        path = Path(spec)
        return MicrogradAdapter(_load_file(path), name or path.stem)
    if not all(part.isidentifier() for part in spec.split(".")):
        raise MicrogradSpecError(f"{spec!r} is neither a module name nor a path to a .py file")
    try:
        module = importlib.import_module(spec)
    except Exception as exc:  # ImportError, or the module failing while it runs
        raise MicrogradSpecError(f"cannot import {spec!r}: {_oneline(exc)}") from None
    return MicrogradAdapter(module, name or spec.split(".")[0])
