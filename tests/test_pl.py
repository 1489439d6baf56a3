"""The PL diagnostics of Theorem 5.1 and 5.4 (minilplr.theory.pl), as properties in float64.

* ``∇L = (1/n) Jᵀ r`` against the backward pass;
* ``½‖∇L‖² ≥ (λ_min(Θ)/n)·L`` and every step (6)–(9) of the proof, for drawn
  MLPs, data and seeds; a wrong ``λ`` makes the check fail;
* a singular Θ is reported unresolved and the inequalities stay consistent;
* a linear model (quadratic loss): the Hessian's top eigenvalue is
  ``λ_max(Θ)/n``, the descent lemma (11), the contraction (14) and the
  envelope (10) hold along gradient descent, and the NTK does not drift;
* Lanczos finds the top eigenvalue of the explicit Hessian (built column by
  column from Hessian–vector products), and of the exact Hessian
  ``[X 1]ᵀ[X 1]/n ⊗ I_K`` of a linear model; ``η ≤ 1/β`` is "not certified"
  when the solver did not converge;
* every diagnostic leaves the model (an MLP, a training-mode ResNet) exactly
  as it found it.
"""
import copy
import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from minilplr.nn import layers, models
from minilplr.theory import ntk, pl
from minilplr.backend import to_device, to_host
from minilplr.nn.resnet import resnet
from minilplr.nn.gradcheck import numerical_jvp_columns, rel_error
from minilplr.nn.losses import mse
from minilplr.nn.params import flatten, load_flat, num_params

from .strategies import gaussian, mlp_configs, seeds


def _problem(cfg, be, dev, depth=None, y_scale=1.0):
    """A float64 MLP with non-zero biases (no exact ReLU kinks), inputs ``X (N, D)`` and targets ``y (N, K)``."""
    m = models.mlp(cfg["d_in"], cfg["width"], depth or cfg["depth"], cfg["d_out"], seed=cfg["seed"],
                   dtype="float64", backend=be)
    for k, p in m.params.items():
        if k.endswith(".b"):
            p[...] = dev(gaussian(cfg["seed"] + 7, *p.shape, scale=0.1))
    X = dev(gaussian(cfg["seed"] + 1, cfg["n"], cfg["d_in"]))
    y = dev(gaussian(cfg["seed"] + 2, cfg["n"], cfg["d_out"], scale=y_scale))
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
    # with λ_min unresolved μ = 0 and (6)–(9) hold trivially: the unresolved case has its own tests below
    assume(rep.spectrum.resolved)
    assert rep.mu > 0
    assert set(rep.steps) == {6, 7, 8, 9}
    assert rep.holds, str(rep)
    assert rep.identity.holds, str(rep)  # ‖∇L‖² = rᵀΘr/n²
    assert rep.mu == pytest.approx(rep.spectrum.lam_min_lower / cfg["n"])
    # the free consistency check: ‖∇L‖²/(2L) ≥ λ_min/n at every point
    assert pl.pl_ratio(lg.grad, lg.loss) >= rep.mu * (1 - 1e-12)
    # the PL inequality itself, from raw numbers
    assert 0.5 * rep.grad_sq >= rep.mu * (rep.loss - loss_star) * (1 - 1e-12)
    # a mapping of gradients is accepted as well as the flat vector
    m.backward(mse(m.forward(X), y)[1])  # the diagnostics leave no grads behind: fill them
    assert pl.pl_step8_loss_bound(m.grads, lg.loss, rep.spectrum, lg.n) == rep.steps[8]


