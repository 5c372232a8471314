"""A standalone script that reproduces a graph case with torch — pasteable, no project needed."""

from __future__ import annotations

from refimpl import OPS

from .cases import GraphCase


def torch_script(case: GraphCase) -> str:
    dt = f"torch.{case.dtype}"
    lines = ["import torch", "import torch.nn.functional", ""]
    names = list(case.leaves)
    for k in names:
        lines.append(f"{k} = torch.tensor({case.leaves[k].values[0]!r}, dtype={dt}, requires_grad=True)")
    for n in case.nodes:
        args = ", ".join(n.inputs)
        kw = "".join(f", {k}={v!r}" for k, v in n.attrs.items())
        lines.append(f"{n.name} = {OPS[n.op].torch}({args}{kw})")
    ct = case.cotangent.values[0]
    lines.append(f"grads = torch.autograd.grad({case.output}, [{', '.join(names)}], "
                 f"torch.tensor({ct!r}, dtype={dt}), allow_unused=True, materialize_grads=True)")
    lines.append(f"print('value', {case.output}.item())")
    lines.append(f"for name, g in zip({names!r}, grads):")
    lines.append("    print('grad', name, g.item())")
    return "\n".join(lines) + "\n"
