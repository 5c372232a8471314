"""How fast is refimpl, and does it really handle deep graphs? A script, not a test.

    python benchmarks/bench_engine.py [--quick] [--json PATH] [--rounds N] [--profile]

Part 1 — speed against the alternatives. One scalar chain of ``--ops`` operations (20,000 by
default) is built and back-propagated in three engines, in one process:

* refimpl (``refimpl.Value``), the engine under test;
* PyPI micrograd 0.1.0, the usual "small scalar autograd" yardstick. Its topological sort is
  recursive, so the recursion limit is raised and everything runs in a thread with a large C stack
  (so that a deep recursion can never crash the interpreter on a small default thread stack);
* torch float64 eager mode on 0-d tensors — not a fair fight for torch (its per-op dispatch is built
  for big tensors), but it tells us where a pure-Python scalar engine stands.

The chain is built by *one* function, :func:`build_chain`, from operators every engine has
(``* + ** relu``), and the value and leaf gradients of all three are checked to agree to a relative
1e-9 (and refimpl's with their closed form) before any time is reported, so that we compare like
with like. Measurements are interleaved (round-robin, with the engine order rotated each round) and
the median is reported, which keeps slow drift of the machine (thermal, other processes) from
favouring one engine. Every run is timed twice, with the cyclic garbage collector on (what a user
sees) and off (the interpreter's work alone), because the two engines differ most in how much
garbage-collector work their graphs cause: micrograd's nodes hold closures that point back at them.

Part 2 — scale. A chain of ``--big-ops`` operations (10^6 by default) in refimpl alone, in a fresh
process so the memory figures are its own: forward and backward time, the peak of
Python-allocated memory (``tracemalloc``, measured in a second process because tracing slows
everything down) and the growth of the resident set (``ru_maxrss``). It runs with the *default*
recursion limit: refimpl's backward is iterative, and this is where that claim is checked.

``--quick`` shrinks the sizes (2,000 and 10^5 operations) for a smoke test.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script from a checkout: make `import refimpl` work
    sys.path.insert(0, str(ROOT))

# The chain: z <- g(z) = c * relu(z*a + b)**2, five ops per block. With these constants g is a
# contraction onto the fixed point z* = 1/6 (where z*a + b = 1/3 and g'(z*) = 1/2), so the values
# stay finite however long the chain, and every leaf gradient is a sum of positive terms: no
# cancellation to blur the comparison. Once z has converged (after ~50 blocks) the leaf gradients
# are known in closed form, dz*/dθ = (∂g/∂θ) / (1 - ∂g/∂z):
# d/da = (1/6)/(1/2) = 1/3, d/db = 1/(1/2) = 2, d/dc = (1/9)/(1/2) = 2/9.
Z0, A, B, C = 0.5, 0.5, 0.25, 1.5
OPS_PER_BLOCK = 5
PARAMS = ("a", "b", "c")  # the leaves whose gradients are compared (z0's underflows to 0 everywhere)
CLOSED_FORM = {"value": 1 / 6, "a": 1 / 3, "b": 2.0, "c": 2 / 9}
CLOSED_FORM_MIN_BLOCKS = 100  # shorter chains have not converged to the fixed point
REL_TOL = 1e-9
THREAD_STACK = 512 * 1024 * 1024  # bytes of C stack for the benchmark thread (micrograd recursion)

FULL = {"ops": 20_000, "big_ops": 1_000_000}
QUICK = {"ops": 2_000, "big_ops": 100_000}


# --- the workload ---------------------------------------------------------------------------------

def build_chain(z: Any, a: Any, b: Any, c: Any, blocks: int) -> Any:
    """The benchmark graph, written once for all engines: ``blocks`` x (mul, add, relu, pow, mul).

    Only operators that refimpl, micrograd and torch tensors share are used, so the three graphs are
    node-for-node the same. ``** 2`` is an integer power (refimpl's ``pow_int``).
    """
    for _ in range(blocks):
        z = ((z * a + b).relu() ** 2) * c
    return z


@dataclass(frozen=True)
class Engine:
    """The few engine-specific things the benchmark needs: make a leaf, run backward, read numbers."""

    name: str
    leaf: Callable[[float], Any]
    backward: Callable[[Any], None]
    grad: Callable[[Any], float]
    value: Callable[[Any], float]


def refimpl_engine() -> Engine:
    from refimpl import Value

    return Engine("refimpl", lambda x: Value(x), lambda out: out.backward(),
                  lambda v: float(v.grad), lambda v: float(v.data))


def micrograd_engine() -> Engine:
    from micrograd.engine import Value

    return Engine("micrograd", lambda x: Value(x), lambda out: out.backward(),
                  lambda v: float(v.grad), lambda v: float(v.data))


def torch_engine() -> Engine:
    import torch

    def leaf(x: float) -> Any:
        return torch.tensor(x, dtype=torch.float64, requires_grad=True)

    return Engine("torch", leaf, lambda out: out.backward(),
                  lambda v: v.grad.item(), lambda v: v.item())


def forward_backward(engine: Engine, blocks: int) -> dict[str, Any]:
    """One forward+backward from fresh leaves, timed in two parts (the graph is freed afterwards)."""
    t0 = time.perf_counter()
    leaves = {name: engine.leaf(x) for name, x in zip(("z0", *PARAMS), (Z0, A, B, C))}
    out = build_chain(leaves["z0"], leaves["a"], leaves["b"], leaves["c"], blocks)
    t1 = time.perf_counter()
    engine.backward(out)
    t2 = time.perf_counter()
    return {"forward_s": t1 - t0, "backward_s": t2 - t1, "total_s": t2 - t0, "blocks": blocks,
            "value": engine.value(out), "grads": {p: engine.grad(leaves[p]) for p in PARAMS}}


def run_once(engine: Engine, blocks: int, collector: bool = True) -> dict[str, Any]:
    """:func:`forward_backward` on a clean heap, with the cyclic garbage collector on or off.

    Garbage left by the previous run (micrograd's graph is full of reference cycles through its
    closures) is collected *before* the clock starts, so no engine pays for another's garbage.
    With ``collector`` on, as in real use, an engine also pays for the collections its own
    allocations trigger; with it off, only the interpreter's work on the graph is measured.
    """
    gc.collect()
    was_enabled = gc.isenabled()
    if not collector:
        gc.disable()
    try:
        return forward_backward(engine, blocks)
    finally:
        if was_enabled:
            gc.enable()


# --- part 1: refimpl vs micrograd vs torch --------------------------------------------------------

def run_in_big_thread(fn: Callable[[], Any], stack_bytes: int = THREAD_STACK) -> Any:
    """Run ``fn`` in a thread with a ``stack_bytes`` C stack; return its result or re-raise.

    micrograd's ``build_topo`` recurses once per node. The main thread's C stack (often 8 MiB) is
    fixed at start-up; a thread's can be chosen, so deep recursion there cannot segfault.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    old = threading.stack_size(stack_bytes)
    try:
        worker = threading.Thread(target=target, name="bench")
        worker.start()
    finally:
        threading.stack_size(old)
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def check_agreement(results: dict[str, dict[str, Any]], reference: str = "refimpl") -> dict[str, float]:
    """Max relative difference of value and leaf gradients from ``reference``; exits if > REL_TOL.

    The reference itself is held to the closed form (when the chain is long enough to converge),
    so "all engines agree" cannot mean "all engines are wrong the same way".
    """
    ref = results[reference]
    results = dict(results)
    if ref["blocks"] >= CLOSED_FORM_MIN_BLOCKS:
        results["closed form"] = {"value": CLOSED_FORM["value"], "blocks": ref["blocks"],
                                  "grads": {p: CLOSED_FORM[p] for p in PARAMS}}
    worst: dict[str, float] = {}
    problems = []
    for name, res in results.items():
        pairs = [("value", ref["value"], res["value"])]
        pairs += [(f"d/d{p}", ref["grads"][p], res["grads"][p]) for p in PARAMS]
        worst[name] = 0.0
        for what, want, got in pairs:
            if not (math.isfinite(want) and math.isfinite(got)):
                problems.append(f"{name} {what}: non-finite ({got!r} vs {want!r})")
                continue
            rel = abs(got - want) / max(abs(want), sys.float_info.min)
            worst[name] = max(worst[name], rel)
            if rel > REL_TOL:
                problems.append(f"{name} {what}: {got!r} vs {reference} {want!r} (rel {rel:.2e})")
    if problems:
        sys.exit("engines disagree, timings would not be comparable:\n  " + "\n  ".join(problems))
    return worst


COLLECTOR_MODES = {"gc on": True, "gc off": False}
TIMES = ("forward_s", "backward_s", "total_s")


def summarise(samples: dict[str, list[dict[str, float]]], ops: int) -> dict[str, Any]:
    """Median times and throughput per engine, and refimpl's throughput relative to each other."""
    engines = {}
    for name, runs in samples.items():
        med = {k: statistics.median(run[k] for run in runs) for k in TIMES}
        best = min(run["total_s"] for run in runs)
        engines[name] = {**med, "ops_per_s": ops / med["total_s"], "best_total_s": best,
                         "best_ops_per_s": ops / best, "samples": runs}
    ref = engines["refimpl"]
    others = [name for name in engines if name != "refimpl"]
    return {"engines": engines,
            "ratios": {f"refimpl/{n}": ref["ops_per_s"] / engines[n]["ops_per_s"] for n in others},
            "best_ratios": {f"refimpl/{n}": ref["best_ops_per_s"] / engines[n]["best_ops_per_s"]
                            for n in others}}


def compare_engines(n_ops: int, rounds: int) -> dict[str, Any]:
    """Part 1: warm up and check agreement once, then ``rounds`` interleaved timed runs per engine.

    Each round times every engine with the garbage collector on and then off. The objects that
    exist before the first run (torch's modules above all — hundreds of thousands of them) are
    moved out of the collector's sight with ``gc.freeze()``: otherwise every full collection
    triggered by a pure-Python engine would also walk torch's heap, and the figures would depend on
    which modules this harness happens to import rather than on the engines.
    """
    blocks = n_ops // OPS_PER_BLOCK
    engines = [refimpl_engine(), micrograd_engine(), torch_engine()]
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 2 * blocks * OPS_PER_BLOCK + 10_000))  # for micrograd only

    def measure() -> dict[str, Any]:
        warm = {e.name: run_once(e, blocks) for e in engines}  # also warms imports and caches
        agreement = check_agreement(warm)
        samples = {mode: {e.name: [] for e in engines} for mode in COLLECTOR_MODES}
        for r in range(rounds):
            for e in engines[r % len(engines):] + engines[:r % len(engines)]:
                for mode, collector in COLLECTOR_MODES.items():
                    res = run_once(e, blocks, collector)
                    samples[mode][e.name].append({k: res[k] for k in TIMES})
        return {"warmup": warm, "max_rel_diff": agreement, "samples": samples}

    gc.collect()
    gc.freeze()
    try:
        measured = run_in_big_thread(measure)
    finally:
        gc.unfreeze()
        sys.setrecursionlimit(old_limit)
        gc.collect()

    ops = blocks * OPS_PER_BLOCK
    ref_run = measured["warmup"]["refimpl"]
    return {"ops": ops, "rounds": rounds, "value": ref_run["value"], "grads": ref_run["grads"],
            "max_rel_diff_vs_refimpl": measured["max_rel_diff"],
            "modes": {mode: summarise(samples, ops) for mode, samples in measured["samples"].items()}}


