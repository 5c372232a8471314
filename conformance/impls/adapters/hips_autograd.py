"""HIPS autograd as an implementation under test (``--impl autograd``).

autograd differentiates numpy code through ``autograd.numpy`` and ``autograd.scipy.special``; each
op here is the function of those modules named like numpy's or scipy's (``np.maximum``, ``np.clip``,
``special.expit`` for sigmoid, ``special.logsumexp``). autograd has no neural-network module, so
relu, leaky_relu, elu, softplus, silu, gelu, softmax and log_softmax are left out (unsupported)
rather than rebuilt from other functions. ``erf``, ``sigmoid`` and ``logsumexp`` need scipy, which
autograd does not require: without it they are left out too. The module is named ``hips_autograd``
so that it never shadows the library (``import autograd``).

The case is a function of a dict of leaves: ``make_vjp`` gives the value and the gradient of
⟨cotangent, output⟩; the HVP is ``grad`` of ⟨that gradient, v⟩ (autograd differentiates its own
backward pass, as torch does with ``create_graph=True``).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from conformance.case.graph import GraphCase
from conformance.impls.adapters._common import ArrayAdapter, OpTable, Raw, capabilities, forward, require


def _table(np: Any, special: Any | None) -> OpTable:
    table: OpTable = {
        "neg": lambda x: np.negative(x),
        "add": lambda a, b: np.add(a, b),
        "sub": lambda a, b: np.subtract(a, b),
        "mul": lambda a, b: np.multiply(a, b),
        "div": lambda a, b: np.divide(a, b),
        "pow": lambda a, b: np.power(a, b),
        "pow_scalar": lambda x, exponent: np.power(x, float(exponent)),
        "pow_int": lambda x, exponent: np.power(x, int(exponent)),
        "square": lambda x: np.square(x),
        "reciprocal": lambda x: np.reciprocal(x),
        "abs": lambda x: np.abs(x),
        "exp": lambda x: np.exp(x),
        "expm1": lambda x: np.expm1(x),
        "log": lambda x: np.log(x),
        "log1p": lambda x: np.log1p(x),
        "sqrt": lambda x: np.sqrt(x),
        "sin": lambda x: np.sin(x),
        "cos": lambda x: np.cos(x),
        "tanh": lambda x: np.tanh(x),
        "clamp": lambda x, min, max: np.clip(x, min, max),
        "maximum": lambda a, b: np.maximum(a, b),
        "minimum": lambda a, b: np.minimum(a, b),
        "sum": lambda x, dim, keepdim: np.sum(x, axis=dim, keepdims=keepdim),
        "mean": lambda x, dim, keepdim: np.mean(x, axis=dim, keepdims=keepdim),
        "amax": lambda x, dim, keepdim: np.max(x, axis=dim, keepdims=keepdim),
        "transpose": lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1),
        "reshape": lambda x, shape: np.reshape(x, shape),
        "matmul": lambda a, b: np.matmul(a, b),
    }
    if special is not None:
        table["sigmoid"] = lambda x: special.expit(x)
        table["erf"] = lambda x: special.erf(x)
        table["logsumexp"] = lambda x, dim, keepdim: special.logsumexp(x, axis=dim, keepdims=keepdim)
    return table


class AutogradImpl(ArrayAdapter):
    """HIPS autograd over numpy: float64 and float32, second order."""

    def __init__(self) -> None:
        autograd = require("autograd", "autograd")
        np = require("autograd.numpy", "autograd")
        try:
            special = require("autograd.scipy.special", "autograd")
        except ImportError:  # scipy is optional for autograd
            special = None
        self.autograd, self.np = autograd, np
        self.name, self.version = "autograd", version("autograd")
        self.table = _table(np, special)
        self.capabilities = capabilities(self.table, ("float64", "float32"), second_order=True)

    def evaluate(self, case: GraphCase) -> Raw:
        ag, np = self.autograd, self.np
        xs, ct, so = self.leaf_arrays(case)

        def f(xs: dict[str, Any]) -> Any:
            return forward(case, self.table, xs)

        def grads(xs: dict[str, Any]) -> dict[str, Any]:
            return ag.make_vjp(f)(xs)[0](ct)

        pull, value = ag.make_vjp(f)(xs)
        g = pull(ct)
        if so is None:
            return value, g, None

        def dot(xs: dict[str, Any]) -> Any:
            gs = grads(xs)
            return sum(np.sum(gs[k] * so[k]) for k in gs)

        return value, g, ag.grad(dot)(xs)
