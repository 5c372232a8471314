"""The tutorial MLP through every adapter path, correct and with three planted bugs, at many seeds.

For each adapter PATH × VARIANT × seed this runs ``python -m conformance verify --impl SPEC --profile ci
--seed S`` as a subprocess, one at a time, and records its exit code, its verdict, every failing
suite's minimal case (its number of layers, its shapes), the diagnosis lines printed under it, and the
wall time. It prints a table and writes every row as JSON (``--out``)::

    .venv/bin/python tools/adapter_matrix.py --out /tmp/adapter_matrix.json --table /tmp/adapter_matrix.txt

The paths (the seed tutorial's MLP: sigmoid layers with bias, MSE with mean reduction, plain SGD):

* ``network-class`` — ``examples/numpy_mlp.py`` (``NetworkClass``);
* ``layer-functions`` — ``examples/tutorial_layer_functions.py`` (``layer_functions``);
* ``layer-functions-example`` — ``examples/layer_functions.py`` restricted to sigmoid and mse (its
  ``layer_functions(...)`` call patched);
* ``jsonl-python`` — ``examples/tutorial_jsonl.py``, a standalone program over the JSON Lines protocol;
* ``jsonl-node`` — ``examples/node/engine.js`` (graphs too; its network part is patched).

The variants: ``correct`` (as it is: must conform), ``bias-mean`` (the bias gradient averaged over the
batch), ``mse-no-2-over-N`` (the MSE gradient without its factor 2/N), ``transposed-dW`` (the weight
gradient transposed: only square layers type-check in numpy). Each is the path's file copied to a
temporary folder with a textual patch that must replace exactly one occurrence. Nothing in the
project is changed. Standard library only (the project runs in the subprocesses).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("correct", "bias-mean", "mse-no-2-over-N", "transposed-dW")
#: the diagnosis each bug should get (a regular expression searched in the diagnosis line)
EXPECTED = {
    "bias-mean": r"1/batch",
    "mse-no-2-over-N": r"torch's × ",  # any constant factor: N/2 of torch's, ½ at N = 1
    "transposed-dW": r"transpose",
}


def _after_marker(marker: str, comment: str = "#") -> Callable[[str], int]:
    """Counts the non-blank, non-comment lines after the line that starts with ``marker``."""
    def count(text: str) -> int:
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith(marker))
        return sum(1 for line in lines[start + 1:] if line.strip() and not line.strip().startswith(comment))
    return count


def _call(start: str) -> Callable[[str], int]:
    """Counts the lines of the call that starts with ``start`` and ends at a line ``)``."""
    def count(text: str) -> int:
        lines = text.splitlines()
        i = next(i for i, line in enumerate(lines) if line.startswith(start))
        j = next(j for j in range(i, len(lines)) if lines[j].strip() == ")")
        return j - i + 1
    return count


def _between(first: str, last: str, comment: str = "//") -> Callable[[str], int]:
    """Counts the non-blank, non-comment lines from the line starting with ``first`` to the one with ``last``."""
    def count(text: str) -> int:
        lines = text.splitlines()
        i = next(i for i, line in enumerate(lines) if line.startswith(first))
        j = next(j for j in range(i, len(lines)) if lines[j].startswith(last))
        return sum(1 for line in lines[i:j] if line.strip() and not line.strip().startswith(comment))
    return count


Patch = tuple[str, str]


@dataclass(frozen=True)
class AdapterPath:
    """One way to hand the tutorial MLP to the harness: the file, how verify is told of it, its patches."""

    name: str
    source: str  # relative to the project
    impl: str  # ``{file}``: the (patched) copy; ``{python}``: the interpreter
    count: Callable[[str], int]
    counted: str  # what the line count is of
    patches: dict[str, list[Patch]]
    base: list[Patch] = field(default_factory=list)  # applied to every variant, ``correct`` included


NUMPY_MLP_PATCHES = {
    "bias-mean": [("dbs.insert(0, delta.sum(axis=0))", "dbs.insert(0, delta.mean(axis=0))")],
    "mse-no-2-over-N": [("2.0 / a[-1].size * (a[-1] - y)", "(a[-1] - y)")],
    "transposed-dW": [("dWs.insert(0, a[l].T @ delta)", "dWs.insert(0, (a[l].T @ delta).T)")],
}

PATHS = {
    "network-class": AdapterPath(
        "network-class", "examples/numpy_mlp.py", "{file}", _after_marker("# --- the adapter"),
        "non-blank lines after '# --- the adapter'", NUMPY_MLP_PATCHES),
    "layer-functions": AdapterPath(
        "layer-functions", "examples/tutorial_layer_functions.py", "{file}", _call("adapter = layer_functions("),
        "the layer_functions(...) call", {
            "bias-mean": [("db = np.sum(dout, axis=0)", "db = np.mean(dout, axis=0)")],
            "mse-no-2-over-N": [("dx = 2 * (x - y) / x.size", "dx = x - y")],
            "transposed-dW": [("dw = x.T @ dout", "dw = (x.T @ dout).T")],
        }),
    "layer-functions-example": AdapterPath(
        "layer-functions-example", "examples/layer_functions.py", "{file}", _call("adapter = layer_functions("),
        "the layer_functions(...) call", {
            "bias-mean": [("db = dout.sum(axis=0)", "db = dout.mean(axis=0)")],
            "mse-no-2-over-N": [("2 * diff / diff.size", "diff")],
            "transposed-dW": [("dw = x.reshape(x.shape[0], -1).T @ dout",
                               "dw = (x.reshape(x.shape[0], -1).T @ dout).T")],
        },
        base=[('activations={"relu": (relu_forward, relu_backward), "sigmoid": (sigmoid_forward, sigmoid_backward)},',
               'activations={"sigmoid": (sigmoid_forward, sigmoid_backward)},'),
              ('losses={"cross_entropy": softmax_loss, "mse": mse_loss},', 'losses={"mse": mse_loss},')]),
    "jsonl-python": AdapterPath(
        "jsonl-python", "examples/tutorial_jsonl.py", "cmd:{python} {file}", _after_marker("# --- the adapter"),
        "non-blank, non-comment lines after '# --- the adapter' (hello, conversions, protocol loop)",
        NUMPY_MLP_PATCHES),
    "jsonl-node": AdapterPath(
        "jsonl-node", "examples/node/engine.js", "cmd:node {file}",
        _between("// --- training runs", "// --- the protocol loop"),
        "non-blank, non-comment lines of its 'training runs' section (the whole network engine, not an adapter)", {
            "bias-mean": [("dB[o] += delta[b][o];", "dB[o] += delta[b][o] / delta.length;")],
            "mse-no-2-over-N": [("return loss.grad(o, y[b][j], lossAttrs, j) * scale;",
                                 "return loss === LOSSES.mse && reduction === 'mean' ? o - y[b][j]"
                                 " : loss.grad(o, y[b][j], lossAttrs, j) * scale;")],
            "transposed-dW": [("dW[o * la.nIn + i] += delta[b][o] * a[b][i];",
                               "dW[i * la.nOut + o] += delta[b][o] * a[b][i];")],
        }),
}
DEFAULT_PATHS = ("network-class", "layer-functions", "layer-functions-example", "jsonl-python", "jsonl-node")


def patched(text: str, patches: list[Patch], where: str) -> str:
    """``text`` with each patch applied; each must replace exactly one occurrence."""
    for old, new in patches:
        n = text.count(old)
        assert n == 1, f"{where}: patch {old!r} found {n} times, expected exactly once"
        text = text.replace(old, new)
    return text


# --- parsing verify's output -----------------------------------------------------------------------

FAIL_RE = re.compile(r"^FAIL (?P<suite>.+?): minimal case (?P<id>\S+) \((?P<size>.*)\): (?P<verdict>[\w-]+)$")
SAME_RE = re.compile(r"^FAIL (?P<suite>.+?): minimal case (?P<id>\S+), the same case as '(?P<first>.+)' above: "
                     r"(?P<verdict>[\w-]+)$")
END_RE = re.compile(r"^(?P<impl>.+) (?P<verdict>CONFORMS|DOES NOT CONFORM): ")
SUITE_RE = re.compile(r"^  (?P<suite>\S.*?)\s+(?P<cases>\d+) cases  (?P<counts>.*?)  \((?P<secs>[\d.]+)s\)$")


def parse(stdout: str) -> dict:
    """verify's verdict, its suite lines and every failing suite's minimal case (module doc)."""
    lines = stdout.splitlines()
    verdict = None
    for line in lines:
        m = END_RE.match(line)
        if m:
            verdict = m["verdict"]
    suites = [{"suite": m["suite"], "cases": int(m["cases"]), "counts": m["counts"]}
              for m in map(SUITE_RE.match, lines) if m]
    failures: list[dict] = []
    i = 0
    while i < len(lines):
        m, same = FAIL_RE.match(lines[i]), SAME_RE.match(lines[i])
        if same:
            first = next((f for f in failures if f["suite"] == same["first"]), None)
            failures.append({**(first or {}), "suite": same["suite"], "verdict": same["verdict"],
                             "same_as": same["first"]})
            i += 1
            continue
        if not m:
            i += 1
            continue
        f = {"suite": m["suite"], "case_id": m["id"], "size": m["size"], "verdict": m["verdict"], "reason": "",
             "diagnoses": [], "notes": [], "layers": None, "shapes": None, "batch": None, "steps": None}
        i += 1
        while i < len(lines) and lines[i] != "case JSON:":
            text = lines[i].strip()
            if text.startswith("diagnosis: "):
                f["diagnoses"].append(text[len("diagnosis: "):])
            elif text.startswith("(") and text.endswith(")"):
                f["notes"].append(text)
            elif not f["reason"]:
                f["reason"] = text
            i += 1
        j = i + 1
        while j < len(lines) and lines[j] != "reproduce with torch:":
            j += 1
        try:
            case = json.loads("\n".join(lines[i + 1:j]))
            f["layers"] = len(case["layers"])
            f["shapes"] = [[la["in_features"], la["out_features"]] for la in case["layers"]]
            f["batch"] = case["batches"][0]["x"]["shape"][0]
            f["steps"] = len(case["batches"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            f["notes"].append(f"adapter_matrix: case JSON not parsed: {exc}")
        failures.append(f)
        i = j
    return {"verdict": verdict, "suites": suites, "failures": failures}


# --- running ---------------------------------------------------------------------------------------

def run_one(python: str, spec: str, seed: int, profile: str, timeout: float) -> tuple[int | None, float, str]:
    """One verify run: exit code (None on a timeout), wall seconds, stdout and stderr."""
    cmd = [python, "-m", "conformance", "verify", "--impl", spec, "--profile", profile, "--seed", str(seed)]
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
        code, out = p.returncode, p.stdout + ("\n--- stderr ---\n" + p.stderr if p.stderr else "")
    except subprocess.TimeoutExpired as exc:
        code = None
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    return code, time.monotonic() - start, out


def summarize(row: dict) -> None:
    """Adds the per-run judgements the table counts."""
    fails = row["failures"]
    row["failing_suites"] = len(fails)
    row["one_layer_all"] = bool(fails) and all(f.get("layers") == 1 for f in fails)
    row["one_layer_any"] = any(f.get("layers") == 1 for f in fails)
    pattern = EXPECTED.get(row["variant"])
    if pattern is None:
        row["diag_all"] = row["diag_any"] = None
    else:
        hit = [any(re.search(pattern, d) for d in f.get("diagnoses", [])) for f in fails]
        row["diag_all"] = bool(fails) and all(hit)
        row["diag_any"] = any(hit)
    row["any_diagnosis"] = any(f.get("diagnoses") for f in fails)
    want = 0 if row["variant"] == "correct" else 1
    row["wrong_way"] = row["exit_code"] != want or row["verdict"] != ("CONFORMS" if want == 0 else "DOES NOT CONFORM")


def table(rows: list[dict], paths: list[str], variants: list[str], adapters: dict) -> str:
    """The printed table, then the adapters' lines, the diagnoses seen and everything unexpected."""
    out = []
    head = (f"{'path':<24} {'variant':<16} {'seeds':>5} {'conf':>4} {'not':>4} {'err':>3} {'1-layer':>7} "
            f"{'diag':>4} {'diag∃':>5} {'med s':>6} {'max s':>6}")
    out += [head, "-" * len(head)]
    for p in paths:
        for v in variants:
            rs = [r for r in rows if r["path"] == p and r["variant"] == v]
            if not rs:
                continue
            conf = sum(r["exit_code"] == 0 for r in rs)
            nots = sum(r["exit_code"] == 1 for r in rs)
            other = len(rs) - conf - nots
            walls = [r["wall_s"] for r in rs]
            if v == "correct":
                layer = diag = diag_any = "-"
            else:
                layer = str(sum(r["one_layer_all"] for r in rs))
                diag = str(sum(bool(r["diag_all"]) for r in rs))
                diag_any = str(sum(bool(r["diag_any"]) for r in rs))
            out.append(f"{p:<24} {v:<16} {len(rs):>5} {conf:>4} {nots:>4} {other:>3} {layer:>7} {diag:>4} "
                       f"{diag_any:>5} {statistics.median(walls):>6.1f} {max(walls):>6.1f}")
    out.append("")
    out.append("conf/not/err: runs exiting 0 (CONFORMS) / 1 (DOES NOT CONFORM) / otherwise; 1-layer: runs where every "
               "failing suite's minimal case has one layer; diag: runs where every failing suite's minimal case has "
               "the expected diagnosis line (bias-mean: '1/batch', mse-no-2-over-N: any 'torch's × factor', "
               "transposed-dW: 'transpose'); diag∃: at least one suite has it; med/max s: wall seconds per run.")
    failing = [r["wall_s"] for r in rows if r["exit_code"] == 1]
    if failing:
        out.append(f"failing runs (DOES NOT CONFORM): {len(failing)}, wall median {statistics.median(failing):.1f}s, "
                   f"max {max(failing):.1f}s")
    out.append("")
    out.append("adapter lines:")
    for p in paths:
        a = adapters[p]
        out.append(f"  {p:<24} {a['lines']:>4}  {a['source']} — {a['counted']}")
    out.append("")
    out.append("diagnosis lines printed (per path × variant; count of failing suites with that line):")
    for p in paths:
        for v in variants:
            if v == "correct":
                continue
            rs = [r for r in rows if r["path"] == p and r["variant"] == v]
            seen: collections.Counter[str] = collections.Counter()
            none = 0
            verdicts: collections.Counter[str] = collections.Counter()
            for r in rs:
                for f in r["failures"]:
                    verdicts[f.get("verdict", "?")] += 1
                    if not f.get("diagnoses"):
                        none += 1
                    for d in f.get("diagnoses", []):
                        seen[re.sub(r"^\S+ = ", "", d)] += 1
            if not rs:
                continue
            out.append(f"  {p} / {v}: minimal-case verdicts {dict(verdicts)}; suites without a diagnosis: {none}")
            for d, n in seen.most_common():
                out.append(f"      {n:>3} × {d}")
    out.append("")
    odd, shape_errors = [], []
    for r in rows:
        where = f"{r['path']} / {r['variant']} / seed {r['seed']}"
        if r["wrong_way"]:
            odd.append(f"  WRONG WAY {where}: exit {r['exit_code']}, {r['verdict']} (log {r['log']})")
        if r["variant"] == "correct":
            continue
        pattern = EXPECTED[r["variant"]]
        for f in r["failures"]:
            problems = []
            if f.get("layers") != 1:
                problems.append(f"minimal case has {f.get('layers')} layers")
            if not any(re.search(pattern, d) for d in f.get("diagnoses", [])):
                problems.append("no expected diagnosis" + (f" (printed: {f['diagnoses']})" if f.get("diagnoses")
                                                             else " (none printed)"))
            square = all(a == b for a, b in (f.get("shapes") or [[0, 1]]))
            if problems and r["variant"] == "transposed-dW" and f.get("verdict") == "error" and not square:
                shape_errors.append(f"  {where} / {f['suite']}: {f.get('verdict')} on {f.get('shapes')} "
                                    f"(case {f.get('case_id')}): {f.get('reason', '')[:160]}")
            elif problems:
                odd.append(f"  {where} / {f['suite']}: {'; '.join(problems)} — case {f.get('case_id')} "
                           f"({f.get('size')}) {f.get('verdict')}: {f.get('reason', '')[:200]}")
    out.append("unexpected (a run that went the wrong way; a failing suite whose minimal case is not one layer or "
               "lacks the expected diagnosis):")
    out += odd or ["  none"]
    out.append("")
    out.append("transposed-dW suites whose minimal case is an error on a non-square layer (the shape error numpy "
               "raises there; no diagnosis is printed for an error):")
    out += shape_errors or ["  none"]
    return "\n".join(out)


