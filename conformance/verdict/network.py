"""The network judge: a training run's verdict, entry by entry, free-running and anchored.

The network kind's counterpart of :mod:`conformance.verdict.graph`, whose rules it follows (and whose
:class:`~conformance.verdict.graph.Entry`, :class:`~conformance.verdict.graph.CaseVerdict` and
:func:`~conformance.verdict.graph.arbitrate` it uses), per entry — ``loss@t`` (``loss[i]@t`` for
``'none'``), ``grad[p][r,c]@t``, ``param[p][r,c]@t``, steps counted from 1 — each entry twice:

* **free-running**: the implementation's run against torch's run. The tolerance is
  ``SAFETY × bound + tiny``, the bound that of the whole run (:mod:`conformance.tolerance.netbounds`), which
  grows as the run amplifies differences;
* **anchored** (``anchored:…``): the loss and gradients of step ``t ≥ 2`` as torch computes them from
  the *implementation's own* parameters after step ``t − 1`` (where those are finite), and the
  parameters after every step as torch's optimizer makes them from the implementation's own
  parameters and gradients (:class:`Anchored`, :func:`~conformance.oracle.netrun.replay_torch`).
  One-step tolerances, which do not grow: a bug shows at the step it happens, however loose the
  free-running bound has become.

For every entry: ``pass`` if ``|impl − torch| ≤ 2·tol``; otherwise the truth — refimpl at 50 digits
(:func:`conformance.oracle.netrun.truth`) — arbitrates. ``torch-deviates`` when the implementation is within
``tol`` of the truth and torch is not; ``convention`` when a branch the rounding decides explains it
(a kink the bounded run passed near: :mod:`conformance.oracle.netrun`). A kink excuses free-running entries
from its step on, and anchored entries of its own step only. Otherwise ``nonfinite-mismatch``,
``fail``; a raised exception or an unusable result is ``error``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from conformance.case.entrykey import EntryKey
from conformance.case.graph import Tensor
from conformance.case.network import (
    CLASS_LOSSES,
    NetworkCase,
    NetworkResult,
    StepResult,
    entries,
    initial_params,
    params_before,
    with_params,
)
from conformance.oracle.netrun import RefTrainer, bounds, replay, replay_torch, run_torch_network, truth
from conformance.tolerance.bounds import SAFETY, Bounded
from conformance.tolerance.netbounds import NET_BOUND, tiny
from conformance.verdict.graph import CaseVerdict, Entry, arbitrate, within
from conformance.verdict.outcomes import ORDER
from refimpl import mpmath_system


@dataclass
class NetworkVerdict(CaseVerdict):
    """A graph case's verdict (entries, worst, reason), for a training run, with the kinks it passed near."""

    near_kinks: list[str] = field(default_factory=list)


def tolerances(case: NetworkCase) -> dict[str, float]:
    """``SAFETY × bound + tiny`` for every entry."""
    b, _ = bounds(case)
    floor = tiny(case.dtype)
    return {k: SAFETY * float(v.e) + floor for k, v in b.items()}


# --- anchored entries: each step judged from the implementation's own previous step ------------------------
#
# The bound of a free-running comparison grows with the run: honestly (errors of step t are inputs
# of step t + 1) but loosely — running error analysis adds |contributions| over every path, and a
# parameter's error reaches the next step's gradients through every sample of the batch and through
# the forward and the backward pass, with signs that cancel in reality. Measured over random runs the
# bound grows ~1-100x per step while the actual discrepancy stays flat. So every step is also judged
# *anchored*: the loss and gradients of step t as torch computes them from the implementation's own
# parameters after step t - 1, and the parameters after step t as torch's optimizer makes them from
# the implementation's own parameters and gradients (its state fed with the implementation's run).
# Each anchored entry has a one-step tolerance (optimizer state errors propagate elementwise only),
# so a bug shows at the step it happens however loose the free-running bound has become.

