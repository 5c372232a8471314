"""Hostile geometry for layer ops: the shapes and attributes of a convolution, a pooling, a
normalization, a statistic, a shaping op, dropout, an indexing or a cumulative op, attention, a
recurrent cell over T steps, drawn where their backward passes go wrong.

The bugs live in geometry that harmless tests never use: windows that overlap (stride < kernel: a
window's gradient written with ``=`` loses the others'), sizes that the stride does not divide
(``(in + 2p − d(k − 1) − 1) % stride ≠ 0``: the last rows and columns get no gradient, or the wrong
one), stride ≠ dilation (the two swapped), groups > 1 (the weight gradient of one group only),
padding with ``ceil_mode`` (a last window hanging over the edge: another divisor than the
forward's), and ties (a max pool over small integers: every window has one); for a normalization,
inputs of three and four dims whose sizes differ (a backward that assumes (N, D) input), groups of
two elements, and groups whose values are all equal (variance 0: only eps is left under the root);
for indexing, an index that repeats by construction (numpy's ``dW[idx] += d`` counts a repeat
once); for a product, zeros — one or several in a lane (a backward that divides by the input); for a
transposed convolution, ``output_padding`` up to torch's limit with padding (the extra rows get
input); for var and std, constant slices (std's root at 0) and for the norm slices of zeros; for cat,
three inputs whose sizes differ; for pad, widths as wide as torch takes, different per side (an edge
copied many times); for dropout, masks with kept and dropped elements and p ≠ 0.5. Each draw is a small
local choice that shrinks towards the plain case — one sample, one channel, kernel 1, stride 1, no
padding — and every combination drawn is valid for torch (an output of at least one element,
padding at most half the kernel for pooling, no window wholly in the padding).

A geometry is ``(input shapes, attributes, ties)``: ``ties`` asks for the first input's values
from a handful of small integers, so that maxima tie (and a normalization's group is constant).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

Shape = tuple[int, ...]
Geometry = tuple[list[Shape], dict[str, Any], bool]
Off = frozenset[str]

NONE: Off = frozenset()


def _axes(value: Any) -> list[Any]:
    """An attribute torch takes as an int or a pair, as a list of its values per axis."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _differs(attrs: dict[str, Any], *names: str) -> bool:
    return any(len(set(_axes(attrs[n]))) > 1 for n in names if n in attrs)


def _set(attrs: dict[str, Any], name: str, plain: Any) -> bool:
    return name in attrs and any(v != plain for v in _axes(attrs[name]))


def _left_over(attrs: dict[str, Any], shapes: list[Shape]) -> bool:
    """Whether the stride leaves a remainder on some axis: (size + 2p − d(k − 1) − 1) % stride ≠ 0,
    the kernel from ``kernel_size`` (a pooling) or the weight's shape (a convolution)."""
    x, n = shapes[0], len(shapes[0]) - 2
    kernel = _axes(attrs["kernel_size"]) if "kernel_size" in attrs else list(shapes[1][2:])

    def per_axis(name: str, default: Any) -> list[int]:
        v = _axes(attrs.get(name) or default)
        return v * n if len(v) == 1 else v
    k, s, p, d = per_axis("kernel_size", kernel), per_axis("stride", kernel), per_axis("padding", 0), \
        per_axis("dilation", 1)
    return any((x[2 + a] + 2 * p[a] - d[a] * (k[a] - 1) - 1) % s[a] for a in range(n))


#: per layer op, the hostile knobs an implementation may declare it does not take
#: (``Capabilities.without``: a course assignment's convolution has one stride and one padding for
#: both axes, no dilation, no groups; its max pool may assume the stride divides the input): what
#: each means, and whether a case (its attributes, its input shapes) uses it. Its geometry then draws
#: none of those cases (the knob held at torch's default; for ``per_axis`` the first axis's stride,
#: padding and dilation repeated on the second — the kernel may still differ; for ``remainder`` an
#: input size the windows fit exactly), and its fixed cases that use one are left out. Every other
#: knob is drawn as before.
Uses = Callable[[dict[str, Any], list[Shape]], bool]
KNOBS: dict[str, dict[str, tuple[str, Uses]]] = {}
_GROUPS: tuple[str, Uses] = ("groups > 1", lambda a, _: a.get("groups", 1) != 1)
_DILATION: tuple[str, Uses] = ("dilation > 1", lambda a, _: _set(a, "dilation", 1))
_PER_AXIS: tuple[str, Uses] = ("a stride, padding or dilation that differs between the two axes",
                               lambda a, _: _differs(a, "stride", "padding", "dilation", "output_padding"))
