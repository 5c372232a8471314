"""A standalone script that reproduces a network case with torch — pasteable, no project needed.

The network kind's counterpart of :mod:`conformance.oracle.repro`: the case's parameters, batches,
optimizer and loss written out as torch code that runs the training loop and prints every entry.
"""

from __future__ import annotations

import inspect
import math

from conformance.case.graph import Tensor, number_to_json
from conformance.case.layerkinds import LAYER_KINDS
from conformance.case.network import CLASS_LOSSES, TENSOR_ATTRS, NetworkCase, initial_params
from conformance.oracle.names import resolve
from conformance.oracle.netrun import TORCH_LOSSES, TORCH_OPTIMIZERS
from conformance.oracle.repro import COMPOSED
from refimpl import OPS


def _lit(x: float) -> str:
    return repr(float(x)) if math.isfinite(x) else f"float({number_to_json(x)!r})"


def _list_lit(t: Tensor, integer: bool = False) -> str:
    vals = [str(int(v)) if integer else _lit(v) for v in t.values]
    if len(t.shape) == 2:
        c = t.shape[1]
        return "[" + ", ".join("[" + ", ".join(vals[r * c:(r + 1) * c]) + "]" for r in range(t.shape[0])) + "]"
    return "[" + ", ".join(vals) + "]"


def _tensor_lit(t: Tensor) -> str:
    """A float tensor of the case's dtype (``dt``), reshaped where it has more than two dims."""
    lit = f"torch.tensor({_list_lit(t)}, dtype=dt)"
    return lit if len(t.shape) <= 2 else f"{lit}.reshape({list(t.shape)})"


def torch_script(case: NetworkCase) -> str:
    """A pasteable script that runs the case in torch and prints every entry (no project needed)."""
    dt = f"torch.{case.dtype}"
    names = case.param_names
    lines = ["import torch", "import torch.nn.functional as F", ""]
    for fn in dict.fromkeys(LAYER_KINDS[f.kind].torch for f in case.features):
        if fn.startswith(COMPOSED):  # a layer torch builds from its pieces (a recurrent layer): copied in
            lines += ["from typing import Any", "", "", *inspect.getsource(resolve(fn)).splitlines(), "", ""]
    lines += [f"dt = {dt}", "# parameters (torch order)"]
    var = {}
    for name, t in initial_params(case).items():  # torch's order: the feature layers', then the Linear layers'
        i, p = name[len("layer"):].split(".", 1)
        var[name] = {"weight": f"W{i}", "bias": f"b{i}"}.get(p, f"{p.replace('.', '_')}{i}")
        lit = (f"torch.tensor({_list_lit(t)}, dtype=dt, requires_grad=True)" if len(t.shape) <= 2
               else f"{_tensor_lit(t)}.requires_grad_()")
        lines.append(f"{var[name]} = {lit}")
    lines.append(f"params = {{{', '.join(f'{n!r}: {var[n]}' for n in names)}}}")
    lines.append("batches = [")
    for b in case.batches:
        if case.loss in CLASS_LOSSES:
            y = f"torch.tensor({_list_lit(b.y, integer=True)})"
        else:
            y = f"torch.tensor({_list_lit(b.y)}, dtype=dt)"
        lines.append(f"    ({_tensor_lit(b.x)}, {y}),")
    lines.append("]")
    step = not case.gradients_only  # a gradients-only run: the loss and the gradients, no optimizer
    if step:
        hyper = ", ".join(f"{k}={tuple(v) if k == 'betas' else v!r}" for k, v in case.hyper.items())
        lines.append(f"opt = torch.optim.{TORCH_OPTIMIZERS[case.optimizer]}(list(params.values()), {hyper}, "
                     "foreach=False)")
    kw = [f"reduction={case.reduction!r}"]
    for k, v in case.loss_attrs.items():
        if k in TENSOR_ATTRS:
            kw.append(f"{k}=None" if v is None else f"{k}=torch.tensor({_list_lit(v)}, dtype=dt)")
        else:
            kw.append(f"{k}={v!r}")
    lines += ["", "for step, (x, y) in enumerate(batches, 1):", *(["    opt.zero_grad()"] if step else []), "    h = x"]
    for i, f in enumerate(case.features):  # the feature layers, each its kind's torch function
        kind = LAYER_KINDS[f.kind]
        pos, named, kw_ = kind.torch_arguments(["h", *(var.get(f"layer{i}.{p}", "None") for p in kind.params)],
                                               f.attrs)
        args = "".join(f", {a}" for a in pos[1:]) + "".join(f", {k}={v}" for k, v in named.items())
        args += "".join(f", {k}={v!r}" for k, v in kw_.items())
        lines.append(f"    h = {kind.torch.removeprefix(COMPOSED)}(h{args})")
    if case.features:
        lines.append("    h = h.flatten(1)")
    for i, la in enumerate(case.layers):
        k = len(case.features) + i
        bias = f"b{k}" if la.bias is not None else "None"
        lines.append(f"    h = F.linear(h, W{k}, {bias})")
        if la.activation != "identity":
            args = "".join(f", {k}={v!r}" for k, v in la.attrs.items())
            lines.append(f"    h = {OPS[la.activation].torch}(h{args})")
    if case.head == "log_softmax":
        lines.append("    h = F.log_softmax(h, dim=1)")
    lines.append(f"    loss = F.{TORCH_LOSSES[case.loss]}(h, y, {', '.join(kw)})")
    if case.reduction == "none":
        lines.append("    loss.backward(torch.ones_like(loss))  # the gradient of loss.sum()")
    else:
        lines.append("    loss.backward()")
    lines.append("    print('step', step, 'loss', loss.detach().reshape(-1).tolist())")
    lines.append("    for name, p in params.items():")
    lines.append("        print('step', step, 'grad', name, p.grad.reshape(-1).tolist())")
    if step:
        lines.append("    opt.step()")
        lines.append("    for name, p in params.items():")
        lines.append("        print('step', step, 'param', name, p.detach().reshape(-1).tolist())")
    return "\n".join(lines) + "\n"
