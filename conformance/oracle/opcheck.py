"""Op-by-op check: every op of the table, at random points of its domain and at its kinks.

The first slice of the conformance run. Each entry (a value, or a partial derivative times a
random cotangent) of refimpl float64 and of torch float64 is compared with the truth:

* the truth of a value is the op's forward in 50-digit mpmath; the truth of a partial derivative
  is a Richardson finite difference of that forward at 50 digits — never the derivative code
  under test, so a wrong derivative cannot vouch for itself;
* the tolerance of each entry is derived, not global: ``SAFETY ×`` the running error bound that
  refimpl computes for that very entry in :class:`~conformance.tolerance.bounds.BoundNS` (tight where the
  formula is benign, wide where it cancels);
* at a kink the gradient must be torch's within a few ulps (the same branch: the convention).

An entry where torch itself is off the truth beyond tolerance is reported as torch-deviates.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from conformance.oracle import names as oracle
from conformance.tolerance.bounds import BOUND64, SAFETY, TINY
from refimpl import FLOAT64, OPS, Value, grad, mpmath_system
from refimpl.engine import apply
from refimpl.gradcheck import richardson
from refimpl.ops import Interval, OpSpec

KINK_ULPS = 4.0  # branches at a kink differ by O(1) (softplus: by 1 − σ(threshold)); rounding by ulps

# attribute settings tried for each op with attributes (the defaults are always tried too)
ATTR_VARIANTS: dict[str, list[dict[str, Any]]] = {
    "leaky_relu": [{"negative_slope": 0.2}],
    "elu": [{"alpha": 0.5}],
    "softplus": [{"beta": 2.0, "threshold": 5.0}],
    "gelu": [{"approximate": "tanh"}],
    "clamp": [{"min": -0.5, "max": 0.7}, {"min": 0.1}, {"max": -0.2}],
    "pow_scalar": [{"exponent": 0.5}, {"exponent": -1.5}, {"exponent": 3.0}],
    "pow_int": [{"exponent": 3}, {"exponent": -2}, {"exponent": 0}],
}


@dataclass
class OpResult:
    op: str
    cases: int = 0
    failed: int = 0
    worst_ratio: float = 0.0
    torch_worst_ratio: float = 0.0
    kinks: int = 0
    kink_failures: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    torch_deviates: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.kink_failures


def sample(interval: Interval, rng: random.Random) -> float:
    """A point inside ``interval``: uniform on a clipped range, or a log-uniform small magnitude."""
    lo, hi = max(interval.lo, -6.0), min(interval.hi, 6.0)
    while True:
        if rng.random() < 0.25:
            x = math.copysign(10 ** rng.uniform(-6, 0.5), rng.choice((-1.0, 1.0)))
        else:
            x = rng.uniform(lo, hi)
        if x in interval:
            return x


def ulps(x: float, truth: Any) -> float:
    """|x − truth| in units of the float64 spacing at the truth."""
    t = float(truth)
    if math.isinf(t) or math.isnan(t):
        return 0.0 if x == t or (math.isnan(x) and math.isnan(t)) else math.inf
    return float(abs(x - truth)) / math.ulp(max(abs(t), 2.0 ** -1022))


def _refimpl(spec: OpSpec, xs: tuple[float, ...], attrs: dict[str, Any], ct: float,
             system: Any = FLOAT64) -> tuple[Any, list[Any]]:
    leaves = [Value(x, system=system) for x in xs]
    out = spec_apply(spec, leaves, attrs)
    return out.data, list(grad(out, leaves, ct))


def spec_apply(spec: OpSpec, leaves: list[Value], attrs: dict[str, Any]) -> Value:
    return apply(spec, *leaves, **attrs)


def check_op(spec: OpSpec, n: int, rng: random.Random, truth_system: Any) -> OpResult:
    res = OpResult(spec.name)
    settings = list(ATTR_VARIANTS.get(spec.name, []))
    if not spec.attrs or any(v is not None for v in spec.attrs.values()):
        settings.insert(0, {})  # the defaults, unless they are all unset (clamp needs a bound)
    for attrs in settings:
        attrs = {**spec.attrs, **attrs}
        for _ in range(n):
            xs = tuple(sample(d, rng) for d in spec.domain)
            ct = rng.uniform(0.5, 2.0) * rng.choice((-1.0, 1.0))
            _check_point(spec, xs, attrs, ct, truth_system, res)
        _check_kinks(spec, attrs, rng, res)
    return res


def _check_point(spec: OpSpec, xs: tuple[float, ...], attrs: dict[str, Any], ct: float,
                 truth_system: Any, res: OpResult) -> None:
    mine = _refimpl(spec, xs, attrs, ct)
    theirs = oracle.value_and_grad(spec, xs, attrs, ct)
    bound = _refimpl(spec, xs, attrs, ct, BOUND64)
    truth = [_true_value(spec, xs, attrs, truth_system)]
    truth += [ct * d for d in _true_gradient(spec, xs, attrs, truth_system)]
    res.cases += 1
    names = ["value"] + [f"d/dx{i}" for i in range(len(xs))]
    for name, m, b, t, th in zip(names, [mine[0], *mine[1]], [bound[0], *bound[1]], truth,
                                 [theirs[0], *theirs[1]]):
        tol = entry_tolerance(b)
        r_mine, r_torch = ratio(float(m), t, tol), ratio(th, t, tol)
        res.worst_ratio = max(res.worst_ratio, r_mine)
        res.torch_worst_ratio = max(res.torch_worst_ratio, r_torch)
        where = f"{spec.name}{xs} {attrs} {name}: refimpl {float(m)!r}, torch {th!r}, truth {float(t)!r}"
        if not r_mine <= 1.0:
            res.failed += 1
            res.failures.append(f"{where}, tolerance {tol:.3g}, error/tolerance {r_mine:.3g}")
        if not r_torch <= 1.0:
            res.torch_deviates.append(f"{where}, tolerance {tol:.3g}, torch error/tolerance {r_torch:.3g}")


def entry_tolerance(b: Any) -> float:
    """SAFETY × the running error bound of the entry, never below a few subnormals."""
    return SAFETY * b.e + TINY


def ratio(x: float, truth: Any, tol: float) -> float:
    """|x − truth| / tol; non-finite values must match exactly (inf/inf, nan/nan)."""
    t = float(truth)
    if not math.isfinite(t) or not math.isfinite(x):
        same = x == t or (math.isnan(x) and math.isnan(t))
        return 0.0 if same else math.inf
    return float(abs(x - truth)) / tol


def _true_value(spec: OpSpec, xs: tuple[float, ...], attrs: dict[str, Any], system: Any) -> Any:
    return spec_apply(spec, [Value(x, False, system=system) for x in xs], attrs).data


def _true_gradient(spec: OpSpec, xs: tuple[float, ...], attrs: dict[str, Any], system: Any) -> list[Any]:
    """∂op/∂xᵢ by finite differences of the *forward* in high precision.

    Independent of the op's derivative code on purpose: the gradient under test and the truth must
    not share a formula. The step stays a quarter of the distance away from domain edges and kinks.
    """
    def f(*vs: Value) -> Value:
        return spec_apply(spec, list(vs), attrs)

    return [richardson(f, xs, i, system=system, h=_step(spec, xs, attrs, i), levels=3).value
            for i in range(len(xs))]


def _step(spec: OpSpec, xs: tuple[float, ...], attrs: dict[str, Any], i: int) -> float:
    x = xs[i]
    h = 1e-12 * max(abs(x), 1.0)
    d = spec.domain[i]
    edges = [e for e in (d.lo, d.hi, *d.exclude) if math.isfinite(e)]
    edges += [p[i] for p in kink_points(spec, attrs) if len(p) == len(xs) and spec.arity == 1]
    if spec.arity == 2 and any(k.at == "tie" for k in spec.kinks):
        edges.append(xs[1 - i])
    for e in edges:
        if e != x:
            h = min(h, abs(x - e) / 4)
    return h


def kink_points(spec: OpSpec, attrs: dict[str, Any]) -> list[tuple[float, ...]]:
    """The input points of the op's declared kinks, under these attributes."""
    points = []
    for k in spec.kinks:
        if k.at == "tie":
            points.append((0.75, 0.75))
        elif k.at == "threshold/beta":
            points.append((attrs["threshold"] / attrs["beta"],))
        elif isinstance(k.at, str):
            if attrs.get(k.at) is not None:
                points.append((float(attrs[k.at]),))
        else:
            points.append((float(k.at),))
    return points


def _check_kinks(spec: OpSpec, attrs: dict[str, Any], rng: random.Random, res: OpResult) -> None:
    for xs in kink_points(spec, attrs):
        ct = 1.0
        _, g = _refimpl(spec, xs, attrs, ct)
        _, tg = oracle.value_and_grad(spec, xs, attrs, ct)
        res.kinks += 1
        if any(ulps(t, float(v)) > KINK_ULPS for v, t in zip(g, tg)):
            res.kink_failures.append(f"{spec.name}{xs} {attrs}: refimpl grad {g}, torch {tg}")


def run(n: int = 40, seed: int = 0) -> list[OpResult]:
    rng = random.Random(seed)
    truth = mpmath_system(50)
    return [check_op(spec, n, rng, truth) for spec in OPS.values()]
