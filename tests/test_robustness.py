"""Correctness apart from numerical robustness (conformance/verdict/robustness.py): a charged verdict on a
case outside the working range is ``robustness``, reported and not charged unless ``--strict``."""

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from conformance.case.graph import GraphCase, Node, Tensor, case_from_json
from conformance.commands import cli
from conformance.driver import judge_case
from conformance.impls import RefImpl, TorchImpl
from conformance.impls.adapters.micrograd import load_micrograd
from conformance.kinds import graph as graph_kind
from conformance.oracle.run import run_torch
from conformance.tolerance.bounds import SMOOTH
from conformance.verdict.outcomes import COLUMNS, NONCONFORMING, ORDER, Verdict
from conformance.verdict.robustness import OVERFLOW, UNDERFLOW, WORKING_RANGE, extreme, outside
from refimpl.numbers import FORMATS, PRIMITIVES

ROOT = Path(__file__).resolve().parent.parent
CLONE = Path(__file__).parent / "fixtures" / "micrograd_clone.py"
DIV = '''        out = Value(self.data / other.data, (self, other), "/")

        def _backward():
            self.grad += out.grad / other.data
            other.grad += -out.data / other.data * out.grad
        out._backward = _backward
        return out'''
#: micrograd 0.1.0's division, a * b**-1: pow′ computes b**-2, an OverflowError for |b| < 1.5e-154
RECIPROCAL_POW = "        return self * other ** -1"
QUOTIENT_LINE = "other.grad += -out.data / other.data * out.grad"


def planted(tmp_path: Path, old: str, new: str, name: str) -> Path:
    text = CLONE.read_text()
    assert text.count(old) == 1, old
    path = tmp_path / f"{name}.py"
    path.write_text(text.replace(old, new))
    return path


def x_over_x(x: float) -> GraphCase:
    return GraphCase({"x0": Tensor.scalar(x)}, (Node("n0", "div", ("x0", "x0"), {}),), "n0", Tensor.scalar(1.5))


def a_over_b(a: float, b: float) -> GraphCase:
    return GraphCase({"x0": Tensor.scalar(a), "x1": Tensor.scalar(b)}, (Node("n0", "div", ("x0", "x1"), {}),),
                     "n0", Tensor.scalar(1.5))


def test_the_verdict_is_declared_once_and_not_charged():
    assert Verdict.ROBUSTNESS in ORDER and Verdict.ROBUSTNESS in COLUMNS and Verdict.ROBUSTNESS.help
    assert not Verdict.ROBUSTNESS.charged and Verdict.ROBUSTNESS not in NONCONFORMING


def test_the_working_range():
    assert WORKING_RANGE == {"float64": (1e-100, 1e100), "float32": (1e-12, 1e12), "float16": (1e-4, 1e4),
                             "bfloat16": (1e-12, 1e12)}
    for x in (0.0, -0.0, 1e-100, -1e100, 1.5, 1e-12):
        assert outside(x, "float64") is None, x
    for x in (1e-101, -1e101, 5e-324, float("inf"), float("nan")):
        assert outside(x, "float64") is not None, x
    assert outside(1e-13, "float32") and outside(2e12, "float32") and outside(1e-12, "float32") is None
    # the cube of a number in the range is still a normal number of its dtype
    for dtype, (low, high), (tiny, huge) in (("float64", WORKING_RANGE["float64"], (2.2250738585072014e-308, 1.8e308)),
                                              ("float32", WORKING_RANGE["float32"], (1.1754944e-38, 3.4e38))):
        assert low ** 3 >= tiny and high ** 3 <= huge, dtype
    # the half-precision dtypes compute in float32 (the cube in float32's range) and store in their
    # own format (a normal number of it)
    for dtype in ("float16", "bfloat16"):
        (low, high), f = WORKING_RANGE[dtype], FORMATS[dtype]
        assert low ** 3 >= FORMATS["float32"].smallest_normal and high ** 3 <= FORMATS["float32"].largest, dtype
        assert low >= f.smallest_normal and high <= f.largest, dtype
    assert outside(5e-3, "float16") is None and outside(2e4, "float16") and outside(5e-5, "float16")


