"""Per-entry tolerances by running error analysis, evaluated by the reference engine itself.

A :class:`Bounded` number carries a value and a bound on the absolute rounding error it has picked
up in a floating-point format with unit roundoff ``u``. :class:`BoundNS` is a refimpl number
system over such numbers, so running any case through refimpl in it — the forward formulas, the
local derivatives and every ``+=`` of backprop — yields, next to each gradient entry, a
first-order bound on how far an honest float implementation of the same computation may drift
from the exact result (Wilkinson's running error analysis):

* ``a ± b``:  eₐ + e_b + u·|a ± b| + η
* ``a · b``:  |a|·e_b + |b|·eₐ + u·|a·b| + η
* ``a / b``:  (eₐ + |a/b|·e_b)/|b| + u·|a/b| + η
* ``f(a)``:   |f′(a)|·eₐ + c·(u·|f(a)| + η)  (library functions are trusted to ``c = LIBM_ULPS``;
  f and f′ are the ones declared in :data:`refimpl.numbers.PRIMITIVES`)

where η is the format's smallest subnormal: below the normal range rounding error is absolute.

Inputs are exact (they are given as floats); constants that the format must round (π) enter
with their representation error. The bound sees cancellation where it happens — ``1 − t²`` near
``t = ±1`` gets an error of about ``3u`` absolute, i.e. thousands of ulps of the small result —
so it is tight where the problem is easy and wide where every implementation struggles. See
``docs/tolerances.md`` for the model and its safety factor.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from conformance.case.dtypes import DTYPES, dtype
from refimpl.numbers import PRIMITIVES, FloatNS, round_to_float32

U64 = 2.0**-53
U32 = 2.0**-24
ETA64 = 2.0**-1074  # a result that underflows is off by up to half the smallest subnormal (2^-1075 is 0)
ETA32 = 2.0**-149
LIBM_ULPS = 2.0  # glibc / SLEEF elementary functions are within 1–2 ulp in double and single
ULPS: dict[str, float] = {}  # a primitive trusted to other than LIBM_ULPS, by name (none today)
SAFETY = 2.0  # tolerance = SAFETY × bound: the bound is first-order and describes refimpl's algorithm
TINY = 4 * 2.0**-1074  # never below a few subnormals


class Bounded:
    """A float value and a bound on its accumulated absolute rounding error."""

    __slots__ = ("e", "v")
    u = U64  # set per system (see BoundNS.__init__) through a subclass
    eta = ETA64

    def __init__(self, v: float, e: float = 0.0) -> None:
        self.v = v
        self.e = e

    def __repr__(self) -> str:
        return f"Bounded({self.v!r} ± {self.e:.3g})"

    def __float__(self) -> float:
        return float(self.v)

    def _lift(self, x: Any) -> Bounded:
        return x if isinstance(x, Bounded) else type(self)(float(x), 0.0)

    def __add__(self, other: Any) -> Bounded:
        if not isinstance(other, _NUMBERS):
            return NotImplemented  # e.g. a graph node: let Value's reflected operator build the graph
        o = self._lift(other)
        v = self.v + o.v
        return type(self)(v, self.e + o.e + self.u * abs(v) + self.eta)

    __radd__ = __add__

    def __sub__(self, other: Any) -> Bounded:
        if not isinstance(other, _NUMBERS):
            return NotImplemented
        o = self._lift(other)
        v = self.v - o.v
        return type(self)(v, self.e + o.e + self.u * abs(v) + self.eta)

    def __rsub__(self, other: Any) -> Bounded:
        if not isinstance(other, _NUMBERS):
            return NotImplemented
        return self._lift(other) - self

    def __mul__(self, other: Any) -> Bounded:
        if not isinstance(other, _NUMBERS):
            return NotImplemented
        o = self._lift(other)
        v = self.v * o.v
        return type(self)(v, _mul0(abs(self.v), o.e) + _mul0(abs(o.v), self.e) + self.u * abs(v) + self.eta)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Bounded:
        if not isinstance(other, _NUMBERS):
            return NotImplemented
        o = self._lift(other)
        v = FloatNS.div(self.v, o.v)
        if o.v == 0:
            return type(self)(v, math.inf)
        return type(self)(v, (self.e + _mul0(abs(v), o.e)) / abs(o.v) + self.u * abs(v) + self.eta)

    def __rtruediv__(self, other: Any) -> Bounded:
        if not isinstance(other, _NUMBERS):
            return NotImplemented
        return self._lift(other) / self

    def __neg__(self) -> Bounded:
        return type(self)(-self.v, self.e)

    def __abs__(self) -> Bounded:
        return type(self)(abs(self.v), self.e)

    # comparisons look at the value only: they choose a branch, they do not round
    def __lt__(self, other: Any) -> bool:
        return self.v < float(other)

    def __le__(self, other: Any) -> bool:
        return self.v <= float(other)

    def __gt__(self, other: Any) -> bool:
        return self.v > float(other)

    def __ge__(self, other: Any) -> bool:
        return self.v >= float(other)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, (Bounded, int, float)) and self.v == float(other)

    __hash__ = None  # type: ignore[assignment]


_NUMBERS = (Bounded, int, float)


def _mul0(a: float, b: float) -> float:
    """a·b with 0·inf = 0: an exact zero factor carries no error, however wild the other."""
    return 0.0 if a == 0.0 or b == 0.0 else a * b


def lift(f: Any, df: Any, ulps: float | None = None) -> Any:
    """Lift a float function with derivative ``df(x, f(x))`` to Bounded: propagated plus its own
    rounding, within ``ulps`` (default ``LIBM_ULPS``). The result keeps ``f`` and ``df`` as its
    ``.f`` and ``.df``, to be lifted again with other ulps (``explain``'s ``log1p-128-ulps``)."""

    def lifted(self: BoundNS, x: Any) -> Bounded:
        x = self.convert(x) if not isinstance(x, Bounded) else x
        v = f(x.v)
        c = LIBM_ULPS if ulps is None else ulps
        return self.num(v, _mul0(abs(df(x.v, v)), x.e) + c * (self.u * abs(v) + self.eta))

    lifted.__name__ = f.__name__
    lifted.f, lifted.df = f, df  # type: ignore[attr-defined]  # to lift it again with other ulps
    return lifted


@dataclass(frozen=True)
class Accumulation:
    """The format a mixed-precision implementation accumulates its reductions in: its unit roundoff
    and smallest subnormal."""

    u: float
    eta: float


class BoundNS:
    """refimpl number system for error bounds in a float format with unit roundoff ``u``."""

    def __init__(self, u: float = U64, name: str = "bound64", eta: float = ETA64,
                 round_to: Any = None, accumulate: Accumulation | None = None) -> None:
        self.u = u
        self.eta = eta
        self.name = name
        self.accumulate = accumulate  # reductions in a wider format (mixed precision), or None
        # For a narrower format the values themselves are rounded to it after every op (as in
        # refimpl's float32 emulation), so that branch decisions — relu, clamp, softplus's
        # threshold — follow the format's values, not the exact ones; the rounding error itself
        # is already in each op's u·|result| term.
        self.rounds = round_to is not None
        self.round_to = round_to
        self.num = type(f"Bounded_{name}", (Bounded,), {"u": u, "eta": eta, "__slots__": ()})
        self.one = self.num(1.0)
        self.zero = self.num(0.0)
        self.pi = self.num(math.pi, u * math.pi)  # π must be rounded into the format
        self.inf = self.num(math.inf)

    def convert(self, x: Any) -> Bounded:
        if isinstance(x, Bounded):
            return x
        v = float(x)
        return self.num(v if self.round_to is None else self.round_to(v), 0.0)

    def round(self, x: Any) -> Any:
        if self.round_to is None or not isinstance(x, Bounded):
            return x
        return self.num(self.round_to(x.v), x.e)

    @staticmethod
    def val(x: Any) -> float:
        return x.v if isinstance(x, Bounded) else x

    def add(self, a: Any, b: Any) -> Any:
        return self.round(a + b)

    def mul(self, a: Any, b: Any) -> Any:
        return self.round(a * b)

    def div(self, a: Any, b: Any) -> Bounded:
        return self.convert(a) / self.convert(b)

    def pow(self, a: Any, b: Any) -> Bounded:
        a = self.convert(a)
        bv = b.v if isinstance(b, Bounded) else float(b)
        be = b.e if isinstance(b, Bounded) else 0.0
        v = FloatNS.pow(a.v, bv)
        pa, pb = PRIMITIVES["pow"].derivative(a.v, bv, v)
        da = abs(pa) if a.e and bv != 0 else 0.0  # x**0 is constant
        db = abs(pb) if be else 0.0
        return self.num(v, _mul0(da, a.e) + _mul0(db, be) + LIBM_ULPS * (self.u * abs(v) + self.eta))

    def reduce(self, total: Bounded, terms: list[Bounded],
               factors: list[tuple[Bounded, Bounded]] | None = None) -> Bounded:
        """``total`` = Σ terms (refimpl's order, or the products of ``factors``, a dot product) with a
        bound that holds in *any* order (torch's kernels choose their own): each of the n − 1
        additions rounds a partial sum, and no partial sum exceeds Σ|termᵢ| (Higham's γₙ₋₁·Σ|xᵢ|, to
        first order). In the storage format, refimpl's running bound is kept where it is larger.

        With an accumulation format (mixed precision, ``accumulate``): the products and the partial
        sums are rounded to it, with its unit roundoff, and the total once to storage — so a claim of
        float32 accumulation bounds a half-precision sum by (n − 1)·u₃₂·Σ|xᵢ| + u₁₆·|Σ| rather than
        (n − 1)·u₁₆·Σ|xᵢ|."""
        if not isinstance(total, Bounded):
            return total
        acc = self.accumulate
        if acc is None:
            n, spread = len(terms), sum(abs(t.v) for t in terms if isinstance(t, Bounded))
            carried = sum(t.e for t in terms if isinstance(t, Bounded))
            e = carried + (n - 1) * (self.u * spread + self.eta)
            return self.num(total.v, max(total.e, e))
        if factors is not None:  # each product formed in the accumulation format
            parts = []
            for x, y in factors:
                x, y = self.convert(x), self.convert(y)
                v = x.v * y.v
                parts.append((v, _mul0(abs(x.v), y.e) + _mul0(abs(y.v), x.e) + acc.u * abs(v) + acc.eta))
        else:
            parts = [(t.v, t.e) if isinstance(t, Bounded) else (float(t), 0.0) for t in terms]
        n, spread = len(parts), sum(abs(v) for v, _ in parts)
        exact = math.fsum(v for v, _ in parts)
        v = exact if self.round_to is None else self.round_to(exact)
        e = sum(e for _, e in parts) + (n - 1) * (acc.u * spread + acc.eta) + self.u * abs(v) + self.eta
        return self.num(v, e)


# every unary primitive, lifted from its one declaration (pow, binary, is BoundNS.pow above)
for _p in PRIMITIVES.values():
    if _p.arity == 1:
        setattr(BoundNS, _p.name, lift(_p.f64, _p.derivative, ULPS.get(_p.name)))


BOUND64 = BoundNS(U64, "bound64")
BOUND32 = BoundNS(U32, "bound32", ETA32, round_to=round_to_float32)
#: binary32 error bounds over binary64 values: the valid choices at kinks (conformance/verdict/kinks.py)
#: follow binary64's branches, where the kinks are found, with the tolerances of the dtype under test
BOUND32_ON_BINARY64 = BoundNS(U32, "bound32/binary64", ETA32)


def _narrow(name: str, on_binary64: bool) -> BoundNS:
    """The bounds of a narrow dtype from its format (unit roundoff, smallest subnormal): its values
    rounded to the format, or (``on_binary64``) binary64 values with the format's bounds."""
    f = dtype(name).format
    label = f"bound-{name}" + ("/binary64" if on_binary64 else "")
    return BoundNS(f.unit_roundoff, label, f.smallest_subnormal, round_to=None if on_binary64 else dtype(name).cast)


#: per dtype, the error-bound system of a case in it, and the one its kinks' valid choices take
BOUNDS: dict[str, BoundNS] = {"float64": BOUND64, "float32": BOUND32,
                              **{n: _narrow(n, False) for n in DTYPES if n not in ("float64", "float32")}}
KINK_BOUNDS: dict[str, BoundNS] = {"float64": BOUND64, "float32": BOUND32_ON_BINARY64,
                                   **{n: _narrow(n, True) for n in DTYPES if n not in ("float64", "float32")}}


@functools.cache
def _mixed(name: str, accumulate: str, on_binary64: bool) -> BoundNS:
    """A dtype's bounds with its reductions accumulated in ``accumulate`` (a case's declaration); one
    system per triple, built once."""
    base = (KINK_BOUNDS if on_binary64 else BOUNDS)[name]
    f = dtype(accumulate).format
    return BoundNS(base.u, f"{base.name}+{accumulate}", base.eta, base.round_to,
                   Accumulation(f.unit_roundoff, f.smallest_subnormal))


def bound_system(name: str, accumulate: str | None = None) -> BoundNS:
    """The error-bound system for a dtype under test (:data:`conformance.case.dtypes.DTYPES`), its
    reductions accumulated in ``accumulate`` if the case declares mixed precision."""
    name = dtype(name).name
    return BOUNDS[name] if accumulate is None else _mixed(name, accumulate, False)


def kink_bound_system(name: str, accumulate: str | None = None) -> BoundNS:
    """The error-bound system the valid choices at kinks are computed in: binary64 values (the kinks
    are where the binary64 forward sits exactly on one), with the bounds of the dtype."""
    name = dtype(name).name
    return KINK_BOUNDS[name] if accumulate is None else _mixed(name, accumulate, True)
