"""Running a network case: the training run in refimpl (any number system) and in torch, replays of
an implementation's run, and the truth.

The network kind's counterpart of :mod:`conformance.oracle.run`: everything that executes a case, and
nothing that judges one. Runners: :func:`run_refimpl_network` (refimpl in any number system — float64,
float32 emulation, :class:`~conformance.tolerance.netbounds.NetBoundNS`, mpmath; :class:`RefTrainer` does the
work, one method per piece so that a planted bug overrides one of them) and
:func:`run_torch_network` (``torch.nn.functional.linear`` with the given parameters,
``torch.nn.functional`` activations and losses, ``torch.optim`` with ``foreach=False``).
:func:`replay` and :func:`replay_torch` feed an optimizer with an implementation's own parameters
and gradients, step by step (the anchored entries of :mod:`conformance.verdict.network`).

Run in :class:`~conformance.tolerance.netbounds.NetBoundNS` (:func:`bounds`), a run also records every branch
decision within ``2·tol`` of a kink — an activation input or a loss branch point (relu at 0,
``|d| = beta`` for smooth_l1, softplus's threshold, …), a saturated bce input (the −100 log floor,
torch's backward clamp), an optimizer update that is not linear within its gradient's error, or a
run that leaves the dtype's range — which the judge may take as the explanation of a disagreement.

The truth (:func:`truth`) is **refimpl itself run at 50 digits** (mpmath) — a finite difference
through a training run is not practical — so it shares refimpl's code: it checks *rounding*, not
refimpl's gradients, and when the implementation under test *is* refimpl the agreement with torch
(within ``2·tol``) is the real check.
"""

from __future__ import annotations

from typing import Any

from conformance.case.graph import Tensor
from conformance.case.layerkinds import LAYER_KINDS
from conformance.case.network import (
    CLASS_LOSSES,
    TENSOR_ATTRS,
    Batch,
    NetworkCase,
    NetworkResult,
    StepResult,
    entries,
    initial_params,
    params_before,
)
from conformance.oracle.names import resolve
from conformance.oracle.opcheck import kink_points
from conformance.oracle.run import REFIMPL_SYSTEMS
from conformance.tolerance.bounds import SAFETY, TINY, U32, U64, Bounded
from conformance.tolerance.netbounds import NET_BOUND, NetBoundNS, bounded_step, tiny
from refimpl import OPS, mpmath_system
from refimpl import optim as roptim
from refimpl.conv import max_pool_windows
from refimpl.losses import LOSSES
from refimpl.nn import MLP
from refimpl.numbers import round_to_float32
from refimpl.tensor import Tensor as RTensor
from refimpl.tensor import as_tensor

OVERFLOW = {"float64": 2.0**1020, "float32": 2.0**124}  # within 16x of the largest finite value
BCE_CLAMP = 2e-12  # torch's bce backward divides by max(x·(1-x), 1e-12 as float32): a branch below it


# --- running it in refimpl ----------------------------------------------------------------------------

def _cast(dtype: str) -> Any:
    """Inputs as the dtype holds them (float32 rounds; the case normally holds float32 values already)."""
    return round_to_float32 if dtype == "float32" else float


def _nested(t: Tensor, cast: Any) -> Any:
    vals = [cast(v) for v in t.values]
    if len(t.shape) == 1:
        return vals
    rows, cols = t.shape
    return [vals[r * cols:(r + 1) * cols] for r in range(rows)]


