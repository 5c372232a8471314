"""Shared machinery for checking refimpl's op table against torch 2.13.

Everything is driven by the op table: the torch callable comes from ``OpSpec.torch``, the sample
points from ``OpSpec.domain`` and ``OpSpec.kinks``, the attributes go to torch as keyword arguments
under their refimpl names. Only the attribute *settings* worth testing (``ATTR_CASES``) and the
error scales (``SCALES``) are written here by hand, because they are judgements, not data.
"""

from __future__ import annotations

import importlib
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from refimpl import FLOAT64, Value, apply, grad
from refimpl.ops import Interval, Kink, OpSpec

EPS64 = 2.0**-52
EPS32 = 2.0**-23
DTYPES = {"float64": torch.float64, "float32": torch.float32}

Point = tuple[float, ...]


def resolve_torch(name: str) -> Callable[..., Any]:
    """``"torch.nn.functional.gelu"`` -> the function: import the longest module prefix, getattr the rest."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"no module in {name!r}")


# --- attribute settings ---------------------------------------------------------------------------
# The op's defaults are always tested (unless torch has no default: see NO_TORCH_DEFAULT); these are
# the extra settings. Softplus thresholds/betas are chosen so threshold/beta is exact in binary64, so
# a sample point can sit exactly on the switch-over and on both sides of it.
ATTR_CASES: dict[str, list[dict[str, Any]]] = {
    "leaky_relu": [{"negative_slope": 0.2}, {"negative_slope": 0.0}, {"negative_slope": -0.5},
                   {"negative_slope": 1.5}],
    "elu": [{"alpha": 0.5}, {"alpha": 2.0}, {"alpha": 0.0}],
    "softplus": [{"beta": 2.0, "threshold": 3.0}, {"beta": 0.5, "threshold": 4.0},
                 {"beta": 1.0, "threshold": 1.0}, {"beta": 4.0, "threshold": 10.0}],
    "gelu": [{"approximate": "tanh"}],
    "clamp": [{"min": -0.5}, {"max": 0.7}, {"min": -0.5, "max": 0.7}, {"min": 0.3, "max": 0.3},
              {"min": 1.0, "max": -1.0}],
    "pow_scalar": [{"exponent": e} for e in (0.5, -0.5, 1.5, -1.5, 2.7, -2.3, 0.0, 1.0, 3.0, -1.0)],
    "pow_int": [{"exponent": e} for e in (-3, -2, -1, 0, 1, 3, 5)],
}

# torch has no default for these attributes (torch.clamp(x) raises, torch.pow needs an exponent),
# so refimpl's defaults are its own and are not sent to torch.
NO_TORCH_DEFAULT = {"clamp": "torch.clamp(x) raises: at least one of min/max must be given",
                    "pow_scalar": "torch.pow has no default exponent",
                    "pow_int": "torch.pow has no default exponent"}


def attr_cases(spec: OpSpec) -> list[dict[str, Any]]:
    """The attribute settings an op is tested with: its defaults (if torch has them too) + ATTR_CASES."""
    cases = [] if spec.name in NO_TORCH_DEFAULT else [{}]
    return cases + ATTR_CASES.get(spec.name, [])


def full_attrs(spec: OpSpec, attrs: dict[str, Any]) -> dict[str, Any]:
    return spec.attributes(attrs) if attrs else dict(spec.attrs)


def torch_kwargs(spec: OpSpec, attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes for torch: refimpl's names are torch's keyword names, passed as they are."""
    return dict(full_attrs(spec, attrs))


# --- kinks ----------------------------------------------------------------------------------------
def kink_location(kink: Kink, attrs: dict[str, Any]) -> float | str | None:
    """Where ``kink`` sits for these attributes: a number, ``"tie"``, or None (attribute unset)."""
    at = kink.at
    if isinstance(at, (int, float)):
        return float(at)
    if at == "tie":
        return "tie"
    if at == "threshold/beta":
        return attrs["threshold"] / attrs["beta"]
    value = attrs[at]
    return None if value is None else float(value)


def kink_derivative(entry: float | str, attrs: dict[str, Any]) -> float:
    """A Kink.derivative entry as a number: a number or an attribute name (not ``"formula"``,
    which names no number: the test compares it with the smooth branch instead)."""
    if isinstance(entry, (int, float)):
        return float(entry)
    if entry not in attrs:
        raise ValueError(f"Kink.derivative entry {entry!r}: not a number nor one of {sorted(attrs)}")
    return float(attrs[entry])


def numeric_kinks(spec: OpSpec, attrs: dict[str, Any]) -> list[float]:
    locs = [kink_location(k, full_attrs(spec, attrs)) for k in spec.kinks]
    return [x for x in locs if isinstance(x, float)]


# --- sampling -------------------------------------------------------------------------------------
RANGE = 8.0  # |x| <= 8 keeps exp, pow, erf' ... well inside binary32 and binary64


