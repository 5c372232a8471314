"""The torch side: resolve an op's declared torch name and evaluate it with autograd.

torch is imported on first use, not with the module: the worker that serves an implementation in
its own process (conformance/commands/serve.py) and other torch-free paths start in a fraction of the time.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any, Callable

from refimpl import OPS
from refimpl.ops import OpSpec


@cache
def resolve(dotted: str) -> Callable[..., Any]:
    """``"torch.nn.functional.gelu"`` → the function. Fails loudly on a name torch does not have."""
    module, _, attr = dotted.rpartition(".")
    fn = getattr(importlib.import_module(module), attr, None)
    if not callable(fn):
        raise LookupError(f"torch has no callable {dotted!r}")
    return fn


def value_and_grad(spec: OpSpec, inputs: tuple[float, ...], attrs: dict[str, Any],
                   cotangent: float, dtype: Any = None) -> tuple[float, list[float]]:
    """The op's value at ``inputs`` and the vector-Jacobian product with ``cotangent``, in torch
    (``dtype``: a torch dtype, float64 by default)."""
    import torch

    dtype = torch.float64 if dtype is None else dtype
    xs = [torch.tensor(x, dtype=dtype, requires_grad=True) for x in inputs]
    out = resolve(spec.torch)(*xs, **attrs)
    grads = torch.autograd.grad(out, xs, torch.tensor(cotangent, dtype=dtype), allow_unused=True)
    return out.item(), [0.0 if g is None else g.item() for g in grads]


def call(op: str, *inputs: Any, **attrs: Any) -> Any:
    """Apply the torch equivalent of refimpl's op ``op`` (named in the op table)."""
    return resolve(OPS[op].torch)(*inputs, **attrs)