def seeds_of(text: str) -> list[int]:
    """``0-9``, ``3``, ``0,2,5`` or a mix."""
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the JSON of every row")
    ap.add_argument("--table", help="also write the printed table here")
    ap.add_argument("--paths", default=",".join(DEFAULT_PATHS), help=f"of {', '.join(PATHS)}")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--python", default=str(ROOT / ".venv/bin/python"), help="runs verify and the Python programs")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per verify run")
    ap.add_argument("--logs", help="keep each run's output here (default: a folder under /tmp)")
    args = ap.parse_args(argv)
    paths = [p for p in args.paths.split(",") if p]
    variants = [v for v in args.variants.split(",") if v]
    for p in paths:
        if p not in PATHS:
            ap.error(f"unknown path {p!r}: one of {', '.join(PATHS)}")
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}: one of {', '.join(VARIANTS)}")
    seeds = seeds_of(args.seeds)
    work = Path(tempfile.mkdtemp(prefix="adapter_matrix."))
    logs = Path(args.logs) if args.logs else work / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    adapters, specs = {}, {}
    for p in paths:
        ap_ = PATHS[p]
        text = (ROOT / ap_.source).read_text()
        base = patched(text, ap_.base, f"{p} (base)")
        adapters[p] = {"source": ap_.source, "lines": ap_.count(base), "counted": ap_.counted,
                       "sha256": hashlib.sha256(text.encode()).hexdigest(), "base_patches": ap_.base}
        for v in variants:
            folder = work / f"{p}-{v}"
            folder.mkdir()
            file = folder / Path(ap_.source).name
            file.write_text(patched(base, ap_.patches.get(v, []) if v != "correct" else [], f"{p} / {v}"))
            specs[(p, v)] = ap_.impl.format(file=file, python=args.python)
    print(f"variants written under {work}; logs in {logs}", file=sys.stderr)

    rows: list[dict] = []
    total = len(paths) * len(variants) * len(seeds)
    for p in paths:
        for v in variants:
            for seed in seeds:
                spec = specs[(p, v)]
                code, wall, out = run_one(args.python, spec, seed, args.profile, args.timeout)
                log = logs / f"{p}.{v}.seed{seed}.txt"
                log.write_text(out)
                parsed = parse(out)
                row = {"path": p, "variant": v, "seed": seed, "profile": args.profile, "spec": spec,
                       "patches": PATHS[p].patches.get(v, []) if v != "correct" else [], "exit_code": code,
                       "wall_s": round(wall, 2), "log": str(log), **parsed}
                summarize(row)
                rows.append(row)
                print(f"[{len(rows)}/{total}] {p} {v} seed {seed}: exit {code} {row['verdict']} {wall:.1f}s "
                      f"fails={[(f['suite'], f.get('layers'), f.get('verdict')) for f in row['failures']]}",
                      file=sys.stderr, flush=True)
                Path(args.out).write_text(json.dumps({"adapters": adapters, "rows": rows}, indent=1,
                                                     ensure_ascii=False))
    text = table(rows, paths, variants, adapters)
    print(text)
    if args.table:
        Path(args.table).write_text(text + "\n")
    return 1 if any(r["wrong_way"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
