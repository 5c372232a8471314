"""The op table: every elementwise op declared once.

Each :class:`OpSpec` holds, side by side, the op's forward and its local derivative — both written
against a namespace ``m`` (see :mod:`refimpl.numbers`) and the operators ``+ - *``, so the same
lines run in binary64, float32 emulation, mpmath, exact rationals, and as graph-building code for
second-order gradients — and, as plain data, its torch equivalent (a dotted *name*: refimpl never
imports torch), the domain where it is differentiable, and its value at every kink.

``forward(m, *inputs, **attrs)`` returns the value; ``derivative(m, *inputs, out, **attrs)``
returns the tuple of partials ∂out/∂inputᵢ. The kink conventions are torch 2.13's, checked
against torch in ``tests/test_ops_vs_torch.py`` and written down in ``docs/conventions.md``.

Division by a quantity that may be zero goes through ``m.div`` (IEEE in floats); division by a
non-zero constant may use ``/``. Comparisons at kinks use ``m.val(x)``, the plain number behind
``x`` when ``x`` is a graph node.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable

INF = math.inf


@dataclass(frozen=True)
class Interval:
    """A set of reals ``lo < x < hi`` (or ``<=`` where closed), minus the points in ``exclude``."""

    lo: float = -INF
    hi: float = INF
    lo_closed: bool = False
    hi_closed: bool = False
    exclude: tuple[float, ...] = ()

    def __contains__(self, x: Any) -> bool:
        x = float(x)
        above = x >= self.lo if self.lo_closed else x > self.lo
        below = x <= self.hi if self.hi_closed else x < self.hi
        return above and below and x not in self.exclude

    def __str__(self) -> str:
        s = f"{'[' if self.lo_closed else '('}{self.lo}, {self.hi}{']' if self.hi_closed else ')'}"
        return s + (f" \\ {set(self.exclude)}" if self.exclude else "")


REALS = Interval()
POSITIVE = Interval(0.0, INF)
NONZERO = Interval(exclude=(0.0,))


@dataclass(frozen=True)
class Kink:
    """A point where the op is not differentiable, and the derivative torch 2.13 uses there.

    ``at`` is a number, the name of an attribute (``"min"``), ``"threshold/beta"`` or ``"tie"``
    (the two inputs equal). ``derivative`` lists the partials used there, each a number, the name
    of an attribute, or ``"formula"``: the smooth branch's derivative evaluated at the point.
    """

    at: float | str
    derivative: tuple[float | str, ...]
    note: str


@dataclass(frozen=True)
class OpSpec:
    """One op: its maths, its torch name, its domain and its conventions."""

    name: str
    arity: int
    forward: Callable[..., Any]
    derivative: Callable[..., tuple[Any, ...]]
    torch: str
    domain: tuple[Interval, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    attr_domain: dict[str, Interval] = field(default_factory=dict)
    kinks: tuple[Kink, ...] = ()
    note: str = ""
    family: str = ""  # the section of this table it is declared in: reports group ops by it
    # torch's backward *selects* (where/masked_fill) instead of multiplying: where the local
    # derivative is 0 nothing flows, not even an infinite or NaN upstream gradient (0·inf is NaN)
    selects: bool = False
    # Where torch divides the cotangent instead of multiplying it by a reciprocal partial (log: g/x),
    # ``vjp(m, g, *inputs, out, **attrs)`` gives the products g·∂out/∂inputᵢ in that order: 1/x alone
    # overflows for a subnormal x where g/x is finite. ``derivative`` still states the partials.
    vjp: Callable[..., tuple[Any, ...]] | None = None

    def attributes(self, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``given``; an unknown attribute is a clear error."""
        if not given:
            return self.attrs
        unknown = set(given) - set(self.attrs)
        if unknown:
            raise TypeError(f"{self.name}() got unknown attribute(s) {sorted(unknown)}; "
                            f"it takes {sorted(self.attrs) or 'none'}")
        return {**self.attrs, **given}


OPS: dict[str, OpSpec] = {}
_family = ""


def family(name: str) -> None:
    """Start a section of the table: the ops declared next belong to family ``name``."""
    global _family
    _family = name


