"""Number systems: the arithmetic a graph is evaluated in.

The engine never touches ``math`` directly. Every op's forward and local derivative is written
against a small namespace ``m`` (``m.exp``, ``m.div``, ``m.val`` …) plus the Python operators
``+ - *``, so one declaration serves binary64, binary32 emulation, mpmath at any precision and
exact rationals — and, in :mod:`refimpl.engine`, the graph namespace that builds a gradient as a
differentiable graph. :data:`INTERFACE` names everything a number system provides; the functions
among it (``m.exp`` … ``m.pow``) are declared once, in :data:`PRIMITIVES`: each with its binary64
function and its derivative, which the float systems use as they are and
:class:`conformance.tolerance.bounds.BoundNS` lifts to error bounds.

The float namespaces follow IEEE 754 rather than Python: ``exp(1000)`` is ``inf``, ``1/0`` is
``inf``, ``log(0)`` is ``-inf`` and ``log(-1)`` is ``nan``, as in torch. The mathematical domain of
each op is data in :mod:`refimpl.ops`; what happens outside it is the hardware's answer, not an
exception.
"""

from __future__ import annotations

import math
import operator
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable

Number = Any  # float, mpmath.mpf or fractions.Fraction, depending on the system

INF = math.inf
NAN = math.nan


class NotRepresentable(ArithmeticError):
    """An op has no exact value in this number system (e.g. ``exp`` over the rationals)."""


def _ieee(fn: Callable[[float], float], overflow: Callable[[float], float]) -> Callable[[float], float]:
    """Wrap a ``math`` function so overflow gives IEEE infinities and domain errors NaN."""

    def wrapped(x: float) -> float:
        try:
            return fn(x)
        except OverflowError:
            return overflow(x)
        except ValueError:
            return NAN

    wrapped.__name__ = fn.__name__
    return wrapped


def _f64_div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0.0:
            return NAN
        return math.copysign(INF, a) * math.copysign(1.0, b)


def _f64_log(x: float) -> float:
    if x == 0.0:
        return -INF
    if x < 0.0 or x != x:
        return NAN
    return INF if x == INF else math.log(x)


def _f64_log1p(x: float) -> float:
    if x == -1.0:
        return -INF
    if x < -1.0 or x != x:
        return NAN
    return INF if x == INF else math.log1p(x)


def _f64_sqrt(x: float) -> float:
    return NAN if x < 0.0 or x != x else math.sqrt(x)


def _f64_pow(a: float, b: float) -> float:
    """IEEE ``pow``: negative base with a non-integer exponent is NaN, 0 to a negative power inf."""
    try:
        r = math.pow(a, b)
    except OverflowError:
        neg = a < 0 and float(b).is_integer() and int(b) % 2 == 1
        return -INF if neg else INF
    except ValueError:  # 0 ** negative, or negative ** fractional
        if a == 0.0:
            odd = float(b).is_integer() and int(b) % 2 == 1
            return math.copysign(INF, a) if odd else INF
        return NAN
    return r


def _f64_tanh(x: float) -> float:
    return math.tanh(x)


def _f64_sigmoid(x: float) -> float:
    """Logistic function computed without overflow on either side."""
    if x >= 0:
        return 1.0 / (1.0 + _f64_exp(-x))
    e = _f64_exp(x)
    return e / (1.0 + e)


_f64_exp = _ieee(math.exp, lambda x: INF)
_f64_expm1 = _ieee(math.expm1, lambda x: INF)
_f64_sin = _ieee(math.sin, lambda x: NAN)  # sin(±inf) is NaN, not ValueError
_f64_cos = _ieee(math.cos, lambda x: NAN)


# --- the primitives: the functions op formulas call on ``m``, each declared once -------------------

