"""A corpus for offline testing: cases with torch's results, the truth and the tolerances, as JSON.

An implementation in any language can test itself in its own CI without Python: for every entry,
``|its value − truth| ≤ tolerance`` is the pass condition (the same one the harness applies when
torch and the implementation disagree). The directory is written under a temporary name and
renamed into place at the end, so an interrupted export leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from hypothesis import strategies as st

from conformance.case.graph import GraphCase, Tensor, case_to_json, result_to_json
from conformance.case.graph import GraphResult as Result
from conformance.case.strategies import graph_cases, layer_op_cases, tensor_graph_cases
from conformance.case.tensor_ops import TENSOR_OPS, layer_ops
from conformance.driver import draw
from conformance.kinds.kind import Suite
from conformance.oracle.run import refimpl_raw, run_torch, truth_gradient
from conformance.tolerance.bounds import SAFETY, TINY, bound_system
from refimpl import mpmath_system

FORMAT = "backprop-conformance/corpus-entry"
VERSION = 1


def _truth(case: GraphCase) -> Result:
    value, _, _ = refimpl_raw(case, mpmath_system(50))
    grads = {k: Tensor(t.shape, tuple(truth_gradient(case, k, i)[0] for i in range(len(t.values))))
             for k, t in case.leaves.items()}
    return Result(value=Tensor(case.cotangent.shape, tuple(float(v) for v in value)), grads=grads)


def _tolerance(case: GraphCase) -> Result:
    value, grads, _ = refimpl_raw(case, bound_system(case.dtype, case.claim))

    def tol(xs: list[Any]) -> tuple[float, ...]:
        return tuple(SAFETY * float(x.e) + TINY for x in xs)

    return Result(value=Tensor(case.cotangent.shape, tol(value)),
                  grads={k: Tensor(case.leaves[k].shape, tol(g)) for k, g in grads.items()})


def entry(case: GraphCase) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "case": case_to_json(case),
            "torch": result_to_json(run_torch(case)), "truth": result_to_json(_truth(case)),
            "tolerance": result_to_json(_tolerance(case))}


def export_corpus(out: str, n: int, seed: int = 0) -> int:
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise FileExistsError(f"{out!r} exists and is not an empty directory; choose a new one")
    # one case in three a layer op alone — but for one that chooses among ties (a max pool): at a tie the
    # finite-difference truth averages the one-sided slopes and is no truth (docs/conventions.md)
    layers = st.one_of(*(layer_op_cases(name) for name in layer_ops() if not TENSOR_OPS[name].ties))
    cases = draw(Suite("export", "graphs", st.one_of(graph_cases(max_nodes=8), tensor_graph_cases(), layers), n), seed)
    parent = os.path.dirname(os.path.abspath(out))
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        index = []
        for case in cases:
            with open(os.path.join(tmp, f"{case.id}.json"), "w") as f:
                json.dump(entry(case), f, indent=1)
            index.append({"id": case.id, "ops": list(case.ops), "nodes": len(case.nodes), "dtype": case.dtype})
        with open(os.path.join(tmp, "index.json"), "w") as f:
            json.dump({"format": "backprop-conformance/corpus", "version": VERSION, "cases": index}, f, indent=1)
        if os.path.isdir(out):
            os.rmdir(out)  # empty, checked above
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(cases)
