"""The command line: exit codes, one-line errors, and a verdict that flips on a planted bug."""

import dataclasses

import pytest

from conformance import cli, opcheck
from refimpl import OPS


def test_refimpl_conforms(capsys):
    assert cli.main(["verify", "--max-examples", "3"]) == 0
    out = capsys.readouterr().out
    assert "30 of 30 ops conform" in out or f"{len(OPS)} of {len(OPS)} ops conform" in out


@pytest.mark.parametrize("argv, message", [
    (["verify", "--impl", "nosuch"], "unknown implementation 'nosuch'"),
    (["verify", "--max-examples", "0"], "--max-examples must be at least 1"),
])
def test_bad_usage_exits_2_with_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unknown_option_exits_2():
    with pytest.raises(SystemExit) as e:
        cli.main(["verify", "--bogus"])
    assert e.value.code == 2


@pytest.mark.parametrize("name, wrong", [
    ("tanh", lambda m, x, out: (1 - out,)),                      # tanh' = 1 − t instead of 1 − t²
    ("sigmoid", lambda m, x, out: (out * (1 - out) * (1 + 1e-9),)),  # off by 1e-9 relative
    ("relu", lambda m, x, out: (m.one if m.val(x) >= 0 else m.zero,)),  # relu'(0) = 1
])
def test_planted_wrong_derivative_is_caught(name, wrong, monkeypatch):
    monkeypatch.setitem(OPS, name, dataclasses.replace(OPS[name], derivative=wrong))
    (result,) = [r for r in opcheck.run(n=10, seed=1) if r.op == name]
    assert not result.ok, f"planted bug in {name} went unnoticed"