def op(name: str, arity: int, forward: Callable[..., Any], derivative: Callable[..., tuple[Any, ...]],
       torch: str, domain: tuple[Interval, ...] | None = None, **kw: Any) -> OpSpec:
    assert arity in (1, 2), "the engine's backward handles unary and binary ops"
    spec = OpSpec(name, arity, forward, derivative, torch, domain or (REALS,) * arity, **kw, family=_family)
    OPS[name] = spec
    return spec


def _sign(m: Any, x: Any) -> Any:
    v = m.val(x)
    return m.one if v > 0 else (-m.one if v < 0 else m.zero)


# --- arithmetic -----------------------------------------------------------------------------------
family("arithmetic")
op("neg", 1, lambda m, x: -x,
   lambda m, x, out: (-m.one,), "torch.neg")
op("add", 2, lambda m, a, b: a + b,
   lambda m, a, b, out: (m.one, m.one), "torch.add")
op("sub", 2, lambda m, a, b: a - b,
   lambda m, a, b, out: (m.one, -m.one), "torch.sub")
op("mul", 2, lambda m, a, b: a * b,
   lambda m, a, b, out: (b, a), "torch.mul")
op("div", 2, lambda m, a, b: m.div(a, b),
   lambda m, a, b, out: (m.div(m.one, b), -m.div(out, b)), "torch.div",
   domain=(REALS, NONZERO), vjp=lambda m, g, a, b, out: (m.div(g, b), g * -m.div(out, b)))
op("pow", 2, lambda m, a, b: m.pow(a, b),
   lambda m, a, b, out: (m.zero if m.val(b) == 0 else b * m.pow(a, b - 1), out * m.log(a)), "torch.pow",
   domain=(POSITIVE, REALS), note="differentiable exponent; base > 0 so that log(base) exists; ∂/∂base is 0 "
   "where the exponent is 0, as torch's pow_backward_self (b·a^(b−1) would be 0·inf for a tiny base)")
op("pow_scalar", 1, lambda m, x, exponent: m.pow(x, exponent),
   lambda m, x, out, exponent: (m.zero if exponent == 0 else exponent * m.pow(x, exponent - 1),),
   "torch.pow", domain=(POSITIVE,), attrs={"exponent": 2.0},
   note="constant real exponent on base > 0; x**0 has derivative 0 everywhere, as in torch")
op("pow_int", 1, lambda m, x, exponent: m.pow(x, exponent),
   lambda m, x, out, exponent: (m.zero if exponent == 0 else exponent * m.pow(x, exponent - 1),),
   "torch.pow", attrs={"exponent": 2},
   note="constant integer exponent on any base (base != 0 when the exponent is negative)")
op("square", 1, lambda m, x: x * x,
   lambda m, x, out: (2 * x,), "torch.square")
op("reciprocal", 1, lambda m, x: m.div(m.one, x),
   lambda m, x, out: (-(out * out),), "torch.reciprocal", domain=(NONZERO,))
op("abs", 1, lambda m, x: abs(x),  # IEEE fabs: abs(-0.0) is +0.0, as torch (x >= 0 kept -0.0)
   lambda m, x, out: (_sign(m, x),), "torch.abs",
   kinks=(Kink(0.0, (0.0,), "abs'(0) = sign(0) = 0"),))

# --- exponentials and logarithms -----------------------------------------------------------------
family("exp-log")
op("exp", 1, lambda m, x: m.exp(x),
   lambda m, x, out: (out,), "torch.exp")
op("expm1", 1, lambda m, x: m.expm1(x),
   lambda m, x, out: (out + 1,), "torch.expm1")
op("log", 1, lambda m, x: m.log(x),
   lambda m, x, out: (m.div(m.one, x),), "torch.log", domain=(POSITIVE,),
   vjp=lambda m, g, x, out: (m.div(g, x),))
op("log1p", 1, lambda m, x: m.log1p(x),
   lambda m, x, out: (m.div(m.one, 1 + x),), "torch.log1p", domain=(Interval(-1.0, INF),))
op("sqrt", 1, lambda m, x: m.sqrt(x),
   lambda m, x, out: (m.div(m.one, 2 * out),), "torch.sqrt", domain=(POSITIVE,),
   note="sqrt'(0) = inf, as in torch; 0 is outside the differentiable domain")

# --- trigonometric and sigmoidal ------------------------------------------------------------------
family("trig-sigmoid")
op("sin", 1, lambda m, x: m.sin(x),
   lambda m, x, out: (m.cos(x),), "torch.sin")
