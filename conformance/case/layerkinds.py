"""The layer kinds a network case's feature stack may hold (a small CNN, a recurrent layer or a
transformer block before the MLP), each declared once.

A network case (:mod:`conformance.case.network`) may open with *features*: layers over an input
``x`` of shape ``[B, C, H, W]`` — convolution, an activation, pooling, normalization — or ``[B, T, I]``
— an LSTM or a GRU, its last step going on; a pre-norm transformer block —, whose output is
flattened (``h.flatten(1)``) into the case's Linear layers. Each kind of feature layer is one
:class:`LayerKind` of :data:`LAYER_KINDS`: its parameters as torch names them, in torch's order, and
their shapes at an input shape; its output shape; its hostile-but-valid attributes for an input
shape (a strategy); and the op it computes — a layer op of the tensor-op table
(:data:`conformance.case.tensor_ops.TENSOR_OPS`: refimpl's function and torch's name) or an
activation of refimpl's op table. Everything that reads or writes a network case — validation and
JSON, the strategies, refimpl's trainer, torch's run and the torch script, the bounds, the entry
names, the shrinker's smaller cases, the capabilities — reads this table, and nothing branches on
"cnn or mlp".

Each kind belongs to one *stack* (:data:`STACKS`: ``cnn``, ``rnn``, ``transformer``), the feature
layers one suite draws together, and declares the rank of the per-sample input it takes (``rank``).
A kind that is not one op of the table — a recurrent layer's last step from a zero state, a
transformer block with its residual adds — composes its forward from table ops (``compute``, the
ops it reads beside ``op`` in ``uses``) and names torch's counterpart (``call``, in
:mod:`conformance.oracle.composed`): nothing else changes for it. A residual block is one kind, not a
stack of kinds, because a feature stack is sequential: the skip connection lives inside the
declaration, and its parameters carry the names of the torch module's submodules
(``self_attn.in_proj_weight``, ``norm1.weight``, …).

Shapes here are *per sample*: ``(C, H, W)`` or ``(T, I)``; the batch size ``n`` matters only to
batch norm's rule (more than one value per channel in training). The forward reads ``TENSOR_OPS[op].refimpl`` when it
runs, so a mutant that patches a layer op (:mod:`conformance.impls.zoo.layers`) reaches the training
runs too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from conformance.case import tensor_ops
from conformance.case.tensor_ops import TENSOR_OPS
from refimpl import OPS, conv
from refimpl.tensor import Tensor as RTensor
from refimpl.tensor import matmul

Shape = tuple[int, ...]
Params = dict[str, Shape]
#: told of every activation inside a composed kind before it is applied (its name, attributes and input):
#: refimpl's trainer records the inputs near a kink (conformance/oracle/netrun.py)
Watch = Callable[[str, dict[str, Any], RTensor], None]
Compute = Callable[[RTensor, list[RTensor | None], dict[str, Any], Watch | None], RTensor]
#: the eps a normalization is drawn with (torch's default first)
EPS = (1e-5, 1e-3, 0.1)


def _no_params(shape: Shape, attrs: dict[str, Any], like: Params) -> Params:
    return {}


def _same(shape: Shape, attrs: dict[str, Any], params: Params) -> Shape:
    return shape


def _fine(shape: Shape, attrs: dict[str, Any], n: int) -> str | None:
    return None


@dataclass(frozen=True)
class LayerKind:
    """One kind of feature layer (see the module doc)."""

    name: str
    op: str  # a layer op of TENSOR_OPS, or (``activation``) an elementwise op of refimpl.OPS
    module: str  # the torch.nn module it is, for people
    params: tuple[str, ...] = ()  # torch's names, in torch's order
    optional: frozenset[str] = frozenset()  # the parameters a case may leave out (null): conv's bias
    # the shapes its parameters must have at an input shape (``like``: the case's own, for what the input
    # does not decide — a convolution's out-channels and kernel); ValueError where the input does not fit
    shapes: Callable[[Shape, dict[str, Any], Params], Params] = _no_params
    out: Callable[[Shape, dict[str, Any], Params], Shape] = _same  # the output shape (ValueError: none)
    rule: Callable[[Shape, dict[str, Any], int], str | None] = _fine  # what else torch asks, at batch n
    # hostile-but-valid attributes and parameter shapes for an input shape (None: an activation, drawn
    # as the Linear layers' are)
    draw: Callable[[Shape], st.SearchStrategy[tuple[dict[str, Any], Params]]] | None = None
    init: dict[str, tuple[float, float]] = field(default_factory=dict)  # a parameter's value range, unscaled
    # each attribute's plainest value: the shrinker sets them one by one (conformance/case/reduce.py)
    plain: dict[str, Any] = field(default_factory=dict)
    activation: bool = False
    # the stack of feature layers it belongs to (a suite draws one stack: STACKS), and the rank of the
    # per-sample input it takes (None: any — an activation, layer norm)
    stack: str = "cnn"
    rank: int | None = None
    # a kind that is not one op of the table: refimpl's forward composed of table ops (``uses``: the
    # others it reads besides ``op``), and torch's — a function of conformance.oracle.composed called
    # ``call(h, *params, **attrs)``, whose source the torch script copies in
    compute: Compute | None = None
    uses: frozenset[str] = frozenset()
    call: str = ""
    # the factor of a parameter's init range at these parameter shapes (torch's default init: 1/√fan_in)
    gain: Callable[[Params, str], float] = lambda shapes, name: 1.0

    @property
    def torch(self) -> str:
        """torch's function (a dotted name)."""
        if self.call:
            return self.call
        return OPS[self.op].torch if self.activation else TENSOR_OPS[self.op].torch

    @property
    def ops(self) -> frozenset[str]:
        """The ops of the tensor-op table its forward computes (a mutant of one of them reaches it)."""
        return frozenset() if self.activation else frozenset({self.op}) | self.uses

    def torch_arguments(self, inputs: list[Any], attrs: dict[str, Any]) -> tuple[list[Any], dict[str, Any],
                                                                              dict[str, Any]]:
        """torch's call of it on ``inputs`` (the input, then its parameters in order): the positional
        inputs, the inputs torch takes by keyword, and the attributes as keywords — as the table's op
        takes them, or (an activation, a ``call``) positionally, the attributes as they are."""
        if self.activation or self.call:
            return list(inputs), {}, dict(attrs)
        pos, named = tensor_ops.torch_arguments(self.op, inputs)
        return pos, named, tensor_ops.torch_kwargs(self.op, attrs)

    def forward(self, x: RTensor, params: list[RTensor | None], attrs: dict[str, Any],
                watch: Watch | None = None) -> RTensor:
        """refimpl's forward: the op of the table (read now, so that a patched op is the one run);
        ``watch`` sees each activation a composed kind applies inside."""
        if self.activation:
            return x.apply(self.op, **attrs)
        if self.compute is not None:
            return self.compute(x, params, attrs, watch)
        return TENSOR_OPS[self.op].refimpl(x, *params, **attrs)


