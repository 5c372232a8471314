"""Optimizers: torch.optim's algorithms with one line of the update wrong (refimpl.optim's classes,
subclassed; the registry ``refimpl.optim.OPTIMIZERS`` points at the buggy class during a run)."""

from __future__ import annotations

from typing import Any

from conformance.impls.zoo.base import Mutant, entries
from refimpl import optim
from refimpl.optim import Kernels


class _DampenedFirstStepSGD(optim.SGD):
    def update(self, k: Kernels, param: Any, grad: Any, state: dict[str, Any]) -> Any:
        if self.momentum != 0 and state["momentum_buffer"] is None:
            g = k.neg(grad) if self.maximize else grad
            if self.weight_decay != 0:
                g = k.add(g, param, alpha=k.s(self.weight_decay))
            buf = state["momentum_buffer"] = k.mul(g, 1 - k.s(self.dampening))  # BUG: torch copies g undamped
            g = k.add(g, buf, alpha=k.s(self.momentum)) if self.nesterov else buf
            return k.add(param, g, alpha=-k.s(self.lr))
        return super().update(k, param, grad, state)


class _NesterovOldBufferSGD(optim.SGD):
    def update(self, k: Kernels, param: Any, grad: Any, state: dict[str, Any]) -> Any:
        if not self.nesterov:
            return super().update(k, param, grad, state)
        s = k.s
        if self.maximize:
            grad = k.neg(grad)
        if self.weight_decay != 0:
            grad = k.add(grad, param, alpha=s(self.weight_decay))
        old = state["momentum_buffer"]
        state["momentum_buffer"] = grad if old is None else k.add(k.mul(old, s(self.momentum)), grad,
                                                                 alpha=1 - s(self.dampening))
        look_ahead = grad if old is None else k.add(grad, old, alpha=s(self.momentum))  # BUG: μ·b before
        return k.add(param, look_ahead, alpha=-s(self.lr))                              # this step's update


class _CoupledAdamW(optim.AdamW):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.decoupled_weight_decay = False  # BUG: AdamW's decay added to the gradient, as Adam's L2


class _AdamBugs:
    """Adam's update (refimpl.optim.Adam.update, line for line) with one of its lines changed."""

    bug = ""

    def update(self: Any, k: Kernels, param: Any, grad: Any, state: dict[str, Any]) -> Any:
        s = k.s
        lr, beta1, beta2 = s(self.lr), s(self.beta1), s(self.beta2)
        if self.maximize:
            grad = k.neg(grad)
        state["step"] += 1
        step = s(state["step"])
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
        if self.bug == "no-bias-correction":
            bias_correction1 = bias_correction2 = 1.0  # BUG: m and v used uncorrected
        step_size = lr / bias_correction1
        bias_correction2_sqrt = k.s_sqrt(bias_correction2)
        if self.amsgrad and self.bug == "amsgrad-max-after-use":
            denom = k.add_scalar(k.div_scalar(k.sqrt(exp_avg_sq), bias_correction2_sqrt), s(self.eps))
            state["max_exp_avg_sq"] = k.maximum(state["max_exp_avg_sq"], exp_avg_sq)  # BUG: kept, never used
            return k.addcdiv(param, exp_avg, denom, value=-step_size)
        if self.amsgrad:
            exp_avg_sq = state["max_exp_avg_sq"] = k.maximum(state["max_exp_avg_sq"], exp_avg_sq)
        if self.bug == "eps-inside-sqrt":
            denom = k.sqrt(k.add_scalar(k.div_scalar(exp_avg_sq, bias_correction2), s(self.eps)))  # BUG
        else:
            denom = k.add_scalar(k.div_scalar(k.sqrt(exp_avg_sq), bias_correction2_sqrt), s(self.eps))
        return k.addcdiv(param, exp_avg, denom, value=-step_size)


