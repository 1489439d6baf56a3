"""Two-layer linear networks (THEORY.md §2): gradients, σ(T), local PL/smoothness, imbalance, schedules.

All checks in float64 on the backend under test (``strict`` by default).
"""
from __future__ import annotations

import json
import math
import re
import struct
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minilplr import backend as B
from minilplr.nn.gradcheck import numerical_gradient, rel_error
from minilplr.theory.linear import (
    AdaptiveStep,
    Armijo,
    Constant,
    LeastSquares,
    RidgeLeastSquares,
    T_matrix,
    TwoLayerLinear,
    Xu2023Step,
    apply_T,
    apply_T_adjoint,
    descent_bound,
    fro_UtV,
    gaussian_init,
    gradient_norm_bound,
    imbalance,
    imbalance_drift,
    imbalance_increment,
    imbalance_init,
    imbalance_ratio,
    imbalance_step_bound,
    imbalance_step_norm,
    initial_safe_lr,
    kappa_T,
    local_pl_constant,
    local_smoothness,
    local_smoothness_bound,
    lr_for_smoothness,
    make_network,
    observed_rate,
    pl_contraction_bound,
    run_gd,
    sigma2_T,
    sigma2_T_spectrum,
    steps_to_tolerance,
    synthetic_regression,
    xu2023_coefficients,
    xu2023_rate,
    xu2023_step,
)
from minilplr.train.checkpoint import CheckpointMismatch
from minilplr.store import config_hash
from minilplr.experiments.linear_runs import (
    SCHEDULE_LABELS,
    cached_run,
    data_from_config,
    load_run,
    save_run,
    schedule_from_config,
    weights_from_config,
)
from minilplr.train.optim import SGD

from ...strategies import seeds


def _S(x):
    return B.to_scalar(x)


def _host(x):
    return B.to_host(x)


@st.composite
def problems(draw, max_n=4, max_m=4, max_h=8, ridge=None):
    """Sizes and a seed for a small least-squares (or ridge) problem and weights."""
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(1, max_m))
    h = draw(st.integers(1, max_h))
    extra = draw(st.integers(0, 3))
    lam = draw(st.sampled_from([None, 0.3])) if ridge is None else (0.3 if ridge else None)
    return dict(n=n, m=m, h=h, N=n + extra, seed=draw(seeds), lam=lam, scale=draw(st.sampled_from([0.3, 1.0])))


def _make(cfg, dev, be, well_posed=False):
    """Host draws -> TwoLayerLinear on the backend under test, float64."""
    rng = np.random.default_rng(cfg["seed"])
    n, m, h, N = cfg["n"], cfg["m"], cfg["h"], cfg["N"]
    Q, _ = np.linalg.qr(rng.standard_normal((N, n)))
    X = Q * rng.uniform(0.5, 2.0, size=n)  # singular values in [0.5, 2]: full column rank
    Y = rng.standard_normal((N, m))
    if well_posed:
        W1, W2 = gaussian_init(n, m, h, cfg["p"], rng)
    else:
        W1 = rng.standard_normal((n, h)) * cfg["scale"]
        W2 = rng.standard_normal((m, h)) * cfg["scale"]
    loss = LeastSquares(dev(X), dev(Y)) if cfg["lam"] is None else RidgeLeastSquares(dev(X), dev(Y), cfg["lam"])
    return TwoLayerLinear(loss, dev(W1), dev(W2))


# ---------------------------------------------------------------------------
# Gradients and the operator T.
# ---------------------------------------------------------------------------


@given(problems())
def test_gradient_matches_central_differences(be, dev, cfg):
    net = _make(cfg, dev, be)
    net.backward()
    for k in ("W1", "W2"):
        num = numerical_gradient(lambda: net.loss(), net.params[k])
        assert rel_error(num, net.grads[k]) < 1e-7, k


@given(problems())
def test_loss_gradient_matches_central_differences(be, dev, cfg):
    """∇ℓ(W) of the plain loss (least squares / ridge) against central differences."""
    net = _make(cfg, dev, be)
    W = net.product().copy()
    num = numerical_gradient(lambda: net.loss_fn.value(W), W)
    assert rel_error(num, net.loss_fn.grad(W)) < 1e-7


@given(problems(max_n=3, max_m=3, max_h=5))
def test_sigma_T_closed_form_matches_explicit_matrix(be, dev, cfg):
    net = _make(cfg, dev, be)
    xp = be.xp
    M = T_matrix(net.W1, net.W2)
    n, m, h = cfg["n"], cfg["m"], cfg["h"]
    assert tuple(M.shape) == (n * h + m * h, n * m)
    # the explicit matrix acts as T
    G = dev(np.random.default_rng(cfg["seed"] + 1).standard_normal((n, m)))
    A, Bm = apply_T(G, net.W1, net.W2)
    assert rel_error(M @ G.reshape(-1), xp.concatenate([A.reshape(-1), Bm.reshape(-1)])) < 1e-12
    # its squared singular values are all sums λ_i(W₁W₁ᵀ) + λ_j(W₂W₂ᵀ)
    sv = xp.linalg.svd(M, compute_uv=False)  # min(rows, n·m) values; the rest are 0
    sv2 = xp.sort(xp.concatenate([sv ** 2, xp.zeros(n * m - sv.shape[0])]))
    spec = sigma2_T_spectrum(net.W1, net.W2)
    scale = _S(spec[-1]) + 1e-300
    assert _S(xp.abs(sv2 - spec).max()) <= 1e-10 * scale
    s2min, s2max = sigma2_T(net.W1, net.W2)
    assert abs(s2min - _S(sv2[0])) <= 1e-10 * scale
    assert abs(s2max - _S(sv2[-1])) <= 1e-10 * scale
    # σ²_max(T) = ‖W₁‖² + ‖W₂‖²
    w1 = _S(xp.linalg.svd(net.W1, compute_uv=False)[0])
    w2 = _S(xp.linalg.svd(net.W2, compute_uv=False)[0])
    assert abs(s2max - (w1 ** 2 + w2 ** 2)) <= 1e-10 * scale


@given(problems(max_n=3, max_m=3, max_h=1))
def test_kappa_T_matches_the_explicit_operator(be, dev, cfg):
    """``κ(T₀) = σ_max/σ_min`` of the explicit ``(n·h + m·h) × n·m`` matrix of ``T``, by a plain SVD.

    ``h ≥ n + m`` so that ``σ_min(T) > 0``.  The SVD's singular values carry
    an absolute error ~``nε σ_max``, the closed form's ``σ²_min`` an absolute
    error ~``nε σ²_max``; both give ``κ`` to ~``nε κ²`` relative, so
    ``1e-12 κ²`` (about 50ε κ²) bounds the difference.
    """
    rng = np.random.default_rng(cfg["seed"])
    n, m = cfg["n"], cfg["m"]
    h = n + m + int(rng.integers(0, 4))
    W1 = dev(rng.standard_normal((n, h)) * cfg["scale"])
    W2 = dev(rng.standard_normal((m, h)) * cfg["scale"])
    sv = _host(be.xp.linalg.svd(T_matrix(W1, W2), compute_uv=False))
    assert sv.shape == (n * m,) and sv[-1] > 0
    explicit = sv[0] / sv[-1]
    kappa = kappa_T(W1, W2)
    assert kappa == pytest.approx(explicit, rel=1e-12 * explicit ** 2)
    assert kappa >= 1.0