# --- part 2: a million-node chain in refimpl, in a subprocess -------------------------------------

def maxrss_bytes() -> int:
    """This process's peak resident set size (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def vmhwm_bytes() -> int | None:
    """Linux's per-address-space peak RSS (``VmHWM``), a cross-check of ru_maxrss; None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def big_chain_child(n_ops: int, trace: bool) -> dict[str, Any]:
    """Runs inside the subprocess: one forward+backward of an ``n_ops`` chain in refimpl.

    The recursion limit is left at the interpreter's default on purpose. With ``trace``, tracemalloc
    records the peak of Python allocations (times from that run are not representative).
    """
    from refimpl import Value

    blocks = n_ops // OPS_PER_BLOCK
    gc.collect()
    rss_before, hwm_before = maxrss_bytes(), vmhwm_bytes()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    z0, a, b, c = Value(Z0), Value(A), Value(B), Value(C)
    out = build_chain(z0, a, b, c, blocks)
    t1 = time.perf_counter()
    error = None
    try:
        out.backward()
    except RecursionError as e:
        error = repr(e)
    t2 = time.perf_counter()
    traced_peak = tracemalloc.get_traced_memory()[1] if trace else None
    if trace:
        tracemalloc.stop()
    rss_after, hwm_after = maxrss_bytes(), vmhwm_bytes()
    value, grads = out.data, {"a": a.grad, "b": b.grad, "c": c.grad}
    del out, z0, a, b, c
    gc.collect()
    t3 = time.perf_counter()
    return {"ops": blocks * OPS_PER_BLOCK, "recursion_limit": sys.getrecursionlimit(),
            "recursion_error": error, "forward_s": t1 - t0, "backward_s": t2 - t1,
            "total_s": t2 - t0, "teardown_s": t3 - t2, "value": value, "grads": grads,
            "tracemalloc_peak_bytes": traced_peak, "maxrss_before_bytes": rss_before,
            "maxrss_delta_bytes": rss_after - rss_before,
            "vmhwm_delta_bytes": None if hwm_before is None else hwm_after - hwm_before}


