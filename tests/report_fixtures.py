"""Run directories for the report's tests, written in exactly the records contract's layout from real
cases judged by ``conformance.commands.verify`` — a stand-in for conformance/records.py, kept small.

Implementations: refimpl; ``planted-tanh`` (tests/fixtures/planted_adapter.py: tanh' = 1 − t); a
``bent-net`` that trains like refimpl but reports one gradient entry off; and for escaping tests
``hostile``, whose name, version and errors are HTML. The *previous* run has the same suites and
seeds with correct code under the same names, so its cases conform and the current failures that
share their ids are regressions.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import strategies as st

from conformance import driver
from conformance.case import graph as gcases
from conformance.case import network as netcases
from conformance.case.graph import GraphResult, Tensor
from conformance.case.network import Batch, Layer, NetworkCase
from conformance.commands import verify
from conformance.impls import RefImpl
from conformance.kinds.kind import Suite
from conformance.oracle import netrepro, repro
from conformance.records import claims

PLANTED = Path(__file__).parent / "fixtures" / "planted_adapter.py"


def planted_tanh() -> Any:
    """tests/fixtures/planted_adapter.py's adapter, loaded from its path as ``--impl PATH`` would."""
    spec = importlib.util.spec_from_file_location("planted_adapter", PLANTED)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.adapter()

GRAPH_SUITES = ("op tanh", "op exp", "op matmul", "scalar graphs")
SCRIPT = '<script>alert(1)</script> "&\''
CASE_COLUMNS = ("run_id started time impl impl_version torch_version shard suite family case_id seed index kind ops "
                "nodes depth parameters steps dtype entries max_abs_error max_rel_error max_ulps worst_ratio verdict "
                "reason seconds case_json").split()
ENTRY_COLUMNS = "run_id impl case_id entry implementation torch truth tolerance abs_error ratio verdict".split()


class Renamed(RefImpl):
    """refimpl under another name and version: the earlier, correct release of an implementation."""

    def __init__(self, name: str, version: str) -> None:
        self.name, self._version = name, version

    @property
    def version(self) -> str:
        return self._version


class BentNetwork(RefImpl):
    """refimpl, except that step 2's gradient of layer1.weight[0,1] is reported 0.1 % off."""

    name = "bent-net"

    def run_network(self, case: NetworkCase) -> netcases.NetworkResult:
        r = super().run_network(case)
        g = r.steps[1].grads["layer1.weight"]
        vals = list(g.values)
        vals[1] += 1e-3 * (1 + abs(vals[1]))
        r.steps[1].grads["layer1.weight"] = Tensor(g.shape, tuple(vals))
        return r


class Hostile(RefImpl):
    """An implementation whose every string is markup: each graph case raises."""

    name = 'hostile<b>&"'
    version = "<script>alert('v')</script>"

    def run_graph(self, case: gcases.GraphCase) -> GraphResult:
        return GraphResult(error=f"ValueError: {SCRIPT} at <b>node</b>")


def network_case() -> NetworkCase:
    """3→4→2, tanh then identity, mse, adam, 2 steps: small enough to judge in a second."""
    def t(shape: tuple[int, ...], seed: int) -> Tensor:
        n = math.prod(shape)
        return Tensor(shape, tuple(round(math.sin(seed + 1.7 * i) * 0.6, 3) for i in range(n)))

    layers = (Layer(3, 4, "tanh", {}, t((4, 3), 1), t((4,), 2)), Layer(4, 2, "identity", {}, t((2, 4), 3), t((2,), 4)))
    batches = tuple(Batch(t((2, 3), 5 + k), t((2, 2), 7 + k)) for k in range(2))
    hyper = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
                 decoupled_weight_decay=False)
    case = NetworkCase(layers, "mse", "mean", {}, "adam", hyper, batches)
    return netcases.with_id(netcases.check_case(case))


def pick(impl: Any, names: tuple[str, ...], examples: int = 4) -> list[Suite]:
    by = {s.name: s for s in verify.suites(impl, examples)}
    return [by[n] for n in names]


def network_suite() -> Suite:
    return Suite("networks float64", "networks", st.just(network_case()), 1)


def _depth(case: Any) -> int:
    d: dict[str, int] = {}
    for n in case.nodes:
        d[n.name] = 1 + max((d.get(i, 0) for i in n.inputs), default=0)
    return max(d.values(), default=0)


def _errors(e: Any) -> tuple[float, float]:
    ref = e.truth if e.truth is not None else e.torch
    if e.impl == ref or (math.isnan(e.impl) and math.isnan(ref)):
        return 0.0, 0.0
    err = abs(e.impl - ref)
    return err, err / abs(ref) if ref else math.inf


def _entry_row(run_id: str, impl: str, case_id: str, e: Any) -> dict[str, Any]:
    return dict(run_id=run_id, impl=impl, case_id=case_id, entry=e.name, implementation=e.impl, torch=e.torch,
                truth=math.nan if e.truth is None else e.truth, tolerance=e.tol, abs_error=_errors(e)[0],
                ratio=e.ratio, verdict=e.verdict)