_PADDING: tuple[str, Uses] = ("padding > 0", lambda a, _: _set(a, "padding", 0))
_CEIL_MODE: tuple[str, Uses] = ("ceil_mode=True", lambda a, _: bool(a.get("ceil_mode")))
_REMAINDER: tuple[str, Uses] = ("an input size the stride does not divide", _left_over)
KNOBS["conv2d"] = {"groups": _GROUPS, "dilation": _DILATION, "per_axis": _PER_AXIS, "remainder": _REMAINDER}
KNOBS["conv1d"] = {"groups": _GROUPS, "dilation": _DILATION, "remainder": _REMAINDER}
KNOBS["conv_transpose2d"] = {"groups": _GROUPS, "dilation": _DILATION,
                             "per_axis": ("a stride, padding, dilation or output_padding that differs between the "
                                          "two axes", _PER_AXIS[1]),
                             "output_padding": ("output_padding > 0", lambda a, _: _set(a, "output_padding", 0))}
KNOBS["max_pool2d"] = {"padding": _PADDING, "dilation": _DILATION, "ceil_mode": _CEIL_MODE, "per_axis": _PER_AXIS,
                       "remainder": _REMAINDER}
KNOBS["avg_pool2d"] = {"padding": _PADDING, "ceil_mode": _CEIL_MODE, "per_axis": _PER_AXIS, "remainder": _REMAINDER}


def uses(op: str, attrs: dict[str, Any], shapes: list[Shape]) -> Off:
    """The knobs of ``op`` (:data:`KNOBS`) that a case with these attributes and input shapes uses."""
    return frozenset(k for k, (_, used) in KNOBS.get(op, {}).items() if used(attrs, shapes))


def _pair(draw: st.DrawFn, values: st.SearchStrategy[int], same: bool) -> tuple[int, int]:
    """A value per axis; the first one twice when ``same`` (``per_axis`` off)."""
    first = draw(values)
    return (first, first) if same else (first, draw(values))


def _size(draw: st.DrawFn, span: int, padding: int) -> int:
    """An input size the window of ``span`` fits (with ``padding``), up to 3 more: the stride then
    rarely divides what is left."""
    return max(1, span - 2 * padding) + draw(st.integers(0, 3))


def _divided(draw: st.DrawFn, span: int, padding: int, stride: int) -> int:
    """An input size the windows of ``span`` fit exactly at ``stride`` (``remainder`` off): one to
    three windows."""
    size = span - 2 * padding + stride * draw(st.integers(0, 2))
    while size < 1:
        size += stride
    return size


def _fits_everywhere(size: int, kernel: int, stride: int, padding: int, dilation: int, out: int) -> bool:
    """Every window holds at least one input element (torch's max pool returns -inf otherwise)."""
    return all(any(0 <= i * stride - padding + u * dilation < size for u in range(kernel)) for i in range(out))


@st.composite
def conv2d_geometry(draw: st.DrawFn, off: Off = NONE) -> Geometry:
    groups = 1 if "groups" in off else draw(st.integers(1, 3))
    per_in, per_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    n = draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    same = "per_axis" in off
    stride = _pair(draw, st.integers(1, 3), same)
    dilation = (1, 1) if "dilation" in off else _pair(draw, st.integers(1, 2), same)
    padding = _pair(draw, st.integers(0, 2), same)
    hw = tuple(_divided(draw, dilation[a] * (kernel[a] - 1) + 1, padding[a], stride[a]) if "remainder" in off
               else _size(draw, dilation[a] * (kernel[a] - 1) + 1, padding[a]) for a in (0, 1))
    c, o = groups * per_in, groups * per_out
    shapes = [(n, c, *hw), (o, per_in, *kernel), (o,)]
    attrs = {"stride": list(stride), "padding": list(padding), "dilation": list(dilation), "groups": groups}
    return shapes, attrs, False


@st.composite
def conv1d_geometry(draw: st.DrawFn, off: Off = NONE) -> Geometry:
    groups = 1 if "groups" in off else draw(st.integers(1, 3))
    per_in, per_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    n = draw(st.integers(1, 2))
    kernel, stride = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    dilation = 1 if "dilation" in off else draw(st.integers(1, 3))
    padding = draw(st.integers(0, 2))
    length = _divided(draw, dilation * (kernel - 1) + 1, padding, stride) if "remainder" in off \
        else _size(draw, dilation * (kernel - 1) + 1, padding) + draw(st.integers(0, 3))
    shapes = [(n, groups * per_in, length), (groups * per_out, per_in, kernel), (groups * per_out,)]
    return shapes, {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}, False