def test_extreme_names_what_puts_a_case_outside():
    assert extreme(x_over_x(1.5)) is None
    assert extreme(x_over_x(1e-155)) == "leaf x0 = 1e-155, below the working range 1e-100"
    # ordinary leaves, an intermediate past the range: exp(400) = 5.2e173
    exp = GraphCase({"x0": Tensor.scalar(400.0)}, (Node("n0", "exp", ("x0",), {}),), "n0", Tensor.scalar(1.0))
    assert extreme(exp).startswith("node n0 (refimpl's forward) = 5.22e+173, above")
    # ordinary leaves and forward (1 / 1e-60), torch's gradient past the range: -a/b² = -1.5e120
    case = a_over_b(1.0, 1e-60)
    assert extreme(case) is None
    assert extreme(case, run_torch(case)) == "torch's grad[x1] = -1.5e+120, above the working range 1e+100"


def test_an_overflow_on_an_extreme_input_is_robustness_not_error(tmp_path):
    engine = load_micrograd(str(planted(tmp_path, DIV, RECIPROCAL_POW, "pow_div")))
    v = judge_case(engine, x_over_x(1e-155))
    assert v.verdict == Verdict.ROBUSTNESS and v.conforms
    assert v.reason.startswith("robustness (leaf x0 = 1e-155, below the working range 1e-100): OverflowError")
    # the same engine at an ordinary point is right
    assert judge_case(engine, x_over_x(1.5)).verdict == "pass"
    assert judge_case(engine, a_over_b(3.0, -2.0)).verdict == "pass"


def test_a_zero_division_on_an_extreme_input_is_robustness_and_a_known_cause_stays(tmp_path):
    engine = load_micrograd(str(planted(tmp_path, QUOTIENT_LINE, "other.grad += -self.data / other.data ** 2 "
                                                                  "* out.grad", "quotient_squared")))
    v = judge_case(engine, x_over_x(1e-300))  # b² = 0
    assert v.verdict == Verdict.ROBUSTNESS and "ZeroDivisionError" in v.reason
    v = judge_case(engine, x_over_x(1e-155))  # b² subnormal: the documented correct formula losing precision
    assert v.verdict == Verdict.KNOWN_CAUSE and v.cause == "quotient-squared"


def test_a_real_bug_at_an_ordinary_point_stays_charged(tmp_path):
    engine = load_micrograd(str(planted(tmp_path, QUOTIENT_LINE, "other.grad += out.data / other.data * out.grad",
                                        "div_sign")))
    for case in (x_over_x(1.5), a_over_b(3.0, -2.0)):
        v = judge_case(engine, case)
        assert v.verdict == Verdict.FAIL and not v.conforms, v.reason
    # on an extreme input the same bug is a robustness finding, its charged reason kept
    v = judge_case(engine, x_over_x(1e-155))
    assert v.verdict == Verdict.ROBUSTNESS and v.reason.endswith("→ fail")
    assert [e.verdict for e in v.entries if e.verdict != "pass"] == [Verdict.ROBUSTNESS]


@pytest.mark.parametrize("x", [1e-155, 1e-300, 1e150, 5e-324])
def test_refimpl_and_torch_match_on_extreme_cases(x):
    for case in (x_over_x(x), a_over_b(1.5, x), a_over_b(x, 3.0)):
        torch_result = run_torch(case)
        for result in (RefImpl().run_graph(case), torch_result):
            v = graph_kind.judge(case, result, torch_result)
            # unchecked: a tolerance as large as the value (a/b at b = 1e-300) checks nothing — not a pass
            assert v.verdict in ("pass", "unchecked") and v.conforms, v.reason


