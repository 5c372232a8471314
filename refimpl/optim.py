"""Optimizers: torch.optim's SGD, Adam, AdamW, RMSprop and Adagrad, one scalar at a time.

Each class reproduces the *single-tensor* implementation of torch 2.13 (``_single_tensor_sgd``,
``_single_tensor_adam``, ``_single_tensor_rmsprop``, ``_single_tensor_adagrad`` in
``torch/optim/*.py`` — what ``foreach=False`` runs) line by line, and the algorithm box of its
documentation. The algorithms are elementwise, so running them on each scalar of a tensor is the
same computation as torch's per-tensor one, with per-scalar state (momentum buffers, moments, step
counts) instead of per-tensor state.

Order of operations is torch's, because it decides the rounding:

* every tensor op is one of the handful in :class:`Kernels`, evaluated the way the ATen CPU kernel
  evaluates it on one element — ``add(x, y, alpha)`` is ``x + alpha*y``, ``addcmul`` is
  ``self + (value*t1)*t2``, ``addcdiv`` is ``self + (value*t1)/t2``, ``lerp`` switches formula at
  weight 0.5 — with each result rounded to the number system (binary32 in float32 emulation);
* hyperparameter arithmetic that torch does on Python floats (``1 - beta1**step``,
  ``lr / bias_correction1``, ``lr / (1 + (step-1)*lr_decay)``, ``1 - lr*weight_decay`` …) is done
  in binary64 here too when the parameter is a Python float (float64 and float32 emulation) and
  only cast to the parameter's number system where the kernel takes it (``Scalar.to<scalar_t>()``);
  in mpmath or rational systems it is done in that system, at its precision.

One thing is the compiler's, not the source's: torch's x86-64 CPU kernels are built for AVX2/AVX512
with multiply-add contraction, so ``x + a*y`` (``add`` with alpha, ``addcmul``, ``lerp``) is one
fused multiply-add, rounded once. The default here rounds the product and the sum separately, as
the C++ source reads (and as a build without FMA computes); ``contract_fma=True`` fuses them, which
reproduces torch bit for bit on such machines (tests/test_optim.py checks both). Either way the
two differ by an ulp per op, far inside any sensible tolerance.

And one is the math library's: torch's CPU ``sqrt`` calls MKL's VML (``ATen/cpu/vml.h``), which is
not correctly rounded — about 1 input in 100 comes out 1 ulp from the nearest float, in float64 and
float32 alike. refimpl's ``sqrt`` is correctly rounded (IEEE 754). So Adam, AdamW, RMSprop and
Adagrad can differ from torch in the last bit of a denominator; that is the only deviation from
torch in float64, and it is torch's (the tests swap in torch's sqrt to show everything else is
bit-identical).

Interface: ``opt = SGD(params, lr=0.1, momentum=0.9)`` where ``params`` is an iterable of leaf
:class:`~refimpl.engine.Value` s and/or tensors exposing ``.elements`` (a flat row-major list of
Values); ``opt.step()`` reads each ``p.grad`` (params whose grad is ``None`` are skipped, as in
torch) and updates ``p.data`` in place; ``opt.zero_grad()`` zeroes the grads. Differences from
torch's *interface* (not its arithmetic): no param groups, no ``foreach``/``fused``/``capturable``/
``differentiable`` (there is one implementation, the single-tensor one), hyperparameters are plain
numbers (no Tensor lr/betas, and an ``int`` beta is accepted where torch insists on ``float``), a
parameter listed twice is an error (torch warns and updates it twice), and ``zero_grad`` zeroes by
default (``set_to_none=True`` gives torch's default — then the next ``step`` skips the param).
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from typing import Any, Callable, Iterable

from .engine import Value

__all__ = ["OPTIMIZERS", "SGD", "Adagrad", "Adam", "AdamW", "Kernels", "Optimizer", "RMSprop", "make"]


# --- the arithmetic ---------------------------------------------------------------------------------

def _f64_bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _fma_float(a: float, b: float, c: float, binary32: bool) -> float:
    """``a*b + c`` rounded once, to binary64 or (``binary32``) to binary32, like a hardware FMA."""
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        r = a * b + c  # inf/nan: the result is the same however it is rounded
        return _to_f32(r) if binary32 else r
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:  # IEEE sign of an exact zero: +0 unless both addends are -0
        return a * b + c if a == 0 or b == 0 else 0.0
    try:
        r = float(exact)  # int/int true division: correctly rounded to binary64
    except OverflowError:
        return math.copysign(math.inf, exact)
    if binary32:
        # Round to odd at 53 bits, then to nearest at 24: a correct single rounding (53 >= 24 + 2).
        if Fraction(r) != exact and _f64_bits(r) % 2 == 0:
            r = math.nextafter(r, math.inf if exact > r else -math.inf)
        return _to_f32(r)
    return r


def _to_f32(x: float) -> float:
    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:  # above the binary32 range: round to ±inf (values past MAX + ulp/2)
        return math.copysign(math.inf, x)


class Kernels:
    """The torch tensor ops the optimizers use, on one element, in one number system.

    Tensor operands are numbers of ``ns``; *scalar* operands (``alpha``, ``value``, ``weight``, a
    Python number divided into a tensor) are hyperparameter-domain numbers — see :meth:`s` — cast
    to ``ns`` as the kernel casts them. Every result is rounded by ``ns.round``. Formulas follow
    ATen's CPU kernels (ufunc ``add``, ``PointwiseOpsKernel.cpp``, ``Lerp.h``).
    """

    def __init__(self, ns: Any, contract_fma: bool) -> None:
        self.ns = ns
        self.round = ns.round
        # Python floats: float64 or float32 emulation. Their scalar math is torch's (binary64).
        self.floats = isinstance(ns.zero, float)
        self.fused = contract_fma and self.floats
        self.binary32 = self.floats and ns.rounds

    # hyperparameter domain ----------------------------------------------------------------------
    def s(self, x: Any) -> Any:
        """A hyperparameter as torch computes with it: a Python float, or a number of ``ns``."""
        return float(x) if self.floats else self.ns.convert(x)

    def s_sqrt(self, x: Any) -> Any:
        """Square root in the hyperparameter domain (torch: ``bias_correction2 ** 0.5``)."""
        return x**0.5 if self.floats else self.ns.sqrt(x)

    def cast(self, x: Any) -> Any:
        """``Scalar.to<scalar_t>()``: a hyperparameter-domain number as an element of ``ns``."""
        return self.ns.convert(x)

    # elementwise ops ----------------------------------------------------------------------------
    def fma(self, a: Any, b: Any, c: Any) -> Any:
        """``a*b + c``: fused (one rounding) under ``contract_fma``, else two roundings."""
        if self.fused:
            return _fma_float(a, b, c, self.binary32)
        return self.round(self.round(a * b) + c)

    def neg(self, x: Any) -> Any:
        return -x

    def mul(self, x: Any, scalar: Any) -> Any:
        """``x.mul(scalar)``."""
        return self.round(x * self.cast(scalar))

    def add(self, x: Any, y: Any, alpha: Any = 1) -> Any:
        """``x.add(y, alpha=alpha)`` = ``x + alpha*y``."""
        return self.fma(self.cast(alpha), y, x)

    def add_scalar(self, x: Any, scalar: Any) -> Any:
        """``x.add(scalar)`` (e.g. ``.add_(eps)``)."""
        return self.round(x + self.cast(scalar))

    def div_scalar(self, x: Any, scalar: Any) -> Any:
        """``x / scalar``: a true division by the scalar cast to the dtype (not a reciprocal)."""
        return self.round(self.ns.div(x, self.cast(scalar)))

    def sqrt(self, x: Any) -> Any:
        """Correctly rounded (torch's CPU sqrt, MKL VML, is not always: see the module doc)."""
        return self.round(self.ns.sqrt(x))

    def addcmul(self, x: Any, t1: Any, t2: Any, value: Any = 1) -> Any:
        """``x.addcmul(t1, t2, value=value)`` = ``x + (value*t1)*t2``."""
        return self.fma(self.round(self.cast(value) * t1), t2, x)

    def addcdiv(self, x: Any, t1: Any, t2: Any, value: Any = 1) -> Any:
        """``x.addcdiv(t1, t2, value=value)`` = ``x + (value*t1)/t2`` (value multiplies first)."""
        return self.round(x + self.round(self.ns.div(self.round(self.cast(value) * t1), t2)))

    def lerp(self, start: Any, end: Any, weight: Any) -> Any:
        """``start.lerp(end, weight)``: ``start + w*(end-start)`` if |w| < 0.5, else
        ``end - (end-start)*(1-w)`` (ATen's two-sided formula, exact at both ends)."""
        w = self.cast(weight)
        diff = self.round(end - start)
        if abs(w) < 0.5:
            return self.fma(w, diff, start)
        return self.fma(-self.round(self.ns.one - w), diff, end)

    def maximum(self, a: Any, b: Any) -> Any:
        """``torch.maximum``: NaN-propagating."""
        if a != a:
            return a
        if b != b:
            return b
        return a if a >= b else b


# --- the optimizer base -------------------------------------------------------------------------------

def _flatten(params: Any) -> list[Value]:
    if isinstance(params, Value) or hasattr(params, "elements"):
        raise TypeError("params argument given to the optimizer should be an iterable of Values or "
                        f"tensors, but got a single {type(params).__name__}")
    flat: list[Value] = []
    for item in params:
        entries = item.elements if hasattr(item, "elements") and not isinstance(item, Value) else [item]
        for v in entries:
            if not isinstance(v, Value):
                raise TypeError(f"optimizer can only optimize Values, but one of the params is "
                                f"{type(v).__name__}")
            if not v.is_leaf:
                raise ValueError("can't optimize a non-leaf Value")
            flat.append(v)
    if not flat:
        raise ValueError("optimizer got an empty parameter list")
    if len({id(v) for v in flat}) != len(flat):
        raise ValueError("optimizer got the same parameter twice (torch would warn and update it twice)")
    return flat


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


class Optimizer:
    """Common machinery: flattened params, per-scalar ``state``, ``step`` and ``zero_grad``.

    Subclasses implement ``init_state(k, state)`` (torch's ``_init_group`` state creation, done
    lazily the first time a param has a grad) and ``update(k, param, grad, state) -> new param``
    (the body of torch's ``_single_tensor_*`` loop for one element). Both take the :class:`Kernels`
    of the number system to compute in (:meth:`kernels`), so the same update can be run on other
    numbers than the parameters' own — error bounds, dual numbers — as the conformance suite's
    tolerances do.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any], *,
                 contract_fma: bool = False) -> None:
        self.params = _flatten(params)
        self.defaults = dict(defaults)
        self.contract_fma = contract_fma
        self.state: dict[Value, dict[str, Any]] = {}
        self._kernels: dict[int, Kernels] = {}

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({len(self.params)} scalars, {hyper})"

    def kernels(self, ns: Any) -> Kernels:
        """The :class:`Kernels` of number system ``ns`` with this optimizer's ``contract_fma`` (one
        per system, made on first use)."""
        k = self._kernels.get(id(ns))
        if k is None:
            k = self._kernels[id(ns)] = Kernels(ns, self.contract_fma)
        return k

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One optimisation step over every param with a grad; returns ``closure()`` if given."""
        loss = closure() if closure is not None else None
        for p in self.params:
            if p.grad is None:  # torch skips params without a grad: no update, no step count
                continue
            k = self.kernels(p.ns)
            g = p.grad.data if isinstance(p.grad, Value) else p.grad
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {}
                self.init_state(k, state)
            p.data = self.update(k, p.data, k.ns.convert(g), state)
        return loss

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero every param's grad (``set_to_none=True``: set it to ``None``, torch's default)."""
        for p in self.params:
            if p.grad is not None:
                p.grad = None if set_to_none else p.ns.zero

    def init_state(self, k: Kernels, state: dict[str, Any]) -> None:
        """Fill ``state`` (empty) for one scalar parameter, in ``k``'s number system."""
        raise NotImplementedError

    def update(self, k: Kernels, param: Any, grad: Any, state: dict[str, Any]) -> Any:
        """The new value of one scalar parameter given its gradient; ``state`` is updated in place."""
        raise NotImplementedError


