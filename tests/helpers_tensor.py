"""Shared checks for the tensor, loss and layer tests: refimpl against torch 2.13 in float64.

The tolerance is ulp-scale and *scaled honestly*: ``|ref - torch| <= ULPS·eps·scale`` elementwise,
where ``scale`` is the magnitude the computation actually handles — for a sum or a dot product the
sum of ``|terms|``, not the (possibly cancelled) result. Two correct float64 implementations of a
sum of n terms, summing in different orders, differ by at most about ``n·eps·Σ|terms|``; for the
small sizes here (n <= 16 or so terms per entry, a handful of roundings per term) 64·eps·scale
covers that with room to spare, yet a planted relative error of 1e-9 (some 4.5 million ulps) fails
unless the scale is 70,000 times the result, i.e. unless the result is almost entirely cancellation.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

import torch

from refimpl.tensor import Tensor, grad, tensor

torch.set_default_dtype(torch.float64)

EPS = 2.0**-52
ULPS = 64


def resolve_torch(name: str) -> Callable[..., Any]:
    """``"torch.nn.functional.gelu"`` -> the function (the op table names torch by a dotted string)."""
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def to_torch(t: Tensor) -> torch.Tensor:
    """A refimpl tensor's values as a float64 torch tensor (same shape)."""
    return torch.tensor(t.flat(), dtype=torch.float64).reshape(t.shape)


def pair(values: torch.Tensor, requires_grad: bool = True) -> tuple[Tensor, torch.Tensor]:
    """The same numbers as a refimpl leaf tensor and a torch leaf tensor."""
    values = values.detach().to(torch.float64)
    ref = tensor(values.tolist(), requires_grad=requires_grad)
    return ref, values.clone().requires_grad_(requires_grad)


def cotangent(gen: torch.Generator, shape: Sequence[int]) -> torch.Tensor:
    """A random non-unit cotangent: magnitudes in [0.5, 2), random signs."""
    mag = 0.5 + 1.5 * torch.rand(tuple(shape), generator=gen)
    sign = torch.where(torch.rand(tuple(shape), generator=gen) < 0.5, -1.0, 1.0)
    return mag * sign


def assert_close(what: str, ref: Any, want: torch.Tensor, scale: Any = None, ulps: float = ULPS) -> None:
    """``|ref - want| <= ulps·eps·scale`` elementwise; NaN and ±inf must match exactly.

    ``ref`` is a refimpl Tensor (or nested list), ``want`` torch's answer, ``scale`` the honest
    magnitude of the computation (broadcastable to ``want``; ``None`` means ``|want|``, right for a
    result of one or two roundings; 0 demands bit-for-bit equality).
    """
    __tracebackhide__ = True
    got = to_torch(ref) if isinstance(ref, Tensor) else torch.as_tensor(ref, dtype=torch.float64)
    want = want.detach()
    assert tuple(got.shape) == tuple(want.shape), (
        f"{what}: refimpl shape {tuple(got.shape)} != torch shape {tuple(want.shape)}")
    scale = want.abs() if scale is None else torch.as_tensor(scale, dtype=torch.float64).detach()
    scale = torch.broadcast_to(scale, want.shape)
    finite = torch.isfinite(want)
    same_special = (got == want) | (torch.isnan(got) & torch.isnan(want))
    bad_special = ~finite & ~same_special
    assert not bad_special.any(), (
        f"{what}: non-finite mismatch at {bad_special.nonzero().tolist()[:5]}: "
        f"refimpl {got[bad_special].tolist()[:5]} vs torch {want[bad_special].tolist()[:5]}")
    err = torch.where(finite, (got - want).abs(), torch.zeros_like(want))
    allowed = ulps * EPS * scale
    bad = err > allowed
    if bad.any():
        ratio = torch.where(bad, err / allowed.clamp_min(torch.finfo(torch.float64).tiny), 0)
        i = tuple(int(k) for k in torch.nonzero(ratio == ratio.max())[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {want.numel()} elements off (shape {tuple(want.shape)}); "
            f"worst at {i}: refimpl {got[i].item()!r} vs torch {want[i].item()!r}, "
            f"|diff| {err[i].item():.3e} > {ulps}·eps·scale = {allowed[i].item():.3e} "
            f"(scale {scale[i].item():.3e}, {err[i].item() / (EPS * max(scale[i].item(), 1e-300)):.1f} ulps)")


def magnitudes(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor],
               ct: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Honest scales for a sum of products (sum, mean, matmul, broadcast add/mul, gather …).

    ``fn`` evaluated on ``|inputs|`` is Σ|terms| of each output, and its gradient on ``|inputs|``
    with cotangent ``|ct|`` is Σ|terms| of each input's gradient: every term is a product of
    non-negative factors, so nothing cancels.
    """
    leaves = [x.detach().abs().requires_grad_() for x in inputs]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, leaves, ct.abs(), allow_unused=True)
    return out.detach(), [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]


def check(what: str, ref_fn: Callable[..., Tensor], torch_fn: Callable[..., torch.Tensor],
          inputs: Sequence[torch.Tensor], gen: torch.Generator, *,
          scales: Callable[[list[torch.Tensor], torch.Tensor], tuple[Any, list[Any]]] | None = None,
          ulps: float = ULPS) -> None:
    """Value and gradient (random cotangent) of ``ref_fn`` against ``torch_fn`` on the same inputs.

    ``scales(torch_inputs, cotangent)`` gives ``(value scale, [gradient scale per input])``;
    without it every scale is ``|torch's result|``.
    """
    __tracebackhide__ = True
    refs, tins = zip(*(pair(x) for x in inputs))
    out_t = torch_fn(*tins)
    out_r = ref_fn(*refs)
    shapes = " ".join(str(tuple(x.shape)) for x in inputs)
    ct = cotangent(gen, out_t.shape)
    value_scale, grad_scales = scales(list(tins), ct) if scales else (None, None)
    assert_close(f"{what} value, inputs {shapes}", out_r, out_t, value_scale, ulps)
    want = torch.autograd.grad(out_t, tins, ct, allow_unused=True)
    got = grad(out_r, list(refs), ct.tolist(), allow_unused=True)
    for k, (g_r, g_t) in enumerate(zip(got, want)):
        g_t = torch.zeros_like(tins[k]) if g_t is None else g_t
        g_r = torch.zeros_like(tins[k]) if g_r is None else g_r
        assert_close(f"{what} d/d(input {k}), inputs {shapes}", g_r, g_t,
                     None if grad_scales is None else grad_scales[k], ulps)
