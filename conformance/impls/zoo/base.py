"""What a mutant is, and how one runs without the judge ever seeing it.

The judge is built from refimpl: tolerances run refimpl's op table in a bounding number system, the
truth runs refimpl's forward formulas in mpmath, and for training runs the truth *is* refimpl at 50
digits. So a mutant never patches refimpl for good. Its patch is a context manager, entered around
the implementation's own call only (:class:`MutantImpl`: patch → run refimpl → restore); the suite is
single-threaded, so nothing the judge computes afterwards can see it. :func:`snapshot` lists every
object a patch may replace, so a test can check that all of them are back.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from conformance.case.graph import GraphCase, GraphResult
from conformance.case.network import NetworkCase, NetworkResult
from conformance.impls import RefImpl
from conformance.oracle.netrun import RefTrainer, result_of
from conformance.oracle.run import run_refimpl
from refimpl import OPS, engine, losses, optim
from refimpl.engine import GraphNS, Value
from refimpl.tensor import Tensor

tensor = importlib.import_module("refimpl.tensor")  # the module: refimpl.tensor is also a function

Patch = Callable[[], AbstractContextManager[Any]]
CATEGORIES = ("derivative", "graph", "tensor", "layers", "optimizer", "numerics", "precision")


@dataclass(frozen=True)
class Mutant:
    """One realistic bug: ``patch`` applies it to refimpl for the duration of one run; ``trainer``
    replaces a piece of the training loop (:class:`~conformance.oracle.netrun.RefTrainer`'s methods).

    ``expect`` is ``"kill"`` or ``"convention"``: a bug that only changes a derivative *at a kink*,
    where torch documents a choice, is judged ``convention`` (reported, not failed) by design.
    """

    name: str
    category: str
    bug: str  # one line: what the code gets wrong
    why: str  # one line: why a person writes it
    patch: Patch = nullcontext
    trainer: type[RefTrainer] = RefTrainer
    expect: str = "kill"
    # the ops whose cases the bug can change — a patch of those ops' declarations only; empty: any case.
    # A case without them is computed bit for bit as refimpl computes it, so its verdict is refimpl's.
    ops: frozenset[str] = frozenset()
    # the capabilities the buggy implementation declares (None: refimpl's): a claim about its reductions
    # (capabilities.summation) that the bug breaks. Its cases carry the claim; the unmutated refimpl with the
    # same declaration is its control (it computes what the claim says: conformance.oracle.run.refimpl_system)
    declares: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        assert self.category in CATEGORIES, self.category
        assert self.expect in ("kill", "convention"), self.expect


class MutantImpl(RefImpl):
    """refimpl with one mutant's bug, active only inside its own ``run_graph`` / ``run_network``."""

    def __init__(self, mutant: Mutant) -> None:
        self.mutant = mutant
        self.name = f"mutant:{mutant.name}"
        if mutant.declares is not None:
            self.capabilities = mutant.declares

    def run_graph(self, case: GraphCase) -> GraphResult:
        with self.mutant.patch():
            return run_refimpl(case)

    def run_network(self, case: NetworkCase) -> NetworkResult:
        with self.mutant.patch():
            return result_of(case, self.mutant.trainer(case).run())


# --- patches ------------------------------------------------------------------------------------------

def setting(owner: Any, attr: str, value: Any) -> Patch:
    """``owner.attr = value`` while the patch is active."""
    return lambda: mock.patch.object(owner, attr, value)


def entries(table: dict[str, Any], **values: Any) -> Patch:
    """Entries of a registry (``OPTIMIZERS``, ``LOSSES``) replaced while the patch is active."""
    return lambda: mock.patch.dict(table, values)


def both(*patches: Patch) -> Patch:
    @contextmanager
    def combined() -> Iterator[None]:
        with ExitStack() as stack:
            for p in patches:
                stack.enter_context(p())
            yield

    return combined


def replace_op(name: str, **changes: Any) -> Patch:
    """The op ``name`` with some fields changed (``derivative=…``), wherever refimpl holds its spec:
    the table, the engine's operator shortcuts (``_SUB`` for ``a - b``, ``_POW_INT`` for ``x ** 2``),
    the per-op methods of Value and Tensor (closures over the spec) and second order's GraphNS."""

    @contextmanager
    def patched() -> Iterator[None]:
        old = OPS[name]
        # a new derivative is the whole backward: refimpl's vjp (log, div) would bypass it
        new = dataclasses.replace(old, **({"vjp": None} if "derivative" in changes else {}), **changes)
        with ExitStack() as stack:
            stack.enter_context(mock.patch.dict(OPS, {name: new}))
            for attr, value in vars(engine).items():
                if value is old:
                    stack.enter_context(mock.patch.object(engine, attr, new))
            if _is_op_method(vars(Value).get(name), "value_method"):
                stack.enter_context(mock.patch.object(Value, name, engine.value_method(new)))
            if _is_op_method(vars(Tensor).get(name), "unary_method", "binary_method"):
                make = tensor.unary_method if new.arity == 1 else tensor.binary_method
                stack.enter_context(mock.patch.object(Tensor, name, make(new)))
            if _is_op_method(vars(GraphNS).get(name), "graph_function", inner="fn"):
                stack.enter_context(mock.patch.object(GraphNS, name, engine.graph_function(name)))  # reads OPS: new
            yield

    return patched


def _is_op_method(fn: Any, *makers: str, inner: str = "method") -> bool:
    """Whether ``fn`` was made for one op by one of refimpl's per-op factories (a closure over its spec)."""
    return any(getattr(fn, "__qualname__", "") == f"{m}.<locals>.{inner}" for m in makers)


def snapshot() -> dict[str, int]:
    """The identity of everything a patch may replace: equal before and after any mutant has run."""
    out = {f"OPS[{k}]": id(v) for k, v in OPS.items()}
    for label, owner in (("engine", engine), ("tensor", tensor), ("Value", Value), ("Tensor", Tensor),
                         ("GraphNS", GraphNS)):
        out.update({f"{label}.{k}": id(v) for k, v in vars(owner).items()})
    out.update({f"LOSSES[{k}]": id(v) for k, v in losses.LOSSES.items()})
    out.update({f"OPTIMIZERS[{k}]": id(v) for k, v in optim.OPTIMIZERS.items()})
    return out
