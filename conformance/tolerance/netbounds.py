"""Error bounds for a whole training run: the tolerances of the network kind.

The free-running entries of a training run are judged with ``SAFETY × bound + tiny``, where *bound*
comes from running the *whole run* in refimpl in :class:`~conformance.tolerance.bounds.BoundNS`:
parameters after step ``t`` carry their error bound into step ``t + 1``, so the tolerance grows as
the run amplifies differences (a first-order, Wilkinson-style bound; see ``docs/tolerances.md``).
Two things are needed beyond the graph kind's bounds, and they live here, next to
:mod:`conformance.tolerance.bounds` rather than in it:

* ``**``: ``BoundNS`` has none, which refimpl.optim needs for Adam's bias corrections
  (``1 - beta1**step``); :class:`NetBoundNS` adds it.
* each optimizer update bounded as one function (:func:`bounded_step`: signed sensitivities from
  refimpl.optim's own code on dual numbers, plus its rounding), because elementwise bounds of Adam's
  ``m/(sqrt(v) + eps)`` forget that ``m`` and ``v`` come from the same gradient and overstate the
  update's sensitivity by ~``2|g|/eps``.

The bound stays honest but grows faster than the real discrepancy (it adds |contributions| over all
paths: through every sample of the batch and through the forward and the backward pass), measured
at 1–100× per step — which is why the judge (:mod:`conformance.verdict.network`) also has anchored,
one-step entries.
"""

from __future__ import annotations

import math
from typing import Any

from conformance.case.network import DTYPES
from conformance.tolerance.bounds import LIBM_ULPS, TINY, Bounded, BoundNS, bound_system
from refimpl import optim as roptim
from refimpl.numbers import FloatNS

TINY32 = 4 * 2.0**-149  # a few float32 subnormals: the floor of a float32 tolerance


def tiny(dtype: str) -> float:
    """The floor of a tolerance: a few subnormals of the dtype (the bound does not model underflow)."""
    return TINY32 if dtype == "float32" else TINY


# --- error bounds for a whole run: BoundNS with powers ------------------------------------------------

class _Pow:
    """``**`` for :class:`Bounded`, which :mod:`refimpl.optim` needs for Adam's bias corrections
    (``1 - beta1**step``): ``conformance.tolerance.bounds.Bounded`` has none. Mixed into the number class of
    a :class:`~conformance.tolerance.bounds.BoundNS`, so it keeps that format's ``u`` and ``eta``."""

    __slots__ = ()

    def __pow__(self: Any, other: Any) -> Bounded:
        if not isinstance(other, (Bounded, int, float)):
            return NotImplemented
        o = self._lift(other)
        v = FloatNS.pow(self.v, o.v)
        da = abs(o.v * FloatNS.pow(self.v, o.v - 1)) if self.e and o.v != 0 else 0.0
        db = abs(v * FloatNS.log(self.v)) if o.e else 0.0
        e = (0.0 if da == 0 else da * self.e) + (0.0 if db == 0 else db * o.e)
        return type(self)(v, e + LIBM_ULPS * (self.u * abs(v) + getattr(self, "eta", 0.0)))

    def __rpow__(self: Any, other: Any) -> Bounded:
        if not isinstance(other, (int, float)):
            return NotImplemented
        return self._lift(other) ** self


class NetBoundNS(BoundNS):
    """A :class:`~conformance.tolerance.bounds.BoundNS` (the same format, rounding and constants) whose
    numbers also support ``**`` — see :class:`_Pow`. Built from one with :meth:`of`."""

    @classmethod
    def of(cls, base: BoundNS) -> NetBoundNS:
        ns = cls.__new__(cls)
        ns.__dict__.update(base.__dict__)
        ns.num = type(base.num.__name__, (_Pow, base.num), {"__slots__": ()})
        for k in ("one", "zero", "pi", "inf"):
            c = getattr(base, k)
            setattr(ns, k, ns.num(c.v, c.e))
        return ns


NET_BOUND = {dtype: NetBoundNS.of(bound_system(dtype)) for dtype in DTYPES}