# --- the algorithms ---------------------------------------------------------------------------------

class SGD(Optimizer):
    r"""Stochastic gradient descent with momentum — ``torch.optim.SGD`` (``_single_tensor_sgd``).

    Algorithm (torch docs)::

        g ← -∇f if maximize else ∇f
        if λ ≠ 0:  g ← g + λθ                              (grad.add(param, alpha=λ))
        if μ ≠ 0:
            b ← g                          on the first step (a copy: no dampening)
            b ← μb + (1-τ)g                afterwards        (buf.mul_(μ).add_(g, alpha=1-τ))
            g ← g + μb if nesterov else b                    (grad.add(buf, alpha=μ))
        θ ← θ - γg                                           (param.add_(g, alpha=-γ))

    Validation as torch: lr, momentum, weight_decay ≥ 0 (written ``x < 0`` like torch, so a NaN
    passes), and nesterov needs momentum > 0 and dampening == 0. Deviations: none in float64.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0,
                 dampening: float = 0, weight_decay: float = 0, nesterov: bool = False, *,
                 maximize: bool = False, contract_fma: bool = False) -> None:
        _check(not lr < 0.0, f"Invalid learning rate: {lr}")
        _check(not momentum < 0.0, f"Invalid momentum value: {momentum}")
        _check(not weight_decay < 0.0, f"Invalid weight_decay value: {weight_decay}")
        _check(not (nesterov and (momentum <= 0 or dampening != 0)),
               "Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov,
                                  "maximize": maximize}, contract_fma=contract_fma)
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.weight_decay, self.nesterov, self.maximize = weight_decay, nesterov, maximize

    def init_state(self, k: Kernels, state: dict[str, Any]) -> None:
        state["momentum_buffer"] = None  # created from the first gradient

    def update(self, k: Kernels, param: Any, grad: Any, state: dict[str, Any]) -> Any:
        s = k.s
        if self.maximize:
            grad = k.neg(grad)
        if self.weight_decay != 0:
            grad = k.add(grad, param, alpha=s(self.weight_decay))
        if self.momentum != 0:
            buf = state["momentum_buffer"]
            if buf is None:
                buf = grad  # grad.detach().clone(): the first buffer is the gradient, undamped
            else:
                buf = k.add(k.mul(buf, s(self.momentum)), grad, alpha=1 - s(self.dampening))
            state["momentum_buffer"] = buf
            grad = k.add(grad, buf, alpha=s(self.momentum)) if self.nesterov else buf
        return k.add(param, grad, alpha=-s(self.lr))


class Adam(Optimizer):
    r"""Adam — ``torch.optim.Adam`` (``_single_tensor_adam``, the non-capturable branch).

    Algorithm (torch docs and source)::

        t ← t + 1
        g ← -∇f if maximize else ∇f
        if λ ≠ 0:
            decoupled:  θ ← θ·(1 - γλ)                     (param.mul_(1 - lr*wd); AdamW)
            else:       g ← g + λθ                         (grad.add(param, alpha=λ))
        m ← lerp(m, g, 1-β1)                               (exp_avg.lerp_(grad, 1-β1))
        v ← v·β2 + ((1-β2)·g)·g                            (mul_(β2).addcmul_(g, g, value=1-β2))
        bc1 ← 1 - β1^t;  bc2 ← 1 - β2^t;  step_size ← γ/bc1;  bc2_sqrt ← bc2**0.5   (Python floats)
        if amsgrad:  v_max ← max(v_max, v);  v̂ ← v_max     (max of the *uncorrected* moments)
        else:        v̂ ← v
        denom ← sqrt(v̂)/bc2_sqrt + ε
        θ ← θ + (-step_size·m)/denom                       (param.addcdiv_(m, denom, value=-step_size))

    The bias correction is folded into ``step_size`` and ``denom`` exactly where torch folds it.
    Validation as torch: 0 ≤ lr, 0 ≤ eps, 0 ≤ β1 < 1, 0 ≤ β2 < 1, 0 ≤ weight_decay. Deviations:
    none in the algorithm (``int`` betas are accepted; torch requires floats or Tensors); in the
    last bit, refimpl's sqrt is correctly rounded where torch's (MKL) is 1 ulp off ~1% of the time.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False, contract_fma: bool = False) -> None:
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        _check(len(betas) == 2, f"betas must be a pair (beta1, beta2), got {betas!r}")
        _check(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
        _check(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay, "amsgrad": amsgrad,
                                  "maximize": maximize,
                                  "decoupled_weight_decay": decoupled_weight_decay},
                         contract_fma=contract_fma)
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.weight_decay, self.amsgrad, self.maximize = weight_decay, amsgrad, maximize
        self.decoupled_weight_decay = decoupled_weight_decay

    def init_state(self, k: Kernels, state: dict[str, Any]) -> None:
        state["step"] = 0
        state["exp_avg"] = k.ns.zero
        state["exp_avg_sq"] = k.ns.zero
        if self.amsgrad:
            state["max_exp_avg_sq"] = k.ns.zero

    def update(self, k: Kernels, param: Any, grad: Any, state: dict[str, Any]) -> Any:
        s = k.s
        lr, beta1, beta2 = s(self.lr), s(self.beta1), s(self.beta2)
        if self.maximize:
            grad = k.neg(grad)
        state["step"] += 1
        step = s(state["step"])  # torch: a float tensor read back with .item()

        if self.weight_decay != 0:
            if self.decoupled_weight_decay:
                param = k.mul(param, 1 - lr * s(self.weight_decay))
            else:
                grad = k.add(grad, param, alpha=s(self.weight_decay))

        exp_avg = state["exp_avg"] = k.lerp(state["exp_avg"], grad, 1 - beta1)
        exp_avg_sq = state["exp_avg_sq"] = k.addcmul(k.mul(state["exp_avg_sq"], beta2), grad, grad,
                                                     value=1 - beta2)

        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = k.s_sqrt(bias_correction2)

        if self.amsgrad:
            exp_avg_sq = state["max_exp_avg_sq"] = k.maximum(state["max_exp_avg_sq"], exp_avg_sq)
        denom = k.add_scalar(k.div_scalar(k.sqrt(exp_avg_sq), bias_correction2_sqrt), s(self.eps))
        return k.addcdiv(param, exp_avg, denom, value=-step_size)


