"""The SGD noise-ball theory and its estimators against closed forms (minilplr.theory.sgd_noise, issue 24).

Least squares ``ℓ_i = (x_iᵀθ − y_i)²/2`` is the model where everything is
known: ``∇ℓ_i = r_i x_i``, ``β = λ_max(H)``, ``μ = λ_min(H)``, ``H = XᵀX/N``.
The mini-batch noise is checked against an enumeration of every batch, the
strong-growth ratio against two closed forms, and the two bounds against
SGD itself (many seeds at once, vectorised).
"""
import itertools
import math

import numpy as np
import pytest

from minilplr import backend as B
from minilplr.nn import models
from minilplr.theory import ntk as _ntk
from minilplr.theory import sgd_noise as sn
from minilplr.theory.verdicts import fit_power_law

from ..helpers import assert_theory_subtable_is_true


def _grads(seed=0, N=7, P=3):
    return np.random.default_rng(seed).standard_normal((N, P))


# --------------------------------------------------------------------------- σ_b²: every batch enumerated


@pytest.mark.parametrize("N", [2, 5, 7])
def test_minibatch_noise_without_replacement_equals_the_mean_over_every_batch(N):
    g = _grads(N, N, 3)
    full = g.mean(0)
    G = sn.gram_of_gradients(g)
    for b in range(1, N + 1):
        exact = np.mean([np.sum((g[list(S)].mean(0) - full) ** 2) for S in itertools.combinations(range(N), b)])
        assert sn.minibatch_noise(G, b) == pytest.approx(exact, rel=1e-12, abs=1e-14)
    assert sn.minibatch_noise(G, N) == 0.0  # the full batch has no noise


def test_minibatch_noise_with_replacement_equals_the_mean_over_every_ordered_draw():
    N = 5
    g = _grads(3, N, 4)
    full = g.mean(0)
    G = sn.gram_of_gradients(g)
    for b in (1, 2, 3):
        exact = np.mean([np.sum((g[list(S)].mean(0) - full) ** 2) for S in itertools.product(range(N), repeat=b)])
        assert sn.minibatch_noise(G, b, replacement=True) == pytest.approx(exact, rel=1e-12)


def test_growth_of_batch_equals_the_second_moment_over_every_batch():
    N = 6
    g = _grads(5, N, 2)
    G = sn.gram_of_gradients(g)
    m = sn.gradient_moments(G)
    rho = sn.strong_growth_ratio(G)
    for b in range(1, N + 1):
        second = np.mean([np.sum(g[list(S)].mean(0) ** 2) for S in itertools.combinations(range(N), b)])
        assert sn.growth_of_batch(rho, N, b) * m.full_sq == pytest.approx(second, rel=1e-12)


def test_batch_factor_refuses_a_batch_larger_than_the_data():
    with pytest.raises(ValueError, match="^b: "):
        sn.batch_factor(4, 5)
    assert sn.batch_factor(4, 5, replacement=True) == 0.2


# --------------------------------------------------------------------------- ρ: closed forms


def test_disjoint_samples_have_rho_N_and_spread_one_minus_one_over_N():
    """Rows ``x_i = a_i e_i`` (disjoint supports): ``∇ℓ_i = a_i² θ_i e_i``, so ``‖∇L‖² = E‖∇ℓ_i‖²/N``: ``ρ = N``."""
    N = 6
    rng = np.random.default_rng(0)
    a, th = rng.uniform(0.5, 2, N), rng.standard_normal(N)
    X, y = np.diag(a), np.zeros(N)
    r = X @ th - y
    g = r[:, None] * X
    G = sn.gram_of_gradients(g)
    mean_sq = np.mean(a ** 4 * th ** 2)
    assert sn.strong_growth_ratio(G) == pytest.approx(N, rel=1e-12)
    m = sn.gradient_moments(G)
    assert m.mean_sq == pytest.approx(mean_sq, rel=1e-12)
    assert m.full_sq == pytest.approx(mean_sq / N, rel=1e-12)
    assert m.spread == pytest.approx(mean_sq * (1 - 1 / N), rel=1e-12)


