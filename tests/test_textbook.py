"""The textbook's layer equations against the scalar engine and against torch.

:mod:`refimpl.textbook` derives backprop for an MLP as four matrix equations with closed-form
activation derivatives and loss gradients; :mod:`refimpl.engine` derives it edge by edge from the
op table. Here the same network is built three ways — textbook lists, a graph of
:class:`~refimpl.Value` objects (with the loss written out in Value ops below), and torch float64 —
and every ∂J/∂W and ∂J/∂b entry must agree.

How close is "agree"? Both sides compute the same real numbers in binary64 with different
formulas and in different orders, so they differ by rounding. The bound used is the classical
running-error one (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 3): a sum or
product evaluated in floating point is wrong by at most k·u times the same expression evaluated
with the absolute values of its terms, u = 2⁻⁵³. :func:`error_scale` evaluates the backprop
equations that way — |W|, |a|, the absolute-value size of each g′ and ∂J/∂a formula — and adds the
first-order effect of the forward pass's own rounding (a pre-activation wrong by u·Σ|W||a| moves
g′ by up to max|g″| times that). The tolerance is then ``ULPS · u · scale`` per entry, with ``ULPS``
a small constant covering the k (a few dozen roundings on the longest path of these small nets).
Unlike a relative tolerance it does not blow up when a gradient entry is a sum that cancels to
nearly zero, and unlike an absolute one it stays ulp-tight for small entries.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from refimpl import Value, grad
from refimpl import textbook as tb

U = 2.0 ** -53  # unit roundoff of binary64
ULPS = 16  # see the module docstring; the worst ratio seen is printed with -s (about 3)

ACTIVATION_KINDS = ["identity", "relu", "leaky_relu", "elu", "tanh", "sigmoid", "softplus", "silu",
                    "gelu", "gelu_tanh"]
ELEMENTWISE = ["mse", "l1", "smooth_l1", "huber", "bce", "bce_with_logits"]
CLASS = ["cross_entropy", "nll"]
LOSSES = ELEMENTWISE + CLASS
CASES_PER_COMBO = 4  # random networks per (activation, loss, reduction)


def flat(nested):
    """The numbers of a nested list, in order."""
    if isinstance(nested, (list, tuple)):
        return [v for item in nested for v in flat(item)]
    return [nested]


# --- 1. the worked example ------------------------------------------------------------------------

def sigma(t):
    return 1.0 / (1.0 + math.exp(-t))


def test_worked_example_2_2_1_sigmoid():
    """The tutorial's 2-2-1 sigmoid network, one example, J = ½(a₂ − y)².

    W1 = [[0.3, 0.4], [0.1, 0.4]], b1 = [0, 0] give z1 = W1·[1, 0.5] = [0.5, 0.3]. For the output
    layer W2 = [[0.2, 0.3]] (both hidden units matter, with different weights, and the hidden
    deltas differ), and b2 = 0.6 − (0.2·σ(0.5) + 0.3·σ(0.3)) ≈ 0.303198 is chosen so that z2 = 0.6.
    The expected numbers are the tutorial's, rounded to 3 decimals as published.
    """
    x, y = [1.0, 0.5], 0.8
    W1, b1 = [[0.3, 0.4], [0.1, 0.4]], [0.0, 0.0]
    W2 = [[0.2, 0.3]]
    b2 = [0.6 - (0.2 * sigma(0.5) + 0.3 * sigma(0.3))]
    weights, biases, acts = [W1, W2], [b1, b2], ["sigmoid", "sigmoid"]

    cache = tb.forward([x], weights, biases, acts)
    (z1,), (z2,) = cache.z
    assert z1 == pytest.approx([0.5, 0.3], abs=1e-15)
    assert z2 == pytest.approx([0.6], abs=1e-15)
    a1, a2 = cache.a[1][0], cache.a[2][0][0]
    assert [round(v, 3) for v in a1] == [0.622, 0.574]
    assert round(a2, 3) == 0.646
    (sigma_prime_z2,) = tb.activation_derivative(z2, [a2], "sigmoid")
    assert round(sigma_prime_z2, 3) == 0.229

    # J = ½(a₂ − y)², so ∂J/∂a₂ = a₂ − y: handed to backward directly
    dW, db = tb.backward(cache, weights, [[a2 - y]])
    delta2 = db[1][0]
    assert round(delta2, 3) == -0.035
    assert delta2 == (a2 - y) * sigma_prime_z2
    assert [round(v, 3) for v in dW[1][0]] == [-0.022, -0.020]
    # one level down: δ1 = W2ᵀ δ2 ⊙ σ′(z1), ∂J/∂W1 = δ1 xᵀ
    delta1 = [W2[0][i] * delta2 * a1[i] * (1 - a1[i]) for i in range(2)]
    assert db[0] == pytest.approx(delta1, rel=1e-15)
    assert flat(dW[0]) == pytest.approx(flat([[d * xi for xi in x] for d in delta1]), rel=1e-15)

    # the library's mse with reduction='sum' is (a − y)², exactly twice ½(a − y)²
    J, dW_mse, db_mse = tb.gradients([x], [[y]], weights, biases, acts, "mse", "sum")
    assert J == (a2 - y) ** 2
    assert dW_mse == [[[2 * v for v in row] for row in m] for m in dW]
    assert db_mse == [[2 * v for v in vec] for vec in db]


# --- the same network in the scalar engine ---------------------------------------------------------

def engine_activation(v, name, attrs):
    return v if name == "identity" else getattr(v, name)(**attrs)


def engine_loss_terms(out, target, loss, attrs):
    """One example's loss, written with Value ops (the engine differentiates it)."""
    if loss == "cross_entropy":
        eps, C = attrs.get("label_smoothing", 0.0), len(out)
        m = max(v.data for v in out)  # a constant shift: log Σ e^z = m + log Σ e^(z − m)
        s = (out[0] - m).exp()
        for v in out[1:]:
            s = s + (v - m).exp()
        lse = s.log() + m
        smooth = out[0] - lse
        for v in out[1:]:
            smooth = smooth + (v - lse)
        return [-(1 - eps) * (out[target] - lse) - (eps / C) * smooth]
    if loss == "nll":
        return [-out[target]]
    terms = []
    for a, y in zip(out, target, strict=True):
        d = a - y
        if loss == "mse":
            terms.append(d ** 2)
        elif loss == "l1":
            terms.append(d.abs())
        elif loss == "smooth_l1":
            beta = attrs["beta"]
            terms.append(0.5 * d * d / beta if abs(d.data) < beta else d.abs() - 0.5 * beta)
        elif loss == "huber":
            delta = attrs["delta"]
            terms.append(0.5 * d * d if abs(d.data) <= delta else delta * (d.abs() - 0.5 * delta))
        elif loss == "bce":
            terms.append(-(y * a.log().clamp(min=-100.0) + (1 - y) * (1 - a).log().clamp(min=-100.0)))
        elif loss == "bce_with_logits":
            terms.append(a.relu() - a * y + (-a.abs()).exp().log1p())
        else:
            raise ValueError(loss)
    return terms


