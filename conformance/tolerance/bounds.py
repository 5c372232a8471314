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

from conformance.case.dtypes import DTYPES, Reductions, dtype
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


#: per primitive, where they exist: (L, K) — global bounds of |f′| and |f″|. The first-order term
#: |f′(x)|·e is a bound only while e is small on the scale of f's curvature; an input already off by
#: e is off the result by at most min(|f′(x)|·e + K·e²/2, L·e) (Taylor with the remainder's bound, and
#: the mean-value theorem). It matters where e is large: bfloat16 −800·0.828 is −662.5 rounded to
#: −662, and sin there is off by up to |cos|·2 + 2 — the first order alone gave 2.38 where refimpl and
#: torch (bit for bit) were 4.05 from the truth of sin(sin(…)) (calibration, 100,000 cases, seed 5).
SMOOTH: dict[str, tuple[float, float]] = {
    "sin": (1.0, 1.0),
    "cos": (1.0, 1.0),
    "tanh": (1.0, 4 / (3 * math.sqrt(3))),  # tanh″ = −2·tanh·(1 − tanh²), largest at tanh² = 1/3
    "sigmoid": (0.25, 1 / (6 * math.sqrt(3))),  # σ″ = σ(1 − σ)(1 − 2σ), largest at σ = 1/2 ± 1/(2√3)
    "erf": (2 / math.sqrt(math.pi), 2 / math.sqrt(math.pi) * math.sqrt(2 / math.e)),  # erf″ = −2x·erf′
}


def lift(f: Any, df: Any, ulps: float | None = None, smooth: tuple[float, float] | None = None) -> Any:
    """Lift a float function with derivative ``df(x, f(x))`` to Bounded: propagated plus its own
    rounding, within ``ulps`` (default ``LIBM_ULPS``); with ``smooth`` (:data:`SMOOTH`) the propagated
    part is the second-order bound, never below the first-order one. The result keeps ``f`` and
    ``df`` as its ``.f`` and ``.df``, to be lifted again with other ulps (``explain``'s
    ``log1p-128-ulps``)."""

    def lifted(self: BoundNS, x: Any) -> Bounded:
        x = self.convert(x) if not isinstance(x, Bounded) else x
        v = f(x.v)
        c = LIBM_ULPS if ulps is None else ulps
        carried = _mul0(abs(df(x.v, v)), x.e)
        if smooth is not None and x.e > 0 and math.isfinite(x.e):
            lipschitz, curvature = smooth
            carried = max(carried, min(carried + curvature * x.e * x.e / 2, lipschitz * x.e))
        return self.num(v, carried + c * (self.u * abs(v) + self.eta))

    lifted.__name__ = f.__name__
    lifted.f, lifted.df = f, df  # type: ignore[attr-defined]  # to lift it again with other ulps
    return lifted