def test_identical_samples_have_rho_one_and_no_noise():
    g = np.tile(np.array([[1.0, -2.0, 0.5]]), (5, 1))
    G = sn.gram_of_gradients(g)
    assert sn.strong_growth_ratio(G) == pytest.approx(1.0, rel=1e-12)
    assert sn.minibatch_noise(G, 2) == pytest.approx(0.0, abs=1e-12)


def _least_squares(seed=0, N=40, D=4, noise=0.0, kappa=3.0):
    """``X (N, D)`` with ``H = XᵀX/N`` of eigenvalues in ``[1, κ]``, ``θ*`` and ``y = Xθ* + noise``."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((N, D))
    Q, _ = np.linalg.qr(Z)  # (N, D), orthonormal columns: ZᵀZ/N → I exactly after rescaling
    lam = np.linspace(1.0, kappa, D)
    V, _ = np.linalg.qr(rng.standard_normal((D, D)))
    X = math.sqrt(N) * Q @ np.diag(np.sqrt(lam)) @ V.T
    th_star = rng.standard_normal(D)
    y = X @ th_star + noise * rng.standard_normal(N)
    return X, y


def test_least_squares_rho_closed_form_and_the_interpolation_bound():
    r"""``ρ = N Σ r_i²‖x_i‖² / ‖Xᵀr‖²``; with ``y = Xθ*``: ``ρ ≤ max_i‖x_i‖² / λ_min(H)`` everywhere."""
    X, y = _least_squares(1)
    N = X.shape[0]
    H = X.T @ X / N
    bound = np.max(np.sum(X ** 2, 1)) / np.linalg.eigvalsh(H)[0]
    rng = np.random.default_rng(2)
    seen = []
    for _ in range(20):
        th = rng.standard_normal(X.shape[1]) * 10
        r = X @ th - y
        G = sn.gram_of_gradients(r[:, None] * X)
        rho = sn.strong_growth_ratio(G)
        assert rho == pytest.approx(N * np.sum(r ** 2 * np.sum(X ** 2, 1)) / np.sum((X.T @ r) ** 2), rel=1e-12)
        assert 1.0 <= rho <= bound
        seen.append(rho)
    assert max(seen) > 1.2  # the check could fail: ρ is not trivially 1 here


# --------------------------------------------------------------------------- G from the NTK, without J


def test_per_sample_gram_from_the_ntk_of_a_two_output_linear_model():
    """``f(x) = Wx`` (K = 2): ``∇ℓ_i = r_i x_iᵀ``, ``Θ_{iK+k, jK+k'} = x_i·x_j δ_{kk'}``."""
    rng = np.random.default_rng(0)
    N, D, K = 5, 3, 2
    X, R = rng.standard_normal((N, D)), rng.standard_normal((N, K))
    theta = np.kron(X @ X.T, np.eye(K))
    grads = np.einsum("ik,id->ikd", R, X).reshape(N, K * D)
    np.testing.assert_allclose(sn.per_sample_gram(theta, R), sn.gram_of_gradients(grads), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("K", [1, 2])
def test_per_sample_gram_of_an_mlp_equals_the_explicit_per_sample_gradients(K):
    """The engine's structured NTK and its explicit Jacobian give the same ``G``: ``∇ℓ_i = J_iᵀ r_i``."""
    be = B.get_backend("numpy")
    rng = np.random.default_rng(1)
    N, D = 6, 4
    m = models.mlp(D, 8, 3, K, seed=0, dtype="float64", backend=be)
    X = rng.standard_normal((N, D))
    R = m.forward(X) - rng.standard_normal((N, K))
    J = B.to_host(_ntk.jacobian(m, X)).reshape(N, K, -1)
    grads = np.einsum("ik,ikp->ip", R, J)
    theta = _ntk.empirical_ntk(m, X, method="structured", dtype="float64")
    np.testing.assert_allclose(sn.per_sample_gram(theta, R), sn.gram_of_gradients(grads), rtol=1e-10, atol=1e-12)


