"""Tensor-level ops a graph case may use, beyond the elementwise op table — each declared once.

A declaration holds the op's torch name (called with the case's attributes as keywords), how
refimpl computes it, which inputs it accepts (a predicate on shapes) and how to draw its
attributes for a given input shape, and — as data — where it is not differentiable: ``ties``
names the rule by which it chooses among tied elements (amax: the maximum of each slice it reduces),
which the verdicts read to find kinks. The runners, the strategies, the verdicts and the repro
scripts all read from here, so adding an op is this one place. Elementwise ops come from
``refimpl.ops.OPS`` (their kinks are ``OpSpec.kinks``).

Where an op is not differentiable because it takes a root of an exact 0 — std of a constant slice,
the norm of a slice of zeros — torch masks the gradient to 0 and the unmasked formula gives NaN:
``singular`` names the rule of :data:`SINGULAR_RULES` that finds those outputs, and the verdicts
accept either answer there.

A *layer* op (convolution, pooling, normalization, statistics, shaping, dropout, indexing, cumulative
ops, attention, recurrent cells: the families of :data:`LAYER_FAMILIES`) takes inputs whose shapes
depend on each other and on its attributes (or values that must be hostile: repeated indices, zeros
in a product, constant slices); it declares a ``geometry``
instead (:mod:`conformance.case.geometry`: the shapes of all its inputs and its attributes, drawn
hostile), is judged in its own suite, and is never drawn into the random tensor graphs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from conformance.case import geometry
from refimpl import attention, conv, indexing, norm, recurrent, shaping, statistics
from refimpl.tensor import Tensor, matmul, norm_dims, reduction_groups

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TensorOp:
    name: str
    arity: int
    torch: str  # a torch callable, or conformance.oracle.composed's loop around torch's pieces
    refimpl: Callable[..., Tensor]
    accepts: Callable[[Shape], bool]  # the first input's shape
    attrs: Callable[[Shape], st.SearchStrategy[dict[str, Any]]]
    note: str = ""
    # Where the op chooses among its input's elements, a rule of TIE_RULES: at a tie of candidates
    # with different gradients torch's even split is a convention (a kink). "" — none: the op is
    # differentiable wherever its inputs are (sums, softmax, matmul, reshapes).
    ties: str = ""
    family: str = "tensor"  # the verdict table's family: "tensor", or a layer family (LAYER_FAMILIES)
    geometry: Callable[..., st.SearchStrategy[geometry.Geometry]] | None = None  # (off knobs) → geometry
    # torch's keyword for each input, "" for a positional one, where torch's order is not the case's
    # (F.layer_norm's normalized_shape comes between the input and the weight; F.embedding takes the
    # indices first); () for all positional
    keywords: tuple[str, ...] = ()
    # keywords torch needs that the case does not carry (batch norm: no running statistics, training)
    torch_fixed: tuple[tuple[str, Any], ...] = ()
    # the attributes torch takes as tensors, with their dtype: ("index", "int64"), ("mask", "bool")
    tensor_attrs: tuple[tuple[str, str], ...] = ()
    # Where the op takes a root of an exact 0, a rule of SINGULAR_RULES: there torch masks the
    # gradient to 0 and NaN (the unmasked formula) is as valid (a kink). "" — none.
    singular: str = ""
    # the attributes that may be ±∞ on purpose — a mask's fill, the −∞ people write before a softmax:
    # the positions they fill are masked, not overflow, so a case holding them stays in the working
    # range (conformance/verdict/robustness.py) and is charged
    fills: tuple[str, ...] = ()
    # the dtypes whose torch CPU kernel is unreliable on some inputs: it crashes the process (a
    # segfault no harness can catch in-process) or returns numbers it never computed (memory it did not
    # write); each found by a calibration, tests/test_torch_unreliable.py holds the inputs. The oracle
    # runs a case with this op in float32 and rounds every result to the case's dtype — torch's CPU
    # half kernels compute in float32 and round too (docs/findings.md)
    torch_unreliable: tuple[str, ...] = ()

    @property
    def layer(self) -> bool:
        """A layer op: drawn by its geometry, in its own suite, never into random tensor graphs."""
        return self.geometry is not None


def _dims(shape: Shape) -> st.SearchStrategy[Any]:
    """One dim (sometimes negative, as people write it) or a tuple of distinct dims, as a list."""
    n = len(shape)
    one = st.integers(-n, n - 1)
    several = st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True).map(sorted)
    return st.one_of(one, several)


def _reduction(shape: Shape) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"dim": _dims(shape), "keepdim": st.booleans()})


def _along(shape: Shape) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"dim": st.integers(-len(shape), len(shape) - 1)})


def _dim_arg(d: Any) -> Any:
    return tuple(d) if isinstance(d, list) else d


def _factorisations(shape: Shape) -> st.SearchStrategy[dict[str, Any]]:
    n = 1
    for s in shape:
        n *= s
    options = [[n]] + [[a, n // a] for a in range(1, n + 1) if n % a == 0] + [[-1]]
    return st.sampled_from(options).map(lambda s: {"shape": s})


def _max_in_reduced_slices(x: Tensor, attrs: dict[str, Any]) -> Iterator[list[Any]]:
    """For each slice a reduction over ``attrs["dim"]`` reduces, the elements equal to its maximum: a
    tie anywhere, not only at the overall maximum, splits that slice's gradient."""
    _, groups = reduction_groups(x.shape, norm_dims(_dim_arg(attrs.get("dim")), len(x.shape)))
    for g in groups:
        top = max(x.elements[i].data for i in g)
        yield [x.elements[i] for i in g if x.elements[i].data == top]