@given(problems())
def test_T_adjoint_and_gradient_is_T_of_grad_ell(be, dev, cfg):
    net = _make(cfg, dev, be)
    rng = np.random.default_rng(cfg["seed"] + 2)
    G = dev(rng.standard_normal((cfg["n"], cfg["m"])))
    A = dev(rng.standard_normal((cfg["n"], cfg["h"])))
    Bm = dev(rng.standard_normal((cfg["m"], cfg["h"])))
    TA, TB = apply_T(G, net.W1, net.W2)
    lhs = _S((TA * A).sum() + (TB * Bm).sum())
    rhs = _S((G * apply_T_adjoint(A, Bm, net.W1, net.W2)).sum())
    assert abs(lhs - rhs) <= 1e-10 * (abs(lhs) + abs(rhs) + 1.0)
    net.backward()
    g1, g2 = apply_T(net.grad_ell, net.W1, net.W2)
    assert rel_error(g1, net.grads["W1"]) < 1e-13 and rel_error(g2, net.grads["W2"]) < 1e-13


# ---------------------------------------------------------------------------
# Local PL and smoothness.
# ---------------------------------------------------------------------------


@given(problems())
def test_local_pl_inequality_with_mu_t(be, dev, cfg):
    """½‖∇L‖² ≥ μ_t (L − L*) with μ_t = μ σ²_min(T_t) (THEORY.md §2)."""
    net = _make(cfg, dev, be)
    L = _S(net.backward())
    gap = L - net.loss_fn.min_value
    grad_sq = sum(_S((g * g).sum()) for g in net.grads.values())
    mu_t = local_pl_constant(net.loss_fn.mu, net.W1, net.W2)
    assert 0.5 * grad_sq >= mu_t * gap - 1e-10 * (1.0 + L)


@given(problems(), st.floats(-3.0, 1.0))
def test_descent_lemma_with_local_smoothness(be, dev, cfg, log_frac):
    """L(θ − η∇L) ≤ L − η(1 − ηK_t(η)/2)‖∇L‖² for any η (K_t our reconstruction), and the contraction bound."""
    net = _make(cfg, dev, be)
    K, mu, Lstar = net.loss_fn.K, net.loss_fn.mu, net.loss_fn.min_value
    L = _S(net.backward())
    s2min, s2max = sigma2_T(net.W1, net.W2)
    g = math.sqrt(_S((net.grad_ell * net.grad_ell).sum()))
    grad_sq = sum(_S((x * x).sum()) for x in net.grads.values())
    lr = 10.0 ** log_frac / local_smoothness(K, s2max, g, 0.0)
    trial = {k: p - lr * net.grads[k] for k, p in net.params.items()}
    L_new = _S(net.loss(trial))
    slack = 1e-10 * (1.0 + abs(L))
    for gg in (g, gradient_norm_bound(K, L - Lstar)):  # measured ‖∇ℓ‖ and the paper's √(2K(L − L*))
        K_t = local_smoothness(K, s2max, gg, lr)
        assert L_new <= descent_bound(L, lr, grad_sq, K_t) + slack
        if lr * K_t <= 2.0:
            assert L_new - Lstar <= pl_contraction_bound(lr, mu * s2min, K_t) * (L - Lstar) + slack


@settings(max_examples=3)
@pytest.mark.parametrize("name", ["constant", "adaptive", "xu2023", "armijo"])
@given(seed=seeds)
def test_K_bar_bounds_K_t_along_gd_runs_of_every_schedule(name, seed, be):
    """``K̄_t(η_t) ≥ K_t(η_t)`` at every GD step of real runs, for each schedule.

    ``K_t`` (recorded by :func:`run_gd`) uses the measured ``σ²_max(T_t)`` and
    ``g = ‖∇ℓ(W_t)‖_F``; ``K̄_t`` (:func:`local_smoothness_bound`) replaces ``g`` by
    ``√(2K(L − L*))`` and, in the paper's variant, ``σ²_max(T_t)`` by
    ``α₂e^{√η₀}`` (``α₂ = σ²_max(T₀)``); that variant is a bound where the
    paper's ``σ²_max(T_t) ≤ α₂e^{√η₀}`` holds, which is where both are
    defined.  On the paper's data (``X`` orthonormal, ``Y = XΘ``) the gradient
    bound is an equality, ``‖∇ℓ‖² = ‖XᵀR‖² = ‖R‖² = 2(L − L*)``, so the
    ``current`` variant meets ``K_t`` up to rounding: the test is sharp (a
    ``√(K(L − L*))`` would fail it).  The two sides agree to ~1e-15 relative
    (``XᵀX = I`` and ``L* ≈ 0`` up to rounding, the run stopped at
    ``1e-10·(L₀ − L*)``, far above the floating-point floor): slack 1e-12.
    For the adaptive schedule also ``η_t K̄_t(η_t) ≤ 1`` (eq. 19 with the same ``K̄_t``).
    """
    X, Y = data_from_config({"N": 8, "n": 4, "m": 3, "seed": seed % 1000, "x_cond": 1.0})
    W1, W2 = weights_from_config(4, 3, 24, {"kind": "gaussian", "p": 0.375}, seed)
    net = make_network(X, Y, W1, W2, backend=be)
    K, eta0 = net.loss_fn.K, 0.01
    sched = schedule_from_config(name, net, {"eta0": eta0})
    alpha2 = sigma2_T(net.W1, net.W2)[1]  # σ²_max(T₀)
    res = run_gd(net, sched, 40, tol=1e-10, track_drift=False)
    T = res["steps"]
    assert T > 5
    slack = 1.0 - 1e-12
    held = 0
    for t in range(T):
        lr, gap, s2 = res["lr"][t], res["gap"][t], res["sigma2_max"][t]
        K_t = res["K_t"][t]
        assert K_t == local_smoothness(K, s2, res["grad_ell"][t], lr)  # what run_gd records
        K_bar_current = local_smoothness_bound(K, alpha2, gap, eta0, lr, sigma2_max=s2)
        assert K_bar_current >= K_t * slack, (t, K_bar_current, K_t)
        if s2 <= alpha2 * math.exp(math.sqrt(eta0)):
            held += 1
            assert local_smoothness_bound(K, alpha2, gap, eta0, lr) >= K_t * slack, t
        if name == "adaptive":
            assert lr * local_smoothness_bound(K, sched.alpha2, gap, eta0, lr) <= 1.0 + 1e-12
    if name == "adaptive":
        assert held == T  # the paper's σ bound held along the whole adaptive run


@given(st.floats(0.1, 10.0), st.floats(0.01, 100.0), st.floats(0.0, 10.0), st.booleans())
def test_lr_for_smoothness_is_the_fixed_point(K, s2, g, second):
    lr = lr_for_smoothness(K, s2, g, second_order=second)
    assert lr > 0
    assert lr * local_smoothness(K, s2, g, lr, second_order=second) == pytest.approx(1.0, rel=1e-9)