@dataclass(frozen=True)
class Primitive:
    """A function the op table's formulas call on their number system (``m.exp(x)``).

    ``f64`` is its binary64 value with IEEE specials (what :class:`FloatNS` computes, and what
    :class:`RoundedNS` rounds). ``derivative`` is its derivative evaluated in binary64, as a
    function of the input and the value already computed (exp′ = exp): ``(x, value) -> f′(x)`` for
    a unary function, ``(a, b, value) -> (∂/∂a, ∂/∂b)`` for pow. Error-bound arithmetic
    (:class:`conformance.tolerance.bounds.BoundNS`) multiplies an input's error by its absolute value.
    ``rational``: it maps rationals to rationals (pow with an integer exponent), so
    :class:`FractionNS` implements it; the others raise :class:`NotRepresentable` there.
    """

    name: str
    f64: Callable[..., float]
    derivative: Callable[..., Any]
    arity: int = 1
    rational: bool = False


PRIMITIVES: dict[str, Primitive] = {p.name: p for p in (
    Primitive("exp", _f64_exp, lambda x, v: v),
    Primitive("expm1", _f64_expm1, lambda x, v: v + 1),
    Primitive("log", _f64_log, lambda x, v: _f64_div(1.0, x)),
    Primitive("log1p", _f64_log1p, lambda x, v: _f64_div(1.0, 1.0 + x)),
    Primitive("sqrt", _f64_sqrt, lambda x, v: _f64_div(0.5, v)),
    Primitive("sin", _f64_sin, lambda x, v: math.cos(x)),
    Primitive("cos", _f64_cos, lambda x, v: -math.sin(x)),
    Primitive("tanh", _f64_tanh, lambda x, v: 1 - v * v),
    Primitive("erf", math.erf, lambda x, v: 2 / math.sqrt(math.pi) * _f64_exp(-x * x)),
    Primitive("sigmoid", _f64_sigmoid, lambda x, v: v * (1 - v)),
    Primitive("pow", _f64_pow, lambda a, b, v: (b * _f64_pow(a, b - 1), v * _f64_log(a)), arity=2, rational=True),
)}
"""The number-system functions, by name. A new one is declared here; :class:`FloatNS`,
:class:`RoundedNS`, :class:`FractionNS` (when it is not ``rational``), :class:`MPNS` (when mpmath
has a function of that name) and the error-bound system take it from this table;
``tests/test_number_systems.py`` checks that every number system implements every one, and that each
derivative is, bit for bit, the one the op of the same name states in :mod:`refimpl.ops`."""

CONSTANTS = ("one", "zero", "pi", "inf")
ARITHMETIC = ("add", "mul", "div")  # add, mul: the engine's accumulation; div: IEEE division in formulas
SUPPORT = ("name", "rounds", "val", "convert", "round")
INTERFACE = (*SUPPORT, *CONSTANTS, *ARITHMETIC, *PRIMITIVES)
"""Every name a number system provides: what op formulas (``m``) and the engine use."""


class FloatNS:
    """IEEE binary64 arithmetic on Python floats; its functions are :data:`PRIMITIVES`' ``f64``."""

    name = "float64"
    rounds = False  # True where every op's result must be rounded (a narrower format's emulation)
    one = 1.0
    zero = 0.0
    pi = math.pi
    inf = INF
    # accumulation in the engine: a + b and a * b, exactly as the hardware does them
    add = staticmethod(operator.add)
    mul = staticmethod(operator.mul)
    div = staticmethod(_f64_div)

    @staticmethod
    def val(x: Number) -> Number:
        """The plain number behind ``x`` — used for comparisons at kinks."""
        return x

    @staticmethod
    def convert(x: Any) -> float:
        return float(x)

    @staticmethod
    def round(x: float) -> float:
        return x


for _p in PRIMITIVES.values():
    setattr(FloatNS, _p.name, staticmethod(_p.f64))


def round_to_float32(x: float) -> float:
    """Round a binary64 value to the nearest binary32 (ties to even), overflowing to ±inf."""
    return struct.unpack("f", struct.pack("f", x))[0]