# Why a launcher: on Linux a process's ru_maxrss survives exec, so a child started directly by this
# (torch-laden, hundreds of MiB) process would report *our* peak as its baseline and a delta of 0.
# A grandchild forked by a small launcher inherits only the launcher's ~10 MiB peak.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


def run_child(n_ops: int, trace: bool) -> dict[str, Any]:
    """Start this script again as ``--child-big-chain`` (via the launcher) and read its JSON line."""
    cmd = [sys.executable, "-c", _LAUNCHER,
           sys.executable, str(Path(__file__).resolve()), "--child-big-chain", str(n_ops)]
    if trace:
        cmd.append("--trace")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"big-chain subprocess failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def big_chain(n_ops: int, reference_grads: dict[str, float] | None) -> dict[str, Any]:
    """Part 2: one timed run and one tracemalloc run, each in its own clean subprocess.

    Because the chain's map is a contraction, the leaf gradients of a long chain converge: the
    million-op gradients must equal part 1's, a cheap end-to-end check of the deep backward.
    """
    timed = run_child(n_ops, trace=False)
    traced = run_child(n_ops, trace=True)
    result = {**timed, "ops_per_s": timed["ops"] / timed["total_s"],
              "tracemalloc_peak_bytes": traced["tracemalloc_peak_bytes"],
              "bytes_per_op_tracemalloc": traced["tracemalloc_peak_bytes"] / timed["ops"],
              "bytes_per_op_rss": timed["maxrss_delta_bytes"] / timed["ops"]}
    if reference_grads is not None:
        result["grads_match_part1"] = all(
            math.isclose(timed["grads"][p], reference_grads[p], rel_tol=REL_TOL) for p in PARAMS)
    if timed["ops"] // OPS_PER_BLOCK >= CLOSED_FORM_MIN_BLOCKS:
        result["grads_match_closed_form"] = all(
            math.isclose(timed["grads"][p], CLOSED_FORM[p], rel_tol=REL_TOL) for p in PARAMS)
    return result


