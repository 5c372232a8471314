"""Any Python implementation as a JSON Lines server: the worker process a Python implementation runs in
(by default for every implementation a user brings, :mod:`conformance.impls.loading`).

    python -m conformance.commands.serve SPEC

``SPEC`` is anything ``--impl`` accepts (a registered name, ``module:attr``, ``path.py[:attr]``,
``micrograd:<module>``). The server speaks docs/protocol.md on stdin/stdout, so the harness's
:class:`~conformance.impls.adapters.jsonl.CommandAdapter` gives the implementation what a ``cmd:`` one
gets: a per-case timeout, and a crash (segfault, ``os.abort``, ``sys.exit``) that costs one case,
not the run. Network cases (the protocol's ``networks`` extension) are served too.

The protocol owns the real stdout (fd 1 is duplicated for it); fd 1 and ``sys.stdout`` are pointed
at stderr before the implementation is imported, so whatever it prints — from Python or from C —
lands in stderr, where the harness only quotes it, instead of corrupting the stream.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, BinaryIO

from conformance import kinds
from conformance.impls.adapters.jsonl import STDERR_MARKER
from conformance.impls.loading import SERVE_PREFIX, resolve


def _protocol_stream() -> BinaryIO:
    """The original stdout for protocol lines; fd 1 and sys.stdout now go to stderr."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _hello(impl: Any) -> dict[str, Any]:
    caps = impl.capabilities
    capabilities: dict[str, Any] = {"ops": sorted(caps.ops), "dtypes": list(caps.dtypes),
                                    "second_order": bool(caps.second_order)}
    if getattr(caps, "accumulate", None):  # mixed precision (only when declared: the hello is as it was otherwise)
        capabilities["accumulate"] = dict(caps.accumulate)
    if getattr(caps, "summation", None):  # a claimed summation order (only when declared, as accumulate)
        capabilities["summation"] = dict(caps.summation)
    if getattr(caps, "without", None):  # part of a layer op (only when declared, as accumulate)
        capabilities["without"] = {op: sorted(knobs) for op, knobs in caps.without.items()}
    if getattr(caps, "networks", False) and hasattr(impl, "run_network"):
        capabilities["networks"] = {  # the whole declaration (docs/protocol.md), at its grain
            "activations": sorted(caps.activations), "output_activations": sorted(caps.output_activations),
            "losses": {k: sorted(v) for k, v in caps.losses.items()},
            "optimizers": {k: sorted(v) for k, v in caps.optimizers.items()},
            "bias": sorted(caps.bias), "layers": list(caps.layers), "batch_sizes": list(caps.batch_sizes)}
        if caps.layer_kinds:  # (only when there are some: an MLP implementation's hello is as it was)
            capabilities["networks"]["layer_kinds"] = sorted(caps.layer_kinds)
    return {"type": "hello", "protocol": 1, "name": impl.name, "version": str(impl.version),
            "capabilities": capabilities, "stderr_marker": True}


def _answer(impl: Any, doc: dict[str, Any]) -> bytes:
    """Run one case and write its result line; a result that cannot be written (wrong types, not
    JSON-able) becomes an error result saying so, as it would be judged in process."""
    try:
        k = kinds.by_format(doc.get("format"))
    except ValueError:
        k = kinds.KINDS[0]  # its reader says what is wrong with the document, as an error result
    try:
        found, lines = k.run_captured(impl, k.from_json(doc))
        for line in lines:  # to stderr, where the harness collects it as this case's output
            print(line, file=sys.stderr)
        print(STDERR_MARKER, file=sys.stderr, flush=True)
        result = k.result_to_json(found)
        text = json.dumps({"type": "result", "id": doc.get("id"), "result": result}, allow_nan=False)
    except Exception as exc:  # what the implementation returned is unusable
        unusable = k.error_result(f"unusable result: {type(exc).__name__}: {exc}")
        text = json.dumps({"type": "result", "id": doc.get("id"), "result": k.result_to_json(unusable)})
    return text.encode() + b"\n"


def serve(spec: str) -> int:
    out = _protocol_stream()

    try:
        impl = resolve(spec, isolate=False)  # this process is the worker
    except Exception as exc:  # one line the harness quotes as its LookupError (see loading._worker)
        reason = str(exc) if isinstance(exc, LookupError) else f"{spec!r} failed to load: {type(exc).__name__}: {exc}"
        print(SERVE_PREFIX + " ".join(reason.split()), file=sys.stderr)
        return 2
    for line in sys.stdin.buffer:
        msg = json.loads(line)
        kind = msg.get("type")
        if kind == "bye":
            break
        out.write(json.dumps(_hello(impl)).encode() + b"\n" if kind == "hello" else _answer(impl, msg["case"]))
        out.flush()
    getattr(impl, "close", lambda: None)()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m conformance.commands.serve SPEC  (SPEC: anything --impl accepts)", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(serve(sys.argv[1]))