class AdamW(Adam):
    r"""AdamW — ``torch.optim.AdamW``, which in torch 2.13 *is* ``Adam(decoupled_weight_decay=True)``.

    Algorithm (torch docs)::

        θ ← θ - γλθ   (param.mul_(1 - lr*weight_decay), before the moments; skipped if λ = 0)
        … then Adam without the L2 term in the gradient.

    Same validation as :class:`Adam`; default weight_decay 1e-2. Deviations: as :class:`Adam`.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 contract_fma: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True, contract_fma=contract_fma)


class RMSprop(Optimizer):
    r"""RMSprop — ``torch.optim.RMSprop`` (``_single_tensor_rmsprop``).

    Algorithm (torch docs and source)::

        g ← -∇f if maximize else ∇f
        if λ ≠ 0:  g ← g + λθ                            (grad.add(param, alpha=λ))
        v ← v·α + ((1-α)·g)·g                            (mul_(α).addcmul_(g, g, value=1-α))
        if centered:
            ḡ ← lerp(ḡ, g, 1-α)                          (grad_avg.lerp_(grad, 1-α))
            avg ← sqrt(v - ḡ·ḡ) + ε                      (addcmul(ḡ, ḡ, value=-1).sqrt_().add_(ε))
        else:
            avg ← sqrt(v) + ε
        if μ > 0:  b ← b·μ + g/avg;  θ ← θ - γb          (buffer starts at 0, unlike SGD's)
        else:      θ ← θ + (-γ·g)/avg                    (param.addcdiv_(g, avg, value=-γ))

    Validation as torch: lr, eps, momentum, weight_decay, alpha ≥ 0 (alpha has no upper bound in
    torch). ``maximize`` is keyword-only here (in torch it follows ``capturable`` and ``foreach``
    positionally). Deviations: none in the algorithm; sqrt correctly rounded (see the module doc).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
                 centered: bool = False, *, maximize: bool = False,
                 contract_fma: bool = False) -> None:
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        _check(0.0 <= momentum, f"Invalid momentum value: {momentum}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        _check(0.0 <= alpha, f"Invalid alpha value: {alpha}")
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps,
                                  "weight_decay": weight_decay, "momentum": momentum,
                                  "centered": centered, "maximize": maximize},
                         contract_fma=contract_fma)
        self.lr, self.alpha, self.eps, self.weight_decay = lr, alpha, eps, weight_decay
        self.momentum, self.centered, self.maximize = momentum, centered, maximize

    def init_state(self, k: Kernels, state: dict[str, Any]) -> None:
        state["step"] = 0
        state["square_avg"] = k.ns.zero
        if self.momentum > 0:
            state["momentum_buffer"] = k.ns.zero
        if self.centered:
            state["grad_avg"] = k.ns.zero

    def update(self, k: Kernels, param: Any, grad: Any, state: dict[str, Any]) -> Any:
        s = k.s
        alpha = s(self.alpha)
        if self.maximize:
            grad = k.neg(grad)
        state["step"] += 1
        if self.weight_decay != 0:
            grad = k.add(grad, param, alpha=s(self.weight_decay))

        square_avg = state["square_avg"] = k.addcmul(k.mul(state["square_avg"], alpha), grad, grad,
                                                     value=1 - alpha)
        if self.centered:
            grad_avg = state["grad_avg"] = k.lerp(state["grad_avg"], grad, 1 - alpha)
            avg = k.sqrt(k.addcmul(square_avg, grad_avg, grad_avg, value=-1))
        else:
            avg = k.sqrt(square_avg)
        avg = k.add_scalar(avg, s(self.eps))

        if self.momentum > 0:
            buf = state["momentum_buffer"] = k.addcdiv(k.mul(state["momentum_buffer"],
                                                             s(self.momentum)), grad, avg)
            return k.add(param, buf, alpha=-s(self.lr))
        return k.addcdiv(param, grad, avg, value=-s(self.lr))