@dataclass(frozen=True)
class Accumulation:
    """How a claiming implementation reduces: the unit roundoff and smallest subnormal of the format
    it accumulates in (a wider one — mixed precision — or the storage format itself), and whether it
    sums pairwise (``pairwise``: a summation tree ⌈log2 n⌉ additions deep)."""

    u: float
    eta: float
    pairwise: bool = False
    wider: bool = True  # the partial sums in a wider format than storage: the total is rounded once more

    def roundings(self, n: int) -> int:
        """How many roundings a term of an n-term sum goes through at most: the depth of the
        summation tree — ⌈log2 n⌉ for recursive halving, n − 1 for any order (a running sum puts
        its first term through every addition)."""
        return (n - 1).bit_length() if self.pairwise else n - 1


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

        With a claim (``accumulate``, :class:`Accumulation`) the bound is the claim's:

        * **mixed precision** — the products and the partial sums are rounded to the accumulation
          format, with its unit roundoff, and the total once to storage: a claim of float32
          accumulation bounds a half-precision sum by (n − 1)·u₃₂·Σ|xᵢ| + u₁₆·|Σ| rather than
          (n − 1)·u₁₆·Σ|xᵢ|;
        * **pairwise summation** — the n − 1 becomes d = ⌈log2 n⌉. The derivation (Higham,
          *Accuracy and Stability of Numerical Algorithms*, §4.2): recursive halving builds a
          binary tree over the terms whose depth is ⌈log2 n⌉ (a tree over ⌈n/2⌉ and one over ⌊n/2⌋,
          plus the root addition: d(n) = 1 + d(⌈n/2⌉) = ⌈log2 n⌉), and each addition at a node
          rounds as fl(a + b) = (a + b)(1 + δ), |δ| ≤ u. So the computed sum is Σ xᵢ·Π_{k on i's path}
          (1 + δₖ), every path at most d long, and |ŝ − s| ≤ Σ|xᵢ|·((1 + u)^d − 1) ≤ γ_d·Σ|xᵢ|,
          γ_d = d·u/(1 − d·u). To first order that is d·u·Σ|xᵢ| — the treatment of every bound here
          (second-order terms are what :data:`SAFETY` covers: d·u ≤ 0.01 for a million float16
          terms). Underflow is bounded as :meth:`reduce` always did, one smallest subnormal per
          addition, (n − 1)·η — there are n − 1 additions whatever the tree (an addition whose
          result is subnormal is exact, so this is generous). The terms' own errors are carried
          (Σeᵢ, to first order), a product's rounding is its own (u·|xy| + η, in the format it is
          formed in), and with a wider accumulation format the total's one rounding to storage is
          added, u_s·|Σ| + η_s. In the storage format itself (``wider`` false) the root addition
          is that rounding, already counted in d.

        Any summation tree at most ⌈log2 n⌉ deep meets the bound (halving at ⌈n/2⌉ or ⌊n/2⌋, or at a
        power of two); a running sum does not (the claim's hostile case: 1 and 63 terms of ¾u, which
        a running sum in the format leaves at 1, 23.6 units in the last place below the truth, with
        a bound of 6·u·Σ|xᵢ| ≈ 3 of them)."""
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
        stored = self.u * abs(v) + self.eta if acc.wider else 0.0  # the total's rounding to storage
        e = sum(e for _, e in parts) + acc.roundings(n) * acc.u * spread + (n - 1) * acc.eta + stored
        return self.num(v, e)


# every unary primitive, lifted from its one declaration (pow, binary, is BoundNS.pow above)
for _p in PRIMITIVES.values():
    if _p.arity == 1:
        setattr(BoundNS, _p.name, lift(_p.f64, _p.derivative, ULPS.get(_p.name), SMOOTH.get(_p.name)))


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
def _claimed(name: str, claim: Reductions, on_binary64: bool) -> BoundNS:
    """A dtype's bounds under a case's claim (:class:`~conformance.case.dtypes.Reductions`): its
    reductions accumulated in the claim's wider dtype (else in the dtype itself) and summed in its
    order; one system per triple, built once."""
    base = (KINK_BOUNDS if on_binary64 else BOUNDS)[name]
    wider = claim.accumulate is not None
    f = dtype(claim.accumulate if wider else name).format
    label = "".join(f"+{p}" for p in (claim.accumulate, claim.summation) if p)
    return BoundNS(base.u, f"{base.name}{label}", base.eta, base.round_to,
                   Accumulation(f.unit_roundoff if wider else base.u, f.smallest_subnormal if wider else base.eta,
                                claim.summation == "pairwise", wider))


def bound_system(name: str, claim: Reductions | None = None) -> BoundNS:
    """The error-bound system for a dtype under test (:data:`conformance.case.dtypes.DTYPES`), its
    reductions bounded as the case's claim says (accumulation dtype, summation order), if it has one."""
    name = dtype(name).name
    return BOUNDS[name] if claim is None else _claimed(name, claim, False)


def kink_bound_system(name: str, claim: Reductions | None = None) -> BoundNS:
    """The error-bound system the valid choices at kinks are computed in: binary64 values (the kinks
    are where the binary64 forward sits exactly on one), with the bounds of the dtype."""
    name = dtype(name).name
    return KINK_BOUNDS[name] if claim is None else _claimed(name, claim, True)