op("cos", 1, lambda m, x: m.cos(x),
   lambda m, x, out: (-m.sin(x),), "torch.cos")
op("tanh", 1, lambda m, x: m.tanh(x),
   lambda m, x, out: (1 - out * out,), "torch.tanh")
op("sigmoid", 1, lambda m, x: m.sigmoid(x),
   lambda m, x, out: (out * (1 - out),), "torch.sigmoid")
op("erf", 1, lambda m, x: m.erf(x),
   lambda m, x, out: (m.div(2 * m.one, m.sqrt(m.pi)) * m.exp(-(x * x)),), "torch.erf")

# --- activations ---------------------------------------------------------------------------------
family("activation")
op("relu", 1, lambda m, x: m.zero if m.val(x) < 0 else x,  # relu(-0.0) is -0.0, as torch
   lambda m, x, out: (m.zero if m.val(x) <= 0 else m.one,), "torch.relu",
   kinks=(Kink(0.0, (0.0,), "relu'(0) = 0: torch passes the gradient only where x > 0"),), selects=True)
op("leaky_relu", 1, lambda m, x, negative_slope: x if m.val(x) > 0 else x * negative_slope,
   lambda m, x, out, negative_slope: (m.one if m.val(x) > 0 else negative_slope,),
   "torch.nn.functional.leaky_relu", attrs={"negative_slope": 0.01},
   kinks=(Kink(0.0, ("negative_slope",), "leaky_relu'(0) = negative_slope (x > 0 is the linear side)"),))
op("elu", 1, lambda m, x, alpha: x if m.val(x) > 0 else alpha * m.expm1(x),
   lambda m, x, out, alpha: (m.one if m.val(x) > 0 else alpha * m.exp(x),),
   "torch.nn.functional.elu", attrs={"alpha": 1.0},
   kinks=(Kink(0.0, ("alpha",), "elu'(0) = alpha·exp(0) = alpha (x <= 0 is the exponential side)"),),
   note="differentiable at 0 only when alpha = 1")
op("softplus", 1,
   lambda m, x, beta, threshold:
       x if m.val(x) * beta > threshold else m.div(m.log1p(m.exp(x * beta)), beta),
   lambda m, x, out, beta, threshold:
       (m.one if m.val(x) * beta > threshold else m.sigmoid(x * beta),),
   "torch.nn.functional.softplus", attrs={"beta": 1.0, "threshold": 20.0},
   attr_domain={"beta": POSITIVE, "threshold": POSITIVE},
   kinks=(Kink("threshold/beta", ("formula",),
               "linear (derivative 1) only where x·beta > threshold; at equality the formula holds"),),
   note="reverts to the identity above threshold/beta: a (tiny) jump torch accepts by design")
op("silu", 1, lambda m, x: x * m.sigmoid(x),
   lambda m, x, out: (m.sigmoid(x) * (1 + x * (1 - m.sigmoid(x))),), "torch.nn.functional.silu")


def _gelu(m: Any, x: Any, approximate: str) -> Any:
    if approximate == "tanh":
        inner = m.sqrt(2 * m.one / m.pi) * (x + m.convert(0.044715) * x * x * x)
        return x * (1 + m.tanh(inner)) / 2
    return x * (1 + m.erf(x * m.sqrt(m.one / 2))) / 2


def _gelu_derivative(m: Any, x: Any, out: Any, approximate: str) -> tuple[Any]:
    if approximate == "tanh":
        k, kappa = m.sqrt(2 * m.one / m.pi), m.convert(0.044715)
        t = m.tanh(k * (x + kappa * x * x * x))
        return ((1 + t) / 2 + x * (1 - t * t) * k * (1 + 3 * kappa * x * x) / 2,)
    cdf = (1 + m.erf(x * m.sqrt(m.one / 2))) / 2
    pdf = m.exp(-(x * x) / 2) / m.sqrt(2 * m.pi)
    return (cdf + x * pdf,)


op("gelu", 1, _gelu, _gelu_derivative, "torch.nn.functional.gelu", attrs={"approximate": "none"},
   note="approximate='none' is x·Φ(x) with erf; 'tanh' is the tanh approximation, both as torch")