def test_rho_is_bounded_by_the_kernel_bound_and_attains_it_at_a_multiple_of_the_identity():
    be = B.get_backend("numpy")
    rng = np.random.default_rng(4)
    N, D = 8, 5
    m = models.mlp(D, 16, 3, 1, seed=1, dtype="float64", backend=be)
    X = rng.standard_normal((N, D))
    theta = B.to_host(_ntk.empirical_ntk(m, X, method="structured", dtype="float64"))
    bound = sn.rho_kernel_bound(theta)
    rhos = [sn.strong_growth_ratio(sn.per_sample_gram(theta, rng.standard_normal(N))) for _ in range(200)]
    w, V = np.linalg.eigh(theta)
    rhos.append(sn.strong_growth_ratio(sn.per_sample_gram(theta, V[:, 0])))  # the residual on λ_min's vector
    assert max(rhos) <= bound
    assert max(rhos) > N  # beyond the ρ = N of disjoint samples: the bound is not N
    for r in (rng.standard_normal(N), np.eye(N)[2]):
        assert sn.strong_growth_ratio(sn.per_sample_gram(3.0 * np.eye(N), r)) == pytest.approx(N, rel=1e-12)
    assert sn.rho_kernel_bound(3.0 * np.eye(N)) == pytest.approx(N, rel=1e-12)
    # attained by any kernel with a constant diagonal c, at the residual on λ_min's eigenvector: ρ = N c/λ_min
    d = 1 / np.sqrt(np.diag(theta))
    unit = 2.0 * d[:, None] * theta * d[None, :]  # constant diagonal 2
    w, V = np.linalg.eigh(unit)
    rho_min_vec = sn.strong_growth_ratio(sn.per_sample_gram(unit, V[:, 0]))
    assert rho_min_vec == pytest.approx(N * 2.0 / w[0], rel=1e-9)
    assert sn.rho_kernel_bound(unit) == pytest.approx(rho_min_vec, rel=1e-9)


def test_per_sample_gram_refuses_a_kernel_of_the_wrong_size():
    with pytest.raises(ValueError, match="^theta: "):
        sn.per_sample_gram(np.eye(4), np.ones((3, 1)))


# --------------------------------------------------------------------------- the bounds


def test_noise_ball_is_the_fixed_point_of_the_one_step_recursion():
    """``Δ_{t+1} = (1 − ημ)Δ_t + βη²σ²/2`` iterated from ``Δ_0`` is ``(1−ημ)^tΔ_0 + ball(1 − (1−ημ)^t)``."""
    eta, beta, mu, s2, d0 = 0.05, 4.0, 0.5, 3.0, 10.0
    d, ts = d0, np.arange(0, 2001)
    traj = []
    for _ in ts:
        traj.append(d)
        d = (1 - eta * mu) * d + beta * eta ** 2 * s2 / 2
    ball = sn.noise_ball(eta, beta, mu, s2)
    assert traj[-1] == pytest.approx(ball, rel=1e-9)
    q = (1 - eta * mu) ** ts
    np.testing.assert_allclose(traj, q * d0 + ball * (1 - q), rtol=1e-10)
    assert np.all(np.array(traj) <= sn.kns_bound(ts, d0, eta, beta, mu, s2) * (1 + 1e-12))


def test_the_bounds_are_their_formulas():
    """(N4) and (N7) at one set of numbers, by hand: 0.95¹⁰·2 + 0.1·2·3/(2·0.5), and 0.95¹⁰·2."""
    assert sn.kns_bound(10, 2.0, 0.1, 2.0, 0.5, 3.0) == pytest.approx(0.95 ** 10 * 2 + 0.6, rel=1e-14)
    assert sn.sgc_bound(10, 2.0, 0.1, 2.0, 0.5, 4.0) == pytest.approx(0.95 ** 10 * 2, rel=1e-14)
    assert sn.sgc_step_limit(2.0, 4.0) == 0.125
    assert sn.quadratic_plateau(0.1, 3.0) == pytest.approx(0.075, rel=1e-14)


