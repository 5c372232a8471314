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

from refimpl.numbers import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, FORMATS, Format, MixedNS


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


def emulation(name: str, accumulate: str | None = None) -> Any:
    """refimpl's number system for a case in ``name`` whose reductions accumulate in ``accumulate``
    (mixed precision: :class:`refimpl.numbers.MixedNS`), or in the dtype itself (``None``)."""
    if accumulation(name, accumulate) is None:
        return dtype(name).system
    return _mixed_system(name, accumulate)


@functools.cache
def _mixed_system(name: str, accumulate: str) -> MixedNS:
    """One number system per (storage, accumulation) pair: built once, shared by every case."""
    return MixedNS(dtype(name).format, dtype(accumulate).format)

