"""Number and text formatting shared by summary.md and report.html, so both say the same thing."""

from __future__ import annotations

import html
import math
from typing import Any


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (the message's first line), for a note on stderr."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def ratio(x: float) -> str:
    """error/tolerance: 1 is the edge of passing; NaN means nothing was compared (an error verdict)."""
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞"
    if x == 0:
        return "0"
    return f"{x:.3g}"


def pct(x: float) -> str:
    if math.isnan(x):
        return "—"
    if 0.999 < x < 1:  # never round a single failure up to 100 %
        return f"{math.floor(x * 1000) / 10:.1f} %"
    return f"{x * 100:.0f} %" if x in (0, 1) else f"{x * 100:.1f} %"


def num(x: float, digits: int = 6) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def apart(x: float, *others: float, least: int = 4) -> list[str]:
    """``x`` and the others with just enough digits that ``x`` does not print like any value it differs
    from (the others may print alike: torch and the truth agreeing to 4 digits is the point)."""
    def same(a: float, b: float) -> bool:
        return a == b or (math.isnan(a) and math.isnan(b))

    for d in range(least, 18):
        out = [num(v, d) for v in (x, *others)]
        if all(out[0] != o or same(x, v) for o, v in zip(out[1:], others)):
            return out
    return [full(v) for v in (x, *others)]


def full(x: float) -> str:
    """Every digit that matters: the shortest text that reads back as the same float."""
    return num(x) if not math.isfinite(x) else repr(float(x))


def counts(verdicts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in verdicts.items()) or "no cases"


def short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def esc(x: Any) -> str:
    """HTML-escape anything (every string of the records may come from the implementation under test)."""
    return html.escape(str(x), quote=True)


def md(x: Any) -> str:
    """Text for Markdown: one line, no raw HTML, no table breaks."""
    text = " ".join(str(x).split())
    return html.escape(text, quote=False).replace("|", "\\|")


def code(x: Any) -> str:
    """An inline code span for Markdown (inside one, HTML is not interpreted)."""
    text = " ".join(str(x).split()).replace("`", "'").replace("|", "\\|")
    return f"`{text}`" if text else "—"