def test_local_smoothness_bound_decreases_with_the_loss():
    ks = [local_smoothness_bound(1.0, 10.0, gap, 0.01, lr=0.05) for gap in (10.0, 1.0, 0.1, 0.0)]
    assert all(a > b for a, b in zip(ks, ks[1:]))
    assert ks[-1] == pytest.approx(10.0 * math.exp(0.1))  # → K α₂ e^{√η₀}


# ---------------------------------------------------------------------------
# Imbalance.
# ---------------------------------------------------------------------------


@given(problems(), st.floats(1e-3, 0.5))
def test_imbalance_one_step_change_is_exact_and_bounded(be, dev, cfg, lr):
    net = _make(cfg, dev, be)
    L = _S(net.backward())
    D0 = imbalance(net.W1, net.W2)
    s2max = sigma2_T(net.W1, net.W2)[1]
    dW1, dW2 = net.grads["W1"], net.grads["W2"]
    inc = imbalance_increment(dW1, dW2, lr)
    step_norm = imbalance_step_norm(dW1, dW2, lr)
    SGD(lr).step(net.params, net.grads)
    D1 = imbalance(net.W1, net.W2)
    scale = _S(be.xp.abs(D0).max()) + _S(be.xp.abs(inc).max()) + 1.0
    assert _S(be.xp.abs((D1 - D0) - inc).max()) <= 1e-11 * scale
    assert step_norm == pytest.approx(_S(be.xp.linalg.norm(inc)), rel=1e-7, abs=1e-12 * scale)
    grad_sq = sum(_S((g * g).sum()) for g in (dW1, dW2))
    assert step_norm <= lr * lr * grad_sq * (1 + 1e-9) + 1e-14
    bound = imbalance_step_bound(net.loss_fn.K, lr, s2max, L - net.loss_fn.min_value)
    assert step_norm <= bound * (1 + 1e-9) + 1e-14


@given(seeds, st.integers(1, 5), st.integers(1, 12))
def test_fro_UtV_matches_explicit(be, dev, seed, r, h):
    rng = np.random.default_rng(seed)
    U, V = dev(rng.standard_normal((r, h))), dev(rng.standard_normal((r, h)))
    assert fro_UtV(U, V) == pytest.approx(_S(be.xp.linalg.norm(U.T @ V)), rel=1e-9)


@settings(max_examples=8)
@given(problems(max_n=3, max_m=3, max_h=6))
def test_gradient_flow_conserves_the_imbalance(be, dev, cfg):
    """Tiny steps: D(t) − D(0) is O(η) at a fixed time t·η, so halving η halves the drift."""
    drifts = []
    for lr, steps in ((2e-4, 100), (1e-4, 200)):
        net = _make(cfg, dev, be)
        lr = lr / net.loss_fn.K / (sigma2_T(net.W1, net.W2)[1] + 1.0)
        W0 = net.copy_params()
        D0 = imbalance(net.W1, net.W2)
        opt = SGD(lr)
        for _ in range(steps):
            net.backward()
            opt.step(net.params, net.grads)
        explicit = _S(be.xp.linalg.norm(imbalance(net.W1, net.W2) - D0))
        moved = _S(be.xp.linalg.norm(net.W1 - W0["W1"])) + _S(be.xp.linalg.norm(net.W2 - W0["W2"]))
        assert imbalance_drift(net.W1, net.W2, W0["W1"], W0["W2"]) == pytest.approx(explicit, rel=1e-6, abs=1e-15)
        drifts.append((explicit, moved))
    (d1, m1), (d2, m2) = drifts
    if d1 > 1e-13:  # (otherwise the gradient vanished and there is nothing to compare)
        assert 0.4 <= d2 / d1 <= 0.6
        assert d1 <= 1e-3 * m1 * (1.0 + m1) + 1e-12  # the drift is tiny next to how far the weights moved


# ---------------------------------------------------------------------------
# Schedules.
# ---------------------------------------------------------------------------


@st.composite
def well_posed(draw):
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return dict(n=n, m=m, h=draw(st.integers(n + m, 40)), N=n + draw(st.integers(0, 3)), seed=draw(seeds),
                lam=None, p=draw(st.floats(0.26, 0.49)), scale=1.0)


def _schedule(name, net):
    if name == "constant":
        return Constant(initial_safe_lr(net.loss_fn, net.W1, net.W2))
    if name == "adaptive":
        return AdaptiveStep(net.loss_fn, eta0=0.01)
    if name == "adaptive_current":
        return AdaptiveStep(net.loss_fn, eta0=0.01, sigma_bound="current", grad_bound="exact")
    if name == "xu2023":
        return Xu2023Step(net.loss_fn)
    return Armijo(net.loss)


@settings(max_examples=10)
@pytest.mark.parametrize("name", ["constant", "adaptive", "adaptive_current", "xu2023", "armijo"])
@given(cfg=well_posed())
def test_each_schedule_keeps_the_loss_decreasing(name, cfg, be, dev):
    net = _make(cfg, dev, be, well_posed=True)
    res = run_gd(net, _schedule(name, net), 25, tol=1e-10, track_drift=False)
    loss = res["loss"]
    assert np.all(np.diff(loss) <= 1e-12 * (1.0 + loss[0])), (name, loss)
    assert res["stopped"] != "diverged"
    # the local PL inequality held at every iterate of the run (up to the rounding of L − L*, ~ε·L)
    slack = res["mu_t"] * 1e-13 * (1.0 + res["loss"])
    assert np.all(0.5 * res["grad_sq"] >= res["mu_t"] * res["gap"] * (1 - 1e-9) - slack)


@given(well_posed())
@settings(max_examples=10)
def test_adaptive_step_is_capped_and_certified(be, dev, cfg):
    net = _make(cfg, dev, be, well_posed=True)
    sched = AdaptiveStep(net.loss_fn, eta0=0.5, sigma_bound="current", grad_bound="exact")
    L = net.backward()
    for t in (0, 3, 50):
        lr = sched(t, params=net.params, loss=L)
        assert lr <= sched.cap(t) * (1 + 1e-12)
        assert sched.cap(t) == pytest.approx((1 + 0.25) ** t / 1.0)
        s2max = sigma2_T(net.W1, net.W2)[1]
        g = math.sqrt(_S((net.grad_ell * net.grad_ell).sum()))
        assert lr * local_smoothness(net.loss_fn.K, s2max, g, lr) <= 1.0 + 1e-9