def test_verify_strict_charges_robustness(tmp_path, capsys):
    """At ci seed 4, `op div` draws x/x at 1e-300 and -2.1e-295 / -2.1e-295: this engine's only
    findings. Default: CONFORMS, exit 0, a robustness section; --strict: exit 1."""
    engine = f"micrograd:{planted(tmp_path, DIV, RECIPROCAL_POW, 'pow_div_cli')}"
    argv = ["verify", "--impl", engine, "--profile", "ci", "--seed", "4"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "robustness: 2 case(s)" in out and "  op div: 2" in out and "OverflowError" in out
    assert "pow_div_cli CONFORMS: " in out and "minimal case" not in out
    assert cli.main([*argv, "--strict"]) == 1
    assert "pow_div_cli DOES NOT CONFORM (--strict: robustness findings charged)" in capsys.readouterr().out


def test_pytest_conformance_strict(tmp_path):
    """Under pytest the suite passes with its robustness findings unless --conformance-strict."""
    engine = f"micrograd:{planted(tmp_path, DIV, RECIPROCAL_POW, 'pow_div_pytest')}"
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
            "conformance/test_suites.py::test_suite[op div]",
            "--conformance-impl", engine, "--conformance-profile", "ci", "--hypothesis-seed", "4"]
    env = {k: v for k, v in os.environ.items() if k not in ("CONFORMANCE_IMPL", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(ROOT)
    ok = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and "1 passed" in ok.stdout, ok.stdout[-3000:] + ok.stderr[-2000:]
    strict = subprocess.run([*argv, "--conformance-strict"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert strict.returncode == 1, strict.stdout[-3000:] + strict.stderr[-2000:]
    assert "2 robustness finding(s)" in strict.stdout and "OverflowError" in strict.stdout


#: float16 cases whose true gradient overflows the format (found by the half-precision calibration):
#: refimpl's emulation (every intermediate rounded to float16) meets inf − inf and gives NaN where torch's
#: float32 kernels reach inf (the first), or the other way round (the second)
OVERFLOWING = [
    '{"format":"backprop-conformance/graph-case","version":1,"id":"g-c90d59cf06f0","dtype":"float16","leaves":{"x0":{"shape":[],"values":[-3.83984375]},"x1":{"shape":[],"values":[2.693359375]}},"nodes":[{"name":"n0","op":"mul","inputs":["x0","x0"],"attrs":{}},{"name":"n1","op":"mul","inputs":["n0","n0"],"attrs":{}},{"name":"n2","op":"pow_scalar","inputs":["n1"],"attrs":{"exponent":0.0}},{"name":"n3","op":"neg","inputs":["n2"],"attrs":{}},{"name":"n4","op":"mul","inputs":["n1","n2"],"attrs":{}},{"name":"n5","op":"square","inputs":["n4"],"attrs":{}},{"name":"n6","op":"sub","inputs":["n3","n4"],"attrs":{}},{"name":"n7","op":"sub","inputs":["n6","n4"],"attrs":{}},{"name":"n8","op":"abs","inputs":["n3"],"attrs":{}},{"name":"n9","op":"div","inputs":["x1","n4"],"attrs":{}},{"name":"n10","op":"add","inputs":["n8","n9"],"attrs":{}},{"name":"n11","op":"add","inputs":["n7","n10"],"attrs":{}},{"name":"n12","op":"add","inputs":["n5","n11"],"attrs":{}}],"output":"n12","cotangent":{"shape":[],"values":[-2.0]},"second_order":null}',
    '{"format":"backprop-conformance/graph-case","version":1,"id":"g-a12b1143a353","dtype":"float16","leaves":{"x0":{"shape":[],"values":[1.1026859283447266e-05]},"x1":{"shape":[],"values":[605.5]},"x2":{"shape":[],"values":[725.5]}},"nodes":[{"name":"n0","op":"pow","inputs":["x0","x0"],"attrs":{}},{"name":"n1","op":"mul","inputs":["x1","x0"],"attrs":{}},{"name":"n2","op":"pow","inputs":["n1","x2"],"attrs":{}},{"name":"n3","op":"div","inputs":["n2","n1"],"attrs":{}},{"name":"n4","op":"div","inputs":["n3","n1"],"attrs":{}},{"name":"n5","op":"sub","inputs":["n4","n3"],"attrs":{}},{"name":"n6","op":"square","inputs":["n3"],"attrs":{}},{"name":"n7","op":"sub","inputs":["n6","n5"],"attrs":{}},{"name":"n8","op":"add","inputs":["n7","n0"],"attrs":{}},{"name":"n9","op":"div","inputs":["n0","n1"],"attrs":{}},{"name":"n10","op":"add","inputs":["n8","n9"],"attrs":{}}],"output":"n10","cotangent":{"shape":[],"values":[-1.9482421875]},"second_order":null}',
    # the gradient overflows on the way: 1/x² = 1.9e5 at x = 0.00228 in a chain whose product is 2.6e-6
    '{"format":"backprop-conformance/graph-case","version":1,"id":"g-69aaebaad523","dtype":"float16","leaves":{"x0":{"shape":[],"values":[438.5]}},"nodes":[{"name":"n0","op":"pow_int","inputs":["x0"],"attrs":{"exponent":-1}},{"name":"n1","op":"sub","inputs":["n0","x0"],"attrs":{}},{"name":"n2","op":"add","inputs":["n0","n0"],"attrs":{}},{"name":"n3","op":"add","inputs":["n2","n1"],"attrs":{}},{"name":"n4","op":"add","inputs":["n3","n2"],"attrs":{}},{"name":"n5","op":"square","inputs":["n0"],"attrs":{}},{"name":"n6","op":"pow_scalar","inputs":["n5"],"attrs":{"exponent":-0.0}},{"name":"n7","op":"div","inputs":["n6","n4"],"attrs":{}},{"name":"n8","op":"pow_int","inputs":["n7"],"attrs":{"exponent":-1}},{"name":"n9","op":"pow_int","inputs":["n8"],"attrs":{"exponent":-1}}],"output":"n9","cotangent":{"shape":[],"values":[0.5]},"second_order":null}',
    # the gradient at a node overflows (8.9e4, then 2.2e5 into x⁰): refimpl's chain rule gives inf·0 = NaN,
    # torch answers a zero exponent with zeros (float16 calibration at 100,000 cases, seed 5)
    '{"format":"backprop-conformance/graph-case","version":1,"id":"g-65ba7af9550e","dtype":"float16","accumulate":"float32","leaves":{"x0":{"shape":[],"values":[-3.83984375]}},"nodes":[{"name":"n0","op":"mul","inputs":["x0","x0"],"attrs":{}},{"name":"n1","op":"div","inputs":["n0","x0"],"attrs":{}},{"name":"n2","op":"pow_scalar","inputs":["n0"],"attrs":{"exponent":1.5732421875}},{"name":"n3","op":"pow_int","inputs":["n2"],"attrs":{"exponent":0}},{"name":"n4","op":"pow_scalar","inputs":["n2"],"attrs":{"exponent":-0.0}},{"name":"n5","op":"reciprocal","inputs":["n0"],"attrs":{}},{"name":"n6","op":"div","inputs":["n5","n4"],"attrs":{}},{"name":"n7","op":"pow","inputs":["n0","n3"],"attrs":{}},{"name":"n8","op":"pow_scalar","inputs":["n7"],"attrs":{"exponent":1.064453125}},{"name":"n9","op":"pow_int","inputs":["n8"],"attrs":{"exponent":3}},{"name":"n10","op":"add","inputs":["n6","n9"],"attrs":{}},{"name":"n11","op":"add","inputs":["n1","n10"],"attrs":{}}],"output":"n11","cotangent":{"shape":[],"values":[1.9248046875]},"second_order":null}',
    '{"format":"backprop-conformance/graph-case","version":1,"id":"g-84d7675ce132","dtype":"float16","accumulate":"float32","leaves":{"x0":{"shape":[],"values":[3.529296875]},"x1":{"shape":[],"values":[6.377696990966797e-06]}},"nodes":[{"name":"n0","op":"add","inputs":["x0","x0"],"attrs":{}},{"name":"n1","op":"pow_scalar","inputs":["x1"],"attrs":{"exponent":-0.0}},{"name":"n2","op":"sub","inputs":["n1","n0"],"attrs":{}},{"name":"n3","op":"mul","inputs":["n1","n1"],"attrs":{}},{"name":"n4","op":"reciprocal","inputs":["n0"],"attrs":{}},{"name":"n5","op":"mul","inputs":["n4","n3"],"attrs":{}},{"name":"n6","op":"pow_scalar","inputs":["n5"],"attrs":{"exponent":2.435546875}},{"name":"n7","op":"pow_scalar","inputs":["n6"],"attrs":{"exponent":-2.09765625}},{"name":"n8","op":"sub","inputs":["n2","n6"],"attrs":{}},{"name":"n9","op":"reciprocal","inputs":["n8"],"attrs":{}},{"name":"n10","op":"add","inputs":["n7","n9"],"attrs":{}}],"output":"n10","cotangent":{"shape":[],"values":[-0.99365234375]},"second_order":null}',
]


class _FiniteWhereTheTruthOverflows(RefImpl):
    """refimpl, but a finite gradient (5.0) wherever its own is not finite."""

    def run_graph(self, case):  # type: ignore[no-untyped-def]
        r = super().run_graph(case)
        r.grads = {k: Tensor(t.shape, tuple(v if v == v and abs(v) != float("inf") else 5.0 for v in t.values))
                   for k, t in r.grads.items()}
        return r


@pytest.mark.parametrize("doc", OVERFLOWING)
def test_a_true_answer_beyond_the_format_is_named_overflow(doc):
    """±inf against NaN where the truth overflows float16 is how each computation met the overflow:
    robustness, with the cause ``overflow`` (so calibration counts it explained); a finite number
    there is not the format's overflow, and is not given that name."""
    case = case_from_json(json.loads(doc))
    v = judge_case(RefImpl(), case)
    assert (v.verdict, v.cause) == (Verdict.ROBUSTNESS, OVERFLOW), v.reason
    assert "overflows float16" in v.reason and "(largest 65504)" in v.reason
    w = judge_case(_FiniteWhereTheTruthOverflows(), case)
    assert w.cause != OVERFLOW and "overflows" not in w.reason, w.reason


#: float16 cases where a value underflows on the way (found by the float16 calibration at 50,000 cases,
#: seed 3): |x|·x is −0 in float16, so the quotients by |x| after it are 0, not −1, and a power of them
#: is 1 where it is 5.8e20 (the first) or 1.0e29 (the second); refimpl and torch both give 1.0
UNDERFLOWING = [
    '{"format":"backprop-conformance/graph-case","version":1,"id":"g-9af18ae1c540","dtype":"float16","accumulate":"float32","leaves":{"x0":{"shape":[],"values":[-1.1086463928222656e-05]}},"nodes":[{"name":"n0","op":"abs","inputs":["x0"],"attrs":{}},{"name":"n1","op":"mul","inputs":["n0","x0"],"attrs":{}},{"name":"n2","op":"div","inputs":["n1","n0"],"attrs":{}},{"name":"n3","op":"div","inputs":["n2","n0"],"attrs":{}},{"name":"n4","op":"div","inputs":["n2","n0"],"attrs":{}},{"name":"n5","op":"pow","inputs":["n0","n3"],"attrs":{}},{"name":"n6","op":"pow_scalar","inputs":["n5"],"attrs":{"exponent":2.046875}},{"name":"n7","op":"mul","inputs":["n6","n4"],"attrs":{}},{"name":"n8","op":"pow_scalar","inputs":["n6"],"attrs":{"exponent":0.53466796875}},{"name":"n9","op":"mul","inputs":["n1","n3"],"attrs":{}},{"name":"n10","op":"add","inputs":["n8","n9"],"attrs":{}},{"name":"n11","op":"add","inputs":["n7","n10"],"attrs":{}}],"output":"n11","cotangent":{"shape":[],"values":[0.52783203125]},"second_order":null}',
    '{"format":"backprop-conformance/graph-case","version":1,"id":"g-a187d9045338","dtype":"float16","accumulate":"float32","leaves":{"x0":{"shape":[],"values":[-1.1920928955078125e-07]}},"nodes":[{"name":"n0","op":"abs","inputs":["x0"],"attrs":{}},{"name":"n1","op":"mul","inputs":["n0","x0"],"attrs":{}},{"name":"n2","op":"div","inputs":["n1","n0"],"attrs":{}},{"name":"n3","op":"div","inputs":["n2","n0"],"attrs":{}},{"name":"n4","op":"div","inputs":["n2","n0"],"attrs":{}},{"name":"n5","op":"pow","inputs":["n0","n3"],"attrs":{}},{"name":"n6","op":"pow_scalar","inputs":["n5"],"attrs":{"exponent":2.046875}},{"name":"n7","op":"mul","inputs":["n6","n4"],"attrs":{}},{"name":"n8","op":"pow_scalar","inputs":["n6"],"attrs":{"exponent":2.046875}},{"name":"n9","op":"mul","inputs":["n1","n3"],"attrs":{}},{"name":"n10","op":"add","inputs":["n8","n9"],"attrs":{}},{"name":"n11","op":"add","inputs":["n7","n10"],"attrs":{}}],"output":"n11","cotangent":{"shape":[],"values":[-0.5]},"second_order":null}',
]


class _OffTorchAcrossTheUnderflow(RefImpl):
    """refimpl, but a value 1e10 more than its own: off torch, which meets the same underflow, by more
    than the derived tolerance (1.3e4 and 5.7e8 there: the underflow is amplified on the way)."""

    def run_graph(self, case):  # type: ignore[no-untyped-def]
        r = super().run_graph(case)
        r.value = Tensor(r.value.shape, tuple(v + 1e10 for v in r.value.values))
        return r


@pytest.mark.parametrize("doc", UNDERFLOWING)
def test_an_agreement_with_torch_across_an_underflow_is_named_underflow(doc):
    """Two computations that lose every digit at the same underflow and agree are robustness with the
    cause ``underflow`` (calibration counts it explained), the node that underflowed named; an
    implementation off torch there is not given that name."""
    case = case_from_json(json.loads(doc))
    v = judge_case(RefImpl(), case)
    assert (v.verdict, v.cause) == (Verdict.ROBUSTNESS, UNDERFLOW), v.reason
    assert "node n1 (mul) underflows float16 on the way" in v.reason and "-0 in float16" in v.reason, v.reason
    w = judge_case(_OffTorchAcrossTheUnderflow(), case)
    assert w.verdict == Verdict.ROBUSTNESS and w.cause is None and "underflow" not in w.reason, w.reason


def test_refimpls_passes_are_computed_once_whichever_question_asks(monkeypatch):
    """Naming a failing extreme case asks three questions (the working range, overflow, underflow)
    of the same two forward passes of refimpl's, in the case's format and in binary64 (with its
    adjoints): one :class:`Forwards` shared by them computes each pass once, however many ask."""
    from conformance.verdict import robustness

    calls: list[str] = []
    real = robustness.evaluate

    def counted(case, leaves):  # type: ignore[no-untyped-def]
        calls.append(next(iter(leaves.values())).system.name)
        return real(case, leaves)

    case = case_from_json(json.loads(UNDERFLOWING[0]))
    judged = judge_case(RefImpl(), case)  # robustness; the questions are asked of it as charged
    v = replace(judged, verdict=Verdict.FAIL,
                entries=[replace(e, verdict=Verdict.FAIL if e.verdict == Verdict.ROBUSTNESS else e.verdict)
                         for e in judged.entries])
    monkeypatch.setattr(robustness, "evaluate", counted)
    forwards = robustness.Forwards(case)
    assert robustness.underflowed(v, forwards) is not None
    assert robustness.extreme(case, None, v.entries, forwards) is not None
    assert robustness.overflowed(v, forwards) is None
    assert forwards.narrow is not None and forwards.adjoints is not None and forwards.wide is not None
    assert calls == ["float16+float32", "float64"], calls


def test_an_agreement_with_torch_where_the_truth_is_nan_is_unchecked():
    """Where the finite difference cannot be taken (the truth is NaN) there is nothing to hold an
    implementation that agrees with torch to: unchecked, not a nonfinite mismatch (bfloat16
    calibration: refimpl and torch 1.84375 bit for bit, tolerance 6.92)."""
    case = case_from_json(json.loads(NAN_TRUTH))
    v = judge_case(RefImpl(), case)
    (e,) = [e for e in v.entries if e.name == "grad[x2]"]
    assert e.verdict == Verdict.UNCHECKED and math.isnan(e.truth) and e.impl == e.torch, v.reason
    assert v.conforms


NAN_TRUTH = '{"format":"backprop-conformance/graph-case","version":1,"id":"g-b2023d662a46","dtype":"bfloat16","leaves":{"x0":{"shape":[],"values":[-3.84375]},"x1":{"shape":[],"values":[0.0]},"x2":{"shape":[],"values":[0.0]}},"nodes":[{"name":"n0","op":"pow_int","inputs":["x0"],"attrs":{"exponent":3}},{"name":"n1","op":"sigmoid","inputs":["n0"],"attrs":{}},{"name":"n2","op":"relu","inputs":["n1"],"attrs":{}},{"name":"n3","op":"tanh","inputs":["n1"],"attrs":{}},{"name":"n4","op":"expm1","inputs":["x1"],"attrs":{}},{"name":"n5","op":"minimum","inputs":["n0","n3"],"attrs":{}},{"name":"n6","op":"log1p","inputs":["n3"],"attrs":{}},{"name":"n7","op":"add","inputs":["x2","n1"],"attrs":{}},{"name":"n8","op":"div","inputs":["n7","n3"],"attrs":{}},{"name":"n9","op":"pow","inputs":["n8","n6"],"attrs":{}},{"name":"n10","op":"add","inputs":["n5","n9"],"attrs":{}},{"name":"n11","op":"add","inputs":["n4","n10"],"attrs":{}},{"name":"n12","op":"add","inputs":["n2","n11"],"attrs":{}}],"output":"n12","cotangent":{"shape":[],"values":[1.84375]},"second_order":null}'  # noqa: E501


#: bfloat16 calibration, 100,000 cases, seed 5: n·(1/n) − n·(1/n)⁻³ is exactly 0 and its x⁻³ infinite,
#: where refimpl and torch both round to −2097152; and sin(sin(−800·0.828)) where −662.5 rounds to −662
POLE = '{"format":"backprop-conformance/graph-case","version":1,"id":"g-e6c26fd96e59","dtype":"bfloat16","accumulate":"float32","leaves":{"x0":{"shape":[],"values":[1.875]}},"nodes":[{"name":"n0","op":"add","inputs":["x0","x0"],"attrs":{}},{"name":"n1","op":"reciprocal","inputs":["n0"],"attrs":{}},{"name":"n2","op":"reciprocal","inputs":["n1"],"attrs":{}},{"name":"n3","op":"pow","inputs":["n1","n1"],"attrs":{}},{"name":"n4","op":"div","inputs":["n0","n2"],"attrs":{}},{"name":"n5","op":"mul","inputs":["n0","n1"],"attrs":{}},{"name":"n6","op":"pow_int","inputs":["n5"],"attrs":{"exponent":-3}},{"name":"n7","op":"div","inputs":["n5","n4"],"attrs":{}},{"name":"n8","op":"sub","inputs":["n7","n6"],"attrs":{}},{"name":"n9","op":"pow_int","inputs":["n8"],"attrs":{"exponent":-3}},{"name":"n10","op":"add","inputs":["n3","n9"],"attrs":{}}],"output":"n10","cotangent":{"shape":[],"values":[-1.703125]},"second_order":null}'  # noqa: E501
LARGE_ERROR_INTO_SIN = '{"format":"backprop-conformance/graph-case","version":1,"id":"g-8d8c62a1679c","dtype":"bfloat16","accumulate":"float32","leaves":{"x0":{"shape":[],"values":[-800.0]}},"nodes":[{"name":"n0","op":"leaky_relu","inputs":["x0"],"attrs":{"negative_slope":0.828125}},{"name":"n1","op":"sub","inputs":["x0","x0"],"attrs":{}},{"name":"n2","op":"sin","inputs":["n0"],"attrs":{}},{"name":"n3","op":"sin","inputs":["n2"],"attrs":{}},{"name":"n4","op":"cos","inputs":["n3"],"attrs":{}},{"name":"n5","op":"sigmoid","inputs":["n4"],"attrs":{}},{"name":"n6","op":"square","inputs":["n5"],"attrs":{}},{"name":"n7","op":"sigmoid","inputs":["n6"],"attrs":{}},{"name":"n8","op":"log1p","inputs":["n7"],"attrs":{}},{"name":"n9","op":"reciprocal","inputs":["n3"],"attrs":{}},{"name":"n10","op":"add","inputs":["n8","n9"],"attrs":{}},{"name":"n11","op":"add","inputs":["n1","n10"],"attrs":{}}],"output":"n11","cotangent":{"shape":[],"values":[-1.5]},"second_order":null}'  # noqa: E501


def test_an_agreement_with_torch_at_a_pole_the_rounding_missed_is_unchecked():
    """The exact function has a pole where the format's rounding moved both computations off it: the
    truth is infinite, refimpl and torch agree on a finite value — nothing to hold them to
    (unchecked), not a nonfinite mismatch; an implementation off torch there is still charged."""
    case = case_from_json(json.loads(POLE))
    v = judge_case(RefImpl(), case)
    (e,) = [e for e in v.entries if e.name == "value"]
    assert e.verdict == Verdict.UNCHECKED and math.isinf(e.truth) and e.impl == e.torch == -2097152.0, v.reason
    w = judge_case(_OffTorchAcrossTheUnderflow(), case)  # value 1e10 more: off torch
    assert not w.conforms or w.verdict == Verdict.ROBUSTNESS, w.reason


def test_a_large_error_into_sin_is_bounded_to_second_order():
    """An input already off by e is off sin's result by up to |cos|·e + e²/2 (and never more than e):
    −662.5 rounded to −662 in bfloat16 puts sin(sin(…)) anywhere; with the first order alone the
    tolerance was 2.38 where refimpl and torch (bit for bit) are 4.05 from the truth."""
    v = judge_case(RefImpl(), case_from_json(json.loads(LARGE_ERROR_INTO_SIN)))
    assert v.conforms and v.verdict != Verdict.FAIL, v.reason
    (e,) = [e for e in v.entries if e.name == "value"]
    assert e.tol > abs(e.impl - e.truth) / 2 and e.impl == e.torch, e.describe()


@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_the_smoothness_bounds_hold(name):
    """(L, K) of :data:`SMOOTH` bound |f′| and |f″| everywhere: |f(x + e) − f(x)| ≤ min(|f′(x)|·e +
    K·e²/2, L·e) on a grid of x and e (a constant too small would let the bound under-cover)."""
    f, df = PRIMITIVES[name].f64, PRIMITIVES[name].derivative
    lipschitz, curvature = SMOOTH[name]
    for i in range(-400, 401):
        x = i / 40
        for e in (1e-3, 0.1, 0.5, 1.0, 2.0, 7.0):
            bound = min(abs(df(x, f(x))) * e + curvature * e * e / 2, lipschitz * e)
            for y in (x + e, x - e):
                assert abs(f(y) - f(x)) <= bound * (1 + 1e-12) + 1e-15, (name, x, e)


def test_torch_against_itself_where_the_tolerance_is_nan_is_unchecked():
    """Where the error analysis meets inf·0 (a gradient of 8.9e4 into x⁰ in float16) the tolerance is
    NaN: torch's own result, bit for bit, agrees with torch, and there is no tolerance to hold it to
    the truth with — unchecked (it was charged ``fail``)."""
    case = case_from_json(json.loads(OVERFLOWING[-2]))
    v = judge_case(TorchImpl(), case)
    (e,) = [e for e in v.entries if e.name == "grad[x0]"]
    assert math.isnan(e.tol) and e.impl == e.torch == -17264.0 and e.verdict == Verdict.UNCHECKED, v.reason
    assert v.conforms and v.verdict == Verdict.UNCHECKED, v.reason
