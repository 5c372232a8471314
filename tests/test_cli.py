"""The command line: verdicts, exit codes, one-line errors, and every subcommand doing its job."""

import dataclasses
import json

import pytest

from conformance.case.graph import GraphCase, Node, Tensor, dumps
from conformance.commands import cli
from conformance.oracle import opcheck
from refimpl import OPS

PLANTED = "tests/fixtures/planted_adapter.py"


def test_verify_refimpl_conforms(capsys):
    assert cli.main(["verify", "--impl", "refimpl", "--max-examples", "4", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "refimpl CONFORMS" in out and "seed=3" in out
    assert "family" in out and "unsupp." in out


def test_verify_a_planted_adapter_fails_with_a_minimal_case(capsys):
    assert cli.main(["verify", "--impl", PLANTED, "--max-examples", "8", "--seed", "1"]) == 1
    out = capsys.readouterr().out
    assert "planted-tanh DOES NOT CONFORM" in out
    assert "FAIL op tanh: minimal case" in out and "case JSON:" in out and "reproduce with torch:" in out


@pytest.mark.parametrize("argv, message", [
    (["verify", "--impl", "nosuch"], "unknown implementation 'nosuch'"),
    (["verify", "--impl", "no/such/file.py"], "no such file 'no/such/file.py'"),
    (["verify", "--impl", "json:nothing"], "has no attribute 'nothing'"),
    (["verify", "--max-examples", "0"], "--max-examples must be at least 1"),
    (["ops", "--max-examples", "0"], "--max-examples must be at least 1"),
    (["replay", "no-such-case.json"], "cannot read 'no-such-case.json'"),
])
def test_bad_usage_exits_2_with_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unknown_option_exits_2():
    with pytest.raises(SystemExit) as e:
        cli.main(["verify", "--bogus"])
    assert e.value.code == 2


def test_list_names_the_builtin_implementations(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("refimpl") or "\nrefimpl" in out
    assert "torch" in out and "second order yes" in out


def test_list_says_what_an_implementation_claims(capsys):
    """The claims its half and pairwise cases are judged by are part of what it declares: refimpl's
    float32 accumulation (torch's too: its CPU kernels'), refimpl-pairwise's order (one claim alone,
    or both); autograd, which has no half dtypes, claims nothing."""
    assert cli.main(["list", "--impl", "conformance.impls:PairwiseRefImpl"]) == 0
    lines: dict[str, str] = {}
    name = ""
    for ln in capsys.readouterr().out.splitlines():  # a name, then its indented lines
        if ln.startswith("  "):
            lines[name] += ln
        elif ln:
            name = ln.split()[0]
            lines[name] = ""
    said = "; bfloat16 reductions accumulated in float32; float16 reductions accumulated in float32;"
    assert said in lines["refimpl"], lines["refimpl"]
    assert ("; bfloat16 reductions accumulated in float32, summed pairwise; float16 reductions summed pairwise;"
            in lines["refimpl-pairwise"]), lines["refimpl-pairwise"]
    assert said in lines["torch"] and "summed" not in lines["torch"], lines["torch"]
    assert "reductions" not in lines.get("autograd", "")


def test_replay_a_stored_case(tmp_path, capsys):
    case = GraphCase({"x": Tensor.scalar(0.4)}, (Node("n0", "tanh", ("x",)),), "n0", Tensor.scalar(1.5),
                     id="g-replay")
    path = tmp_path / "case.json"
    path.write_text(dumps(case))
    assert cli.main(["replay", str(path)]) == 0
    assert "case g-replay (1 nodes, float64) on refimpl: pass" in capsys.readouterr().out
    assert cli.main(["replay", str(path), "--impl", PLANTED]) == 1
    assert "grad[x]" in capsys.readouterr().out


def test_export_writes_a_corpus_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert cli.main(["export", "--out", str(out), "--n", "3"]) == 0
    index = json.loads((out / "index.json").read_text())
    assert len(index["cases"]) == 3
    doc = json.loads((out / f"{index['cases'][0]['id']}.json").read_text())
    assert set(doc) >= {"case", "torch", "truth", "tolerance"}
    for k, t in doc["truth"]["grads"].items():  # torch agrees with the truth within the tolerance
        tolerances = doc["tolerance"]["grads"][k]["values"]
        for got, true, tol in zip(doc["torch"]["grads"][k]["values"], t["values"], tolerances):
            assert abs(got - true) <= tol
    assert cli.main(["export", "--out", str(out), "--n", "3"]) == 2
    assert "not an empty directory" in capsys.readouterr().err


def test_ops_audit_conforms(capsys):
    assert cli.main(["ops", "--max-examples", "3"]) == 0
    assert f"{len(OPS)} of {len(OPS)} ops conform" in capsys.readouterr().out


@pytest.mark.parametrize("name, wrong", [
    ("tanh", lambda m, x, out: (1 - out,)),                      # tanh' = 1 − t instead of 1 − t²
    ("sigmoid", lambda m, x, out: (out * (1 - out) * (1 + 1e-9),)),  # off by 1e-9 relative
    ("relu", lambda m, x, out: (m.one if m.val(x) >= 0 else m.zero,)),  # relu'(0) = 1
])
def test_planted_wrong_derivative_is_caught_by_the_ops_audit(name, wrong, monkeypatch):
    monkeypatch.setitem(OPS, name, dataclasses.replace(OPS[name], derivative=wrong))
    (result,) = [r for r in opcheck.run(n=10, seed=1) if r.op == name]
    assert not result.ok, f"planted bug in {name} went unnoticed"


def test_the_readme_python_adapter_example_conforms(capsys):
    assert cli.main(["verify", "--impl", "examples/python_adapter.py", "--max-examples", "6", "--seed", "2"]) == 0
    assert "dual-numbers CONFORMS" in capsys.readouterr().out
