"""Run verify's suites on public course-assignment layer functions (CS231n's ``layers.py`` and
``rnn_layers.py``), unmodified, through the layer-function adapter, at several seeds — the layer
counterpart of ``tools/public_engines.py``.

    PYTHONPATH=. python tools/public_layers.py --seeds 0-9 --json out.json DIR [DIR ...]

Each ``DIR`` (named ``owner__name``) holds a repository's ``layers.py`` (assignment 2) and
``rnn_layers.py`` (assignment 3), copied there untouched. :func:`adapter_for` imports both by path
and maps the suite's layer ops (torch's op names, inputs in torch's order, torch's keywords;
docs/layers.md) onto the assignment's signatures. The glue only reshapes, transposes, permutes and
loops; every derivative comes from the assignment's own backward functions:

* ``conv2d`` → ``conv_forward_naive(x, w, b, {'stride', 'pad'})`` / ``conv_backward_naive``: one
  scalar stride and pad, no dilation, no groups — those cases are not drawn (``without=``) and the
  glue refuses them (``NotImplementedError``) rather than fake them;
* ``max_pool2d`` → ``max_pool_forward_naive(x, {'pool_height', 'pool_width', 'stride'})`` /
  ``max_pool_backward_naive``: no padding, dilation or ceil_mode, one scalar stride (the kernel may
  be rectangular);
* ``batch_norm`` (training, biased variance) → ``batchnorm_forward`` / ``batchnorm_backward`` (or
  ``batchnorm_backward_alt`` with ``--alt``) for (N, C); ``spatial_batchnorm_forward`` /
  ``spatial_batchnorm_backward`` for (N, C, *) seen as (N, C, prod(*), 1);
* ``layer_norm`` → ``layernorm_forward`` / ``layernorm_backward`` on x reshaped to
  (-1, prod(normalized_shape));
* ``group_norm`` → ``spatial_groupnorm_forward(x, gamma, beta, G, {'eps'})`` /
  ``spatial_groupnorm_backward`` on (N, C, *) seen as 4-D, gamma and beta of shape (1, C, 1, 1) as the
  assignment's notebook passes them;
* ``dropout`` (a given mask, torch's drop probability p) → ``dropout_forward(x, {'p': 1 - p,
  'mode': 'train'})`` (the assignment's p is the keep probability) with ``np.random.rand`` answering,
  for that one call, the case's mask (0.0 where kept, 1.0 where dropped) / ``dropout_backward``; an
  implementation that asks ``rand`` for another shape cannot take a given mask and is refused;
* ``embedding`` (weight, ``input`` indices) → ``word_embedding_forward(x, W)`` /
  ``word_embedding_backward`` with the indices as (N, T);
* ``lstm`` over T steps (torch's gates i, f, g, o; ``w_ih`` (4H, I)) → the assignment's
  ``lstm_step_forward`` / ``lstm_step_backward`` (gates i, f, o, g; ``Wx`` (I, 4H)) composed over the
  steps here: the weights' gate blocks permuted and transposed, ``b = b_ih + b_hh`` (each bias gets
  ``db``), the carries ``dh`` and ``dc`` passed back step by step. (The assignment's ``lstm_forward``
  starts from c0 = 0 and its ``lstm_backward`` gives no dc0, so the suite's op cannot be given to them.)
* networks: ``affine_forward`` / ``affine_backward`` (w of shape (in, out)), ``relu``, and
  ``softmax_loss`` as cross entropy (mean).

Per repository and seed the driver does what ``tools/public_engines.py`` does: every suite of
verify for the adapter's capabilities (profile ci unless ``--profile``, suite ``i`` seeded
``seed + i``, no shrinking) through :func:`conformance.commands.mutants.hunt`, then each suite once
more to its end to collect every case not judged ``pass``. ``--write-impl`` writes ``impl.py`` into
each ``DIR`` (``adapter = adapter_for(its folder)``) for ``conformance verify --impl DIR/impl.py``.
Nothing here changes the suite, and none of the public code is in the repository.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from conformance import kinds
from conformance.commands.mutants import CELL, Plan, hunt
from conformance.driver import PROFILES
from conformance.impls.adapters.layer_functions import LayerFunctions, layer_functions
from tools.public_engines import case_summary, compact, every_verdict, extreme_reasons, parse_seeds

#: the knobs of each layer op the assignment's functions do not take (the cases with them are not drawn)
#: the max pool's docstring from 2021 on: "No padding is necessary here, eg you can assume:
#: (H - pool_height) % stride == 0" — its contract, so ``remainder`` is declared for those files
DIVIDES = "(H - pool_height) % stride == 0"
WITHOUT = {"conv2d": ("groups", "dilation", "per_axis"),
           "max_pool2d": ("padding", "dilation", "ceil_mode", "per_axis")}


def load_module(path: Path, name: str) -> ModuleType:
    """Import a ``.py`` file by path under a name of its own (two repositories' ``layers.py`` apart)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _refuse(op: str, what: str) -> None:
    raise NotImplementedError(f"{op}: the assignment's function has {what} (not faked by the glue)")


def conv2d_ops(L: ModuleType) -> dict[str, Any]:
    def forward(x, w, b, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        if groups != 1:
            _refuse("conv2d", "no groups")
        if tuple(dilation) != (1, 1):
            _refuse("conv2d", "no dilation")
        if stride[0] != stride[1] or padding[0] != padding[1]:
            _refuse("conv2d", "one scalar stride and one scalar pad")
        return L.conv_forward_naive(x, w, b, {"stride": int(stride[0]), "pad": int(padding[0])})

    def backward(dout, cache):
        dx, dw, db = L.conv_backward_naive(dout, cache)
        return dx, dw, db

    return {"conv2d": (forward, backward)}


def max_pool2d_ops(L: ModuleType) -> dict[str, Any]:
    def forward(x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
        if tuple(padding) != (0, 0):
            _refuse("max_pool2d", "no padding")
        if tuple(dilation) != (1, 1):
            _refuse("max_pool2d", "no dilation")
        if ceil_mode:
            _refuse("max_pool2d", "no ceil_mode")
        if stride[0] != stride[1]:
            _refuse("max_pool2d", "one scalar stride")
        param = {"pool_height": int(kernel_size[0]), "pool_width": int(kernel_size[1]), "stride": int(stride[0])}
        return L.max_pool_forward_naive(x, param)

    def backward(dout, cache):
        return (L.max_pool_backward_naive(dout, cache),)

    return {"max_pool2d": (forward, backward)}


def norm_ops(L: ModuleType, alt: bool = False) -> dict[str, Any]:
    flat_backward = L.batchnorm_backward_alt if alt else L.batchnorm_backward

    def bn_forward(x, weight, bias, eps=1e-5):
        param = {"mode": "train", "eps": eps}
        if x.ndim == 2:
            out, cache = L.batchnorm_forward(x, weight, bias, param)
            return out, (x.shape, False, cache)
        out, cache = L.spatial_batchnorm_forward(x.reshape(x.shape[0], x.shape[1], -1, 1), weight, bias, param)
        return out.reshape(x.shape), (x.shape, True, cache)

    def bn_backward(dout, cache):
        shape, spatial, inner = cache
        if not spatial:
            return flat_backward(dout, inner)
        dx, dgamma, dbeta = L.spatial_batchnorm_backward(dout.reshape(shape[0], shape[1], -1, 1), inner)
        return dx.reshape(shape), np.reshape(dgamma, shape[1]), np.reshape(dbeta, shape[1])

    def ln_forward(x, weight, bias, normalized_shape, eps=1e-5):
        d = int(np.prod(normalized_shape))
        out, cache = L.layernorm_forward(x.reshape(-1, d), weight.reshape(d), bias.reshape(d), {"eps": eps})
        return out.reshape(x.shape), (x.shape, weight.shape, d, cache)

    def ln_backward(dout, cache):
        shape, wshape, d, inner = cache
        dx, dgamma, dbeta = L.layernorm_backward(dout.reshape(-1, d), inner)
        return dx.reshape(shape), np.reshape(dgamma, wshape), np.reshape(dbeta, wshape)

    def four_d(shape):
        n, c = shape[:2]
        if len(shape) == 4:
            return tuple(shape)
        if len(shape) == 2:
            return (n, c, 1, 1)
        return (n, c, int(np.prod(shape[2:-1], dtype=int)), shape[-1]) if len(shape) > 3 else (n, c, shape[2], 1)

    def gn_forward(x, weight, bias, num_groups, eps=1e-5):
        c = x.shape[1]
        out, cache = L.spatial_groupnorm_forward(x.reshape(four_d(x.shape)), weight.reshape(1, c, 1, 1),
                                                 bias.reshape(1, c, 1, 1), int(num_groups), {"eps": eps})
        return out.reshape(x.shape), (x.shape, cache)

    def gn_backward(dout, cache):
        shape, inner = cache
        dx, dgamma, dbeta = L.spatial_groupnorm_backward(dout.reshape(four_d(shape)), inner)
        return dx.reshape(shape), np.reshape(dgamma, shape[1]), np.reshape(dbeta, shape[1])

    return {"batch_norm": (bn_forward, bn_backward), "layer_norm": (ln_forward, ln_backward),
            "group_norm": (gn_forward, gn_backward)}


def dropout_ops(L: ModuleType) -> dict[str, Any]:
    def forward(x, mask, p):
        draws = np.where(np.asarray(mask, dtype=bool), 0.0, 1.0)  # kept: 0.0 < keep; dropped: 1.0 ≥ keep
        real = np.random.rand

        def rand(*shape):
            if tuple(shape) != x.shape:
                raise NotImplementedError(f"dropout: the assignment draws its mask of shape {tuple(shape)}, not x's "
                                          f"{x.shape}: it cannot be given the case's mask")
            return draws.copy()

        np.random.rand = rand
        try:
            return L.dropout_forward(x, {"p": 1 - p, "mode": "train"})
        finally:
            np.random.rand = real

    def backward(dout, cache):
        return (L.dropout_backward(dout, cache),)

    return {"dropout": (forward, backward)}


def embedding_ops(R: ModuleType) -> dict[str, Any]:
    def forward(weight, input):
        index = np.asarray(input, dtype=np.int64)
        as_2d = index if index.ndim == 2 else index.reshape(1, -1)
        out, cache = R.word_embedding_forward(as_2d, weight)
        return np.reshape(out, (*index.shape, weight.shape[1])), (np.shape(out), cache)

    def backward(dout, cache):
        shape, inner = cache
        return (R.word_embedding_backward(dout.reshape(shape), inner),)

    return {"embedding": (forward, backward)}


def gate_order(hidden: int) -> np.ndarray:
    """Rows of torch's (i, f, g, o) weights in CS231n's order (i, f, o, g)."""
    h = hidden
    return np.concatenate([np.arange(0, 2 * h), np.arange(3 * h, 4 * h), np.arange(2 * h, 3 * h)])


def lstm_ops(R: ModuleType) -> dict[str, Any]:
    def forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        order = gate_order(h0.shape[1])
        wx, wh, b = w_ih[order].T, w_hh[order].T, (b_ih + b_hh)[order]
        h, c, hs, caches = h0, c0, [], []
        for t in range(x.shape[0]):
            h, c, cache = R.lstm_step_forward(x[t], h, c, wx, wh, b)
            hs.append(h)
            caches.append(cache)
        return np.stack(hs), (order, x.shape, w_ih.shape, w_hh.shape, caches)

    def backward(dout, cache):
        order, xshape, ishape, hshape, caches = cache
        dx = np.zeros(xshape)
        dh = np.zeros(dout.shape[1:])
        dc = np.zeros(dout.shape[1:])
        dwx, dwh, db = 0.0, 0.0, 0.0
        for t in range(xshape[0] - 1, -1, -1):
            dx[t], dh, dc, dwx_t, dwh_t, db_t = R.lstm_step_backward(dout[t] + dh, dc, caches[t])
            dwx, dwh, db = dwx + dwx_t, dwh + dwh_t, db + db_t
        dw_ih, dw_hh, dbias = np.zeros(ishape), np.zeros(hshape), np.zeros(ishape[0])
        dw_ih[order], dw_hh[order], dbias[order] = np.transpose(dwx), np.transpose(dwh), db
        return dx, dh, dc, dw_ih, dw_hh, dbias, dbias.copy()

    return {"lstm": (forward, backward)}


def adapter_for(folder: str | Path, *, name: str | None = None, alt: bool = False,
                only: tuple[str, ...] = ()) -> LayerFunctions:
    """The layer-function adapter of one repository's ``layers.py`` and ``rnn_layers.py`` (module doc);
    ``only``: these layer ops alone (default every one mapped)."""
    folder = Path(folder)
    name = name or folder.name
    key = name.replace("-", "_").replace(".", "_")
    L = load_module(folder / "layers.py", f"_public_layers_{key}")
    ops: dict[str, Any] = {**conv2d_ops(L), **max_pool2d_ops(L), **norm_ops(L, alt), **dropout_ops(L)}
    if (folder / "rnn_layers.py").exists():
        R = load_module(folder / "rnn_layers.py", f"_public_rnn_layers_{key}")
        ops |= embedding_ops(R) | lstm_ops(R)
    if only:
        ops = {k: v for k, v in ops.items() if k in only}
    without = {k: v for k, v in WITHOUT.items() if k in ops}
    if "max_pool2d" in without and DIVIDES in (folder / "layers.py").read_text():
        without["max_pool2d"] += ("remainder",)  # the assignment's own contract says so (2021 on)
    return layer_functions(name=name + ("-alt" if alt else ""), ops=ops, version=_commit(folder),
                           affine=(L.affine_forward, L.affine_backward),
                           activations={"relu": (L.relu_forward, L.relu_backward)},
                           losses={"cross_entropy": L.softmax_loss}, without=without)


def _commit(folder: Path) -> str:
    stamp = folder / "COMMIT"
    return stamp.read_text().strip() if stamp.exists() else "unknown"


def _graph(v: Any) -> bool:
    return hasattr(v.case, "leaves")


def summary(v: Any) -> dict[str, Any]:
    """:func:`case_summary` of a graph case; a network case's verdict, reason and JSON."""
    if _graph(v):
        return case_summary(v)
    return dict(id=v.case.id, verdict=str(v.verdict), reason=v.reason, json=kinds.of(v.case).dumps(v.case))


def short(v: Any) -> dict[str, Any]:
    """:func:`compact` of a graph case; a network case's verdict and reason."""
    return compact(v) if _graph(v) else dict(verdict=str(v.verdict), network=v.case.id, reason=v.reason[:240])


def run_impl(impl: Any, path: str, seeds: list[int], examples: int, plans: dict[Any, Plan]) -> dict[str, Any]:
    """Per seed: the cell verify would give, the failing suites, every case not judged ``pass``."""
    row: dict[str, Any] = dict(engine=impl.name, path=path, ops=sorted(impl.capabilities.ops), seeds={})
    for seed in seeds:
        t0 = time.perf_counter()
        key = (impl.capabilities, examples, seed)
        if key not in plans:
            plans[key] = Plan(examples, seed, impl.capabilities)
        plan = plans[key]
        out = hunt(impl, plan, shrink=False, expect="conforms", every_suite=True)
        every = every_verdict(impl, plan)
        suites = []
        for suite_name, first in out.failures:
            bad = [v for v in every[suite_name] if not v.conforms]
            ordinary = [v for v in bad if not (_graph(v) and extreme_reasons(v))]
            suites.append(dict(suite=suite_name, first=summary(first), failing=len(bad),
                               ordinary=len(ordinary), extreme_only=not ordinary))
        row["seeds"][seed] = dict(cell=CELL[out.status], cases=out.cases, failures=suites,
                                  every={n: [short(v) for v in vs] for n, vs in every.items() if vs},
                                  seconds=round(time.perf_counter() - t0, 1))
        listed = ", ".join(f"{s['suite']} ({s['failing']})" for s in suites) or "-"
        print(f"{impl.name:<40} seed {seed}: {CELL[out.status]:<16} {out.cases:>4} cases "
              f"{time.perf_counter() - t0:6.1f}s  failing suites: {listed}", flush=True)
    return row


IMPL = """# written by tools/public_layers.py --write-impl; run from the suite's checkout with PYTHONPATH=.
from pathlib import Path

from tools.public_layers import adapter_for

adapter = adapter_for(Path(__file__).parent)
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dirs", nargs="+", metavar="DIR", help="folders owner__name with layers.py, rnn_layers.py")
    p.add_argument("--seeds", default="0-9", help="seeds, e.g. 0-9 (default)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="ci")
    p.add_argument("--alt", action="store_true", help="batchnorm_backward_alt for (N, C) batch norm")
    p.add_argument("--only", default="", help="comma-separated layer ops (default: every one mapped)")
    p.add_argument("--json", default=None, help="write every row here")
    p.add_argument("--write-impl", action="store_true", help="write DIR/impl.py for conformance verify --impl")
    args = p.parse_args(argv)
    seeds, examples = parse_seeds(args.seeds), PROFILES[args.profile]
    only = tuple(o for o in args.only.split(",") if o)
    plans: dict[Any, Plan] = {}
    rows, t0 = [], time.perf_counter()
    for folder in args.dirs:
        if args.write_impl:
            (Path(folder) / "impl.py").write_text(IMPL)
            continue
        impl = adapter_for(folder, alt=args.alt, only=only)
        rows.append(run_impl(impl, folder, seeds, examples, plans))
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    print(f"{time.perf_counter() - t0:.0f}s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
