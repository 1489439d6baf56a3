"""Step-size schedules (:mod:`minilplr.theory.linear.schedules`): constant, adaptive (eq. 19),
the 2023 schedule, Armijo.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minilplr import backend as B
from minilplr.theory.linear import (
    AdaptiveStep,
    Armijo,
    LeastSquares,
    local_smoothness,
    run_gd,
    sigma2_T,
    TwoLayerLinear,
    xu2023_coefficients,
    xu2023_rate,
    xu2023_step,
    Xu2023Step,
)

from ...helpers import linear_net, linear_schedule, two_layer_linear
from ...strategies import linear_problems, well_posed_linear


def _S(x):
    return B.to_scalar(x)


def _schedule(name, net):
    if name == "adaptive_current":
        return AdaptiveStep(net.loss_fn, eta0=0.01, sigma_bound="current", grad_bound="exact")
    if name == "armijo_grow":  # the first trial of each step is 2η_{t−1}: the last step is state
        return Armijo(net.loss, grow=2.0)
    return linear_schedule(name, net)


@settings(max_examples=10)
@pytest.mark.parametrize("name", ["constant", "adaptive", "adaptive_current", "xu2023", "armijo"])
@given(cfg=well_posed_linear())
def test_each_schedule_keeps_the_loss_decreasing(name, cfg, be, dev):
    net = two_layer_linear(cfg, dev, be, well_posed=True)
    res = run_gd(net, _schedule(name, net), 25, tol=1e-10, track_drift=False)
    loss = res["loss"]
    covered = len(loss)
    if name == "adaptive":
        # eq. 19 with the paper's σ²_max(𝒯_t) ≤ α₂ e^{√η₀} (Lemma 3.1, proved in the paper's overparametrised
        # setting): once a drawn case breaks that bound (h = 2, N = 1, seed 8469 does at t = 1: σ²_max 1.42
        # against 0.82, and the loss then rises at t = 3), 1/β̄_t no longer covers the step and descent is not
        # promised. Descent is checked on every step whose two ends keep the bound.
        broke = np.asarray(res["sigma2_max"]) > np.asarray(res["sigma_bound"]) * (1 + 1e-12)
        covered = int(np.argmax(broke)) if broke.any() else len(loss)
    assert np.all(np.diff(loss[:covered]) <= 1e-12 * (1.0 + loss[0])), (name, loss)
    assert res["stopped"] != "diverged"
    # the local PL inequality held at every iterate of the run (up to the rounding of L − L*, ~ε·L)
    slack = res["mu_t"] * 1e-13 * (1.0 + res["loss"])
    assert np.all(0.5 * res["grad_sq"] >= res["mu_t"] * res["gap"] * (1 - 1e-9) - slack)


@given(well_posed_linear())
@settings(max_examples=10)
def test_adaptive_step_is_capped_and_certified(be, dev, cfg):
    net = two_layer_linear(cfg, dev, be, well_posed=True)
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
@given(linear_problems(max_n=4, max_m=4, max_h=1, ridge=False))
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


@given(well_posed_linear())
@settings(max_examples=10)
def test_armijo_accepts_sufficient_decrease_and_counts(be, dev, cfg):
    net = two_layer_linear(cfg, dev, be, well_posed=True)
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


@pytest.mark.parametrize("name", ["constant", "adaptive", "adaptive_current", "xu2023", "armijo", "armijo_grow"])
def test_each_schedule_state_dict_round_trip_continues_bit_for_bit(name, be, tmp_path):
    """Five GD steps, then the optimiser's ``state_dict`` (the schedule's inside) through the store into a
    fresh network and schedule built as a new process builds them (from ``W(0)``); five more steps each:
    every step size, ``W₁``, ``W₂`` and the final state equal bit for bit.

    Dropping ``α₂`` (the adaptive step would take ``σ²_max(T_5)`` for ``σ²_max(T₀)``), Armijo's counters or
    its last step (``grow``), or the step counter (the adaptive cap ``(1 + η₀²)^t`` reads it) changes the
    steps or the state.
    """
    from minilplr.store import load_unit, save_unit
    from minilplr.train.optim import SGD

    def step(net, opt):
        L = net.backward()
        return opt.step(net.params, net.grads, loss=L)

    net, fresh_net = linear_net(be), linear_net(be)
    opt, fresh = SGD(_schedule(name, net)), SGD(_schedule(name, fresh_net))
    for _ in range(5):
        step(net, opt)
    save_unit(tmp_path, "opt", opt.state_dict())
    for k, p in net.params.items():  # the weights come back through the run's own part (train.resumable.Arrays)
        fresh_net.params[k][...] = p
    fresh.load_state_dict(load_unit(tmp_path, "opt"))
    for t in range(5):
        assert step(fresh_net, fresh) == step(net, opt), t
    for k in net.params:
        assert np.array_equal(B.to_host(fresh_net.params[k]), B.to_host(net.params[k])), k
    assert fresh.state_dict() == opt.state_dict()  # t, the schedule's state; no momentum here
    if name.startswith("armijo"):
        assert opt.schedule.steps == 10 and opt.schedule.function_evals > 10