TIE_RULES: dict[str, Callable[..., Iterator[list[Any]]]] = {
    "max-in-reduced-slices": _max_in_reduced_slices,
    # each output of a max pool: the elements of its window equal to the window's maximum
    "max-in-windows": lambda x, attrs: iter(conv.max_pool_ties(x, **attrs)),
}


#: per rule, for each output element of the op applied to the inputs with the attributes: whether it is
#: a root of an exact 0 (its slope 0 or NaN, both valid). Each output element is the node the choice is
#: made at: one op over one parent, the radicand (refimpl.statistics.root).
SINGULAR_RULES: dict[str, Callable[..., list[bool]]] = {
    # std: the slices whose variance is exactly 0 (their values all equal)
    "zero-variance": lambda x, attrs: statistics.at_zero(statistics.var(x, **attrs)),
    # the 2-norm: the slices of zeros
    "zero-slices": lambda x, attrs: statistics.at_zero(statistics.squared_norms(x, **attrs)),
}


def singular_outputs(name: str, inputs: list[Tensor], attrs: dict[str, Any]) -> list[bool]:
    """Per output element of tensor op ``name`` applied to ``inputs`` with ``attrs``: whether its
    ``singular`` rule puts it at a root of an exact 0. Nothing for an op without one."""
    op = TENSOR_OPS.get(name)
    if op is None or not op.singular:
        return []
    return SINGULAR_RULES[op.singular](*inputs, attrs)


def tied_candidates(name: str, inputs: list[Tensor], attrs: dict[str, Any]) -> Iterator[list[Any]]:
    """The groups of input elements (refimpl Values) among which tensor op ``name``, applied to
    ``inputs`` with ``attrs``, splits a gradient by its ``ties`` rule — a group of two or more is a
    tie. Nothing for an op without one."""
    op = TENSOR_OPS.get(name)
    if op is None or not op.ties:
        return iter(())
    return TIE_RULES[op.ties](*inputs, attrs)


TENSOR_OPS: dict[str, TensorOp] = {}


def declare(op: TensorOp) -> None:
    if op.ties and op.ties not in TIE_RULES:
        raise ValueError(f"{op.name}: unknown ties rule {op.ties!r}; one of {sorted(TIE_RULES)}")
    if op.singular and op.singular not in SINGULAR_RULES:
        raise ValueError(f"{op.name}: unknown singular rule {op.singular!r}; one of {sorted(SINGULAR_RULES)}")
    TENSOR_OPS[op.name] = op


declare(TensorOp("sum", 1, "torch.sum", lambda x, dim, keepdim: x.sum(_dim_arg(dim), keepdim),
                 lambda s: len(s) >= 1, _reduction))
declare(TensorOp("mean", 1, "torch.mean", lambda x, dim, keepdim: x.mean(_dim_arg(dim), keepdim),
                 lambda s: len(s) >= 1, _reduction))