def one_step_case(case: NetworkCase, params: dict[str, Tensor], t: int) -> NetworkCase:
    """Step ``t`` of ``case`` on its own, starting from ``params``."""
    return replace(with_params(case, params), batches=(case.batches[t - 1],), id=f"{case.id}@step{t}")


def _finite(params: dict[str, Tensor]) -> bool:
    return all(math.isfinite(v) for p in params.values() for v in p.values)


def _as_steps(params_per_step: list[dict[str, list[Any]]]) -> list[dict[str, Any]]:
    return [{"loss": [], "grads": {}, "params": ps} for ps in params_per_step]


class Anchored:
    """The anchored entries of an implementation's run (named ``anchored:…``): torch's values, their
    bounds, the branch decisions near a kink and, on demand, the truth."""

    def __init__(self, case: NetworkCase, impl_steps: list[StepResult]) -> None:
        self.case, self.steps = case, impl_steps
        # a step is anchored only from finite parameters: from inf or NaN there is nothing to anchor
        # to (torch's binary_cross_entropy even raises on the NaN its forward gives); the
        # free-running entries judge such a run, and the replayed optimizer steps still anchor it
        self.one = {t: one_step_case(case, before, t) for t in range(2, case.steps + 1)
                    if _finite(before := params_before(case, impl_steps, t))}
        self._truth: dict[str, float] | None = None

    def _rename(self, t: int, found: dict[str, Any]) -> dict[str, Any]:
        """The loss and gradients of a one-step run, as the anchored entries of step ``t``."""
        keys = {k: EntryKey.parse(k) for k in found}
        return {str(key.at(t).anchor()): found[k] for k, key in keys.items()
                if key.step == 1 and key.quantity != "param"}

    def _params(self, steps: list[dict[str, Any]]) -> dict[str, Any]:
        found = entries(self.case, steps)
        keys = {k: EntryKey.parse(k) for k in found}
        return {str(key.anchor()): found[k] for k, key in keys.items() if key.quantity == "param"}

    def torch(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for t, one in self.one.items():
            out.update(self._rename(t, entries(one, run_torch_network(one).steps)))
        out.update(self._params(_as_steps(replay_torch(self.case, self.steps))))
        return out

    def bounds(self) -> tuple[dict[str, Bounded], list[tuple[int, str]]]:
        out: dict[str, Bounded] = {}
        near: list[tuple[int, str]] = []
        for t, one in self.one.items():
            trainer = RefTrainer(one, NET_BOUND[self.case.dtype], watch=True)
            out.update(self._rename(t, entries(one, trainer.run())))
            near += [(t, f"step {t} (anchored): {note.split(': ', 1)[1]}") for _, note in trainer.near_kinks]
        out.update(self._params(_as_steps(replay(self.case, self.steps, NET_BOUND[self.case.dtype], near))))
        return out, near

    def truth(self, dps: int = 50) -> dict[str, float]:
        if self._truth is None:
            mp = mpmath_system(dps)
            out: dict[str, float] = {}
            for t, one in self.one.items():
                out.update({k: float(v) for k, v in self._rename(t, entries(one, RefTrainer(one, mp).run())).items()})
            out.update({k: float(v) for k, v in self._params(_as_steps(replay(self.case, self.steps, mp))).items()})
            self._truth = out
        return self._truth


def _shape_problem(case: NetworkCase, r: NetworkResult) -> str | None:
    """Why a result cannot be judged (wrong number of steps, a missing or misshapen tensor), or None."""
    if len(r.steps) != case.steps:
        return f"the result has {len(r.steps)} steps, the case {case.steps}"
    want = {k: t.shape for k, t in initial_params(case).items()}
    for t, s in enumerate(r.steps, 1):
        tables = [("gradient", s.grads)] + ([] if case.gradients_only else [("parameter", s.params)])
        for kind, table in tables:  # (a gradients-only run's parameters are not judged)
            for k, shape in want.items():
                if k not in table:
                    return f"step {t}: no {kind} for {k}"
                if len(table[k].values) != math.prod(shape):
                    return f"step {t}: the {kind} of {k} has {len(table[k].values)} values, expected {math.prod(shape)}"
                if tuple(table[k].shape) != tuple(shape):
                    hint = " (the transpose's shape)" if tuple(table[k].shape) == tuple(shape)[::-1] else ""
                    return f"step {t}: the {kind} of {k} has shape {list(table[k].shape)}, expected {list(shape)}{hint}"
        n = 1 if case.reduction != "none" else case.batches[t - 1].x.shape[0] * (
            1 if case.loss in CLASS_LOSSES else case.sizes[-1])
        if len(s.loss.values) != n:
            return f"step {t}: the loss has {len(s.loss.values)} values, expected {n}"
    return None


def judge_network(case: NetworkCase, impl: NetworkResult, torch_result: NetworkResult, *,
                  anchored: bool = True) -> NetworkVerdict:
    """The verdict on one training run: every entry — free-running and anchored — then the worst."""
    if impl.error is not None:  # "timeout: …" from a worker process (adapters/jsonl.py) is its own verdict
        return NetworkVerdict(case, "timeout" if impl.error.startswith("timeout: ") else "error", reason=impl.error)
    if torch_result.error is not None:
        return NetworkVerdict(case, "error", reason=f"torch failed on this case: {torch_result.error}")
    problem = _shape_problem(case, impl)
    if problem:
        return NetworkVerdict(case, "error", reason=f"unusable result: {problem}")
    got, want = entries(case, impl.steps), entries(case, torch_result.steps)
    if all(within(got[k], t, 0.0) for k, t in want.items()):  # bit for bit (the torch self-check)
        return NetworkVerdict(case, "pass", [Entry(k, got[k], t, math.inf, "pass") for k, t in want.items()])
    bound, near = bounds(case)
    true: dict[str, float] | None = None
    anchor = Anchored(case, impl.steps) if anchored else None
    a_near: list[tuple[int, str]] = []
    if anchor is not None:
        a_want = anchor.torch()
        a_bound, a_near = anchor.bounds()
        want.update(a_want)
        bound.update(a_bound)
        got.update({k: got[str(EntryKey.parse(k).anchor(False))] for k in a_want})

    def excuse(name: str) -> str | None:
        """The kink that may explain a disagreement at this entry: for a free-running entry any kink
        up to its step (its effect carries on), for an anchored one a kink in that very step."""
        key = keys[name]
        t = key.step
        if key.anchored:
            return next((note for s, note in a_near if s == t), None)
        return next((note for s, note in near if s <= t), None)

    floor = tiny(case.dtype)
    result = []
    first_excuse = None
    keys = {name: EntryKey.parse(name) for name in want}
    for name in sorted(want, key=lambda k: (keys[k].step, keys[k].anchored)):  # stable: step by step
        x, t = got[name], want[name]
        tol = SAFETY * float(bound[name].e) + floor
        if within(x, t, 2 * tol):
            result.append(Entry(name, x, t, tol, "pass"))
            continue
        if keys[name].anchored:
            tr = anchor.truth()[name]  # type: ignore[union-attr]
        else:
            if true is None:
                true = truth(case)
            tr = true[name]
        verdict, kink = arbitrate(x, t, tr, tol, lambda name=name: excuse(name))
        if kink:
            first_excuse = first_excuse or kink
        result.append(Entry(name, x, t, tol, verdict, truth=tr))
    worst = min((e.verdict for e in result), key=ORDER.index, default="pass")
    reason = ""
    if worst != "pass":
        bad = [e for e in result if e.verdict == worst]
        reason = f"{len(bad)} of {len(result)} entries {worst}; the first: {bad[0].describe()}"
        if worst == "convention":
            reason += f"\n  near a kink: {first_excuse}"
    notes = [note for _, note in near] + [note for _, note in a_near]
    return NetworkVerdict(case, worst, result, reason=reason, near_kinks=notes)
