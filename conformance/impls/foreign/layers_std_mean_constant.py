"""Numpy layer functions; bug: std backward from var = E[x²] − E[x]², the mean held constant: dout·x/((N − c)·std).

Differentiating the one-pass variance Σx²/(N − c) − N·mean²/(N − c) as if the mean were a constant drops its term,
−mean/((N − c)·std): right only for slices whose mean is 0. (In the two-pass form Σ(x − mean)² the mean's term is
0 anyway: there holding it constant is harmless.) The forward is right.
"""

import numpy as np

BASE = "layers_assignment.py"


def std_forward(x, dim, correction=1, keepdim=False):
    axes = tuple(sorted(int(d) % x.ndim for d in (dim if isinstance(dim, tuple) else (dim,))))
    n = int(np.prod([x.shape[a] for a in axes]))
    mu = x.mean(axis=axes, keepdims=True)
    s = np.sqrt(((x - mu) ** 2).sum(axis=axes, keepdims=True) / (n - correction))
    return (s if keepdim else np.squeeze(s, axis=axes)), (x, s, axes, n, correction, keepdim)


def std_backward(dout, cache):
    x, s, axes, n, correction, keepdim = cache
    if not keepdim:
        dout = np.expand_dims(dout, axes)
    safe = np.where(s == 0, 1.0, s)
    # BUG: d(E[x²] − mean²)/dx with the mean constant is 2x/(N − c); it is 2(x − mean)/(N − c)
    return (np.where(s == 0, 0.0, dout * x / ((n - correction) * safe)),)


LAYERS = {"std": (std_forward, std_backward)}
