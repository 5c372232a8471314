"""A network adapter written against the types themselves: ``conformance verify --impl
examples/plain_network.py``.

No numpy, no helper class: ``run_network(case) -> NetworkResult`` reads a
:class:`~conformance.case.network.NetworkCase` and answers with the loss, every gradient and every
parameter after each step (docs/networks.md is the reference). The network is an MLP over Python
lists with tanh, sigmoid or no activation, the mean squared error (mean or sum) and plain SGD — the
shape of an engine written in any language, before it is put behind JSON Lines.
"""

import math

from conformance.case.graph import Tensor
from conformance.case.network import NetworkResult, StepResult
from conformance.impls import Capabilities


def sigmoid(z):
    """1 / (1 + e^-z), without overflowing e^-z for a large negative z (Python's math.exp raises)."""
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


ACT = {"identity": (lambda z: z, lambda a: 1.0),  # f(z), and f'(z) written with a = f(z)
       "tanh": (math.tanh, lambda a: 1.0 - a * a),
       "sigmoid": (sigmoid, lambda a: a * (1.0 - a))}


def rows(t):
    """A Tensor (shape, flat row-major values) as a list of rows."""
    n, m = t.shape
    return [list(t.values[i * m:(i + 1) * m]) for i in range(n)]


def step(layers, x, y, reduction):
    """The forward pass, the loss and the backward pass by the δ-equations, for one batch."""
    acts = [x]
    for la in layers:
        f = ACT[la["activation"]][0]
        acts.append([[f(sum(w * a for w, a in zip(row, sample)) + b) for row, b in zip(la["W"], la["b"])]
                     for sample in acts[-1]])
    out = acts[-1]
    count = len(out) * len(out[0])
    scale = 1.0 / count if reduction == "mean" else 1.0
    loss = scale * sum((o - t) ** 2 for orow, trow in zip(out, y) for o, t in zip(orow, trow))
    delta = [[2.0 * scale * (o - t) for o, t in zip(orow, trow)] for orow, trow in zip(out, y)]
    grads = [None] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        la, a_in, a_out = layers[i], acts[i], acts[i + 1]
        d = ACT[la["activation"]][1]
        delta = [[dv * d(av) for dv, av in zip(drow, arow)] for drow, arow in zip(delta, a_out)]
        gW = [[sum(delta[s][o] * a_in[s][k] for s in range(len(delta))) for k in range(len(a_in[0]))]
              for o in range(len(la["W"]))]
        gb = [sum(delta[s][o] for s in range(len(delta))) for o in range(len(la["W"]))]
        grads[i] = (gW, gb)
        delta = [[sum(delta[s][o] * la["W"][o][k] for o in range(len(la["W"]))) for k in range(len(a_in[0]))]
                 for s in range(len(delta))]
    return loss, grads


def as_tensors(layers, pairs):
    """Per parameter name, in torch's order and layout: ``layer{i}.weight`` (out, in), ``layer{i}.bias``."""
    out = {}
    for i, (W, b) in enumerate(pairs):
        out[f"layer{i}.weight"] = Tensor((len(W), len(W[0])), tuple(v for row in W for v in row))
        out[f"layer{i}.bias"] = Tensor((len(b),), tuple(b))
    return out


class PlainNetwork:
    name, version = "plain-network", "1.0"
    capabilities = Capabilities(frozenset(), networks=True, activations={"identity", "tanh", "sigmoid"},
                                losses={"mse": ["mean", "sum"]}, optimizers={"sgd": ["lr"], "none": []},
                                bias={True})

    def run_network(self, case):
        layers = [{"activation": la.activation, "W": rows(la.weight), "b": list(la.bias.values)}
                  for la in case.layers]
        result = NetworkResult()
        for batch in case.batches:
            loss, grads = step(layers, rows(batch.x), rows(batch.y), case.reduction)
            if case.optimizer == "sgd":
                lr = case.hyper["lr"]
                for la, (gW, gb) in zip(layers, grads):
                    la["W"] = [[w - lr * g for w, g in zip(wr, gr)] for wr, gr in zip(la["W"], gW)]
                    la["b"] = [b - lr * g for b, g in zip(la["b"], gb)]
            params = {} if case.optimizer == "none" else as_tensors(layers, [(la["W"], la["b"]) for la in layers])
            result.steps.append(StepResult(Tensor.scalar(loss), as_tensors(layers, grads), params))
        return result


adapter = PlainNetwork()
