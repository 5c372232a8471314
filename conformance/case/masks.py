"""Fixed cases where a −∞ mask meets a softmax, judged at every seed wherever masked_fill is.

The mask people write before a softmax is −∞ (``scores.masked_fill(mask, float("-inf"))``, causal
attention); −10⁹ is the workaround for code that breaks on it. Code breaks on it in ways a finite
fill never shows: masking by arithmetic, ``x·keep + fill·mask``, is right for −10⁹ and NaN at every
kept position for −∞ (0·∞); a softmax or logsumexp that subtracts a max, or divides by a sum, over a
row of −∞ meets −∞ − (−∞). So the cases here fill with −∞ — alone (for an implementation of the
layer op only), then followed by ``softmax`` and ``logsumexp`` along the masked rows — with a
non-uniform cotangent. Every row keeps at least one entry (a row all −∞ has a NaN softmax and a −∞
logsumexp), so every gradient is finite, and so is every output but the fill's own −∞ positions
(``log_softmax`` is not here: it is −∞ at every masked position, outside the working range). The
filled positions are a mask, not an overflow (:attr:`conformance.case.tensor_ops.TensorOp.fills`,
read by ``conformance/verdict/robustness.py``; the truth's finite differences leave them out, as
constants): a wrong answer is charged. The numbers are exact in every dtype of the table.
"""

from __future__ import annotations

import math

from conformance.case.graph import GraphCase, Node, Tensor
from conformance.case.strategies import with_id

#: (2, 4) scores; row 0 masks two of four, row 1 all but one — the kept entry of row 1 is not its
#: largest score, so a max taken before masking is the wrong one
SCORES = Tensor((2, 4), (0.5, -1.25, 2.0, 0.75, 2.5, 1.5, 0.25, -2.0))
MASK = [[False, True, False, True], [True, True, False, True]]
COTANGENT = (1.5, -0.75, 0.5, 2.0, -1.25, 0.625, 1.0, -0.5)

#: the reductions a −∞ mask meets, with their attributes and the output shape of a (2, 4) input
AFTER: tuple[tuple[str, dict[str, object], tuple[int, ...]], ...] = (
    ("softmax", {"dim": -1}, (2, 4)),
    ("logsumexp", {"dim": -1, "keepdim": False}, (2,)),
)


def masked_cases(dtype: str) -> tuple[GraphCase, ...]:
    """masked_fill(x, MASK, −∞) alone (for an implementation of the layer op only: its output's −∞
    are the mask's too), then followed by each reduction of :data:`AFTER`, in ``dtype``."""
    fill = Node("n0", "masked_fill", ("x",), {"mask": MASK, "value": -math.inf})
    alone = with_id(GraphCase({"x": SCORES}, (fill,), "n0", Tensor(SCORES.shape, COTANGENT), dtype))
    return (alone, *(with_id(GraphCase({"x": SCORES}, (fill, Node("n1", op, ("n0",), attrs)), "n1",
                                       Tensor(shape, COTANGENT[:math.prod(shape)]), dtype))
                     for op, attrs, shape in AFTER))


#: per op, the composed fixed cases its suites open with (besides its own geometry's:
#: :data:`conformance.case.geometry.FIXED`)
COMPOSED = {"masked_fill": masked_cases}


def fixed_cases(op: str, dtype: str = "float64") -> tuple[GraphCase, ...]:
    """The composed fixed cases of ``op`` in ``dtype`` (none for most ops)."""
    make = COMPOSED.get(op)
    return make(dtype) if make else ()
