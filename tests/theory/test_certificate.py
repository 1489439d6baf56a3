"""The v3 PL certificate and the a-priori radius (minilplr.theory.certificate), checked numerically.

* a linear model: the NTK does not move, ``L̂_Θ = 0`` exactly and ``μ_cert = λ₀/n``;
* a small ReLU MLP trained by GD (float64): every drift is within the path
  length; ``L̂_Θ`` from the checkpoints is at most the estimate from a finer
  sampling of the same segment (it is a lower estimate); Weyl: ``n·μ_cert ≤
  λ_min(Θ_t)`` at every checkpoint;
* a quadratic, where every step of the radius argument is closed form;
* small values and bad input;
* one run's record (:func:`run_certificate`): each checkpoint's drift, ``L̂_Θ``, ``μ_cert``, ``R``, by hand.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minilplr.backend import to_device, to_host
from minilplr.nn import models
from minilplr.nn.params import flatten, load_flat, param_drift
from minilplr.theory import certificate as C
from minilplr.theory import ntk, pl, spectrum
from minilplr.train import optim
from minilplr.train.loops import train_gd

from ..strategies import linear_problem, seeds


# --------------------------------------------------------------------------- values


def test_pl_certificate_values_and_verdicts():
    c = C.pl_certificate(9.0, 100.0, 0.05, 200)  # (9 − 5)/200
    assert c.mu_cert == pytest.approx(0.02, rel=1e-15) and c.certified and "not a proof" in c.rests_on
    c = C.pl_certificate(9.0, 100.0, 0.1, 200)  # (9 − 10)/200 < 0
    assert c.mu_cert == pytest.approx(-0.005, rel=1e-14) and not c.certified and "refuted" in c.rests_on
    assert not C.pl_certificate(4.0, 2.0, 2.0, 3).certified  # μ_cert = 0 exactly: no PL constant > 0
    for lam0 in (None, float("nan")):
        c = C.pl_certificate(lam0, 1.0, 1.0, 5)
        assert math.isnan(c.mu_cert) and not c.certified and "unresolved" in c.rests_on
    c = C.pl_certificate(3.0, float("nan"), 1.0, 5)
    assert math.isnan(c.mu_cert) and not c.certified and "not measured" in c.rests_on
    assert C.pl_certificate(3.0, 7.0, 0.0, 5).mu_cert == pytest.approx(0.6, rel=1e-15)  # radius 0: λ₀/n
    # ρ* = λ₀/L_Θ: μ_cert(ρ*) = 0, positive below it
    c = C.pl_certificate(9.0, 100.0, 0.05, 200)
    assert c.radius_max == pytest.approx(0.09, rel=1e-15)
    assert C.pl_certificate(9.0, 100.0, c.radius_max, 200).mu_cert == pytest.approx(0.0, abs=1e-16)
    assert C.pl_certificate(9.0, 0.0, 1.0, 2).radius_max == math.inf
    assert math.isnan(C.pl_certificate(None, 1.0, 1.0, 2).radius_max)


def test_ntk_lipschitz_estimate_values():
    # ratios 2/1, 3/0.5 = 6, 1/4: the largest; a checkpoint at θ_0 (0/0) is skipped
    assert C.ntk_lipschitz_estimate([0.0, 2.0, 3.0, 1.0], [0.0, 1.0, 0.5, 4.0]) == 6.0
    assert math.isnan(C.ntk_lipschitz_estimate([0.0, 0.0], [0.0, 0.0]))  # nothing moved: nothing measured
    assert math.isnan(C.ntk_lipschitz_estimate([], []))
    with pytest.raises(ValueError, match="ntk_diff_spec: checkpoint 1 has ‖θ_t − θ_0‖ = 0"):
        C.ntk_lipschitz_estimate([0.0, 1.0], [0.0, 0.0])


def test_path_length_values():
    g2 = np.array([4.0, 1.0, 0.25])
    assert C.path_length(0.1, g2) == pytest.approx(0.1 * (2 + 1 + 0.5), rel=1e-15)
    assert C.path_length([0.1, 0.2, 0.4], g2) == pytest.approx(0.2 + 0.2 + 0.2, rel=1e-15)
    assert C.path_length(0.1, []) == 0.0


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="param_drift: expected one value per checkpoint"):
        C.ntk_lipschitz_estimate([0.0, 1.0], [0.0])
    with pytest.raises(ValueError, match="ntk_diff_spec: expected finite non-negative"):
        C.ntk_lipschitz_estimate([0.0, -1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="param_drift: expected a 1-D array"):
        C.ntk_lipschitz_estimate([0.0, 1.0], [[0.0, 1.0]])
    with pytest.raises(ValueError, match="r: expected a non-negative"):
        C.pl_certificate(1.0, 1.0, -1.0, 3)
    with pytest.raises(ValueError, match="n: expected a positive integer"):
        C.pl_certificate(1.0, 1.0, 1.0, 0)
    with pytest.raises(ValueError, match="L_theta: expected a non-negative"):
        C.pl_certificate(1.0, -1.0, 1.0, 3)
    with pytest.raises(ValueError, match="lam0: expected a finite real"):
        C.pl_certificate("big", 1.0, 1.0, 3)
    with pytest.raises(ValueError, match="mu: expected a positive"):
        C.a_priori_radius(1.0, 1.0, -0.1)
    with pytest.raises(ValueError, match="beta: expected a positive"):
        C.a_priori_radius(0.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="loss_gap0: expected a non-negative"):
        C.a_priori_radius(1.0, -1.0, 0.1)
    with pytest.raises(ValueError, match="eta: expected a positive"):
        C.path_length(0.0, [1.0])
    with pytest.raises(ValueError, match="eta: expected one step size per step"):
        C.path_length([0.1, 0.1], [1.0])
    with pytest.raises(ValueError, match="grad_norm_sq: expected finite non-negative"):
        C.path_length(0.1, [1.0, float("nan")])


# --------------------------------------------------------------------------- a linear model: Θ does not move


@given(seed=seeds, d=st.integers(2, 5), data=st.data())
@settings(max_examples=20)
def test_linear_model_has_a_constant_ntk_and_the_full_certificate(seed, d, data, be, dev):
    n = data.draw(st.integers(1, d + 1))
    m, X, y = linear_problem(seed, n, d, 1, be, dev)
    theta0 = ntk.empirical_ntk(m, X, dtype="float64")
    spec = spectrum.ntk_spectrum(theta0)
    p0 = flatten(m.params)
    diffs, drifts = [0.0], [0.0]
    eta = 0.5 * n / spec.lam_max
    for _ in range(5):
        load_flat(m, flatten(m.params) - eta * pl.loss_and_gradient(m, X, y).grad)
        diffs.append(spectrum.symmetric_norm(ntk.empirical_ntk(m, X, dtype="float64") - theta0))
        drifts.append(param_drift(m, p0))
    assert max(drifts) > 0
    L = C.ntk_lipschitz_estimate(diffs, drifts)
    assert L == 0.0  # J = [X 1] does not depend on θ: Θ is the same array, bit for bit
    c = C.pl_certificate(spec.lam_min, L, max(drifts), n)
    assert c.mu_cert == (spec.lam_min / n if spec.resolved else c.mu_cert)
    assert c.certified == bool(spec.resolved)  # nothing is lost to drift; only an unresolved λ₀ refuses


# --------------------------------------------------------------------------- a ReLU MLP trained by GD


def _mlp_run(seed, be, steps=12, n=6, d=4, width=8, diag_every=3):
    """A float64 ReLU MLP ``4 -> 8 -> 8 -> 1`` on 6 Gaussian samples, GD with Θ_t and ‖θ_t − θ_0‖ at checkpoints."""
    rng = np.random.default_rng(seed)
    m = models.mlp(d, width, 3, 1, seed=seed, dtype="float64", backend=be)
    X = to_device(rng.standard_normal((n, d)), be)
    y = to_device(rng.standard_normal((n, 1)), be)
    p0 = flatten(m.params)
    theta0 = ntk.empirical_ntk(m, X, dtype="float64")
    eta = 0.5 * n / spectrum.ntk_spectrum(theta0).lam_max  # a stable step, large enough to move the kernel

    def diagnostics(model, t):
        K = ntk.empirical_ntk(model, X, dtype="float64")
        return dict(K=K, theta=flatten(model.params), drift=param_drift(model, p0),
                    diff=spectrum.symmetric_norm(K - theta0), spec=spectrum.ntk_spectrum(K))

    h = train_gd(m, X, y, optim.GD(eta), steps=steps, diagnostics=diagnostics, diag_every=diag_every)
    return m, X, h, theta0, p0, n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_drift_stays_within_the_path_length_on_a_real_run(seed, be):
    """``‖θ_t − θ_0‖ ≤ Σ_{s<t} η_s‖∇L_s‖`` at every step, and at the end (triangle inequality)."""
    _, _, h, _, _, _ = _mlp_run(seed, be)
    lr, g2, drift = np.asarray(h["lr"]), np.asarray(h["grad_norm_sq"]), np.asarray(h["param_drift"])
    assert drift[-1] > 0
    for t in range(1, drift.size):
        assert drift[t] <= C.path_length(lr[:t], g2[:t]) * (1 + 1e-12)  # float64 rounding
    total = C.path_length(lr, g2)
    assert h["final_param_drift"] <= total * (1 + 1e-12)
    assert total < 1.5 * h["final_param_drift"]  # a nearly straight path: the bound is not vacuous here


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lipschitz_estimate_is_a_lower_estimate_and_the_certificate_obeys_weyl(seed, be):
    m, X, h, theta0, p0, n = _mlp_run(seed, be)
    diag = h["diag"]
    diffs = np.array([d["diff"] for d in diag])
    drifts = np.array([d["drift"] for d in diag])
    L = C.ntk_lipschitz_estimate(diffs, drifts)
    assert L > 0
    # more pairs can only raise the estimate: the chord θ_0 → θ_t cut into 8 pieces has total length ‖θ_t − θ_0‖,
    # so ‖Θ_t − Θ_0‖₂ ≤ Σ_k ‖ΔΘ_k‖₂ ≤ max_k(‖ΔΘ_k‖₂/‖Δθ_k‖)·‖θ_t − θ_0‖
    t = int(np.nanargmax(np.where(drifts > 0, diffs / np.where(drifts > 0, drifts, 1), np.nan)))
    end = diag[t]["theta"]
    kernels = []
    for s in np.linspace(0.0, 1.0, 9):
        load_flat(m, p0 + s * (end - p0))
        kernels.append(ntk.empirical_ntk(m, X, dtype="float64"))
    step = float(to_host(((end - p0) ** 2).sum())) ** 0.5 / 8
    fine = C.ntk_lipschitz_estimate([spectrum.symmetric_norm(b - a) for a, b in zip(kernels, kernels[1:])],
                                    [step] * 8)
    assert L <= fine * (1 + 1e-9)
    # Weyl: on the ball of radius r ≥ ‖θ_t − θ_0‖, n·μ_cert ≤ λ₀ − ‖Θ_t − Θ_0‖₂ ≤ λ_min(Θ_t)
    spec0 = diag[0]["spec"]
    assert spec0.resolved
    c = C.pl_certificate(spec0.lam_min, L, max(h["param_drift"] + [h["final_param_drift"]]), n)
    for d in diag:
        assert n * c.mu_cert <= d["spec"].lam_min_computed + d["spec"].floor + spec0.floor


# --------------------------------------------------------------------------- the radius on a quadratic


def test_a_priori_radius_is_exact_in_one_dimension():
    """``L = aθ²/2``: μ = β = a, ``R = 2√(2a·aθ₀²/2)/a = 2|θ₀|``; GD with η = 1/a lands on 0 in one step."""
    for a, th0 in ((3.0, 0.7), (0.25, -2.0)):
        assert C.a_priori_radius(a, a * th0 ** 2 / 2, a) == pytest.approx(2 * abs(th0), rel=1e-15)
        assert C.path_length(1 / a, [(a * th0) ** 2]) == pytest.approx(abs(th0), rel=1e-15)  # one step, |θ₀|


@given(seed=seeds, p=st.integers(1, 6), frac=st.sampled_from([1.0, 0.5, 0.1]))
@settings(max_examples=40)
def test_a_priori_radius_bounds_gd_on_a_quadratic(seed, p, frac):
    """``L = ½θᵀAθ``, spectrum of A in [μ, β], L* = 0: each step of the derivation, then drift ≤ path ≤ R."""
    rng = np.random.default_rng(seed)
    lam = np.sort(rng.uniform(0.1, 5.0, p))
    mu, beta = lam[0], lam[-1]
    Q = np.linalg.qr(rng.standard_normal((p, p)))[0]
    A = (Q * lam) @ Q.T
    th0 = rng.standard_normal(p)
    eta = frac / beta
    loss = lambda th: 0.5 * th @ A @ th  # noqa: E731
    floor = 1e-28 * beta * (th0 @ th0)  # the loss's rounding floor: θ known to ≈ ε‖θ₀‖ after a step
    th, g2s = th0.copy(), []
    for t in range(200):
        g = A @ th
        g2s.append(g @ g)
        assert g @ g <= 2 * beta * loss(th) * (1 + 1e-12) + beta * floor  # ‖∇L‖² ≤ 2β(L − L*)
        assert loss(th) <= (1 - eta * mu) ** t * loss(th0) * (1 + 1e-12) + floor  # (10)
        th = th - eta * g
    drift = np.linalg.norm(th - th0)
    path = C.path_length(eta, g2s)
    geometric = eta * math.sqrt(2 * beta * loss(th0)) / (1 - math.sqrt(1 - eta * mu))
    R = C.a_priori_radius(beta, loss(th0), mu)
    tol = 1 + 1e-12  # float64 rounding of sums that can be equal (p = 1, η = 1/β: one exact step)
    assert drift <= path * tol  # triangle inequality
    assert path <= geometric * tol  # ‖∇L_t‖ ≤ √(2βΔ₀)(1 − ημ)^{t/2}, summed
    assert geometric <= R * tol  # 1 − √(1 − x) ≥ x/2


def test_a_priori_radius_is_the_small_step_limit_of_the_geometric_sum():
    """``1 − √(1 − x) ≥ x/2`` is tight as ``x = ημ → 0``: the geometric bound tends to R."""
    beta, gap, mu = 4.0, 0.3, 0.2
    R = C.a_priori_radius(beta, gap, mu)
    for x, rel in ((1e-2, 3e-3), (1e-4, 3e-5)):
        eta = x / mu
        geometric = eta * math.sqrt(2 * beta * gap) / (1 - math.sqrt(1 - x))
        assert geometric <= R and geometric == pytest.approx(R, rel=rel)  # ratio 1 − x/4 + O(x²)


# --------------------------------------------------------------------------- one run's record


def _record(diff=True):
    """A constructed GD run's record: 4 steps, NTK checkpoints at t = 0, 2, 4 (the last after the last step)."""
    history = dict(loss=np.array([0.5, 0.3, 0.2, 0.1]), grad_norm_sq=np.array([4.0, 1.0, 0.25, 0.0625]),
                   lr=np.full(4, 0.1), param_drift=np.array([0.0, 0.1, 0.2, 0.3]))
    diag = dict(step=np.array([0.0, 2.0, 4.0]), lam_min=np.array([3.0, 2.9, 2.8]), lam_max=np.array([8.0, 8.1, 8.2]),
                ntk_drift_spec=np.array([0.0, 1.0, 1.6]) / 8.0)
    if diff:
        diag["ntk_diff_spec"] = np.array([0.0, 1.0, 1.6])  # ‖Θ_t − Θ_0‖₂
    return dict(n=4, history=history, diag=diag, final_param_drift=0.4, hessian=dict(beta0=10.0))


