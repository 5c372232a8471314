"""refimpl.optim against torch.optim 2.13 (single-tensor implementations, ``foreach=False``).

Every optimizer runs over every hyperparameter combination torch accepts (the boolean flags and
the zero/non-zero switches enumerated in full), for several steps with random gradients fed to both
sides through ``.grad``; the parameters are compared after every step.

Three levels of agreement are checked:

* float64, refimpl's default arithmetic (product and sum rounded separately): a few ulps — see
  :func:`assert_close` for the tolerance and why it is what it is;
* float32 emulation against torch float32: the same bound in binary32 ulps;
* bit-for-bit, float64 and float32, with ``contract_fma`` set the way this machine's torch kernels
  evaluate ``x + a*y`` (probed at run time) and torch's own (not correctly rounded) ``sqrt``
  swapped in: the reference performs torch's operations in torch's order, so every bit agrees.
  Reordering a single product inside ``addcdiv`` breaks this test and no other.
"""

from __future__ import annotations

import itertools
import math
import random
import struct
import zlib

import pytest
import torch

from refimpl import FLOAT32, FLOAT64, FRACTION, Value, mpmath_system, optim

STEPS = 5
SHAPES = [(2, 3), (), (4,)]  # a matrix, a 0-d tensor and a vector: 11 scalars
EPS64 = 2.0**-52
EPS32 = 2.0**-23


class Elems:
    """Stand-in for refimpl's Tensor: exposes its entries as a flat row-major ``.elements`` list."""

    def __init__(self, values):
        self.elements = list(values)


def _numel(shape):
    return math.prod(shape)


def _to_f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


# --- the hyperparameter grid: every combination torch accepts -------------------------------------------

def _grid(**axes):
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*axes.values())]


def _sgd_valid(h):  # torch: "Nesterov momentum requires a momentum and zero dampening"
    return not (h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0))


CASES = []
for h in _grid(lr=[0.1], momentum=[0, 0.9], dampening=[0, 0.3], nesterov=[False, True],
               weight_decay=[0, 0.05], maximize=[False, True]):
    if _sgd_valid(h):
        CASES.append(("sgd", h))
for name in ("adam", "adamw"):
    for h in _grid(lr=[0.05], betas=[(0.9, 0.999), (0.0, 0.6)], weight_decay=[0, 0.1],
                   amsgrad=[False, True], maximize=[False, True]):
        CASES.append((name, h))
for h in _grid(lr=[0.01], alpha=[0.99, 0.3], weight_decay=[0, 0.1], momentum=[0, 0.9],
               centered=[False, True], maximize=[False, True]):
    CASES.append(("rmsprop", h))  # alpha 0.3: lerp weight 0.7, the other branch of ATen's lerp
for h in _grid(lr=[0.1], lr_decay=[0, 0.1], weight_decay=[0, 0.1],
               initial_accumulator_value=[0, 0.5], maximize=[False, True]):
    CASES.append(("adagrad", h))

TORCH = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
         "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}


def _seed(case):
    return zlib.crc32(_case_id(case).encode())  # stable across runs (str hash is salted)


def _case_id(case):
    name, h = case
    parts = [name]
    for k, v in h.items():
        if k == "lr":
            continue
        if isinstance(v, bool):
            if v:
                parts.append(k)
        elif k == "betas":
            parts.append(f"b{v[0]}-{v[1]}")
        elif v:
            parts.append(f"{k}{v}")
    return "-".join(parts)


# --- running both sides ------------------------------------------------------------------------------

def _data(seed, binary32):
    """Initial params and per-step grads (magnitudes spread over three decades)."""
    rng = random.Random(seed)
    n = sum(_numel(s) for s in SHAPES)
    cast = _to_f32 if binary32 else float

    def number():
        return cast(rng.choice([-1, 1]) * rng.uniform(0.5, 2.0) * 10 ** rng.uniform(-1.5, 1.0))

    init = [number() for _ in range(n)]
    grads = [[number() for _ in range(n)] for _ in range(STEPS)]
    return init, grads


def _split(flat):
    out, i = [], 0
    for shape in SHAPES:
        out.append(flat[i:i + _numel(shape)])
        i += _numel(shape)
    return out


