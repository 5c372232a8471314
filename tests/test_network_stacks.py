"""What every stack of feature layers (a CNN, an LSTM or GRU, a transformer block) must give, each
check written once and run for every stack of :data:`conformance.case.layerkinds.STACKS`: the
standalone torch script replays the harness's torch run, refimpl conforms on the stack's training
runs and gradients-only runs, and the bugs planted for the stack are caught at every seed.
The checks of one stack alone are in test_cnn_networks.py, test_rnn_networks.py and
test_transformer_networks.py."""

from __future__ import annotations

import contextlib
import io

import pytest
from helpers_networks import stack_cases, suite_named
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.case.layerkinds import STACKS
from conformance.driver import run_suite
from conformance.impls.zoo import MUTANTS, MutantImpl
from conformance.oracle.netrepro import torch_script
from conformance.oracle.netrun import run_refimpl_network, run_torch_network
from conformance.verdict.network import judge_network


@pytest.mark.parametrize("stack", sorted(STACKS))
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_the_torch_script_reproduces_the_torch_run(stack, data):
    case = data.draw(stack_cases(stack))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(torch_script(case), "repro", "exec"), {})
    first = out.getvalue().splitlines()[0]
    assert first == f"step 1 loss {list(run_torch_network(case).steps[0].loss.values)}"


@pytest.mark.parametrize("stack", sorted(STACKS))
@pytest.mark.parametrize("dtype, optimizers", [("float64", None), ("float32", ["none"])],
                         ids=["training", "gradients-only"])
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_refimpl_conforms_on_the_stacks_runs(stack, dtype, optimizers, data):
    case = data.draw(stack_cases(stack, dtype, **({} if optimizers is None else {"optimizers": optimizers})))
    assert case.gradients_only == (optimizers == ["none"])
    v = judge_network(case, run_refimpl_network(case), run_torch_network(case))
    assert v.verdict == "pass", v.reason


SEEDS = range(3)  # 0-9: tools/kill_matrix.py --stack NAME (docs/mutants.md)
#: per stack, the planted bugs its training runs must catch: a grouped convolution's weight gradient,
#: max pooling's `=` for `+=`, a flatten's backward in the wrong layout; the state not carried through
#: time; attention's dV from P (silent when query and key lengths are equal, as in self-attention),
#: dQ and dK without the scale, layer norm over (N, D) only
KILLED = {"cnn": ["conv-groups-weight-grad", "max-pool-overwrite", "flatten-backward-channels-last"],
          "rnn": ["lstm-no-carry", "gru-no-carry"],
          "transformer": ["attention-dv-untransposed", "attention-backward-unscaled", "layer-norm-2d-count"]}


@pytest.mark.parametrize("stack, mutant", [(s, m) for s, ms in KILLED.items() for m in ms])
def test_planted_bugs_are_caught_in_the_stacks_suite_at_every_seed(stack, mutant):
    """Each fails the stack's float64 training-run suite at every seed, as verify seeds it (refimpl
    itself passes the same cases: above, and tools/kill_matrix.py --stack)."""
    suite, i = suite_named(f"{stack} float64")
    for seed in SEEDS:
        r = run_suite(MutantImpl(MUTANTS[mutant]), suite, seed + i, first_failure_only=True, shrink=False)
        assert r.first_bad is not None, f"{mutant} survives the {stack} suite at seed {seed}"
        assert r.first_bad[1].verdict == "fail", r.first_bad[1].reason


def test_every_stack_has_its_planted_bugs():
    assert set(KILLED) == set(STACKS)