def engine_gradients(x_batch, targets, weights, biases, acts, loss, reduction, attrs):
    W = [[[Value(w) for w in row] for row in m] for m in weights]
    b = [[Value(v) for v in vec] for vec in biases]
    terms = []
    for x, t in zip(x_batch, targets, strict=True):
        h = [Value(v, requires_grad=False) for v in x]
        for Wl, bl, (name, act_attrs) in zip(W, b, acts, strict=True):
            z = []
            for row, bj in zip(Wl, bl, strict=True):
                s = bj
                for w, hi in zip(row, h, strict=True):
                    s = s + w * hi
                z.append(s)
            h = [engine_activation(v, name, act_attrs) for v in z]
        terms += engine_loss_terms(h, t, loss, attrs)
    J = terms[0]
    for term in terms[1:]:
        J = J + term
    if reduction == "mean":
        J = J / (len(x_batch) if loss in CLASS else len(x_batch) * len(weights[-1]))
    leaves = [w for m in W for row in m for w in row] + [v for vec in b for v in vec]
    grads = grad(J, leaves, allow_unused=True)  # nll never reaches the other classes' rows
    return J.data, unflatten([0.0 if g is None else g for g in grads], weights, biases)


def unflatten(flat, weights, biases):
    it = iter(flat)
    dW = [[[float(next(it)) for _ in row] for row in m] for m in weights]
    db = [[float(next(it)) for _ in vec] for vec in biases]
    return dW, db


# --- ... and in torch ------------------------------------------------------------------------------

def torch_activation(h, name, attrs):
    if name == "identity":
        return h
    if name in ("tanh", "sigmoid"):
        return getattr(torch, name)(h)
    return getattr(F, name)(h, **attrs)


