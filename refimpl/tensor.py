"""Tensors on the scalar engine: a shape and a flat, row-major list of :class:`~refimpl.engine.Value`.

Nothing here has a backward of its own. Every tensor op is a composition of scalar engine ops, so
the gradient of any tensor computation is the scalar engine's chain rule, and ``create_graph=True``
(second order) works through every op here for free. Two kinds of op:

* **Structural** ops (``reshape``, ``transpose``, ``permute``, ``unsqueeze``, ``squeeze``,
  ``expand``, broadcasting, ``gather``, indexing) make *no* nodes: they only rearrange (and, to
  broadcast, repeat) the same Value objects. A Value used in several places receives the sum of
  the gradients flowing to those places — which is exactly torch's ``sum_to_size`` for
  broadcasting and ``scatter_add`` for ``gather``.
* **Computing** ops build scalar nodes: elementwise ops straight from the op table
  (:func:`Tensor.apply`, the operators, and one method per table op), ``matmul`` (sums of
  products), reductions, and the stable composites ``softmax``, ``log_softmax`` and
  ``logsumexp``.

torch 2.13 conventions mirrored here (checked in ``tests/test_tensor.py``):

* **amax / amin ties**: the gradient is split *evenly* among all tied extrema, ``g / k`` each
  (torch's ``amax`` backward is ``grad / mask.sum(dim) * mask``; so is a full ``max()``, while
  ``max(dim)`` — not provided here — sends it all to one index). Built from engine ops as
  ``best - (1/k)·Σⱼ(best - xⱼ)`` with ``best`` a constant: the value is exactly ``best`` (each
  difference is exactly 0) and ``∂/∂xⱼ = 1/k``. Ties at ±inf send the whole gradient to the first
  tied element (``inf - inf`` would be NaN); NaN inputs propagate the value only.
* **Stable softmax family**: the max used as a shift is a constant (detached). The functions do
  not depend on the shift mathematically, so the gradient is exact, and ties in the max cannot
  matter. ``log_softmax`` is ``(x - max) - log Σ exp(x - max)`` and ``logsumexp`` is
  ``max + log Σ exp(x - max)``, in torch's order of operations; like torch, ``logsumexp`` uses a
  shift of 0 when the max is ±inf.

Making tensors: ``tensor(nested, system=FLOAT64, requires_grad=True)``,
``Tensor.from_flat(values, shape, system, requires_grad)``, ``as_tensor(x)`` (constants).
Gradients: ``Tensor.backward(cotangent=None, create_graph=False)`` accumulates into leaves;
``grad(output, inputs, cotangent=None, create_graph=False, allow_unused=False)`` returns them.

A leaf Value that requires grad starts with gradient 0, so a fresh leaf tensor's
``.grad`` is a zero tensor (torch has ``None`` until the first backward). ``.grad`` is a Tensor that
does not require grad — unless the backward ran with ``create_graph=True``, when its elements are
the gradient graph's nodes. A structural view of a leaf (``x.reshape(...)``) shares the leaf's
Values, so its ``.grad`` shows theirs.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Iterable, Sequence

from .engine import Value, backprop
from .engine import apply as apply_op
from .numbers import FLOAT64
from .ops import OPS, OpSpec

Shape = tuple[int, ...]
Dims = int | Sequence[int] | None


# --- shape arithmetic ---------------------------------------------------------------------------

def _numel(shape: Shape) -> int:
    return math.prod(shape)


def row_major_strides(shape: Shape) -> tuple[int, ...]:
    """Row-major strides: the flat distance between neighbours along each dim."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def row_major_positions(shape: Shape) -> Iterable[tuple[int, ...]]:
    """Every multi-index of ``shape`` in row-major order."""
    return itertools.product(*(range(n) for n in shape))


def norm_dim(dim: int, ndim: int) -> int:
    """A dim in ``[-ndim, ndim)`` as a non-negative one (a 0-d tensor accepts 0 and -1, as in torch)."""
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(f"dim {dim} out of range for a tensor with {ndim} dim(s)")
    return dim % size


def norm_dims(dims: Dims, ndim: int) -> tuple[int, ...]:
    """``None`` (or ``()``) means every dim, as in torch's reductions."""
    if dims is None or (not isinstance(dims, int) and len(dims) == 0):
        return tuple(range(ndim))
    if isinstance(dims, int):
        dims = (dims,)
    if ndim == 0:  # a 0-d tensor has one element: reducing over "dim 0" leaves it as it is
        for d in dims:
            norm_dim(d, 0)
        return ()
    out = sorted({norm_dim(d, ndim) for d in dims})
    if len(out) != len(dims):
        raise ValueError(f"dim {tuple(dims)} names a dim twice")
    return tuple(out)


