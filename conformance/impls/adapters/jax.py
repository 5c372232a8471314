"""JAX as an implementation under test (``--impl jax``), on the CPU, float64 enabled.

Each op is jax's own function (``jax.nn.relu``, ``jnp.maximum``, ``jax.nn.gelu(approximate=False)``,
``jax.nn.logsumexp``, …), so the derivative judged is jax's. ``softplus`` is left out: jax.nn.softplus
has neither torch's ``beta`` nor its ``threshold`` (above which torch's softplus is the identity), so
it is a different function, not a different derivative. The case is a function of a dict of leaves;
``jax.vjp`` gives the value and the gradient of ⟨cotangent, output⟩, and the HVP is ``jax.grad`` of
⟨that gradient, v⟩ — reverse over reverse, as ``run_torch`` does with ``create_graph=True``.
"""

from __future__ import annotations

import os
from importlib.metadata import version
from typing import Any

from conformance.case.graph import GraphCase
from conformance.impls.adapters._common import ArrayAdapter, OpTable, Raw, capabilities, forward, require


def _table(jax: Any) -> OpTable:
    jnp, nn = jax.numpy, jax.nn
    return {
        "neg": lambda x: jnp.negative(x),
        "add": lambda a, b: jnp.add(a, b),
        "sub": lambda a, b: jnp.subtract(a, b),
        "mul": lambda a, b: jnp.multiply(a, b),
        "div": lambda a, b: jnp.divide(a, b),
        "pow": lambda a, b: jnp.power(a, b),
        "pow_scalar": lambda x, exponent: jnp.power(x, float(exponent)),
        "pow_int": lambda x, exponent: jnp.power(x, int(exponent)),  # lax.integer_pow
        "square": lambda x: jnp.square(x),
        "reciprocal": lambda x: jnp.reciprocal(x),
        "abs": lambda x: jnp.abs(x),
        "exp": lambda x: jnp.exp(x),
        "expm1": lambda x: jnp.expm1(x),
        "log": lambda x: jnp.log(x),
        "log1p": lambda x: jnp.log1p(x),
        "sqrt": lambda x: jnp.sqrt(x),
        "sin": lambda x: jnp.sin(x),
        "cos": lambda x: jnp.cos(x),
        "tanh": lambda x: jnp.tanh(x),
        "sigmoid": lambda x: nn.sigmoid(x),
        "erf": lambda x: jax.scipy.special.erf(x),
        "relu": lambda x: nn.relu(x),
        "leaky_relu": lambda x, negative_slope: nn.leaky_relu(x, negative_slope),
        "elu": lambda x, alpha: nn.elu(x, alpha),
        "silu": lambda x: nn.silu(x),
        "gelu": lambda x, approximate: nn.gelu(x, approximate=approximate == "tanh"),
        "clamp": lambda x, min, max: jnp.clip(x, min=min, max=max),
        "maximum": lambda a, b: jnp.maximum(a, b),
        "minimum": lambda a, b: jnp.minimum(a, b),
        "sum": lambda x, dim, keepdim: jnp.sum(x, axis=dim, keepdims=keepdim),
        "mean": lambda x, dim, keepdim: jnp.mean(x, axis=dim, keepdims=keepdim),
        "amax": lambda x, dim, keepdim: jnp.max(x, axis=dim, keepdims=keepdim),
        "logsumexp": lambda x, dim, keepdim: nn.logsumexp(x, axis=dim, keepdims=keepdim),
        "softmax": lambda x, dim: nn.softmax(x, axis=dim),
        "log_softmax": lambda x, dim: nn.log_softmax(x, axis=dim),
        "transpose": lambda x, dim0, dim1: jnp.swapaxes(x, dim0, dim1),
        "reshape": lambda x, shape: jnp.reshape(x, shape),
        "matmul": lambda a, b: jnp.matmul(a, b),
    }


class JaxImpl(ArrayAdapter):
    """jax on the CPU with ``jax_enable_x64`` (else float64 arrays silently become float32)."""

    def __init__(self) -> None:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")  # no probing for accelerators
        jax = require("jax", "jax")
        jax.config.update("jax_enable_x64", True)
        self.jax = jax
        self.name, self.version = "jax", version("jax")
        self.table = _table(jax)
        self.capabilities = capabilities(self.table, ("float64", "float32"), second_order=True)

    def evaluate(self, case: GraphCase) -> Raw:
        jax, jnp = self.jax, self.jax.numpy
        leaves, ct, so = self.leaf_arrays(case)
        cpu = jax.devices("cpu")[0]
        xs = {k: jax.device_put(v, cpu) for k, v in leaves.items()}

        def f(xs: dict[str, Any]) -> Any:
            return forward(case, self.table, xs)

        def grads(xs: dict[str, Any]) -> dict[str, Any]:
            return jax.vjp(f, xs)[1](jnp.asarray(ct))[0]

        value, pull = jax.vjp(f, xs)
        g = pull(jnp.asarray(ct))[0]
        if so is None:
            return value, g, None

        def dot(xs: dict[str, Any]) -> Any:
            gs = grads(xs)
            return sum(jnp.sum(gs[k] * so[k]) for k in gs)

        return value, g, jax.grad(dot)(xs)