declare(TensorOp("amax", 1, "torch.amax", lambda x, dim, keepdim: x.amax(_dim_arg(dim), keepdim),
                 lambda s: len(s) >= 1, _reduction, note="ties share the gradient evenly, as torch",
                 ties="max-in-reduced-slices"))
declare(TensorOp("logsumexp", 1, "torch.logsumexp",
                 lambda x, dim, keepdim: x.logsumexp(_dim_arg(dim), keepdim), lambda s: len(s) >= 1, _reduction,
                 note="computed with a max shift: large logits must not overflow"))
declare(TensorOp("softmax", 1, "torch.softmax", lambda x, dim: x.softmax(dim), lambda s: len(s) >= 1, _along))
declare(TensorOp("log_softmax", 1, "torch.log_softmax", lambda x, dim: x.log_softmax(dim),
                 lambda s: len(s) >= 1, _along))
declare(TensorOp("transpose", 1, "torch.transpose", lambda x, dim0, dim1: x.transpose(dim0, dim1),
                 lambda s: len(s) >= 2,
                 lambda s: st.fixed_dictionaries({"dim0": st.integers(0, len(s) - 1),
                                                  "dim1": st.integers(-len(s), -1)})))
declare(TensorOp("reshape", 1, "torch.reshape", lambda x, shape: x.reshape(*shape), lambda s: True,
                 _factorisations))
declare(TensorOp("matmul", 2, "torch.matmul", lambda a, b: matmul(a, b), lambda s: 1 <= len(s) <= 3,
                 lambda s: st.just({}), note="1-D, 2-D and batched with broadcast batch dims"))


_NO_TENSOR_GRAPHS = (lambda s: False, lambda s: st.just({}))  # a layer op is drawn by its geometry only
#: torch 2.13's convolutions crash or read unwritten memory in both half formats (docs/findings.md)
_HALF_PRECISION = ("float16", "bfloat16")

declare(TensorOp("conv2d", 3, "torch.nn.functional.conv2d", conv.conv2d, *_NO_TENSOR_GRAPHS,
                 note="stride, padding, dilation, groups; bias", family="convolution",
                 geometry=geometry.conv2d_geometry,
                 torch_unreliable=_HALF_PRECISION))
declare(TensorOp("conv1d", 3, "torch.nn.functional.conv1d", conv.conv1d, *_NO_TENSOR_GRAPHS,
                 note="stride, padding, dilation, groups; bias", family="convolution",
                 geometry=geometry.conv1d_geometry,
                 torch_unreliable=_HALF_PRECISION))
declare(TensorOp("max_pool2d", 1, "torch.nn.functional.max_pool2d", conv.max_pool2d, *_NO_TENSOR_GRAPHS,
                 note="a tie goes to the window's first maximum, as torch", ties="max-in-windows",
                 family="convolution", geometry=geometry.max_pool2d_geometry))
declare(TensorOp("avg_pool2d", 1, "torch.nn.functional.avg_pool2d", conv.avg_pool2d, *_NO_TENSOR_GRAPHS,
                 note="ceil_mode, count_include_pad: torch's divisor", family="convolution",
                 geometry=geometry.avg_pool2d_geometry))


_NORM = dict(family="normalization", keywords=("", "weight", "bias"))

declare(TensorOp("batch_norm", 3, "torch.nn.functional.batch_norm", norm.batch_norm, *_NO_TENSOR_GRAPHS,
                 note="training mode: the batch's statistics, biased variance", geometry=geometry.batch_norm_geometry,
                 torch_fixed=(("running_mean", None), ("running_var", None), ("training", True)), **_NORM))
declare(TensorOp("layer_norm", 3, "torch.nn.functional.layer_norm", norm.layer_norm, *_NO_TENSOR_GRAPHS,
                 note="over the trailing normalized_shape, of a 2-D to 4-D input",
                 geometry=geometry.layer_norm_geometry, **_NORM))
declare(TensorOp("group_norm", 3, "torch.nn.functional.group_norm", norm.group_norm, *_NO_TENSOR_GRAPHS,
                 note="num_groups runs of channels per sample", geometry=geometry.group_norm_geometry, **_NORM))

