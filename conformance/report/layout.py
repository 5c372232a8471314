"""A small layered layout for DAG pictures (Sugiyama-lite), so the report needs no Graphviz.

Four steps, each the simple version of the classic one: layers by longest path (leaves pulled
down next to their first consumer); a dummy node wherever an edge skips layers; crossing reduction
by barycentre sweeps plus adjacent swaps, keeping the best order seen; x coordinates by repeatedly
asking each node to sit at the mean of its neighbours' ports, solved exactly per layer as an
isotonic regression (pool adjacent violators), so boxes never overlap and keep their order.
Clean for the ~30-node minimal cases the report draws; quadratic crossing counts are fine there.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import pairwise

GAP_X = 28.0  #: between two boxes of a layer
GAP_DUMMY = 12.0  #: next to an edge passing through a layer
GAP_Y = 54.0  #: between layers
MARGIN = 14.0


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    port: int = 0  # which input of dst (0-based), of
    ports: int = 1  # how many inputs dst has


@dataclass
class Placed:
    """Boxes by name (x, y of the top-left corner), each edge as a polyline top to bottom, the size."""

    boxes: dict[str, tuple[float, float]]
    routes: list[list[tuple[float, float]]]
    width: float
    height: float
    layers: dict[str, int] = field(default_factory=dict)


def _port_offset(e: Edge, width: float) -> float:
    """Where on the top of dst the edge arrives, relative to its centre: inputs left to right."""
    return (e.port + 1) / (e.ports + 1) * width - width / 2


def assign_layers(nodes: list[str], edges: list[Edge]) -> dict[str, int]:
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for e in edges:
        preds[e.dst].append(e.src)
        succs[e.src].append(e.dst)
    layer: dict[str, int] = {}
    for n in nodes:  # nodes come in topological order
        layer[n] = 1 + max((layer[p] for p in preds[n]), default=-1)
    for n in nodes:  # a source sits just above its first consumer, not at the top of the picture
        if not preds[n] and succs[n]:
            layer[n] = min(layer[s] for s in succs[n]) - 1
    return layer


def _pav(target: list[float], weight: list[float]) -> list[float]:
    """Non-decreasing values closest (weighted least squares) to ``target``: pool adjacent violators."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for t, w in zip(target, weight):
        blocks.append([t, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out: list[float] = []
    for m, _, c in blocks:
        out += [m] * int(c)
    return out


class _Graph:
    """Real and dummy nodes, with one segment per layer an edge crosses."""

    def __init__(self, nodes: list[str], edges: list[Edge], size: dict[str, tuple[float, float]]) -> None:
        self.layer = assign_layers(nodes, edges)
        self.size = dict(size)
        self.real = set(nodes)
        # segments: (upper, lower, port, ports) — the port matters only where the lower end is real
        self.segs: list[tuple[str, str, int, int]] = []
        self.chains: list[list[str]] = []
        for k, e in enumerate(edges):
            chain = [e.src]
            for lay in range(self.layer[e.src] + 1, self.layer[e.dst]):
                d = f"\0{k}:{lay}"
                self.layer[d] = lay
                self.size[d] = (0.0, 0.0)
                chain.append(d)
            chain.append(e.dst)
            self.chains.append(chain)
            for a, b in pairwise(chain):
                self.segs.append((a, b, e.port if b == e.dst else 0, e.ports if b == e.dst else 1))
        depth = max(self.layer.values(), default=0) + 1
        self.rows: list[list[str]] = [[] for _ in range(depth)]
        for n in [*nodes, *(d for c in self.chains for d in c[1:-1])]:
            self.rows[self.layer[n]].append(n)
        self.by_upper: dict[int, list[tuple[str, str, int, int]]] = defaultdict(list)
        for seg in self.segs:
            self.by_upper[self.layer[seg[0]]].append(seg)
        self.up: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        self.down: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        for a, b, p, ps in self.segs:
            self.down[a].append((b, p, ps))
            self.up[b].append((a, p, ps))

    # --- ordering -------------------------------------------------------------------------------

    def crossings(self, l: int, pos: dict[str, float]) -> int:
        """Crossings between layer ``l`` and ``l + 1`` (the lower ends spread by input port)."""
        segs = [(pos[a], pos[b] + (p + 1) / (ps + 1) * 0.5) for a, b, p, ps in self.by_upper.get(l, ())]
        return sum(1 for i in range(len(segs)) for j in range(i + 1, len(segs))
                   if (segs[i][0] - segs[j][0]) * (segs[i][1] - segs[j][1]) < 0)

    def _length(self, l: int, pos: dict[str, float]) -> float:
        return sum(abs(pos[a] - pos[b]) for a, b, _, _ in self.by_upper.get(l, ()))

    def total(self) -> tuple[int, float]:
        """What the ordering minimises: crossings first, then the edges' length across the layers."""
        pos = self._positions()
        layers = range(len(self.rows) - 1)
        return sum(self.crossings(l, pos) for l in layers), sum(self._length(l, pos) for l in layers)

    def _sweep(self, downward: bool) -> None:
        order = range(1, len(self.rows)) if downward else range(len(self.rows) - 2, -1, -1)
        for l in order:
            pos = self._positions()
            bary = {}
            for n in self.rows[l]:
                if downward:
                    nb = [pos[a] - (p + 1) / (ps + 1) * 0.5 for a, p, ps in self.up[n]]
                else:
                    nb = [pos[b] + (p + 1) / (ps + 1) * 0.5 for b, p, ps in self.down[n]]
                bary[n] = sum(nb) / len(nb) if nb else pos[n]
            self.rows[l].sort(key=lambda n: bary[n])

    def _swaps(self) -> None:
        """Swap neighbours in a layer while that lowers (crossings, edge length) with both adjacent layers."""
        for _ in range(4):
            better = False
            for l, row in enumerate(self.rows):
                for i in range(len(row) - 1):
                    before = self._local(l)
                    row[i], row[i + 1] = row[i + 1], row[i]
                    if self._local(l) < before:
                        better = True
                    else:
                        row[i], row[i + 1] = row[i + 1], row[i]
            if not better:
                return

    def _positions(self, rows: range | None = None) -> dict[str, float]:
        """Index in the layer, centred, so that layers of different sizes line up in the middle."""
        return {n: i - (len(self.rows[l]) - 1) / 2 for l in (rows or range(len(self.rows)))
                for i, n in enumerate(self.rows[l])}

    def _local(self, l: int) -> tuple[int, float]:
        pos = self._positions(range(max(0, l - 1), min(len(self.rows), l + 2)))
        above = (self.crossings(l - 1, pos), self._length(l - 1, pos)) if l > 0 else (0, 0.0)
        return above[0] + self.crossings(l, pos), above[1] + self._length(l, pos)

    def order(self, sweeps: int = 12) -> None:
        self._swaps()
        best, best_rows = self.total(), [list(r) for r in self.rows]
        for k in range(sweeps):
            self._sweep(downward=k % 2 == 0)
            self._swaps()
            c = self.total()
            if c < best:
                best, best_rows = c, [list(r) for r in self.rows]
        self.rows = best_rows

    # --- coordinates ----------------------------------------------------------------------------

    def _sep(self, a: str, b: str) -> float:
        gap = GAP_X if a in self.real and b in self.real else GAP_DUMMY
        return (self.size[a][0] + self.size[b][0]) / 2 + gap

    def _place_row(self, row: list[str], want: dict[str, float], x: dict[str, float]) -> None:
        offs = [0.0]
        for a, b in pairwise(row):
            offs.append(offs[-1] + self._sep(a, b))
        weight = [1.0 if n in self.real else 0.6 for n in row]
        fitted = _pav([want[n] - o for n, o in zip(row, offs)], weight)
        for n, f, o in zip(row, fitted, offs):
            x[n] = f + o

    def _want(self, n: str, x: dict[str, float], up: bool, down: bool) -> float | None:
        w = self.size[n][0]
        nb = []
        if up:
            nb += [x[a] - (((p + 1) / (ps + 1) * w - w / 2) if n in self.real else 0.0) for a, p, ps in self.up[n]]
        if down:
            nb += [x[b] + (((p + 1) / (ps + 1) * self.size[b][0] - self.size[b][0] / 2) if b in self.real else 0.0)
                   for b, p, ps in self.down[n]]
        return sum(nb) / len(nb) if nb else None

    def coordinates(self, rounds: int = 10) -> dict[str, float]:
        x: dict[str, float] = {}
        for row in self.rows:
            self._place_row(row, {n: 0.0 for n in row}, x)
        for k in range(rounds):
            last = k == rounds - 1
            for down in (True, False):
                seq = range(1, len(self.rows)) if down else range(len(self.rows) - 2, -1, -1)
                for l in seq:
                    row = self.rows[l]
                    want = {}
                    for n in row:
                        w = self._want(n, x, up=down or last or n not in self.real,
                                       down=not down or last or n not in self.real)
                        want[n] = x[n] if w is None else w
                    self._place_row(row, want, x)
        return x


def place(nodes: list[str], edges: list[Edge], size: dict[str, tuple[float, float]]) -> Placed:
    """Lay out a DAG top to bottom: ``nodes`` in topological order, ``size`` (width, height) of each box."""
    g = _Graph(nodes, edges, size)
    g.order()
    cx = g.coordinates()
    heights = [max((g.size[n][1] for n in row), default=0.0) for row in g.rows]
    tops, y = [], MARGIN
    for h in heights:
        tops.append(y)
        y += h + GAP_Y
    left = min((cx[n] - g.size[n][0] / 2 for n in cx), default=0.0) - MARGIN
    right = max((cx[n] + g.size[n][0] / 2 for n in cx), default=0.0) + MARGIN
    boxes = {}
    for n in nodes:
        w, h = g.size[n]
        l = g.layer[n]
        boxes[n] = (cx[n] - w / 2 - left, tops[l] + (heights[l] - h) / 2)
    routes = []
    for e, chain in zip(edges, g.chains):
        (sx, sy), (sw, sh) = boxes[e.src], g.size[e.src]
        (tx, ty), (tw, _) = boxes[e.dst], g.size[e.dst]
        pts = [(sx + sw / 2, sy + sh)]
        pts += [(cx[d] - left, tops[g.layer[d]] + heights[g.layer[d]] / 2) for d in chain[1:-1]]
        pts.append((tx + tw / 2 + _port_offset(e, tw), ty))
        routes.append(pts)
    return Placed(boxes, routes, right - left, y - GAP_Y + MARGIN, {n: g.layer[n] for n in nodes})


def path_d(points: list[tuple[float, float]]) -> str:
    """An SVG path through the points with vertical tangents at each: smooth, and straight when aligned."""
    (x0, y0), rest = points[0], points[1:]
    d = [f"M{x0:.1f},{y0:.1f}"]
    for x1, y1 in rest:
        k = (y1 - y0) / 2
        d.append(f"C{x0:.1f},{y0 + k:.1f} {x1:.1f},{y1 - k:.1f} {x1:.1f},{y1:.1f}")
        x0, y0 = x1, y1
    return " ".join(d)
