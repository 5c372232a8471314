"""How far from torch an answer may be: the error-bound number system (``BoundNS``) the tolerances come
from, and the bound arithmetic of a training run. The runs above evaluate cases in it."""
