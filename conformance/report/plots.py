"""The report's plots, drawn with matplotlib's Agg canvas (no pyplot: no global state, no display)
and returned as PNG bytes to embed. matplotlib is imported here only, inside the functions, so the
command line starts without it and a machine without it still gets a report (without plots)."""

from __future__ import annotations

import io
import math
import random
from typing import Any

import pandas as pd

from conformance.verdict.outcomes import NONCONFORMING

PALETTE = ["#1f5f99", "#d9822b", "#2e8540", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"]


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed: the report says so instead of showing plots."""


def _figure(w: float, h: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotsUnavailable("matplotlib is not installed (a dependency: pip install 'matplotlib>=3.8')") from exc
    fig = Figure(figsize=(w, h), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()


def _style(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)


def ratio_distribution(cases: pd.DataFrame) -> bytes:
    """Every case's worst error/tolerance per family (one band) and implementation (one colour),
    on a log axis: 0 is drawn at the left edge and ∞ at the right, 1 (the edge of passing) marked."""
    families = sorted(cases["family"].unique())
    impls = list(dict.fromkeys(cases["impl"]))
    unjudged = cases[cases["worst_ratio"].isna()]  # errors and timeouts: nothing was compared
    df = cases[~cases["worst_ratio"].isna()]
    finite = df["worst_ratio"][(df["worst_ratio"] > 0) & (df["worst_ratio"] < math.inf)]
    # floats, and within 1e-300…1e300: a ratio of 1e305 made 10**307 an int beyond float, which
    # turned matplotlib's tick array into objects
    lo = 10.0 ** max(-300, math.floor(math.log10(finite.min()) - 1)) if len(finite) else 1e-3
    lo = min(lo, 1e-2)
    hi = 10.0 ** min(300, math.ceil(math.log10(max(finite.max(), 1.0)) + 1)) if len(finite) else 10.0
    fig = _figure(10, 1.3 + 0.42 * max(1, len(families)) * (1 + 0.2 * (len(impls) - 1)))
    ax = fig.add_subplot()
    rng = random.Random(0)
    band = 0.8 / max(1, len(impls))
    for j, impl in enumerate(impls):
        mine = df[df["impl"] == impl]
        for i, fam in enumerate(families):
            r = mine["worst_ratio"][mine["family"] == fam].to_numpy(dtype=float)
            if not len(r):
                continue
            x = [lo if v <= lo or v == 0 else hi if math.isinf(v) else v for v in r]
            centre = i - 0.4 + band * (j + 0.5)
            y = [centre + rng.uniform(-band * 0.35, band * 0.35) for _ in x]
            bad = mine["verdict"][mine["family"] == fam].isin(NONCONFORMING).to_numpy()
            colour = PALETTE[j % len(PALETTE)]
            ax.scatter([a for a, b in zip(x, bad) if not b], [c for c, b in zip(y, bad) if not b], s=18,
                       alpha=0.55, color=colour, edgecolors="none", label=impl)
            if bad.any():
                ax.scatter([a for a, b in zip(x, bad) if b], [c for c, b in zip(y, bad) if b], s=30, marker="x",
                           color=colour, linewidths=1.4)
    ax.set_xscale("log")
    ax.set_xlim(lo / 1.6, hi * 1.6)
    ax.axvspan(1, hi * 1.6, color="#c62828", alpha=0.06, lw=0)
    ax.axvline(1, color="#c62828", lw=1, ls="--")
    ax.text(1.15, -0.47, "beyond tolerance →", color="#c62828", fontsize=8, va="top")
    for i, fam in enumerate(families):
        n = int((unjudged["family"] == fam).sum())
        if n:
            ax.text(hi * 1.5, i, f"{n} error/timeout\n(no ratio)", color="#c62828", fontsize=7, ha="right",
                    va="center")
    ticks = [t for t in ax.get_xticks() if lo < t < hi]
    ax.set_xticks([lo, *ticks, hi], ["0", *[f"$10^{{{round(math.log10(t))}}}$" for t in ticks], "∞"])
    ax.set_yticks(range(len(families)), families)
    ax.set_ylim(len(families) - 0.5, -0.5)
    ax.set_xlabel("worst error / tolerance of each case (× = non-conforming case)", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    if impls:
        ax.legend(seen.values(), seen.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.grid(axis="x", color="#e5e5e5", lw=0.6)
    _style(ax)
    return _png(fig)


def pass_heatmap(cases: pd.DataFrame) -> bytes:
    """Implementation × family: the share of cases that conform, the count in each cell."""
    families = sorted(cases["family"].unique())
    impls = list(dict.fromkeys(cases["impl"]))
    grid: list[list[float]] = []
    labels: list[list[str]] = []
    for impl in impls:
        row, lab = [], []
        for fam in families:
            g = cases[(cases["impl"] == impl) & (cases["family"] == fam)]
            ok = int((~g["verdict"].isin(NONCONFORMING)).sum())
            row.append(ok / len(g) if len(g) else math.nan)
            lab.append(f"{100 * ok / len(g):.0f}%\n{ok}/{len(g)}" if len(g) else "—")
        grid.append(row)
        labels.append(lab)
    fig = _figure(min(14, 2.2 + 1.0 * len(families)), 0.9 + 0.62 * len(impls))
    ax = fig.add_subplot()
    import numpy as np

    data = np.ma.masked_invalid(np.array(grid, dtype=float))
    from matplotlib.colors import LinearSegmentedColormap

    stops = [(0, "#f2b8b5"), (0.9, "#fbe3a6"), (1, "#a8dab5")]  # soft: the numbers in the cells stay legible
    cmap = LinearSegmentedColormap.from_list("conform", stops).with_extremes(bad="#f1f1f1")
    ax.imshow(data, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(len(impls)):
        for j in range(len(families)):
            v = grid[i][j]
            ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=8.5,
                    color="#999999" if math.isnan(v) else "#1a1a1a")
    ax.set_xticks(range(len(families)), families, rotation=30, ha="right")
    ax.set_yticks(range(len(impls)), impls)
    ax.tick_params(length=0, labelsize=9)
    for s in ax.spines.values():
        s.set_visible(False)
    return _png(fig)


def trend(rows: dict[str, list[Any]]) -> bytes:
    """Per implementation over its last runs: share conforming, non-conforming cases, worst ratio."""
    fig = _figure(11, 3.0)
    axes = fig.subplots(1, 3)
    for k, (impl, ts) in enumerate(rows.items()):
        colour = PALETTE[k % len(PALETTE)]
        xs = list(range(len(ts)))
        axes[0].plot(xs, [100 * t.rate for t in ts], "o-", color=colour, label=impl, ms=4)
        axes[1].plot(xs, [t.failures for t in ts], "o-", color=colour, ms=4)
        worst = [t.worst_ratio if t.worst_ratio > 0 else math.nan for t in ts]
        axes[2].plot(xs, [min(w, 1e30) for w in worst], "o-", color=colour, ms=4)
    longest = max(rows.values(), key=len)
    for ax, title in zip(axes, ("conforming cases (%)", "non-conforming cases", "worst error/tolerance")):
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_xticks(range(len(longest)), [t.started[5:10] or t.run_id[:8] for t in longest], rotation=45,
                      fontsize=8)
        ax.grid(color="#ececec", lw=0.6)
        _style(ax)
    axes[0].set_ylim(-3, 103)
    axes[2].set_yscale("log")
    axes[2].axhline(1, color="#c62828", lw=1, ls="--")
    axes[0].legend(fontsize=8, frameon=False)
    return _png(fig)
