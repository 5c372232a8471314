"""Case kinds: what every part of the suite asks of a kind of case, declared once per kind.

A *kind* is a shape of case — a graph of ops (:mod:`conformance.kinds.graph`), a training run of a
network (:mod:`conformance.kinds.network`) — with everything the rest of the suite needs from it:
its JSON, how an implementation and torch run it, how a result is judged, the smaller cases
shrinking tries, the pasteable torch script, the records' columns, the report's picture and
the suites it contributes. The driver, the records, the report, ``verify``, ``nightly``,
``mutants``, ``calibrate``, ``export`` and the pytest plugin read a kind only through
:class:`Kind`; none of them tests which kind a case is. Adding a kind is one module declaring a
:class:`Kind` and one line in :data:`conformance.kinds.KINDS`.

This module is the vocabulary only (it imports no kind), so a kind can be declared below the
layers that use it.
"""

from __future__ import annotations

import contextlib
import io
import traceback
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from conformance.verdict.outcomes import Verdict


@dataclass(frozen=True)
class Suite:
    """A named set of cases drawn from one strategy: the unit every command runs, seeds and reports.

    ``family`` is the column of the verdict table it is counted in; ``examples`` how many cases a
    run draws. Suite ``i`` of an implementation's list is seeded with ``seed + i`` everywhere.
    ``fixed`` cases are judged first in every run, whatever the seed: the points a draw would reach
    only now and then (an op's kinks, exponent 0), which must be checked every time."""

    name: str
    family: str
    strategy: st.SearchStrategy[Any]
    examples: int
    fixed: tuple[Any, ...] = ()

    @property
    def size(self) -> int:
        """Cases per run: the fixed ones and the drawn ones."""
        return len(self.fixed) + self.examples


#: what is kept of what an implementation writes while it runs one case (lines, characters a line)
OUTPUT_LINES, OUTPUT_CHARS = 50, 300


@contextlib.contextmanager
def captured_output(impl: Any) -> Iterator[list[str]]:
    """What the implementation writes while it runs — Python warnings (numpy's ``RuntimeWarning:
    overflow encountered in exp``), ``sys.stderr``, and the stderr of its worker process (an adapter's
    ``take_output()``) — as lines, kept out of the harness's own output: a verdict's text is the
    harness's, and the implementation's output goes to the records and the report instead."""
    lines: list[str] = []
    buf = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(buf):
            warnings.simplefilter("always")
            yield lines
    finally:
        found = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught]
        found += buf.getvalue().splitlines()
        take = getattr(impl, "take_output", None)
        if callable(take):
            found += list(take())
        lines += [line[:OUTPUT_CHARS] for line in found if line.strip()][:OUTPUT_LINES]


def tensor_bits(t: Any) -> Hashable:
    """A result tensor by the bits of its values (NaN equals NaN, -0.0 is not 0.0); None stays None."""
    return None if t is None else (tuple(t.shape), tuple(float(v).hex() for v in t.values))


