"""Any program as an implementation under test: JSON Lines over its stdin and stdout.

``--impl "cmd:node examples/node/engine.js"`` runs the command (split with :func:`shlex.split`, no
shell) and speaks the protocol of ``docs/protocol.md`` (schema:
``conformance/schema/jsonl-protocol.schema.json``)::

    harness → {"type": "hello", "protocol": 1}
    harness ← {"type": "hello", "protocol": 1, "name": …, "version": …, "capabilities": {…}}
    harness → {"type": "case", "case": <graph case>}          one line per case
    harness ← {"type": "result", "result": <graph result>}    exactly one line per case
    harness → {"type": "bye"}

The process is isolated: whatever it does becomes a :class:`GraphResult` with a one-line ``error``
for that case, never an exception or a hang of the harness. The error starts with what happened:

* ``timeout: …``        no answer within ``timeout`` seconds (the verdict is ``timeout``, see
  :func:`is_timeout`);
* ``crash: …``          the process exited or was killed by a signal (code or signal named);
* ``protocol error: …`` a line that is not JSON, not a ``result``, longer than ``max_line``
  bytes, not UTF-8, or answering another case id;
* ``malformed result: …`` a well-framed result whose document does not follow the graph-result
  format (the process is kept: the stream is still in step);
* ``restart failed: …`` the process could not be started again after one of the above.

After a timeout, a crash or a protocol error the process (its whole process group) is killed and a
fresh one is started, with the handshake, for the next case. stderr is drained continuously and
its last lines are quoted in these errors; it is never parsed. ``close()`` (also the context
manager, and at interpreter exit through :func:`weakref.finalize`) says bye, waits briefly and
kills what is left: no process outlives the adapter, no zombie is left unreaped.

What a result *says* is passed to the verdict logic untouched: a wrong shape, a NaN, a missing
gradient. A gradient given as ``null`` counts as missing (the verdict reports ``result is missing
grad[x]``).
"""

from __future__ import annotations

import collections
import json
import math
import os
import queue
import shlex
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from conformance.case.dtypes import DTYPES, SUMMATIONS, accumulation, summation
from conformance.case.graph import RESULT_FORMAT, VERSION, GraphCase, GraphResult, Tensor, case_to_json
from conformance.case.network import NetworkCase, NetworkResult
from conformance.case.network import case_to_json as network_case_to_json
from conformance.case.network import result_from_json as network_result_from_json
from conformance.impls import Capabilities

PROTOCOL = 1
PREFIX = "cmd:"
TIMEOUT_PREFIX = "timeout: "
MAX_LINE = 16 * 1024 * 1024  # bytes of one stdout line; longer is a protocol error
#: ``transcript(direction, line)``: called with ``"sent"`` or ``"received"`` and each protocol line
#: (bytes, without its newline) — a record of the traffic, for debugging an engine or checking it
Transcript = Callable[[str, bytes], None]
STDERR_LINES = 20  # kept from the end of stderr
OUTPUT_KEPT = 1000  # stderr lines kept until the harness takes them as a case's output
#: the stderr line a program whose hello says ``"stderr_marker": true`` writes after each case's own
#: stderr output (before its result line), so that the harness gives every line to the right case
#: (``conformance.commands.serve`` does; without it, a line still unread when the answer arrives
#: goes with the next case)
STDERR_MARKER = "\x1econformance: end of case output"
MARKER_WAIT = 2.0  # seconds to wait for the marker after an answer
QUOTE = 300  # characters of stderr / of a bad line quoted in an error
MAX_START_FAILURES = 3  # consecutive failed restarts, after which cases fail at once

_NUMBER_STRINGS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
_RESULT_KEYS = {"format", "version", "error", "value", "grads", "hvp"}


class StartError(RuntimeError, LookupError):
    """The command could not be started, or its handshake failed (one line says why). A
    :class:`LookupError` too: what ``--impl`` names cannot be used, which the command line reports
    as bad usage (exit 2), like any implementation it cannot find."""


