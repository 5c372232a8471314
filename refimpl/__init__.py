"""refimpl — a reference backpropagation implementation in pure Python (standard library only).

Written to be read and trusted: every op is declared once in :mod:`refimpl.ops` with its forward
and its local derivative side by side; :mod:`refimpl.engine` applies the chain rule; the number
type is pluggable (:mod:`refimpl.numbers`); :mod:`refimpl.gradcheck` gives a finite-difference
opinion. It never imports torch or numpy.
"""

from .engine import Value, apply, backprop, grad, topological_order, zero_grad
from .numbers import FLOAT32, FLOAT64, FRACTION, mpmath_system, system
from .ops import OPS, OpSpec

__version__ = "0.1.0"

__all__ = ["FLOAT32", "FLOAT64", "FRACTION", "OPS", "OpSpec", "Value", "apply", "backprop", "grad",
           "mpmath_system", "system", "topological_order", "zero_grad", "__version__"]