def _draw(rng: random.Random, interval: Interval, near: Sequence[float]) -> float:
    lo, hi = max(interval.lo, -RANGE), min(interval.hi, RANGE)
    kind = rng.random()
    if kind < 0.55:
        x = rng.uniform(lo, hi)
    elif kind < 0.75:  # small magnitudes: expm1, log1p, sin, tanh ... near 0
        x = rng.choice((-1.0, 1.0)) * 10 ** rng.uniform(-6, -1)
    elif kind < 0.85 and math.isfinite(interval.lo):  # just inside the lower boundary (log1p near -1)
        x = interval.lo + 10 ** rng.uniform(-6, 0)
    elif near:  # on both sides of a kink, close to it
        x = rng.choice(near) + rng.choice((-1.0, 1.0)) * 10 ** rng.uniform(-6, 0)
    else:
        x = rng.uniform(lo, hi)
    return x


def sample_points(spec: OpSpec, attrs: dict[str, Any], rng: random.Random, n: int,
                  cast: Callable[[float], float] = float, margin: float = 0.0) -> list[Point]:
    """``n`` points inside the op's domain, never on a kink, some close to kinks and boundaries.

    ``cast`` rounds each coordinate (to binary32, say); ``margin`` > 0 keeps the stencil
    ``[x - margin·|x|, x + margin·|x|]`` (``margin`` at 0) inside the domain and clear of kinks,
    for finite differences.
    """
    kinks = numeric_kinks(spec, attrs)
    tie = any(k.at == "tie" for k in spec.kinks)
    points: list[Point] = []
    while len(points) < n:
        p = tuple(cast(_draw(rng, dom, kinks)) for dom in spec.domain)
        if tie and rng.random() < 0.3:  # nearly tied inputs of maximum/minimum
            p = (p[0], cast(p[0] * (1 + rng.choice((-1.0, 1.0)) * 10 ** rng.uniform(-7, -1))))
        if _acceptable(spec, p, kinks, tie, margin):
            points.append(p)
    return points


def _acceptable(spec: OpSpec, p: Point, kinks: list[float], tie: bool, margin: float) -> bool:
    for x, dom in zip(p, spec.domain):
        h = margin * abs(x) if x != 0 else margin
        if not all(y in dom for y in (x - h, x, x + h)):
            return False
        if any(abs(x - k) <= h for k in kinks) or x in kinks:
            return False
    if tie:
        a, b = p
        if a == b or abs(a - b) <= margin * max(abs(a), abs(b), 1.0):
            return False
    return True


# --- evaluation -----------------------------------------------------------------------------------
def torch_eval(spec: OpSpec, attrs: dict[str, Any], points: Sequence[Point], cts: Sequence[float],
               dtype: str = "float64") -> tuple[list[float], list[Point]]:
    """torch's values and cotangent-weighted gradients at all points (one batched call)."""
    fn = resolve_torch(spec.torch)
    xs = [torch.tensor([p[i] for p in points], dtype=DTYPES[dtype], requires_grad=True)
          for i in range(spec.arity)]
    y = fn(*xs, **(torch_kwargs(spec, attrs) if spec.arity == 1 else {}))
    ct = torch.tensor(list(cts), dtype=DTYPES[dtype])
    gs = torch.autograd.grad(y, xs, ct, allow_unused=True, materialize_grads=True)
    values = y.detach().tolist()
    grads = list(zip(*(g.tolist() for g in gs)))
    return values, grads


def torch_hvp(spec: OpSpec, attrs: dict[str, Any], points: Sequence[Point], cts: Sequence[float],
              vs: Sequence[Point], order: int = 2) -> list[Point]:
    """d/dx (Σᵢ vᵢ · ∂(ct·f)/∂xᵢ) by double backward; for order 3 (unary) d³(ct·f)/dx³ · v."""
    fn = resolve_torch(spec.torch)
    xs = [torch.tensor([p[i] for p in points], dtype=torch.float64, requires_grad=True)
          for i in range(spec.arity)]
    y = fn(*xs, **(torch_kwargs(spec, attrs) if spec.arity == 1 else {}))
    ct = torch.tensor(list(cts), dtype=torch.float64)
    v = [torch.tensor([w[i] for w in vs], dtype=torch.float64) for i in range(spec.arity)]
    gs = list(torch.autograd.grad(y, xs, ct, create_graph=True, materialize_grads=True))
    for _ in range(order - 2):  # unary only: differentiate once more with unit weights
        gs = list(_torch_grad(gs, xs, [torch.ones_like(g) for g in gs], create_graph=True))
    hs = _torch_grad(gs, xs, v, create_graph=False)
    # clone(): abs'' comes back from sgn's backward as an efficient ZeroTensor, whose .tolist()
    # raises "tensor with unallocated storage"
    return list(zip(*(h.clone().tolist() for h in hs)))


