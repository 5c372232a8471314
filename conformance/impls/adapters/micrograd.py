"""micrograd, and anything with its ``Value`` API, as an implementation under test.

PyPI ``micrograd`` 0.1.0 (``micrograd.engine.Value``) and the many clones of it share one scalar
API: ``Value(x)``; ``.data`` and ``.grad``; ``+ - * /``; ``**`` with a number; ``relu()``; in
many clones also ``tanh() exp() log() sigmoid()``; and ``.backward()``, which seeds the output's
gradient with 1 and accumulates (``+=``) into every ``.grad`` of the graph.

:class:`MicrogradAdapter` wraps such a module, nothing being assumed from its name:

* **capabilities: what exists, never how well it works** — an op of the case format is supported
  when the class has what expresses it (:func:`op_table`): ``add sub mul div neg`` the special
  methods ``__add__ __sub__ __mul__ __truediv__ __neg__``; ``pow_int pow_scalar square reciprocal``
  ``__pow__``; ``relu tanh exp log sigmoid sqrt sin cos expm1 log1p erf silu`` a method of that name
  callable without arguments; ``abs`` the method ``abs()`` or ``__abs__``; ``leaky_relu elu
  softplus`` a method that takes the case's attributes unambiguously (:func:`_attribute_map`; a
  parameterless ``softplus()`` runs the cases with torch's default attributes only). Nothing is
  run to decide it: a method that is there but raises, gives NaN, a wrong value, or a Value inside
  a Value is that op's ``error`` or ``fail`` in the cases that use it — what the suite exists to
  report — never a silent "unsupported". (Only the whole-class check that this is a Value API at
  all runs the engine, once.) Not mapped: ``pow`` (micrograd's ``**`` takes a number, not a
  Value), ``clamp``, ``gelu``, ``maximum``, ``minimum``. float64 only, no second order.
* **the cotangent is applied by the harness**: ``out.backward()`` seeds the output's gradient with
  1 (every clone's ``backward()`` does, overwriting any seed), and each leaf's gradient is then
  multiplied by the cotangent in plain Python floats — the gradient of ``c · out`` is ``c`` times
  that of ``out``. Not ``(out * Value(c)).backward()``: that runs the cotangent through the
  engine's own ``*``, so one wrong mul′ would spoil every gradient of every suite and hide the
  other bugs. The price: an op's backward that drops its upstream gradient is right when the op
  is the output (its upstream gradient is 1) and is caught only below another node, in the graph
  suites. The generated cotangents are never 0 (``±[0.5, 2]``); a hand-written 0 gives 0 for a
  finite gradient and NaN for an infinite or NaN one, as IEEE ``0 · inf`` does — what a chain rule
  multiplying its upstream gradient gives too. NaN and ±inf otherwise stay what they are.
* **fresh Values per case**: micrograd never resets ``.grad``, so nothing is reused.
* **results are type-checked**: every node's ``.data`` and every leaf's ``.grad`` must be a real
  number (:func:`_real`: an ``int``, ``float`` or numpy scalar, not a ``bool``, str, complex…);
  anything else is an error naming its type and where it was found.
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
import numbers
import reprlib
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import distribution, packages_distributions
from inspect import Parameter, Signature, signature
from pathlib import Path
from types import ModuleType
from typing import Any

from conformance.case.graph import GraphCase, GraphResult, Tensor
from conformance.case.network import NetworkCase, NetworkResult
from conformance.impls import Capabilities
from conformance.impls.adapters.micrograd_nn import find_mlp, run_mlp
from refimpl import OPS

__all__ = ["ATTRIBUTE_OPS", "DEFAULTS_ONLY", "METHODS", "OPERATORS", "MicrogradAdapter", "MicrogradSpecError", "OpMap",
           "find_value_class", "load_micrograd", "op_table", "probe_ops"]


#: Python's recursion limit in a fresh interpreter: what an engine runs under unless it sets its own
DEFAULT_RECURSION_LIMIT = 1000


class MicrogradSpecError(LookupError, ValueError):
    """A spec or module that gives no usable ``Value`` class (one line says why). Both a
    :class:`LookupError` (what ``--impl`` resolution catches) and a :class:`ValueError`."""


#: how an op runs on Values: ``call(a, attrs)`` or ``call(a, b, attrs)``, giving the op's Value
Call = Callable[..., Any]


@dataclass(frozen=True)
class OpMap:
    """How one op of the case format runs on a ``Value`` class.

    ``defaults_only``: the engine's method takes none of the op's attributes, so it runs only the
    cases that use the case format's defaults (see :data:`DEFAULTS_ONLY`)."""

    call: Call
    defaults_only: bool = False


