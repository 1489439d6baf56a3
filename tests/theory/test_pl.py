"""Theorem 5.1's PL diagnostics (minilplr.theory.pl), as properties in float64.

* ``∇L = (1/n) Jᵀ r`` against the backward pass;
* ``½‖∇L‖² ≥ (λ_min(Θ)/n)·L`` and every step (6)–(9) of the proof, for drawn
  MLPs, data and seeds; a wrong ``λ`` makes the check fail;
* a singular Θ is reported unresolved and the inequalities stay consistent;
* every diagnostic of the theory (PL, smoothness, the NTK) leaves the model
  (an MLP, a training-mode ResNet) exactly as it found it.

Theorem 5.4 (β, the descent lemma) is tested in test_smoothness.py, the
envelope, the kernel regime and drift in test_dynamics.py.
"""
import copy
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minilplr.nn import models, state
from minilplr.theory import ntk, pl, smoothness, spectrum
from minilplr.backend import to_device, to_host
from minilplr.nn.resnet import resnet
from minilplr.nn.gradcheck import rel_error
from minilplr.nn.losses import mse
from minilplr.nn.params import num_params

from ..strategies import gaussian, mlp_configs, mlp_problem


@given(cfg=mlp_configs(max_depth=4, max_width=7, max_n=6, max_d=5, max_k=3))
def test_gradient_is_jacobian_transpose_residual_over_n(cfg, be, dev):
    m, X, y = mlp_problem(cfg, be, dev)
    lg = pl.loss_and_gradient(m, X, y)
    J = ntk.jacobian(m, X)
    assert lg.n == cfg["n"] and lg.r.shape == (cfg["n"] * cfg["d_out"],)
    assert rel_error(pl.gradient_from_jacobian(J, lg.r, lg.n), lg.grad) < 1e-12
    assert lg.loss == pytest.approx(to_host(lg.r) @ to_host(lg.r) / (2 * cfg["n"]), rel=1e-12)  # ‖r‖² = 2nL


@given(cfg=mlp_configs(max_depth=4, max_width=8, max_n=6, max_d=5, max_k=3), frac=st.floats(0, 1))
def test_pl_inequality_and_every_proof_step_hold(cfg, frac, be, dev):
    m, X, y = mlp_problem(cfg, be, dev)
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
    m, X, y = mlp_problem(cfg, be, dev)
    lg = pl.loss_and_gradient(m, X, y)
    theta = ntk.empirical_ntk(m, X)
    spec = spectrum.ntk_spectrum(theta)
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

# --------------------------------------------------------------------------- diagnostics leave the model untouched


def _mlp_state(be, dev):
    m, X, y = mlp_problem(dict(d_in=3, width=5, depth=3, d_out=2, n=4, seed=11), be, dev)
    return m, X, y, dict(d_in=3, n=6, k=2)


def _resnet_state(be, dev):
    m = resnet(3, 2, widths=(4, 8), image_size=8, seed=5, dtype="float64", backend=be)  # training mode
    X, y = dev(gaussian(1, 4, 3, 8, 8)), dev(gaussian(2, 4, 2))
    return m, X, y, dict(shape=(3, 8, 8), n=6, k=2)


DIAGNOSTICS = {
    "loss_and_gradient": lambda m, X, y: pl.loss_and_gradient(m, X, y),
    "hessian_vector_product": lambda m, X, y: smoothness.hessian_vector_product(
        m, X, y, to_device(gaussian(4, num_params(m.params)), m.backend)),
    "hessian_top_eigenvalue": lambda m, X, y: smoothness.hessian_top_eigenvalue(m, X, y, ncv=4, maxiter=2, tol=1e-3),
    "descent_lemma_step": lambda m, X, y: smoothness.descent_lemma_step(m, X, y, 0.1, 1.0),
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
    mode = [l.training for l in state.iter_layers(m)]
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
    assert [l.training for l in state.iter_layers(m)] == mode
    assert same(m.grads, twin.grads)
    dx, dx_ref = m.backward(dout, need_dx=True), twin.backward(dout, need_dx=True)  # uses the cached activations
    assert np.array_equal(to_host(dx), to_host(dx_ref))
    assert same(m.grads, twin.grads)


# --------------------------------------------------------------------------- small facts and bad input


def test_pl_ratio_values(be, dev):
    g = dev(np.array([3.0, 4.0]))
    assert pl.pl_ratio(g, 2.0, 0.5) == pytest.approx(25.0 / 3.0)
    assert math.isnan(pl.pl_ratio(g, 1.0, 1.0))  # undefined at the minimum


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
    with pytest.raises(ValueError, match="r: expected"):
        pl.pl_step6_rayleigh(dev(np.eye(2)), dev(np.ones(3)), 0.1)
    with pytest.raises(ValueError, match="y: expected"):
        pl.loss_and_gradient(m, X, dev(np.ones((3, 2))))