def run_refimpl(name, hyper, init, grads, system, **extra):
    params = [Value(x, system=system) for x in init]
    groups = _split(params)
    tensors = [Elems(g) if shape else g[0] for g, shape in zip(groups, SHAPES)]
    opt = optim.make(name, tensors, **hyper, **extra)
    history = []
    for g in grads:
        for p, gi in zip(params, g):
            p.grad = system.convert(gi)
        opt.step()
        history.append([p.data for p in params])
    return history


def run_torch(name, hyper, init, grads, dtype):
    params = [torch.tensor(chunk, dtype=dtype).reshape(shape).requires_grad_()
              for chunk, shape in zip(_split(init), SHAPES)]
    opt = TORCH[name](params, foreach=False, **hyper)
    history = []
    for g in grads:
        for p, chunk, shape in zip(params, _split(g), SHAPES):
            p.grad = torch.tensor(chunk, dtype=dtype).reshape(shape)
        opt.step()
        history.append([x for p in params for x in p.detach().reshape(-1).tolist()])
    return history


def assert_close(ref_history, torch_history, init, lr, eps, ulps=8):
    """Parameters agree to ``ulps`` · step · eps relative to the scale of the computation.

    Why this bound: each step evaluates ~10 correctly rounded ops per scalar, and refimpl and torch
    evaluate the same ops in the same order — they differ only where torch's kernels fuse a
    multiply-add (an error of ≤ 1/2 ulp of the product, per fused op). Those differences are ulps
    of the *operands*, which may be larger than the result when terms cancel (momentum, lerp), so
    the scale is the largest magnitude the parameter, its per-step change, or ``lr`` (an update is
    ``lr`` times a normalised step for Adam/RMSprop/Adagrad) has reached. Errors of earlier steps
    carry forward (Adam's moments remember them), so the allowance grows linearly with the step.
    A wrong formula, a missing bias correction or dampening applied once is wrong in the leading
    digits: 10^10 times over this bound.
    """
    prev = list(init)
    scale = [max(abs(x), lr) for x in init]
    worst = 0.0
    for t, (ref, tor) in enumerate(zip(ref_history, torch_history, strict=True), start=1):
        for i, (r, x) in enumerate(zip(ref, tor, strict=True)):
            scale[i] = max(scale[i], abs(x), abs(x - prev[i]))
            err = abs(float(r) - x)
            bound = ulps * t * eps * scale[i]
            worst = max(worst, err / (t * eps * scale[i]))
            assert err <= bound, (f"step {t}, element {i}: refimpl {float(r)!r} vs torch {x!r} "
                                  f"(|diff| {err:.3g} > {bound:.3g})")
        prev = tor
    return worst


# --- the machine's multiply-add: fused or not ----------------------------------------------------------

def _torch_contracts_fma(dtype):
    """Whether torch evaluates ``x.add(y, alpha=a)`` as one fused multiply-add here (None: unclear).

    With a = 1 + 2^-p (p = mantissa bits) and y = 1 + 2^-p, a·y = 1 + 2^(1-p) + 2^-2p; adding
    x = -(1 + 2^(1-p)) leaves 2^-2p if fused and 0 if the product is rounded first. Checked on a
    1-element tensor (scalar tail loop) and a 64-element one (vectorised loop).
    """
    p = 23 if dtype == torch.float32 else 52
    a = 1 + 2.0**-p
    answers = set()
    for n in (1, 64):
        x = torch.full((n,), -(1 + 2.0 ** (1 - p)), dtype=dtype)
        y = torch.full((n,), a, dtype=dtype)
        answers |= set(x.add(y, alpha=a).tolist())
    if answers == {2.0 ** (-2 * p)}:
        return True
    if answers == {0.0}:
        return False
    return None


