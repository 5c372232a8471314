"""The dtypes a case may be in, each declared once: its format, refimpl's emulation of it, how a
case's numbers are cast into it, how small a tiny leaf is drawn, and its working range.

The strategies, the runners (refimpl in the dtype's emulation, torch in ``getattr(torch, name)``),
the error bounds (:func:`conformance.tolerance.bounds.bound_system`, from the format's unit
roundoff and smallest subnormal), the verdict's working range, the records' ulps and the suites
(one set of suites per narrow dtype an implementation declares) all read this table.

The *working range* (:mod:`conformance.verdict.robustness`) is where every correct formula stays
within its tolerance. The formulas people write raise a value to the second or third power on the
way (−a/b² for div′), computed in the *compute* format: float64 and float32 compute in themselves,
so their range is the cube root of their normal range: float64 [1e-100, 1e100], float32 [1e-12,
1e12]. float16 and bfloat16 kernels compute in float32 (torch's ``opmath`` type, jax's and every
mixed-precision kernel's upcast) and store the result: their range is float32's, within the
*normal* range of the storage format (below it a stored number keeps fewer digits, and a tolerance
can only be absolute), rounded inward to powers of ten: float16 — normal magnitudes [6.1e-5,
65504] → [1e-4, 1e4]; bfloat16 has float32's exponent range → float32's [1e-12, 1e12]. (Where a
correct implementation stores a square on the way — torch's div′ stores b·b — and loses digits,
the truth decides: its result is the less accurate one.)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from refimpl.numbers import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, FORMATS, Format, mixed_system


@dataclass(frozen=True)
class DType:
    name: str  # torch's name: getattr(torch, name) is the dtype
    system: Any  # refimpl's number system: binary64, or the emulation of the format
    working_range: tuple[float, float]  # (low, high): see the module docstring
    tiny: float  # log10 of the smallest tiny leaf a strategy draws (a subnormal of the format)

    @property
    def format(self) -> Format:
        return FORMATS[self.name]

    @property
    def cast(self) -> Callable[[float], float]:
        """A binary64 number as the dtype holds it (rounded once; ``float`` for float64)."""
        return float if self.name == "float64" else self.system.convert

    def holds(self, x: Any) -> bool:
        """Whether ``x`` (a float of a case) is a number of the format: casting leaves it as it is."""
        return not isinstance(x, float) or x != x or self.cast(x) == x

    def ulp(self, x: float) -> float:
        """The spacing of the format's numbers at ``x`` (its exponent range extended upward: past the
        largest number, the spacing an exponent more would have; inf and NaN for themselves)."""
        f, a = self.format, abs(x)
        if not math.isfinite(a):
            return a
        if a < f.smallest_normal:
            return f.smallest_subnormal
        return 2.0 ** (math.frexp(a)[1] - f.precision)


DTYPES: dict[str, DType] = {d.name: d for d in (
    DType("float64", FLOAT64, (1e-100, 1e100), -300.0),
    DType("float32", FLOAT32, (1e-12, 1e12), -40.0),
    DType("float16", FLOAT16, (1e-4, 1e4), -7.0),
    DType("bfloat16", BFLOAT16, (1e-12, 1e12), -40.0),
)}

#: the dtypes narrower than binary64, in the order their suites run
NARROW = tuple(n for n in DTYPES if n != "float64")
#: the narrow dtypes whose suites came after every other suite existed (their own late suites)
HALF = ("float16", "bfloat16")


def dtype(name: str) -> DType:
    """The dtype ``name``, or a one-line error naming the ones there are."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}: one of {', '.join(DTYPES)}") from None


def accumulation(storage: str, accumulate: str | None) -> str | None:
    """``accumulate`` checked as the accumulation dtype of a mixed-precision case in ``storage``: a
    dtype of the table at least as precise and as wide as storage, and not storage itself (that is
    no declaration: ``None``). A one-line ``ValueError`` otherwise."""
    if accumulate is None:
        return None
    s, a = dtype(storage).format, dtype(accumulate).format
    if a == s or a.precision < s.precision or a.emax < s.emax:
        raise ValueError(f"accumulate {accumulate!r} must be a wider dtype than the storage dtype {storage!r}")
    return accumulate