def torch_gradients(x_batch, targets, weights, biases, acts, loss, reduction, attrs):
    f64 = torch.float64
    W = [torch.tensor(m, dtype=f64, requires_grad=True) for m in weights]
    b = [torch.tensor(v, dtype=f64, requires_grad=True) for v in biases]
    h = torch.tensor(x_batch, dtype=f64)
    for Wl, bl, (name, act_attrs) in zip(W, b, acts, strict=True):
        h = torch_activation(F.linear(h, Wl, bl), name, act_attrs)
    if loss in CLASS:
        t = torch.tensor(targets, dtype=torch.long)
        fn = F.cross_entropy if loss == "cross_entropy" else F.nll_loss
    else:
        t = torch.tensor(targets, dtype=f64)
        fn = {"mse": F.mse_loss, "l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss, "huber": F.huber_loss,
              "bce": F.binary_cross_entropy,
              "bce_with_logits": F.binary_cross_entropy_with_logits}[loss]
    J = fn(h, t, reduction=reduction, **attrs)
    flat = torch.autograd.grad(J, W + b)
    it = iter(flat)
    dW = [next(it).tolist() for _ in weights]
    db = [next(it).tolist() for _ in biases]
    return J.item(), (dW, db)


# --- the tolerance: a running rounding-error bound --------------------------------------------------

def _curvature_and_lipschitz(name, attrs):
    """(bound on |g″|, bound on |g′|) — how far g′ and g move when z is off by a little."""
    if name in ("identity", "relu"):
        return 0.0, 1.0
    if name == "leaky_relu":
        return 0.0, max(1.0, abs(attrs["negative_slope"]))
    if name == "elu":
        return attrs["alpha"], max(1.0, attrs["alpha"])
    if name == "softplus":
        return attrs["beta"], 1.0
    return 1.0, 1.2  # tanh, sigmoid, silu, gelu: |g″| ≤ 0.8, |g′| ≤ 1.13


def _g_prime_size(name, z, a, attrs):
    """The absolute-value evaluation of the g′ formulas (cancellation in 1 − a² etc. is u·(1 + a²))."""
    if name == "tanh":
        return 1.0 + a * a
    if name == "sigmoid":
        return a * (1.0 + a)
    if name in ("silu", "gelu"):
        return 1.0 + abs(z)
    if name == "elu" and z <= 0:
        return attrs["alpha"] * math.exp(z)
    if name == "softplus":
        return 1.0
    return abs(tb.ACTIVATIONS[name][1](z, a, **attrs))


def _loss_gradient_size(loss, out, err, target, attrs):
    """Per output: absolute-value size of ∂ℓ/∂a's formula, plus its sensitivity to a's own error."""
    if loss == "cross_entropy":
        p = tb.softmax(out)
        q = tb.smoothed_target(target, len(out), attrs.get("label_smoothing", 0.0))
        spread = 1.0 + 2.0 * max(abs(o) + e for o, e in zip(out, err))
        return [pc * spread + qc for pc, qc in zip(p, q)]
    if loss == "nll":
        return [1.0 if c == target else 0.0 for c in range(len(out))]
    sizes = []
    for a, e, y in zip(out, err, target, strict=True):
        d = abs(a) + abs(y) + e
        if loss == "mse":
            sizes.append(2.0 * d)
        elif loss == "l1":
            sizes.append(1.0)
        elif loss == "smooth_l1":
            sizes.append(1.0 + d / attrs["beta"])
        elif loss == "huber":
            sizes.append(attrs["delta"] + d)
        elif loss == "bce":
            p, r = a, 1.0 - a  # the denominators, each off by (error of a) + one rounding
            sizes.append(d / (p * r) * (1.0 + (e + 1.0) / p + (e + 1.0) / r))
        elif loss == "bce_with_logits":
            sizes.append(1.0 + abs(y) + e)
    return sizes