# --- reporting ------------------------------------------------------------------------------------

def environment() -> dict[str, Any]:
    import torch

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "micrograd": metadata.version("micrograd")}


def print_comparison(part1: dict[str, Any]) -> None:
    print(f"\n== Part 1: {part1['ops']:,}-op scalar chain, forward+backward "
          f"(median of {part1['rounds']} interleaved rounds) ==")
    grads = ", ".join(f"d/d{p}={g:.15g}" for p, g in part1["grads"].items())
    print(f"value {part1['value']!r}; grads {grads}")
    print("max rel diff of value and grads from refimpl's: "
          + ", ".join(f"{name} {d:.1e}" for name, d in part1["max_rel_diff_vs_refimpl"].items()))
    print("(forward, backward, total and ops/s are medians; 'best' is the fastest round, a steadier\n"
          " figure when other processes share the machine)")
    header = (f"{'collector':<9} {'engine':<10} {'forward ms':>11} {'backward ms':>12} "
              f"{'total ms':>10} {'ops/s':>10} {'best ms':>9} {'best ops/s':>11}")
    print(header)
    print("-" * len(header))
    for mode, result in part1["modes"].items():
        for name, e in result["engines"].items():
            print(f"{mode:<9} {name:<10} {e['forward_s'] * 1e3:>11.2f} {e['backward_s'] * 1e3:>12.2f} "
                  f"{e['total_s'] * 1e3:>10.2f} {e['ops_per_s']:>10,.0f} "
                  f"{e['best_total_s'] * 1e3:>9.2f} {e['best_ops_per_s']:>11,.0f}")
    for mode, result in part1["modes"].items():
        for key, ratio in result["ratios"].items():
            note = ""
            if key.endswith("micrograd"):
                note = f"  (target >= 1.0: {'met' if ratio >= 1.0 else 'NOT met'})"
            print(f"throughput {key} ({mode}): {ratio:.2f}x median, "
                  f"{result['best_ratios'][key]:.2f}x best{note}")


