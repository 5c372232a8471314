"""Finite differences: an independent opinion on any function of the engine.

Central differences cancel the even terms of the Taylor series, leaving an error ``c₂h² + c₄h⁴ + …``;
Richardson extrapolation combines the estimates at h, h/2, h/4 … to cancel those terms one by one,
so a moderate ``h`` (little rounding error) still gives a derivative good to many digits. The
spread between the last two levels of the table is an honest estimate of the error that is left.

Functions are evaluated on plain numbers through Values that do not require grad, so the checker
runs in whichever number system the inputs are converted to (binary64, mpmath, …).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .engine import Value, grad
from .numbers import FLOAT64

Fn = Callable[..., Value]


def forward_difference(f: Callable[[float], float], x: float, h: float = 1e-6) -> float:
    """The one-sided estimate ``(f(x+h) - f(x)) / h`` — the tutorials' first approximation."""
    return (f(x + h) - f(x)) / h


@dataclass(frozen=True)
class Estimate:
    """A derivative estimate and the size of the error left in it."""

    value: Any
    error: Any


def _evaluate(f: Fn, point: Sequence[Any], system: Any) -> Any:
    out = f(*(Value(p, False, system=system) for p in point))
    return out.data if isinstance(out, Value) else system.convert(out)


def richardson(f: Fn, point: Sequence[Any], index: int, *, system: Any = FLOAT64,
               h: Any = None, levels: int = 5) -> Estimate:
    """∂f/∂point[index] by central differences at h, h/2, …, extrapolated ``levels`` times.

    ``h`` defaults to |x|/8 (1/8 at zero), small enough to stay inside the domain of ops such as
    ``log`` when x > 0; pass a smaller one near a domain boundary or a kink.
    """
    x = system.convert(point[index])
    if h is None:
        h = abs(x) / 8 if x != 0 else system.one / 8
    h = system.convert(h)

    def central(step: Any) -> Any:
        up = list(point)
        down = list(point)
        up[index] = x + step
        down[index] = x - step
        return (_evaluate(f, up, system) - _evaluate(f, down, system)) / (2 * step)

    row = [central(h / 2 ** j) for j in range(levels)]
    table = [row]
    for k in range(1, levels):
        prev = table[-1]
        factor = 4 ** k - 1
        table.append([prev[j + 1] + (prev[j + 1] - prev[j]) / factor for j in range(len(prev) - 1)])
    best = table[-1][0]
    error = abs(best - table[-2][-1]) if levels > 1 else abs(best)
    return Estimate(best, error)


def numerical_gradient(f: Fn, point: Sequence[Any], *, system: Any = FLOAT64,
                       h: Any = None, levels: int = 5) -> list[Estimate]:
    """The Richardson estimate of every partial derivative of ``f`` at ``point``."""
    return [richardson(f, point, i, system=system, h=h, levels=levels) for i in range(len(point))]


@dataclass(frozen=True)
class Mismatch:
    index: int
    analytic: Any
    numeric: Any
    error: Any
    tolerance: Any


def check_gradient(f: Fn, point: Sequence[Any], *, system: Any = FLOAT64, rtol: float = 1e-7,
                   atol: float = 1e-9, h: Any = None, levels: int = 5) -> list[Mismatch]:
    """Compare the engine's gradient of ``f`` with Richardson finite differences.

    An entry mismatches when ``|analytic - numeric|`` exceeds ``atol + rtol·|numeric|`` plus the
    extrapolation's own error estimate. Returns the mismatches (empty when the gradient agrees).
    """
    leaves = [Value(p, system=system) for p in point]
    analytic = grad(f(*leaves), leaves, allow_unused=True)
    mismatches = []
    for i, (a, est) in enumerate(zip(analytic, numerical_gradient(f, point, system=system, h=h,
                                                                   levels=levels))):
        a = system.zero if a is None else a
        tol = atol + rtol * abs(est.value) + est.error
        if not abs(a - est.value) <= tol:
            mismatches.append(Mismatch(i, a, est.value, abs(a - est.value), tol))
    return mismatches