def error_scale(x_batch, targets, weights, biases, acts, loss, reduction, attrs):
    """Entry-by-entry size S such that |textbook − other| ≤ ULPS·u·S is the agreement expected.

    Forward: E_z = Σ|W|(|a| + E_a) + |b| bounds the rounding error of z in units of u, and
    E_a = Lip(g)·E_z + |a| + |z| that of a. Backward: the same four equations on sizes,
    D⁽ᴸ⁾ = G ⊙ P, D⁽ˡ⁾ = |W⁽ˡ⁺¹⁾|ᵀ D⁽ˡ⁺¹⁾ ⊙ P with P = size(g′) + max|g″|·E_z and G the loss
    gradient's size; then Σ_batch D (|a| + E_a)ᵀ and Σ_batch D.
    """
    cache = tb.forward(x_batch, weights, biases, acts)
    L = len(weights)
    count = 1 if reduction == "sum" else (len(x_batch) if loss in CLASS
                                            else len(x_batch) * len(weights[-1]))
    absW = [[[abs(w) for w in row] for row in m] for m in weights]
    SW = [[[0.0] * len(row) for row in m] for m in weights]
    Sb = [[0.0] * len(v) for v in biases]
    for n in range(len(x_batch)):
        size_a = [[abs(v) for v in x_batch[n]]]  # |a| + E_a per layer; inputs are exact
        P, err_a = [], None
        for l, (name, at) in enumerate(acts):
            z, a = cache.z[l][n], cache.a[l + 1][n]
            Ez = [sum(w * s for w, s in zip(row, size_a[-1])) + abs(bj)
                  for row, bj in zip(absW[l], biases[l])]
            curv, lip = _curvature_and_lipschitz(name, at)
            err_a = [lip * e + abs(aj) + abs(zj) for e, aj, zj in zip(Ez, a, z)]
            size_a.append([abs(aj) + e for aj, e in zip(a, err_a)])
            P.append([_g_prime_size(name, zj, aj, at) + curv * e for zj, aj, e in zip(z, a, Ez)])
        G = _loss_gradient_size(loss, cache.a[L][n], err_a, targets[n], attrs)
        D = [g * p / count for g, p in zip(G, P[L - 1])]
        for l in range(L - 1, -1, -1):
            for j, dj in enumerate(D):
                Sb[l][j] += dj
                for i, si in enumerate(size_a[l]):
                    SW[l][j][i] += dj * si
            if l:
                D = [sum(absW[l][j][i] * D[j] for j in range(len(D))) * P[l - 1][i]
                     for i in range(len(P[l - 1]))]
    return SW, Sb


def worst_ratio(got, want, scale):
    """max over entries of |got − want| / (u·scale) — the disagreement in units of the bound."""
    (gW, gb), (wW, wb), (sW, sb) = got, want, scale
    pairs = [(g, w, s) for gm, wm, sm in zip(gW, wW, sW) for gr, wr, sr in zip(gm, wm, sm)
             for g, w, s in zip(gr, wr, sr, strict=True)]
    pairs += [(g, w, s) for gv, wv, sv in zip(gb, wb, sb) for g, w, s in zip(gv, wv, sv, strict=True)]
    worst = 0.0
    for g, w, s in pairs:
        if g != w:
            worst = max(worst, math.inf if s == 0 else abs(g - w) / (U * s))
    return worst


# --- random networks --------------------------------------------------------------------------------

def random_activation(rng, kind):
    if kind == "leaky_relu":
        return "leaky_relu", {"negative_slope": rng.uniform(0.01, 0.3)}
    if kind == "elu":
        return "elu", {"alpha": rng.uniform(0.5, 2.0)}
    if kind == "softplus":  # thresholds low enough that the linear branch is taken now and then
        return "softplus", {"beta": rng.uniform(0.5, 3.0), "threshold": rng.uniform(1.0, 4.0)}
    if kind == "gelu":
        return "gelu", {"approximate": "none"}
    if kind == "gelu_tanh":
        return "gelu", {"approximate": "tanh"}
    return kind, {}