@dataclass(frozen=True)
class Format:
    """A binary floating-point format: ``precision`` significand bits (the hidden one counted) and
    normal exponents ``emin`` … ``emax`` (a normal number is 1.f × 2^e). From these follow its unit
    roundoff, its smallest subnormal, its largest finite number and its rounding — everything an
    emulation and an error bound need, declared once per format."""

    name: str
    precision: int
    emin: int
    emax: int

    @property
    def unit_roundoff(self) -> float:
        """u = 2^-p: a correctly rounded result in the normal range is within u·|x| of the exact."""
        return 2.0 ** -self.precision

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (self.emin - self.precision + 1)

    @property
    def smallest_normal(self) -> float:
        return 2.0 ** self.emin

    @property
    def largest(self) -> float:
        return (2.0 - 2.0 ** (1 - self.precision)) * 2.0 ** self.emax

    def round(self, x: float) -> float:
        """The binary64 value ``x`` rounded once to this format (to nearest, ties to even), with its
        subnormals and its overflow to ±inf — straight from binary64: rounding through binary32
        first would round twice (wrong at ties for bfloat16)."""
        if x != x or x in (INF, -INF) or x == 0.0:
            return x
        _, e = math.frexp(x)  # |x| in [2^(e-1), 2^e)
        quantum = math.ldexp(1.0, max(e - 1, self.emin) - self.precision + 1)
        r = round(x / quantum) * quantum  # x / quantum is exact: a power-of-two scaling
        return math.copysign(INF, x) if abs(r) > self.largest else math.copysign(r, x)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("float64", 53, -1022, 1023),   # IEEE binary64
    Format("float32", 24, -126, 127),     # IEEE binary32
    Format("float16", 11, -14, 15),       # IEEE binary16: 65504 at most, normal from 6.1e-5
    Format("bfloat16", 8, -126, 127),     # brain float: binary32's range, 8 bits of significand
)}
"""The formats a case may be in, by torch's dtype name."""


class RoundedNS(FloatNS):
    """Emulation of a narrower format: every op's result is the binary64 result rounded once to it.

    Each op's formula is evaluated in binary64 and rounded when the op is done, so this models the
    best implementation in that format there is (correctly rounded basic ops, transcendental
    functions within one ulp). Accumulation ``+=`` in backward rounds after every ``*`` and ``+``.
    """

    rounds = True

    def __init__(self, fmt: Format) -> None:
        self.format = fmt
        self.name = fmt.name
        # binary32 through struct (C speed, bit-identical to Format.round: tests/test_number_systems.py)
        self.convert = round_to_float32 if fmt.name == "float32" else fmt.round  # type: ignore[method-assign]
        self.round = self.convert  # type: ignore[method-assign]

    def add(self, a: float, b: float) -> float:  # type: ignore[override]
        return self.convert(a + b)

    def mul(self, a: float, b: float) -> float:  # type: ignore[override]
        return self.convert(a * b)


def pairwise_sum(parts: list[Any], add: Callable[[Any, Any], Any]) -> Any:
    """``parts`` summed by recursive halving: the first ⌈n/2⌉ and the last ⌊n/2⌋ summed so, then
    added (``add`` rounds each addition as the format does). The tree is ⌈log2 n⌉ additions deep, so
    every term goes through at most ⌈log2 n⌉ roundings, where a running sum puts the first term
    through n − 1 of them: pairwise summation's error bound is γ_⌈log2 n⌉·Σ|xᵢ| (Higham, *Accuracy and
    Stability of Numerical Algorithms*, §4.2), against γ_{n−1}·Σ|xᵢ| left to right."""
    n = len(parts)
    if n == 1:
        return parts[0]
    half = (n + 1) // 2
    return add(pairwise_sum(parts[:half], add), pairwise_sum(parts[half:], add))


def left_to_right(parts: list[Any], add: Callable[[Any, Any], Any]) -> Any:
    """``parts`` summed by a running sum, first to last (each addition rounded by ``add``)."""
    s = parts[0]
    for t in parts[1:]:
        s = add(s, t)
    return s