class _Problem(Exception):
    """What went wrong with one case: the error text, and whether the process must be replaced."""

    def __init__(self, message: str, restart: bool = True) -> None:
        super().__init__(message)
        self.restart = restart


def is_timeout(result: GraphResult) -> bool:
    """True when the error of ``result`` is a timeout: the harness gives the verdict ``timeout``."""
    return result.error is not None and result.error.startswith(TIMEOUT_PREFIX)


def from_spec(spec: str, **kw: Any) -> CommandAdapter:
    """``cmd:<command line>`` → a started adapter."""
    if not spec.startswith(PREFIX):
        raise ValueError(f"not a command implementation: {spec!r} (expected {PREFIX}<command line>)")
    return CommandAdapter(spec[len(PREFIX):], **kw)


def _one_line(text: str, limit: int = 2000) -> str:
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= limit else text[:limit] + "…"


def _quote(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return repr(text if len(text) <= QUOTE else text[:QUOTE] + "…")


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (signal {-code})"
    if code > 255:  # Windows: NTSTATUS codes such as 0xC0000005 (access violation)
        return f"exited with code {code:#x}"
    return f"exited with code {code}"


# --- the child process: pipes, reader threads, killing ------------------------------------------

def _read_stdout(fd: int, lines: queue.Queue, max_line: int) -> None:
    """Split stdout into lines for the adapter; a line over ``max_line`` bytes is reported (once, as
    soon as it is too long) and discarded up to its end. Ends with ``("eof", None)``."""
    buf = bytearray()
    overlong = False
    try:
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            start = 0
            while True:
                nl = chunk.find(b"\n", start)
                piece = chunk[start:] if nl < 0 else chunk[start:nl]
                if not overlong:
                    buf += piece
                    if len(buf) > max_line:
                        overlong = True
                        lines.put(("overlong", len(buf)))
                        buf = bytearray()
                    elif nl >= 0:
                        lines.put(("line", bytes(buf)))
                if nl < 0:
                    break
                if overlong:
                    overlong = False
                buf = bytearray()
                start = nl + 1
    except (OSError, ValueError):
        pass
    finally:
        lines.put(("eof", None))


def _read_stderr(fd: int, tail: collections.deque, partial: list[str], output: collections.deque | None = None) -> None:
    """Keep the last lines of stderr (each cut to a few hundred characters), and every line in
    ``output`` until :meth:`CommandAdapter.take_output` takes them; never parsed."""
    pending = b""
    try:
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                text = line[:1000].decode("utf-8", "replace").rstrip()
                if text != STDERR_MARKER:
                    tail.append(text)
                if output is not None:
                    output.append(text)
            pending = pending[-4000:]
            partial[0] = pending[:1000].decode("utf-8", "replace").rstrip()
    except (OSError, ValueError):
        pass


def _write_stdin(stream: Any, outbox: queue.Queue) -> None:
    """Write what the adapter sends; a full pipe blocks this thread, never the harness."""
    try:
        while True:
            data = outbox.get()
            if data is None:
                break
            view = memoryview(data)
            while view:  # a raw pipe may take fewer bytes than given
                view = view[stream.write(view):]
    except (OSError, ValueError):
        pass
    finally:
        try:
            stream.close()
        except (OSError, ValueError):
            pass


def _kill(proc: subprocess.Popen) -> None:
    """Kill the process and its process group (grandchildren too), then reap it."""
    if proc.returncode is None and hasattr(os, "killpg"):
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: its group id is its pid
        except (ProcessLookupError, PermissionError):
            pass
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # unkillable (stuck in the kernel): nothing more to do
        pass


class _Child:
    """One run of the command: the process, a writer thread, stdout and stderr reader threads."""

    def __init__(self, argv: Sequence[str], cwd: str | None, env: dict[str, str] | None, max_line: int,
                 transcript: Transcript | None = None) -> None:
        self.transcript = transcript
        posix = os.name == "posix"
        try:
            self.proc = subprocess.Popen(
                list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=cwd, env=env, bufsize=0, start_new_session=posix,
                creationflags=0 if posix else getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0))
        except OSError as exc:
            raise StartError(f"cannot start {shlex.join(argv)!r}: {exc.strerror or exc}") from None
        self.pid = self.proc.pid
        self.lines: queue.Queue = queue.Queue()
        self.outbox: queue.Queue = queue.Queue()
        self.stderr: collections.deque = collections.deque(maxlen=STDERR_LINES)
        self.output: collections.deque = collections.deque(maxlen=OUTPUT_KEPT)  # until taken
        self._partial = [""]
        self._threads = [
            threading.Thread(target=_read_stdout, args=(self.proc.stdout.fileno(), self.lines, max_line),
                             daemon=True, name=f"jsonl-stdout-{self.pid}"),
            threading.Thread(target=_read_stderr,
                             args=(self.proc.stderr.fileno(), self.stderr, self._partial, self.output),
                             daemon=True, name=f"jsonl-stderr-{self.pid}"),
            threading.Thread(target=_write_stdin, args=(self.proc.stdin, self.outbox),
                             daemon=True, name=f"jsonl-stdin-{self.pid}"),
        ]
        for t in self._threads:
            t.start()
        # at garbage collection or interpreter exit, whichever comes first: kill and reap
        self._finalizer = weakref.finalize(self, _kill, self.proc)

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, allow_nan=False, separators=(",", ":")).encode()
        if self.transcript is not None:
            self.transcript("sent", line)
        self.outbox.put(line + b"\n")

    def receive(self, deadline: float) -> tuple[str, Any]:
        """The next item from stdout: ``("line", bytes)``, ``("overlong", n)``, ``("eof", None)``, or
        ``("timeout", None)`` when nothing came before ``deadline`` (a ``time.monotonic()`` value)."""
        try:
            item = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return ("timeout", None)
        if item[0] == "line" and self.transcript is not None:
            self.transcript("received", item[1])
        return item

    def pending(self) -> tuple[str, Any] | None:
        try:
            return self.lines.get_nowait()
        except queue.Empty:
            return None

    def exit_status(self, wait: float) -> str:
        """After stdout ended: how the process ended (it is killed if it is still running)."""
        try:
            code = self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.kill()
            return "closed its stdout but kept running (killed)"
        return _describe_exit(code)

    def stderr_tail(self, n: int = 3) -> str:
        self._threads[1].join(timeout=0.2 if self.proc.poll() is not None else 0.0)
        lines = [line for line in [*self.stderr, self._partial[0]] if line][-n:]
        if not lines:
            return ""
        text = " | ".join(lines)
        return "; stderr: " + (text if len(text) <= QUOTE else "…" + text[-QUOTE:])

    def kill(self) -> None:
        self._finalizer()  # runs _kill once
        self.outbox.put(None)
        for t in self._threads:
            t.join(timeout=1.0)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def close(self, grace: float) -> None:
        """Say bye, close stdin, give the process ``grace`` seconds to exit, then kill what is left."""
        if self.proc.poll() is None:
            self.send({"type": "bye"})
            self.outbox.put(None)  # the writer closes stdin after the bye
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