def _torch_grad(outs: list[torch.Tensor], xs: list[torch.Tensor], cts: list[torch.Tensor],
                create_graph: bool) -> list[torch.Tensor]:
    """torch.autograd.grad that treats outputs without a graph (piecewise-constant derivatives) as 0."""
    pairs = [(o, c) for o, c in zip(outs, cts) if o.requires_grad]
    if not pairs:
        return [torch.zeros_like(x) for x in xs]
    got = torch.autograd.grad([o for o, _ in pairs], xs, [c for _, c in pairs], allow_unused=True,
                              materialize_grads=True, create_graph=create_graph)
    return list(got)


def ref_eval(spec: OpSpec, attrs: dict[str, Any], point: Point, ct: float,
             system: Any = FLOAT64) -> tuple[float, Point]:
    """refimpl's value and cotangent-weighted gradient at one point."""
    leaves = [Value(x, system=system) for x in point]
    y = apply(spec, *leaves, **attrs)
    return float(y.data), tuple(float(g) for g in grad(y, leaves, ct))


def ref_hvp(spec: OpSpec, attrs: dict[str, Any], point: Point, ct: float, v: Point,
            order: int = 2) -> Point:
    """The same product as :func:`torch_hvp`, by differentiating refimpl's create_graph gradient."""
    leaves = [Value(x) for x in point]
    y = apply(spec, *leaves, **attrs)
    gs = list(grad(y, leaves, ct, create_graph=True))
    for _ in range(order - 2):
        gs = list(grad(gs, leaves, create_graph=True, allow_unused=True))
        gs = [Value(0.0, False) if g is None else g for g in gs]
    s = sum((g * w for g, w in zip(gs, v)), start=Value(0.0, False))
    return tuple(0.0 if h is None else float(h) for h in grad(s, leaves, allow_unused=True))


# --- error scales ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scale:
    """Absolute error scales added to |torch| in ``|ref - torch| <= k·eps·(|torch| + scale)``.

    ``value(p, attrs)`` is for f; ``grad(p, attrs)`` gives one scale per input for the local
    derivative (the harness multiplies by |cotangent|). Both default to 0: the result is then
    compared relative to itself, which holds for every op whose formula has no cancellation:
    inputs are exact, and each step (IEEE + - * / sqrt, or a libm/SLEEF exp, log, sin … good to
    an ulp or so) adds a relative error of a few ulps at most.
    """

    value: Callable[[Point, dict[str, Any]], float] = lambda p, a: 0.0
    grad: Callable[[Point, dict[str, Any]], Point] = lambda p, a: (0.0,) * len(p)
    hvp: Callable[[Point, dict[str, Any]], float] = lambda p, a: 0.0


def _sig(t: float) -> float:
    return 1 / (1 + math.exp(-t)) if t >= 0 else math.exp(t) / (1 + math.exp(t))


def _phi(x: float) -> float:
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


_K = math.sqrt(2 / math.pi)

def _log_abs(x: float) -> float:
    return abs(math.log(x)) if x > 0 else 0.0


