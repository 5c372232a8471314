"""The foreign zoo: standalone autodiff engines written the way people write them — not refimpl.

The mutant zoo (:mod:`conformance.impls.zoo`) plants bugs in refimpl, so every mutant shares
refimpl's structure and formulas. The engines here share nothing with it: each is one
self-contained ``.py`` file with micrograd's ``Value`` API (loaded by
:func:`conformance.impls.adapters.micrograd.load_micrograd`), or, for ``jsonl_engine``, a program
speaking the JSON Lines protocol (run as ``python jsonl_engine.py`` through
:class:`~conformance.impls.adapters.jsonl.CommandAdapter`). Four styles — closures (micrograd),
one class per op, a tape (Wengert list), parents with local derivatives as tuples — each once
correct, with textbook formulas that are not torch's, and then with one classic bug per file.
None of them imports anything of the suite. ``conformance mutants --zoo foreign`` runs verify's
suites on each at several seeds (:mod:`conformance.commands.mutants`); docs/mutants.md says why
each engine is realistic.

:data:`FOREIGN` is the registry: per engine its file, its style, what the suite must say of it
(``expect``) and what identifies its planted bug among the failures reported (``planted``).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.case.entrykey import EntryKey
from conformance.impls.adapters.jsonl import CommandAdapter
from conformance.impls.adapters.layer_functions import layer_functions
from conformance.impls.adapters.micrograd import load_micrograd
from conformance.impls.adapters.network_class import NetworkClass

HERE = Path(__file__).resolve().parent
EXPECTS = ("conforms", "kill", "convention")
STYLES = ("closures", "classes", "tape", "tuples", "jsonl", "numpy", "layers")


@dataclass(frozen=True)
class Foreign:
    """One engine of the foreign zoo.

    ``expect``: ``conforms`` (a correct engine), ``kill`` (a bug: some case must be non-conforming)
    or ``convention`` (a kink convention other than torch's: judged ``convention``, never failed).

    ``planted``: what identifies the planted bug in a reported case, as space-separated clauses that
    must all hold, each with ``|``-separated alternatives — ``op:NAME`` (the case has that op),
    ``error:TEXT`` (the verdict's reason contains TEXT, e.g. an exception type), ``suite:NAME`` (it
    was reported by that suite), ``entry:value`` (a failing entry is the output's value, not a
    gradient: a forward bug; ``loss``, ``grad``, ``param`` for a training run), ``role:bias``
    (a failing entry is of a bias, or ``weight``), ``from-step:2`` (every failing entry of the
    training run is at step 2 or later), ``fan-out`` (some value of the case feeds two inputs);
    ``A or B``: either set of clauses. Empty for a correct engine.
    """

    name: str
    file: str  # in this package
    style: str
    expect: str
    bug: str  # one line: the planted bug, or what the engine is
    planted: str = ""

    def __post_init__(self) -> None:
        assert self.expect in EXPECTS, self.expect
        assert self.style in STYLES, self.style
        assert (self.expect == "conforms") == (not self.planted), self.name

    @property
    def path(self) -> Path:
        return HERE / self.file

    @property
    def protocol(self) -> bool:
        """A program speaking JSON Lines (else a module with micrograd's ``Value`` API)."""
        return self.style == "jsonl"

    def load(self) -> Any:
        """The engine as an implementation under test (a JSON Lines one is a started process: close it)."""
        if self.protocol:
            return CommandAdapter([sys.executable, str(self.path)])
        if self.style == "numpy":
            return numpy_mlp(self.path, self.name)
        if self.style == "layers":
            return numpy_layers(self.path, self.name)
        return load_micrograd(str(self.path), name=self.name)

    def shows_bug(self, suite: str, verdict: Any) -> bool:
        """Whether a reported case (its suite, its verdict) is the planted bug at work."""
        return bool(self.planted) and any(all(_holds(clause, suite, verdict) for clause in alternative.split())
                                          for alternative in self.planted.split(" or "))


def _module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"_foreign_{name}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def numpy_layers(path: Path, name: str) -> Any:
    """A course-assignment file of layer functions as an implementation: ``LAYERS``, op name →
    ``(forward, backward)`` (:func:`~conformance.impls.adapters.layer_functions.layer_functions`), and
    ``WITHOUT`` if it takes only part of an op (``Capabilities.without``). A file with ``BASE`` (a
    sibling file) changes that file's set: its ``LAYERS`` replace those ops only (a forward of None
    keeps the base's: the file then holds just the backward it gets wrong)."""
    module = _module(path, name)
    base = _module(path.parent / module.BASE, f"{name}_base") if hasattr(module, "BASE") else None
    layers = dict(base.LAYERS if base else {})
    layers.update({op: (f or layers[op][0], b) for op, (f, b) in module.LAYERS.items()})  # None: the base's forward
    without = {**getattr(base, "WITHOUT", {}), **getattr(module, "WITHOUT", {})}
    return layer_functions(name=name, version="foreign", ops=layers, without=without)


def numpy_mlp(path: Path, name: str) -> NetworkClass:
    """A tutorial-style numpy MLP file as an implementation: ``MLP(weights, biases)`` with ``W``
    (in, out), ``backprop(x, y) -> (loss, dWs, dbs)``, ``update(dWs, dbs, lr)``, and ``DECLARES``
    (what it takes). The whole adapter: torch's (out, in) weights transposed in and out."""
    module = _module(path, name)

    def loss_and_grads(net: Any, x: Any, y: Any) -> tuple[Any, list[Any]]:
        loss, dWs, dbs = net.backprop(x, y)
        return loss, [g for dW, db in zip(dWs, dbs) for g in (dW.T, db)]

    return NetworkClass(
        name=name, version="foreign", capabilities=NetworkClass.declare(**module.DECLARES),
        build=lambda p, case: module.MLP([w.T.copy() for w in p[0::2]], [b.copy() for b in p[1::2]]),
        loss_and_grads=loss_and_grads,
        step=lambda net, g, lr: net.update([w.T for w in g[0::2]], g[1::2], lr),
        params=lambda net: [a for W, b in zip(net.weights, net.biases) for a in (W.T, b)])


_SHOWN = ("pass", "torch-deviates", "known-cause", "unchecked")  # the verdicts no bug gives


def _holds(clause: str, suite: str, verdict: Any) -> bool:
    what, _, values = clause.partition(":")
    options = values.split("|")
    case = verdict.case
    if what == "op":
        return any(op in getattr(case, "ops", ()) for op in options)
    if what == "error":
        return any(text in verdict.reason for text in options)
    if what == "suite":
        return suite in options
    if what == "entry":
        return any(EntryKey.parse(e.name).quantity in options for e in verdict.entries if e.verdict not in _SHOWN)
    if what in ("role", "from-step"):
        bad = [EntryKey.parse(e.name) for e in verdict.entries if e.verdict not in _SHOWN]
        if what == "role":
            return any(k.target is not None and k.target.rsplit(".", 1)[-1] in options for k in bad)
        return bool(bad) and min(k.step or 0 for k in bad) >= int(options[0])
    if what == "fan-out":
        used = [i for n in getattr(case, "nodes", ()) for i in n.inputs]
        return len(used) > len(set(used))
    raise ValueError(f"unknown clause {clause!r} in a foreign engine's 'planted'")


def _entry(name: str, style: str, expect: str, bug: str, planted: str = "", file: str = "") -> Foreign:
    return Foreign(name, file or f"{name}.py", style, expect, bug, planted)


FOREIGN: dict[str, Foreign] = {f.name: f for f in (
    # correct engines, one per style
    _entry("closures", "closures", "conforms", "micrograd's closures, iterative topological sort"),
    _entry("classes", "classes", "conforms", "an Op class per operation, Kahn's algorithm"),
    _entry("tape", "tape", "conforms", "a global Wengert list walked in reverse"),
    _entry("tuples", "tuples", "conforms", "(parent, local derivative) tuples, iterative DFS"),
    _entry("jsonl_engine", "jsonl", "conforms", "JSON Lines program, nodes swept by creation order"),
    # one bug each
    _entry("bfs_order", "closures", "kill", "backward in breadth-first order, not topological", "fan-out"),
    _entry("recursive_topo", "closures", "kill", "recursive build_topo: RecursionError on deep graphs",
           "error:RecursionError"),
    _entry("pow_exponent", "closures", "kill", "pow' = n*x**n", "op:pow_int|pow_scalar|square|reciprocal"),
    _entry("sigmoid_twice", "closures", "kill", "sigmoid' = s(s)(1 - s(s)), s = sigmoid(x)", "op:sigmoid"),
    _entry("tanh_input", "classes", "kill", "tanh' = 1 - x**2 from the input", "op:tanh"),
    _entry("div_denominator", "classes", "kill", "d(a/b)/db = 1/b", "op:div"),
    _entry("relu_at_zero", "classes", "convention", "relu'(0) = 1: a kink convention, not a bug", "op:relu"),
    _entry("exp_taylor", "tape", "kill", "exp by four Taylor terms (the forward)", "op:exp"),
    _entry("div_no_square", "tape", "kill", "d(a/b)/db = -a/b", "op:div"),
    _entry("fanout_overwrite", "tuples", "kill", "= instead of += : fan-out overwrites", "fan-out"),
    _entry("log_squared", "tuples", "kill", "log' = 1/x**2", "op:log"),
    _entry("float32_storage", "tuples", "kill", "values rounded to float32 under a float64 claim", "entry:value"),
    # numpy MLPs in the seed tutorials' style (forward, δ-equations, SGD): correct, then one bug each
    _entry("mlp_tutorial", "numpy", "conforms", "sigmoid layers, MSE mean, δ-equations, plain SGD"),
    _entry("mlp_reversed_sum", "numpy", "conforms", "the same, every sum by hand in reverse order"),
    _entry("mlp_linear_output", "numpy", "conforms", "sigmoid hidden layers, a linear output (regression)"),
    _entry("mlp_bias_mean", "numpy", "kill", "bias gradient averaged over the batch", "role:bias entry:grad"),
    _entry("mlp_mse_no_2", "numpy", "kill", "MSE derivative without its factor 2", "entry:grad"),
    _entry("mlp_transposed_dw", "numpy", "kill", "weight gradient transposed (silent on square layers)",
           "role:weight entry:grad or error:shape"),
    _entry("mlp_sigmoid_prime_of_output", "numpy", "kill", "σ′ applied to the activation, σ(a)(1 − σ(a))",
           "entry:grad"),
    _entry("mlp_last_nonlinear", "numpy", "kill", "a sigmoid on the declared linear output", "entry:loss"),
    _entry("mlp_no_zero_grad", "numpy", "kill", "gradients accumulate across steps, never zeroed",
           "entry:grad from-step:2"),
    # numpy layer functions as a course assignment writes them (forward → (out, cache), backward(dout,
    # cache)): correct, then one classic bug each
    _entry("layers_assignment", "layers", "conforms", "every layer op: loops and textbook backward"),
    _entry("layers_maxpool_overwrite", "layers", "kill", "max pool backward dx[argmax] = dout, not +=",
           "op:max_pool2d"),
    _entry("layers_maxpool_every_tie", "layers", "kill", "max pool backward masks x == max: every tie gets it all",
           "op:max_pool2d"),
    _entry("layers_avgpool_kernel_divisor", "layers", "kill", "avg pool backward divides by kH·kW",
           "op:avg_pool2d"),
    _entry("layers_conv_groups_weight", "layers", "kill", "grouped conv's weight gradient for the first group only",
           "op:conv2d"),
    _entry("layers_conv_stride_dilation_swapped", "layers", "kill", "conv backward swaps stride and dilation",
           "op:conv2d"),
    _entry("layers_batchnorm_constant_stats", "layers", "kill", "batch norm backward: mean and variance constant",
           "op:batch_norm"),
    _entry("layers_layernorm_2d", "layers", "kill", "layer norm backward counts D = x.shape[1]", "op:layer_norm"),
    _entry("layers_norm_weight_bias_swapped", "layers", "kill", "layer norm backward swaps dgamma and dbeta",
           "op:layer_norm"),
    _entry("layers_prod_divide", "layers", "kill", "prod backward out / x: NaN at a zero", "op:prod"),
    _entry("layers_cumprod_divide", "layers", "kill", "cumprod backward through out / x: NaN at a zero",
           "op:cumprod"),
    _entry("layers_cumsum_forward_order", "layers", "kill", "cumsum backward a forward running sum of dout",
           "op:cumsum"),
    _entry("layers_embedding_duplicates", "layers", "kill", "embedding backward dW[idx] += d: a repeat once",
           "op:embedding"),
    _entry("layers_index_select_duplicates", "layers", "kill", "index_select backward fancy +=: a repeat once",
           "op:index_select"),
    _entry("layers_gather_duplicates", "layers", "kill", "gather backward fancy +=: a repeat once", "op:gather"),
    _entry("layers_scatter_add_duplicates", "layers", "kill", "scatter_add forward fancy +=: a repeat once",
           "op:scatter_add entry:value"),
    _entry("layers_masked_fill_grad_through_mask", "layers", "kill", "masked_fill backward ignores the mask",
           "op:masked_fill"),
    _entry("layers_attention_dv_untransposed", "layers", "kill", "attention backward dV = P·dO, not Pᵀ·dO",
           "op:scaled_dot_product_attention"),
    _entry("layers_attention_softmax_no_rowsum", "layers", "kill", "attention's softmax backward dS = P ⊙ dP",
           "op:scaled_dot_product_attention"),
    _entry("layers_attention_causal_mask_backward", "layers", "kill", "attention backward recomputes P unmasked",
           "op:scaled_dot_product_attention"),
    _entry("layers_attention_scale_in_dv", "layers", "kill", "attention backward scales dV too",
           "op:scaled_dot_product_attention"),
    _entry("layers_lstm_no_carry", "layers", "kill", "LSTM backprop through time without the carry", "op:lstm"),
    _entry("layers_lstm_squeeze_hidden_1", "layers", "kill", "LSTM backward .squeeze(): breaks at hidden size 1",
           "op:lstm"),
    _entry("layers_gru_no_carry", "layers", "kill", "GRU backprop through time without the carry", "op:gru"),
    _entry("layers_gru_update_gate_swapped", "layers", "kill", "GRU backward with h' = z·n + (1 − z)·h",
           "op:gru"),
    _entry("layers_dropout_no_mask", "layers", "kill", "dropout backward dout / (1 − p): the mask forgotten",
           "op:dropout"),
    _entry("layers_pad_replicate_overwrite", "layers", "kill", "pad backward dx[src] = dout: an edge copied once",
           "op:pad"),
    _entry("layers_std_mean_constant", "layers", "kill", "std backward from E[x²] − E[x]², the mean constant",
           "op:std"),
    _entry("layers_conv_transpose_output_padding", "layers", "kill",
           "conv_transpose2d backward crops dout to the size without output_padding", "op:conv_transpose2d"),
    # CS231n's own signatures, taking only part of an op (WITHOUT: one stride and padding, no dilation or groups)
    _entry("layers_cs231n", "layers", "conforms", "CS231n's naive conv and max pool, glued to torch's arguments"),
    _entry("layers_cs231n_maxpool_mask", "layers", "kill",
           "max pool backward dx[window] = (window == max) · dout: ties doubled, overlaps overwritten",
           "op:max_pool2d"),
    _entry("layers_cs231n_conv_dw_overwrite", "layers", "kill", "naive conv backward dw[f] = …, not +=",
           "op:conv2d"),
)}

__all__ = ["EXPECTS", "FOREIGN", "STYLES", "Foreign"]
