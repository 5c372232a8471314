"""The network kind: a short training run of an MLP (or of a small CNN, an RNN or a transformer block
before one) — loss, every
gradient and every parameter after every step — against ``torch.optim``.

Everything the suite needs of a network case, gathered into one :class:`~conformance.kinds.kind.Kind`:
the case and its JSON (:mod:`conformance.case.network`), torch's run (:mod:`conformance.oracle.netrun`), the
verdict (:mod:`conformance.verdict.network`, with the bounds of :mod:`conformance.tolerance.netbounds`), the torch
script (:mod:`conformance.oracle.netrepro`) and the suites (:mod:`conformance.case.netstrategies`), declared
here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from conformance.case import network as netcases
from conformance.case.grain import loss_options, outside
from conformance.case.layerkinds import STACKS, STRUCTURAL
from conformance.case.netfixed import loss_fixed, stack_fixed
from conformance.case.netstrategies import for_capabilities
from conformance.case.network import (
    ACTIVATIONS,
    DTYPES,
    LOSS_ATTRS,
    NO_OPTIMIZER,
    OPTIMIZER_HYPER,
    NetworkCase,
    NetworkResult,
)
from conformance.case.reduce import network_candidates
from conformance.kinds.kind import Kind, Suite, tensor_bits
from conformance.oracle.netrepro import torch_script
from conformance.oracle.netrun import run_torch_network
from conformance.verdict.network import NetworkVerdict, judge_network


def describe(case: NetworkCase) -> dict[str, Any]:
    run = "gradients-only" if case.gradients_only else case.optimizer
    ops = {la.activation for la in case.layers} | {case.loss, run} | {f.kind for f in case.features}
    ops |= {case.head} if case.head != "none" else set()
    n = len(case.features) + len(case.layers)
    return dict(ops=" ".join(sorted(ops)), nodes=n, depth=n, parameters=case.n_params, steps=case.steps,
                dtype=case.dtype)


def result_key(r: NetworkResult) -> Hashable:
    """A training run's result as a hashable value, floats by their bits."""
    return (r.error, tuple((tensor_bits(s.loss), tuple((k, tensor_bits(v)) for k, v in s.grads.items()),
                            tuple((k, tensor_bits(v)) for k, v in s.params.items())) for s in r.steps))


def judge(case: NetworkCase, result: NetworkResult, torch_result: NetworkResult, *,
          always_truth: bool = False) -> NetworkVerdict:
    """:func:`conformance.verdict.network.judge_network`. Its truth is refimpl at 50 digits, computed for
    every entry that disagrees; ``always_truth`` asks nothing more of it."""
    return judge_network(case, result, torch_result)