@settings(max_examples=20)
@given(problems(max_n=4, max_m=4, max_h=1, ridge=False))
def test_xu2023_coefficients_match_the_2023_statement(be, dev, cfg):
    """``a₁ … a₄`` against THEORY.md's statement of the 2023 paper, written out here from ``X`` and the weights.

    ``s = σ_min(X)``, ``κ = (‖X‖/s)²``, ``α = σ_r(W₁)² + σ_m(W₂)²`` (``r = rank X = n``),
    ``β = ‖W₁‖² + ‖W₂‖²``, ``p₂ = ‖W₁W₂ᵀ‖``, ``L = ½‖Y − XW₁W₂ᵀ‖²`` (``Y = XΘ``, so ``L* = 0``):
    ``a₁ = 2αc₂s²``, ``a₂ = √8 p₂√L‖X‖s² + κβ²c₁²s⁴``, ``a₃ = √8 βp₂c₁√L‖X‖³s²``,
    ``a₄ = 2κ²p₂²Ls⁶``.  Checked twice: :func:`xu2023_coefficients` fed these
    inputs, and :class:`Xu2023Step`, which finds ``α, β, p₂, L`` itself.  Every
    input here comes from an SVD of a well-conditioned small matrix (``κ(X) ≤ 4``,
    ``h ≥ n + m``), ~1e-15 relative off the library's Gram-matrix eigenvalues;
    the coefficients are monomials of degree ≤ 8 in them, so 1e-10 relative is
    a generous bound that no wrong exponent or factor passes.
    """
    rng = np.random.default_rng(cfg["seed"])
    n, m = cfg["n"], cfg["m"]
    h = n + m + int(rng.integers(0, 4))
    N = n + int(rng.integers(0, 3))
    U, _ = np.linalg.qr(rng.standard_normal((N, n)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    X = U @ np.diag(rng.uniform(0.5, 2.0, size=n)) @ V.T
    Y = X @ rng.standard_normal((n, m))
    W1, W2 = rng.standard_normal((n, h)) * 0.5, rng.standard_normal((m, h)) * 0.5
    c1, c2 = 1.5, 0.5
    sx = np.linalg.svd(X, compute_uv=False)
    s, normX = sx[-1], sx[0]
    kappa = (normX / s) ** 2
    sw1, sw2 = np.linalg.svd(W1, compute_uv=False), np.linalg.svd(W2, compute_uv=False)
    alpha = sw1[n - 1] ** 2 + sw2[m - 1] ** 2
    beta = sw1[0] ** 2 + sw2[0] ** 2
    p2 = np.linalg.svd(W1 @ W2.T, compute_uv=False)[0]
    L = 0.5 * np.sum((Y - X @ W1 @ W2.T) ** 2)
    want = (2 * alpha * c2 * s ** 2,
            math.sqrt(8) * p2 * math.sqrt(L) * normX * s ** 2 + kappa * beta ** 2 * c1 ** 2 * s ** 4,
            math.sqrt(8) * beta * p2 * c1 * math.sqrt(L) * normX ** 3 * s ** 2,
            2 * kappa ** 2 * p2 ** 2 * L * s ** 6)
    net = TwoLayerLinear(LeastSquares(dev(X), dev(Y)), dev(W1), dev(W2))
    mu, K = net.loss_fn.mu, net.loss_fn.K  # s², ‖X‖² from the library
    got = xu2023_coefficients(mu, K, alpha, beta, p2, L, c1, c2)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    sched = Xu2023Step(net.loss_fn, c1=c1, c2=c2)
    sched(0, params=net.params, loss=net.loss())
    np.testing.assert_allclose(sched.last["coeffs"], want, rtol=1e-10)


@given(st.floats(0.01, 10.0), st.floats(0.5, 4.0), st.floats(0.1, 1.0), st.floats(1.0, 3.0),
       st.floats(0.0, 5.0), st.floats(0.0, 10.0))
def test_xu2023_step_minimises_the_rate_polynomial(mu, kfac, afrac, beta, p2, gap):
    K = mu * kfac
    coeffs = xu2023_coefficients(mu, K, afrac * beta, beta, p2, gap)
    lr = xu2023_step(coeffs)
    a1, a2, a3, a4 = coeffs
    assert lr > 0
    assert -a1 + 2 * a2 * lr + 3 * a3 * lr ** 2 + 4 * a4 * lr ** 3 == pytest.approx(0.0, abs=1e-9 * a1)
    f = xu2023_rate(lr, coeffs)
    assert f <= xu2023_rate(lr * 0.9, coeffs) + 1e-12 and f <= xu2023_rate(lr * 1.1, coeffs) + 1e-12
    assert f < 1.0


@given(well_posed())
@settings(max_examples=10)
def test_armijo_accepts_sufficient_decrease_and_counts(be, dev, cfg):
    net = _make(cfg, dev, be, well_posed=True)
    sched = Armijo(net.loss, lr_init=4.0, shrink=0.5, c=0.3)
    L = _S(net.backward())
    grad_sq = sum(_S((g * g).sum()) for g in net.grads.values())
    lr = sched(0, params=net.params, grads=net.grads, loss=L)
    trial = {k: p - lr * net.grads[k] for k, p in net.params.items()}
    assert _S(net.loss(trial)) <= L - 0.3 * lr * grad_sq + 1e-12
    assert sched.function_evals == sched.last["evals"] == round(math.log(4.0 / lr, 2)) + 1


def test_armijo_that_never_finds_a_decrease_returns_its_last_trial(be, dev):
    """All backtracks fail: the step returned is the last (smallest) one tried, and it counts as a failure.

    The closure answers the same loss at every trial point, so no ``η > 0`` passes
    ``L(θ − η∇L) ≤ L − cη‖∇L‖²`` (``‖∇L‖² > 0``).  The trials are ``η_init ρ^k``,
    ``k = 0 … max_backtracks − 1``; the returned step must be ``η_init ρ^{max_backtracks − 1}``.
    """
    params = {"W1": dev(np.ones((2, 3))), "W2": dev(np.ones((1, 3)))}
    grads = {k: dev(np.full(p.shape, 0.5)) for k, p in params.items()}
    tried = []

    def flat(trial):
        tried.append(_S(params["W1"][0, 0] - trial["W1"][0, 0]) / 0.5)  # the trial's η, read back
        return dev(np.array(1.0))

    sched = Armijo(flat, lr_init=2.0, shrink=0.5, max_backtracks=5)
    lr = sched(0, params=params, grads=grads, loss=1.0)
    assert tried == [2.0, 1.0, 0.5, 0.25, 0.125]  # powers of two: exact
    assert lr == tried[-1] == 2.0 * 0.5 ** 4
    assert (sched.failures, sched.steps, sched.function_evals, sched.prev_lr) == (1, 1, 5, lr)
    assert sched.last == {"evals": 5, "accepted": False}
    # and with grow, the next iteration starts from the step actually taken
    grower = Armijo(flat, lr_init=2.0, shrink=0.5, max_backtracks=3, grow=2.0)
    grower(0, params=params, grads=grads, loss=1.0)
    tried.clear()
    grower(1, params=params, grads=grads, loss=1.0)
    assert tried[0] == 2.0 * 0.5 ** 2 * 2.0 and grower.failures == 2


def test_run_gd_on_the_paper_data_converges_linearly(be):
    X, Y = synthetic_regression(12, 6, 5, np.random.default_rng(0))
    W1, W2 = gaussian_init(6, 5, 200, 0.375, np.random.default_rng(1))
    net = make_network(X, Y, W1, W2, backend=be)
    assert net.loss_fn.mu == pytest.approx(1.0) and net.loss_fn.K == pytest.approx(1.0)
    assert net.loss_fn.min_value < 1e-20  # Y = XΘ is fitted exactly
    res = run_gd(net, AdaptiveStep(net.loss_fn), 200)
    assert res["stopped"] == "tol"
    rho = observed_rate(res["gap"])
    assert 0 < rho < 1 - 0.5 * res["mu_t"].min() / np.nanmax(res["K_t"])  # faster than half the local rate
    assert np.all(np.nan_to_num(res["drift"]) <= res["drift_bound"] + 1e-12)


# ---------------------------------------------------------------------------
# Checkpoints: a killed run resumes bit for bit, under every schedule.
# ---------------------------------------------------------------------------


class Killed(Exception):
    """Stands in for the process dying at an iterate."""


_RESUME_DATA = {"N": 6, "n": 4, "m": 3, "seed": 0, "x_cond": 1.0}


def _resumable_run(be, name, *, steps=40, tol=0.0, data=_RESUME_DATA, init_seed=0, checkpoint=None,
                   kill_at=None, seen=None):
    """A fresh net and schedule (as a new process would build them), then :func:`run_gd` with a hook."""
    X, Y = data_from_config(data)
    W1, W2 = weights_from_config(4, 3, 20, {"kind": "gaussian", "p": 0.375}, init_seed)
    net = make_network(X, Y, W1, W2, backend=be)
    sched = schedule_from_config(name, net, {})

    def hook(t):
        if seen is not None:
            seen.append(t)
        if t == kill_at:
            raise Killed(t)

    res = run_gd(net, sched, steps, tol=tol, track_drift=True, checkpoint=checkpoint, checkpoint_every=5,
                 callback=hook)
    return net, sched, res


@pytest.mark.parametrize("name", list(SCHEDULE_LABELS))
def test_a_killed_linear_run_resumes_bit_identical_under_every_schedule(name, be, tmp_path):
    """Killed at iterate 23 (last checkpoint after step 20), resumed: W₁, W₂, every record, the schedule's state,
    ``steps`` and ``stopped`` equal the uninterrupted run's exactly.

    ``tol`` is set so that the reference stops by tolerance at iterate 31, after
    the resume: the stopping test reads the restored ``L(0) − L*``.
    """
    _, _, pilot = _resumable_run(be, name)
    tol = pilot["gap"][31] / pilot["gap"][0]
    assert np.all(np.diff(pilot["gap"][:32]) < 0)  # so iterate 31 is the first at or below tol
    net_ref, sched_ref, ref = _resumable_run(be, name, tol=tol)
    assert (ref["steps"], ref["stopped"]) == (31, "tol")
    ck = tmp_path / "ck"
    with pytest.raises(Killed):
        _resumable_run(be, name, tol=tol, checkpoint=ck, kill_at=23)
    assert (tmp_path / "ck.json").exists() and (tmp_path / "ck.npz").exists()
    seen = []
    net, sched, res = _resumable_run(be, name, tol=tol, checkpoint=ck, seen=seen)
    assert seen[0] == 20  # it did resume (a rerun from 0 would also be identical, and prove nothing)
    for k in ("W1", "W2"):
        assert np.array_equal(_host(net.params[k]), _host(net_ref.params[k])), k
    _same_result(ref, res)  # every record bit for bit (NaNs equal), steps, stopped
    assert sched.state_dict() == sched_ref.state_dict()
    if name == "armijo":  # the counters drive the ``evals`` record: they must have been restored, not restarted
        assert sched.function_evals > sched.steps == 31
    if name == "adaptive":
        assert sched.alpha2 == sigma2_T(*weights_from_config(4, 3, 20, {"kind": "gaussian", "p": 0.375}, 0))[1]


@pytest.mark.parametrize("change", ["data", "init", "schedule", "steps", "tol"])
def test_a_linear_checkpoint_refuses_another_run(change, be, tmp_path):
    ck = tmp_path / "ck"
    with pytest.raises(Killed):
        _resumable_run(be, "armijo", checkpoint=ck, kill_at=12)
    other = dict(name="adaptive" if change == "schedule" else "armijo", steps=50 if change == "steps" else 40,
                 tol=1e-9 if change == "tol" else 0.0, init_seed=1 if change == "init" else 0,
                 data={**_RESUME_DATA, "seed": 1} if change == "data" else _RESUME_DATA)
    with pytest.raises(CheckpointMismatch, match=rf"ck\.json belongs to another run \(.*{change}.*delete"):
        _resumable_run(be, other.pop("name"), checkpoint=ck, **other)
    assert (tmp_path / "ck.json").exists()  # refused, not deleted


# ---------------------------------------------------------------------------
# The run cache.
# ---------------------------------------------------------------------------


def _spec(schedule="armijo", steps=30):
    return {"data": _RESUME_DATA, "h": 20, "init": {"kind": "gaussian", "p": 0.375}, "init_seed": 0,
            "schedule": schedule, "schedule_opts": {}, "steps": steps, "tol": 0.0, "track_drift": True,
            "dtype": "float64"}


def _same_result(a, b):
    assert a.keys() == b.keys()
    for k, v in a.items():
        if isinstance(v, np.ndarray):
            assert np.array_equal(b[k], v, equal_nan=True), k
        else:
            assert b[k] == v, k


def test_cached_runs_are_named_by_the_config_hash():
    """Cached runs are named by :func:`minilplr.store.config_hash` of their spec, like every results folder.

    Pinned: a change of the hash would orphan every stored run (they would be
    recomputed, not misread).  The spec's key order does not matter.
    """
    assert config_hash(_spec()) == "eaecddbf8b"
    assert config_hash(json.loads(json.dumps(_spec()))) == config_hash(dict(reversed(list(_spec().items()))))


def test_a_damaged_cached_run_is_moved_aside_and_recomputed(be, tmp_path, capsys):
    first = cached_run(tmp_path, _spec(), backend=be)
    key = first["key"]
    assert capsys.readouterr().out == ""
    _same_result(first, cached_run(tmp_path, _spec(), backend=be))  # loaded as stored
    npz = tmp_path / f"{key}.npz"
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2:len(blob) // 2 + 64] = bytes(64)  # zeroed bytes inside the records
    npz.write_bytes(bytes(blob))
    again = cached_run(tmp_path, _spec(), backend=be)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"{key}.npz: damaged" in out and "moved aside" in out, out
    _same_result(first, again)
    assert any(p.name.startswith(f"{key}.npz.damaged-") for p in tmp_path.iterdir())
    _same_result(first, load_run(tmp_path, key))  # stored whole again


def test_a_killed_cached_run_resumes_from_its_checkpoint(be, tmp_path, monkeypatch):
    from minilplr.experiments import linear_runs

    ref = cached_run(tmp_path / "ref", _spec(steps=30), backend=be)
    seen = []

    def run_gd_killed_at(at):
        def wrapped(*args, **kw):
            def hook(t):
                seen.append(t)
                if t == at:
                    raise Killed(t)
            return run_gd(*args, **kw, callback=hook)
        return wrapped

    folder = tmp_path / "run"
    monkeypatch.setattr(linear_runs, "run_gd", run_gd_killed_at(17))
    with pytest.raises(Killed):
        cached_run(folder, _spec(steps=30), backend=be, checkpoint_every=5)
    key = ref["key"]
    assert (folder / f"{key}.checkpoint.json").exists() and not (folder / f"{key}.json").exists()
    seen.clear()
    monkeypatch.setattr(linear_runs, "run_gd", run_gd_killed_at(None))
    res = cached_run(folder, _spec(steps=30), backend=be, checkpoint_every=5)
    assert seen[0] == 15  # resumed from the step-15 checkpoint
    _same_result(ref, res)
    assert sorted(p.name for p in folder.iterdir()) == [f"{key}.json", f"{key}.npz"]  # checkpoint removed


def test_a_run_killed_between_its_result_and_its_checkpoint_removal_leaves_no_checkpoint(be, tmp_path,
                                                                                         monkeypatch):
    from minilplr.experiments import linear_runs

    def killed(path):
        raise Killed(path)

    monkeypatch.setattr(linear_runs, "remove_checkpoint", killed)
    with pytest.raises(Killed):
        cached_run(tmp_path, _spec(steps=12), backend=be, checkpoint_every=5)
    assert any(p.name.endswith(".checkpoint.json") for p in tmp_path.iterdir())
    monkeypatch.undo()
    res = cached_run(tmp_path, _spec(steps=12), backend=be)  # the stored result, and the leftover is removed
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{res['key']}.json", f"{res['key']}.npz"]


def test_concurrent_writers_of_one_cached_run_never_give_a_corrupt_read(tmp_path):
    """Two threads × 50 saves of one key, a third reading meanwhile: every read is the result or nothing.

    A read may come between a writer's two renames (the JSON of one save beside
    the arrays of another); the hash in the JSON detects it and the reader gets
    ``None`` (files moved aside, recomputed by a real run) — never other
    numbers, a half-written file, or an exception.
    """
    res = {"gap": np.linspace(1.0, 0.0, 200), "lr": np.full(200, 0.25), "steps": 199, "stopped": "tol",
           "kappa0": 1.25, "key": "k"}
    errors, reads = [], []
    done = threading.Event()

    def writer():
        try:
            for _ in range(50):
                save_run(tmp_path, "k", res)
        except Exception as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    def reader():
        try:
            while not done.is_set():
                got = load_run(tmp_path, "k", log=lambda line: None)
                if got is not None:
                    _same_result(res, got)
                reads.append(got is not None)
        except Exception as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    rd = threading.Thread(target=reader)
    rd.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    done.set()
    rd.join()
    assert not errors, errors
    assert sum(reads) > 0  # the reader did see whole units
    save_run(tmp_path, "k", res)  # (the last read may have moved a mixed pair aside) the folder still works
    _same_result(res, load_run(tmp_path, "k"))


# ---------------------------------------------------------------------------
# Initialisations.
# ---------------------------------------------------------------------------


def test_gaussian_init_variance():
    W1, W2 = gaussian_init(20, 10, 4000, 0.3, np.random.default_rng(0))
    assert W1.shape == (20, 4000) and W2.shape == (10, 4000)
    assert W1.std() == pytest.approx(4000 ** -0.3, rel=0.02)


@given(seeds, st.floats(0.0, 50.0), st.floats(0.0, 50.0))
@settings(max_examples=10)
def test_imbalance_init_changes_only_the_imbalance(seed, s1, s2):
    r = imbalance_ratio(s1)
    assert r * r - 1 / (r * r) == pytest.approx(s1, abs=1e-9 * (1 + s1))
    A1, A2 = imbalance_init(3, 2, 7, s1, np.random.default_rng(seed), scale=0.5)
    B1, B2 = imbalance_init(3, 2, 7, s2, np.random.default_rng(seed), scale=0.5)
    np.testing.assert_allclose(A1 @ A2.T, B1 @ B2.T, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors(be, dev):
    rng = np.random.default_rng(0)
    X, Y = dev(rng.standard_normal((5, 3))), dev(rng.standard_normal((5, 2)))
    with pytest.raises(ValueError, match="X: expected full column rank"):
        LeastSquares(dev(np.ones((5, 3))), Y)
    with pytest.raises(ValueError, match="Y: expected 5 rows"):
        LeastSquares(X, dev(rng.standard_normal((4, 2))))
    with pytest.raises(ValueError, match="X: expected a 2-D"):
        LeastSquares(dev(rng.standard_normal(5)), Y)
    with pytest.raises(ValueError, match="X: expected finite"):
        LeastSquares(dev(np.full((5, 3), np.nan)), Y)
    with pytest.raises(ValueError, match="lam"):
        RidgeLeastSquares(X, Y, -1.0)
    loss = LeastSquares(X, Y)
    with pytest.raises(ValueError, match="W1: expected 3 rows"):
        TwoLayerLinear(loss, dev(np.ones((2, 4))), dev(np.ones((2, 4))))
    with pytest.raises(ValueError, match="W2: expected the hidden width"):
        TwoLayerLinear(loss, dev(np.ones((3, 4))), dev(np.ones((2, 5))))
    with pytest.raises(TypeError, match="loss"):
        TwoLayerLinear("ls", dev(np.ones((3, 4))), dev(np.ones((2, 4))))
    if be.name != "numpy":
        with pytest.raises(TypeError, match="W1: expected an array on backend"):
            TwoLayerLinear(loss, np.ones((3, 4)), dev(np.ones((2, 4))))
        with pytest.raises(TypeError, match="Y: expected an array on the backend of X"):
            LeastSquares(X, np.ones((5, 2)))
    with pytest.raises(ValueError, match="p: expected 1/4 < p < 1/2"):
        gaussian_init(3, 2, 10, 0.6, rng)
    with pytest.raises(ValueError, match="h: expected a positive integer"):
        gaussian_init(3, 2, 0, 0.3, rng)
    with pytest.raises(ValueError, match="sigma"):
        imbalance_init(3, 2, 10, -1.0, rng)
    with pytest.raises(ValueError, match="N: expected at least"):
        synthetic_regression(2, 3, 1, rng)
    with pytest.raises(ValueError, match="sigma_bound"):
        AdaptiveStep(loss, sigma_bound="tight")
    with pytest.raises(ValueError, match="eta0"):
        AdaptiveStep(loss, eta0=0.0)
    with pytest.raises(TypeError, match="loss_fn"):
        Xu2023Step(object())
    with pytest.raises(ValueError, match="shrink"):
        Armijo(lambda p: 0.0, shrink=1.5)
    with pytest.raises(ValueError, match="closure"):
        Armijo()(0, params={"W1": X}, grads={"W1": X}, loss=1.0)
    with pytest.raises(ValueError, match="params"):
        AdaptiveStep(loss)(0)
    with pytest.raises(ValueError, match="coeffs"):
        xu2023_step((0.0, 1.0, 0.0, 0.0))
    net = TwoLayerLinear(loss, dev(np.ones((3, 4))), dev(np.ones((2, 4))))
    with pytest.raises(ValueError, match="steps"):
        run_gd(net, 0.1, -1)
    with pytest.raises(TypeError, match="net"):
        run_gd("net", 0.1, 1)
    with pytest.raises(ValueError, match="checkpoint_every"):
        run_gd(net, 0.1, 1, checkpoint_every=0)
    with pytest.raises(TypeError, match="callback: expected a callable"):
        run_gd(net, 0.1, 1, callback=3)


# ---------------------------------------------------------------------------
# The experiments: tiny end-to-end runs (run -> plot -> report) on the backend under test.
# ---------------------------------------------------------------------------

_TINY_DATA = {"N": 6, "n": 4, "m": 3, "seed": 0, "x_cond": 1.0}


def _tiny(module):
    cfg = dict(module.PRESETS["quick"])
    cfg["data"] = _TINY_DATA
    cfg["steps"] = 60
    cfg["init_seeds"] = [0, 1]
    if "widths" in cfg:
        cfg["widths"], cfg["kappa_widths"] = [20, 40], [10, 20, 40]
    else:
        cfg["h"] = 20
    return cfg


_NUM = r"(nan|inf|[-+]?\d+(?:\.\d*)?(?:e[-+]?\d+)?)"


def _png_pixels(path) -> tuple[int, int]:
    """``(width, height)`` from a PNG's IHDR chunk; fails if the file is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path.name}: not a PNG"
    return struct.unpack(">II", head[16:24])


def _start(cfg, h, init, seed, be):
    """The network a run of the experiment starts from, rebuilt from its config alone."""
    X, Y = data_from_config(cfg["data"])
    W1, W2 = weights_from_config(X.shape[1], Y.shape[1], int(h), init, int(seed))
    return make_network(X, Y, W1, W2, backend=be, dtype=cfg["dtype"])


def _check_eq19(r, opts, net):
    """The adaptive schedule's recorded steps are eq. 19: ``η_t = min((1 + η₀²)^t / (2η₀), 1/K̄_t)``.

    Recomputed from the record (``L(t) − L*``) and the start ``net`` (``α₂ = σ²_max(T₀)``) alone:
    below the cap, ``η_t K̄_t(η_t) = 1`` with :func:`local_smoothness_bound`
    (a fixed point found by Newton to ~1e-15: 1e-12); and always ``η_t`` at most the cap.
    """
    eta0 = float(opts["eta0"])
    assert opts.get("sigma_bound", "paper") == "paper" and opts.get("grad_bound", "loss") == "loss"
    K, alpha2 = net.loss_fn.K, sigma2_T(net.W1, net.W2)[1]
    T = r["steps"]
    lr = r["lr"][:T]
    assert np.all(np.isfinite(lr) & (lr > 0)) and np.isnan(r["lr"][T])
    cap = (1 + eta0 ** 2) ** np.arange(T) / (2 * eta0)
    assert np.all(lr <= cap * (1 + 1e-12))  # (the schedule computes the cap through exp/log1p)
    for t in np.nonzero(lr < cap * (1 - 1e-12))[0]:
        lrK = lr[t] * local_smoothness_bound(K, alpha2, r["gap"][t], eta0, lr[t],
                                             second_order=opts.get("second_order", True))
        assert lrK == pytest.approx(1.0, rel=1e-12), (t, lrK)


def _fmt_means(rows, key, by, fmt):
    """``{group: format(mean of row[key])}`` over rows grouped by ``row[by]``."""
    groups = {}
    for r in rows:
        groups.setdefault(r[by], []).append(r[key])
    return {g: format(float(np.mean(v)), fmt) for g, v in groups.items()}


def _check_linear_width(res, rep, be):
    cfg = res["config"]
    init = {"kind": "gaussian", "p": float(cfg["p"])}
    for g in res["kappa_grid"]:  # κ(T₀) without training, against the weights rebuilt from the config
        assert g["kappa"] == [kappa_T(_start(cfg, g["h"], init, s, be).W1, _start(cfg, g["h"], init, s, be).W2)
                              for s in cfg["init_seeds"]]
    for r in res["runs"]:
        net = _start(cfg, r["h"], init, r["seed"], be)
        assert r["kappa0"] == kappa_T(net.W1, net.W2)  # the same computation on the same backend: exact
        assert np.array_equal([r["rate"]], [observed_rate(r["gap"], *cfg["rate_window"])], equal_nan=True)
        if r["schedule"] == "adaptive":
            _check_eq19(r, cfg["schedule_opts"]["adaptive"], net)
    first = res["runs"][0]["schedule"]
    kap = _fmt_means([r for r in res["runs"] if r["schedule"] == first], "kappa0", "h", ".3f")
    rate = _fmt_means([r for r in res["runs"] if r["schedule"] == "adaptive"], "rate", "h", ".3g")
    for claim, want, floor in zip(rep["claims"], (kap, rate), (1.0, -math.inf)):  # κ ≥ 1; a rate has no floor
        got = {int(h): v for v, h in re.findall(_NUM + r" \(h=(\d+)\)", claim["measured"])}
        assert got == want, claim
        vals = [float(want[h]) for h in sorted(want)]
        assert claim["holds"] == (all(a > b for a, b in zip(vals, vals[1:])) and vals[-1] >= floor), claim


def _check_linear_schedules(res, rep, be):
    cfg = res["config"]
    tol = float(cfg["report_tol"])
    for r in res["runs"]:
        T = r["steps"]
        if r["schedule"] == "adaptive":
            _check_eq19(r, cfg["schedule_opts"]["adaptive"], _start(cfg, cfg["h"], cfg["init"], r["seed"], be))
        if r["schedule"] == "armijo":  # every step is η_init·ρ^k, and each trial loss was counted
            o = cfg["schedule_opts"]["armijo"]
            k = np.log(r["lr"][:T] / o["lr_init"]) / np.log(o["shrink"])
            assert np.allclose(k, np.round(k), atol=1e-9) and np.all(np.round(k) >= 0)
            assert r["function_evals"] >= T
        else:
            assert r["function_evals"] == 0
        assert r["evals"][-1] == T + 1 + r["function_evals"]  # gradients + trial losses
        assert np.all(np.diff(r["evals"]) >= 1)
        assert np.array_equal([r["iters_to_tol"]], [steps_to_tolerance(r["gap"], tol)], equal_nan=True)
    for claim, key in zip(rep["claims"], ("iters_to_tol", "evals_to_tol")):
        want = _fmt_means(res["runs"], key, "schedule", ".1f")
        got = dict(re.findall(r"(\w+): " + _NUM, claim["measured"].split(";  Armijo")[0]))
        assert {k: got[k] for k in want} == want, claim
        ad = float(want["adaptive"])
        others = [float(v) for k, v in want.items() if k != "adaptive"]
        assert claim["holds"] == (math.isfinite(ad) and all(ad < x or not math.isfinite(x) for x in others)), claim


def _check_linear_init(res, rep, be):
    cfg = res["config"]
    for r in res["runs"]:
        net = _start(cfg, cfg["h"], {"kind": "gaussian", "p": r["p"]}, r["seed"], be)
        s2min, s2max = sigma2_T(net.W1, net.W2)
        assert (r["kappa0"], r["sigma2_max0"], r["sigma2_min"][0]) == (kappa_T(net.W1, net.W2), s2max, s2min)
        assert np.array_equal([r["iters_to_tol"]], [steps_to_tolerance(r["gap"], cfg["report_tol"])],
                              equal_nan=True)
        if r["schedule"] == "adaptive":
            _check_eq19(r, cfg["schedule_opts"]["adaptive"], net)
    for claim, sched in zip(rep["claims"], cfg["schedules"]):
        want = _fmt_means([r for r in res["runs"] if r["schedule"] == sched], "iters_to_tol", "p", ".1f")
        got = {float(p): v for v, p in re.findall(_NUM + r" \(p=([\d.]+)\)", claim["measured"])}
        assert got == want, claim
        its = [float(want[p]) for p in sorted(want)]
        assert claim["holds"] == all(a < b for a, b in zip(its, its[1:])), claim


def _check_linear_imbalance(res, rep, be):
    cfg = res["config"]
    within = 0
    for r in res["runs"]:
        net = _start(cfg, cfg["h"], r["init"], r["seed"], be)
        explicit = _S(be.xp.linalg.norm(imbalance(net.W1, net.W2)))  # the h×h matrix, summed directly
        # both sides sum O(h) products of size ‖W‖²: ~1e-15 relative to ‖D(0)‖ (not small at these starts)
        assert r["imbalance0"] == pytest.approx(explicit, rel=1e-10)
        T = r["steps"]
        ok = bool(np.all(r["drift_step"][:T] <= r["drift_step_bound"][:T] * (1 + 1e-9) + 1e-15)
                  and np.all(r["drift"] <= r["drift_bound"] * (1 + 1e-9) + 1e-12 * r["imbalance0"]))
        assert ok == (r["step_within_bound"] and r["drift_within_bound"])
        within += ok
        assert r["max_rel_drift"] == float(np.nanmax(r["drift"]) / r["imbalance0"])
        assert r["min_pl_margin"] == float(np.nanmin(r["pl_ratio"] / r["mu_t"]))
        if r["schedule"] == "adaptive":
            _check_eq19(r, cfg["schedule_opts"]["adaptive"], net)
    claims = rep["claims"]
    worst = {}
    for r in res["runs"]:
        worst[r["label"]] = max(worst.get(r["label"], 0.0), r["max_rel_drift"])
    assert claims[0]["measured"] == "max relative drift " + "; ".join(f"{k}: {v:.3g}" for k, v in worst.items())
    assert claims[1]["measured"].startswith(f"{within}/{len(res['runs'])} runs")
    assert claims[1]["holds"] == (within == len(res["runs"]))
    assert claims[3]["holds"] == all(r["min_pl_margin"] >= 1.0 - 1e-9 for r in res["runs"])


_CHECKS = {"linear_width": _check_linear_width, "linear_schedules": _check_linear_schedules,
           "linear_init": _check_linear_init, "linear_imbalance": _check_linear_imbalance}


@pytest.mark.parametrize("name", ["linear_width", "linear_schedules", "linear_init", "linear_imbalance"])
def test_experiment_runs_plots_and_reports(name, tmp_path, be):
    """A tiny run of each experiment: its numbers are what the formulas give, its claims report them,
    its figures are PNGs of a readable size, and a second run resumes from the stored runs."""
    import importlib

    mod = importlib.import_module(f"minilplr.experiments.{name}")
    assert mod.NAME == name and set(mod.PRESETS) == {"quick", "paper"}
    cfg = _tiny(mod)
    res = mod.run(cfg, tmp_path, backend=be, progress=False)
    # one stored unit per run (JSON + arrays), no checkpoint left behind
    runs = tmp_path / "runs"
    units = sorted(p.stem for p in runs.glob("*.json"))
    assert len(units) == len(res["runs"]) and all((runs / f"{u}.npz").exists() for u in units)
    assert not list(runs.glob("*.checkpoint*"))
    again = mod.run(cfg, tmp_path, backend=be, progress=False)  # every run loaded from the cache
    assert len(again["runs"]) == len(res["runs"])
    for r1, r2 in zip(res["runs"], again["runs"]):
        assert r1.keys() == r2.keys()
        for k, v in r1.items():
            assert np.array_equal(np.asarray(v), np.asarray(r2[k]), equal_nan=np.asarray(v).dtype.kind == "f"), k
    rep = mod.report(res)
    _CHECKS[name](res, rep, be)
    assert rep["claims"] and all(isinstance(c["holds"], bool) for c in rep["claims"])
    assert all(re.search(_NUM, c["measured"]) for c in rep["claims"])  # every claim carries measured values
    paths = mod.plot(res, tmp_path)
    assert sorted(p.name for p in paths) == sorted(f for f, _ in rep["figures"])
    for p in paths:
        w, h = _png_pixels(p)
        assert 600 <= w <= 4000 and 300 <= h <= 3000, (p.name, w, h)  # figures of 6–20 inches at 130 dpi


# --------------------------------------------------------------------------- issue 16: small matrices, per-step work


def _blas_threads():
    from threadpoolctl import threadpool_info

    return {i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"}


def test_the_linear_runs_use_one_blas_thread_and_give_it_back(be, tmp_path, monkeypatch):
    """Every product of a linear-network run is (20, h) or smaller: one BLAS thread inside, the caller's after.

    The caller asks for two threads, so the test fails if the limit is missing even where the
    environment already sets one (``OPENBLAS_NUM_THREADS=1``).
    """
    from threadpoolctl import threadpool_limits

    from minilplr.experiments import linear_runs

    if not _blas_threads():
        pytest.skip("no BLAS library loaded that threadpoolctl can see")
    seen = []
    X, Y = data_from_config({"N": 8, "n": 4, "m": 3, "seed": 0, "x_cond": 1.0})
    W1, W2 = weights_from_config(4, 3, 20, {"kind": "gaussian", "p": 0.375}, 0)
    net = make_network(X, Y, W1, W2, backend=be)
    with threadpool_limits(limits=2, user_api="blas"):
        run_gd(net, schedule_from_config("constant", net), 5, callback=lambda t: seen.append(_blas_threads()))
        assert _blas_threads() == {2}  # given back
        real = linear_runs.schedule_from_config  # called in cached_run before the loop, with W(0)
        monkeypatch.setattr(linear_runs, "schedule_from_config",
                            lambda *a, **k: (seen.append(_blas_threads()), real(*a, **k))[1])
        spec = {"data": {"N": 8, "n": 4, "m": 3, "seed": 0, "x_cond": 1.0}, "h": 20,
                "init": {"kind": "gaussian", "p": 0.375}, "init_seed": 0, "schedule": "constant",
                "schedule_opts": {}, "steps": 5, "tol": 1e-12, "track_drift": False, "dtype": "float64"}
        cached_run(tmp_path, spec, backend=be)
        assert _blas_threads() == {2}
    assert len(seen) == 7 and all(s == {1} for s in seen), seen


def test_the_imbalance_step_is_computed_only_when_drift_is_tracked(be):
    """``‖D(t+1) − D(t)‖_F`` costs a QR of (h, 2(n+m)) per step: only linear_imbalance (track_drift) reads it."""
    X, Y = data_from_config({"N": 8, "n": 4, "m": 3, "seed": 1, "x_cond": 1.0})
    runs = {}
    for track in (False, True):
        W1, W2 = weights_from_config(4, 3, 20, {"kind": "gaussian", "p": 0.375}, 1)
        net = make_network(X, Y, W1, W2, backend=be)
        runs[track] = run_gd(net, schedule_from_config("constant", net), 6, tol=0.0, track_drift=track)
    off, on = runs[False], runs[True]
    assert np.all(np.isnan(off["drift_step"])) and np.all(np.isnan(off["drift"]))
    assert np.all(np.isfinite(on["drift_step"][:-1])) and np.all(on["drift_step"][:-1] > 0)
    for k in off:  # nothing else changes: the same run, bit for bit
        if k not in ("drift", "drift_step"):
            assert np.array_equal(off[k], on[k], equal_nan=True) if isinstance(off[k], np.ndarray) else off[k] == on[k], k
