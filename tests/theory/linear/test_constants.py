"""Local PL and smoothness constants and the imbalance (:mod:`minilplr.theory.linear.constants`)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minilplr import backend as B
from minilplr.theory.linear import (
    descent_bound,
    fro_UtV,
    gradient_norm_bound,
    imbalance,
    imbalance_drift,
    imbalance_increment,
    imbalance_step_bound,
    imbalance_step_norm,
    local_pl_constant,
    local_smoothness,
    local_smoothness_bound,
    lr_for_smoothness,
    pl_contraction_bound,
    run_gd,
    sigma2_T,
)
from minilplr.train.optim import SGD

from ...helpers import linear_net, linear_schedule, two_layer_linear
from ...strategies import linear_problems, seeds


def _S(x):
    return B.to_scalar(x)


@given(linear_problems())
def test_local_pl_inequality_with_mu_t(be, dev, cfg):
    """½‖∇L‖² ≥ μ_t (L − L*) with μ_t = μ σ²_min(T_t) (THEORY.md §2)."""
    net = two_layer_linear(cfg, dev, be)
    L = _S(net.backward())
    gap = L - net.loss_fn.min_value
    grad_sq = sum(_S((g * g).sum()) for g in net.grads.values())
    mu_t = local_pl_constant(net.loss_fn.mu, net.W1, net.W2)
    assert 0.5 * grad_sq >= mu_t * gap - 1e-10 * (1.0 + L)


@given(linear_problems(), st.floats(-3.0, 1.0))
def test_descent_lemma_with_local_smoothness(be, dev, cfg, log_frac):
    """L(θ − η∇L) ≤ L − η(1 − ηK_t(η)/2)‖∇L‖² for any η (K_t our reconstruction), and the contraction bound."""
    net = two_layer_linear(cfg, dev, be)
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
    net = linear_net(be, {"N": 8, "n": 4, "m": 3, "seed": seed % 1000, "x_cond": 1.0}, h=24, init_seed=seed)
    K, eta0 = net.loss_fn.K, 0.01
    sched = linear_schedule(name, net, eta0=eta0)
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


@given(linear_problems(), st.floats(1e-3, 0.5))
def test_imbalance_one_step_change_is_exact_and_bounded(be, dev, cfg, lr):
    net = two_layer_linear(cfg, dev, be)
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
@given(linear_problems(max_n=3, max_m=3, max_h=6))
def test_gradient_flow_conserves_the_imbalance(be, dev, cfg):
    """Tiny steps: D(t) − D(0) is O(η) at a fixed time t·η, so halving η halves the drift."""
    drifts = []
    for lr, steps in ((2e-4, 100), (1e-4, 200)):
        net = two_layer_linear(cfg, dev, be)
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