def _adam_family(bug: str) -> Any:
    """The patch for an Adam bug: Adam's update is AdamW's too, so both registry entries change."""
    adam = type(f"Adam_{bug}", (_AdamBugs, optim.Adam), {"bug": bug})
    adamw = type(f"AdamW_{bug}", (_AdamBugs, optim.AdamW), {"bug": bug})
    return entries(optim.OPTIMIZERS, adam=adam, adamw=adamw)


class _StepFromOne:
    def init_state(self: Any, k: Kernels, state: dict[str, Any]) -> None:
        super().init_state(k, state)  # type: ignore[misc]
        state["step"] = 1  # BUG: the count starts at 1 and is incremented before use: t is one ahead


class _UncenteredRMSprop(optim.RMSprop):
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
            state["grad_avg"] = k.lerp(state["grad_avg"], grad, 1 - alpha)
        avg = k.add_scalar(k.sqrt(square_avg), s(self.eps))  # BUG: centered, but v - ḡ² never taken
        if self.momentum > 0:
            buf = state["momentum_buffer"] = k.addcdiv(k.mul(state["momentum_buffer"], s(self.momentum)), grad, avg)
            return k.add(param, buf, alpha=-s(self.lr))
        return k.addcdiv(param, grad, avg, value=-s(self.lr))


class _ZeroStartAdagrad(optim.Adagrad):
    def init_state(self, k: Kernels, state: dict[str, Any]) -> None:
        state["step"] = 0
        state["sum"] = k.ns.zero  # BUG: initial_accumulator_value ignored


MUTANTS = [
    Mutant("sgd-dampening-first-step", "optimizer", "SGD's first momentum buffer is (1 − dampening)·g, not g",
           "the update rule b ← μb + (1 − τ)g applied from b = 0 looks uniform; torch starts b at g",
           entries(optim.OPTIMIZERS, sgd=_DampenedFirstStepSGD)),
    Mutant("sgd-nesterov-old-buffer", "optimizer",
           "Nesterov look-ahead g + μ·b with the buffer before this step's update",
           "several Nesterov formulations exist; this one is not torch's",
           entries(optim.OPTIMIZERS, sgd=_NesterovOldBufferSGD)),
    Mutant("adamw-coupled-decay", "optimizer", "AdamW's weight decay added to the gradient (Adam's L2)",
           "the whole point of AdamW, lost by reusing Adam's code path",
           entries(optim.OPTIMIZERS, adamw=_CoupledAdamW)),
    Mutant("adam-no-bias-correction", "optimizer", "Adam without bias correction of m and v",
           "the paper's algorithm box has it; a quick implementation skips it",
           _adam_family("no-bias-correction")),
    Mutant("adam-step-off-by-one", "optimizer", "Adam's step count one ahead in the bias corrections (1 − βᵗ⁺¹)",
           "counting from 1 and incrementing before use",
           entries(optim.OPTIMIZERS, adam=type("Adam_step1", (_StepFromOne, optim.Adam), {}),
                   adamw=type("AdamW_step1", (_StepFromOne, optim.AdamW), {}))),
    Mutant("amsgrad-max-after-use", "optimizer", "amsgrad's running max of v updated after the step, never used",
           "the max is kept in the state, so a quick look at the code finds it",
           _adam_family("amsgrad-max-after-use")),
    Mutant("adam-eps-inside-sqrt", "optimizer", "Adam's denominator sqrt(v̂ + ε) instead of sqrt(v̂) + ε",
           "TF-style epsilon placement; both appear in the literature, only one is torch's",
           _adam_family("eps-inside-sqrt")),
    Mutant("rmsprop-centered-without-mean", "optimizer", "centered RMSprop that never subtracts ḡ²",
           "the mean ḡ is tracked, so centered=True seems to do something",
           entries(optim.OPTIMIZERS, rmsprop=_UncenteredRMSprop)),
    Mutant("adagrad-ignores-initial-accumulator", "optimizer",
           "Adagrad's sum starts at 0, not initial_accumulator_value",
           "the default is 0, so the option is easy to drop",
           entries(optim.OPTIMIZERS, adagrad=_ZeroStartAdagrad)),
]