class RefTrainer:
    """A training run of a network case in refimpl, in the number system ``system``.

    Each piece is a method, so a planted bug is a subclass overriding one of them
    (``tests/test_networks_meta.py``). With ``watch=True`` (for ``BoundNS`` runs) it records every
    branch decision that lies within ``2·tol`` of a kink: :attr:`near_kinks`.
    """

    def __init__(self, case: NetworkCase, system: Any = None, *, watch: bool = False) -> None:
        self.case = case
        self.system = system if system is not None else REFIMPL_SYSTEMS[case.dtype]
        self.cast = _cast(case.dtype)
        self.watch = watch
        self.near_kinks: list[tuple[int, str]] = []  # (step, what): branch decisions near a kink
        self.step_number = 0

    # the pieces --------------------------------------------------------------------------------
    def features(self) -> list[dict[str, RTensor | None]]:
        """The feature layers' parameters (refimpl leaves, by torch's names; None: left out)."""
        return [{p: None if t is None else RTensor.from_flat([self.cast(v) for v in t.values], t.shape, self.system)
                 for p, t in f.params.items()} for f in self.case.features]

    def forward_features(self, feats: list[dict[str, RTensor | None]], x: RTensor) -> RTensor:
        """The feature layers, each by its kind's forward (conformance/case/layerkinds.py), then flatten."""
        h = x
        for i, (f, params) in enumerate(zip(self.case.features, feats)):
            kind = LAYER_KINDS[f.kind]
            if kind.activation:
                self._watch_activation(i, f.kind, f.attrs, h)
            elif kind.op == "max_pool2d":
                self._watch_max_pool(i, h, f.attrs)
            h = kind.forward(h, [params[p] for p in kind.params], f.attrs,
                             lambda name, attrs, z, i=i: self._watch_activation(i, name, attrs, z))
        return h.reshape(h.shape[0], -1)

    def model(self) -> MLP:
        c, cast = self.case, self.cast
        return MLP(c.sizes, [(la.activation, la.attrs) for la in c.layers],
                   [_nested(la.weight, cast) for la in c.layers],
                   [None if la.bias is None else _nested(la.bias, cast) for la in c.layers],
                   system=self.system)

    def forward(self, mlp: MLP, x: RTensor) -> RTensor:
        h = x
        for i, (layer, (name, attrs)) in enumerate(zip(mlp.layers, mlp.activations), len(self.case.features)):
            h = layer(h)
            if name != "identity":
                self._watch_activation(i, name, attrs, h)
                h = h.apply(name, **attrs)
        if self.case.head == "log_softmax":
            h = h.log_softmax(1)
        return h

    def loss(self, out: RTensor, batch: Batch) -> RTensor:
        c, s = self.case, self.system
        kw: dict[str, Any] = {"reduction": c.reduction}
        for k, v in c.loss_attrs.items():
            if v is None:
                continue
            kw[k] = as_tensor(_nested(v, self.cast), s) if k in TENSOR_ATTRS else v
        if c.loss in CLASS_LOSSES:
            target: Any = [int(v) for v in batch.y.values]
        else:
            target = as_tensor(_nested(batch.y, self.cast), s)
            self._watch_loss(out, target)
        return LOSSES[c.loss](out, target, **kw)

    def backward(self, loss: RTensor) -> None:
        if loss.shape == ():
            loss.backward()
        else:  # reduction='none': the gradient of loss.sum()
            loss.backward(as_tensor([1.0] * loss.numel(), self.system).reshape(loss.shape))

    def optimizer(self, params: list[RTensor]) -> roptim.Optimizer | None:
        """refimpl's optimizer; None in a gradients-only run."""
        return None if self.case.gradients_only else roptim.make(self.case.optimizer, params, **self.case.hyper)

    def zero_grad(self, opt: roptim.Optimizer | None) -> None:
        if opt is not None:  # (a gradients-only run's one backward starts from no gradient)
            opt.zero_grad()

    def step(self, opt: roptim.Optimizer | None) -> None:
        if opt is None:
            return
        if isinstance(self.system, NetBoundNS):  # error bounds: each update bounded as a whole
            bounded_step(opt, self.system, self._nonlinear if self.watch else None, tiny(self.case.dtype))
        else:
            opt.step()

    def after_backward(self, params: dict[str, RTensor]) -> None:
        """A hook between backward and the optimizer step (planted gradient bugs live here)."""

    # the run -----------------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        """Per step: ``{"loss": [...], "grads": {name: [...]}, "params": {name: [...]}}``, numbers of
        the system (floats, Bounded, mpf)."""
        mlp = self.model()
        feats = self.features()
        names = self.case.param_names
        tensors = [t for f in feats for t in f.values() if t is not None] + mlp.parameters()
        params = dict(zip(names, tensors))
        opt = self.optimizer(tensors)
        steps = []
        for t, batch in enumerate(self.case.batches, 1):
            self.step_number = t
            self.zero_grad(opt)
            if self.case.features:
                x = self.forward_features(feats, RTensor.from_flat([self.cast(v) for v in batch.x.values],
                                                                   batch.x.shape, self.system, False))
            else:
                x = as_tensor(_nested(batch.x, self.cast), self.system)
            loss = self.loss(self.forward(mlp, x), batch)
            self.backward(loss)
            self.after_backward(params)
            grads = {k: [v.grad for v in p.elements] for k, p in params.items()}
            self.step(opt)
            steps.append({"loss": [v.data for v in loss.elements], "grads": grads,
                          "params": {k: [v.data for v in p.elements] for k, p in params.items()}})
            if self.watch:
                self._watch_range(steps[-1])
        return steps

    # kinks -------------------------------------------------------------------------------------
    def _watch_range(self, step: dict[str, Any]) -> None:
        """A run that leaves the dtype's range: past overflow, inf or NaN is the order of operations'
        choice (inf - inf), so it is a branch the rounding decides."""
        limit = OVERFLOW[self.case.dtype]
        values = [*step["loss"], *(x for g in step["grads"].values() for x in g),
                  *(x for p in step["params"].values() for x in p)]
        big = max((abs(float(x)) + float(x.e) for x in values), default=0.0)
        if not big <= limit:  # (NaN too)
            self._near(f"the run leaves {self.case.dtype}'s range (a value of magnitude {big:.3g})")

    def _near(self, note: str) -> None:
        self.near_kinks.append((self.step_number, f"step {self.step_number}: {note}"))

    def _nonlinear(self, index: int, g: Bounded) -> None:
        self._near(f"the {self.case.optimizer} update of scalar parameter #{index} is not linear within "
                   f"its gradient's error ({g.v!r} ± {g.e:.3g}): a branch the rounding decides")

    def _at_kink(self, x: Any, point: float, scale: float = 1.0) -> bool:
        slack = 2 * (SAFETY * float(x.e) + TINY) * scale
        return abs(x.v * scale - point) <= slack

    def _watch_activation(self, i: int, name: str, attrs: dict[str, Any], z: RTensor) -> None:
        if not self.watch:
            return
        spec = OPS[name]
        if not spec.kinks:
            return
        full = spec.attributes(attrs)
        scale = full["beta"] if name == "softplus" else 1.0  # softplus branches on x·beta vs threshold
        points = [p[0] * scale for p in kink_points(spec, full)]
        for j, v in enumerate(z.elements):
            if any(self._at_kink(v.data, p, scale) for p in points):
                self._near(f"layer{i} {name} input [{j}] = {v.data.v!r} ± {v.data.e:.3g} is at a kink")

    def _watch_max_pool(self, i: int, x: RTensor, attrs: dict[str, Any]) -> None:
        """A window whose maximum and another candidate lie within ``2·tol`` of each other: which one
        the forward takes (and its gradient goes to) is a branch the rounding decides. Not an exact tie
        of exact values (a relu's zeros): torch and refimpl both take the first of those."""
        if not self.watch:
            return
        for j, cands in enumerate(max_pool_windows(x, **attrs)):
            best = max(cands, key=lambda v: v.data.v)
            for v in cands:
                exact = v.data.e == 0 and best.data.e == 0
                if v is not best and not exact and self._at_kink(v.data - best.data, 0.0):
                    self._near(f"layer{i} max_pool2d window [{j}]: {best.data.v!r} and {v.data.v!r} are tied "
                               f"within their error")
                    break

    def _watch_loss(self, out: RTensor, target: RTensor) -> None:
        if not self.watch:
            return
        if self.case.loss == "bce":
            # two branches near saturation: the -100 floor on the logs (taken at x == 0 or 1 in a
            # float) and torch's backward clamp (x - t) / max(x·(1-x), 1e-12)
            # (a float32 sigmoid rounds to 1 long before float64's does: a few ulps of 1 is saturated)
            limit = max(BCE_CLAMP, 8 * (U32 if self.case.dtype == "float32" else U64))
            for j, o in enumerate(out.elements):
                x = float(o.data)
                if x * (1 - x) <= limit:
                    self._near(f"bce input [{j}] = {x!r} is saturated "
                               f"(x·(1-x) <= {limit:.3g}: log floor / torch's backward clamp)")
            return
        if self.case.loss not in ("l1", "smooth_l1", "huber"):
            return
        a = self.case.loss_attrs
        point = {"l1": 0.0, "smooth_l1": a.get("beta", 1.0), "huber": a.get("delta", 1.0)}[self.case.loss]
        for j, (o, y) in enumerate(zip(out.elements, target.elements)):
            d = abs(o.data - y.data)
            if self._at_kink(d, point):
                self._near(f"{self.case.loss} |input - target| [{j}] = {d.v!r} ± {d.e:.3g} is at its "
                           f"branch point {point}")


def result_of(case: NetworkCase, steps: list[dict[str, Any]]) -> NetworkResult:
    """A :class:`NetworkResult` from the raw steps of :meth:`RefTrainer.run`."""
    shapes = {k: v.shape for k, v in initial_params(case).items()}
    out = NetworkResult()
    for t, s in enumerate(steps):
        n = case.batches[t].x.shape[0]
        loss_shape = () if case.reduction != "none" else ((n,) if case.loss in CLASS_LOSSES else (n, case.sizes[-1]))
        out.steps.append(StepResult(
            Tensor(loss_shape, tuple(float(v) for v in s["loss"])),
            {k: Tensor(shapes[k], tuple(float(v) for v in g)) for k, g in s["grads"].items()},
            {k: Tensor(shapes[k], tuple(float(v) for v in p)) for k, p in s["params"].items()}))
    return out


def run_refimpl_network(case: NetworkCase, system: Any = None) -> NetworkResult:
    """The training run in refimpl: float64 / float32 emulation by the case's dtype, or ``system``."""
    return result_of(case, RefTrainer(case, system).run())


# --- running it in torch ------------------------------------------------------------------------------

#: torch's names: ``torch.nn.functional.<loss>`` and ``torch.optim.<optimizer>`` of each name of a case
TORCH_LOSSES = {"mse": "mse_loss", "l1": "l1_loss", "smooth_l1": "smooth_l1_loss", "huber": "huber_loss",
                "bce": "binary_cross_entropy", "bce_with_logits": "binary_cross_entropy_with_logits",
                "cross_entropy": "cross_entropy", "nll": "nll_loss"}
TORCH_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}


