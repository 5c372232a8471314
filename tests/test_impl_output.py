"""What an implementation writes while it runs — numpy's RuntimeWarnings, prints to stderr — is kept
out of the verdict text and the harness's output, and goes to the records and the report
(kinds/kind.py ``captured_output``; the worker's stderr through ``CommandAdapter.take_output``)."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from conformance import kinds
from conformance.commands import cli
from conformance.driver import draw
from conformance.impls.loading import resolve

NOISY = textwrap.dedent('''
    import sys
    import numpy as np
    sys.path.insert(0, {examples!r})
    import numpy_mlp as base

    def loss_and_grads(net, x, y):
        np.exp(np.array([1000.0]))  # RuntimeWarning: overflow encountered in exp
        print("debug: a line on stderr", file=sys.stderr)
        return base.loss_and_grads(net, x, y)

    adapter = base.NetworkClass(**{{**base.adapter.__dict__, "loss_and_grads": loss_and_grads, "name": "noisy"}})
''')


@pytest.fixture
def noisy(tmp_path, request):
    path = tmp_path / "noisy.py"
    path.write_text(NOISY.format(examples=str(request.config.rootpath / "examples")))
    return path


def _case(impl):
    suite = next(s for s in kinds.suites(impl.capabilities, 3) if s.family == "networks")
    return draw(suite, 0)[0]


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "worker"])
def test_warnings_and_stderr_become_the_verdicts_output_not_the_harnesss(noisy, isolate, capfd):
    impl = resolve(str(noisy), isolate=isolate)
    try:
        case = _case(impl)
        capfd.readouterr()
        v = kinds.of(case).check(impl, case)
    finally:
        getattr(impl, "close", lambda: None)()
    assert v.conforms, v.reason
    assert any("RuntimeWarning: overflow encountered in exp" in line for line in v.output), v.output
    assert "debug: a line on stderr" in v.output
    assert "RuntimeWarning" not in v.reason
    out, err = capfd.readouterr()
    assert "RuntimeWarning" not in out + err and "debug:" not in out + err


def test_verify_prints_a_summary_and_the_report_keeps_every_line(noisy, tmp_path, capsys):
    report = tmp_path / "reports"
    code = cli.main(["verify", "--impl", str(noisy), "--max-examples", "3", "--seed", "0", "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    before, _, section = out.partition("\noutput: noisy wrote 2 distinct line(s)")
    assert section and "RuntimeWarning" not in before and "debug:" not in before
    assert "× debug: a line on stderr" in section and "column output" in section
    run = next(p for p in report.iterdir() if p.is_dir())
    cases = pd.read_parquet(run / "records" / "cases.parquet")
    assert (cases["output"].str.contains("overflow encountered in exp")).all()
    assert "debug: a line on stderr" in (run / "summary.md").read_text()


def test_a_quiet_implementation_has_no_output(tmp_path, capsys):
    code = cli.main(["verify", "--impl", "examples/numpy_mlp.py", "--max-examples", "3", "--seed", "0"])
    out = capsys.readouterr().out
    assert code == 0 and "\noutput:" not in out