# --- convolution ---------------------------------------------------------------------------------------

def _conv_shapes(shape: Shape, attrs: dict[str, Any], like: Params) -> Params:
    c, g = shape[0], attrs["groups"]
    o, kernel = like["weight"][0], like["weight"][2:]
    if c % g or o % g:
        raise ValueError(f"conv2d: {c} input and {o} output channels do not divide into {g} groups")
    return {"weight": (o, c // g, *kernel), "bias": (o,)}


def _conv_out(shape: Shape, attrs: dict[str, Any], params: Params) -> Shape:
    o, _, kh, kw = params["weight"]
    s, p, d = (conv.pair(attrs[k]) for k in ("stride", "padding", "dilation"))
    return (o, conv.out_size(shape[1], kh, s[0], p[0], d[0]), conv.out_size(shape[2], kw, s[1], p[1], d[1]))


def _conv_axis(draw: st.DrawFn, size: int) -> tuple[int, int, int, int]:
    """(kernel, stride, padding, dilation) along one axis whose output has at least one element: a
    stride that rarely divides what is left, padding, dilation — whatever the size leaves room for."""
    padding = draw(st.integers(0, 1))
    dilation = draw(st.integers(1, 2))
    room = size + 2 * padding  # the span d·(k − 1) + 1 must fit in it
    if dilation + 1 > room:
        dilation = 1
    kernel = draw(st.integers(1, max(1, min(3, (room - 1) // dilation + 1))))
    stride = draw(st.integers(1, 2))
    return kernel, stride, padding, dilation


@st.composite
def _conv_draw(draw: st.DrawFn, shape: Shape) -> tuple[dict[str, Any], Params]:
    c = shape[0]
    groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
    out = groups * draw(st.integers(1, 2))
    rows, cols = _conv_axis(draw, shape[1]), _conv_axis(draw, shape[2])
    attrs = {"stride": [rows[1], cols[1]], "padding": [rows[2], cols[2]], "dilation": [rows[3], cols[3]],
             "groups": groups}
    return attrs, {"weight": (out, c // groups, rows[0], cols[0]), "bias": (out,)}


# --- pooling ---------------------------------------------------------------------------------------------

def _pool_out(max_pool: bool) -> Callable[[Shape, dict[str, Any], Params], Shape]:
    def out(shape: Shape, attrs: dict[str, Any], params: Params) -> Shape:
        k = conv.pair(attrs["kernel_size"])
        s = conv.pair(attrs.get("stride") or k)
        p, d = conv.pair(attrs["padding"]), conv.pair(attrs.get("dilation", 1))
        if any(2 * p[a] > (d[a] * (k[a] - 1) + 1 if max_pool else k[a]) for a in (0, 1)):
            raise ValueError(f"pooling: padding {list(p)} is more than half the kernel {list(k)}")
        (oh, ow), wins = conv.windows(shape[1:], k, s, p, d, attrs.get("ceil_mode", False))
        if any(all(t is None for t in taps) for taps in wins):
            raise ValueError("pooling: a window lies wholly in the padding")
        return (shape[0], oh, ow)

    return out


def _pool_axis(draw: st.DrawFn, size: int, dilated: bool, ceil_mode: bool) -> tuple[int, int, int, int]:
    """(kernel, stride, padding, dilation) along one axis, every window holding an input element (else
    the plainest window, 1)."""
    kernel = draw(st.integers(1, 3))
    stride = draw(st.integers(1, kernel if dilated else 3))
    padding = draw(st.integers(0, kernel // 2))
    dilation = draw(st.integers(1, 2)) if dilated else 1
    try:
        _, wins = conv.windows((size, 1), (kernel, 1), (stride, 1), (padding, 0), (dilation, 1), ceil_mode)
        if all(any(t is not None for t in taps) for taps in wins):
            return kernel, stride, padding, dilation
    except ValueError:
        pass
    return 1, 1, 0, 1


def _pool_draw(max_pool: bool) -> Callable[[Shape], st.SearchStrategy[tuple[dict[str, Any], Params]]]:
    @st.composite
    def draw_pool(draw: st.DrawFn, shape: Shape) -> tuple[dict[str, Any], Params]:
        ceil_mode = draw(st.booleans())
        rows, cols = (_pool_axis(draw, shape[a], max_pool, ceil_mode) for a in (1, 2))
        attrs: dict[str, Any] = {"kernel_size": [rows[0], cols[0]], "stride": [rows[1], cols[1]],
                                 "padding": [rows[2], cols[2]]}
        if max_pool:
            attrs["dilation"] = [rows[3], cols[3]]
        attrs["ceil_mode"] = ceil_mode
        if not max_pool:
            attrs["count_include_pad"] = draw(st.booleans())
        return attrs, {}

    return draw_pool


# --- normalization ---------------------------------------------------------------------------------------

def _channel_params(shape: Shape, attrs: dict[str, Any], like: Params) -> Params:
    return {"weight": (shape[0],), "bias": (shape[0],)}


def _batch_norm_rule(shape: Shape, attrs: dict[str, Any], n: int) -> str | None:
    return None if n * shape[1] * shape[2] > 1 else "batch_norm needs more than one value per channel in training"


def _group_norm_shapes(shape: Shape, attrs: dict[str, Any], like: Params) -> Params:
    if shape[0] % attrs["num_groups"]:
        raise ValueError(f"group_norm: {shape[0]} channels do not divide into {attrs['num_groups']} groups")
    if shape[0] // attrs["num_groups"] * shape[1] * shape[2] < 2:
        raise ValueError("group_norm needs more than one value per group")
    return _channel_params(shape, attrs, like)


def _layer_norm_shapes(shape: Shape, attrs: dict[str, Any], like: Params) -> Params:
    norm = tuple(attrs["normalized_shape"])
    if not 1 <= len(norm) <= len(shape) or shape[len(shape) - len(norm):] != norm:
        raise ValueError(f"layer_norm: normalized_shape {list(norm)} is not the end of the input's shape {list(shape)}")
    return {"weight": norm, "bias": norm}


@st.composite
def _batch_norm_draw(draw: st.DrawFn, shape: Shape) -> tuple[dict[str, Any], Params]:
    return {"eps": draw(st.sampled_from(EPS))}, _channel_params(shape, {}, {})


@st.composite
def _group_norm_draw(draw: st.DrawFn, shape: Shape) -> tuple[dict[str, Any], Params]:
    fits = [g for g in range(1, shape[0] + 1) if shape[0] % g == 0 and shape[0] // g * shape[1] * shape[2] >= 2]
    attrs = {"num_groups": draw(st.sampled_from(fits or [1])), "eps": draw(st.sampled_from(EPS))}
    return attrs, _channel_params(shape, attrs, {})


@st.composite
def _layer_norm_draw(draw: st.DrawFn, shape: Shape) -> tuple[dict[str, Any], Params]:
    norm = list(shape[3 - draw(st.sampled_from((2, 1, 3))):])  # (H, W) first: the per-sample planes
    attrs = {"normalized_shape": norm, "eps": draw(st.sampled_from(EPS))}
    return attrs, {"weight": tuple(norm), "bias": tuple(norm)}


# --- recurrent layers --------------------------------------------------------------------------------------
# An LSTM or a GRU over a sequence x (B, T, I) — ``torch.nn.LSTM(I, H, batch_first=True)`` (or GRU), one
# layer, unidirectional, zero initial state — whose *last step's output* ``out[:, -1]`` (B, H) goes on to the
# Linear layers: the many-to-one network people write to classify or regress a sequence. Only the last
# step reaches the loss, so the gradient of every earlier input and every earlier step's use of the
# weights flows back through the carried state alone — what a backward through time that drops the carry
# gets wrong, and a network that flattened every step's output would half hide. The hidden size H is
# drawn from 1 (the "wrong when the output size is 1" class) to 3; T from 2 (at T = 1 nothing is carried).

_GATES = {"lstm": 4, "gru": 3}
RNN_PARAMS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")  # torch.nn.LSTM's names, in its order


def _rnn_shapes(gates: int) -> Callable[[Shape, dict[str, Any], Params], Params]:
    def shapes(shape: Shape, attrs: dict[str, Any], like: Params) -> Params:
        if len(shape) != 2:
            raise ValueError(f"a recurrent layer takes a sequence (T, I) per sample, not {list(shape)}")
        h = like["weight_hh_l0"][1]
        g = gates * h
        return {"weight_ih_l0": (g, shape[1]), "weight_hh_l0": (g, h), "bias_ih_l0": (g,), "bias_hh_l0": (g,)}

    return shapes


def _rnn_out(shape: Shape, attrs: dict[str, Any], params: Params) -> Shape:
    return (params["weight_hh_l0"][1],)


def _rnn_draw(gates: int) -> Callable[[Shape], st.SearchStrategy[tuple[dict[str, Any], Params]]]:
    @st.composite
    def draw_rnn(draw: st.DrawFn, shape: Shape) -> tuple[dict[str, Any], Params]:
        h = draw(st.integers(1, 3))
        return {}, _rnn_shapes(gates)(shape, {}, {"weight_hh_l0": (gates * h, h)})

    return draw_rnn


def _rnn_gain(shapes: Params, name: str) -> float:
    """torch's default init of a recurrent layer: every parameter in ±1/√H."""
    return 1.0 / math.sqrt(shapes["weight_hh_l0"][1])


def _last_step(op: str) -> Compute:
    def forward(x: RTensor, params: list[RTensor | None], attrs: dict[str, Any], watch: Watch | None) -> RTensor:
        """The table's op (sequence first, as refimpl and torch's cells take it) from a zero state; the
        last step's hidden state."""
        b, h = x.shape[0], params[1].shape[1]  # type: ignore[union-attr]
        zero = RTensor.from_flat([0.0] * (b * h), (b, h), x.system, False)
        states = TENSOR_OPS[op].arity - 1 - len(params)  # h0 (and c0)
        return TENSOR_OPS[op].refimpl(x.transpose(0, 1), *(zero,) * states, *params)[-1]

    return forward


RECURRENT = tuple(
    LayerKind(name, name, f"torch.nn.{name.upper()}(batch_first=True), the last step's output", RNN_PARAMS,
              shapes=_rnn_shapes(_GATES[name]), out=_rnn_out, draw=_rnn_draw(_GATES[name]),
              init={p: (-1.0, 1.0) for p in RNN_PARAMS}, stack="rnn", rank=2, compute=_last_step(name),
              call=f"conformance.oracle.composed.{name}_last_step", gain=_rnn_gain)
    for name in ("lstm", "gru"))


# --- transformer block -------------------------------------------------------------------------------------
# A pre-norm transformer encoder block over a sequence x (B, T, D) — what
# ``torch.nn.TransformerEncoderLayer(D, nhead, F, dropout=0.0, activation, batch_first=True,
# norm_first=True)`` computes, its parameters named as that module names them, in its order:
#     x = x + out_proj(attention(q, k, v of in_proj(norm1(x)), nhead heads))
#     x = x + linear2(activation(linear1(norm2(x))))
# Its output (B, T, D) is flattened into the Linear layers, so every position's output reaches the loss.
# The residual adds are inside the kind: one declaration holds the block, and refimpl's forward is
# composed of the table's ops (layer norm, scaled dot-product attention — self-attention, where the
# query and key lengths are equal, the case an attention backward that swaps them gets silently
# wrong) and matmuls, so a mutant of either op reaches it. T from 2, D from 2 to 4 (so a head of one
# dim, whose softmax scale is 1, is not all there is), F from 1 to 4, nhead any divisor of D.

BLOCK_PARAMS = ("self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
                "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias")
BLOCK_ACTIVATIONS = ("relu", "gelu")  # the activations TransformerEncoderLayer takes by name


def _block_shapes(shape: Shape, attrs: dict[str, Any], like: Params) -> Params:
    if len(shape) != 2:
        raise ValueError(f"a transformer block takes a sequence (T, D) per sample, not {list(shape)}")
    d, f = shape[1], like["linear1.weight"][0]
    if d % attrs["nhead"]:
        raise ValueError(f"transformer block: {d} dims do not divide into {attrs['nhead']} heads")
    return {"self_attn.in_proj_weight": (3 * d, d), "self_attn.in_proj_bias": (3 * d,),
            "self_attn.out_proj.weight": (d, d), "self_attn.out_proj.bias": (d,),
            "linear1.weight": (f, d), "linear1.bias": (f,), "linear2.weight": (d, f), "linear2.bias": (d,),
            "norm1.weight": (d,), "norm1.bias": (d,), "norm2.weight": (d,), "norm2.bias": (d,)}


@st.composite
def _block_draw(draw: st.DrawFn, shape: Shape) -> tuple[dict[str, Any], Params]:
    d = shape[1]
    attrs = {"nhead": draw(st.sampled_from([h for h in range(1, d + 1) if d % h == 0])),
             "activation": draw(st.sampled_from(BLOCK_ACTIVATIONS)), "layer_norm_eps": draw(st.sampled_from(EPS))}
    return attrs, _block_shapes(shape, attrs, {"linear1.weight": (draw(st.integers(1, 4)), d)})


def _block_gain(shapes: Params, name: str) -> float:
    """A linear map's weight and bias in ±1/√fan_in (torch.nn.Linear's default init); the norms as declared."""
    return 1.0 if name.startswith("norm") else 1.0 / math.sqrt(shapes[name.replace("bias", "weight")][-1])


def _linear(x: RTensor, weight: RTensor, bias: RTensor) -> RTensor:
    return matmul(x, weight.T) + bias


def _block_forward(x: RTensor, params: list[RTensor | None], attrs: dict[str, Any], watch: Watch | None) -> RTensor:
    """The pre-norm block (above), each norm and the attention by the table's op; the feed-forward
    activation shown to ``watch`` (a relu's input at 0 is a kink)."""
    w_in, b_in, w_out, b_out, w1, b1, w2, b2, g1, c1, g2, c2 = params
    b, t, d = x.shape
    heads = attrs["nhead"]
    norm = TENSOR_OPS["layer_norm"].refimpl
    eps = attrs["layer_norm_eps"]
    qkv = _linear(norm(x, g1, c1, normalized_shape=[d], eps=eps), w_in, b_in)  # (B, T, 3D): q, k, v

    def split(i: int) -> RTensor:  # (B, heads, T, D / heads)
        return qkv[:, :, i * d:(i + 1) * d].reshape(b, t, heads, d // heads).transpose(1, 2)

    att = TENSOR_OPS["scaled_dot_product_attention"].refimpl(split(0), split(1), split(2))
    x = x + _linear(att.transpose(1, 2).reshape(b, t, d), w_out, b_out)
    inner = _linear(norm(x, g2, c2, normalized_shape=[d], eps=eps), w1, b1)
    if watch is not None:
        watch(attrs["activation"], {}, inner)
    inner = inner.apply(attrs["activation"])
    return x + _linear(inner, w2, b2)


TRANSFORMER = LayerKind(
    "transformer_block", "scaled_dot_product_attention",
    "torch.nn.TransformerEncoderLayer(dropout=0.0, batch_first=True, norm_first=True)", BLOCK_PARAMS,
    shapes=_block_shapes, draw=_block_draw, stack="transformer", rank=2, compute=_block_forward,
    uses=frozenset({"layer_norm"}), call="conformance.oracle.composed.transformer_block", gain=_block_gain,
    init={p: (0.5, 1.5) if p.startswith("norm") and p.endswith("weight") else
          (-0.5, 0.5) if p.startswith("norm") else (-1.0, 1.0) for p in BLOCK_PARAMS},
    plain={"nhead": 1, "activation": "relu", "layer_norm_eps": 1e-5})


_AFFINE = {"weight": (0.5, 1.5), "bias": (-0.5, 0.5)}
_NORM = dict(params=("weight", "bias"), init=_AFFINE, plain={"eps": 1e-5})


def _fan_in(shapes: Params, name: str) -> float:
    """torch's default init range of a convolution: 1/√fan_in."""
    return 1.0 / math.sqrt(math.prod(shapes["weight"][1:]))


#: the structural kinds (an implementation declares these in ``capabilities.layer_kinds``), in drawing order
STRUCTURAL: dict[str, LayerKind] = {k.name: k for k in (
    LayerKind("conv2d", "conv2d", "torch.nn.Conv2d", ("weight", "bias"), frozenset({"bias"}), _conv_shapes,
              _conv_out, draw=_conv_draw, init={"weight": (-1.0, 1.0), "bias": (-1.0, 1.0)},
              plain={"groups": 1, "stride": [1, 1], "dilation": [1, 1], "padding": [0, 0]}, rank=3, gain=_fan_in),
    LayerKind("max_pool2d", "max_pool2d", "torch.nn.MaxPool2d", out=_pool_out(True), draw=_pool_draw(True),
              plain={"ceil_mode": False, "dilation": [1, 1], "padding": [0, 0]}, rank=3),
    LayerKind("avg_pool2d", "avg_pool2d", "torch.nn.AvgPool2d", out=_pool_out(False), draw=_pool_draw(False),
              plain={"ceil_mode": False, "count_include_pad": True, "padding": [0, 0]}, rank=3),
    LayerKind("batch_norm", "batch_norm", "torch.nn.BatchNorm2d (training, no running statistics)",
              shapes=_channel_params, rule=_batch_norm_rule, draw=_batch_norm_draw, rank=3, **_NORM),
    LayerKind("group_norm", "group_norm", "torch.nn.GroupNorm", shapes=_group_norm_shapes, draw=_group_norm_draw,
              rank=3, **_NORM),
    LayerKind("layer_norm", "layer_norm", "torch.nn.LayerNorm", shapes=_layer_norm_shapes, draw=_layer_norm_draw,
              **_NORM),
    *RECURRENT,
    TRANSFORMER,
)}
POOLS = ("max_pool2d", "avg_pool2d")
NORMS = ("batch_norm", "group_norm", "layer_norm")

#: every kind of feature layer: the structural ones, and each activation (no parameters), named as in refimpl's op table
LAYER_KINDS: dict[str, LayerKind] = {
    **STRUCTURAL,
    **{a: LayerKind(a, a, f"torch.nn.functional.{a}", activation=True)
       for a in ("relu", "leaky_relu", "elu", "softplus", "silu", "gelu", "tanh", "sigmoid")},
}

#: the stacks of feature layers, each drawn by its own suites: its structural kinds, in drawing order
STACKS: dict[str, tuple[str, ...]] = {
    stack: tuple(k.name for k in STRUCTURAL.values() if k.stack == stack)
    for stack in dict.fromkeys(k.stack for k in STRUCTURAL.values())}


def scale(kind: LayerKind, shapes: Params, name: str) -> float:
    """The factor of a parameter's init range (its kind's ``gain``: a convolution's and a recurrent
    layer's as torch's default init, the others as declared)."""
    return kind.gain(shapes, name)