_INDEX = (("index", "int64"),)
declare(TensorOp("index_select", 1, "torch.index_select", indexing.index_select, *_NO_TENSOR_GRAPHS,
                 note="repeated indices: a slice selected twice gets both gradients", family="indexing",
                 geometry=geometry.index_select_geometry, tensor_attrs=_INDEX))
declare(TensorOp("gather", 1, "torch.gather", indexing.gather, *_NO_TENSOR_GRAPHS,
                 note="repeated indices along dim", family="indexing", geometry=geometry.gather_geometry,
                 tensor_attrs=_INDEX))
declare(TensorOp("embedding", 1, "torch.nn.functional.embedding", indexing.embedding, *_NO_TENSOR_GRAPHS,
                 note="rows of weight (V, D) at input, repeated", family="indexing",
                 geometry=geometry.embedding_geometry, keywords=("weight",), tensor_attrs=(("input", "int64"),)))
declare(TensorOp("scatter_add", 2, "torch.scatter_add", indexing.scatter_add, *_NO_TENSOR_GRAPHS,
                 note="several src elements to one place", family="indexing", geometry=geometry.scatter_add_geometry,
                 keywords=("", "src"), tensor_attrs=_INDEX))
declare(TensorOp("where", 2, "torch.where", indexing.where, *_NO_TENSOR_GRAPHS,
                 note="condition an attribute: no kink", family="indexing", geometry=geometry.where_geometry,
                 keywords=("input", "other"), tensor_attrs=(("condition", "bool"),)))
declare(TensorOp("masked_fill", 1, "torch.masked_fill", indexing.masked_fill, *_NO_TENSOR_GRAPHS,
                 note="a filled position's gradient is 0", family="indexing", geometry=geometry.masked_fill_geometry,
                 tensor_attrs=(("mask", "bool"),), fills=("value",)))
declare(TensorOp("cumsum", 1, "torch.cumsum", indexing.cumsum, *_NO_TENSOR_GRAPHS,
                 note="the gradient is the reversed running sum", family="cumulative",
                 geometry=geometry.running_geometry))
declare(TensorOp("cumprod", 1, "torch.cumprod", indexing.cumprod, *_NO_TENSOR_GRAPHS,
                 note="zeros in a lane, one or several", family="cumulative", geometry=geometry.running_geometry))
declare(TensorOp("prod", 1, "torch.prod", indexing.prod, *_NO_TENSOR_GRAPHS,
                 note="zeros in a slice, one or several", family="cumulative", geometry=geometry.prod_geometry))

declare(TensorOp("scaled_dot_product_attention", 3, "torch.nn.functional.scaled_dot_product_attention",
                 attention.scaled_dot_product_attention, *_NO_TENSOR_GRAPHS,
                 note="query and key lengths that differ, a causal mask (top-left), the scale", family="attention",
                 geometry=geometry.attention_geometry))

declare(TensorOp("lstm", 7, "conformance.oracle.composed.lstm", recurrent.lstm, *_NO_TENSOR_GRAPHS,
                 note="x (T, B, I), h0, c0, w_ih, w_hh, b_ih, b_hh: every step's h, torch's gate order",
                 family="recurrent", geometry=geometry.lstm_geometry))
declare(TensorOp("gru", 6, "conformance.oracle.composed.gru", recurrent.gru, *_NO_TENSOR_GRAPHS,
                 note="x (T, B, I), h0, w_ih, w_hh, b_ih, b_hh: every step's h, torch's gate order",
                 family="recurrent", geometry=geometry.gru_geometry))

# declared after the others, so that every suite already in the list keeps its place, and with it its seed
declare(TensorOp("conv_transpose2d", 3, "torch.nn.functional.conv_transpose2d", conv.conv_transpose2d,
                 *_NO_TENSOR_GRAPHS, note="weight (C, O/groups, kH, kW); stride, padding, output_padding, "
                 "groups, dilation; bias", family="convolution", geometry=geometry.conv_transpose2d_geometry,
                 torch_unreliable=_HALF_PRECISION))
declare(TensorOp("var", 1, "torch.var", statistics.var, *_NO_TENSOR_GRAPHS,
                 note="correction 1 or 0, over one dim or several", family="statistics",
                 geometry=geometry.spread_geometry))
