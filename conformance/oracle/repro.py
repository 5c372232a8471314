"""A standalone script that reproduces a graph case with torch — pasteable, no project needed."""

from __future__ import annotations

import inspect
import math

from conformance.case.graph import GraphCase
from conformance.case.tensor_ops import TENSOR_OPS, torch_arguments, torch_kwargs
from conformance.oracle.names import resolve
from conformance.oracle.run import torch_unreliable
from refimpl import OPS


class _Code(str):
    """Source text that stands for itself in a ``{!r}``."""

    def __repr__(self) -> str:
        return str(self)


def _tensor_code(values: object, dtype: str) -> _Code:
    return _Code(f"torch.tensor({values!r}, dtype=torch.{dtype})")


COMPOSED = "conformance.oracle.composed."


def _nonfinite(case: GraphCase) -> bool:
    """Whether a number of the case (a leaf, the cotangent, an attribute: a −∞ fill) is not finite."""
    numbers = [x for t in (*case.leaves.values(), case.cotangent) for x in t.values]
    numbers += [a for n in case.nodes for a in n.attrs.values() if isinstance(a, float)]
    return not all(math.isfinite(x) for x in numbers)


def torch_script(case: GraphCase) -> str:
    dt = f"torch.{case.dtype}"
    lines = ["import torch", "import torch.nn.functional", ""]
    if torch_unreliable(case):
        lines[-1:] = [f"# torch 2.13's {case.dtype} kernel of an op here crashes or returns unwritten memory on "
                      "some inputs (docs/findings.md): the harness ran this case in float32 and rounded", ""]
    if _nonfinite(case):  # Python writes float("-inf") as -inf: the names make the numbers below valid code
        lines[-1:] = ["", 'inf, nan = float("inf"), float("nan")', ""]
    if case.accumulate is not None:  # torch's CPU kernels do so already: nothing to switch on
        lines[-1:] = [f"# the case declares {case.accumulate} accumulation of {case.dtype} reductions "
                      f"(sums, means, dot products), as torch's CPU kernels do", ""]
    if case.claim is not None and case.claim.summation is not None:  # torch promises no order: a comment
        lines[-1:] = [f"# the case declares {case.claim.summation} summation of {case.dtype} reductions "
                      "(torch's kernels choose their own order)", ""]
    for name in dict.fromkeys(TENSOR_OPS[n.op].torch for n in case.nodes if n.op in TENSOR_OPS):
        if name.startswith(COMPOSED):  # torch has no one function for it: the loop, copied in
            lines += ["from typing import Any", "", "", *inspect.getsource(resolve(name)).splitlines(), "", ""]
    names = list(case.leaves)
    for k in names:
        t = case.leaves[k]
        lines.append(f"{k} = torch.tensor({list(t.values)!r}, dtype={dt}).reshape({tuple(t.shape)!r})"
                     ".requires_grad_()")
    for n in case.nodes:
        fn = (OPS[n.op].torch if n.op in OPS else TENSOR_OPS[n.op].torch).removeprefix(COMPOSED)
        pos, named = (list(n.inputs), {}) if n.op in OPS else torch_arguments(n.op, list(n.inputs))
        kw = "".join(f", {k}={v!r}" for k, v in torch_kwargs(n.op, n.attrs, _tensor_code).items())
        args = ", ".join([*pos, *(f"{k}={v}" for k, v in named.items())])
        lines.append(f"{n.name} = {fn}({args}{kw})")
    ct = case.cotangent
    lines.append(f"cotangent = torch.tensor({list(ct.values)!r}, dtype={dt}).reshape({tuple(ct.shape)!r})")
    lines.append(f"grads = torch.autograd.grad({case.output}, [{', '.join(names)}], cotangent, "
                 "allow_unused=True, materialize_grads=True)")
    lines.append(f"print('value', {case.output}.tolist())")
    lines.append(f"for name, g in zip({names!r}, grads):")
    lines.append("    print('grad', name, g.tolist())")
    return "\n".join(lines) + "\n"