# --- the error of an optimizer step, bounded as one function ---------------------------------------------
#
# Bounded arithmetic forgets correlations: in Adam's m / (sqrt(v) + eps) both m and v are made from
# the same g, and |∂/∂m|·e_m + |∂/∂v|·e_v overstates the step's sensitivity to g by a factor of about
# 2|g|/eps (at step 1 the update is lr·g/(|g| + eps), whose derivative is lr·eps/(|g| + eps)²). One
# gradient with a large relative error — a sum that cancels — then makes every later bound useless.
# So an update is bounded as a whole: its signed first-order sensitivity to each of its inputs
# (parameter, gradient, optimizer state) comes from running refimpl.optim's own ``update`` on dual
# numbers, and its own rounding from running it in BoundNS on error-free inputs. Where the update is
# not linear within the gradient's error (Adam's near-sign update when g is inside its own rounding
# noise) no first-order bound is honest: that is a branch the rounding decides, flagged like a kink.

class Dual:
    """A value and its partial derivatives (a tuple; ``()`` means all zero) — forward mode."""

    __slots__ = ("d", "v")

    def __init__(self, v: float, d: tuple[float, ...] = ()) -> None:
        self.v = v
        self.d = d

    def __float__(self) -> float:
        return float(self.v)

    def __repr__(self) -> str:
        return f"Dual({self.v!r}, {self.d!r})"

    @staticmethod
    def lift(x: Any) -> Dual:
        return x if isinstance(x, Dual) else Dual(float(x))

    @staticmethod
    def comb(a: tuple[float, ...], ca: float, b: tuple[float, ...], cb: float) -> tuple[float, ...]:
        """ca·a + cb·b for partial vectors (an empty one is zero; 0·inf is 0)."""
        if not a:
            return tuple(_mul_0(cb, y) for y in b)
        if not b:
            return tuple(_mul_0(ca, x) for x in a)
        return tuple(_mul_0(ca, x) + _mul_0(cb, y) for x, y in zip(a, b))

    def __add__(self, o: Any) -> Dual:
        o = Dual.lift(o)
        return Dual(self.v + o.v, Dual.comb(self.d, 1.0, o.d, 1.0))

    __radd__ = __add__

    def __sub__(self, o: Any) -> Dual:
        o = Dual.lift(o)
        return Dual(self.v - o.v, Dual.comb(self.d, 1.0, o.d, -1.0))

    def __rsub__(self, o: Any) -> Dual:
        return Dual.lift(o) - self

    def __mul__(self, o: Any) -> Dual:
        o = Dual.lift(o)
        return Dual(self.v * o.v, Dual.comb(self.d, o.v, o.d, self.v))

    __rmul__ = __mul__

    def __truediv__(self, o: Any) -> Dual:
        o = Dual.lift(o)
        q = FloatNS.div(self.v, o.v)
        if not (self.d or o.d):
            return Dual(q)
        inv = FloatNS.div(1.0, o.v)
        return Dual(q, Dual.comb(self.d, inv, o.d, -q * inv if math.isfinite(q * inv) else math.inf))

    def __rtruediv__(self, o: Any) -> Dual:
        return Dual.lift(o) / self

    def __neg__(self) -> Dual:
        return Dual(-self.v, tuple(-x for x in self.d))

    def __abs__(self) -> Dual:
        return -self if self.v < 0 else self

    def __pow__(self, o: Any) -> Dual:
        o = Dual.lift(o)
        v = FloatNS.pow(self.v, o.v)
        if not (self.d or o.d):
            return Dual(v)
        da = o.v * FloatNS.pow(self.v, o.v - 1) if self.d else 0.0
        db = v * FloatNS.log(self.v) if o.d else 0.0
        return Dual(v, Dual.comb(self.d, da, o.d, db))

    def __rpow__(self, o: Any) -> Dual:
        return Dual.lift(o) ** self

    def __lt__(self, o: Any) -> bool:
        return self.v < float(o)

    def __le__(self, o: Any) -> bool:
        return self.v <= float(o)

    def __gt__(self, o: Any) -> bool:
        return self.v > float(o)

    def __ge__(self, o: Any) -> bool:
        return self.v >= float(o)

    def __eq__(self, o: Any) -> bool:
        return isinstance(o, (Dual, int, float)) and self.v == float(o)

    __hash__ = None  # type: ignore[assignment]


def _mul_0(c: float, x: float) -> float:
    return 0.0 if c == 0.0 or x == 0.0 else c * x


