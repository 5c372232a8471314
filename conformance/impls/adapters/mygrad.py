"""MyGrad as an implementation under test (``--impl mygrad``).

MyGrad is a numpy-backed, torch-like tape: ``mygrad.tensor`` leaves, ``out.backward(cotangent)``,
then ``leaf.grad``. Each op is MyGrad's own function (``mg.maximum``, ``mg.clip``, ``mg.max`` for
amax, ``mygrad.nnet.activations.relu/leaky_relu/elu/sigmoid/softmax/logsoftmax``). MyGrad has no
erf, softplus, silu, gelu or differentiable logsumexp (``mygrad.math._special.logsumexp`` is a
numpy helper), so those are unsupported; nor higher-order gradients (``grad`` is a plain array), so
no second order. float64 and float32 (MyGrad keeps the numpy dtype of its leaves).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import numpy

from conformance.case.graph import GraphCase
from conformance.impls.adapters._common import (
    ArrayAdapter,
    OpTable,
    Raw,
    capabilities,
    forward,
    require,
    zeros_like_leaf,
)


def _table(mg: Any, act: Any) -> OpTable:
    return {
        "neg": lambda x: mg.negative(x),
        "add": lambda a, b: mg.add(a, b),
        "sub": lambda a, b: mg.subtract(a, b),
        "mul": lambda a, b: mg.multiply(a, b),
        "div": lambda a, b: mg.divide(a, b),
        "pow": lambda a, b: mg.power(a, b),
        "pow_scalar": lambda x, exponent: mg.power(x, float(exponent)),
        "pow_int": lambda x, exponent: mg.power(x, int(exponent)),
        "square": lambda x: mg.square(x),
        "reciprocal": lambda x: mg.reciprocal(x),
        "abs": lambda x: mg.absolute(x),
        "exp": lambda x: mg.exp(x),
        "expm1": lambda x: mg.expm1(x),
        "log": lambda x: mg.log(x),
        "log1p": lambda x: mg.log1p(x),
        "sqrt": lambda x: mg.sqrt(x),
        "sin": lambda x: mg.sin(x),
        "cos": lambda x: mg.cos(x),
        "tanh": lambda x: mg.tanh(x),
        "sigmoid": lambda x: act.sigmoid(x),
        "relu": lambda x: act.relu(x),
        "leaky_relu": lambda x, negative_slope: act.leaky_relu(x, negative_slope),
        "elu": lambda x, alpha: act.elu(x, alpha),
        "clamp": lambda x, min, max: mg.clip(x, min, max),
        "maximum": lambda a, b: mg.maximum(a, b),
        "minimum": lambda a, b: mg.minimum(a, b),
        "sum": lambda x, dim, keepdim: mg.sum(x, axis=dim, keepdims=keepdim),
        "mean": lambda x, dim, keepdim: mg.mean(x, axis=dim, keepdims=keepdim),
        "amax": lambda x, dim, keepdim: mg.max(x, axis=dim, keepdims=keepdim),
        "softmax": lambda x, dim: act.softmax(x, axis=dim),
        "log_softmax": lambda x, dim: act.logsoftmax(x, axis=dim),
        "transpose": lambda x, dim0, dim1: mg.swapaxes(x, dim0, dim1),
        "reshape": lambda x, shape: mg.reshape(x, shape),
        "matmul": lambda a, b: mg.matmul(a, b),
    }


class MyGradImpl(ArrayAdapter):
    """MyGrad: float64 and float32, first order only."""

    def __init__(self) -> None:
        self.mg = require("mygrad", "mygrad")
        act = require("mygrad.nnet.activations", "mygrad")
        self.name, self.version = "mygrad", version("mygrad")
        self.table = _table(self.mg, act)
        self.capabilities = capabilities(self.table, ("float64", "float32"), second_order=False)

    def evaluate(self, case: GraphCase) -> Raw:
        arrays, ct, _ = self.leaf_arrays(case)
        xs = {k: self.mg.tensor(v, dtype=v.dtype) for k, v in arrays.items()}  # fresh: no stale .grad
        out = forward(case, self.table, xs)
        value = numpy.array(out.data, copy=True)  # backward() may clear the graph, never the data
        out.backward(ct)
        return value, {k: zeros_like_leaf(case, k) if x.grad is None else x.grad for k, x in xs.items()}, None