@given(cfg=mlp_configs(max_depth=3, max_width=6, max_n=5, max_d=4, max_k=2))
def test_a_wrong_lambda_makes_the_steps_fail(cfg, be, dev):
    m, X, y = _problem(cfg, be, dev)
    lg = pl.loss_and_gradient(m, X, y)
    theta = ntk.empirical_ntk(m, X)
    spec = ntk.ntk_spectrum(theta)
    assume(spec.lam_max > 0 and lg.loss > 0)  # a dead network: nothing can fail
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
    assert all(c.rhs == 0.0 for c in rep.steps.values())  # ... because the bound used is 0, not noise
    assert "unresolved" in str(rep) and "λ_min ≤" in str(rep.spectrum)  # a bound is stated, not a value
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
    assume(spec.resolved)  # rows of [X 1] nearly dependent: no μ > 0 to check the rate with
    mu = pl.pl_constant(spec, n)
    beta_gn = pl.gauss_newton_smoothness(spec, n)
    top = pl.hessian_top_eigenvalue(m, X, y)
    assert top.converged
    assert top.beta == pytest.approx(beta_gn, rel=1e-9)  # H = JᵀJ/n exactly for a linear model; seen ≤ 4e-11
    eta = 1.0 / top.upper  # the largest step the solver certifies
    assert pl.step_size_condition(eta, top).holds is True
    assert pl.step_size_condition(2.5 * eta, top).holds is False
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


def _explicit_hessian(m, X, y):
    """``H (P, P)`` on the host: column ``p`` is ``pl.hessian_vector_product`` of ``e_p``; symmetrised."""
    be = m.backend
    P = num_params(m.params)
    H = np.stack([to_host(pl.hessian_vector_product(m, X, y, to_device(e, be))) for e in np.eye(P)], axis=1)
    return 0.5 * (H + H.T)