# --- tests ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_float64_matches_torch(case):
    name, hyper = case
    init, grads = _data(_seed(case), binary32=False)
    ref = run_refimpl(name, hyper, init, grads, FLOAT64)
    tor = run_torch(name, hyper, init, grads, torch.float64)
    assert_close(ref, tor, init, hyper["lr"], EPS64)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_float32_emulation_matches_torch_float32(case):
    name, hyper = case
    init, grads = _data(_seed(case) + 1, binary32=True)
    ref = run_refimpl(name, hyper, init, grads, FLOAT32)
    assert all(_to_f32(float(x)) == float(x) for step in ref for x in step)  # binary32 values
    tor = run_torch(name, hyper, init, grads, torch.float32)
    assert_close(ref, tor, init, hyper["lr"], EPS32)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_bit_for_bit_with_the_machines_fma_and_sqrt(dtype, monkeypatch):
    """With torch's multiply-add contraction and its sqrt mirrored, every bit of every case agrees.

    torch's CPU ``sqrt`` goes through MKL's VML (``ATen/cpu/vml.h``), which is not correctly
    rounded (about 1 input in 100 is 1 ulp off, see ``test_torch_sqrt_is_not_correctly_rounded``);
    refimpl's is. So here, and only here, refimpl's sqrt kernel is swapped for torch's, to show
    that every *other* operation is torch's, in torch's order, to the last bit.
    """
    fused = _torch_contracts_fma(dtype)
    if fused is None:
        pytest.skip("torch's add(alpha) here is neither consistently fused nor unfused")
    system = FLOAT32 if dtype == torch.float32 else FLOAT64
    monkeypatch.setattr(optim.Kernels, "sqrt",
                        lambda self, x: torch.tensor(x, dtype=dtype).sqrt().item())
    mismatches = []
    for case in CASES:
        name, hyper = case
        init, grads = _data(_seed(case) + 2, binary32=dtype == torch.float32)
        ref = run_refimpl(name, hyper, init, grads, system, contract_fma=fused)
        tor = run_torch(name, hyper, init, grads, dtype)
        for t, (r, x) in enumerate(zip(ref, tor), start=1):
            if [float(v) for v in r] != x:
                mismatches.append(f"{_case_id(case)} step {t}")
                break
    assert not mismatches, f"not bit-identical (contract_fma={fused}): {mismatches}"


def test_torch_sqrt_is_not_correctly_rounded():
    """Documents why the bit-for-bit test borrows torch's sqrt (refimpl's is correctly rounded)."""
    rng = random.Random(5)
    xs = [rng.uniform(0.0, 10.0) for _ in range(4000)]
    theirs = torch.tensor(xs, dtype=torch.float64).sqrt().tolist()
    k = optim.Kernels(FLOAT64, contract_fma=False)
    ours = [k.sqrt(x) for x in xs]
    off = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    ctx = pytest.importorskip("mpmath").MPContext()
    ctx.prec = 200
    for i in off:
        assert abs(ours[i] - theirs[i]) <= math.ulp(ours[i])  # one ulp apart ...
        root = ctx.sqrt(ctx.mpf(xs[i]))  # ... and ours is the nearer one
        assert abs(ctx.mpf(ours[i]) - root) < abs(ctx.mpf(theirs[i]) - root)
    if not off:
        pytest.skip("this torch build's sqrt is correctly rounded")


def test_fma_emulation_is_a_single_rounding():
    """The fused path rounds a*b + c once (checked against exact rationals), in both formats."""
    from fractions import Fraction

    k64 = optim.Kernels(FLOAT64, contract_fma=True)
    k32 = optim.Kernels(FLOAT32, contract_fma=True)
    p = 52
    assert k64.fma(1 + 2.0**-p, 1 + 2.0**-p, -(1 + 2.0 ** (1 - p))) == 2.0 ** (-2 * p)
    assert k32.fma(1 + 2.0**-23, 1 + 2.0**-23, -(1 + 2.0**-22)) == 2.0**-46
    rng = random.Random(7)
    for _ in range(2000):
        a, b, c = (_to_f32(rng.uniform(-4, 4)) for _ in range(3))
        exact = Fraction(a) * Fraction(b) + Fraction(c)
        got = k32.fma(a, b, c)
        assert _to_f32(got) == got
        for up in (True, False):  # no binary32 neighbour is nearer the exact value
            assert abs(Fraction(got) - exact) <= abs(Fraction(_next_f32(got, up)) - exact)


def _next_f32(x, up):
    bits = struct.unpack("<i", struct.pack("<f", x))[0]
    if x == 0:
        return 2.0**-149 if up else -(2.0**-149)
    bits += 1 if (up == (x > 0)) else -1
    return struct.unpack("<f", struct.pack("<i", bits))[0]


# --- real gradients from a refimpl graph ----------------------------------------------------------------