def _torch_parts() -> tuple[Any, Any, dict[str, Any]]:
    """torch, ``torch.nn.functional`` and the optimizer classes by name — imported when first run, not
    with the module: a worker serving another implementation never needs torch."""
    import torch
    import torch.nn.functional as F

    return torch, F, {name: getattr(torch.optim, cls) for name, cls in TORCH_OPTIMIZERS.items()}


def run_torch_network(case: NetworkCase) -> NetworkResult:
    """The training run in torch: functional linear layers, torch.nn.functional, torch.optim (foreach=False)."""
    torch, F, optims = _torch_parts()
    dt = {"float64": torch.float64, "float32": torch.float32}[case.dtype]

    def tensor(t: Tensor) -> Any:
        return torch.tensor(list(t.values), dtype=dt).reshape(t.shape)

    by_name = {k: tensor(v).requires_grad_() for k, v in initial_params(case).items()}
    params = list(by_name.values())
    opt = None if case.gradients_only else optims[case.optimizer](params, foreach=False, **case.hyper)
    kw: dict[str, Any] = {"reduction": case.reduction}
    for k, v in case.loss_attrs.items():
        kw[k] = (None if v is None else tensor(v)) if k in TENSOR_ATTRS else v
    loss_fn = getattr(F, TORCH_LOSSES[case.loss])
    result = NetworkResult()
    for batch in case.batches:
        if opt is not None:
            opt.zero_grad()
        h = tensor(batch.x)
        for i, f in enumerate(case.features):
            kind = LAYER_KINDS[f.kind]
            pos, named, kw_ = kind.torch_arguments([h, *(by_name.get(f"layer{i}.{p}") for p in kind.params)], f.attrs)
            h = resolve(kind.torch)(*pos, **named, **kw_)
        if case.features:
            h = h.flatten(1)
        for i, la in enumerate(case.layers):
            name = case.linear_name(i)
            h = F.linear(h, by_name[f"{name}.weight"], by_name.get(f"{name}.bias"))
            if la.activation != "identity":
                h = resolve(OPS[la.activation].torch)(h, **la.attrs)
        if case.head == "log_softmax":
            h = F.log_softmax(h, dim=1)
        if case.loss in CLASS_LOSSES:
            y = torch.tensor([int(v) for v in batch.y.values], dtype=torch.long)
        else:
            y = tensor(batch.y)
        loss = loss_fn(h, y, **kw)
        loss.backward(torch.ones_like(loss))
        grads = {k: _from_torch(p.grad) for k, p in by_name.items()}
        if opt is not None:
            opt.step()
        result.steps.append(StepResult(_from_torch(loss.detach()), grads,
                                       {k: _from_torch(p.detach()) for k, p in by_name.items()}))
    return result