def random_case(rng, kind, loss, reduction):
    depth = rng.randint(1, 4)
    if loss == "bce" and kind != "sigmoid":
        depth = max(depth, 2)  # the output layer is sigmoid; `kind` goes in a hidden layer
    widths = [rng.randint(1, 7) for _ in range(depth + 1)]
    weights = [[[rng.uniform(-1.2, 1.2) for _ in range(widths[l])] for _ in range(widths[l + 1])]
               for l in range(depth)]
    biases = [[rng.uniform(-0.5, 0.5) for _ in range(widths[l + 1])] for l in range(depth)]
    kinds = [kind if rng.random() < 0.6 else rng.choice(ACTIVATION_KINDS) for _ in range(depth)]
    kinds[rng.randrange(depth - 1) if loss == "bce" and depth > 1 else rng.randrange(depth)] = kind
    if loss == "bce":
        kinds[-1] = "sigmoid"  # binary_cross_entropy takes probabilities
    acts = [random_activation(rng, k) for k in kinds]
    N, K = rng.randint(1, 5), widths[-1]
    x = [[rng.uniform(-2.0, 2.0) for _ in range(widths[0])] for _ in range(N)]
    if loss in CLASS:
        y = [rng.randrange(K) for _ in range(N)]
    elif loss in ("bce", "bce_with_logits"):
        y = [[rng.choice([0.0, 1.0, rng.random()]) for _ in range(K)] for _ in range(N)]
    else:
        y = [[rng.uniform(-1.5, 1.5) for _ in range(K)] for _ in range(N)]
    attrs = {}
    if loss == "smooth_l1":
        attrs["beta"] = rng.uniform(0.2, 1.5)
    elif loss == "huber":
        attrs["delta"] = rng.uniform(0.2, 1.5)
    elif loss == "cross_entropy":
        attrs["label_smoothing"] = rng.choice([0.0, rng.uniform(0.0, 0.3)])
    return x, y, weights, biases, acts, attrs


COMBOS = [(k, loss, r) for k in ACTIVATION_KINDS for loss in LOSSES for r in ("mean", "sum")]
WORST = {"engine": 0.0, "torch": 0.0}


@pytest.mark.parametrize("kind, loss, reduction", COMBOS)
def test_textbook_equals_engine(kind, loss, reduction):
    rng = random.Random(f"{kind}/{loss}/{reduction}")
    for case in range(CASES_PER_COMBO):
        x, y, weights, biases, acts, attrs = random_case(rng, kind, loss, reduction)
        J, dW, db = tb.gradients(x, y, weights, biases, acts, loss, reduction, **attrs)
        J_engine, engine = engine_gradients(x, y, weights, biases, acts, loss, reduction, attrs)
        scale = error_scale(x, y, weights, biases, acts, loss, reduction, attrs)
        ratio = worst_ratio((dW, db), engine, scale)
        WORST["engine"] = max(WORST["engine"], ratio)
        where = f"case {case}: acts={acts} widths={[len(weights[0][0])] + [len(m) for m in weights]}"
        assert ratio <= ULPS, f"{where}: textbook and engine differ by {ratio:.1f} u·scale"
        assert J == pytest.approx(J_engine, rel=ULPS * U, abs=ULPS * U), where
        if case == 0:  # and a third opinion for one network in four
            J_torch, ref = torch_gradients(x, y, weights, biases, acts, loss, reduction, attrs)
            ratio = worst_ratio((dW, db), ref, scale)
            WORST["torch"] = max(WORST["torch"], ratio)
            assert ratio <= ULPS, f"{where}: textbook and torch differ by {ratio:.1f} u·scale"
            assert J == pytest.approx(J_torch, rel=ULPS * U, abs=ULPS * U), where


def test_report_worst_ratio(capsys):
    """Runs last in the file: how much of the ULPS budget the comparisons above used (see -s)."""
    with capsys.disabled():
        print(f"\ntextbook vs engine: worst {WORST['engine']:.2f}, vs torch: worst "
              f"{WORST['torch']:.2f} (units of u·scale; budget {ULPS})")
    assert WORST["engine"] <= ULPS and WORST["torch"] <= ULPS


# --- torch's conventions at the kinks ---------------------------------------------------------------

@pytest.mark.parametrize("act, z, expected", [
    ("relu", 0.0, 0.0),
    (("leaky_relu", {"negative_slope": 0.2}), 0.0, 0.2),
    (("elu", {"alpha": 1.7}), 0.0, 1.7),
    (("softplus", {"beta": 2.0, "threshold": 3.0}), 1.5, 1.0 / (1.0 + math.exp(-3.0))),
    (("softplus", {"beta": 2.0, "threshold": 3.0}), 1.5 + 2 ** -40, 1.0),
])
def test_activation_kinks_match_torch(act, z, expected):
    name, attrs = tb.activation_spec(act)
    (got,) = tb.activation_derivative([z], tb.activate([z], act), act)
    assert got == expected
    zt = torch.tensor([z], dtype=torch.float64, requires_grad=True)
    (ref,) = torch.autograd.grad(torch_activation(zt, name, attrs).sum(), zt)
    assert got == pytest.approx(ref.item(), rel=4 * U)


