"""What a network implementation takes, at the grain people implement it.

A hand-written MLP does "plain SGD, MSE with mean reduction, layers with bias, sigmoid everywhere":
it has no momentum, no ``reduction='none'``, no label smoothing. Declaring only ``optimizers={'sgd'}``
would promise every knob of ``torch.optim.SGD``; so an implementation declares, per optimizer, the
hyperparameters it takes, and per loss, the reductions and attributes it takes (:class:`Grain`).
What it does not take is fixed in every case it is given at the value that switches it off —
momentum 0, no weight decay, no label smoothing (:data:`HYPER_OFF`, :data:`LOSS_ATTR_OFF`) — or at
torch's default where nothing switches off (Adam's betas and eps). Those cases are exactly what the
implementation computes, and what it leaves out is counted as ``unsupported``, never an error.

``Grain.of(["sgd"], OPTIMIZER_HYPER)`` — names alone — takes everything, as a declaration did before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from refimpl.losses import REDUCTIONS

#: each optimizer hyperparameter's value where an implementation does not take it: off (0, False),
#: or torch's default where there is no "off" (betas, eps, rmsprop's alpha); ``lr`` is always taken
HYPER_OFF: dict[str, dict[str, Any]] = {
    "sgd": {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False, "maximize": False},
    "adam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False, "maximize": False,
             "decoupled_weight_decay": False},
    "adamw": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False, "maximize": False},
    "rmsprop": {"alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False,
                "maximize": False},
    "adagrad": {"lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10,
                "maximize": False},
    "none": {},
}
#: each loss attribute's value where an implementation does not take it (``ignore_index`` not taken:
#: no target is ignored)
LOSS_ATTR_OFF: dict[str, Any] = {"beta": 1.0, "delta": 1.0, "weight": None, "pos_weight": None,
                                 "ignore_index": -100, "label_smoothing": 0.0}


class Grain(Mapping[str, frozenset[str]]):
    """Per name (an optimizer, a loss), what the implementation takes of it (hyperparameters;
    reductions and attributes). Read-only and hashable; ``name in grain`` and iteration over the
    names work as on the set of names a declaration used to be."""

    def __init__(self, items: Mapping[str, Iterable[str]]) -> None:
        self._items = {k: frozenset(v) for k, v in items.items()}

    @classmethod
    def of(cls, declared: Grain | Mapping[str, Iterable[str]] | Iterable[str] | None,
           full: Mapping[str, Iterable[str]]) -> Grain:
        """A declaration as a grain: a grain, a mapping (each name with what it takes, anything
        outside ``full[name]`` being an error), or names alone (each takes all of ``full[name]``)."""
        if isinstance(declared, Grain):
            return declared
        if declared is None:
            return cls({})
        if isinstance(declared, Mapping):
            out = {}
            for k, v in declared.items():
                if k not in full:
                    raise ValueError(f"unknown name {k!r}; known: {', '.join(full)}")
                if isinstance(v, str):
                    raise ValueError(f"{k}: give a list of what it takes, not the string {v!r}")
                extra = set(v) - set(full[k])
                if extra:
                    raise ValueError(f"{k} takes {', '.join(full[k])}, not {', '.join(sorted(extra))}")
                out[k] = v
            return cls(out)
        names = list(declared)
        unknown = [k for k in names if k not in full]
        if unknown:
            raise ValueError(f"unknown name(s) {', '.join(unknown)}; known: {', '.join(full)}")
        return cls({k: full[k] for k in names})

    def __getitem__(self, key: str) -> frozenset[str]:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, tuple(sorted(v))) for k, v in self._items.items())))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Grain):
            return self._items == other._items
        return NotImplemented

    def __repr__(self) -> str:
        return f"Grain({ {k: sorted(v) for k, v in self._items.items()} })"


def loss_options(loss_attrs: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """What each loss can take: every reduction and its attributes."""
    return {k: (*REDUCTIONS, *v) for k, v in loss_attrs.items()}


def outside(caps: Any, case: Any) -> str | None:
    """Why a network case holds something ``caps`` does not declare (None: it is inside): the
    shrinker's candidates must stay where the strategies draw."""
    from_off = HYPER_OFF.get(case.optimizer, {})
    if case.optimizer not in caps.optimizers:
        return f"optimizer {case.optimizer}"
    taken = caps.optimizers[case.optimizer] | {"lr"}  # (a gradients-only run has no hyperparameters)
    for k, v in case.hyper.items():
        if k not in taken and k in from_off and v != from_off[k]:
            return f"{case.optimizer}.{k} = {v!r}"
    if case.loss not in caps.losses or case.reduction not in caps.losses[case.loss]:
        return f"{case.loss} reduction {case.reduction}"
    for k, v in case.loss_attrs.items():
        if k not in caps.losses[case.loss] and k != "ignore_index" and v != LOSS_ATTR_OFF[k]:
            return f"{case.loss}.{k} = {v!r}"
    if "ignore_index" not in caps.losses[case.loss] and any(
            y == case.loss_attrs.get("ignore_index", -100) for b in case.batches for y in b.y.values
            if "ignore_index" in case.loss_attrs):
        return f"{case.loss}: an ignored target"
    *hidden, last = case.layers
    if any(la.activation not in caps.activations for la in hidden) or last.activation not in caps.output_activations:
        return "an activation"
    for f in getattr(case, "features", ()):  # feature layers (a CNN): each kind declared, activations as hidden
        if f.kind not in getattr(caps, "layer_kinds", ()) and f.kind not in caps.activations:
            return f"layer kind {f.kind}"
    if any((la.bias is not None) not in caps.bias for la in case.layers):
        return "a layer's bias"
    if not caps.layers[0] <= len(case.layers) <= caps.layers[1]:
        return f"{len(case.layers)} layers"
    if not caps.batch_sizes[0] <= case.batches[0].x.shape[0] <= caps.batch_sizes[1]:
        return f"batch {case.batches[0].x.shape[0]}"
    return None