# --- piecewise selection ---------------------------------------------------------------------------
family("piecewise")
op("clamp", 1,
   lambda m, x, min, max: _clamp(m, x, min, max),
   lambda m, x, out, min, max: (m.one if _inside(m.val(x), min, max) else m.zero,),
   "torch.clamp", attrs={"min": None, "max": None},
   kinks=(Kink("min", (1.0,), "at x == min the gradient passes (torch masks x >= min)"),
          Kink("max", (1.0,), "at x == max the gradient passes (torch masks x <= max)")), selects=True,
   note="min > max gives max everywhere with gradient 0, as torch")


def _clamp(m: Any, x: Any, lo: Any, hi: Any) -> Any:
    if lo is not None and m.val(x) < lo:
        x = lo
    if hi is not None and m.val(x) > hi:
        x = hi
    return x


def _inside(v: Any, lo: Any, hi: Any) -> bool:
    return (lo is None or v >= lo) and (hi is None or v <= hi)


def _pick(m: Any, a: Any, b: Any, a_wins: bool) -> tuple[Any, Any]:
    va, vb = m.val(a), m.val(b)
    if va == vb:
        return (m.one / 2, m.one / 2)
    return (m.one, m.zero) if a_wins else (m.zero, m.one)


op("maximum", 2, lambda m, a, b: a if (m.val(a) != m.val(a) or m.val(a) > m.val(b)) else b,
   lambda m, a, b, out: _pick(m, a, b, m.val(a) > m.val(b)), "torch.maximum",
   kinks=(Kink("tie", (0.5, 0.5), "at a == b the gradient is split evenly"),), selects=True)
op("minimum", 2, lambda m, a, b: a if (m.val(a) != m.val(a) or m.val(a) < m.val(b)) else b,
   lambda m, a, b, out: _pick(m, a, b, m.val(a) < m.val(b)), "torch.minimum",
   kinks=(Kink("tie", (0.5, 0.5), "at a == b the gradient is split evenly"),), selects=True)

UNARY = tuple(s for s in OPS.values() if s.arity == 1)
BINARY = tuple(s for s in OPS.values() if s.arity == 2)


# --- one-sided derivatives at a kink ----------------------------------------------------------------

NUDGE_ULPS = 16  # far above one rounding (x·beta against softplus's threshold), far below any other branch


class OneSided:
    """The number system ``m`` seen from one side of a point. Every op decides its branches through
    ``m.val`` (see the module docstring); here ``m.val`` of the input ``moved`` returns its value
    moved by ``NUDGE_ULPS`` ulps towards ``side`` (−1: left, +1: right), while every formula still
    computes at the point itself. So ``spec.derivative(OneSided(m, -1, x), x, out)`` is the op's
    derivative just left of ``x``, evaluated at ``x`` — a number, or on a graph namespace a graph
    (elu's left side at 0 is α·exp(x), whose own derivative a Hessian-vector product needs).
    Nothing is declared per op: the one-sided derivatives at a kink are the op's own branches."""

    def __init__(self, m: Any, side: int, moved: Any) -> None:
        self._m, self._side, self._moved = m, side, moved

    def __getattr__(self, name: str) -> Any:
        return getattr(self._m, name)

    def val(self, x: Any) -> Any:
        v = self._m.val(x)
        if x is not self._moved:
            return v
        f = float(v)
        return f + self._side * NUDGE_ULPS * math.ulp(f)


class _Moved(float):
    """A float that is not the same object as an equal one (so that only it is moved)."""


def one_sided(spec: OpSpec, side: int, arg: int = 0) -> Callable[..., tuple[Any, ...]]:
    """``spec``'s derivative with input ``arg`` seen just to one ``side`` of where it is (−1 left, +1
    right): the same signature as ``spec.derivative``. For a tie of maximum, ``one_sided(max, +1)``
    is the derivative where a is just above b, (1, 0)."""

    def derivative(m: Any, *args: Any, **attrs: Any) -> tuple[Any, ...]:
        inputs = list(args[:spec.arity])
        moved = inputs[arg]
        if any(moved is y for j, y in enumerate(args) if j != arg):  # maximum(a, a) given one object twice
            moved = inputs[arg] = _Moved(moved) if isinstance(moved, float) else copy.copy(moved)
        return spec.derivative(OneSided(m, side, moved), *inputs, *args[spec.arity:], **attrs)

    return derivative