def suites(caps: Any, examples: int) -> list[Suite]:
    """Training runs per dtype, then per optimizer and per loss (in the first dtype supported). A run
    costs about ten graph cases: a third of ``examples`` runs per dtype, an eighth per optimizer/loss
    (the first run drawn is the minimal one, every knob off)."""
    if not getattr(caps, "networks", False):
        return []
    dtypes = [d for d in DTYPES if d in caps.dtypes]
    out = [Suite(f"networks {d}", "networks", for_capabilities(caps, d), max(2, examples // 3)) for d in dtypes]
    each = max(3, examples // 8)
    out += [Suite(f"optimizer {o}", "networks", for_capabilities(caps, dtypes[0], optimizers=[o]), each)
            for o in OPTIMIZER_HYPER if o in caps.optimizers and o != NO_OPTIMIZER]
    out += [Suite(f"loss {loss}", "networks", for_capabilities(caps, dtypes[0], losses=[loss]), each,
                  loss_fixed(loss, caps, dtypes[0]))  # a loss's hostile run first, at every seed
            for loss in LOSS_ATTRS if loss in caps.losses]
    return out


def late_suites(caps: Any, examples: int) -> list[Suite]:
    """Gradients-only runs (one batch, no optimizer: the loss and every gradient), for an
    implementation that declares them (optimizer ``none``). A run is one step: a quarter of
    ``examples``."""
    if not getattr(caps, "networks", False) or NO_OPTIMIZER not in caps.optimizers:
        return []
    dtype = next(d for d in DTYPES if d in caps.dtypes)
    return [Suite("gradients only", "networks", for_capabilities(caps, dtype, optimizers=[NO_OPTIMIZER]),
                  max(3, examples // 4))]


#: a CNN run's sizes: the feature layers' input is at most 3×5×6 (conformance/case/netstrategies.py), then
#: at most two Linear layers of at most 6 units, a batch of at most 4, at most 3 steps
CNN_SIZES = dict(max_depth=2, max_width=6, max_batch=4, max_steps=3)


def cnn_suites(caps: Any, examples: int) -> list[Suite]:
    """Training runs of a small CNN (conv2d → activation → pooling → normalization, one or two blocks,
    flattened into Linear layers) per dtype, then gradients-only ones, for an implementation that
    declares feature layers (``capabilities.layer_kinds``). A generation of their own: every suite
    before them keeps its place and its seed. A run is small (well under a second in refimpl): half
    of ``examples`` per dtype and gradients-only, so that a bug behind one kind and one knob (a max
    pool whose windows overlap, a layer norm over more than the last dim) is reached at every seed."""
    return stack_suites("cnn", caps, examples)


def stack_suites(stack: str, caps: Any, examples: int) -> list[Suite]:
    """Training runs per dtype, then gradients-only ones, of the networks that open with the feature
    layers of ``stack`` (conformance/case/layerkinds.py: STACKS) the capabilities declare; none
    without one. Half of ``examples`` each (a run is small), after the stack's fixed hostile cases
    (conformance/case/netfixed.py: overlapping max pooling, a grouped strided convolution, norms over
    planes; an LSTM and a GRU of hidden size 1 over 4 steps; a two-head transformer block with T ≠ D),
    judged at every seed: a bug only they show is caught whatever the draw."""
    kinds = [k for k in STACKS[stack] if k in getattr(caps, "layer_kinds", ())]
    if not getattr(caps, "networks", False) or not kinds:
        return []
    kinds = sorted(kinds)
    dtypes = [d for d in DTYPES if d in caps.dtypes]
    trained = [o for o in OPTIMIZER_HYPER if o in caps.optimizers and o != NO_OPTIMIZER]
    out = [Suite(f"{stack} {d}", "networks", for_capabilities(caps, d, optimizers=trained, layer_kinds=kinds,
                                                              **CNN_SIZES), max(2, examples // 2),
                 stack_fixed(stack, caps, d, trained))
           for d in dtypes if trained]
    if NO_OPTIMIZER in caps.optimizers:
        out.append(Suite(f"{stack} gradients only", "networks",
                         for_capabilities(caps, dtypes[0], optimizers=[NO_OPTIMIZER], layer_kinds=kinds, **CNN_SIZES),
                         max(3, examples // 2), stack_fixed(stack, caps, dtypes[0], [NO_OPTIMIZER])))
    return out


def rnn_suites(caps: Any, examples: int) -> list[Suite]:
    """Training runs of a recurrent network — an LSTM or a GRU over a sequence (B, T, I), its last
    step's output into Linear layers — per dtype, then gradients-only ones, for an implementation that
    declares ``lstm`` or ``gru`` in ``capabilities.layer_kinds``. A generation after the CNN suites:
    every suite before keeps its place and its seed. Sizes as a CNN run's."""
    return stack_suites("rnn", caps, examples)


def transformer_suites(caps: Any, examples: int) -> list[Suite]:
    """Training runs of a network that opens with a pre-norm transformer block (layer norm → self-attention
    → residual add, layer norm → MLP → residual add) over a sequence (B, T, D), flattened into Linear
    layers — per dtype, then gradients-only ones, for an implementation that declares
    ``transformer_block``. A generation after the RNN suites: every suite before keeps its seed."""
    return stack_suites("transformer", caps, examples)


def unsupported(caps: Any) -> dict[str, str]:
    """Everything a training run can hold that the capabilities leave out, each counted once under
    ``networks``: an optimizer, or one hyperparameter of a declared one (``sgd.momentum``); a loss,
    or one reduction or attribute of a declared one (``mse.sum``); an activation of the hidden or
    the last layer; layers with or without bias; all of it when there is no ``run_network``."""
    if not getattr(caps, "networks", False):
        return {"training runs": "networks"}
    out = {}
    for grain, full, what in ((caps.optimizers, OPTIMIZER_HYPER, "optimizer"),
                              (caps.losses, loss_options(LOSS_ATTRS), "loss")):
        for name, options in full.items():
            if name not in grain:
                out["gradients-only runs" if name == NO_OPTIMIZER else f"{what} {name}"] = "networks"
                continue
            out.update({f"{name}.{o}": "networks" for o in options if o not in grain[name] and o != "lr"})
    out.update({f"hidden activation {a}": "networks" for a in ACTIVATIONS if a not in caps.activations})
    out.update({f"output activation {a}": "networks" for a in ACTIVATIONS if a not in caps.output_activations})
    out.update({f"layers {'with' if b else 'without'} bias": "networks" for b in (True, False) if b not in caps.bias})
    out.update({f"layer kind {k}": "networks" for k in STRUCTURAL if k not in getattr(caps, "layer_kinds", ())})
    return out


def declared(caps: Any) -> str:
    """The training runs the capabilities declare, in one line (``conformance list``)."""
    if not getattr(caps, "networks", False):
        return "networks: no"

    def grain(g: Any, full: dict[str, Any]) -> str:
        return " ".join("none (gradients only)" if name == NO_OPTIMIZER else name
                        if set(g[name]) >= set(full[name]) - {"lr"} else f"{name}({','.join(sorted(g[name]))})"
                        for name in full if name in g)

    bias = {frozenset({True}): "with bias", frozenset({False}): "without bias"}.get(caps.bias, "with or without bias")
    return (f"networks: optimizers {grain(caps.optimizers, OPTIMIZER_HYPER)}; losses "
            f"{grain(caps.losses, loss_options(LOSS_ATTRS))}; hidden {','.join(sorted(caps.activations)) or '-'}; "
            f"output {','.join(sorted(caps.output_activations))}; {bias}; layers {caps.layers[0]}–{caps.layers[1]}; "
            f"batch {caps.batch_sizes[0]}–{caps.batch_sizes[1]}; "
            f"feature layers {','.join(k for k in STRUCTURAL if k in getattr(caps, 'layer_kinds', ())) or '-'}")


NETWORK = Kind(
    name="network", format=netcases.FORMAT, case_type=NetworkCase, method="run_network",
    error_result=lambda message: NetworkResult(error=message),
    to_json=netcases.case_to_json, from_json=netcases.case_from_json, dumps=netcases.dumps, loads=netcases.loads,
    result_to_json=netcases.result_to_json, result_from_json=netcases.result_from_json,
    size=lambda case: case.summary(), describe=describe, family=lambda case: "networks",
    run_torch=run_torch_network, judge=judge, smaller=network_candidates, torch_script=torch_script,
    result_key=result_key, suites=suites, later=(late_suites, cnn_suites, rnn_suites, transformer_suites),
    unsupported=unsupported,
    declared=declared,
    admits=lambda caps, case: outside(caps, case) is None,
    picture="conformance.report.netdraw:draw_network_case",
)
