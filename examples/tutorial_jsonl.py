"""The seed tutorial's numpy MLP as a program speaking the JSON Lines protocol (docs/protocol.md,
"Extension: training runs"): ``conformance verify --impl "cmd:python examples/tutorial_jsonl.py"``.

Standalone: numpy and json, nothing from the suite. The network (the first part) is the tutorial's:
sigmoid layers, the mean squared error, the δ-equations, a plain SGD step, in the tutorial's layout (a
batch is the rows of ``x``, a layer is ``a @ W + b`` with ``W`` of shape (in, out)). The adapter (the
last part) answers the handshake with what the network is, then reads one case per line on stdin,
runs its batches through the network and writes, per step, the loss, the gradients and the parameters
after the step in torch's names and layout (``layer0.weight`` of shape (out, in), ``layer0.bias``) as
one result line on stdout. A case it cannot run raises and ends the program: the harness records an
``error`` for that case and starts the program again for the next one.
"""

import json
import sys

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class MLP:
    def __init__(self, weights, biases):
        self.weights, self.biases = weights, biases

    def backprop(self, x, y):
        """The loss and every gradient, by the δ-equations."""
        a = [x]
        for W, b in zip(self.weights, self.biases):
            a.append(sigmoid(a[-1] @ W + b))
        loss = np.mean((a[-1] - y) ** 2)
        delta = 2.0 / a[-1].size * (a[-1] - y) * a[-1] * (1 - a[-1])
        dWs, dbs = [], []
        for l in range(len(self.weights) - 1, -1, -1):
            dWs.insert(0, a[l].T @ delta)
            dbs.insert(0, delta.sum(axis=0))
            delta = (delta @ self.weights[l].T) * a[l] * (1 - a[l])
        return loss, dWs, dbs

    def update(self, dWs, dbs, lr):
        for W, b, dW, db in zip(self.weights, self.biases, dWs, dbs):
            W -= lr * dW
            b -= lr * db


# --- the adapter: the JSON Lines protocol ----------------------------------------------------------

HELLO = {"type": "hello", "protocol": 1, "name": "tutorial-jsonl", "version": "1.0", "capabilities": {"ops": [],
         "networks": {"activations": ["sigmoid"], "losses": {"mse": ["mean"]}, "bias": [True],
                      "optimizers": {"sgd": ["lr"], "none": []}}}}  # sigmoid layers with bias, MSE (mean), plain SGD
array = lambda t: np.array(t["values"], dtype=float).reshape(t["shape"])
tensor = lambda a: {"shape": list(np.shape(a)), "values": np.ravel(a).tolist()}
by_name = lambda Ws, bs: {f"layer{l}.{k}": tensor(p) for l, (W, b) in enumerate(zip(Ws, bs))
                          for k, p in (("weight", W.T), ("bias", b))}  # torch's names and layout


def run(case):
    net = MLP([array(la["weight"]).T for la in case["layers"]], [array(la["bias"]) for la in case["layers"]])
    steps = []
    for batch in case["batches"]:
        loss, dWs, dbs = net.backprop(array(batch["x"]), array(batch["y"]))
        net.update(dWs, dbs, case["optimizer"]["hyper"].get("lr", 0.0))  # optimizer "none": gradients only
        steps.append({"loss": tensor(loss), "grads": by_name(dWs, dbs), "params": by_name(net.weights, net.biases)})
    return {"format": "backprop-conformance/network-result", "version": 1, "steps": steps}


for msg in map(json.loads, sys.stdin):
    if msg["type"] == "bye":
        break
    reply = HELLO if msg["type"] == "hello" else {"type": "result", "id": msg["case"]["id"], "result": run(msg["case"])}
    print(json.dumps(reply), flush=True)