#: ops written with Python's operators, and the special method each needs on the class. ``sub`` asks
#: for ``__sub__`` only: ``self + (-other)``, as micrograd writes it, is the engine's own business
OPERATORS: dict[str, tuple[str, Call]] = {
    "add": ("__add__", lambda a, b, attrs: a + b),
    "sub": ("__sub__", lambda a, b, attrs: a - b),
    "mul": ("__mul__", lambda a, b, attrs: a * b),
    "div": ("__truediv__", lambda a, b, attrs: a / b),
    "neg": ("__neg__", lambda a, attrs: -a),
    "pow_int": ("__pow__", lambda a, attrs: a ** int(attrs["exponent"])),
    "pow_scalar": ("__pow__", lambda a, attrs: a ** float(attrs["exponent"])),
    "square": ("__pow__", lambda a, attrs: a**2),
    "reciprocal": ("__pow__", lambda a, attrs: a**-1),
}

#: ops without attributes that are a method of the same name, called without arguments (``abs``:
#: the method ``abs()``, else ``abs(a)`` through ``__abs__``)
METHODS = ("relu", "tanh", "exp", "log", "sigmoid", "sqrt", "abs", "sin", "cos", "expm1", "log1p", "erf", "silu")

#: ops with attributes that are a method of the same name taking them (see :func:`_attribute_map`)
ATTRIBUTE_OPS = ("leaky_relu", "elu", "softplus")

#: attribute ops that a method without parameters stands for at the case format's defaults only: a
#: ``softplus()`` is torch's default softplus (beta 1; threshold 20, or none — the cases say which).
#: A parameterless ``leaky_relu()`` could have any slope (0.01, 0.1 and 0.2 are all common), an
#: ``elu()`` any alpha, so those are not mapped at all.
DEFAULTS_ONLY = frozenset({"softplus"})

_POSITIONAL = (Parameter.POSITIONAL_ONLY, Parameter.POSITIONAL_OR_KEYWORD)
_NAMED = (Parameter.POSITIONAL_OR_KEYWORD, Parameter.KEYWORD_ONLY)
_ANYTHING = Signature([Parameter("args", Parameter.VAR_POSITIONAL), Parameter("kwargs", Parameter.VAR_KEYWORD)])


def _method_call(name: str) -> Call:
    return lambda a, attrs: getattr(a, name)()


def _keyword_call(name: str, keys: tuple[str, ...]) -> Call:
    return lambda a, attrs: getattr(a, name)(**{k: attrs[k] for k in keys})