class Adagrad(Optimizer):
    r"""Adagrad — ``torch.optim.Adagrad`` (``_single_tensor_adagrad``, dense gradients).

    Algorithm (torch docs and source)::

        t ← t + 1;  g ← -∇f if maximize else ∇f
        if λ ≠ 0:  g ← g + λθ                                    (grad.add(param, alpha=λ))
        clr ← γ / (1 + (t-1)·η)                                  (Python float)
        sum ← sum + (1·g)·g          (starts at initial_accumulator_value; addcmul_(g, g, value=1))
        θ ← θ + (-clr·g)/(sqrt(sum) + ε)                          (param.addcdiv_(g, std, value=-clr))

    Validation as torch: lr, lr_decay, weight_decay, initial_accumulator_value, eps ≥ 0.
    ``maximize`` is keyword-only, as in torch. Dense gradients only (no sparse path). Deviations:
    none in the algorithm; sqrt correctly rounded (see the module doc).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0,
                 eps: float = 1e-10, *, maximize: bool = False, contract_fma: bool = False) -> None:
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= lr_decay, f"Invalid lr_decay value: {lr_decay}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        _check(0.0 <= initial_accumulator_value,
               f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        super().__init__(params, {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                                  "initial_accumulator_value": initial_accumulator_value,
                                  "eps": eps, "maximize": maximize}, contract_fma=contract_fma)
        self.lr, self.lr_decay, self.weight_decay = lr, lr_decay, weight_decay
        self.initial_accumulator_value, self.eps, self.maximize = initial_accumulator_value, eps, maximize

    def init_state(self, k: Kernels, state: dict[str, Any]) -> None:
        state["step"] = 0
        state["sum"] = k.cast(k.s(self.initial_accumulator_value))  # torch.full_like(p, value)

    def update(self, k: Kernels, param: Any, grad: Any, state: dict[str, Any]) -> Any:
        s = k.s
        state["step"] += 1
        step = s(state["step"])
        if self.maximize:
            grad = k.neg(grad)
        if self.weight_decay != 0:
            grad = k.add(grad, param, alpha=s(self.weight_decay))
        clr = s(self.lr) / (1 + (step - 1) * s(self.lr_decay))
        state_sum = state["sum"] = k.addcmul(state["sum"], grad, grad, value=1)
        std = k.add_scalar(k.sqrt(state_sum), s(self.eps))
        return k.addcdiv(param, grad, std, value=-clr)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad,
}


def make(name: str, params: Iterable[Any], **hyper: Any) -> Optimizer:
    """``make("adam", params, lr=1e-2)``: an optimizer by (case-insensitive) name."""
    cls = OPTIMIZERS.get(name.lower())
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    return cls(params, **hyper)