@pytest.mark.parametrize("loss, out, target, attrs", [
    ("l1", [0.5, -1.0], [0.5, 2.0], {}),  # sign(0) = 0
    ("smooth_l1", [1.25, -0.5, 0.0], [1.0, 0.0, 0.0], {"beta": 0.25}),  # |d| = β, |d| > β, d = 0
    ("huber", [2.0, 0.0, -1.0], [1.5, 0.0, 0.0], {"delta": 0.5}),  # |d| = δ, d = 0, |d| > δ
    ("bce", [1e-50, 1.0, 0.3], [0.5, 0.5, 0.3], {}),  # torch's max(a(1 − a), 1e-12) and clamps
    ("mse", [0.25, 0.75], [0.25, -0.25], {}),
])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_conventions_match_torch(loss, out, target, attrs, reduction):
    J = tb.loss_value(loss, [out], [target], reduction, **attrs)
    (g,) = tb.loss_gradient(loss, [out], [target], reduction, **attrs)
    a = torch.tensor([out], dtype=torch.float64, requires_grad=True)
    fn = {"l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss, "huber": F.huber_loss,
          "bce": F.binary_cross_entropy, "mse": F.mse_loss}[loss]
    Jt = fn(a, torch.tensor([target], dtype=torch.float64), reduction=reduction, **attrs)
    (gt,) = torch.autograd.grad(Jt, a)
    assert J == pytest.approx(Jt.item(), rel=4 * U)
    assert g == pytest.approx(gt[0].tolist(), rel=4 * U)


def test_network_with_pre_activations_exactly_at_the_kinks():
    """z = 0 exactly for relu, leaky_relu and elu units, and βz = threshold for softplus."""
    x = [[1.0, 2.0], [0.5, -0.25]]
    W1 = [[2.0, -1.0], [1.0, -0.5], [-4.0, 2.0], [1.5, 0.0]]  # first example: z1 = [0, 0, 0, 1.5]
    b1 = [0.0, 0.0, 0.0, 0.0]
    weights, biases = [W1, [[0.3, -0.7, 0.9, 0.4]]], [b1, [0.1]]
    y = [[0.2], [-0.4]]
    for act in ["relu", ("leaky_relu", {"negative_slope": 0.1}), ("elu", {"alpha": 0.7}),
                ("softplus", {"beta": 2.0, "threshold": 3.0})]:
        acts = [act, "identity"]
        name, attrs = tb.activation_spec(act)
        _, dW, db = tb.gradients(x, y, weights, biases, acts, "mse", "mean")
        _, (tW, tb_) = torch_gradients(x, y, weights, biases, [(name, attrs), ("identity", {})],
                                       "mse", "mean", {})
        _, (eW, eb) = engine_gradients(x, y, weights, biases, [(name, attrs), ("identity", {})],
                                       "mse", "mean", {})
        for other in (flat((tW, tb_)), flat((eW, eb))):
            assert flat((dW, db)) == pytest.approx(other, rel=1e-14, abs=1e-15), act


def test_cross_entropy_output_delta_is_softmax_minus_target():
    """With an identity output layer, δᴸ = ∂J/∂zᴸ = (softmax(z) − q)/N exactly as written."""
    z = [[2.0, -1.0, 0.5], [0.0, 0.0, 3.0]]
    (g0, g1) = tb.loss_gradient("cross_entropy", z, [0, 2], "mean", label_smoothing=0.1)
    p0 = [math.exp(v) / sum(math.exp(w) for w in z[0]) for v in z[0]]
    q0 = [0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3]
    assert g0 == pytest.approx([(p - q) / 2 for p, q in zip(p0, q0)], rel=1e-14)
    assert sum(g1) == pytest.approx(0.0, abs=1e-16)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown activation"):
        tb.forward([[1.0]], [[[1.0]]], [[0.0]], ["swish"])
    with pytest.raises(ValueError, match="reduction"):
        tb.gradients([[1.0]], [[1.0]], [[[1.0]]], [[0.0]], ["identity"], "mse", "none")
    with pytest.raises(ValueError, match="shapes"):
        tb.forward([[1.0, 2.0]], [[[1.0]]], [[0.0]], ["identity"])
    with pytest.raises(ValueError, match="out of range"):
        tb.gradients([[1.0]], [3], [[[1.0], [2.0]]], [[0.0, 0.0]], ["identity"], "cross_entropy")