def test_bounds_refuse_steps_beyond_their_limits():
    with pytest.raises(ValueError, match="^eta: "):
        sn.kns_bound(3, 1.0, 0.3, 4.0, 0.5, 1.0)
    with pytest.raises(ValueError, match="^eta: "):
        sn.sgc_bound(3, 1.0, 0.2, 4.0, 0.5, 2.0)  # 1/(ρβ) = 0.125
    with pytest.raises(ValueError, match="^rho: "):
        sn.growth_of_batch(0.5, 10, 2)


def _sgd(X, y, eta, b, steps, seeds, th0, replacement=False):
    """Constant-step SGD on least squares for ``S`` seeds at once; each step an independent uniform b-subset.

    Returns the gaps ``L(θ_t) − L* (S, steps + 1)`` and the max over the path of ``σ_b²(θ_t)``.
    """
    N, D = X.shape
    rng = np.random.default_rng(seeds)
    S = seeds
    th = np.tile(th0, (S, 1))
    lstar = np.sum((X @ np.linalg.lstsq(X, y, rcond=None)[0] - y) ** 2) / (2 * N)
    gaps, s2max = np.empty((S, steps + 1)), 0.0
    cb = sn.batch_factor(N, b, replacement)
    for t in range(steps + 1):
        R = th @ X.T - y  # (S, N)
        gaps[:, t] = np.sum(R ** 2, 1) / (2 * N) - lstar
        # σ_b² at every seed's θ_t: c_b (E_i‖r_i x_i‖² − ‖Xᵀr/N‖²)
        s2 = cb * (np.mean(R ** 2 * np.sum(X ** 2, 1), 1) - np.sum((R @ X / N) ** 2, 1))
        s2max = max(s2max, float(s2.max()))
        if t == steps:
            break
        idx = (rng.integers(0, N, (S, b)) if replacement
               else np.argsort(rng.random((S, N)), axis=1)[:, :b])  # (S, b): a uniform b-subset per seed
        Rb = np.take_along_axis(R, idx, 1)
        g = np.einsum("sb,sbd->sd", Rb, X[idx]) / b
        th = th - eta * g
    return gaps, s2max