def _tiny_net_ref(W, b, xs, ys):
    loss = 0
    for x, y in zip(xs, ys):
        for j in range(2):
            z = b[j] + sum((W[3 * j + i] * x[i] for i in range(3)), start=Value(0.0, False))
            loss = loss + (z.tanh() - y[j]) ** 2
    return loss


def _real_tensor(values, shape):
    tensor = pytest.importorskip("refimpl.tensor")
    return tensor.Tensor.from_flat(values, shape)


@pytest.mark.parametrize("container", [
    lambda values, shape: Elems(Value(v) for v in values),  # the .elements protocol alone
    _real_tensor,                                            # refimpl's Tensor
], ids=["elements", "Tensor"])
@pytest.mark.parametrize("name, hyper", [
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("adam", {"lr": 0.05, "amsgrad": True}),
    ("adamw", {"lr": 0.05}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1}),
])
def test_training_loop_with_backward_matches_torch(name, hyper, container):
    """loss → backward → step → zero_grad, eight times, on a 2x3 tanh layer over a batch of 4."""
    rng = random.Random(11)
    w0 = [rng.uniform(-1, 1) for _ in range(6)]
    b0 = [rng.uniform(-1, 1) for _ in range(2)]
    xs = [[rng.uniform(-2, 2) for _ in range(3)] for _ in range(4)]
    ys = [[rng.uniform(-1, 1) for _ in range(2)] for _ in range(4)]

    W, b = container(w0, (2, 3)), container(b0, (2,))
    opt = optim.make(name, [W, b], **hyper)
    tW = torch.tensor(w0, dtype=torch.float64).reshape(2, 3).requires_grad_()
    tb = torch.tensor(b0, dtype=torch.float64).requires_grad_()
    topt = TORCH[name]([tW, tb], foreach=False, **hyper)
    tx, ty = torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)

    for _ in range(8):
        loss = _tiny_net_ref(W.elements, b.elements, xs, ys)
        loss.backward()
        opt.step()
        opt.zero_grad()
        tloss = (torch.tanh(tx @ tW.T + tb) - ty).pow(2).sum()
        tloss.backward()
        topt.step()
        topt.zero_grad()
        assert loss.data == pytest.approx(tloss.item(), rel=1e-12)
        ours = [v.data for v in W.elements + b.elements]
        theirs = tW.detach().reshape(-1).tolist() + tb.detach().tolist()
        # The gradients themselves differ by ulps (torch sums the matmul in its own order), and
        # the step maps them through smooth functions: agreement to ~1e-12 of the scale.
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-12 * hyper["lr"])
    assert all(v.grad == 0.0 for v in W.elements + b.elements)


# --- other number systems ------------------------------------------------------------------------------

def test_mpmath_adam_is_float64_torch_to_its_precision():
    """In 50-digit arithmetic the same algorithm lands within float64 rounding of torch's result."""
    mp = mpmath_system(50)
    case = ("adam", {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True})
    init, grads = _data(3, binary32=False)
    ref = run_refimpl(*case, init, grads, mp)
    assert all(type(x).__name__ == "mpf" for x in ref[-1])
    tor = run_torch(*case, init, grads, torch.float64)
    assert_close(ref, tor, init, 0.05, EPS64)


def test_fraction_sgd_is_exact():
    """Over the rationals SGD with momentum, dampening and weight decay is exact arithmetic."""
    from fractions import Fraction as F

    p = Value(F(1), system=FRACTION)
    opt = optim.SGD([p], lr=F(1, 10), momentum=F(1, 2), dampening=F(1, 4), weight_decay=F(1, 5))
    theta, buf = F(1), None
    for g in (F(3), F(-1), F(2, 7)):
        p.grad = g
        opt.step()
        d = g + F(1, 5) * theta
        buf = d if buf is None else F(1, 2) * buf + F(3, 4) * d
        theta = theta - F(1, 10) * buf
        assert p.data == theta and isinstance(p.data, F)


# --- interface ------------------------------------------------------------------------------------------

def test_params_are_flattened_in_order_and_grad_none_is_skipped():
    a, b, c = Value(1.0), Value(2.0), Value(3.0)
    frozen = Value(4.0, requires_grad=False)  # grad None: skipped, like torch
    opt = optim.SGD([Elems([a, b]), c, frozen], lr=0.5)
    assert opt.params == [a, b, c, frozen]
    a.grad, b.grad, c.grad = 1.0, -2.0, 0.0
    opt.step()
    assert (a.data, b.data, c.data, frozen.data) == (0.5, 3.0, 3.0, 4.0)
    assert frozen not in opt.state
    opt.zero_grad()
    assert (a.grad, b.grad, c.grad, frozen.grad) == (0.0, 0.0, 0.0, None)
    opt.zero_grad(set_to_none=True)
    opt.step()  # nothing to do
    assert (a.data, b.data, c.data) == (0.5, 3.0, 3.0)


