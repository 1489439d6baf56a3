"""The PL diagnostics of Theorem 5.1 and 5.4 (minilplr.pl), as properties in float64.

* ``∇L = (1/n) Jᵀ r`` against the backward pass;
* ``½‖∇L‖² ≥ (λ_min(Θ)/n)·L`` and every step (6)–(9) of the proof, for drawn
  MLPs, data and seeds; a wrong ``λ`` makes the check fail;
* a singular Θ is reported unresolved and the inequalities stay consistent;
* a linear model (quadratic loss): the Hessian's top eigenvalue is
  ``λ_max(Θ)/n``, the descent lemma (11), the contraction (14) and the
  envelope (10) hold along gradient descent, and the NTK does not drift;
* power iteration finds the top eigenvalue of an explicitly
  finite-differenced Hessian.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minilplr import models, ntk, pl
from minilplr.backend import to_host
from minilplr.gradcheck import numerical_jvp_columns, rel_error
from minilplr.params import flatten, load_flat

from .strategies import gaussian, mlp_configs, seeds


def _problem(cfg, be, dev, depth=None):
    """A float64 MLP with non-zero biases (no exact ReLU kinks), inputs ``X (N, D)`` and targets ``y (N, K)``."""
    m = models.mlp(cfg["d_in"], cfg["width"], depth or cfg["depth"], cfg["d_out"], seed=cfg["seed"],
                   dtype="float64", backend=be)
    for k, p in m.params.items():
        if k.endswith(".b"):
            p[...] = dev(gaussian(cfg["seed"] + 7, *p.shape, scale=0.1))
    X = dev(gaussian(cfg["seed"] + 1, cfg["n"], cfg["d_in"]))
    y = dev(gaussian(cfg["seed"] + 2, cfg["n"], cfg["d_out"]))
    return m, X, y


@given(cfg=mlp_configs(max_depth=4, max_width=7, max_n=6, max_d=5, max_k=3))
def test_gradient_is_jacobian_transpose_residual_over_n(cfg, be, dev):
    m, X, y = _problem(cfg, be, dev)
    lg = pl.loss_and_gradient(m, X, y)
    J = ntk.jacobian(m, X)
    assert lg.n == cfg["n"] and lg.r.shape == (cfg["n"] * cfg["d_out"],)
    assert rel_error(pl.gradient_from_jacobian(J, lg.r, lg.n), lg.grad) < 1e-12
    assert lg.loss == pytest.approx(to_host(lg.r) @ to_host(lg.r) / (2 * cfg["n"]), rel=1e-12)  # ‖r‖² = 2nL


@given(cfg=mlp_configs(max_depth=4, max_width=8, max_n=6, max_d=5, max_k=3), frac=st.floats(0, 1))
def test_pl_inequality_and_every_proof_step_hold(cfg, frac, be, dev):
    m, X, y = _problem(cfg, be, dev)
    lg = pl.loss_and_gradient(m, X, y)
    loss_star = frac * lg.loss  # any L* in [0, L]
    rep = pl.pl_diagnostics(m, X, y, loss_star=loss_star)
    assert set(rep.steps) == {6, 7, 8, 9}
    assert rep.holds, str(rep)
    assert rep.identity.holds, str(rep)  # ‖∇L‖² = rᵀΘr/n²
    assert rep.mu == pytest.approx(rep.spectrum.lam_min_lower / cfg["n"])
    # the free consistency check: ‖∇L‖²/(2L) ≥ λ_min/n at every point
    assert pl.pl_ratio(lg.grad, lg.loss) >= rep.mu * (1 - 1e-12)
    # the PL inequality itself, from raw numbers
    assert 0.5 * rep.grad_sq >= rep.mu * (rep.loss - loss_star) * (1 - 1e-12)
    # a mapping of gradients is accepted as well as the flat vector
    assert pl.pl_step8_loss_bound(m.grads, lg.loss, rep.spectrum, lg.n) == rep.steps[8]


@given(cfg=mlp_configs(max_depth=3, max_width=6, max_n=5, max_d=4, max_k=2))
def test_a_wrong_lambda_makes_the_steps_fail(cfg, be, dev):
    m, X, y = _problem(cfg, be, dev)
    lg = pl.loss_and_gradient(m, X, y)
    theta = ntk.empirical_ntk(m, X)
    spec = ntk.ntk_spectrum(theta)
    if spec.lam_max <= 0 or lg.loss <= 0:
        return  # a dead network: nothing can fail
    too_big = 2.0 * spec.lam_max  # no quadratic form reaches it
    assert not pl.pl_step6_rayleigh(theta, lg.r, too_big).holds
    assert not pl.pl_step7_gradient_bound(lg.grad, lg.r, too_big, lg.n).holds
    assert not pl.pl_step8_loss_bound(lg.grad, lg.loss, too_big, lg.n).holds
    assert not pl.pl_step9_pl_inequality(lg.grad, lg.loss, too_big, lg.n).holds


@given(cfg=mlp_configs(max_depth=3, max_width=5, max_n=6, max_d=4, max_k=2))
def test_tiny_lambda_is_reported_honestly(cfg, be, dev):
    """Duplicate samples with different targets: Θ is singular and L* > 0; nothing pretends otherwise."""
    n = max(cfg["n"], 2)
    Xh = gaussian(cfg["seed"] + 1, n, cfg["d_in"])
    Xh[1] = Xh[0]
    m = models.mlp(cfg["d_in"], cfg["width"], cfg["depth"], cfg["d_out"], seed=cfg["seed"], dtype="float64", backend=be)
    X, y = dev(Xh), dev(gaussian(cfg["seed"] + 2, n, cfg["d_out"]))
    rep = pl.pl_diagnostics(m, X, y)
    assert not rep.spectrum.resolved
    assert rep.mu == 0.0 and rep.spectrum.lam_min is None
    assert rep.holds  # with λ_min's lower bound 0 every step is (trivially) consistent
    assert "unresolved" in str(rep)
    # the raw solver output is noise: using it as λ_min is not claimed anywhere
    assert abs(rep.spectrum.lam_min_computed) <= rep.spectrum.floor


def test_more_outputs_than_parameters(be, dev):
    m = models.mlp(2, 1, 1, 3, seed=0, dtype="float64", backend=be)  # P = 9
    X, y = dev(gaussian(0, 4, 2)), dev(gaussian(1, 4, 3))  # N·K = 12 > P
    rep = pl.pl_diagnostics(m, X, y)
    assert not rep.spectrum.resolved and rep.mu == 0.0 and rep.holds


# --------------------------------------------------------------------------- Theorem 5.4 on a quadratic loss


def _linear(seed, n, d, k, be, dev):
    m = models.mlp(d, 1, 1, k, seed=seed, dtype="float64", backend=be)  # f = XW + b: L is quadratic in θ
    return m, dev(gaussian(seed + 1, n, d)), dev(gaussian(seed + 2, n, k))


@given(seed=seeds, d=st.integers(2, 5), k=st.integers(1, 2), data=st.data())
def test_linear_model_rate_envelope_and_constants(seed, d, k, data, be, dev):
    n = data.draw(st.integers(1, d + 1))  # N ≤ D + 1: interpolation possible, L* = 0, λ_min > 0
    m, X, y = _linear(seed, n, d, k, be, dev)
    theta0 = ntk.empirical_ntk(m, X)
    spec = ntk.ntk_spectrum(theta0)
    if not spec.resolved:
        return
    mu = pl.pl_constant(spec, n)
    beta_gn = pl.gauss_newton_smoothness(spec, n)
    top = pl.hessian_top_eigenvalue(m, X, y, max_iter=500, tol=1e-12)
    assert top.beta == pytest.approx(beta_gn, rel=1e-6)  # H = JᵀJ/n exactly for a linear model
    eta = 1.0 / top.beta
    assert pl.step_size_condition(eta, top).holds
    assert not pl.step_size_condition(2.5 * eta, top).holds
    p0 = flatten(m.params)
    losses = [pl.loss_and_gradient(m, X, y).loss]
    floor = 1e-20 * losses[0]  # the loss's rounding floor (reached in one step when N = 1)
    for t in range(8):
        assert pl.descent_lemma_step(m, X, y, eta, beta_gn, rtol=1e-9, atol=floor).holds  # (11)
        lg = pl.loss_and_gradient(m, X, y)
        load_flat(m, flatten(m.params) - eta * lg.grad)
        losses.append(pl.loss_and_gradient(m, X, y).loss)
        assert pl.contraction_step14(losses[-1], losses[-2], eta, mu, rtol=1e-9, atol=floor).holds  # (14)
    env = pl.pl_envelope(np.arange(len(losses)), eta, mu, gap0=losses[0])  # (10)
    assert np.all(np.array(losses) <= env * (1 + 1e-9) + floor)
    assert pl.pl_envelope(3, eta, mu, gap0=2.0) == pytest.approx(2.0 * (1 - eta * mu) ** 3)
    # the NTK of a linear model does not move; the parameters do
    drift = pl.ntk_drift(ntk.empirical_ntk(m, X), theta0)
    assert drift.frobenius < 1e-12 and drift.spectral < 1e-12
    assert pl.param_drift(m, p0) == pytest.approx(math.sqrt(float(to_host(flatten(m.params) - p0) @ to_host(flatten(m.params) - p0))))


def test_descent_lemma_fails_for_a_too_small_beta(be, dev):
    m, X, y = _linear(0, 3, 4, 1, be, dev)
    beta = pl.gauss_newton_smoothness(ntk.ntk_spectrum(ntk.empirical_ntk(m, X)), 3)
    assert pl.descent_lemma_step(m, X, y, 1.9 / beta, beta).holds
    assert not pl.descent_lemma_step(m, X, y, 1.9 / beta, 0.01 * beta).holds  # β underestimated


# --------------------------------------------------------------------------- the Hessian


@settings(max_examples=max(3, settings().max_examples // 3))  # ~2 s per 10 examples
@given(cfg=mlp_configs(max_depth=3, max_width=4, max_n=5, max_d=3, max_k=2))
def test_power_iteration_finds_the_top_eigenvalue_of_the_explicit_hessian(cfg, be, dev):
    m, X, y = _problem(cfg, be, dev)
    grad = lambda: pl.loss_and_gradient(m, X, y).grad  # noqa: E731
    H = to_host(be.xp.concatenate([numerical_jvp_columns(grad, p) for p in m.params.values()], axis=1))
    H = 0.5 * (H + H.T)
    ev = np.linalg.eigvalsh(H)
    top = pl.hessian_top_eigenvalue(m, X, y, max_iter=3000, tol=1e-13)
    ref = max(abs(ev[0]), abs(ev[-1]))
    assert top.beta == pytest.approx(ref, rel=1e-4, abs=1e-8)
    assert top.beta <= ref * (1 + 1e-5) + 1e-8  # power iteration's ‖Hv‖ is a lower bound
    before = flatten(m.params)
    pl.hessian_vector_product(m, X, y, dev(gaussian(0, before.shape[0])))
    assert rel_error(flatten(m.params), before) == 0.0  # parameters restored


# --------------------------------------------------------------------------- small facts and bad input


def test_drift_and_ratio_values(be, dev):
    T0 = dev(np.diag([4.0, 1.0]))
    E = dev(np.array([[0.0, 0.3], [0.3, 0.0]]))
    d = pl.ntk_drift(T0 + E, T0)
    assert d.frobenius == pytest.approx(math.sqrt(0.18) / math.sqrt(17.0))
    assert d.spectral == pytest.approx(0.3 / 4.0)
    g = dev(np.array([3.0, 4.0]))
    assert pl.pl_ratio(g, 2.0, 0.5) == pytest.approx(25.0 / 3.0)
    assert math.isnan(pl.pl_ratio(g, 1.0, 1.0))  # undefined at the minimum
    assert pl.param_drift(dev(np.array([1.0, 1.0])), dev(np.array([4.0, 5.0]))) == pytest.approx(5.0)


def test_bad_arguments_raise_clear_errors(be, dev):
    m = models.mlp(2, 3, 2, 1, seed=0, dtype="float64", backend=be)
    X, y = dev(gaussian(0, 3, 2)), dev(gaussian(1, 3, 1))
    g = dev(np.ones(4))
    with pytest.raises(ValueError, match="n: expected"):
        pl.pl_constant(1.0, 0)
    with pytest.raises(ValueError, match="lam_min"):
        pl.pl_step8_loss_bound(g, 1.0, -1.0, 3)
    with pytest.raises(TypeError, match="lam_min"):
        pl.pl_step8_loss_bound(g, 1.0, "big", 3)
    with pytest.raises(TypeError, match="grad"):
        pl.pl_step9_pl_inequality([1.0, 2.0], 1.0, 0.1, 3)
    with pytest.raises(ValueError, match="eta, mu"):
        pl.pl_envelope(3, 2.0, 1.0)
    with pytest.raises(ValueError, match="t: expected"):
        pl.pl_envelope([-1, 2], 0.1, 1.0)
    with pytest.raises(ValueError, match="eta"):
        pl.step_size_condition(0.0, 1.0)
    with pytest.raises(ValueError, match="float64"):
        pl.hessian_top_eigenvalue(models.mlp(2, 3, 2, 1, seed=0, backend=be), X, y)
    with pytest.raises(ValueError, match="v: expected"):
        pl.hessian_vector_product(m, X, y, dev(np.ones(3)))
    with pytest.raises(ValueError, match="theta_t"):
        pl.ntk_drift(dev(np.eye(2)), dev(np.eye(3)))
    with pytest.raises(ValueError, match="r: expected"):
        pl.pl_step6_rayleigh(dev(np.eye(2)), dev(np.ones(3)), 0.1)
    with pytest.raises(ValueError, match="y: expected"):
        pl.loss_and_gradient(m, X, dev(np.ones((3, 2))))


def test_hessian_on_a_float32_model_via_float64_copy(be, dev):
    m32 = models.mlp(2, 3, 2, 1, seed=0, backend=be)
    X, y = dev(gaussian(0, 4, 2)), dev(gaussian(1, 4, 1))
    top = pl.hessian_top_eigenvalue(ntk.float64_copy(m32), X, y, max_iter=50)
    assert top.beta > 0 and top.iterations >= 2


def test_hessian_vector_product_is_blind_to_a_nearby_relu_kink(be):
    """A pre-activation 1e-8 from zero: differences at h = 1e-5 straddle the kink.

    With the masks frozen at θ the product is the Hessian of θ's linear piece,
    so it is the same at h = 1e-5 (straddling) and h = 1e-7 (not straddling).
    Unfrozen, the straddling difference would carry the gradient's jump / 2h.
    """
    from minilplr import backend as B
    from minilplr import models
    from minilplr.params import num_params
    from minilplr.pl import hessian_vector_product

    m = models.mlp(3, 4, 2, 1, seed=1, dtype="float64", backend=be)  # one hidden layer: the kink reaches f
    rng = np.random.default_rng(0)
    Xh = rng.standard_normal((5, 3))
    W = B.to_host(m.params["fc1.W"])
    # sample 0's pre-activations are (1e-8, 0.3, -0.2, 0.1): unit 0 sits 1e-8 from its kink
    m.params["fc1.b"][...] = B.to_device(-(Xh[0] @ W) + np.array([1e-8, 0.3, -0.2, 0.1]), be)
    X, y = B.to_device(Xh, be), B.to_device(rng.standard_normal((5, 1)), be)
    v = B.to_device(rng.standard_normal(num_params(m.params)), be)
    straddle = hessian_vector_product(m, X, y, v, h=1e-5)
    inside = hessian_vector_product(m, X, y, v, h=1e-7)
    rel = float(B.to_host(((straddle - inside) ** 2).sum()) ** 0.5 / B.to_host((inside ** 2).sum()) ** 0.5)
    assert rel < 1e-6


@given(n=st.integers(2, 8), d=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_kernel_regime_loss_is_exact_for_a_linear_model(be, n, d, seed):
    """f(x) = x·w + b is its own linearisation: GD's loss equals the Θ_0 prediction at every step."""
    from minilplr import backend as B
    from minilplr import models, optim
    from minilplr.ntk import empirical_ntk
    from minilplr.pl import kernel_regime_loss
    from minilplr.train import train_gd

    rng = np.random.default_rng(seed)
    m = models.mlp(d, 1, 1, 1, seed=seed, dtype="float64", backend=be)  # depth 1: a linear model
    X = B.to_device(rng.standard_normal((n, d)), be)
    y = B.to_device(rng.standard_normal((n, 1)), be)
    theta0 = empirical_ntk(m, X)
    r0 = m.forward(X) - y
    lam_max = float(np.linalg.eigvalsh(B.to_host(theta0)).max())
    eta = 0.9 * n / lam_max  # stable: every (1 − ηλ_i/n) in (−1, 1]
    h = train_gd(m, X, y, optim.GD(eta), steps=25)
    pred = kernel_regime_loss(theta0, r0, eta, n, 25)
    assert np.allclose(h["loss"], pred, rtol=1e-9, atol=1e-14)