declare(TensorOp("std", 1, "torch.std", statistics.std, *_NO_TENSOR_GRAPHS,
                 note="a constant slice: gradient 0 (torch masks), NaN as valid", family="statistics",
                 geometry=geometry.spread_geometry, singular="zero-variance"))
declare(TensorOp("vector_norm", 1, "torch.linalg.vector_norm", statistics.vector_norm, *_NO_TENSOR_GRAPHS,
                 note="ord 2; a slice of zeros: gradient 0 (torch masks), NaN as valid", family="statistics",
                 geometry=geometry.norm_geometry, singular="zero-slices", torch_fixed=(("ord", 2),)))

declare(TensorOp("cat", 2, "conformance.oracle.composed.cat", shaping.cat, *_NO_TENSOR_GRAPHS,
                 note="two or three inputs, sizes along dim that differ", family="shaping",
                 geometry=geometry.cat_geometry))
declare(TensorOp("stack", 2, "conformance.oracle.composed.stack", shaping.stack, *_NO_TENSOR_GRAPHS,
                 note="two or three inputs along a new dim", family="shaping", geometry=geometry.stack_geometry))
declare(TensorOp("slice", 1, "conformance.oracle.composed.slice_along", shaping.slice_along, *_NO_TENSOR_GRAPHS,
                 note="start, stop (None, negative, past the end), step", family="shaping",
                 geometry=geometry.slice_geometry))
declare(TensorOp("pad", 1, "torch.nn.functional.pad", shaping.pad, *_NO_TENSOR_GRAPHS,
                 note="constant (a value), reflect, replicate, circular: an edge element's gradient a sum",
                 family="shaping", geometry=geometry.pad_geometry))

declare(TensorOp("dropout", 1, "conformance.oracle.composed.dropout", indexing.dropout, *_NO_TENSOR_GRAPHS,
                 note="a given mask: x·mask/(1 − p)", family="dropout", geometry=geometry.dropout_geometry,
                 tensor_attrs=(("mask", "bool"),)))


def infinite_fills(name: str, attrs: dict[str, Any]) -> frozenset[float]:
    """The infinite values a node of op ``name`` sets on purpose (:attr:`TensorOp.fills`: masked_fill's
    −∞ before a softmax): the positions holding them are a mask, a constant — the working range does
    not count them (conformance/verdict/robustness.py) and the truth's finite differences leave them
    out (conformance/oracle/run.py). Empty for an elementwise op or a finite fill."""
    spec = TENSOR_OPS.get(name)
    return frozenset(float(attrs[k]) for k in (spec.fills if spec else ())
                     if isinstance(attrs.get(k), float) and math.isinf(attrs[k]))


def layer_ops(among: Any = None, family: str | None = None) -> list[str]:
    """The layer ops, in declaration order (only those in ``among``, of ``family``, if given)."""
    return [n for n, op in TENSOR_OPS.items()
            if op.layer and (among is None or n in among) and (family is None or op.family == family)]


#: the families of layer ops (each a row of the verdict table and a calibration group), in order
LAYER_FAMILIES = tuple(dict.fromkeys(TENSOR_OPS[n].family for n in layer_ops()))


def torch_kwargs(name: str, attrs: dict[str, Any],
                 as_tensor: Callable[[Any, str], Any] | None = None) -> dict[str, Any]:
    """The case's attributes as torch keywords (JSON lists become the tuples torch expects; an
    attribute torch takes as a tensor becomes ``as_tensor(nested list, dtype name)``), with the
    keywords torch needs that the case does not carry."""
    op = TENSOR_OPS.get(name)
    tensors = dict(op.tensor_attrs) if op else {}
    out = dict(op.torch_fixed) if op else {}
    for k, v in attrs.items():
        out[k] = as_tensor(v, tensors[k]) if k in tensors and as_tensor else tuple(v) if isinstance(v, list) else v
    return out


def torch_arguments(name: str, inputs: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """The op's inputs as torch takes them: positional, but for the ones it names as keywords."""
    named = TENSOR_OPS[name].keywords or ("",) * len(inputs)
    return [x for k, x in zip(named, inputs) if not k], {k: x for k, x in zip(named, inputs) if k}