def _from_torch(t: Any) -> Tensor:
    return Tensor(tuple(t.shape), tuple(float(v) for v in t.reshape(-1).tolist()))


# --- bounds and truth: the whole run in BoundNS, and at 50 digits -------------------------------------

def bounds(case: NetworkCase) -> tuple[dict[str, Bounded], list[tuple[int, str]]]:
    """Every entry's running error bound over the whole run, and the branch decisions near a kink
    (``(step, what)``)."""
    trainer = RefTrainer(case, NET_BOUND[case.dtype], watch=True)
    return entries(case, trainer.run()), trainer.near_kinks


def truth(case: NetworkCase, dps: int = 50) -> dict[str, float]:
    """refimpl's training run at ``dps`` digits (shares refimpl's code: see the module doc)."""
    return {k: float(v) for k, v in entries(case, RefTrainer(case, mpmath_system(dps)).run()).items()}


# --- replays: an optimizer fed with an implementation's run ---------------------------------------------

def replay(case: NetworkCase, steps: list[StepResult], system: Any = None,
           near: list[tuple[int, str]] | None = None) -> list[dict[str, list[Any]]]:
    """refimpl's optimizer fed with an implementation's run: before step t every parameter is set to
    the implementation's value after step t - 1 and its gradient to the implementation's of step t.
    Returns the parameters after every step (numbers of ``system``); none for a gradients-only run."""
    if case.gradients_only:
        return []
    system = system if system is not None else REFIMPL_SYSTEMS[case.dtype]
    start = initial_params(case)
    names = list(start)
    tensors = [RTensor.from_flat(list(start[k].values), start[k].shape, system) for k in names]
    opt = roptim.make(case.optimizer, tensors, **case.hyper)
    out = []
    for t, s in enumerate(steps, 1):
        before = params_before(case, steps, t)
        for k, tensor in zip(names, tensors):
            for v, x, g in zip(tensor.elements, before[k].values, s.grads[k].values):
                v.data, v.grad = system.convert(x), system.convert(g)
        if isinstance(system, NetBoundNS):
            step_near: Any = None if near is None else (lambda i, g, t=t: near.append((
                t, f"step {t}: the replayed {case.optimizer} update of scalar parameter #{i} is not "
                   f"linear within its gradient's error")))
            bounded_step(opt, system, step_near, tiny(case.dtype))
        else:
            opt.step()
        out.append({k: [v.data for v in tensor.elements] for k, tensor in zip(names, tensors)})
    return out


def replay_torch(case: NetworkCase, steps: list[StepResult]) -> list[dict[str, list[float]]]:
    """:func:`replay` with torch's optimizer (``foreach=False``)."""
    if case.gradients_only:
        return []
    torch, _, optims = _torch_parts()
    dt = {"float64": torch.float64, "float32": torch.float32}[case.dtype]
    start = initial_params(case)
    names = list(start)
    params = [torch.tensor(list(start[k].values), dtype=dt).reshape(start[k].shape).requires_grad_()
              for k in names]
    opt = optims[case.optimizer](params, foreach=False, **case.hyper)
    out = []
    for t, s in enumerate(steps, 1):
        before = params_before(case, steps, t)
        with torch.no_grad():
            for k, p in zip(names, params):
                p.copy_(torch.tensor(list(before[k].values), dtype=dt).reshape(p.shape))
                p.grad = torch.tensor(list(s.grads[k].values), dtype=dt).reshape(p.shape)
        opt.step()
        out.append({k: [float(x) for x in p.detach().reshape(-1).tolist()] for k, p in zip(names, params)})
    return out