@dataclass(frozen=True)
class Kind:
    """One kind of case, declared once. Every callable takes and returns the kind's own types."""

    name: str  # "graph", "network": the records' ``kind`` column and failure files' ``kind`` field
    format: str  # the ``format`` field of its case JSON documents
    case_type: type
    method: str  # the implementation's method that runs one such case (``run_graph``, ``run_network``)
    error_result: Callable[[str], Any]  # a result that carries only an error message
    to_json: Callable[[Any], dict[str, Any]]
    from_json: Callable[[dict[str, Any]], Any]
    dumps: Callable[[Any], str]
    loads: Callable[[str], Any]
    result_to_json: Callable[[Any], dict[str, Any]]
    result_from_json: Callable[[dict[str, Any]], Any]
    size: Callable[[Any], str]  # "3 nodes", "2 layers, 3 steps": how big a (minimal) case is
    describe: Callable[[Any], dict[str, Any]]  # records columns: ops, nodes, depth, parameters, steps, dtype
    family: Callable[[Any], str]  # the verdict-table family of a case found outside a suite
    run_torch: Callable[[Any], Any]
    judge: Callable[..., Any]  # (case, result, torch_result, *, always_truth) -> CaseVerdict
    smaller: Callable[[Any], Iterable[Any]]  # smaller versions of a case, most reducing first (case/reduce.py)
    torch_script: Callable[[Any], str]
    result_key: Callable[[Any], Hashable]  # a result by its bits: equal keys, equal verdicts
    suites: Callable[[Any, int], list[Suite]]  # (capabilities, cases per suite) -> its suites, in order
    picture: str  # "module:function" drawing a failing case in the report (the report imports it)
    #: suites added after others existed, by generation: generation g of every kind runs after
    #: generation g − 1 of every kind (``suites`` is generation 0), so that adding suites — as a new
    #: generation — changes no earlier suite's index, hence its seed, hence its cases
    later: tuple[Callable[[Any, int], list[Suite]], ...] = ()
    #: what of this kind an implementation with these capabilities does not support, each with the
    #: family it is counted under (the verdict table's "unsupp." column, the records' unsupported_ops)
    unsupported: Callable[[Any], dict[str, str]] = lambda caps: {}
    #: what of this kind the capabilities declare, one line (``conformance list``)
    declared: Callable[[Any], str] = lambda caps: ""
    #: whether the capabilities admit a case (the shrinker keeps to what the strategies would draw)
    admits: Callable[[Any, Any], bool] = lambda caps, case: True

    def run(self, impl: Any, case: Any) -> Any:
        """The implementation's result on ``case``; an exception becomes a result whose error is one
        line (type, message, where it was raised) instead of a crash of the harness. What the
        implementation writes meanwhile is dropped (:meth:`run_captured` keeps it)."""
        return self.run_captured(impl, case)[0]

    def run_captured(self, impl: Any, case: Any) -> tuple[Any, list[str]]:
        """:meth:`run`, and the lines the implementation wrote meanwhile (:func:`captured_output`)."""
        with captured_output(impl) as lines:
            try:
                result = getattr(impl, self.method)(case)
            except Exception as exc:  # the implementation under test may raise anything
                last = traceback.extract_tb(exc.__traceback__)[-1]
                result = self.error_result(f"{type(exc).__name__}: {exc} (at {last.filename}:{last.lineno})")
        return result, lines

    def check(self, impl: Any, case: Any, *, always_truth: bool = False) -> Any:
        """The verdict on one case: the implementation's run judged against torch's.

        The implementation runs the case twice. Results that differ only in bits the tolerance
        covers (a sum over a set, in another order) are not a defect; results judged differently —
        a backward whose answer depends on set order, uninitialised memory, a global left over
        from the last run — are an ``error`` saying so, since either verdict alone would be luck.
        An ``error`` or a ``timeout`` is not run again: it is charged whatever the second run does.
        The verdict's ``output`` holds what the implementation wrote in its first run."""
        first, output = self.run_captured(impl, case)
        torch = self.run_torch(case)
        v = self.judge(case, first, torch, always_truth=always_truth)
        v.output = output
        if v.verdict in (Verdict.TIMEOUT, Verdict.ERROR):  # charged already; a second hang or crash
            return v  # would cost the whole timeout, or a restart, again
        second = self.run(impl, case)
        if self.same_result(first, second):
            return v
        again = self.judge(case, second, torch, always_truth=always_truth)
        if again.verdict == v.verdict:
            return v
        out = self.judge(case, self.error_result(
            f"nondeterministic: two runs of the same case were judged {v.verdict} ({v.reason}) and "
            f"{again.verdict} ({again.reason})"), torch, always_truth=always_truth)
        out.output = output
        return out

    def same_result(self, a: Any, b: Any) -> bool:
        """The same bits — or, for results too malformed to key (a gradient that is a string: the
        judge has made that an ``error`` already), the same ``repr``."""
        try:
            return bool(self.result_key(a) == self.result_key(b))
        except Exception:  # a malformed result from the implementation under test
            return repr(a) == repr(b)