def test_run_certificate_reads_the_record_at_the_right_checkpoints():
    """Drift at checkpoint t is param_drift[t] (before the update), at t = T the final drift: L̂_Θ = max(1/0.2, 1.6/0.4)."""
    c = C.run_certificate(_record())
    np.testing.assert_array_equal(c["checkpoint_drift"], [0.0, 0.2, 0.4])
    assert c["L_theta"] == 5.0 and c["L_theta_step"] == 2 and c["checkpoints_used"] == 2
    assert c["r"] == 0.4 and c["lam0"] == 3.0 and c["n"] == 4
    assert c["mu_cert"] == pytest.approx((3.0 - 5.0 * 0.4) / 4, rel=1e-15) and c["certified"] is True
    assert c["R"] == pytest.approx(2 * math.sqrt(2 * 10.0 * 0.5) / (3.0 / 4), rel=1e-15)
    assert c["R_cert"] == pytest.approx(2 * math.sqrt(2 * 10.0 * 0.5) / 0.25, rel=1e-15) and c["closes"] is False
    assert c["path_length"] == pytest.approx(0.1 * (2 + 1 + 0.5 + 0.25), rel=1e-15)
    assert c["radius_max"] == pytest.approx(3.0 / 5.0) and c["drift_within_R"] is True
    assert c["diff_source"].startswith("measured")
    old = C.run_certificate(_record(diff=False))  # saved before ‖Θ_t − Θ_0‖₂: relative drift × λ_max(Θ_0)
    assert old["diff_source"].startswith("derived") and "3 of 3" in old["diff_source"]
    np.testing.assert_allclose(old["ntk_diff_spec"], [0.0, 1.0, 1.6], rtol=1e-15)
    assert old["L_theta"] == pytest.approx(5.0, rel=1e-15)
    no_beta = dict(_record(), hessian={})
    c = C.run_certificate(no_beta)
    assert math.isnan(c["R"]) and c["beta_source"].startswith("not measured") and c["drift_within_R"] is None
