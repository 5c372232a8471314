"""Implementations under test, found by name.

Built in: ``refimpl`` (float64, and float32, float16, bfloat16 through refimpl's emulations) and ``torch``
(the self-check: torch against itself must always pass). Third-party packages register more
through the entry-point group ``backprop_conformance.implementations``; the harness issue adds
``module:attribute`` paths, micrograd clones and subprocesses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import Protocol

import refimpl
from conformance.case.dtypes import DTYPES, HALF, accumulation, dtype, summation
from conformance.case.geometry import KNOBS
from conformance.case.grain import Grain, loss_options
from conformance.case.graph import GraphCase, GraphResult
from conformance.case.layerkinds import STRUCTURAL
from conformance.case.network import ACTIVATIONS, LOSS_ATTRS, OPTIMIZER_HYPER, NetworkCase, NetworkResult
from conformance.case.tensor_ops import TENSOR_OPS
from conformance.oracle.netrun import run_refimpl_network, run_torch_network
from conformance.oracle.run import run_refimpl, run_torch
from refimpl import OPS

ENTRY_POINT_GROUP = "backprop_conformance.implementations"


@dataclass(frozen=True)
class Capabilities:
    """What an implementation declares it supports; the suites draw only inside it.

    Graph cases: ``ops``, ``dtypes``, ``second_order``. Training runs (``networks``: it has
    ``run_network``), at the grain people implement (conformance/case/grain.py): ``optimizers`` —
    names (every hyperparameter) or ``{name: hyperparameters it takes}`` (``{"sgd": ["lr"]}`` is
    plain SGD); ``losses`` — names or ``{name: reductions and attributes it takes}``
    (``{"mse": ["mean"]}``); ``activations`` of the hidden layers and ``output_activations`` of
    the last (default: the same); ``bias`` — which of with (True) and without (False) its layers
    can be; ``layers`` and ``batch_sizes`` — the ranges it takes (inclusive); ``layer_kinds`` —
    the feature layers it takes before its Linear layers (conformance/case/layerkinds.py:
    ``conv2d``, ``max_pool2d``, ``avg_pool2d``, ``batch_norm``, ``group_norm``, ``layer_norm``;
    ``lstm``, ``gru``; ``transformer_block``; none: MLPs only).

    Mixed precision: ``accumulate`` maps a dtype it stores numbers in to the wider dtype it
    accumulates its reductions in (``{"bfloat16": "float32"}``: sums, means and dot products
    accumulated in float32, each total rounded once to bfloat16). Its cases in that dtype carry the
    declaration (``GraphCase.accumulate``), and their tolerances are those of the claim — tighter
    than those of a computation that rounds every partial sum to the storage format.
    ``summation`` maps a dtype to the order its reductions are summed in (``{"float32":
    "pairwise"}``: recursive halving, so a term goes through ⌈log2 n⌉ roundings, not n − 1), alone or
    with an accumulation dtype. The two are one claim per dtype
    (:class:`~conformance.case.dtypes.Reductions`, :func:`~conformance.case.dtypes.claims_of`), which
    the dtype's cases carry whole (``GraphCase.claim``).

    Part of a layer op: ``without`` maps a layer op to the hostile knobs of its geometry it does not
    take (``{"conv2d": ["groups", "dilation", "per_axis"]}``: a course assignment's convolution, one
    stride and one padding for both axes; the knobs per op in
    :data:`conformance.case.geometry.KNOBS`). Its cases are then drawn without them, and its fixed
    cases that need one are left out: a verdict on what the implementation does, said with its
    scope (``conformance list``, the report). For the op's cases only, not a training run's layers."""

    ops: frozenset[str]
    dtypes: tuple[str, ...] = ("float64",)
    second_order: bool = False
    networks: bool = False
    activations: frozenset[str] = frozenset()
    losses: Grain | Mapping[str, Iterable[str]] | Iterable[str] = frozenset()
    optimizers: Grain | Mapping[str, Iterable[str]] | Iterable[str] = frozenset()
    output_activations: frozenset[str] | None = None
    bias: frozenset[bool] = frozenset({True, False})
    layers: tuple[int, int] = (1, 4)
    batch_sizes: tuple[int, int] = (1, 16)
    layer_kinds: frozenset[str] = frozenset()
    accumulate: Mapping[str, str] = field(default_factory=dict, hash=False)
    summation: Mapping[str, str] = field(default_factory=dict, hash=False)
    without: Mapping[str, Iterable[str]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # normalised once, so that every reader sees grains and sets (frozen: set through object)
        set_ = object.__setattr__
        set_(self, "without", {op: frozenset(knobs) for op, knobs in dict(self.without).items() if knobs})
        for op, knobs in self.without.items():
            if op not in KNOBS:
                raise ValueError(f"without: {op!r} has no knobs to leave out; ops that have: {', '.join(KNOBS)}")
            unknown = sorted(knobs - set(KNOBS[op]))
            if unknown:
                raise ValueError(f"without: unknown knob(s) of {op} {', '.join(map(repr, unknown))}; "
                                 f"known: {', '.join(KNOBS[op])}")
            if op in self.layer_kinds:
                raise ValueError(f"without: {op} is also a layer kind of its training runs, whose layers draw "
                                 "every knob; declare the one or the other")
        for storage, acc in dict(self.accumulate).items():
            accumulation(storage, acc)  # a wider dtype of the table, or a one-line ValueError
        for storage, order in dict(self.summation).items():
            dtype(storage), summation(order)  # a dtype and an order of the tables, or a one-line ValueError
        # only the dtypes it has (``replace(caps, dtypes=...)`` narrows the declaration with them)
        set_(self, "accumulate", {k: v for k, v in dict(self.accumulate).items() if k in self.dtypes})
        set_(self, "summation", {k: v for k, v in dict(self.summation).items() if k in self.dtypes})
        set_(self, "losses", Grain.of(self.losses, loss_options(LOSS_ATTRS)))
        set_(self, "optimizers", Grain.of(self.optimizers, OPTIMIZER_HYPER))
        set_(self, "activations", frozenset(self.activations))
        set_(self, "output_activations", frozenset(self.activations if self.output_activations is None
                                                   else self.output_activations))
        set_(self, "bias", frozenset(self.bias))
        set_(self, "layer_kinds", frozenset(self.layer_kinds))
        unknown_kinds = sorted(self.layer_kinds - set(STRUCTURAL))
        if unknown_kinds:
            raise ValueError(f"unknown layer kind(s) {', '.join(map(repr, unknown_kinds))}; "
                             f"known: {', '.join(STRUCTURAL)}")
        for name in ("layers", "batch_sizes"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"capabilities.{name} must be (min, max) with 1 <= min <= max, got {(lo, hi)}")
            set_(self, name, (int(lo), int(hi)))
        if self.networks and not self.bias:
            raise ValueError("capabilities.bias must allow True, False or both")
        unknown = sorted((self.activations | self.output_activations) - set(ACTIVATIONS))
        if unknown:  # a misspelt name would otherwise be silently never drawn
            raise ValueError(f"unknown activation(s) {', '.join(map(repr, unknown))}; known: {', '.join(ACTIVATIONS)}")


#: everything a network case (conformance/case/network.py) can express: what the built-in implementations support
NETWORKS = dict(networks=True, activations=frozenset(ACTIVATIONS), output_activations=frozenset(ACTIVATIONS),
                losses=frozenset(LOSS_ATTRS), optimizers=frozenset(OPTIMIZER_HYPER), layer_kinds=frozenset(STRUCTURAL))


class Implementation(Protocol):
    name: str
    version: str
    capabilities: Capabilities

    def run_graph(self, case: GraphCase) -> GraphResult: ...


#: float16 and bfloat16 stored, their reductions accumulated in float32: what torch's CPU kernels do
#: (a sum of 4096 float16 ones is 4096) and what refimpl emulates (refimpl.numbers.MixedNS)
HALF_IN_FLOAT32 = {name: "float32" for name in HALF}


class RefImpl:
    name = "refimpl"
    capabilities = Capabilities(frozenset(OPS) | frozenset(TENSOR_OPS), tuple(DTYPES), second_order=True,
                                accumulate=HALF_IN_FLOAT32)
    capabilities = replace(capabilities, **NETWORKS)  # and training runs (netrun.py)

    @property
    def version(self) -> str:
        return refimpl.__version__

    def run_graph(self, case: GraphCase) -> GraphResult:
        return run_refimpl(case)

    def run_network(self, case: NetworkCase) -> NetworkResult:
        return run_refimpl_network(case)


class TorchImpl:
    name = "torch"
    capabilities = Capabilities(frozenset(OPS) | frozenset(TENSOR_OPS), tuple(DTYPES), second_order=True,
                                accumulate=HALF_IN_FLOAT32)
    capabilities = replace(capabilities, **NETWORKS)  # and training runs (netrun.py)

    @property
    def version(self) -> str:
        import torch

        return torch.__version__

    def run_graph(self, case: GraphCase) -> GraphResult:
        return run_torch(case)

    def run_network(self, case: NetworkCase) -> NetworkResult:
        return run_torch_network(case)


#: every dtype's reductions summed pairwise (recursive halving: refimpl.numbers.pairwise_sum)
PAIRWISE = {name: "pairwise" for name in DTYPES}


class PairwiseRefImpl(RefImpl):
    """refimpl summing every reduction pairwise, and claiming it (``capabilities.summation``): the
    correct implementation of the claim, which must pass the tighter tolerances it buys. Its cases
    carry the claim, and refimpl's run of a case follows the case's claim
    (:func:`conformance.oracle.run.refimpl_system`), so this is refimpl with another declaration
    and nothing else. bfloat16 also claims float32 accumulation, float16 not: both forms of the
    claim, alone and with a wider accumulator, are exercised. Calibration names it
    ``refimpl-pairwise``; the mutant zoo's summation-order mutant starts from it."""

    name = "refimpl-pairwise"
    capabilities = replace(RefImpl.capabilities, accumulate={"bfloat16": "float32"}, summation=PAIRWISE)


BUILTIN = {"refimpl": RefImpl, "torch": TorchImpl}


def available() -> dict[str, object]:
    """Built-in implementations and those registered through the entry-point group."""
    found: dict[str, object] = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def load(name: str) -> Implementation:
    found = available()
    if name not in found:
        raise LookupError(f"unknown implementation {name!r}; known: {', '.join(sorted(found))}")
    obj = found[name]
    factory = obj.load() if hasattr(obj, "load") else obj
    return factory()  # type: ignore[operator,no-any-return]