def write_run(root: Path, run_id: str, started: str, plan: list[tuple[Any, list[Suite]]],
              seed: int = 7) -> Path:
    """Judge every suite of ``plan`` and write ``root/run_id`` as the contract lays it out."""
    run = root / run_id
    (run / "records").mkdir(parents=True)
    (run / "failures").mkdir()
    cases: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for impl, suites in plan:
        for k, suite in enumerate(suites):
            index = [0]

            def on_case(s: Suite, _seed: int, _index: int, v: Any, seconds: float, impl: Any = impl, k: int = k,
                        index: list[int] = index) -> None:
                c = v.case
                net = isinstance(c, NetworkCase)
                errs = [_errors(e) for e in v.entries]
                cases.append(dict(
                    run_id=run_id, started=started, time=started, impl=impl.name, impl_version=str(impl.version),
                    torch_version="2.13.0", shard="1/1", suite=s.name, family=s.family, case_id=c.id,
                    seed=seed + k, index=index[0], kind="network" if net else "graph",
                    ops=" ".join(sorted({la.activation for la in c.layers} | {c.loss, c.optimizer})) if net
                    else " ".join(c.ops),
                    nodes=len(c.layers) if net else len(c.nodes), depth=len(c.layers) if net else _depth(c),
                    parameters=c.n_params if net else 0, steps=c.steps if net else 0, dtype=c.dtype,
                    entries=len(v.entries), max_abs_error=max((a for a, _ in errs), default=math.nan),
                    max_rel_error=max((r for _, r in errs), default=math.nan), max_ulps=math.nan,
                    worst_ratio=max((e.ratio for e in v.entries), default=math.nan), verdict=v.verdict,
                    reason=v.reason.splitlines()[0] if v.reason else "", seconds=seconds,
                    case_json=netcases.dumps(c) if net else gcases.dumps(c)))
                index[0] += 1
                if v.verdict != "pass":
                    entries.extend(_entry_row(run_id, impl.name, c.id, e) for e in v.entries)

            r = driver.run_suite(impl, suite, seed + k, on_case=on_case)
            if r.failure is not None:
                v = r.failure
                net = isinstance(v.case, NetworkCase)
                doc = {"impl": impl.name, "suite": suite.name, "verdict": v.verdict, "reason": v.reason,
                       "kind": "network" if net else "graph",
                       "case": netcases.case_to_json(v.case) if net else gcases.case_to_json(v.case),
                       "entries": [_entry_row(run_id, impl.name, v.case.id, e) for e in v.entries]}
                (run / "failures" / f"{v.case.id}.json").write_text(json.dumps(doc, indent=1))
                script = netrepro.torch_script(v.case) if net else repro.torch_script(v.case)
                (run / "failures" / f"{v.case.id}.py").write_text(script)
    for name, rows, columns in (("cases", cases, CASE_COLUMNS), ("entries", entries, ENTRY_COLUMNS)):
        df = pd.DataFrame(rows, columns=columns)
        df.to_parquet(run / "records" / f"{name}.parquet", index=False)
        df.to_csv(run / "records" / f"{name}.csv", index=False)
    meta = {"run_id": run_id, "started": started, "finished": started, "command": "conformance verify (fixture)",
            "impls": [impl.name for impl, _ in plan], "profile": "dev", "seed": seed, "shard": "1/1",
            "torch_version": "2.13.0", "budget_seconds": None, "complete": True,
            "implementations": [{"name": impl.name, "version": str(impl.version), "claims": claims(impl)}
                                for impl, _ in plan]}
    (run / "run.json").write_text(json.dumps(meta, indent=1))
    return run


def append_history(path: Path, run: Path) -> None:
    """One row per (run, impl) into history.parquet, from the run's cases table."""
    meta = json.loads((run / "run.json").read_text())
    df = pd.read_parquet(run / "records" / "cases.parquet")
    rows = []
    for impl in meta["impls"]:
        mine = df[df["impl"] == impl]
        n = mine["verdict"].value_counts()
        bad = sum(int(n.get(k, 0)) for k in ("fail", "nonfinite-mismatch", "error", "timeout"))
        rows.append(dict(run_id=meta["run_id"], started=meta["started"], impl=impl,
                         impl_version=str(mine["impl_version"].iloc[0]), torch_version="2.13.0", profile="dev",
                         seed=meta["seed"], cases=len(mine),
                         **{k: int(n.get(k, 0)) for k in ("pass", "fail", "convention", "torch-deviates",
                                                           "nonfinite-mismatch", "error", "timeout")},
                         unsupported_ops=0, conforms=bad == 0, worst_ratio=float(mine["worst_ratio"].max()),
                         seconds=float(mine["seconds"].sum())))
    new = pd.DataFrame(rows)
    old = pd.read_parquet(path) if path.exists() else None
    (new if old is None else pd.concat([old, new], ignore_index=True)).to_parquet(path, index=False)


def make_runs(root: Path) -> dict[str, Path]:
    """previous (everything conforms) and current (planted-tanh and bent-net fail), with their history."""
    ref = RefImpl()
    plan_before = [(ref, pick(ref, GRAPH_SUITES)), (Renamed("planted-tanh", "0.9"), pick(ref, GRAPH_SUITES)),
                   (Renamed("bent-net", "0.9"), [network_suite()])]
    planted = with_version(planted_tanh(), "1.0")
    plan_now = [(ref, pick(ref, GRAPH_SUITES)), (planted, pick(planted, GRAPH_SUITES)),
                (BentNetwork(), [network_suite()])]
    previous = write_run(root, "20260101T000000Z-aaaa", "2026-01-01T00:00:00.000Z", plan_before)
    current = write_run(root, "20260102T000000Z-bbbb", "2026-01-02T00:00:00.000Z", plan_now)
    history = root / "history.parquet"
    append_history(history, previous)
    append_history(history, current)
    return {"previous": previous, "current": current, "history": history}


def make_hostile_run(root: Path) -> Path:
    """A run whose implementation puts markup in every string it controls."""
    h = Hostile()
    return write_run(root, "20260103T000000Z-cccc", "2026-01-03T00:00:00.000Z", [(h, pick(RefImpl(), ("op exp",)))])


def with_version(impl: Any, version: str) -> Any:
    """The planted adapter with a version number, as a release would have."""
    cls = type(impl)
    return type(cls.__name__, (cls,), {"version": version})()