def _transposed_axis(draw: st.DrawFn, off: Off = NONE,
                     like: tuple[int, ...] | None = None) -> tuple[int, int, int, int, int, int]:
    """(kernel, stride, padding, output_padding, dilation, size) along one axis of a transposed
    convolution: ``output_padding`` up to torch's limit (below the stride or the dilation — positive
    in about half the draws, where a backward that drops the extra rows goes wrong once ``padding`` ≥ 1
    puts something there), stride and dilation drawn apart, the input size raised until the output
    has a row. ``like``: the first axis, whose stride, padding, output_padding and dilation this one
    repeats (``per_axis`` off)."""
    kernel = draw(st.integers(1, 3))
    if like is not None:
        _, stride, padding, output_padding, dilation, _ = like
    else:
        stride = draw(st.integers(1, 3))
        dilation = 1 if "dilation" in off else draw(st.integers(1, 3))
        output_padding = 0 if "output_padding" in off else draw(st.integers(0, max(stride, dilation) - 1))
        padding = draw(st.integers(0, 2))
    size = draw(st.integers(1, 3))
    while (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1 < 1:
        size += 1
    return kernel, stride, padding, output_padding, dilation, size


@st.composite
def conv_transpose2d_geometry(draw: st.DrawFn, off: Off = NONE) -> Geometry:
    """x (N, C, H, W), weight (C, O/groups, kH, kW), bias (O,): groups, stride ≠ dilation, output_padding."""
    groups = 1 if "groups" in off else draw(st.integers(1, 3))
    per_in, per_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    n = draw(st.integers(1, 2))
    rows = _transposed_axis(draw, off)
    cols = _transposed_axis(draw, off, rows if "per_axis" in off else None)
    c = groups * per_in
    shapes = [(n, c, rows[5], cols[5]), (c, per_out, rows[0], cols[0]), (groups * per_out,)]
    attrs = {"stride": [rows[1], cols[1]], "padding": [rows[2], cols[2]], "output_padding": [rows[3], cols[3]],
             "groups": groups, "dilation": [rows[4], cols[4]]}
    return shapes, attrs, False


def _pool_axis(draw: st.DrawFn, dilated: bool, ceil_mode: bool, off: Off = NONE,
               like: tuple[int, ...] | None = None) -> tuple[int, int, int, int, int]:
    """(kernel, stride, padding, dilation, size) along one axis, every window holding an input element.
    A max pool (``dilated``) strides at most its kernel: its backward bugs live where windows meet or
    overlap; an average pool's stride may pass its kernel too (windows with gaps). ``like``: the
    first axis, whose stride, padding and dilation this one repeats (``per_axis`` off), its kernel
    drawn large enough for them."""
    while True:  # at most a few rounds: most draws fit
        if like is not None:
            _, stride, padding, dilation, _ = like
            kernel = draw(st.integers(max(1, 2 * padding, stride if dilated else 1), 3))
        else:
            kernel = draw(st.integers(1, 3))
            stride = draw(st.integers(1, kernel if dilated else 3))
            padding = 0 if "padding" in off else draw(st.integers(0, kernel // 2))
            dilation = draw(st.integers(1, 2)) if dilated and "dilation" not in off else 1
        span = dilation * (kernel - 1) + 1
        size = _divided(draw, span, padding, stride) if "remainder" in off else _size(draw, span, padding)
        num = size + 2 * padding - dilation * (kernel - 1) - 1
        out = (-(-num // stride) if ceil_mode else num // stride) + 1
        if ceil_mode and (out - 1) * stride >= size + padding:
            out -= 1
        if out >= 1 and _fits_everywhere(size, kernel, stride, padding, dilation, out):
            return kernel, stride, padding, dilation, size


def _pool(draw: st.DrawFn, dilated: bool, off: Off) -> tuple[Shape, dict[str, Any]]:
    """A pooling's input shape and its common attributes (``dilation`` for a max pool)."""
    ceil_mode = False if "ceil_mode" in off else draw(st.booleans())
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    rows = _pool_axis(draw, dilated, ceil_mode, off)
    cols = _pool_axis(draw, dilated, ceil_mode, off, rows if "per_axis" in off else None)
    attrs: dict[str, Any] = {"kernel_size": [rows[0], cols[0]], "stride": [rows[1], cols[1]],
                             "padding": [rows[2], cols[2]]}
    if dilated:
        attrs["dilation"] = [rows[3], cols[3]]
    return (n, c, rows[4], cols[4]), {**attrs, "ceil_mode": ceil_mode}


@st.composite
def max_pool2d_geometry(draw: st.DrawFn, off: Off = NONE) -> Geometry:
    shape, attrs = _pool(draw, True, off)
    return [shape], attrs, draw(st.integers(0, 3)) > 0  # ties three times in four


@st.composite
def avg_pool2d_geometry(draw: st.DrawFn, off: Off = NONE) -> Geometry:
    shape, attrs = _pool(draw, False, off)
    return [shape], {**attrs, "count_include_pad": draw(st.booleans())}, False


#: the eps a normalization is drawn with: torch's default, and larger ones that weigh in a constant group's gradient
EPS = (1e-5, 1e-3, 0.1)


def _channels_first(draw: st.DrawFn, channels: int) -> Shape:
    """(N, C, *) with 0 to 2 trailing dims of size 1–3 (most often one: (N, C, L) is where a backward
    written for (N, C) goes wrong)."""
    n = draw(st.integers(1, 3))
    return (n, channels, *(draw(st.integers(1, 3)) for _ in range(draw(st.sampled_from((1, 2, 0))))))


@st.composite
def batch_norm_geometry(draw: st.DrawFn) -> Geometry:
    """(N, C, *) with more than one value per channel (torch's rule in training), weight and bias (C,);
    ties (small integers) make a channel whose values are all equal: variance 0, only eps left."""
    c = draw(st.integers(1, 3))
    shape = _channels_first(draw, c)
    if shape[0] * math.prod(shape[2:]) < 2:
        shape = (2, *shape[1:])
    return [shape, (c,), (c,)], {"eps": draw(st.sampled_from(EPS))}, draw(st.booleans())


@st.composite
def layer_norm_geometry(draw: st.DrawFn) -> Geometry:
    """A 2-D to 4-D input normalized over its last one or two dims, sizes that differ (a backward
    that assumes (N, D) input, or takes the wrong dim's size, shows on [B, T, H] with T ≠ H)."""
    sizes = [draw(st.integers(1, 3)) for _ in range(draw(st.sampled_from((3, 2, 4))) - 1)]
    shape = (*sizes, sizes[-1] + draw(st.integers(1, 2)))  # the last two sizes differ: [B, T, H], T ≠ H
    normalized = list(shape[-draw(st.integers(1, 2)):])
    return [shape, tuple(normalized), tuple(normalized)], \
        {"normalized_shape": normalized, "eps": draw(st.sampled_from(EPS))}, draw(st.integers(0, 3)) == 0


@st.composite
def group_norm_geometry(draw: st.DrawFn) -> Geometry:
    """(N, C, *) with C in ``num_groups`` runs of one to three channels, at least two values per
    group (torch's rule), weight and bias (C,)."""
    groups = draw(st.integers(1, 3))
    c = groups * draw(st.integers(1, 3))
    shape = _channels_first(draw, c)
    if c // groups * math.prod(shape[2:]) < 2:  # torch: more than one value per group
        shape = (*shape, 2)
    return [shape, (c,), (c,)], {"num_groups": groups, "eps": draw(st.sampled_from(EPS))}, draw(st.integers(0, 3)) == 0


def _reduced(draw: st.DrawFn) -> tuple[Shape, dict[str, Any]]:
    """A 3-D input (2-D one time in three), reduced over one dim (negative half the time) or several,
    at least two elements per slice, and ``keepdim``."""
    shape = [draw(st.integers(1, 3)) for _ in range(draw(st.sampled_from((3, 3, 2))))]
    if draw(st.booleans()):
        dim: Any = _dim(draw, tuple(shape))
        dims = [dim % len(shape)]
    else:
        dims = sorted(draw(st.lists(st.integers(0, len(shape) - 1), min_size=2, max_size=len(shape), unique=True)))
        dim = dims
    if math.prod(shape[d] for d in dims) < 2:  # a slice of one element: no spread (torch: NaN with correction 1)
        shape[dims[0]] = 2
    return tuple(shape), {"dim": dim, "keepdim": draw(st.booleans())}


@st.composite
def spread_geometry(draw: st.DrawFn) -> Geometry:
    """var and std: a :func:`_reduced` input, ``correction`` 1 (torch's default) or 0, and small
    integers half the time — slices whose values are all equal (variance 0: std's root at 0)."""
    shape, attrs = _reduced(draw)
    return [shape], {**attrs, "correction": draw(st.sampled_from((1, 0)))}, draw(st.booleans())


@st.composite
def norm_geometry(draw: st.DrawFn) -> Geometry:
    """The 2-norm: a :func:`_reduced` input, small integers half the time — now and then a slice of zeros."""
    shape, attrs = _reduced(draw)
    return [shape], attrs, draw(st.booleans())


def _tensor_shape(draw: st.DrawFn) -> Shape:
    """One to three dims of sizes 1–4 (most often two: a dim to select along and one beside it)."""
    return tuple(draw(st.integers(1, 4)) for _ in range(draw(st.sampled_from((2, 1, 3)))))


def _dim(draw: st.DrawFn, shape: Shape) -> int:
    """A dim of ``shape``, negative half the time, as people write it."""
    d = draw(st.integers(0, len(shape) - 1))
    return d - len(shape) if draw(st.booleans()) else d


def _repeated(draw: st.DrawFn, size: int, count: int) -> list[int]:
    """``count`` ≥ 2 indices below ``size``, the second a repeat of the first: a duplicate by construction."""
    rest = [draw(st.integers(0, size - 1)) for _ in range(count - 1)]
    return [rest[0], *rest]


def _index_shape(draw: st.DrawFn, shape: Shape, d: int) -> Shape:
    """An index (or src) shape for gather and scatter_add: no larger than ``shape`` beside dim ``d``,
    two to four along it."""
    return tuple(draw(st.integers(2, 4)) if k == d else draw(st.integers(1, n)) for k, n in enumerate(shape))


def _lanes(draw: st.DrawFn, ishape: Shape, d: int, size: int) -> list[Any]:
    """Nested indices of ``ishape``, each below ``size``; every lane along ``d`` repeats its first."""
    lane = ishape[d]
    others = [range(n) for k, n in enumerate(ishape) if k != d]
    flat: dict[tuple[int, ...], int] = {}
    for rest in itertools.product(*others):
        for j, v in enumerate(_repeated(draw, size, lane)):
            pos = list(rest)
            pos.insert(d, j)
            flat[tuple(pos)] = v
    return _nest([flat[p] for p in itertools.product(*(range(n) for n in ishape))], ishape)


def _nest(flat: list[Any], shape: Shape) -> Any:
    if not shape:
        return flat[0]
    step = len(flat) // shape[0]
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


@st.composite
def index_select_geometry(draw: st.DrawFn) -> Geometry:
    shape = _tensor_shape(draw)
    d = _dim(draw, shape)
    return [shape], {"dim": d, "index": _repeated(draw, shape[d], draw(st.integers(2, 5)))}, False


@st.composite
def gather_geometry(draw: st.DrawFn) -> Geometry:
    shape = _tensor_shape(draw)
    d = _dim(draw, shape) % len(shape)
    ishape = _index_shape(draw, shape, d)
    return [shape], {"dim": d, "index": _lanes(draw, ishape, d, shape[d])}, False


@st.composite
def embedding_geometry(draw: st.DrawFn) -> Geometry:
    """A weight (V, D) and indices of shape (L,) or (B, L), each row repeating an index."""
    v, dims = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    rows = draw(st.integers(1, 2))
    length = draw(st.integers(2, 4))
    index = [_repeated(draw, v, length) for _ in range(rows)]
    return [(v, dims)], {"input": index if rows > 1 else index[0]}, False


@st.composite
def scatter_add_geometry(draw: st.DrawFn) -> Geometry:
    """x, and src with the index of its shape: every lane along dim sends two elements to one place."""
    shape = _tensor_shape(draw)
    d = _dim(draw, shape) % len(shape)
    ishape = _index_shape(draw, shape, d)
    return [shape, ishape], {"dim": d, "index": _lanes(draw, ishape, d, shape[d])}, False


def _bools(draw: st.DrawFn, shape: Shape) -> Any:
    return _nest([draw(st.booleans()) for _ in range(math.prod(shape))], shape)


@st.composite
def where_geometry(draw: st.DrawFn) -> Geometry:
    shape = _tensor_shape(draw)
    return [shape, shape], {"condition": _bools(draw, shape)}, False


@st.composite
def masked_fill_geometry(draw: st.DrawFn) -> Geometry:
    """A mask and a fill value: 0, a value, or the large negative people write for −∞ before a softmax."""
    shape = _tensor_shape(draw)
    return [shape], {"mask": _bools(draw, shape), "value": draw(st.sampled_from((0.0, 2.5, -1e9)))}, False


@st.composite
def running_geometry(draw: st.DrawFn) -> Geometry:
    """cumsum, cumprod: a dim, and small integers three times in four — zeros in a lane, often two."""
    shape = _tensor_shape(draw)
    return [shape], {"dim": _dim(draw, shape)}, draw(st.integers(0, 3)) > 0


@st.composite
def prod_geometry(draw: st.DrawFn) -> Geometry:
    shape = _tensor_shape(draw)
    return [shape], {"dim": _dim(draw, shape), "keepdim": draw(st.booleans())}, draw(st.integers(0, 3)) > 0


@st.composite
def cat_geometry(draw: st.DrawFn) -> Geometry:
    """Three inputs (two one time in four), equal but along ``dim``, where the first two differ — one of
    the sizes often 1 — so that a backward splitting at the first input's size for every input goes
    wrong at the third."""
    shape = _tensor_shape(draw)
    d = _dim(draw, shape)
    first = draw(st.integers(1, 3))
    second = first + draw(st.integers(1, 2))
    if draw(st.booleans()):
        first, second = second, first
    sizes = [first, second] + ([draw(st.integers(1, 3))] if draw(st.integers(0, 3)) else [])
    axis = d % len(shape)
    return [(*shape[:axis], n, *shape[axis + 1:]) for n in sizes], {"dim": d}, False


@st.composite
def stack_geometry(draw: st.DrawFn) -> Geometry:
    """Two or three inputs of one shape, stacked along any of the new tensor's dims (negative too)."""
    shape = _tensor_shape(draw)
    count = draw(st.integers(2, 3))
    return [shape] * count, {"dim": draw(st.integers(-len(shape) - 1, len(shape)))}, False


@st.composite
def slice_geometry(draw: st.DrawFn) -> Geometry:
    """``x[..., start:stop:step, ...]``: a step of 1 to 3, a start and a stop that may be left out,
    negative, or past the end (Python clamps them) — never an empty result."""
    shape = tuple(draw(st.integers(1, 5)) for _ in range(draw(st.sampled_from((2, 1, 3)))))
    d = _dim(draw, shape)
    n = shape[d]
    start = draw(st.one_of(st.none(), st.integers(-n, n - 1)))
    stop = draw(st.one_of(st.none(), st.integers(-n, n + 2)))
    step = draw(st.integers(1, 3))
    if not range(*slice(start, stop, step).indices(n)):
        start, stop = None, None
    return [shape], {"dim": d, "start": start, "stop": stop, "step": step}, False


#: the widest pad the suite draws per mode on a dim of size n: torch's limit (reflect n − 1, circular n),
#: and n + 1 where torch has none (a replicated edge element copied more times than the input is long)
_PAD_WIDEST = {"replicate": lambda n: n + 1, "reflect": lambda n: n - 1, "circular": lambda n: n,
               "constant": lambda n: n + 1}


@st.composite
def pad_geometry(draw: st.DrawFn) -> Geometry:
    """``F.pad`` of a 3-D input on its last dim or two, or of a 4-D one on its last two (torch's rule
    for the modes other than constant), each side its own width — the widest torch takes half the time,
    the two sides of a dim different — in replicate, reflect, circular or constant mode (with a value).
    The padded dims hold two to four elements, so that reflect pads at all."""
    mode = draw(st.sampled_from(tuple(_PAD_WIDEST)))
    ndim = draw(st.sampled_from((4, 3)))
    padded = 2 if ndim == 4 else draw(st.integers(1, 2))
    shape = tuple(draw(st.integers(1, 2)) for _ in range(ndim - padded)) + \
        tuple(draw(st.integers(2, 4)) for _ in range(padded))
    pad: list[int] = []
    for n in reversed(shape[-padded:]):  # torch lists the last dim first
        widest = _PAD_WIDEST[mode](n)
        before = widest if draw(st.booleans()) else draw(st.integers(0, widest))
        after = draw(st.integers(0, widest))
        pad += [before, after if after != before else (before + 1) % (widest + 1)]
    attrs: dict[str, Any] = {"pad": pad, "mode": mode}
    if mode == "constant":
        attrs["value"] = draw(st.sampled_from((1.5, 0.0, -2.0)))
    return [shape], attrs, False


@st.composite
def dropout_geometry(draw: st.DrawFn) -> Geometry:
    """A mask with kept and dropped elements (one of each, by construction) and p from 0.1, 0.25,
    0.5 (where 1/p = 1/(1 − p)) and 0.8."""
    shape = _tensor_shape(draw)
    if math.prod(shape) < 2:
        shape = (*shape[:-1], 2)
    flat = [draw(st.booleans()) for _ in range(math.prod(shape))]
    kept = draw(st.integers(0, len(flat) - 1))
    flat[kept], flat[(kept + 1) % len(flat)] = True, False
    return [shape], {"mask": _nest(flat, shape), "p": draw(st.sampled_from((0.1, 0.25, 0.5, 0.8)))}, False


@st.composite
def attention_geometry(draw: st.DrawFn) -> Geometry:
    """q (…, L, E), k (…, S, E), v (…, S, Ev) with batch dims (B,) or (B, H): the query and key lengths
    differ three times in four, E and Ev too (a transposed product or a length taken for the other
    shows there); a causal mask half the time; the default scale, a smaller one, or one that makes
    the softmax peaked."""
    batch = tuple(draw(st.integers(1, 2)) for _ in range(draw(st.integers(1, 2))))
    length, width = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    keys = length + draw(st.integers(1, 2)) if draw(st.integers(0, 3)) else length
    vwidth = width + draw(st.integers(1, 2)) if draw(st.integers(0, 3)) else width
    if draw(st.booleans()):
        length, keys = keys, length  # more queries than keys as often as fewer
    attrs = {"is_causal": draw(st.booleans()), "scale": draw(st.sampled_from((None, 0.5, 8.0)))}
    return [(*batch, length, width), (*batch, keys, width), (*batch, keys, vwidth)], attrs, False


def _recurrent(draw: st.DrawFn, gates: int, cell_state: bool) -> Geometry:
    """x (T, B, I), h0 (and c0) (B, H), w_ih (G·H, I), w_hh (G·H, H), b_ih, b_hh (G·H,): T > 1 three
    times in four (a gradient not carried across steps shows only there), H = 1 now and then."""
    steps = draw(st.integers(2, 4)) if draw(st.integers(0, 3)) else 1
    batch, inputs, hidden = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    state = [(batch, hidden)] * (2 if cell_state else 1)
    g = gates * hidden
    return [(steps, batch, inputs), *state, (g, inputs), (g, hidden), (g,), (g,)], {}, False


@st.composite
def lstm_geometry(draw: st.DrawFn) -> Geometry:
    return _recurrent(draw, 4, True)


@st.composite
def gru_geometry(draw: st.DrawFn) -> Geometry:
    return _recurrent(draw, 3, False)


#: x (2, 3, 2) whose slice x[:, 1, :] is constant and whose other slices have a mean far from 0
_SPREAD = [0.5, 1.75, 1.25, 1.25, 2.0, -0.5, 1.5, 0.25, 1.25, 1.25, 0.75, 2.5]

#: per layer op, geometries judged first at every seed (``Suite.fixed``): the hostile corner each
#: bug needs, so that a bug no random draw happened to reach is still caught — a max shared by
#: overlapping windows and a tie inside one; a last window over the padded edge under ceil_mode;
#: groups, stride ≠ dilation and a remainder the stride leaves — and for the ops with knobs, a corner
#: that uses none of them, for an implementation that declares it lacks some. Values (``None``: drawn
#: from a fixed seed) in row-major order.
FIXED: dict[str, list[tuple[list[Shape], dict[str, Any], list[float] | None]]] = {
    "max_pool2d": [([(1, 1, 3, 4)], {"kernel_size": [2, 2], "stride": [1, 1], "padding": [0, 0],
                                     "dilation": [1, 1], "ceil_mode": False},
                    [1.0, 2.0, 2.0, 0.0, 0.0, 2.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0]),
                   # ceil_mode where torch drops the last window: it would start in the right padding
                   # (5 + 2·1 − 2) / 2 rounds up to 3, +1 = 4 windows, but the 4th starts at 6 ≥ 5 + 1
                   ([(1, 1, 5, 5)], {"kernel_size": [2, 2], "stride": [2, 2], "padding": [1, 1],
                                     "dilation": [1, 1], "ceil_mode": True}, None),
                   # no knob but a remainder (KNOBS): windows that overlap on one axis, ties, and a
                   # remainder the stride leaves on both
                   ([(1, 2, 6, 7)], {"kernel_size": [3, 2], "stride": [2, 2], "padding": [0, 0],
                                     "dilation": [1, 1], "ceil_mode": False},
                    [float((7 * i + 3) % 11 % 4) for i in range(84)]),
                   # no knob, not even a remainder: overlapping windows the stride fits exactly, ties
                   ([(1, 2, 5, 5)], {"kernel_size": [3, 3], "stride": [2, 2], "padding": [0, 0],
                                     "dilation": [1, 1], "ceil_mode": False},
                    [float(v % 3) for v in (4, 1, 5, 2, 0, 4, 4, 1, 3, 5) * 5])],
    "avg_pool2d": [([(1, 1, 4, 5)], {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1],
                                     "ceil_mode": True, "count_include_pad": False}, None),
                   ([(1, 1, 4, 5)], {"kernel_size": [3, 2], "stride": [2, 2], "padding": [1, 1],
                                     "ceil_mode": True, "count_include_pad": True}, None),
                   ([(1, 2, 6, 7)], {"kernel_size": [3, 2], "stride": [2, 2], "padding": [0, 0],
                                     "ceil_mode": False, "count_include_pad": True}, None),
                   ([(1, 2, 5, 7)], {"kernel_size": [3, 3], "stride": [2, 2], "padding": [0, 0],
                                     "ceil_mode": False, "count_include_pad": True}, None)],
    "conv2d": [([(1, 4, 5, 6), (4, 2, 2, 3), (4,)], {"stride": [2, 1], "padding": [1, 0], "dilation": [1, 2],
                                                     "groups": 2}, None),
               # no knob: one stride and padding for both axes, a remainder the stride leaves on each
               ([(2, 2, 6, 5), (3, 2, 3, 2), (3,)], {"stride": [2, 2], "padding": [1, 1], "dilation": [1, 1],
                                                     "groups": 1}, None),
               # not even a remainder: overlapping windows the stride fits exactly
               ([(2, 2, 5, 5), (3, 2, 3, 3), (3,)], {"stride": [2, 2], "padding": [1, 1], "dilation": [1, 1],
                                                     "groups": 1}, None)],
    "conv1d": [([(1, 4, 7), (4, 2, 3), (4,)], {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}, None),
               ([(2, 2, 8), (3, 2, 3), (3,)], {"stride": 2, "padding": 1, "dilation": 1, "groups": 1}, None),
               ([(2, 2, 7), (3, 2, 3), (3,)], {"stride": 2, "padding": 1, "dilation": 1, "groups": 1}, None)],
    # output_padding with padding (something lands in the extra rows), stride ≠ dilation on both axes, groups
    "conv_transpose2d": [([(1, 4, 3, 3), (4, 2, 3, 2), (4,)], {"stride": [2, 1], "padding": [1, 1],
                                                                "output_padding": [1, 1], "groups": 2,
                                                                "dilation": [1, 2]}, None),
                         ([(1, 2, 3, 2), (2, 3, 3, 3), (3,)], {"stride": [2, 2], "padding": [1, 1],
                                                               "output_padding": [0, 0], "groups": 1,
                                                               "dilation": [1, 1]}, None)],
    "batch_norm": [([(3, 2, 2), (2,), (2,)], {"eps": 1e-5},  # channel 0 constant: variance 0
                    [0.5, 0.5, 0.25, -1.0, 0.5, 0.5, 0.75, 0.0, 0.5, 0.5, -0.5, 1.0])],
    "layer_norm": [([(2, 3, 4), (4,), (4,)], {"normalized_shape": [4], "eps": 1e-5}, None),
                   ([(2, 2, 3), (2, 3), (2, 3)], {"normalized_shape": [2, 3], "eps": 1e-3}, None)],
    "group_norm": [([(2, 4, 3), (4,), (4,)], {"num_groups": 2, "eps": 1e-5}, None)],
    "index_select": [([(3, 4)], {"dim": 1, "index": [2, 0, 2, 2]}, None)],
    "gather": [([(2, 3)], {"dim": 1, "index": [[1, 1, 0], [2, 0, 2]]}, None)],
    "embedding": [([(4, 3)], {"input": [[1, 3, 1], [0, 1, 1]]}, None)],
    "scatter_add": [([(2, 3), (2, 4)], {"dim": 1, "index": [[0, 0, 2, 0], [1, 2, 1, 1]]}, None)],
    "where": [([(2, 3), (2, 3)], {"condition": [[True, False, True], [False, False, True]]}, None)],
    "masked_fill": [([(2, 3)], {"mask": [[True, False, False], [False, True, True]], "value": -1e9}, None)],
    "cumsum": [([(2, 4)], {"dim": -1}, None)],
    "cumprod": [([(2, 4)], {"dim": 1}, [0.5, 0.0, -1.5, 2.0, 0.0, 1.5, 0.0, -0.5])],  # one zero; two zeros
    "scaled_dot_product_attention": [([(1, 2, 2), (1, 3, 2), (1, 3, 3)], {"is_causal": False, "scale": None}, None),
                                     ([(1, 3, 2), (1, 2, 2), (1, 2, 1)], {"is_causal": True, "scale": None}, None)],
    "lstm": [([(3, 1, 2), (1, 2), (1, 2), (8, 2), (8, 2), (8,), (8,)], {}, None),
             ([(2, 2, 1), (2, 1), (2, 1), (4, 1), (4, 1), (4,), (4,)], {}, None)],  # hidden size 1
    "gru": [([(3, 1, 2), (1, 2), (6, 2), (6, 2), (6,), (6,)], {}, None),
            ([(2, 2, 1), (2, 1), (3, 1), (3, 1), (3,), (3,)], {}, None)],
    "prod": [([(2, 4)], {"dim": 1, "keepdim": False}, [0.5, 0.0, -1.5, 2.0, 0.0, 1.5, 0.0, -0.5]),
             ([(3, 2)], {"dim": 0, "keepdim": True}, [1.5, 0.0, -0.5, 2.0, 2.0, -1.0])],
    # slices of nonzero mean (a one-pass variance with the mean held constant is off there), one constant
    # slice (x[:, 1, :]: variance 0, std's root at 0), both corrections
    "var": [([(2, 3, 2)], {"dim": [0, 2], "keepdim": False, "correction": 1}, _SPREAD),
            ([(3, 4)], {"dim": -1, "keepdim": True, "correction": 0}, None)],
    "std": [([(2, 3, 2)], {"dim": [0, 2], "keepdim": False, "correction": 1}, _SPREAD),
            ([(3, 4)], {"dim": -1, "keepdim": True, "correction": 0}, None)],
    "vector_norm": [([(3, 2)], {"dim": 1, "keepdim": False}, [0.0, 0.0, 0.5, -1.5, 0.0, 0.0]),  # rows of zeros
                    ([(2, 2, 3)], {"dim": [1, 2], "keepdim": True}, [0.0] * 6 + [0.25, -1.0, 2.0, 0.5, 0.0, -0.75])],
    # three inputs, the first two of different sizes along dim (one of them 1)
    "cat": [([(2, 1, 3), (2, 3, 3), (2, 2, 3)], {"dim": 1}, None)],
    "stack": [([(2, 3), (2, 3), (2, 3)], {"dim": -1}, None)],
    "slice": [([(2, 5)], {"dim": -1, "start": -4, "stop": None, "step": 2}, None)],
    # each mode as wide as torch takes, the sides different; an edge element copied several times
    "pad": [([(1, 2, 2, 3)], {"pad": [3, 1, 0, 2], "mode": "replicate"}, None),
            ([(2, 3, 4)], {"pad": [3, 1, 2, 0], "mode": "reflect"}, None),
            ([(2, 2, 3)], {"pad": [3, 1], "mode": "circular"}, None),
            ([(1, 1, 2, 3)], {"pad": [1, 2, 2, 0], "mode": "constant", "value": 1.5}, None)],
    # 1/p ≠ 1/(1 − p), kept and dropped elements
    "dropout": [([(2, 3)], {"mask": [[True, False, True], [False, True, True]], "p": 0.1}, None)],
}