#: the summation orders an implementation may claim for its reductions: ``pairwise`` — recursive
#: halving (:func:`refimpl.numbers.pairwise_sum`), every term through at most ⌈log2 n⌉ roundings
SUMMATIONS = ("pairwise",)


def summation(order: Any) -> str | None:
    """``order`` checked as a claimed summation order: ``None`` (no claim: any order) or one of
    :data:`SUMMATIONS`. A one-line ``ValueError`` otherwise."""
    if order is None or order in SUMMATIONS:
        return order
    raise ValueError(f"summation {order!r} is not an order the suite knows: one of {', '.join(SUMMATIONS)}")


@dataclass(frozen=True)
class Reductions:
    """What an implementation claims about its reductions in one dtype — the sums and means, the sums
    inside softmax, logsumexp and the normalizations' statistics, matmul's dot products: everything
    refimpl hands to :func:`refimpl.tensor.reduced`. ``accumulate``: the wider dtype its partial sums
    are held in (mixed precision); ``summation``: the order they are formed in (``"pairwise"``).
    ``None`` for either: no claim (the storage dtype; any order).

    It is one declaration, carried whole: by the capabilities (:func:`claims_of`), by a case declared
    under it (``GraphCase.claim``), and into the number systems that emulate and bound it
    (:func:`emulation`, :func:`conformance.tolerance.bounds.bound_system`)."""

    accumulate: str | None = None
    summation: str | None = None

    def describe(self, storage: str) -> str:
        """The claim in words, for ``conformance list`` and the report ("float16 reductions
        accumulated in float32, summed pairwise")."""
        said = [f"accumulated in {self.accumulate}"] if self.accumulate else []
        said += [f"summed {self.summation}"] if self.summation else []
        return f"{storage} reductions {', '.join(said)}"

    def to_json(self) -> dict[str, str]:
        """The case document's keys for the claim: only those claimed, so that a case declared under
        an accumulation dtype alone keeps the document (and the id) it had before orders existed."""
        return {k: v for k, v in (("accumulate", self.accumulate), ("summation", self.summation)) if v is not None}


def reductions(storage: str, accumulate: Any = None, order: Any = None) -> Reductions | None:
    """The claim of a case or an implementation in ``storage``, each part checked
    (:func:`accumulation`, :func:`summation`); ``None`` when nothing is claimed."""
    claim = Reductions(accumulation(storage, accumulate), summation(order))
    return None if claim == Reductions() else claim


def claims_of(caps: Any) -> dict[str, Reductions]:
    """The implementation's claims per dtype, from its ``accumulate`` (dtype → wider dtype) and
    ``summation`` (dtype → order) declarations; dtypes it claims nothing for are left out."""
    accumulate, order = getattr(caps, "accumulate", {}) or {}, getattr(caps, "summation", {}) or {}
    out = {d: reductions(d, accumulate.get(d), order.get(d)) for d in {*accumulate, *order}}
    return {d: c for d, c in sorted(out.items()) if c is not None}


def emulation(name: str, claim: Reductions | None = None) -> Any:
    """refimpl's number system for a case in ``name`` declared under ``claim``: reductions accumulated
    in its wider dtype and/or summed in its order (:class:`refimpl.numbers.MixedNS`,
    :class:`~refimpl.numbers.PairwiseFloatNS`); ``None``: the dtype's own emulation."""
    if claim is None:
        return dtype(name).system
    return _claimed_system(dtype(name).name, claim)


@functools.cache
def _claimed_system(name: str, claim: Reductions) -> Any:
    """One number system per (storage, claim): built once, shared by every case."""
    return mixed_system(name, claim.accumulate, claim.summation == "pairwise")