class MixedNS(RoundedNS):
    """Mixed precision: numbers stored in one format, reductions accumulated in a wider one — or in
    the same one, in a claimed order.

    Every op's result is rounded to the *storage* format, as in :class:`RoundedNS`, except a
    reduction's (a sum's, a dot product's): its partial sums are rounded to the *accumulation* format
    and only the total to storage — what autocast and most kernels do with bfloat16 or float16 data
    (torch's CPU reductions accumulate half precision in float32). A dot product's products are
    formed in the accumulation format too (exact there for half-precision factors). The ``+=`` of
    backward is the engine's, one storage-rounded addition per contribution: that is how torch adds
    two half-precision gradients that reach one tensor.

    ``pairwise``: the partial sums are those of recursive halving (:func:`pairwise_sum`) rather than
    of a running sum — an implementation that claims pairwise summation (numpy's ``add.reduce`` along
    a contiguous axis, cascade sums). The accumulation format may then be the storage format itself.

    refimpl's reductions (:func:`refimpl.tensor.sum_of`, :func:`~refimpl.tensor.dot_of`) hand their
    terms to :meth:`reduce`, which gives the total's value; the graph (and so every gradient) is the
    same as in any other system.
    """

    def __init__(self, storage: Format, accumulate: Format, pairwise: bool = False) -> None:
        if accumulate.precision < storage.precision or accumulate.emax < storage.emax:
            raise ValueError(f"accumulating {storage.name} in {accumulate.name} would be narrower than storing it")
        super().__init__(storage)
        self.accumulator = RoundedNS(accumulate)
        self.pairwise = pairwise
        self.name = (storage.name if accumulate == storage else f"{storage.name}+{accumulate.name}") + \
            ("-pairwise" if pairwise else "")

    def reduce(self, total: float, terms: list[float], factors: list[tuple[float, float]] | None = None) -> float:
        """The total of ``terms`` (or of the products of ``factors``) accumulated in the accumulation
        format — left to right, or pairwise — then rounded once to storage (``total``, the
        storage-rounded running sum, is replaced)."""
        acc = self.accumulator.convert
        parts = terms if factors is None else [acc(x * y) for x, y in factors]
        order = pairwise_sum if self.pairwise else left_to_right  # looked up per call: a mutant swaps it
        return self.convert(order(parts, lambda a, b: acc(a + b)))


class PairwiseFloatNS(FloatNS):
    """binary64 whose reductions sum pairwise (:func:`pairwise_sum`): what an implementation claiming
    pairwise summation in float64 computes. Every other op is :class:`FloatNS`'s."""

    name = "float64-pairwise"
    pairwise = True

    def reduce(self, total: float, terms: list[float], factors: list[tuple[float, float]] | None = None) -> float:
        """The pairwise total of ``terms`` (or of the products of ``factors``), in binary64."""
        parts = terms if factors is None else [x * y for x, y in factors]
        return pairwise_sum(parts, operator.add)


class MPNS:
    """Arbitrary precision through mpmath at ``dps`` significant decimal digits."""

    def __init__(self, dps: int = 50) -> None:
        import mpmath  # optional dependency: only arbitrary precision needs it

        if dps < 1:
            raise ValueError(f"dps must be a positive number of digits, got {dps}")
        ctx = mpmath.MPContext()
        ctx.dps = dps
        self.ctx = ctx
        self.dps = dps
        self.name = f"mpmath{dps}"
        self.rounds = False
        self.one = ctx.mpf(1)
        self.zero = ctx.mpf(0)
        self.pi = +ctx.pi
        self.inf = ctx.inf
        for name in PRIMITIVES:  # mpmath's function of the same name, unless defined below (IEEE specials)
            if not hasattr(MPNS, name):
                setattr(self, name, getattr(ctx, name))

    add = staticmethod(operator.add)
    mul = staticmethod(operator.mul)

    def convert(self, x: Any) -> Number:
        if isinstance(x, Fraction):
            return self.ctx.mpf(x.numerator) / x.denominator
        return self.ctx.mpf(x)

    def round(self, x: Number) -> Number:
        return x

    @staticmethod
    def val(x: Number) -> Number:
        return x

    def div(self, a: Number, b: Number) -> Number:
        if b == 0:
            if a == 0 or a != a:
                return self.ctx.nan
            return self.ctx.inf if (a > 0) == (self.ctx.sign(b) >= 0) else -self.ctx.inf
        return a / b

    def pow(self, a: Number, b: Number) -> Number:
        if a < 0 and self.ctx.floor(b) != b:
            return self.ctx.nan
        if a == 0 and b < 0:
            return self.ctx.inf
        return self.ctx.power(a, b)

    def log(self, x: Number) -> Number:
        if x == 0:
            return -self.ctx.inf
        return self.ctx.nan if x < 0 else self.ctx.log(x)

    def sqrt(self, x: Number) -> Number:
        return self.ctx.nan if x < 0 else self.ctx.sqrt(x)

    def sigmoid(self, x: Number) -> Number:
        return self.one / (self.one + self.ctx.exp(-x))