@settings(max_examples=max(3, settings().max_examples // 3))  # ~1 s per 10 examples
@given(cfg=mlp_configs(max_depth=3, max_width=5, max_n=5, max_d=4, max_k=2), ncv=st.integers(3, 20),
       y_scale=st.sampled_from([1.0, 30.0]))
@example(cfg=dict(d_in=4, width=3, depth=3, d_out=1, n=3, seed=67), ncv=20, y_scale=30.0)  # λ: −153.3 … 125.7
def test_lanczos_finds_the_top_eigenvalue_of_the_explicit_hessian(cfg, ncv, y_scale, be, dev):
    """β against the top |eigenvalue| of the same products' explicit matrix, by eigvalsh.

    With the default ``ncv = 20`` it must converge.  A drawn ``ncv`` down to 3
    makes Lanczos restart (P is up to ~80); with three top eigenvalues within
    2e-4 of each other in size, 30 restarts of 3 vectors do not separate them
    (seen): then ``β`` must still be a lower bound and ``η ≤ 1/β`` not certified.
    Targets far from the outputs (``y_scale = 30``) let the residual term ``Σ r_i ∇²f_i / n``
    dominate, and the top |eigenvalue| can be negative (a ridge): the example pins one down.
    """
    m, X, y = _problem(cfg, be, dev, y_scale=y_scale)
    ev = np.linalg.eigvalsh(_explicit_hessian(m, X, y))
    ref = max(abs(ev[0]), abs(ev[-1]))
    assume(ref > 1e-6)  # a dead network has H ≈ 0: nothing to find
    small = pl.hessian_top_eigenvalue(m, X, y, ncv=min(ncv, num_params(m.params)))
    top = pl.hessian_top_eigenvalue(m, X, y)
    for t in (small, top):
        assert t.beta <= ref * (1 + 1e-9)  # a Rayleigh quotient: a lower bound (up to the products' error, ~1e-10)
        assert not t.converged or t.residual <= t.tol  # converged means the measured residual is within tol
    assert small.converged or pl.step_size_condition(0.5 / small.beta, small).holds is None
    assert top.converged and top.residual <= top.tol, str(top)
    # the products' own error is ~1e-10 relative (h = 1e-5); seen ≤ 4e-10 (median 8e-12) over 200 draws
    for t in (small, top) if small.converged else (top,):
        assert t.beta == pytest.approx(ref, rel=1e-8)
        assert ref <= t.upper * (1 + 1e-9)  # the certified bracket's top
        assert np.isclose(t.rayleigh, ev[0] if abs(ev[0]) > abs(ev[-1]) else ev[-1], rtol=1e-8)  # and its sign
    # independently of the products: central differences of the gradient (gradcheck's), ReLU masks not
    # frozen, h = 1e-6 — agree to ~1e-7 unless a pre-activation sits within h of a kink (biases keep them off)
    grad = lambda: pl.loss_and_gradient(m, X, y).grad  # noqa: E731
    H_fd = to_host(be.xp.concatenate([numerical_jvp_columns(grad, p) for p in m.params.values()], axis=1))
    assert rel_error(0.5 * (H_fd + H_fd.T), _explicit_hessian(m, X, y)) < 1e-5


@given(seed=seeds, n=st.integers(1, 6), d=st.integers(1, 5), k=st.integers(1, 3))
def test_the_hessian_of_a_linear_model_is_the_kronecker_product(seed, n, d, k, be, dev):
    r"""``f = XW + b``, ``L = ‖f − y‖²/(2n)``: ``∇²L = [X 1]ᵀ[X 1]/n ⊗ I_K`` exactly.

    Flat order (minilplr.nn.params): ``W (D, K)`` in C order, then ``b (K,)``, so
    parameter ``a·K + k`` is row ``a`` of ``[W; b]``, column ``k``: the
    Kronecker product ``A ⊗ I_K`` with ``A = [X 1]ᵀ[X 1]/n``.
    """
    m, X, y = _linear(seed, n, d, k, be, dev)
    Xh = gaussian(seed + 1, n, d)
    A1 = np.hstack([Xh, np.ones((n, 1))])  # [X 1] (N, D+1)
    H = np.kron(A1.T @ A1 / n, np.eye(k))  # (P, P), P = (D+1)·K
    v = gaussian(seed + 3, (d + 1) * k)
    Hv = to_host(pl.hessian_vector_product(m, X, y, dev(v)))
    # a quadratic: differences exact up to rounding ε‖∇L‖/(h‖Hv‖); seen ≤ 2e-10 (median 4e-12) over 300 draws
    assert rel_error(Hv, H @ v) < 1e-8
    top = pl.hessian_top_eigenvalue(m, X, y)
    beta = np.linalg.eigvalsh(H)[-1]  # PSD: the top eigenvalue is the top |eigenvalue|
    assert top.converged
    assert top.beta == pytest.approx(beta, rel=1e-9)  # seen ≤ 4e-11 (median 4e-12) over 200 draws


def test_step_size_condition_is_not_certified_without_convergence(be, dev):
    m, X, y = _problem(dict(d_in=4, width=6, depth=3, d_out=2, n=5, seed=3), be, dev)
    top = pl.hessian_top_eigenvalue(m, X, y, ncv=2, maxiter=1, tol=1e-12)  # too small a budget to converge
    assert not top.converged and top.residual > top.tol
    assert top.upper == math.inf
    assert pl.step_size_condition(0.5 / top.beta, top).holds is None  # looks fine, but nothing is certified
    assert "not certified" in str(pl.step_size_condition(0.5 / top.beta, top))
    assert pl.step_size_condition(2.0 / top.beta, top).holds is False  # β is a lower bound: this fails for sure
    good = pl.hessian_top_eigenvalue(m, X, y)
    assert good.converged and good.beta >= top.beta * (1 - 1e-9)  # the unconverged β was a lower bound
    assert pl.step_size_condition(0.5 / good.beta, good).holds is True


# --------------------------------------------------------------------------- diagnostics leave the model untouched


def _mlp_state(be, dev):
    m, X, y = _problem(dict(d_in=3, width=5, depth=3, d_out=2, n=4, seed=11), be, dev)
    return m, X, y, dict(d_in=3, n=6, k=2)


def _resnet_state(be, dev):
    m = resnet(3, 2, widths=(4, 8), image_size=8, seed=5, dtype="float64", backend=be)  # training mode
    X, y = dev(gaussian(1, 4, 3, 8, 8)), dev(gaussian(2, 4, 2))
    return m, X, y, dict(shape=(3, 8, 8), n=6, k=2)


DIAGNOSTICS = {
    "loss_and_gradient": lambda m, X, y: pl.loss_and_gradient(m, X, y),
    "hessian_vector_product": lambda m, X, y: pl.hessian_vector_product(
        m, X, y, to_device(gaussian(4, num_params(m.params)), m.backend)),
    "hessian_top_eigenvalue": lambda m, X, y: pl.hessian_top_eigenvalue(m, X, y, ncv=4, maxiter=2, tol=1e-3),
    "descent_lemma_step": lambda m, X, y: pl.descent_lemma_step(m, X, y, 0.1, 1.0),
    "pl_diagnostics": lambda m, X, y: pl.pl_diagnostics(m, X, y),
    "empirical_ntk": lambda m, X, y: ntk.empirical_ntk(m, X),
    "jacobian": lambda m, X, y: ntk.jacobian(m, X),
}


@pytest.mark.parametrize("name", sorted(DIAGNOSTICS))
@pytest.mark.parametrize("kind", ["mlp", "resnet"])
def test_diagnostics_leave_the_model_exactly_as_they_found_it(kind, name, be, dev):
    """Parameters, running statistics, mode, ``grads`` and a later ``backward`` are bit-identical.

    The model has been through a forward and backward pass on its own batch
    (``X0``, 6 samples), so it holds gradients and cached activations; the
    diagnostic runs on another batch (``X``, 4 samples).  The training-mode
    ResNet's per-sample diagnostics (the NTK) refuse batch norm in training
    mode, after a forward pass: the model must come back untouched from that too.
    """
    m, X, y, c = (_mlp_state if kind == "mlp" else _resnet_state)(be, dev)
    X0 = dev(gaussian(9, c["n"], *(c["shape"] if kind == "resnet" else (c["d_in"],))))
    dout = dev(gaussian(10, c["n"], c["k"]))
    m.forward(X0)
    m.backward(dout)
    twin = copy.deepcopy(m, {id(m.backend): m.backend})  # the reference: never touched
    mode = [l.training for l in layers.iter_layers(m)]
    try:
        DIAGNOSTICS[name](m, X, y)
    except ValueError as exc:  # the NTK of a training-mode batch norm: refused
        assert kind == "resnet" and name in ("pl_diagnostics", "empirical_ntk", "jacobian"), exc
        assert "evaluation mode" in str(exc)

    def same(a, b):
        return list(a) == list(b) and all(np.array_equal(to_host(a[k]), to_host(b[k])) for k in a)

    assert same(m.params, twin.params)
    if kind == "resnet":
        assert same(m.buffers, twin.buffers)  # running_mean / running_var did not move
    assert [l.training for l in layers.iter_layers(m)] == mode
    assert same(m.grads, twin.grads)
    dx, dx_ref = m.backward(dout, need_dx=True), twin.backward(dout, need_dx=True)  # uses the cached activations
    assert np.array_equal(to_host(dx), to_host(dx_ref))
    assert same(m.grads, twin.grads)


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
    with pytest.raises(ValueError, match="ncv"):
        pl.hessian_top_eigenvalue(m, X, y, ncv=1)
    with pytest.raises(ValueError, match="tol"):
        pl.hessian_top_eigenvalue(m, X, y, tol=0.0)
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
    m64 = ntk.float64_copy(m32)
    top = pl.hessian_top_eigenvalue(m64, X, y)
    ev = np.linalg.eigvalsh(_explicit_hessian(m64, X, y))
    assert top.converged
    assert top.beta == pytest.approx(max(abs(ev[0]), abs(ev[-1])), rel=1e-8)  # as in the float64 test above


def test_hessian_vector_product_is_blind_to_a_nearby_relu_kink(be):
    """A pre-activation 1e-8 from zero: differences at h = 1e-5 straddle the kink.

    With the masks frozen at θ the product is the Hessian of θ's linear piece,
    so it is the same at h = 1e-5 (straddling) and h = 1e-7 (not straddling).
    Unfrozen, the straddling difference would carry the gradient's jump / 2h.
    """
    from minilplr import backend as B
    from minilplr.nn import models
    from minilplr.nn.params import num_params
    from minilplr.theory.pl import hessian_vector_product

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
    from minilplr.nn import models
    from minilplr.train import optim
    from minilplr.theory.ntk import empirical_ntk
    from minilplr.theory.pl import kernel_regime_loss
    from minilplr.train.loops import train_gd

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
