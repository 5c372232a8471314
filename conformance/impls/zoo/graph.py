"""Graph mechanics: the chain rule applied in the wrong order, the wrong number of times, or to the
wrong thing — in the engine (:mod:`.engine`) or in the training loop."""

from __future__ import annotations

from typing import Any

from conformance.impls.zoo.base import Mutant
from conformance.impls.zoo.engine import installed
from conformance.oracle.netrun import RefTrainer
from refimpl.tensor import Tensor as RTensor


class GradientsNotZeroed(RefTrainer):
    """zero_grad forgotten: each step's gradient adds to the previous steps'."""

    def zero_grad(self, opt: Any) -> None:
        pass  # BUG: opt.zero_grad() missing


class BackwardTwice(RefTrainer):
    """loss.backward() called twice in a step (say once more to log a gradient norm)."""

    def backward(self, loss: RTensor) -> None:
        super().backward(loss)
        super().backward(loss)  # BUG: the graph is kept, so the gradient accumulates twice


MUTANTS = [
    Mutant("fan-out-overwrite", "graph", "grad = … where the chain rule needs grad += … (fan-out)",
           "correct on every chain and tree: only a value used twice shows it",
           installed("overwrite")),
    Mutant("breadth-first-order", "graph",
           "backprop visits nodes in breadth-first order from the output, not reverse topological order",
           "a queue looks like a natural traversal; it visits a node before all of its consumers",
           installed("breadth-first")),
    Mutant("upstream-gradient-dropped", "graph",
           "parent.grad += local derivative, without × the upstream gradient",
           "the micrograd-style slip (self.grad += other.data); right whenever the upstream gradient is 1",
           installed("upstream-dropped")),
    Mutant("cotangent-ignored", "graph", "backward(cotangent) seeds ones whatever cotangent it is given",
           "right for a scalar loss with the default seed 1, the only case many people test",
           installed("seed-ignored")),
    Mutant("gradients-not-zeroed", "graph", "optimizer.zero_grad() missing between training steps",
           "the first step is right; the loop is copied without the reset",
           trainer=GradientsNotZeroed),
    Mutant("backward-twice", "graph", "loss.backward() called twice per step: gradients doubled",
           "a second backward (for logging, or a retried step) accumulates into .grad",
           trainer=BackwardTwice),
]
