"""Every number system implements every primitive the op table uses — checked here, at test time,
rather than discovered mid-run when a judgement first needs ``BoundNS.erf``.

The primitives are declared once, in ``refimpl.numbers.PRIMITIVES`` (binary64 function and
derivative); ``INTERFACE`` is everything a number system provides. What the op table really calls
is found twice over: by reading the source of ``refimpl/`` (every ``m.<name>`` / ``ns.<name>``) and
by running every op's forward, derivative and vjp, on every branch, in a namespace that records
what it is asked for.
"""

from __future__ import annotations

import ast
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import refimpl
from conformance.impls.explain import FLUSH
from conformance.tolerance.bounds import BOUND32, BOUND64, Bounded, BoundNS
from conformance.tolerance.netbounds import NET_BOUND
from refimpl.engine import GraphNS
from refimpl.numbers import (
    BFLOAT16,
    FLOAT16,
    FLOAT32,
    FLOAT64,
    FORMATS,
    FRACTION,
    INTERFACE,
    PRIMITIVES,
    NotRepresentable,
    mpmath_system,
)
from refimpl.ops import OPS

REFIMPL = Path(refimpl.__file__).parent


class Recorder:
    """binary64 arithmetic that notes every name an op formula asks its namespace for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        self.asked.add(name)
        return getattr(FLOAT64, name)


POINTS = (-30.0, -3.0, -1.0, -0.5, -1e-300, -0.0, 0.0, 1e-300, 0.5, 1.0, 2.0, 3.0, 30.0)
ATTR_VARIANTS: dict[str, list[dict[str, Any]]] = {  # every branch a formula has on its attributes
    "gelu": [{"approximate": "none"}, {"approximate": "tanh"}],
    "clamp": [{"min": -1.0, "max": 1.0}, {"min": -1.0}, {"max": 1.0}, {"min": 1.0, "max": -1.0}],
    "pow_scalar": [{"exponent": 0.0}, {"exponent": 2.5}, {"exponent": -1.5}],
    "pow_int": [{"exponent": 0}, {"exponent": 3}, {"exponent": -2}],
    "softplus": [{"beta": 1.0, "threshold": 20.0}, {"beta": 2.0, "threshold": 1.0}],
}


def _run_every_op(m: Any) -> None:
    for spec in OPS.values():
        for given in ATTR_VARIANTS.get(spec.name, [{}]):
            attrs = spec.attributes(given)
            for xs in ([(x,) for x in POINTS] if spec.arity == 1 else [(a, b) for a in POINTS for b in POINTS]):
                out = spec.forward(m, *xs, **attrs)
                spec.derivative(m, *xs, out, **attrs)
                if spec.vjp is not None:
                    spec.vjp(m, 0.75, *xs, out, **attrs)


def _names_in_source() -> dict[str, set[str]]:
    """``m.<name>`` and ``ns.<name>`` in every module of refimpl, by module."""
    found: dict[str, set[str]] = {}
    for path in sorted(REFIMPL.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("m", "ns"):
                found.setdefault(path.name, set()).add(node.attr)
    return found


def test_the_op_table_asks_its_namespace_only_for_the_interface():
    asked = _asked_by_the_op_table()
    assert asked - set(INTERFACE) == set(), "ops.py uses a namespace member no number system declares"
    functions = {name for name in asked if callable(getattr(FLOAT64, name))} - {"val", "convert", "round"}
    # div is IEEE division (arithmetic, bounded like + and ×); every other function is a primitive
    assert functions - {"div"} == set(PRIMITIVES), "PRIMITIVES and the functions the op table calls differ"


def test_the_sources_of_refimpl_use_only_the_interface():
    for module, names in _names_in_source().items():
        assert names - set(INTERFACE) == set(), f"refimpl/{module} uses {sorted(names - set(INTERFACE))}"
    assert set(PRIMITIVES) <= _names_in_source()["ops.py"], "a primitive no op uses"


def _systems() -> dict[str, Any]:
    return {
        "float64": FLOAT64, "float32": FLOAT32, "float16": FLOAT16, "bfloat16": BFLOAT16,
        "mpmath30": mpmath_system(30), "fraction": FRACTION,
        "bound64": BOUND64, "bound32": BOUND32, "net-bound64": NET_BOUND["float64"],
        "net-bound32": NET_BOUND["float32"], "float64-ftz": FLUSH["float64"], "float32-ftz": FLUSH["float32"],
        "float64+graph": GraphNS(FLOAT64), "float32+graph": GraphNS(FLOAT32),
    }


SYSTEMS = _systems()
FORMULAS_ONLY = {"float64+graph", "float32+graph"}  # create_graph's ``m``: the engine keeps the base's add, mul


def _asked_by_the_op_table() -> set[str]:
    m = Recorder()
    _run_every_op(m)
    return m.asked


def _declares(ns: Any, name: str) -> bool:
    """Whether ``ns`` has ``name`` (FRACTION's π is a property that raises NotRepresentable)."""
    try:
        getattr(ns, name)
    except AttributeError:
        return False
    except NotRepresentable:
        return True
    return True


@pytest.mark.parametrize("label", list(SYSTEMS))
def test_every_number_system_implements_the_whole_interface(label):
    ns = SYSTEMS[label]
    wanted = INTERFACE if label not in FORMULAS_ONLY else (*sorted(_asked_by_the_op_table()), *PRIMITIVES)
    missing = [name for name in wanted if not _declares(ns, name)]
    assert not missing, f"number system {label} ({type(ns).__name__}) lacks {missing}"


def _sample(p: Any) -> tuple[float, ...]:
    """A point inside the primitive's domain."""
    return (0.375,) if p.arity == 1 else (1.5, 0.75)


@pytest.mark.parametrize("label", [k for k in SYSTEMS if k != "fraction"])
@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_every_primitive_evaluates_in_every_system(label, name):
    """Not just present: it runs, and gives the binary64 function's value (to the system's
    precision) — an mpmath function of the same name is the same function."""
    ns, p = SYSTEMS[label], PRIMITIVES[name]
    xs = _sample(p)
    want = p.f64(*xs)
    got = getattr(ns, name)(*(ns.convert(x) for x in xs))
    got = got.v if isinstance(got, Bounded) else got
    if label.startswith(("bound", "net-bound")):
        assert isinstance(getattr(ns, name)(*(ns.convert(x) for x in xs)), Bounded)
    tol = 1e-6 if "32" in label else 4e-16
    assert math.isclose(float(got), want, rel_tol=tol), f"{label}.{name}{xs} = {got!r}, binary64 {want!r}"


@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_fraction_lacks_exactly_the_primitives_declared_not_rational(name):
    """FRACTION has every primitive; the transcendental ones raise NotRepresentable — because the
    table declares them not ``rational``, not by accident."""
    p = PRIMITIVES[name]
    fn = getattr(FRACTION, name)
    args = (Fraction(3, 8),) if p.arity == 1 else (Fraction(3, 2), Fraction(2))
    if p.rational:
        assert fn(*args) == Fraction(9, 4)
    else:
        with pytest.raises(NotRepresentable, match=name):
            fn(*args)


def _domain_points(name: str) -> list[float]:
    spec = OPS[name]
    pts = [-700.0, -20.0, -3.0, -1.0, -0.999, -0.5, -1e-300, -5e-324, 0.0, 5e-324, 1e-300, 1e-8, 0.375, 1.0, 2.5,
           19.0, 700.0, 1e10]
    return [x for x in pts if x in spec.domain[0]]


@pytest.mark.parametrize("name", [n for n, p in PRIMITIVES.items() if p.arity == 1])
def test_each_unary_primitive_is_the_op_of_its_name_with_the_same_derivative(name):
    """The binary64 derivative the error bounds use is, bit for bit, the derivative the op table
    states for the op of the same name (evaluated in binary64), and the function is its forward."""
    p, spec = PRIMITIVES[name], OPS[name]
    for x in _domain_points(name):
        v = p.f64(x)
        assert spec.forward(FLOAT64, x) == v or (math.isnan(v) and math.isnan(spec.forward(FLOAT64, x)))
        (d,) = spec.derivative(FLOAT64, x, v)
        assert p.derivative(x, v) == d or (math.isnan(d) and math.isnan(p.derivative(x, v))), (name, x)


def test_pow_partials_are_the_pow_ops():
    p, spec = PRIMITIVES["pow"], OPS["pow"]
    for a in (1e-300, 0.5, 1.0, 1.5, 3.0, 1e10):
        for b in (-2.5, -1.0, 0.0, 0.5, 1.0, 2.0, 3.7):
            v = p.f64(a, b)
            assert p.derivative(a, b, v) == spec.derivative(FLOAT64, a, b, v), (a, b)


def test_bound_functions_are_lifted_from_the_table():
    """BoundNS restates no derivative: its functions are the table's, lifted; explain's
    ``log1p-128-ulps`` re-lifts one from them."""
    for name, p in PRIMITIVES.items():
        if p.arity == 1:
            fn = getattr(BoundNS, name)
            assert (fn.f, fn.df) == (p.f64, p.derivative), name


def _bfloat16_reference(x: float) -> float:
    """bfloat16 by its bits: the binary32 patterns whose low 16 bits are 0 — the one at or below |x|
    found by truncating the binary32 pattern below |x|, its neighbour above, the nearer taken by
    exact (Fraction) comparison, the even pattern at a tie; past the largest, 2^128 stands for inf."""
    import struct

    a = abs(x)
    if a >= 2.0**128:
        return math.copysign(math.inf, x)
    try:
        below = struct.unpack("<I", struct.pack("<f", a))[0]
    except OverflowError:  # between binary32's largest and 2^128
        below = 0x7F7FFFFF
    if struct.unpack("<f", struct.pack("<I", below))[0] > a:
        below -= 1  # struct rounded up: step back to the binary32 below |x|
    lo_bits = below & ~0xFFFF
    lo = Fraction(struct.unpack("<f", struct.pack("<I", lo_bits))[0])
    hi_bits = lo_bits + 0x10000
    hi = Fraction(2**128) if hi_bits == 0x7F800000 else Fraction(struct.unpack("<f", struct.pack("<I", hi_bits))[0])
    d_lo, d_hi = Fraction(a) - lo, hi - Fraction(a)
    r = lo if d_lo < d_hi or (d_lo == d_hi and not lo_bits & 0x10000) else hi
    return math.copysign(math.inf if r == 2**128 else float(r), x)


def _reference(name: str, x: float) -> float:
    """Each format's rounding by another route than ``Format.round``'s scaling: CPython's own
    correctly rounded packing for binary32 and binary16 (``struct`` 'f' and 'e'; 'e' raises where it
    overflows), the bit pattern for bfloat16."""
    import struct

    if name == "bfloat16":
        return _bfloat16_reference(x)
    if name == "float64":
        return x
    code = {"float32": "f", "float16": "e"}[name]
    try:
        return struct.unpack(code, struct.pack(code, x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def _hard_values() -> list[float]:
    """Values where rounding goes wrong: exact halfway points (ties) and the points just beside
    them, the edges of the subnormal range, the largest finite number and the overflow threshold
    of each format, and a spread of magnitudes from 2^-150 to 2^130."""
    import random

    rng = random.Random(17)
    out = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 65536.0, 3.3895313892515355e38, 3.4e38]
    for f in FORMATS.values():
        for k in range(-2, 3):
            out += [f.smallest_subnormal * (0.5 + k / 8), f.smallest_normal * (1 + k * 2.0**-f.precision)]
        for e in range(-30, 20, 3):
            for m in range(0, 2**6, 5):
                tie = (1 + m * 2.0 ** (1 - f.precision) + 2.0**-f.precision) * 2.0**e
                out += [tie, math.nextafter(tie, 0.0), math.nextafter(tie, math.inf), -tie]
    out += [rng.choice((-1, 1)) * 2 ** rng.uniform(-150, 130) for _ in range(3000)]
    return out


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_format_rounds_to_nearest_even_with_its_subnormals_and_overflow(name):
    f = FORMATS[name]
    wrong = [(x, f.round(x), _reference(name, x)) for x in _hard_values()
             if (f.round(x), math.copysign(1, f.round(x))) != (_reference(name, x), math.copysign(1, x))]
    assert not wrong, f"{name}: {len(wrong)} values rounded wrongly, e.g. (x, ours, exact) {wrong[:3]}"


def test_the_formats_constants_are_the_ieee_and_bfloat16_figures():
    assert [FORMATS[n].largest for n in ("float16", "bfloat16", "float32")] == [65504.0, 3.3895313892515355e38,
                                                                                  3.4028234663852886e38]
    assert FORMATS["float16"].smallest_subnormal == 2.0**-24 and FORMATS["bfloat16"].smallest_subnormal == 2.0**-133
    assert [FORMATS[n].unit_roundoff for n in ("float64", "float32", "float16", "bfloat16")] == \
        [2.0**-53, 2.0**-24, 2.0**-11, 2.0**-8]


@pytest.mark.parametrize("ns", [FLOAT16, BFLOAT16], ids=lambda ns: ns.name)
def test_a_narrow_format_rounds_every_result_once(ns):
    """1 + 2^-12 is not a float16 number (nor a bfloat16 one); exp(12) overflows float16 (162754.8 >
    65504) but not bfloat16; a product of two numbers of the format is rounded back into it."""
    a = ns.convert(1 + 2.0**-12)
    assert a == 1.0
    assert ns.add(1.0, 2.0**-12) == 1.0
    assert ns.round(ns.exp(12.0)) == (math.inf if ns.name == "float16" else ns.format.round(math.exp(12.0)))
    third = ns.convert(1 / 3)
    assert ns.mul(third, third) == ns.format.round(third * third) != third * third