def _not_rational(name: str) -> Callable[..., Number]:
    def fn(*args: Any) -> Number:
        raise NotRepresentable(f"{name} has no exact rational value; use mpmath(dps) instead")

    fn.__name__ = name
    return fn


class FractionNS:
    """Exact rational arithmetic with :class:`fractions.Fraction` — for graphs of rational ops."""

    name = "fraction"
    rounds = False
    one = Fraction(1)
    zero = Fraction(0)
    add = staticmethod(operator.add)
    mul = staticmethod(operator.mul)
    pi = property(lambda self: _not_rational("pi")())
    inf = property(lambda self: _not_rational("inf")())
    # every primitive that is not ``rational`` raises NotRepresentable (set from PRIMITIVES below)

    @staticmethod
    def convert(x: Any) -> Fraction:
        return Fraction(x)

    @staticmethod
    def round(x: Fraction) -> Fraction:
        return x

    @staticmethod
    def val(x: Number) -> Number:
        return x

    @staticmethod
    def div(a: Fraction, b: Fraction) -> Fraction:
        if b == 0:
            raise NotRepresentable("division by zero has no rational value")
        return a / b

    @staticmethod
    def pow(a: Fraction, b: Fraction) -> Fraction:
        if Fraction(b).denominator != 1:
            raise NotRepresentable(f"{a} ** {b} is not rational in general; use mpmath(dps)")
        if a == 0 and b < 0:
            raise NotRepresentable("0 to a negative power has no rational value")
        return Fraction(a) ** int(b)


for _p in PRIMITIVES.values():
    if not _p.rational:
        setattr(FractionNS, _p.name, staticmethod(_not_rational(_p.name)))

FLOAT64 = FloatNS()
FLOAT32 = RoundedNS(FORMATS["float32"])
FLOAT16 = RoundedNS(FORMATS["float16"])
BFLOAT16 = RoundedNS(FORMATS["bfloat16"])
FRACTION = FractionNS()


def mpmath_system(dps: int = 50) -> MPNS:
    """An arbitrary-precision number system with ``dps`` decimal digits (needs ``mpmath``)."""
    return MPNS(dps)


def mixed_system(storage: str, accumulate: str | None = None, pairwise: bool = False) -> Any:
    """Numbers stored in format ``storage``, reductions accumulated in ``accumulate`` (names of
    :data:`FORMATS`; ``None``: storage itself), left to right or ``pairwise``:
    ``mixed_system("bfloat16", "float32")``, ``mixed_system("float64", pairwise=True)``."""
    if storage == "float64" and accumulate in (None, "float64"):
        return PairwiseFloatNS() if pairwise else FLOAT64
    return MixedNS(FORMATS[storage], FORMATS[accumulate or storage], pairwise)


def system(name: str) -> Any:
    """Look a number system up by name: ``float64``, ``float32``, ``float16``, ``bfloat16``,
    ``fraction`` or ``mpmath<dps>``; ``STORAGE+ACCUMULATE`` (``bfloat16+float32``) for mixed
    precision; either with ``-pairwise`` (``float32-pairwise``, ``bfloat16+float32-pairwise``) for
    reductions summed pairwise."""
    base, pairwise = (name[:-len("-pairwise")], True) if name.endswith("-pairwise") else (name, False)
    storage, _, accumulate = base.partition("+")
    if storage in FORMATS and (accumulate in FORMATS or (pairwise and not accumulate)):
        return mixed_system(storage, accumulate or None, pairwise)
    fixed = {"float64": FLOAT64, "float32": FLOAT32, "float16": FLOAT16, "bfloat16": BFLOAT16,
             "fraction": FRACTION}
    if name in fixed:
        return fixed[name]
    if name.startswith("mpmath") and name[6:].isdigit():
        return MPNS(int(name[6:]))
    raise ValueError(f"unknown number system {name!r}: use {', '.join(fixed)} or mpmath<dps>")
