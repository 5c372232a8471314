"""Cases and results as data: what the harness sends to an implementation, stores and replays.

A graph case is a DAG over the op table: named leaves (shape + row-major values), nodes (op,
inputs, attributes) in topological order, the output node, a cotangent for the output, the dtype
under test, and optionally a second-order request (the gradient of ⟨grad, v⟩ for a vector v) and
the claim about reductions it was declared under (``claim``, a
:class:`~conformance.case.dtypes.Reductions`: ``accumulate`` — the wider dtype the implementation
accumulates its reductions in, sums, means, dot products, while it stores every number in
``dtype``; ``summation`` — the order it sums them in, ``"pairwise"``). Each part is in the JSON
only when claimed, so a case without a claim keeps its document and its id, and one with an
accumulation dtype alone the document it had before orders could be claimed.

JSON round-trips exactly: finite floats are written with ``repr`` (shortest round-tripping form)
and the non-finite ones as the strings ``"inf"``, ``"-inf"``, ``"nan"``. ``conformance/schema/``
holds the JSON Schema; ``FORMAT`` and ``VERSION`` are written into every document.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from conformance.case import dtypes

FORMAT = "backprop-conformance/graph-case"
RESULT_FORMAT = "backprop-conformance/graph-result"
VERSION = 1


@dataclass(frozen=True)
class Tensor:
    shape: tuple[int, ...]
    values: tuple[float, ...]

    @staticmethod
    def scalar(x: float) -> Tensor:
        return Tensor((), (float(x),))


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)  # JSON scalars; finite floats only


@dataclass(frozen=True)
class GraphCase:
    leaves: dict[str, Tensor]
    nodes: tuple[Node, ...]
    output: str
    cotangent: Tensor
    dtype: str = "float64"
    second_order: dict[str, Tensor] | None = None  # v per leaf: request ∂⟨grad, v⟩/∂leaves
    id: str = ""
    claim: dtypes.Reductions | None = None  # how the implementation claims to reduce in dtype (None: no claim)

    @property
    def accumulate(self) -> str | None:
        """The wider dtype the claim accumulates reductions in (mixed precision), or ``None``."""
        return None if self.claim is None else self.claim.accumulate

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(sorted({n.op for n in self.nodes}))


@dataclass
class GraphResult:
    """What an implementation returns: the output, ∂/∂leaf of ⟨cotangent, output⟩, and the HVP."""

    value: Tensor | None = None
    grads: dict[str, Tensor] = field(default_factory=dict)
    hvp: dict[str, Tensor] | None = None
    error: str | None = None  # the implementation failed on this case (one line)


def number_to_json(x: float) -> float | str:
    """A float as JSON: itself if finite, else ``"inf"``, ``"-inf"`` or ``"nan"``."""
    return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))


def _unnum(x: float | str) -> float:
    return float(x)  # float("inf"), float("-inf"), float("nan") parse the string forms


#: the string forms of the non-finite numbers (as in tensors): an attribute written so is a number
NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def attr_to_json(v: Any) -> Any:
    """An attribute as JSON: a non-finite float as its string form (a −∞ fill before a softmax),
    anything else as it is."""
    return number_to_json(v) if isinstance(v, float) and not math.isfinite(v) else v


def attr_from_json(v: Any) -> Any:
    """The inverse of :func:`attr_to_json`: ``"inf"``, ``"-inf"``, ``"nan"`` are numbers (no op's
    string-valued attribute takes these words)."""
    return NONFINITE[v] if isinstance(v, str) and v in NONFINITE else v


def tensor_to_json(t: Tensor) -> dict[str, Any]:
    """``{"shape": [...], "values": [...]}``, values by :func:`number_to_json`."""
    return {"shape": list(t.shape), "values": [number_to_json(v) for v in t.values]}


def tensor_from_json(d: dict[str, Any]) -> Tensor:
    """The inverse of :func:`tensor_to_json`; ``ValueError`` if the values do not fill the shape."""
    shape = tuple(int(s) for s in d["shape"])
    values = tuple(_unnum(v) for v in d["values"])
    if math.prod(shape) != len(values):
        raise ValueError(f"tensor of shape {list(shape)} needs {math.prod(shape)} values, got {len(values)}")
    return Tensor(shape, values)


def case_to_json(case: GraphCase) -> dict[str, Any]:
    mixed = {} if case.claim is None else case.claim.to_json()  # absent: no declaration
    return {
        "format": FORMAT, "version": VERSION, "id": case.id, "dtype": case.dtype, **mixed,
        "leaves": {k: tensor_to_json(t) for k, t in case.leaves.items()},
        "nodes": [{"name": n.name, "op": n.op, "inputs": list(n.inputs),
                   "attrs": {k: attr_to_json(v) for k, v in n.attrs.items()}}
                  for n in case.nodes],
        "output": case.output,
        "cotangent": tensor_to_json(case.cotangent),
        "second_order": None if case.second_order is None
        else {k: tensor_to_json(t) for k, t in case.second_order.items()},
    }


def case_from_json(d: dict[str, Any]) -> GraphCase:
    if d.get("format") != FORMAT:
        raise ValueError(f"not a graph case: format is {d.get('format')!r}, expected {FORMAT!r}")
    if d.get("version") != VERSION:
        raise ValueError(f"graph case version {d.get('version')!r} is not supported (this is {VERSION})")
    so = d.get("second_order")
    case = GraphCase(
        leaves={k: tensor_from_json(t) for k, t in d["leaves"].items()},
        nodes=tuple(Node(n["name"], n["op"], tuple(n["inputs"]),
                         {k: attr_from_json(v) for k, v in n.get("attrs", {}).items()})
                    for n in d["nodes"]),
        output=d["output"], cotangent=tensor_from_json(d["cotangent"]), dtype=d.get("dtype", "float64"),
        second_order=None if so is None else {k: tensor_from_json(t) for k, t in so.items()},
        id=d.get("id", ""),
        claim=dtypes.reductions(d.get("dtype", "float64"), d.get("accumulate"), d.get("summation")),
    )
    _check_representable(case, dtypes.dtype(case.dtype))
    return case


def _check_representable(case: GraphCase, dt: dtypes.DType) -> None:
    """A case in a narrow dtype must say exactly what the implementation receives: numbers of the
    format only (a float16 case holds float16 numbers)."""
    tensors = {**{f"leaf {k}": t for k, t in case.leaves.items()}, "cotangent": case.cotangent,
               **{f"second_order {k}": t for k, t in (case.second_order or {}).items()}}
    for where, t in tensors.items():
        if not all(dt.holds(v) for v in t.values):
            raise ValueError(f"{dt.name} case: {where} holds a value that is not a {dt.name} number")
    for n in case.nodes:
        for k, v in n.attrs.items():
            if not dt.holds(v):
                raise ValueError(f"{dt.name} case: attribute {k}={v!r} of node {n.name} is not a {dt.name} number")


def result_to_json(r: GraphResult) -> dict[str, Any]:
    """A result as JSON; a gradient that is None (not computed) is left out, as missing on the wire."""
    return {
        "format": RESULT_FORMAT, "version": VERSION, "error": r.error,
        "value": None if r.value is None else tensor_to_json(r.value),
        "grads": {k: tensor_to_json(t) for k, t in r.grads.items() if t is not None},
        "hvp": None if r.hvp is None else {k: tensor_to_json(t) for k, t in r.hvp.items()},
    }


def result_from_json(d: dict[str, Any]) -> GraphResult:
    if d.get("format") != RESULT_FORMAT:
        raise ValueError(f"not a graph result: format is {d.get('format')!r}")
    return GraphResult(
        value=None if d.get("value") is None else tensor_from_json(d["value"]),
        grads={k: tensor_from_json(t) for k, t in d.get("grads", {}).items()},
        hvp=None if d.get("hvp") is None else {k: tensor_from_json(t) for k, t in d["hvp"].items()},
        error=d.get("error"),
    )


def dumps(case: GraphCase) -> str:
    return json.dumps(case_to_json(case), indent=1)


def loads(text: str) -> GraphCase:
    return case_from_json(json.loads(text))


