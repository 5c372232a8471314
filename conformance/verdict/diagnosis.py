"""A diagnosis line: how a failing quantity relates to torch's, when the relation has a known shape.

A wrong gradient is often wrong by a pattern that names the bug: exactly ½ (a factor 2 forgotten:
d(x²)/dx), 1/N for the batch size (averaged where the loss sums), the sign flipped, all zero (nothing
reaches it), the transpose of torch's matrix, torch's entries in another order. The judge says *that*
an entry is wrong; this says *how*, per quantity (every entry of one gradient, parameter or loss at
one step), where the whole quantity fits one pattern:

    grad[layer0.bias]@1 = torch's × 1/2 (= 1/batch, batch 2): averaged over the batch where the loss sums?

Only patterns that hold for every entry of the quantity within a relative 1e-6 are named (and "all
zero" only for two entries or more: one zero is often a coincidence, 1 − x² at x = 1); anything
else gets no line (a guess would mislead). Reads entry names only (conformance/case/entrykey.py), so
it serves every kind.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from conformance.case.entrykey import EntryKey

REL = 1e-6
_SHOWN = {"pass", "torch-deviates", "known-cause", "unchecked", "convention"}


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-300)


def _sizes(case: Any) -> dict[str, int]:
    """The sizes a factor may be: the batch and the number of outputs of a training run."""
    batches = getattr(case, "batches", None)
    if not batches:
        return {}
    return {"batch": batches[0].x.shape[0], "outputs": case.sizes[-1]}


def _factor(c: float, sizes: dict[str, int], quantity: str) -> str | None:
    """Words for a constant ratio ``c`` = implementation / torch."""
    for what, n in sizes.items():
        if n > 1 and _close(c, 1 / n):
            why = "averaged over the batch where the loss sums?" if what == "batch" else \
                f"divided by the {what} once too often?"
            return f"× 1/{n} (= 1/{what}, {what} {n}): {why}"
        if n > 1 and _close(c, n):
            return f"× {n} (= {what}, {what} {n}): summed over the {what} where the loss averages?"
    if _close(c, 0.5):
        return "× 1/2: a factor 2 missing (d(x²)/dx = 2x)?"
    if _close(c, 2.0):
        return "× 2: a factor 2 too many?"
    if _close(c, -1.0):
        return "× −1: the sign flipped" + (" (a step up the gradient, or − for +)?" if quantity != "loss" else "?")
    return None


def _matrix(keys: list[EntryKey], values: list[float]) -> dict[tuple[int, ...], float]:
    return {k.index: v for k, v in zip(keys, values)}


def _pattern(keys: list[EntryKey], impl: list[float], torch: list[float], sizes: dict[str, int]) -> str | None:
    quantity = keys[0].quantity
    if not any(t != 0 for t in torch):
        return None
    if all(x == 0 for x in impl) and sum(t != 0 for t in torch) >= 2:  # one zero is often a coincidence
        return "all zero: nothing reaches it (a gradient not accumulated, or overwritten)?"
    pairs = [(x, t) for x, t in zip(impl, torch) if t != 0]
    if all(x == 0 for x, t in zip(impl, torch) if t == 0) and pairs:
        ratios = [x / t for x, t in pairs]
        if all(_close(r, ratios[0]) for r in ratios):
            words = _factor(ratios[0], sizes, quantity)
            if words:
                return f"torch's {words}"
    if len(keys) > 1 and all(len(k.index) == 2 for k in keys):
        a, b = _matrix(keys, impl), _matrix(keys, torch)
        if all((j, i) in b and _close(a[(i, j)], b[(j, i)]) for (i, j) in a) and a != b:
            return "torch's transpose: the gradient of W computed as that of Wᵀ (in × out for out × in)?"
    if len(impl) > 1 and all(_close(x, t) for x, t in zip(sorted(impl), sorted(torch))):
        return "torch's entries in another order: a gradient sent to the wrong position?"
    return None


def _accumulated(keys: list[EntryKey], impl: list[float], by_name: dict[str, Any]) -> str | None:
    """A gradient at step t ≥ 2 that is torch's at t (from the implementation's own parameters: the
    anchored entry) plus the implementation's own at t − 1: the last step's gradient kept."""
    if keys[0].quantity != "grad" or not keys[0].step or keys[0].step < 2:
        return None
    for k, x in zip(keys, impl):
        anchored, before = by_name.get(str(k.anchor())), by_name.get(str(k.at(k.step - 1)))  # type: ignore[operator]
        if anchored is None or before is None or not _close(x, anchored.torch + before.impl):
            return None
    return "torch's (from the implementation's own parameters) + the step before's gradient: not zeroed between steps?"


def diagnose(v: Any) -> list[str]:
    """One line per failing quantity whose relation to torch's fits a known pattern (module doc)."""
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    by_name = {e.name: e for e in v.entries}
    for e in v.entries:
        k = EntryKey.parse(e.name)
        if k.anchored:
            continue
        groups[(k.quantity, k.target, k.step)].append((k, e))
    sizes = _sizes(v.case)
    failing = {g: items for g, items in groups.items() if not all(e.verdict in _SHOWN for _, e in items)}
    first = min((g[2] or 0 for g in failing), default=0)  # later steps inherit the first one's error
    lines: list[str] = []
    zeros: list[int] = []  # gradients all zero, one entry each: together they may say it
    for (quantity, target, step), items in failing.items():
        if (step or 0) != first:
            continue
        keys = [k for k, _ in items]
        impl = [e.impl for _, e in items]
        torch = [e.torch for _, e in items]
        if not all(math.isfinite(x) for x in impl + torch):
            continue
        found = _pattern(keys, impl, torch, sizes) or _accumulated(keys, impl, by_name)
        if found:
            name = str(EntryKey(quantity, target, (), step))
            lines.append(f"{name} = {found}")
        elif quantity == "grad" and all(x == 0 for x in impl) and any(t != 0 for t in torch):
            zeros.append(sum(t != 0 for t in torch))
    grads = [g for g in failing if g[0] == "grad" and (g[2] or 0) == first]
    if zeros and len(zeros) == len(grads) and sum(zeros) >= 2:
        lines.append(f"every failing gradient{'' if not first else f' at step {first}'} = 0 where torch's is not: "
                     "nothing reaches them (a gradient not accumulated, or overwritten)?")
    return lines