def test_state_is_kept_per_scalar():
    a, b = Value(1.0), Value(-1.0)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad, b.grad = 0.5, None
    opt.step()
    assert opt.state[a]["step"] == 1 and b not in opt.state
    b.grad = 1.0
    opt.step()
    assert opt.state[a]["step"] == 2 and opt.state[b]["step"] == 1


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_defaults_are_torchs(name):
    ours = optim.make(name, [Value(0.0)]).defaults
    theirs = TORCH[name]([torch.zeros(1, requires_grad=True)]).defaults
    for key, value in ours.items():
        if key == "decoupled_weight_decay" and name == "adam":
            assert value is False and theirs[key] is False
            continue
        assert theirs[key] == value, key


INVALID = [
    ("sgd", {"lr": -0.1}),
    ("sgd", {"lr": 0.1, "momentum": -0.5}),
    ("sgd", {"lr": 0.1, "weight_decay": -1e-3}),
    ("sgd", {"lr": 0.1, "nesterov": True}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}),
    ("adam", {"lr": -1e-3}),
    ("adam", {"eps": -1e-8}),
    ("adam", {"betas": (1.0, 0.999)}),
    ("adam", {"betas": (0.9, -0.1)}),
    ("adam", {"weight_decay": -0.1}),
    ("adamw", {"betas": (0.9, 1.0)}),
    ("adamw", {"lr": math.nan}),
    ("rmsprop", {"lr": -0.01}),
    ("rmsprop", {"eps": -1.0}),
    ("rmsprop", {"momentum": -0.9}),
    ("rmsprop", {"weight_decay": -0.1}),
    ("rmsprop", {"alpha": -0.99}),
    ("adagrad", {"lr": -0.01}),
    ("adagrad", {"lr_decay": -0.1}),
    ("adagrad", {"weight_decay": -0.1}),
    ("adagrad", {"initial_accumulator_value": -1.0}),
    ("adagrad", {"eps": -1e-10}),
]


@pytest.mark.parametrize("name, hyper", INVALID, ids=[f"{n}-{h}" for n, h in INVALID])
def test_invalid_hyperparameters_raise_torchs_error(name, hyper):
    with pytest.raises(ValueError) as theirs:
        TORCH[name]([torch.zeros(1, requires_grad=True)], **hyper)
    with pytest.raises(ValueError) as ours:
        optim.make(name, [Value(0.0)], **hyper)
    assert str(ours.value) == str(theirs.value)
    assert "\n" not in str(ours.value)


def test_edge_hyperparameters_torch_accepts_are_accepted():
    for name, hyper in [("sgd", {"lr": 0.0}), ("sgd", {"lr": 0.1, "dampening": -1.0}),
                        ("adam", {"betas": (0.0, 0.0), "eps": 0.0}), ("rmsprop", {"alpha": 2.0}),
                        ("sgd", {"lr": math.nan})]:  # SGD checks `lr < 0`, which NaN passes
        TORCH[name]([torch.zeros(1, requires_grad=True)], **hyper)
        optim.make(name, [Value(0.0)], **hyper)


def test_interface_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([Value(1.0) * 2], lr=0.1)
    v = Value(1.0)
    with pytest.raises(ValueError, match="twice"):
        optim.SGD([v, Elems([v])], lr=0.1)
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(v, lr=0.1)
    with pytest.raises(TypeError, match="only optimize Values"):
        optim.SGD([1.0], lr=0.1)
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        optim.make("lbfgs", [v])
    assert isinstance(optim.make("AdamW", [v]), optim.AdamW)
    assert set(optim.OPTIMIZERS) == {"sgd", "adam", "adamw", "rmsprop", "adagrad"}


def test_refimpl_optim_does_not_import_torch_or_numpy():
    import ast
    import pathlib

    tree = ast.parse(pathlib.Path(optim.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"torch", "numpy"}