SCALES: dict[str, Scale] = {
    # expm1' = out + 1: out carries a relative error ε, so out + 1 one of ε·|out| absolute, large
    # relative to out + 1 = exp(x) once x < -1.
    "expm1": Scale(grad=lambda p, a: (abs(math.expm1(p[0])),), hvp=lambda p, a: abs(math.expm1(p[0]))),
    # H·v of a/b: (-v_b/b², -v_a/b² + 2a·v_b/b³): the second entry is a difference.
    "div": Scale(hvp=lambda p, a: (1 + 2 * abs(p[0] / p[1])) / p[1] ** 2),
    # 1 - out²: out = tanh(x) carries a relative error ε from tanh itself, so 1 - out² carries an
    # absolute one of 2ε·out², large relative to 1 - out² once |x| > 1 or so.
    "tanh": Scale(grad=lambda p, a: (2 * math.tanh(p[0]) ** 2,),
                  hvp=lambda p, a: 4 * math.tanh(p[0]) ** 2),
    # out·(1 - out): the same cancellation in 1 - out, an absolute error ε·out·out.
    "sigmoid": Scale(grad=lambda p, a: (_sig(p[0]) ** 2,), hvp=lambda p, a: 2 * _sig(p[0]) ** 2),
    # σ(x)·(1 + x·(1 - σ(x))): 1 - σ absorbs ε·σ, the sum 1 + x·(…) crosses 0 near x ≈ -1.28.
    "silu": Scale(grad=lambda p, a: (_sig(p[0]) * (1 + 2 * abs(p[0])),),
                  hvp=lambda p, a: 2 + 4 * abs(p[0]) + p[0] ** 2),
    # 2/√π·exp(-x²): x² is rounded (relative ε), so exp(-x²) carries a relative error x²·ε.
    "erf": Scale(grad=lambda p, a: (2 / math.sqrt(math.pi) * math.exp(-p[0] ** 2) * p[0] ** 2,),
                 hvp=lambda p, a: 4 / math.sqrt(math.pi) * math.exp(-p[0] ** 2) * (1 + abs(p[0])) ** 3),
    # log1p(exp(x·β))/β: x·β is rounded (relative ε), which moves f by ε·|x·f'(x)|; same for σ(xβ).
    "softplus": Scale(value=lambda p, a: abs(p[0]) * _sig(p[0] * a["beta"]),
                      grad=lambda p, a: (abs(p[0] * a["beta"]) * _sig(p[0] * a["beta"]),),
                      hvp=lambda p, a: a["beta"] * (1 + abs(p[0] * a["beta"]))),
    # x·Φ(x) with Φ = (1 + erf(x/√2))/2, or (1 + tanh(·))/2: for x < 0 the 1 + erf (1 + tanh)
    # cancels and keeps the absolute error ε of erf (tanh), so x·Φ has one of ε·|x|. The derivative
    # Φ + x·φ adds ε (from Φ) to the error of x·φ: exp(-x²/2) with x² rounded is off by x²·ε
    # relative; in the tanh form x·(1 - t²)·… has the cancellation of tanh' (2ε·t² absolute).
    "gelu": Scale(value=lambda p, a: abs(p[0]),
                  grad=lambda p, a: (1 + abs(p[0]) * (_phi(p[0]) * (2 + p[0] ** 2)
                                                      if a["approximate"] == "none"
                                                      else _K * (1 + 0.14 * p[0] ** 2)),),
                  hvp=lambda p, a: (1 + abs(p[0])) ** 4),
    # a**b is exp(b·log a) inside any pow: its relative error grows with the exponent |b·log a|
    # (measured: torch's float32 pow is 3 ulps off at |b·log a| ≈ 23); the derivative
    # b·a**(b-1) rounds b - 1 first (float32), then the same; out·log(a) inherits out's error.
    "pow": Scale(value=lambda p, a: abs(p[0] ** p[1] * p[1]) * _log_abs(p[0]),
                 grad=lambda p, a: (abs(p[1] * p[0] ** (p[1] - 1) * (p[1] - 1)) * _log_abs(p[0]),
                                    abs(p[0] ** p[1] * p[1]) * _log_abs(p[0]) ** 2),
                 hvp=lambda p, a: abs(p[0] ** p[1]) * (1 + _log_abs(p[0])) ** 2
                 * (1 + abs(p[1])) ** 2 * (1 + 1 / p[0]) ** 2),
    "pow_scalar": Scale(value=lambda p, a: abs(p[0] ** a["exponent"] * a["exponent"]) * _log_abs(p[0]),
                        grad=lambda p, a: (abs(a["exponent"] * (a["exponent"] - 1)
                                               * p[0] ** (a["exponent"] - 1)) * _log_abs(p[0]),)),
    # sin, cos, exp, log, log1p, sqrt, div, mul, sub, add ...: scale 0 (see the Scale docstring);
    # sub and add of exact inputs are correctly rounded, so even their cancellation costs nothing.
}


def scale(spec: OpSpec) -> Scale:
    return SCALES.get(spec.name, Scale())


def fmt(spec: OpSpec, attrs: dict[str, Any], point: Point) -> str:
    a = f" {attrs}" if attrs else ""
    return f"{spec.name}{a} at {', '.join(repr(x) for x in point)}"


def assert_close(what: str, ref: float, want: float, tol_scale: float, k: float, eps: float,
                 where: str) -> None:
    """|ref - want| <= k·eps·(|want| + tol_scale); non-finite values must match exactly."""
    __tracebackhide__ = True
    if not (math.isfinite(want) and math.isfinite(ref)):
        same = (ref == want) or (math.isnan(ref) and math.isnan(want))
        assert same, f"{where}: {what} refimpl={ref!r} torch={want!r}"
        return
    unit = eps * (abs(want) + tol_scale)
    err = abs(ref - want)
    assert err <= k * unit, (f"{where}: {what} refimpl={ref!r} torch={want!r} |diff|={err:.3g} > "
                             f"{k * unit:.3g} = {k}·eps·(|torch| + scale {tol_scale:.3g})")


def f32(x: float) -> float:
    """Round a binary64 number to binary32 (as refimpl's FLOAT32 does)."""
    from refimpl.numbers import round_to_float32

    return round_to_float32(x)


def random_cotangent(rng: random.Random) -> float:
    """A cotangent in ±[0.5, 2), never 1: a unit cotangent would hide a missing multiplication."""
    return rng.choice((-1.0, 1.0)) * rng.uniform(0.5, 2.0)