def broadcast_shapes(*shapes: Shape) -> Shape:
    """torch's broadcasting: align shapes on the right; each pair of sizes is equal or one is 1."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for d in range(ndim):
        sizes = {s[d - ndim + len(s)] for s in shapes if d - ndim + len(s) >= 0} - {1}
        if len(sizes) > 1:
            raise ValueError(f"shapes {list(shapes)} cannot be broadcast together")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def broadcast_map(src: Shape, out: Shape) -> list[int]:
    """For each position of ``out`` (row-major), the flat index in ``src`` it reads after broadcasting."""
    if broadcast_shapes(src, out) != out:
        raise ValueError(f"shape {src} cannot be broadcast to {out}")
    pad = len(out) - len(src)
    strides = (0,) * pad + tuple(0 if n == 1 else s for n, s in zip(src, row_major_strides(src)))
    return [sum(i * s for i, s in zip(idx, strides)) for idx in row_major_positions(out)]


def reduction_groups(shape: Shape, dims: tuple[int, ...]) -> tuple[Shape, list[list[int]]]:
    """Partition the flat indices by the position left when ``dims`` are reduced.

    Returns the keepdim shape and, for each of its positions, the input's flat indices in
    row-major order.
    """
    kept = tuple(1 if d in dims else n for d, n in enumerate(shape))
    kept_strides = row_major_strides(kept)
    groups: list[list[int]] = [[] for _ in range(_numel(kept))]
    for flat, idx in enumerate(row_major_positions(shape)):
        out = sum(i * s for d, (i, s) in enumerate(zip(idx, kept_strides)) if d not in dims)
        groups[out].append(flat)
    return kept, groups


# --- nested lists ---------------------------------------------------------------------------------

def _flatten(nested: Any) -> tuple[Shape, list[Any]]:
    """Shape and row-major leaves of a nested list/tuple (a bare number or Value has shape ())."""
    if not isinstance(nested, (list, tuple)):
        return (), [nested]
    if not nested:
        return (0,), []
    parts = [_flatten(x) for x in nested]
    inner = parts[0][0]
    if any(p[0] != inner for p in parts):
        raise ValueError(f"ragged nested list: sub-shapes {sorted({p[0] for p in parts})}")
    return (len(nested), *inner), [x for p in parts for x in p[1]]


def nest_flat(flat: list[Any], shape: Shape) -> Any:
    if not shape:
        return flat[0]
    step = _numel(shape[1:])
    return [nest_flat(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def index_array(index: Any) -> tuple[Shape, list[int]]:
    """Shape and flat ints of an index given as nested lists of ints or an integer-valued Tensor."""
    if isinstance(index, Tensor):
        shape, flat = index.shape, [v.data for v in index.elements]
    else:
        shape, flat = _flatten(index)
    for i in flat:
        if isinstance(i, bool) or int(i) != i:
            raise TypeError(f"indices must be integers, got {i!r}")
    return shape, [int(i) for i in flat]


# --- the tensor -------------------------------------------------------------------------------------

class Tensor:
    """A shape and a flat row-major list of scalar Values (``.elements``)."""

    __slots__ = ("elements", "shape", "system")

    def __init__(self, elements: Sequence[Value], shape: Sequence[int], system: Any = None) -> None:
        self.shape: Shape = tuple(int(n) for n in shape)
        self.elements: list[Value] = list(elements)
        if len(self.elements) != _numel(self.shape):
            raise ValueError(f"{len(self.elements)} elements do not fill shape {self.shape}")
        self.system = system if system is not None else (
            self.elements[0].ns if self.elements else FLOAT64)

    @classmethod
    def from_flat(cls, values: Sequence[Any], shape: Sequence[int], system: Any = FLOAT64,
                  requires_grad: bool = True) -> Tensor:
        """A tensor of new leaves made from plain numbers (Values in ``values`` are kept as they are)."""
        return cls([v if isinstance(v, Value) else Value(v, requires_grad, system=system)
                    for v in values], shape, system)

    # --- looking at it ------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return len(self.elements)

    def dim(self) -> int:
        return self.ndim

    def size(self, dim: int | None = None) -> Any:
        return self.shape if dim is None else self.shape[norm_dim(dim, self.ndim)]

    @property
    def requires_grad(self) -> bool:
        return any(v.requires_grad for v in self.elements)

    def flat(self) -> list[Any]:
        """The plain numbers, flat and row-major."""
        return [v.data for v in self.elements]

    def tolist(self) -> Any:
        """Nested lists of plain numbers (a bare number for a 0-d tensor), like torch's."""
        return nest_flat(self.flat(), self.shape)

    def item(self) -> Any:
        if len(self.elements) != 1:
            raise ValueError(f"item() needs exactly one element, the tensor has {len(self.elements)}")
        return self.elements[0].data

    def __repr__(self) -> str:
        return f"Tensor({self.tolist()!r}, shape={self.shape})"

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # --- gradients ------------------------------------------------------------------------------
    @property
    def grad(self) -> Tensor | None:
        """The elements' accumulated gradients as a Tensor (``None`` if any element keeps none)."""
        grads = [v.grad for v in self.elements]
        if any(g is None for g in grads):
            return None
        return Tensor([g if isinstance(g, Value) else Value(g, False, system=self.system)
                       for g in grads], self.shape, self.system)

    def zero_grad(self) -> None:
        for v in self.elements:
            v.zero_grad()

    def retain_grad(self) -> Tensor:
        """Keep the gradients of these (inner) elements after backward, like torch's ``retain_grad``."""
        for v in self.elements:
            v.retain_grad()
        return self

    def detach(self) -> Tensor:
        """Constants with the same values: gradients stop here."""
        return Tensor([Value(v.data, False, system=v.ns) for v in self.elements], self.shape, self.system)

    def backward(self, cotangent: Any = None, *, create_graph: bool = False) -> None:
        """Accumulate d(Σ cotangent·self)/d(leaf) into every leaf's ``.grad``, like torch's backward.

        ``cotangent`` (a Tensor or nested list of this shape) may be omitted for a one-element tensor.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: the tensor does not require grad")
        grads = backprop(self.elements, _cotangents(self, cotangent, create_graph),
                         create_graph=create_graph)
        for node, g in grads.items():
            if node.requires_grad and (node.is_leaf or node.retains_grad):
                node.grad = g if node.grad is None else node.grad + g

    # --- elementwise ops from the op table -------------------------------------------------------
    def apply(self, op: OpSpec | str, *others: Any, **attrs: Any) -> Tensor:
        """Any op of the table, elementwise with torch's broadcasting; numbers are constants."""
        spec = OPS[op] if isinstance(op, str) else op
        return elementwise(spec, self, *others, **attrs)

    def map(self, fn: Callable[[Value], Value]) -> Tensor:
        """An elementwise composite: ``fn`` builds each output from one input Value with engine ops."""
        return zip_map(fn, self)

    def __add__(self, other: Any) -> Tensor:
        return elementwise(OPS["add"], self, other)

    def __radd__(self, other: Any) -> Tensor:
        return elementwise(OPS["add"], other, self)

    def __sub__(self, other: Any) -> Tensor:
        return elementwise(OPS["sub"], self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return elementwise(OPS["sub"], other, self)

    def __mul__(self, other: Any) -> Tensor:
        return elementwise(OPS["mul"], self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return elementwise(OPS["mul"], other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return elementwise(OPS["div"], self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return elementwise(OPS["div"], other, self)

    def __neg__(self) -> Tensor:
        return elementwise(OPS["neg"], self)

    def __pow__(self, exponent: Any) -> Tensor:
        """A Tensor exponent uses ``pow``; an int ``pow_int`` (any base); a float ``pow_scalar``."""
        if isinstance(exponent, Tensor):
            return elementwise(OPS["pow"], self, exponent)
        return self.map(lambda v: v ** exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return elementwise(OPS["pow"], base, self)

    pow = __pow__

    def __matmul__(self, other: Tensor) -> Tensor:
        return matmul(self, other)

    # --- structure: no new nodes --------------------------------------------------------------------
    def _rearranged(self, order: Iterable[int], shape: Sequence[int]) -> Tensor:
        els = self.elements
        return Tensor([els[i] for i in order], shape, self.system)

    def reshape(self, *shape: Any) -> Tensor:
        """Same elements, same order, new shape (one size may be -1)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if list(shape).count(-1) > 1:
            raise ValueError("reshape: only one size may be -1")
        known = _numel(tuple(n for n in shape if n != -1))
        if -1 in shape:
            if known == 0 or self.numel() % known:
                raise ValueError(f"cannot reshape {self.shape} into {shape}")
            shape = tuple(self.numel() // known if n == -1 else n for n in shape)
        if _numel(shape) != self.numel():
            raise ValueError(f"cannot reshape {self.shape} ({self.numel()} elements) into {shape}")
        return Tensor(self.elements, shape, self.system)

    view = reshape

    def flatten(self) -> Tensor:
        return self.reshape(-1)

    def permute(self, *dims: Any) -> Tensor:
        """Dim ``k`` of the result is dim ``dims[k]`` of self."""
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        dims = tuple(norm_dim(d, self.ndim) for d in dims)
        if sorted(dims) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not a permutation of the {self.ndim} dims")
        strides = row_major_strides(self.shape)
        shape = tuple(self.shape[d] for d in dims)
        src = [strides[d] for d in dims]
        return self._rearranged((sum(i * s for i, s in zip(idx, src)) for idx in row_major_positions(shape)),
                                shape)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        dims = list(range(self.ndim))
        a, b = norm_dim(dim0, self.ndim), norm_dim(dim1, self.ndim)
        dims[a], dims[b] = dims[b], dims[a]
        return self.permute(dims) if self.ndim else self

    @property
    def T(self) -> Tensor:
        """The transpose of a 2-D tensor (reversed dims in general)."""
        return self.permute(tuple(reversed(range(self.ndim))))

    def unsqueeze(self, dim: int) -> Tensor:
        d = norm_dim(dim, self.ndim + 1)
        return Tensor(self.elements, (*self.shape[:d], 1, *self.shape[d:]), self.system)

    def squeeze(self, dim: int | None = None) -> Tensor:
        """Drop size-1 dims (only ``dim``, if given and of size 1), as torch."""
        if dim is None:
            return Tensor(self.elements, tuple(n for n in self.shape if n != 1), self.system)
        d = norm_dim(dim, self.ndim)
        if not self.shape or self.shape[d] != 1:
            return self
        return Tensor(self.elements, self.shape[:d] + self.shape[d + 1:], self.system)

    def expand(self, *shape: Any) -> Tensor:
        """Broadcast to ``shape`` by repeating Values (-1 keeps a size), like torch's expand."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        pad = len(shape) - self.ndim
        if pad < 0:
            raise ValueError(f"expand: {shape} has fewer dims than {self.shape}")
        shape = tuple(self.shape[d - pad] if n == -1 else n for d, n in enumerate(shape))
        return self._rearranged(broadcast_map(self.shape, shape), shape)

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        return self.expand(tuple(shape))

    def __getitem__(self, key: Any) -> Tensor:
        """Basic indexing with ints and slices (an int drops its dim), as in torch."""
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > self.ndim:
            raise IndexError(f"too many indices ({len(key)}) for a tensor of {self.ndim} dim(s)")
        picks: list[range | list[int]] = []
        shape: list[int] = []
        for d, n in enumerate(self.shape):
            k = key[d] if d < len(key) else slice(None)
            if isinstance(k, slice):
                if k.step is not None and k.step <= 0:
                    raise ValueError("slice step must be positive (torch has no negative steps)")
                r = range(*k.indices(n))
                picks.append(r)
                shape.append(len(r))
            elif isinstance(k, int) and not isinstance(k, bool):
                if not -n <= k < n:
                    raise IndexError(f"index {k} is out of bounds for dim {d} of size {n}")
                picks.append([k % n])
            else:
                raise TypeError(f"unsupported index {k!r}: use ints and slices (or gather)")
        strides = row_major_strides(self.shape)
        order = (sum(i * s for i, s in zip(idx, strides)) for idx in itertools.product(*picks))
        return self._rearranged(order, shape)

    def gather(self, dim: int, index: Any) -> Tensor:
        """torch.gather: ``out[i][j][k] = self[index[i][j][k]][j][k]`` for ``dim == 0``, and so on.

        ``index`` (nested ints or an integer-valued Tensor) has the same number of dims as self and
        is no larger in any other dim. The result reuses self's Values (gradient = scatter_add).
        """
        ishape, flat = index_array(index)
        if len(ishape) != self.ndim:
            raise ValueError(f"gather: index has {len(ishape)} dims, the tensor {self.ndim}")
        d = norm_dim(dim, self.ndim)
        if any(ishape[k] > self.shape[k] for k in range(self.ndim) if k != d):
            raise ValueError(f"gather: index shape {ishape} exceeds {self.shape} outside dim {d}")
        size = self.shape[d] if self.shape else 1
        strides = row_major_strides(self.shape)
        order = []
        for idx, target in zip(row_major_positions(ishape), flat):
            if not 0 <= target < size:
                raise IndexError(f"gather: index {target} is out of bounds for dim {d} of size {size}")
            src = list(idx)
            if src:
                src[d] = target
            order.append(sum(i * s for i, s in zip(src, strides)))
        return self._rearranged(order, ishape)

    # --- reductions ---------------------------------------------------------------------------------
    def _reduce(self, dim: Dims, keepdim: bool, fn: Callable[[list[Value]], Value]) -> Tensor:
        dims = norm_dims(dim, self.ndim)
        kept, groups = reduction_groups(self.shape, dims)
        shape = kept if keepdim else tuple(n for d, n in enumerate(self.shape) if d not in dims)
        els = self.elements
        return Tensor([fn([els[i] for i in g]) for g in groups], shape, self.system)

    def sum(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        return self._reduce(dim, keepdim, lambda vs: sum_of(vs, self.system))

    def mean(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """Sum, then divide by the count (torch's order); the mean of nothing is NaN."""
        return self._reduce(dim, keepdim, lambda vs: sum_of(vs, self.system) / len(vs))

    def amax(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """The maximum; ties share the gradient evenly (torch's convention, see the module doc)."""
        return self._reduce(dim, keepdim, lambda vs: extreme_of(vs, max))

    def amin(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """The minimum; ties share the gradient evenly (torch's convention, see the module doc)."""
        return self._reduce(dim, keepdim, lambda vs: extreme_of(vs, min))

    def logsumexp(self, dim: Dims, keepdim: bool = False) -> Tensor:
        """``max + log Σ exp(x - max)`` with the max a constant (0 if it is ±inf), as torch."""
        return self._reduce(dim, keepdim, logsumexp_of)

    # --- along one dim ------------------------------------------------------------------------------
    def _along(self, dim: int, fn: Callable[[list[Value]], list[Value]]) -> Tensor:
        """Apply ``fn`` to every lane along ``dim`` and put the results back in place."""
        _, lanes = reduction_groups(self.shape, (norm_dim(dim, self.ndim),) if self.ndim else ())
        out: list[Value] = list(self.elements)
        for lane in lanes:
            for i, v in zip(lane, fn([self.elements[i] for i in lane])):
                out[i] = v
        return Tensor(out, self.shape, self.system)

    def softmax(self, dim: int) -> Tensor:
        """``exp(x - max) / Σ exp(x - max)`` along ``dim``, the max a constant shift."""
        return self._along(dim, softmax_of)

    def log_softmax(self, dim: int) -> Tensor:
        """``(x - max) - log Σ exp(x - max)`` along ``dim``, the max a constant shift (torch's order)."""
        return self._along(dim, log_softmax_of)


# --- scalar building blocks (all engine ops) ----------------------------------------------------------
#
# The functions a reduction or a lane op applies to one group of Values. They are public and looked up
# by name when called, so a variant of refimpl (another summation order, a softmax without its shift)
# is one of them replaced for a while.

def constant(x: Any, system: Any) -> Value:
    """A number inside a formula: a Value of ``system`` that needs no gradient."""
    return Value(x, False, system=system)


def sum_of(values: list[Value], system: Any) -> Value:
    """Left-to-right sum; the sum of nothing is the constant 0."""
    if not values:
        return constant(system.zero, system)
    total = values[0]
    for v in values[1:]:
        total = total + v
    return reduced(total, values)


def dot_of(xs: list[Value], ys: list[Value], system: Any) -> Value:
    """``Σ xᵢ·yᵢ``, summed left to right (a row times a column of :func:`matmul`); 0 for none."""
    if not xs:
        return constant(system.zero, system)
    terms = [x * y for x, y in zip(xs, ys)]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return reduced(total, terms, list(zip(xs, ys)))


def reduced(total: Value, terms: list[Value], factors: list[tuple[Value, Value]] | None = None) -> Value:
    """``total``, the sum of ``terms`` (the products of ``factors``, for a dot product), as the number
    system reduces it. How a reduction rounds is the system's business: a mixed-precision system
    (:class:`refimpl.numbers.MixedNS`) accumulates in a wider format than it stores, and the suite's
    error bounds widen the total's bound to one that holds in every order (torch's kernels choose
    their own). A system with a ``reduce`` gives the total's value; the graph, and so every gradient,
    is the chain of additions either way."""
    reduce = getattr(total.ns, "reduce", None)
    if reduce is not None and len(terms) > 1:
        pairs = None if factors is None else [(x.data, y.data) for x, y in factors]
        total.data = reduce(total.data, [t.data for t in terms], pairs)
    return total


def extreme_of(values: list[Value], pick: Callable[..., Any]) -> Value:
    """max or min of ``values``; k tied extrema each get gradient 1/k (torch's amax/amin)."""
    if not values:
        raise ValueError("amax/amin of an empty dim is undefined (torch raises too)")
    for v in values:
        if v.data != v.data:  # NaN propagates
            return v
    best = pick(v.data for v in values)
    tied = [v for v in values if v.data == best]
    if len(tied) == 1 or math.isinf(best):
        return tied[0]
    ns = tied[0].ns
    const = constant(best, ns)
    spread = sum_of([const - v for v in tied], ns)  # each term exactly 0; ∂/∂v = -1
    return const - spread * ns.div(ns.one, ns.convert(len(tied)))


def max_shift(values: list[Value]) -> Value:
    """The lane's max as a constant: a shift the result does not depend on."""
    ns = values[0].ns
    return constant(max(v.data for v in values), ns)


def softmax_of(lane: list[Value]) -> list[Value]:
    """``exp(x - max) / Σ exp(x - max)`` over one lane (:meth:`Tensor.softmax`)."""
    if not lane:
        return []
    shift = max_shift(lane)
    exps = [(x - shift).exp() for x in lane]
    total = sum_of(exps, shift.ns)
    return [e / total for e in exps]


def log_softmax_of(lane: list[Value]) -> list[Value]:
    """``(x - max) - log Σ exp(x - max)`` over one lane, in torch's order (:meth:`Tensor.log_softmax`)."""
    if not lane:
        return []
    shift = max_shift(lane)
    shifted = [x - shift for x in lane]
    log_total = sum_of([s.exp() for s in shifted], shift.ns).log()
    return [s - log_total for s in shifted]


def logsumexp_of(values: list[Value]) -> Value:
    """``max + log Σ exp(x - max)``, the max a constant (0 if it is ±inf); -inf for no values."""
    ns = values[0].ns if values else FLOAT64
    if not values:
        return constant(-ns.inf, ns)
    shift = max_shift(values)
    if math.isinf(shift.data):
        shift = constant(ns.zero, ns)
    return sum_of([(x - shift).exp() for x in values], ns).log() + shift


# --- module functions -------------------------------------------------------------------------------

def tensor(data: Any, system: Any = FLOAT64, requires_grad: bool = True) -> Tensor:
    """A tensor of new leaves from nested lists of numbers (a bare number gives a 0-d tensor)."""
    shape, flat = _flatten(data)
    return Tensor.from_flat(flat, shape, system, requires_grad)


def as_tensor(data: Any, system: Any = FLOAT64) -> Tensor:
    """``data`` itself if it is a Tensor, else constants (no grad) made from it."""
    return data if isinstance(data, Tensor) else tensor(data, system, requires_grad=False)


def zip_map(fn: Callable[..., Value], *operands: Any) -> Tensor:
    """``fn`` applied position by position to the broadcast operands (numbers are constants).

    ``fn`` takes one Value per operand and builds its result with engine ops, so a composite
    elementwise function (a loss with a branch per element, say) is differentiable like any op.
    """
    system = next(t.system for t in operands if isinstance(t, Tensor))
    tensors = [t if isinstance(t, Tensor) else Tensor([constant(t, system)], (), system)
               for t in operands]
    shape = broadcast_shapes(*(t.shape for t in tensors))
    columns = [[t.elements[i] for i in broadcast_map(t.shape, shape)] for t in tensors]
    return Tensor([fn(*args) for args in zip(*columns)], shape, system)


def elementwise(spec: OpSpec, *operands: Any, **attrs: Any) -> Tensor:
    """The op ``spec`` of the table, position by position on the broadcast operands."""
    return zip_map(lambda *args: apply_op(spec, *args, **attrs), *operands)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """torch.matmul: 1-D·1-D is a dot product; a 1-D operand gains (then loses) a dim of size 1;
    more than 2 dims is a batch of matrix products with broadcast batch dims."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: both arguments need at least 1 dim")
    a2 = a.unsqueeze(0) if a.ndim == 1 else a
    b2 = b.unsqueeze(1) if b.ndim == 1 else b
    (n, k), (k2, p) = a2.shape[-2:], b2.shape[-2:]
    if k != k2:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not fit ({k} != {k2})")
    batch = broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    A = a2.expand((*batch, n, k)).elements
    B = b2.expand((*batch, k, p)).elements
    out = []
    for base in range(_numel(batch)):
        ao, bo = base * n * k, base * k * p
        for i in range(n):
            row = A[ao + i * k: ao + (i + 1) * k]
            out.extend(dot_of(row, B[bo + j: bo + k * p: p], a.system) for j in range(p))
    shape = (*batch, n, p)
    if a.ndim == 1:
        shape = shape[:-2] + shape[-1:]
    if b.ndim == 1:
        shape = shape[:-1]
    return Tensor(out, shape, a.system)


def _cotangents(output: Tensor, cotangent: Any, create_graph: bool) -> list[Any]:
    """Per-element seeds for backprop: Values only when building a graph, else plain numbers."""
    if cotangent is None:
        if output.numel() != 1:
            raise RuntimeError(f"a cotangent is needed for an output of shape {output.shape} "
                               "(only one-element outputs default to 1)")
        return [None]
    ct = as_tensor(cotangent, output.system)
    if ct.shape != output.shape:
        raise ValueError(f"cotangent shape {ct.shape} does not match the output's {output.shape}")
    return [v if create_graph else v.data for v in ct.elements]


def grad(output: Tensor, inputs: Tensor | Sequence[Tensor], cotangent: Any = None, *,
         create_graph: bool = False, allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """d(Σ cotangent·output)/d(inputs), like ``torch.autograd.grad``; ``.grad`` is untouched.

    Inputs may be inner tensors. An input element the output does not reach gets gradient 0; an
    input none of whose elements is reached is an error unless ``allow_unused`` (then ``None``).
    """
    ins = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    for t in ins:
        if not t.requires_grad:
            raise ValueError(f"grad: an input of shape {t.shape} does not require grad")
    inner = [v for t in ins for v in t.elements if not v.is_leaf and not v.retains_grad]
    for v in inner:  # backprop drops inner nodes' gradients unless they are retained
        v.retains_grad = True
    try:
        grads = backprop(output.elements, _cotangents(output, cotangent, create_graph),
                         create_graph=create_graph)
    finally:
        for v in inner:
            v.retains_grad = False
    result: list[Tensor | None] = []
    for t in ins:
        found = [grads.get(v) for v in t.elements]
        if all(g is None for g in found):
            if not allow_unused:
                raise ValueError(f"grad: an input of shape {t.shape} is not reachable from the output "
                                 "(pass allow_unused=True to get None)")
            result.append(None)
            continue
        zero = t.system.zero
        result.append(Tensor([g if isinstance(g, Value) else constant(zero if g is None else g, t.system)
                              for g in found], t.shape, t.system))
    return tuple(result)


# --- one method per op of the table, so a new op needs no tensor code ---------------------------------

def unary_method(spec: OpSpec) -> Callable[..., Tensor]:
    """The :class:`Tensor` method of a unary op of the table (``x.tanh()``, ``x.clamp(min=0.0)``)."""

    def method(self: Tensor, **attrs: Any) -> Tensor:
        return elementwise(spec, self, **attrs)

    method.__name__ = spec.name
    method.__doc__ = f"Elementwise {spec.name} — refimpl.ops.OPS[{spec.name!r}] (torch: {spec.torch})."
    return method


def binary_method(spec: OpSpec) -> Callable[..., Tensor]:
    """The :class:`Tensor` method of a binary op of the table (``x.maximum(y)``), with broadcasting."""

    def method(self: Tensor, other: Any) -> Tensor:
        return elementwise(spec, self, other)

    method.__name__ = spec.name
    method.__doc__ = (f"Elementwise {spec.name} with broadcasting — refimpl.ops.OPS[{spec.name!r}] "
                      f"(torch: {spec.torch}).")
    return method


for _spec in OPS.values():
    if not hasattr(Tensor, _spec.name):
        setattr(Tensor, _spec.name, (unary_method if _spec.arity == 1 else binary_method)(_spec))