def test_constant_step_sgd_stays_inside_the_kns_bound_and_its_ball_scales_as_eta_c_b():
    X, y = _least_squares(0, noise=0.5)
    N = X.shape[0]
    H = X.T @ X / N
    mu, beta = np.linalg.eigvalsh(H)[[0, -1]]
    th_star = np.linalg.lstsq(X, y, rcond=None)[0]
    r_star = X @ th_star - y
    G_star = sn.gram_of_gradients(r_star[:, None] * X)  # σ_b² at the minimiser, where the plateau lives
    th0 = th_star + 1.0
    steps, S, b = 3000, 300, 2
    plateaus = {}
    for frac in (0.02, 0.04, 0.08):
        eta = frac / beta
        gaps, s2max = _sgd(X, y, eta, b, steps, S, th0)
        mean = gaps.mean(0)
        se = gaps.std(0) / math.sqrt(S)
        bound = sn.kns_bound(np.arange(steps + 1), mean[0], eta, beta, mu, s2max)
        assert np.all(mean - 3 * se <= bound), "the mean gap left the KNS bound by more than 3 standard errors"
        plateaus[frac] = gaps[:, steps // 2:].mean(1)
        s2 = sn.minibatch_noise(G_star, b)
        # the quadratic's stationary gap is ησ_b²/4 to first order in ηβ (measured: +2 %, +4.5 %, +9.8 % here)
        assert plateaus[frac].mean() / sn.quadratic_plateau(eta, s2) == pytest.approx(1.0, abs=2 * frac + 0.02)
        # so the KNS ball is loose by 2β/μ = 6 on this κ = 3 quadratic
        assert plateaus[frac].mean() / sn.noise_ball(eta, beta, mu, s2) == pytest.approx(
            mu / (2 * beta), rel=2 * frac + 0.02)
    fit = fit_power_law(list(plateaus), [plateaus[f] for f in plateaus], n_boot=300)
    assert abs(fit.a - 1.0) < 0.1, fit.a  # ∝ η up to the O(ηβ) ≤ 0.08 correction of the stationary variance
    # and ∝ c_b at a fixed step
    eta = 0.04 / beta
    cbs, pl = [], []
    for b in (1, 4, 16):
        gaps, _ = _sgd(X, y, eta, b, steps, S, th0)
        cbs.append(sn.batch_factor(N, b))
        pl.append(gaps[:, steps // 2:].mean(1))
    fit_b = fit_power_law(cbs, pl, n_boot=300)
    assert abs(fit_b.a - 1.0) < 0.1, fit_b.a


def test_interpolating_least_squares_converges_linearly_to_zero_inside_the_sgc_bound():
    X, y = _least_squares(3, noise=0.0)
    N = X.shape[0]
    H = X.T @ X / N
    mu, beta = np.linalg.eigvalsh(H)[[0, -1]]
    rho = np.max(np.sum(X ** 2, 1)) / mu  # a bound on ρ(θ) everywhere (test above)
    b, S, steps = 4, 200, 600
    rho_b = sn.growth_of_batch(rho, N, b)
    eta = sn.sgc_step_limit(beta, rho_b)
    gaps, s2max = _sgd(X, y, eta, b, steps, S, np.zeros(X.shape[1]))
    mean, se = gaps.mean(0), gaps.std(0) / math.sqrt(S)
    bound = sn.sgc_bound(np.arange(steps + 1), mean[0], eta, beta, mu, rho_b)
    assert np.all(mean - 3 * se <= bound)
    assert mean[-1] < 1e-6 * mean[0]  # no ball: linear convergence to L* = 0
    q = sn.transient_rate(np.arange(steps + 1), mean, stop=1e-12 * mean[0])
    assert q <= 1 - eta * mu


# --------------------------------------------------------------------------- reading a curve


def test_transient_rate_recovers_a_geometric_rate_and_stops_at_the_plateau():
    t = np.arange(0, 500, 5)
    loss = 3.0 * 0.97 ** t + 1e-6
    assert sn.transient_rate(t, loss, l_star=1e-6) == pytest.approx(0.97, rel=1e-10)
    # a plateau at 1e-3: stopping at twice it keeps the fit near the rate (the floor bends the last points:
    # measured 0.9716), running through it does not (0.9946)
    t = np.arange(0, 1000, 5)
    loss = 3.0 * 0.97 ** t + 1e-3
    assert sn.transient_rate(t, loss, stop=2e-3) == pytest.approx(0.97, abs=3e-3)
    assert sn.transient_rate(t, loss) > 0.99


def test_plateau_mean_spread_and_drift():
    rng = np.random.default_rng(0)
    flat = 0.5 + 0.01 * rng.standard_normal(400)
    p = sn.plateau(flat, 0.5)
    assert p.start == 200
    assert p.mean == pytest.approx(flat[200:].mean(), rel=1e-12)
    assert p.std == pytest.approx(flat[200:].std(), rel=1e-12)
    assert abs(p.drift - 1) < 0.01
    falling = 0.99 ** np.arange(400)
    assert sn.plateau(falling, 0.5).drift == pytest.approx(0.99 ** 100, rel=0.02)


def test_the_theory_sections_table_is_true():
    """docs/THEORY.md, "the noise ball": every row's function resolves and its test exists and calls it."""
    assert_theory_subtable_is_true("### Equation → function → test: the noise ball", min_rows=14)