def _positional_call(name: str, key: str) -> Call:
    return lambda a, attrs: getattr(a, name)(attrs[key])


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
    (numpy's ``bool_`` is no ``numbers.Real`` at all). A 0-d array of an integer or floating dtype
    (an engine that keeps ``.data`` as ``np.array(x)``) is the number it holds."""
    if isinstance(x, numbers.Real) and not isinstance(x, bool):
        return float(x)
    if getattr(x, "shape", None) == () and getattr(getattr(x, "dtype", None), "kind", "") in ("i", "u", "f"):
        return _real(x.item(), what)
    raise TypeError(f"{what} is a {type(x).__name__} ({_short(x)}), not a real number")


def _signature(value_cls: type, name: str) -> Signature | None:
    """The signature of the method ``name`` as called on a Value (``self`` bound), or None when the
    class has no such method. One whose signature Python cannot read (a C function) gets
    ``(*args, **kwargs)``: it is there, though nothing can be said about its parameters."""
    if not callable(getattr(value_cls, name, None)):
        return None
    try:
        return signature(getattr(value_cls(1.0), name))
    except Exception:  # ValueError/TypeError from signature(), or anything from the class itself
        return _ANYTHING


def _binds(sig: Signature, *args: Any, **kwargs: Any) -> bool:
    try:
        sig.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def _method_map(value_cls: type, op: str) -> OpMap | None:
    """``a.op()`` when the class has a method ``op`` callable without arguments (``abs``: else
    ``abs(a)`` when it has ``__abs__``)."""
    sig = _signature(value_cls, op)
    if sig is not None and _binds(sig):
        return OpMap(_method_call(op))
    if op == "abs" and callable(getattr(value_cls, "__abs__", None)):
        return OpMap(lambda a, attrs: abs(a))
    return None


def _attribute_map(value_cls: type, op: str) -> OpMap | None:
    """How the method ``op`` takes the op's attributes, when that is unambiguous:

    * every attribute is a parameter of that name (torch's: ``softplus(beta, threshold)``): by keyword;
    * the op has one attribute and the method one positional parameter, whatever its name
      (``leaky_relu(self, alpha=0.01)``: the one number it takes is the slope): positionally;
    * the method takes nothing and the op is in :data:`DEFAULTS_ONLY`: at the defaults only.

    Anything else (two parameters of other names, only ``**kwargs``) is not mapped: a slope passed
    where the engine expects something else would be a verdict on our guess, not on the engine."""
    sig = _signature(value_cls, op)
    if sig is None:
        return None
    keys = tuple(OPS[op].attrs)
    params = list(sig.parameters.values())
    named = {p.name for p in params if p.kind in _NAMED}
    if set(keys) <= named and _binds(sig, **dict.fromkeys(keys, 1.0)):
        return OpMap(_keyword_call(op, keys))
    if len(keys) == 1 and len(params) == 1 and params[0].kind in _POSITIONAL:
        return OpMap(_positional_call(op, keys[0]))
    if not params and op in DEFAULTS_ONLY:
        return OpMap(_method_call(op), defaults_only=True)
    return None


def op_table(value_cls: type) -> dict[str, OpMap]:
    """Every op of the case format the class has a way to express, and that way.

    What *exists*, never how well it works: nothing of the engine is run here (beyond making one
    Value to read bound signatures from). A method that is there but raises, gives NaN, a wrong
    value or something that is no number is that op's ``error`` or ``fail`` in the cases that use
    it — which is what the suite reports — not a silent "unsupported"."""
    table = {op: OpMap(call) for op, (special, call) in OPERATORS.items()
             if callable(getattr(value_cls, special, None))}
    for op in METHODS:
        table.update({op: m} if (m := _method_map(value_cls, op)) else {})
    for op in ATTRIBUTE_OPS:
        table.update({op: m} if (m := _attribute_map(value_cls, op)) else {})
    return table


def probe_ops(value_cls: type) -> frozenset[str]:
    """The ops the class supports with any attributes: :func:`op_table` less the defaults-only ones."""
    return frozenset(op for op, m in op_table(value_cls).items() if not m.defaults_only)


def _data(v: Any, what: str) -> float:
    """The real number the Value ``v`` holds; a ``TypeError`` naming what was found instead (an op
    that returns a float, or a Value whose ``.data`` is a Value)."""
    if not hasattr(v, "data"):
        raise TypeError(f"{what} is a {type(v).__name__} ({_short(v)}), not a Value with .data")
    return _real(v.data, f"the value of {what}")


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

    def __init__(self, module: Any, name: str | None = None, recursion_limit: int = DEFAULT_RECURSION_LIMIT) -> None:
        self.recursion_limit = recursion_limit  # see run_graph
        label = name or getattr(module, "__name__", None) or repr(module)
        self.value_cls = find_value_class(module, label)
        self.name = name or label.split(".")[0]
        self.version = _version(module)
        self.table = op_table(self.value_cls)
        self.mlp, self.mlp_note = find_mlp(module)  # micrograd's nn, if the module has it
        self.capabilities: Capabilities = self._probe()

    def _probe(self) -> Capabilities:
        """The ops that run with any attributes; a defaults-only op is left out, since the suites
        draw other attributes, and runs only in the cases that give it the defaults. Training runs
        where the module has micrograd's ``nn`` (:mod:`conformance.impls.adapters.micrograd_nn`):
        plain SGD and gradients-only runs, MSE (mean, sum), layers with bias, its own activations."""
        ops = frozenset(op for op, m in self.table.items() if not m.defaults_only)
        if self.mlp is None:
            return Capabilities(ops, ("float64",), second_order=False)
        return Capabilities(ops, ("float64",), second_order=False, networks=True,
                            activations=frozenset({self.mlp.hidden}), output_activations=frozenset({self.mlp.output}),
                            optimizers={"sgd": ["lr"], "none": []}, losses={"mse": ["mean", "sum"]},
                            bias=frozenset({True}))

    def run_network(self, case: NetworkCase) -> NetworkResult:
        """A training run through the module's MLP (micrograd_nn.run_mlp), under the engine's own
        recursion limit (see :meth:`run_graph`); any failure is an error result."""
        if self.mlp is None:
            return NetworkResult(error=f"ValueError: {self.name} has no micrograd nn: {self.mlp_note}")
        with self._own_recursion_limit():
            try:
                return run_mlp(self.mlp, case)
            except Exception as exc:  # the implementation under test may raise anything
                tb = traceback.extract_tb(exc.__traceback__)
                where = f", at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
                return NetworkResult(error=f"{_oneline(exc)} (in a training run{where})")

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
        missing = sorted({n.op for n in case.nodes} - set(self.table))
        if missing:
            return f"ValueError: {self.name} does not support {', '.join(missing)}"
        return self._off_defaults(case)

    def _off_defaults(self, case: GraphCase) -> str | None:
        """Why a defaults-only op cannot run this case: a node gives it other attributes."""
        for n in case.nodes:
            defaults = OPS[n.op].attrs
            if self.table[n.op].defaults_only and {**defaults, **n.attrs} != defaults:
                given = ", ".join(f"{k}={v!r}" for k, v in n.attrs.items())
                return (f"ValueError: {self.name}'s {n.op}() takes no attributes: it runs {n.op} with the defaults "
                        f"{', '.join(f'{k}={v!r}' for k, v in defaults.items())} only, not {given}")
        return None

    def run_graph(self, case: GraphCase) -> GraphResult:
        """:meth:`judged_run` under the recursion limit the engine's own module set, else Python's
        default (1,000): what ``python engine.py`` would have. Not the harness's, which a library
        imported before (tinygrad raises it to 10,000 for good) may have changed — a recursive
        topological sort would then pass a 2,000-node chain in one run and fail it in the next."""
        with self._own_recursion_limit():
            return self.judged_run(case)

    @contextmanager
    def _own_recursion_limit(self) -> Iterator[None]:
        """The engine's recursion limit while it runs (see :meth:`run_graph`), the harness's after."""
        outside = sys.getrecursionlimit()
        try:
            sys.setrecursionlimit(self.recursion_limit)
        except RecursionError:  # already deeper than that: keep the harness's own limit
            pass
        try:
            yield
        finally:
            sys.setrecursionlimit(outside)

    def judged_run(self, case: GraphCase) -> GraphResult:
        """The case's output and the gradient of ``cotangent · output`` (the engine's gradient of the
        output, times the cotangent); any failure is an error result."""
        why = self._unusable(case)
        if why:
            return GraphResult(error=why)
        V = self.value_cls
        stage = "forward"
        try:
            leaves = {k: V(float(t.values[0])) for k, t in case.leaves.items()}  # fresh: .grad starts at 0
            env: dict[str, Any] = dict(leaves)
            for n in case.nodes:
                env[n.name] = self.table[n.op].call(*(env[i] for i in n.inputs), OPS[n.op].attributes(n.attrs))
                _data(env[n.name], f"{n.name} ({n.op})")  # the first node that holds no number is named
            out = env[case.output]
            value = _data(out, case.output)
            stage = "backward"
            out.backward()  # seeds 1; the cotangent is ours to apply (see the module doc)
            ct = float(case.cotangent.values[0])
            grads = {k: Tensor.scalar(_real(v.grad, f"the gradient of {k}") * ct) for k, v in leaves.items()}
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
    """The ``.py`` file run as a module of its own name (one per path, so that two files of the same
    name never collide), with its folder first on ``sys.path``, as ``python path.py`` would have it:
    ``from engine import Value`` in ``main.py`` finds the ``engine.py`` beside it.

    The folder stays on ``sys.path`` after a successful load, because siblings may be imported
    later, inside a method a case calls first; a failed load takes it off again. Siblings are
    imported under their own names (``engine``), so they are cached in ``sys.modules``: two engines
    each with its own ``engine.py``, loaded in one process, share the first one — run them in
    separate processes."""
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
    added = _put_first_on_path(str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[modname]
        if added:
            sys.path.remove(str(path.parent))  # the first occurrence: the one put there
        raise MicrogradSpecError(f"cannot load {str(path)!r}: {_oneline(exc)}") from None
    return module


@contextmanager
def _limit_set_by(loading: list[int]) -> Iterator[None]:
    """Note in ``loading`` the recursion limit the module loaded inside sets (Python's default when
    it sets none), and give the harness its own back."""
    before = sys.getrecursionlimit()
    try:
        yield
    finally:
        after = sys.getrecursionlimit()
        loading.append(after if after != before else DEFAULT_RECURSION_LIMIT)
        sys.setrecursionlimit(before)


def _put_first_on_path(folder: str) -> bool:
    """Put ``folder`` first on ``sys.path`` unless it is already first; whether it was put there."""
    if sys.path and sys.path[0] == folder:
        return False
    sys.path.insert(0, folder)
    return True


def load_micrograd(spec: str, name: str | None = None) -> MicrogradAdapter:
    """An adapter for a module name (``micrograd``, ``micrograd.engine``) or a ``.py`` file.

    Every failure is a :class:`MicrogradSpecError` (a ``LookupError`` and a ``ValueError``) with
    one line saying what is wrong."""
    spec = spec.strip()
    if not spec:
        raise MicrogradSpecError("empty micrograd spec: give a module name (micrograd) or a path to a .py file")
    if spec.endswith(".py") or "/" in spec or "\\" in spec or Path(spec).is_file():
        path = Path(spec)
        limit: list[int] = []
        with _limit_set_by(limit):
            module = _load_file(path)
        return MicrogradAdapter(module, name or path.stem, limit[0])
    if not all(part.isidentifier() for part in spec.split(".")):
        raise MicrogradSpecError(f"{spec!r} is neither a module name nor a path to a .py file")
    limit: list[int] = []
    try:
        with _limit_set_by(limit):
            module = importlib.import_module(spec)
    except Exception as exc:  # ImportError, or the module failing while it runs
        raise MicrogradSpecError(f"cannot import {spec!r}: {_oneline(exc)}") from None
    return MicrogradAdapter(module, name or spec.split(".")[0], limit[0])
