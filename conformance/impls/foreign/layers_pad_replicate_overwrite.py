"""Numpy layer functions; bug: pad backward ``dx[src] = dout``: an edge element copied k times gets one copy's gradient.

Replicate padding copies each edge element into every padded place beside it (reflect and circular copy elements
too), so its gradient is the sum over all its copies; numpy's fancy assignment writes once per distinct index and
keeps the last (np.add.at is the fix, as for an embedding's repeated rows). Right for constant padding and for
widths of 0; the forward is right.
"""

import numpy as np

BASE = "layers_assignment.py"

_NUMPY_PAD = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad_forward(x, pad, mode="constant", value=None):
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (int(pad[2 * k]), int(pad[2 * k + 1]))
    index = np.arange(x.size).reshape(x.shape)
    if mode == "constant":
        out = np.pad(x, widths, mode="constant", constant_values=0.0 if value is None else value)
        src = np.pad(index, widths, mode="constant", constant_values=-1)
    else:
        out = np.pad(x, widths, mode=_NUMPY_PAD[mode])
        src = np.pad(index, widths, mode=_NUMPY_PAD[mode])
    return out, (x.shape, src)


def pad_backward(dout, cache):
    shape, src = cache
    dx = np.zeros(int(np.prod(shape)))
    copied = src.ravel() >= 0
    dx[src.ravel()[copied]] = dout.ravel()[copied]  # BUG: = keeps the last copy's gradient; np.add.at sums them
    return (dx.reshape(shape),)


LAYERS = {"pad": (pad_forward, pad_backward)}