def print_big_chain(part2: dict[str, Any]) -> None:
    mib = 1024 * 1024
    print(f"\n== Part 2: {part2['ops']:,}-op chain in refimpl (fresh subprocess) ==")
    print(f"recursion limit {part2['recursion_limit']} (default), RecursionError: "
          f"{part2['recursion_error'] or 'none'}")
    print(f"forward {part2['forward_s']:.2f} s, backward {part2['backward_s']:.2f} s, "
          f"total {part2['total_s']:.2f} s ({part2['ops_per_s']:,.0f} ops/s); "
          f"freeing the graph {part2['teardown_s']:.2f} s")
    print(f"peak Python allocations (tracemalloc): {part2['tracemalloc_peak_bytes'] / mib:,.1f} MiB "
          f"({part2['bytes_per_op_tracemalloc']:.0f} B/op)")
    print(f"resident set growth (ru_maxrss delta): {part2['maxrss_delta_bytes'] / mib:,.1f} MiB "
          f"({part2['bytes_per_op_rss']:.0f} B/op; baseline {part2['maxrss_before_bytes'] / mib:.1f} MiB)")
    if part2["vmhwm_delta_bytes"] is not None:
        print(f"  cross-check, VmHWM delta: {part2['vmhwm_delta_bytes'] / mib:,.1f} MiB")
    if "grads_match_part1" in part2:
        print(f"leaf gradients equal part 1's to rel {REL_TOL:g}: {part2['grads_match_part1']}")
    if "grads_match_closed_form" in part2:
        print(f"leaf gradients equal the closed form (1/3, 2, 2/9) to rel {REL_TOL:g}: "
              f"{part2['grads_match_closed_form']}")


def profile_refimpl(n_ops: int, top: int = 15) -> None:
    """cProfile of one refimpl forward+backward, to see where the time goes."""
    engine = refimpl_engine()
    forward_backward(engine, n_ops // OPS_PER_BLOCK)  # warm-up
    gc.collect()
    profiler = cProfile.Profile()
    profiler.runcall(forward_backward, engine, n_ops // OPS_PER_BLOCK)
    print(f"\n== cProfile: refimpl, {n_ops:,}-op chain (top {top} by own time) ==")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(top)


# --- command line ---------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON here")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per engine in part 1 (default 5)")
    p.add_argument("--ops", type=int, help="part 1 chain length (default 20,000; --quick 2,000)")
    p.add_argument("--big-ops", type=int, help="part 2 chain length (default 10^6; --quick 10^5)")
    p.add_argument("--skip-big", action="store_true", help="skip part 2")
    p.add_argument("--profile", action="store_true", help="also print a cProfile of refimpl")
    p.add_argument("--child-big-chain", type=int, help=argparse.SUPPRESS)  # internal: part 2 worker
    p.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child_big_chain is not None:
        print(json.dumps(big_chain_child(args.child_big_chain, args.trace)))
        return
    sizes = QUICK if args.quick else FULL
    n_ops = args.ops or sizes["ops"]
    big_ops = args.big_ops or sizes["big_ops"]

    env = environment()
    print("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    part1 = compare_engines(n_ops, args.rounds)
    print_comparison(part1)
    part2 = None
    if not args.skip_big:
        part2 = big_chain(big_ops, part1["grads"])
        print_big_chain(part2)
    if args.profile:
        profile_refimpl(n_ops)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"environment": env, "quick": args.quick, "chain": {
            "block": "z = ((z * a + b).relu() ** 2) * c", "z0": Z0, "a": A, "b": B, "c": C},
            "comparison": part1, "big_chain": part2}, indent=2) + "\n")
        print(f"\nresults written to {args.json}")


if __name__ == "__main__":
    main()
