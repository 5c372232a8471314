"""The layer and precision mutants of the refimpl zoo at many seeds: each against the suites made for
its bug, as verify runs them.

For every mutant of category ``layers`` (conformance/impls/zoo/layers.py) and every seed, the suite
``op NAME`` of the op it patches is run — for one of category ``precision``
(conformance/impls/zoo/precision.py), every float16 and bfloat16 suite — at the ci size (its
fixed corner cases, then its drawn cases; seeded as verify seeds it, ``seed + the suite's index``),
stopping at the first non-conforming case, as verify does. A row is as expected when the mutant is
caught at every seed — killed, or for a kink convention reported as ``convention`` — and unmutated
refimpl passes the same cases (a row is caught at a seed when any of its suites catches it). A mutant
that declares a claim of its own (``Mutant.declares``: a summation order) is run on the suites of an
implementation making that claim — its float32 and half tensor-graph suites open with the stagnating
sums — and its control is unmutated refimpl making the same claim.
``conformance mutants`` runs the whole zoo at one seed; this is the many-seed view::

    .venv/bin/python tools/kill_matrix.py --seeds 10                        # the layer mutants
    .venv/bin/python tools/kill_matrix.py --category precision --seeds 10   # the precision mutants
    .venv/bin/python tools/kill_matrix.py --cnn --seeds 5                   # the CNN training runs
    .venv/bin/python tools/kill_matrix.py --stack rnn --seeds 10            # the RNN training runs

With ``--stack NAME`` (``--cnn``: ``--stack cnn``) the suites are the training runs of that stack of
feature layers (conformance/case/layerkinds.py: STACKS; ``cnn float64``, ``cnn float32``, ``cnn
gradients only``, the same for ``rnn``), and the rows every mutant that can change such a case: the
layer mutants of the ops its feature layers compute, and for a CNN those of the trainer's feature
layers (``RefTrainer.forward_features``: the flatten of a feature map; an RNN's last step (B, H) has
no layout to get wrong); ``--only`` narrows the rows.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from conformance import kinds
from conformance.case.dtypes import HALF
from conformance.case.layerkinds import STACKS, STRUCTURAL
from conformance.driver import PROFILES, run_suite
from conformance.impls import RefImpl
from conformance.impls.zoo import MUTANTS, MutantImpl
from conformance.oracle.netrun import RefTrainer


def outcome(verdicts: dict[str, int]) -> str:
    return ("killed" if verdicts.get("fail") or verdicts.get("error") or verdicts.get("nonfinite-mismatch")
            else "convention" if verdicts.get("convention") else "survived")


def targets(m: Any, suites: list[Any], stack: str | None = None) -> list[str]:
    """The suites made for a mutant's bug: its op's for a layer mutant, the half-precision ones for a
    precision mutant — and, for one that claims a summation order, the suites with fixed cases of a
    dtype it claims it for (float32 tensor graphs, opened by the stagnating sums, and float32 layers);
    with ``stack``, that stack's training runs."""
    if stack:
        return [s.name for s in suites if s.name.startswith(f"{stack} ")]
    if m.category == "layers":
        return [f"op {op}" for op in sorted(m.ops)]
    return [s.name for s in suites if s.family in HALF or any(getattr(c, "claim", None) is not None
                                                               and c.claim.summation for c in s.fixed)]


#: unmutated refimpl's outcome, by (the capabilities it declares, suite, seed)
CONTROL: dict[tuple[Any, str, int], str] = {}


def declaring(capabilities: Any) -> RefImpl:
    """Unmutated refimpl declaring ``capabilities`` (a mutant's, :attr:`Mutant.declares`): what it
    computes follows its cases' claims, so this is the correct implementation of the same claim."""
    impl = RefImpl()
    impl.capabilities = capabilities
    return impl


def stack_mutant(m: Any, stack: str) -> bool:
    """A mutant a training run of ``stack`` can catch: of an op its feature layers compute, or (a CNN)
    of the feature layers in the trainer (:meth:`RefTrainer.forward_features` overridden)."""
    ops = set().union(*(STRUCTURAL[k].ops for k in STACKS[stack]))
    trainer = stack == "cnn" and m.trainer.forward_features is not RefTrainer.forward_features
    return bool(m.ops & ops) or trainer


def cell(m: Any, names: list[str], suites: list[Any], index: dict[str, int], seed: int) -> str:
    """The mutant's outcome at ``seed``: killed if a suite kills it, else convention if one reports
    it so, else survived (unmutated refimpl must pass every suite that was run)."""
    seen = "survived"
    impl = MutantImpl(m)
    for name in names:
        suite, s = suites[index[name]], seed + index[name]
        key = (impl.capabilities, name, s)
        if key not in CONTROL:  # unmutated refimpl, once per declaration, suite and seed
            control = declaring(impl.capabilities)
            CONTROL[key] = outcome(run_suite(control, suite, s, shrink=False, first_failure_only=True).verdicts)
        if CONTROL[key] != "survived":
            return "CONTROL FAILS"
        got = outcome(run_suite(MutantImpl(m), suite, s, shrink=False, first_failure_only=True).verdicts)
        if got == "killed":
            return got
        if got == "convention":  # (a later suite may still kill it)
            seen = got
    return seen


def _suites_of(capabilities: Any, profile: str) -> tuple[list[Any], dict[str, int]]:
    """The suites verify gives an implementation declaring ``capabilities``, and their indices by name."""
    suites = list(kinds.suites(capabilities, PROFILES[profile]))
    return suites, {s.name: i for i, s in enumerate(suites)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--profile", default="ci", choices=sorted(PROFILES))
    parser.add_argument("--category", default="layers", choices=["layers", "precision"])
    parser.add_argument("--cnn", action="store_true", help="--stack cnn")
    parser.add_argument("--stack", choices=sorted(STACKS), default=None,
                        help="the training-run suites of this stack of feature layers, and the mutants they can catch")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME", help="only these mutants")
    args = parser.parse_args()
    plain, plain_index = _suites_of(RefImpl().capabilities, args.profile)
    bad = 0
    t0 = time.perf_counter()
    stack = "cnn" if args.cnn else args.stack
    rows = [m for m in MUTANTS.values() if (stack_mutant(m, stack) if stack else m.category == args.category)]
    for m in (m for m in rows if args.only is None or m.name in args.only):
        # a claim of its own (Mutant.declares): its suites are those of an implementation that makes it
        suites, index = (plain, plain_index) if m.declares is None else _suites_of(m.declares, args.profile)
        names = targets(m, suites, stack)
        cells = [cell(m, names, suites, index, seed) for seed in range(args.seeds)]
        want = "convention" if m.expect == "convention" else "killed"
        ok = all(c == want for c in cells)
        bad += not ok
        where = names[0] if len(names) == 1 else f"{len(names)} suites: {names[0]} …"
        missed = "" if ok else f"  (seeds {', '.join(str(s) for s, c in enumerate(cells) if c != want)}: not {want})"
        print(f"{m.name:<40} {where:<36} {cells.count(want)}/{len(cells)} {want:<10} {'yes' if ok else 'NO'}{missed}")
    print(f"as expected at every seed: {'all' if not bad else f'{bad} rows not'}; "
          f"{time.perf_counter() - t0:.0f}s")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
