"""What gradient descent's trajectory should do (minilplr.theory.dynamics), as properties in float64.

* a linear model (quadratic loss): along gradient descent the descent lemma
  (11), the contraction (14) and the envelope (10) hold, ``β = λ_max(Θ)/n``,
  and the NTK does not drift while the parameters do;
* the kernel-regime loss curve is exact for a linear model;
* drift values, and bad input;
* :class:`KernelMove` equals ``ntk_drift`` and ``symmetric_norm(Θ_t − Θ_0)`` bit for bit.
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minilplr.theory import dynamics, ntk, pl, smoothness, spectrum
from minilplr.backend import to_device, to_host
from minilplr.nn.params import flatten, load_flat, param_drift

from ..strategies import linear_problem, seeds


# --------------------------------------------------------------------------- Theorem 5.4 along GD on a quadratic loss


@given(seed=seeds, d=st.integers(2, 5), k=st.integers(1, 2), data=st.data())
def test_linear_model_rate_envelope_and_constants(seed, d, k, data, be, dev):
    n = data.draw(st.integers(1, d + 1))  # N ≤ D + 1: interpolation possible, L* = 0, λ_min > 0
    m, X, y = linear_problem(seed, n, d, k, be, dev)
    theta0 = ntk.empirical_ntk(m, X)
    spec = spectrum.ntk_spectrum(theta0)
    assume(spec.resolved)  # rows of [X 1] nearly dependent: no μ > 0 to check the rate with
    mu = pl.pl_constant(spec, n)
    beta_gn = pl.gauss_newton_smoothness(spec, n)
    top = smoothness.hessian_top_eigenvalue(m, X, y)
    assert top.converged
    assert top.beta == pytest.approx(beta_gn, rel=1e-9)  # H = JᵀJ/n exactly for a linear model; seen ≤ 4e-11
    eta = 1.0 / top.upper  # the largest step the solver certifies
    assert smoothness.step_size_condition(eta, top).holds is True
    assert smoothness.step_size_condition(2.5 * eta, top).holds is False
    p0 = flatten(m.params)
    losses = [pl.loss_and_gradient(m, X, y).loss]
    floor = 1e-20 * losses[0]  # the loss's rounding floor (reached in one step when N = 1)
    for t in range(8):
        assert smoothness.descent_lemma_step(m, X, y, eta, beta_gn, rtol=1e-9, atol=floor).holds  # (11)
        lg = pl.loss_and_gradient(m, X, y)
        load_flat(m, flatten(m.params) - eta * lg.grad)
        losses.append(pl.loss_and_gradient(m, X, y).loss)
        assert smoothness.contraction_step14(losses[-1], losses[-2], eta, mu, rtol=1e-9, atol=floor).holds  # (14)
    env = dynamics.pl_envelope(np.arange(len(losses)), eta, mu, gap0=losses[0])  # (10)
    assert np.all(np.array(losses) <= env * (1 + 1e-9) + floor)
    assert dynamics.pl_envelope(3, eta, mu, gap0=2.0) == pytest.approx(2.0 * (1 - eta * mu) ** 3)
    # the NTK of a linear model does not move; the parameters do
    drift = dynamics.ntk_drift(ntk.empirical_ntk(m, X), theta0)
    assert drift.frobenius < 1e-12 and drift.spectral < 1e-12
    assert param_drift(m, p0) == pytest.approx(math.sqrt(float(to_host(flatten(m.params) - p0) @ to_host(flatten(m.params) - p0))))


@given(n=st.integers(2, 8), d=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_kernel_regime_loss_is_exact_for_a_linear_model(be, n, d, seed):
    """f(x) = x·w + b is its own linearisation: GD's loss equals the Θ_0 prediction at every step."""
    from minilplr import backend as B
    from minilplr.nn import models
    from minilplr.train import optim
    from minilplr.theory.ntk import empirical_ntk
    from minilplr.theory.dynamics import kernel_regime_loss
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


# --------------------------------------------------------------------------- small facts and bad input


def test_drift_values(be, dev):
    T0 = dev(np.diag([4.0, 1.0]))
    E = dev(np.array([[0.0, 0.3], [0.3, 0.0]]))
    d = dynamics.ntk_drift(T0 + E, T0)
    assert d.frobenius == pytest.approx(math.sqrt(0.18) / math.sqrt(17.0))
    assert d.spectral == pytest.approx(0.3 / 4.0)
    assert param_drift(dev(np.array([1.0, 1.0])), dev(np.array([4.0, 5.0]))) == pytest.approx(5.0)
    # two mappings are compared name by name (whatever their order), anything else after flattening
    a = {"W": dev(np.array([[1.0, 1.0]])), "b": dev(np.array([2.0]))}
    b = {"b": dev(np.array([2.0])), "W": dev(np.array([[4.0, 5.0]]))}
    assert param_drift(a, b) == pytest.approx(5.0)


def test_bad_arguments_raise_clear_errors(be, dev):
    with pytest.raises(ValueError, match="eta, mu"):
        dynamics.pl_envelope(3, 2.0, 1.0)
    with pytest.raises(ValueError, match="t: expected"):
        dynamics.pl_envelope([-1, 2], 0.1, 1.0)
    with pytest.raises(ValueError, match="theta_t"):
        dynamics.ntk_drift(dev(np.eye(2)), dev(np.eye(3)))


def test_kernel_move_is_ntk_drift_and_the_difference_norm_bit_for_bit(be):
    rng = np.random.default_rng(0)
    for n in (3, 40):
        A, B = rng.normal(size=(n, n)), rng.normal(size=(n, n))
        K0 = to_device(A @ A.T, be)
        move = dynamics.KernelMove(K0)
        for s in (1e-6, 0.1, 3.0):
            K = to_device(A @ A.T + s * (B + B.T), be)
            got = move(K)
            drift = dynamics.ntk_drift(K, K0)
            assert got == (drift.frobenius, drift.spectral, spectrum.symmetric_norm(K - K0)), (n, s)
    with pytest.raises(ValueError, match="theta_t: expected shape"):
        move(to_device(np.eye(3), be))
    with pytest.raises(ValueError, match="theta_0: the initial kernel is zero"):
        dynamics.KernelMove(to_device(np.zeros((3, 3)), be))