class DualNS:
    """The number-system interface :mod:`refimpl.optim`'s kernels use, over :class:`Dual`."""

    name = "dual"
    rounds = False
    zero, one = Dual(0.0), Dual(1.0)
    pi, inf = Dual(math.pi), Dual(math.inf)

    @staticmethod
    def convert(x: Any) -> Dual:
        return Dual.lift(x)

    @staticmethod
    def round(x: Any) -> Any:
        return x

    @staticmethod
    def val(x: Any) -> float:
        return x.v if isinstance(x, Dual) else x

    @staticmethod
    def div(a: Any, b: Any) -> Dual:
        return Dual.lift(a) / Dual.lift(b)

    @staticmethod
    def sqrt(x: Any) -> Dual:
        x = Dual.lift(x)
        v = FloatNS.sqrt(x.v)
        if not x.d:
            return Dual(v)
        return Dual(v, tuple(_mul_0(FloatNS.div(0.5, v), dx) for dx in x.d))


DUAL = DualNS()
LINEAR_SPREAD = 2.0  # an update is "linear" if its slope in g varies by less than this over g ± 2·e_g
# the normalized updates bend on the scale |g| + eps (or wider, once the state has history): a
# gradient known far better than that needs no probe
PROBE_BELOW = 2.0**-12


def _unit(i: int, n: int) -> tuple[float, ...]:
    return tuple(1.0 if j == i else 0.0 for j in range(n))


def bounded_step(opt: roptim.Optimizer, ns: NetBoundNS, on_nonlinear: Any = None, floor: float = TINY) -> None:
    """``opt.step()`` for parameters holding :class:`Bounded` numbers, each update bounded as a whole
    (see above). ``on_nonlinear(param_index, g)`` is called where the first-order bound cannot hold."""
    if isinstance(opt, roptim.SGD):  # linear in every input: elementwise bounds lose nothing
        opt.step()
        return
    kb = opt.kernels(ns)
    kd = roptim.Kernels(DUAL, contract_fma=False)
    for index, p in enumerate(opt.params):
        if p.grad is None:
            continue
        theta, g = ns.convert(p.data), ns.convert(p.grad)
        state = opt.state.get(p)
        if state is None:
            state = opt.state[p] = {}
            opt.init_state(kb, state)
        keys = [k for k, v in state.items() if isinstance(v, Bounded) and v.e > 0]
        inputs = [theta, g] + [state[k] for k in keys]
        # rounding of this update alone: error-free inputs
        s0 = {k: (ns.num(v.v) if isinstance(v, Bounded) else v) for k, v in state.items()}
        new0 = opt.update(kb, ns.num(theta.v), ns.num(g.v), s0)
        # signed sensitivities to every inexact input
        n = len(inputs)
        sd = {k: (Dual(v.v) if isinstance(v, Bounded) else v) for k, v in state.items()}
        for j, k in enumerate(keys):
            sd[k] = Dual(state[k].v, _unit(2 + j, n))
        newd = opt.update(kd, Dual(theta.v, _unit(0, n)), Dual(g.v, _unit(1, n)), sd)

        p.data = ns.num(new0.v, _spread(newd, inputs) + new0.e)
        for k, v in s0.items():
            if isinstance(v, Bounded):
                s0[k] = ns.num(v.v, _spread(sd[k], inputs) + v.e)
        opt.state[p] = s0
        if (on_nonlinear is not None and g.e > floor
                and g.e > PROBE_BELOW * (abs(g.v) + getattr(opt, "eps", 0.0))
                and not _linear_in_g(opt, kd, theta, g, state)):
            on_nonlinear(index, g)


def _spread(x: Any, inputs: list[Bounded]) -> float:
    """Σ |∂x/∂input| · error(input): the first-order error ``x`` inherits from its inputs."""
    return sum(_mul_0(abs(d), e.e) for d, e in zip(x.d, inputs)) if isinstance(x, Dual) else 0.0


def _linear_in_g(opt: roptim.Optimizer, kd: Any, theta: Bounded, g: Bounded, state: dict[str, Any]) -> bool:
    """Whether the update's slope in g stays within a factor LINEAR_SPREAD over g ± 2·e_g."""

    def slope(x: float) -> float:
        s = {k: (Dual(v.v) if isinstance(v, Bounded) else v) for k, v in state.items()}
        out = opt.update(kd, Dual(theta.v), Dual(x, (1.0,)), s)
        return abs(out.d[0]) if out.d else 0.0

    mid = slope(g.v)
    for x in (g.v - 2 * g.e, g.v + 2 * g.e):
        edge = slope(x)
        lo, hi = min(mid, edge), max(mid, edge)
        if not math.isfinite(hi) or hi > LINEAR_SPREAD * lo:
            return False
    return True
