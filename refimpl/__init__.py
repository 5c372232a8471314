"""refimpl — a reference backpropagation implementation in pure Python (standard library only).

Written to be read and trusted: every op is declared once in :mod:`refimpl.ops` with its forward
and its local derivative side by side; :mod:`refimpl.engine` applies the chain rule; the number
type is pluggable (:mod:`refimpl.numbers`); :mod:`refimpl.gradcheck` gives a finite-difference
opinion. On top of it: :mod:`refimpl.tensor` (n-d tensors of Values), :mod:`refimpl.nn`,
:mod:`refimpl.losses`, :mod:`refimpl.optim` (torch.optim's algorithms) and :mod:`refimpl.textbook`
(an independent layer-equation derivation for MLPs). It never imports torch or numpy.
"""

from . import losses, nn, optim, textbook
from .engine import Value, apply, backprop, grad, topological_order, zero_grad
from .numbers import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, FORMATS, FRACTION, mixed_system, mpmath_system, system
from .ops import OPS, OpSpec
from .tensor import Tensor, tensor

__version__ = "0.1.0"

__all__ = ["BFLOAT16", "FLOAT16", "FLOAT32", "FLOAT64", "FORMATS", "FRACTION", "OPS", "OpSpec", "Tensor", "Value",
           "__version__", "apply",
           "backprop", "grad", "losses", "mixed_system", "mpmath_system", "nn", "optim", "system", "tensor", "textbook",
           "topological_order", "zero_grad"]