# --- the adapter ---------------------------------------------------------------------------------

class CommandAdapter:
    """An implementation under test that is a separate process speaking JSON Lines.

    ``command`` is a command line (split with :func:`shlex.split`, never given to a shell) or an
    argument list. ``timeout`` bounds each case (seconds from sending it to its answer);
    ``start_timeout`` the start-up and handshake. The constructor starts the process and does the
    handshake: :class:`StartError` if that fails. ``name``, ``version`` and ``capabilities`` are
    what the implementation declared.
    """

    def __init__(self, command: str | Sequence[str], timeout: float = 30.0, *, start_timeout: float = 30.0,
                 max_line: int = MAX_LINE, cwd: str | None = None, env: dict[str, str] | None = None,
                 transcript: Transcript | None = None) -> None:
        try:
            self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        except ValueError as exc:  # "No closing quotation"
            raise StartError(f"cannot split the command line {command!r}: {exc}") from None
        if not self.argv:
            raise StartError("empty command line")
        self.command = shlex.join(self.argv)
        self.timeout, self.start_timeout, self.max_line = timeout, start_timeout, max_line
        self._cwd, self._env, self._transcript = cwd, env, transcript
        self._lock = threading.RLock()
        self._child: _Child | None = None
        self._closed = False
        self._start_failures = 0
        self._start_error = ""
        self._last_case = ""
        self.stderr_marker = False  # the program ends each case's stderr with STDERR_MARKER
        self.pids: list[int] = []  # every process started, in order
        self.restarts = 0
        hello = self._start()
        self.stderr_marker = hello["stderr_marker"]
        self.name: str = hello["name"]
        self.version: str = hello["version"]
        self.capabilities: Capabilities = hello["capabilities"]

    def __repr__(self) -> str:
        return f"CommandAdapter({self.command!r}, pid={self.pid})"

    def __enter__(self) -> CommandAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    # --- start-up and handshake ------------------------------------------------------------------
    def _start(self) -> dict[str, Any]:
        child = _Child(self.argv, self._cwd, self._env, self.max_line, self._transcript)
        self.pids.append(child.pid)
        try:
            hello = self._handshake(child)
        except StartError:
            child.kill()
            raise
        self._child = child
        return hello

    def _handshake(self, child: _Child) -> dict[str, Any]:
        what = f"{self.command!r}"
        child.send({"type": "hello", "protocol": PROTOCOL})
        kind, data = child.receive(time.monotonic() + self.start_timeout)
        if kind == "timeout":
            raise StartError(f"{TIMEOUT_PREFIX}{what} did not answer the hello within {self.start_timeout:g}s"
                             + child.stderr_tail())
        if kind == "eof":
            raise StartError(f"{what} {child.exit_status(1.0)} before answering the hello" + child.stderr_tail())
        if kind == "overlong":
            raise StartError(f"{what} answered the hello with a line longer than {self.max_line} bytes")
        try:
            msg = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise StartError(f"{what} answered the hello with a line that is not JSON: {_quote(data)}"
                             + child.stderr_tail()) from None
        return self._check_hello(msg, what)

    @staticmethod
    def _check_hello(msg: Any, what: str) -> dict[str, Any]:
        if not isinstance(msg, dict) or msg.get("type") != "hello":
            raise StartError(f"{what} answered the hello with {_quote(json.dumps(msg))}, not a hello message")
        if msg.get("protocol") != PROTOCOL:
            raise StartError(f"{what} speaks protocol {msg.get('protocol')!r}; this harness speaks {PROTOCOL}")
        for key in ("name", "version"):
            if not isinstance(msg.get(key), str) or (key == "name" and not msg[key]):
                raise StartError(f"{what}: the hello needs {key!r} as a{' non-empty' if key == 'name' else ''} string")
        caps = msg.get("capabilities")
        if not isinstance(caps, dict):
            raise StartError(f"{what}: the hello needs 'capabilities', an object")
        ops = caps.get("ops")
        if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
            raise StartError(f"{what}: capabilities.ops must be a list of op names")
        dtypes = caps.get("dtypes", ["float64"])
        if not isinstance(dtypes, list) or not dtypes or not all(d in DTYPES for d in dtypes):
            raise StartError(f"{what}: capabilities.dtypes must be a non-empty list of "
                             f"{', '.join(repr(d) for d in DTYPES)}")
        second = caps.get("second_order", False)
        if not isinstance(second, bool):
            raise StartError(f"{what}: capabilities.second_order must be true or false")
        accumulate = caps.get("accumulate", {})
        if (not isinstance(accumulate, dict) or not set(accumulate) <= set(dtypes)
                or not all(isinstance(w, str) for w in accumulate.values())):
            raise StartError(f"{what}: capabilities.accumulate must be an object from dtypes it declares to the "
                             "wider dtypes it accumulates them in")
        for storage, wide in accumulate.items():
            try:
                accumulation(storage, wide)
            except ValueError as exc:
                raise StartError(f"{what}: capabilities.accumulate: {exc}") from None
        order = caps.get("summation", {})
        if not isinstance(order, dict) or not set(order) <= set(dtypes):
            raise StartError(f"{what}: capabilities.summation must be an object from dtypes it declares to the "
                             f"order it sums their reductions in ({', '.join(map(repr, SUMMATIONS))})")
        for how in order.values():
            try:
                summation(how)
            except ValueError as exc:
                raise StartError(f"{what}: capabilities.summation: {exc}") from None
        without = caps.get("without", {})
        if (not isinstance(without, dict)
                or not all(isinstance(k, list) and all(isinstance(x, str) for x in k) for k in without.values())):
            raise StartError(f"{what}: capabilities.without must be an object from layer ops to lists of the knobs "
                             "the program does not take")
        nets = caps.get("networks")
        training: dict[str, Any] = {}
        if nets is not None:  # training runs (network cases): what the program's MLPs can use
            training = _network_capabilities(what, nets)
        try:
            capabilities = Capabilities(frozenset(ops), tuple(dtypes), second_order=second, accumulate=accumulate,
                                        summation=order, without=without, **training)
        except ValueError as exc:
            part = "" if str(exc).startswith("without:") else "networks: "
            raise StartError(f"{what}: capabilities.{part}{exc}") from None
        return {"name": msg["name"], "version": msg["version"], "capabilities": capabilities,
                "stderr_marker": msg.get("stderr_marker") is True}


    # --- running a case --------------------------------------------------------------------------
    def take_output(self) -> list[str]:
        """The stderr lines the program wrote since the last call: a case's output (kinds/kind.py
        ``captured_output``); a line that arrives after the case's answer goes with the next case."""
        child = self._child
        if child is None:
            return []
        lines: list[str] = []
        deadline = time.monotonic() + MARKER_WAIT
        while True:
            while child.output:
                line = child.output.popleft()
                if line == STDERR_MARKER:
                    return lines
                lines.append(line)
            if not self.stderr_marker or time.monotonic() > deadline or child.proc.poll() is not None:
                return lines
            time.sleep(0.001)

    def run_graph(self, case: GraphCase) -> GraphResult:
        return self._run(case, case_to_json(case), result_document, GraphResult)

    def run_network(self, case: NetworkCase) -> NetworkResult:
        """A training run (protocol extension: only for programs whose hello declares ``networks``)."""
        return self._run(case, network_case_to_json(case), network_result_document, NetworkResult)

    def _run(self, case: Any, doc: dict[str, Any], parse: Callable[[Any], Any], failed: Callable[..., Any]) -> Any:
        """Send one case, read its answer, parse it: every problem becomes ``failed(error=...)``."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            if self._child is None:
                if self._start_failures >= MAX_START_FAILURES:
                    return failed(error=f"restart failed: {self._start_error} "
                                        f"({self._start_failures} attempts; not retried)")
                try:
                    self._start()
                except StartError as exc:
                    self._start_failures += 1
                    self._start_error = str(exc)
                    return failed(error=f"restart failed: {exc}")
                self._start_failures = 0
                self.restarts += 1
            child = self._child
            assert child is not None
            try:
                result = self._exchange(child, case.id, doc, parse)
            except _Problem as problem:
                if problem.restart:
                    self._replace(child)
                return failed(error=str(problem))
            finally:
                self._last_case = case.id
            return result

    def _replace(self, child: _Child) -> None:
        child.kill()
        self._child = None  # started again, with the handshake, by the next case

    def _exchange(self, child: _Child, case_id: str, doc: dict[str, Any], parse: Callable[[Any], Any]) -> Any:
        early = child.pending()
        if early is not None:  # something arrived although no case was pending
            after = f"after the answer to case {self._last_case or '(none)'} and before this case was sent"
            if early[0] == "eof":
                raise _Problem(f"crash: the process {child.exit_status(1.0)} {after}{child.stderr_tail()}")
            what = f"a line of {early[1]} bytes" if early[0] == "overlong" else _quote(early[1])
            raise _Problem(f"protocol error: unsolicited output {after}: {what}{child.stderr_tail()}")
        child.send({"type": "case", "case": doc})
        kind, data = child.receive(time.monotonic() + self.timeout)
        if kind == "timeout":
            child.kill()
            raise _Problem(f"{TIMEOUT_PREFIX}no answer within {self.timeout:g}s (process killed)"
                           f"{child.stderr_tail()}")
        if kind == "eof":
            raise _Problem(f"crash: the process {child.exit_status(1.0)} before answering{child.stderr_tail()}")
        if kind == "overlong":
            raise _Problem(f"protocol error: answer line longer than {self.max_line} bytes "
                           f"({self.max_line / 2**20:g} MiB); process killed")
        return self._parse(data, case_id, parse)

    def _parse(self, data: bytes, case_id: str, parse: Callable[[Any], Any]) -> Any:
        bare: list[str] = []

        def constant(token: str) -> float:
            bare.append(token)
            return float(token.replace("Infinity", "inf"))

        try:
            msg = json.loads(data.decode("utf-8"), parse_constant=constant)
        except UnicodeDecodeError:
            raise _Problem(f"protocol error: stdout line is not UTF-8: {_quote(data)}") from None
        except ValueError:
            raise _Problem(f"protocol error: stdout line is not JSON: {_quote(data)}") from None
        if not isinstance(msg, dict) or msg.get("type") != "result":
            got = f"type {msg.get('type')!r}" if isinstance(msg, dict) else type(msg).__name__
            raise _Problem(f"protocol error: expected a result message, got {got}: {_quote(data)}")
        if "id" in msg and msg["id"] != case_id:
            raise _Problem(f"protocol error: the result is for case {msg['id']!r}, not {case_id!r}")
        extra = sorted(set(msg) - {"type", "id", "result"})
        if extra:
            raise _Problem(f"malformed result: unknown key(s) {extra} in the result message", restart=False)
        if bare:
            raise _Problem(f"malformed result: bare {bare[0]} is not JSON; write the strings "
                           '"nan", "inf", "-inf"', restart=False)
        try:
            return parse(msg.get("result"))
        except ValueError as exc:
            raise _Problem(f"malformed result: {exc}", restart=False) from None

    # --- closing ---------------------------------------------------------------------------------
    def close(self, grace: float = 2.0) -> None:
        """Say bye and wait up to ``grace`` seconds for the process to exit, then kill what is left."""
        with self._lock:
            self._closed = True
            child, self._child = self._child, None
            if child is not None:
                child.close(grace)


def result_document(doc: Any) -> GraphResult:
    """A graph-result document (graph-result.schema.json) as a :class:`GraphResult`; ``ValueError``
    saying what is wrong. A ``null`` gradient or HVP entry counts as absent."""
    if not isinstance(doc, dict):
        raise ValueError(f"'result' must be a graph-result object, got {type(doc).__name__}")
    extra = sorted(set(doc) - _RESULT_KEYS)
    if extra:
        raise ValueError(f"unknown key(s) {extra}")
    if doc.get("format") != RESULT_FORMAT:
        raise ValueError(f"format is {doc.get('format')!r}, expected {RESULT_FORMAT!r}")
    if doc.get("version") != VERSION:
        raise ValueError(f"version is {doc.get('version')!r}, expected {VERSION}")
    error = doc.get("error")
    if error is not None:
        if not isinstance(error, str):
            raise ValueError("'error' must be a string or null")
        return GraphResult(error=_one_line(error) or "(the implementation reported an empty error)")
    if not isinstance(doc.get("grads"), dict):
        raise ValueError("'grads' must be an object: leaf name → tensor")
    hvp = doc.get("hvp")
    if hvp is not None and not isinstance(hvp, dict):
        raise ValueError("'hvp' must be null or an object: leaf name → tensor")
    value = doc.get("value")
    return GraphResult(
        value=None if value is None else _tensor(value, "value"),
        grads={k: _tensor(t, f"grads[{k}]") for k, t in doc["grads"].items() if t is not None},
        hvp=None if hvp is None else {k: _tensor(t, f"hvp[{k}]") for k, t in hvp.items() if t is not None},
    )


def network_result_document(doc: Any) -> NetworkResult:
    """A network-result document as a :class:`NetworkResult`; ``ValueError`` saying what is wrong."""
    if not isinstance(doc, dict):
        raise ValueError(f"'result' must be a network-result object, got {type(doc).__name__}")
    if doc.get("error") is not None:
        return NetworkResult(error=_one_line(str(doc["error"])) or "(the implementation reported an empty error)")
    try:
        return network_result_from_json(doc)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a network result: {type(exc).__name__} {exc}") from None


def _tensor(d: Any, where: str) -> Tensor:
    if not isinstance(d, dict) or set(d) != {"shape", "values"}:
        raise ValueError(f'{where} must be a tensor {{"shape": [...], "values": [...]}}, got {_quote(json.dumps(d))}')
    shape, values = d["shape"], d["values"]
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                              for s in shape):
        raise ValueError(f"{where}: shape must be a list of sizes, got {_quote(json.dumps(shape))}")
    if not isinstance(values, list):
        raise ValueError(f"{where}: values must be a list")
    out = []
    for v in values:
        if isinstance(v, str) and v in _NUMBER_STRINGS:
            out.append(_NUMBER_STRINGS[v])
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            try:
                out.append(float(v))
            except OverflowError:
                raise ValueError(f"{where}: {v} does not fit a binary64") from None
        else:
            raise ValueError(f"{where}: {_quote(json.dumps(v))} is not a number (non-finite ones are "
                             '"inf", "-inf", "nan")')
    if math.prod(shape) != len(out):
        raise ValueError(f"{where}: shape {shape} needs {math.prod(shape)} values, got {len(out)}")
    return Tensor(tuple(shape), tuple(out))


def _network_capabilities(what: str, nets: Any) -> dict[str, Any]:
    """The hello's ``capabilities.networks`` (docs/protocol.md) as Capabilities keywords."""
    def strings(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(x, str) for x in v)

    def grain(v: Any) -> bool:
        return strings(v) or (isinstance(v, dict) and all(strings(x) for x in v.values()))

    def pair(v: Any) -> bool:
        return isinstance(v, list) and len(v) == 2 and all(type(x) is int for x in v)

    if not (isinstance(nets, dict) and strings(nets.get("activations")) and grain(nets.get("losses"))
            and grain(nets.get("optimizers"))):
        raise StartError(f"{what}: capabilities.networks must be an object with 'activations' (a list), "
                         "'losses' and 'optimizers' (lists, or objects of lists)")
    out: dict[str, Any] = dict(networks=True, activations=frozenset(nets["activations"]),
                               losses=nets["losses"], optimizers=nets["optimizers"])
    if "output_activations" in nets:
        if not strings(nets["output_activations"]):
            raise StartError(f"{what}: capabilities.networks.output_activations must be a list of names")
        out["output_activations"] = frozenset(nets["output_activations"])
    if "bias" in nets:
        if not (isinstance(nets["bias"], list) and nets["bias"] and all(isinstance(b, bool) for b in nets["bias"])):
            raise StartError(f"{what}: capabilities.networks.bias must be a list of true/false")
        out["bias"] = frozenset(nets["bias"])
    if "layer_kinds" in nets:  # feature layers (a CNN) before the Linear layers: conformance/case/layerkinds.py
        if not strings(nets["layer_kinds"]):
            raise StartError(f"{what}: capabilities.networks.layer_kinds must be a list of names")
        out["layer_kinds"] = frozenset(nets["layer_kinds"])
    for key in ("layers", "batch_sizes"):
        if key in nets:
            if not pair(nets[key]):
                raise StartError(f"{what}: capabilities.networks.{key} must be [min, max], two integers")
            out[key] = tuple(nets[key])
    return out
