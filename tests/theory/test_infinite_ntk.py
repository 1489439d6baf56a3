"""The infinite-width NTK of the ReLU MLP (minilplr.theory.infinite_ntk), in float64.

* each step of the recursion: R1 against the covariance of ``x W`` with He
  weights, R2 and R3 (the arc-cosine expectations) against Monte Carlo (with
  its standard error) and against 1-D quadrature (to ~1e-10), R4 against
  its unrolled per-layer sum and He's closed-form diagonal;
* ``K`` outputs give ``Θ_∞ ⊗ I_K``, the limit of the rescaled kernel of ``K`` outputs;
* bad input.

The finite-width side (each layer's share, the rescaled kernel and its
convergence at rate ``H^{−1/2}``, depth 1 exactly) is tested in test_ntk_shares.py.
"""
import math

import numpy as np
import pytest
from scipy import integrate, stats

from minilplr.backend import to_host
from minilplr.nn.init import he_normal
from minilplr.nn.models import mlp
from minilplr.theory import infinite_ntk as inf
from minilplr.theory import ntk_shares as shares

# (Σ_xx, Σ_x'x', ρ): correlations across [−1, 1], unequal variances, the diagonal itself
PAIRS = [(1.0, 1.0, 0.0), (2.0, 0.5, 0.6), (0.7, 1.3, -0.8), (1.5, 1.5, 0.97), (2.0, 3.0, -0.3), (1.0, 1.0, 1.0)]


def _cov(a, b, rho):
    c = rho * math.sqrt(a * b)
    return np.array([[a, c], [c, b]])


def _relu_mean(mu, s):
    """``E[φ(w)]`` for ``w ~ N(mu, s²)`` (``s ≥ 0``)."""
    if s == 0:
        return max(mu, 0.0)
    return mu * stats.norm.cdf(mu / s) + s * stats.norm.pdf(mu / s)


def _quadrature(a, b, rho):
    """``(E[φ(u)φ(v)], P(u > 0, v > 0))`` by 1-D quadrature over ``u = √a z``, ``v | z ~ N(√b ρ z, b(1−ρ²))``."""
    s = math.sqrt(b * max(1 - rho * rho, 0.0))
    f = lambda z: math.sqrt(a) * z * _relu_mean(math.sqrt(b) * rho * z, s) * stats.norm.pdf(z)  # noqa: E731
    g = lambda z: (stats.norm.cdf(math.sqrt(b) * rho * z / s) if s > 0 else float(rho > 0)) * stats.norm.pdf(z)  # noqa: E731
    return (integrate.quad(f, 0, np.inf, epsabs=1e-13, epsrel=1e-12)[0],
            integrate.quad(g, 0, np.inf, epsabs=1e-13, epsrel=1e-12)[0])


# --------------------------------------------------------------------------- (a) each step of the recursion


def test_R1_input_kernel_is_the_covariance_of_he_preactivations(be, dev):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 7))
    H = 200_000
    W = he_normal(7, H, rng)  # minilplr's own initialiser, W ~ N(0, 2/D); b = 0
    Z = X @ W  # (N, H): H independent draws of z^(1)
    prods = Z[:, None, :] * Z[None, :, :]  # (N, N, H)
    mc, se = prods.mean(-1), prods.std(-1) / math.sqrt(H)
    got = to_host(inf.input_kernel(dev(X)))
    assert np.all(np.abs(got - mc) <= 5 * se), np.max(np.abs(got - mc) / se)  # seen: ≤ 2.6 SE
    assert np.allclose(got, 2 / 7 * X @ X.T, rtol=1e-14)


@pytest.mark.parametrize("a, b, rho", PAIRS)
def test_R2_R3_arc_cosine_expectations_match_monte_carlo(a, b, rho, dev):
    n = 1_000_000
    rng = np.random.default_rng(int(1000 * (a + b + rho) + 7))
    z1, z2 = rng.standard_normal((2, n))
    u, v = math.sqrt(a) * z1, math.sqrt(b) * (rho * z1 + math.sqrt(1 - rho * rho) * z2)  # (u, v) ~ N(0, Λ)
    relu = 2 * np.maximum(u, 0) * np.maximum(v, 0)  # σ² φ(u)φ(v), He's σ² = 2
    step = 2 * ((u > 0) & (v > 0))  # σ² φ'(u)φ'(v)
    S = dev(_cov(a, b, rho))
    nngp = to_host(inf.relu_nngp_step(S))
    dot = to_host(inf.relu_derivative_step(S))
    for got, samples in ((nngp[0, 1], relu), (dot[0, 1], step)):
        se = samples.std() / math.sqrt(n)
        assert abs(got - samples.mean()) <= 5 * se, (got, samples.mean(), se)  # seen: ≤ 2.5 SE
    # the diagonal: Σ^(l+1)(x, x) = σ²·Σ_xx/2 = Σ_xx and Σ̇(x, x) = σ²/2 = 1 for He
    assert nngp[0, 0] == pytest.approx(a, rel=1e-14) and nngp[1, 1] == pytest.approx(b, rel=1e-14)
    assert dot[0, 0] == pytest.approx(1.0, rel=1e-14) and dot[1, 1] == pytest.approx(1.0, rel=1e-14)


@pytest.mark.parametrize("a, b, rho", PAIRS)
@pytest.mark.parametrize("weight_var", [2.0, 0.7])
def test_R2_R3_match_quadrature_in_float64(a, b, rho, weight_var, dev):
    e_relu, p_pos = _quadrature(a, b, rho)
    S = dev(_cov(a, b, rho))
    assert to_host(inf.relu_nngp_step(S, weight_var))[0, 1] == pytest.approx(weight_var * e_relu, rel=1e-9, abs=1e-12)
    assert to_host(inf.relu_derivative_step(S, weight_var))[0, 1] == pytest.approx(weight_var * p_pos, rel=1e-9, abs=1e-12)


def test_R4_recursion_equals_per_layer_shares_and_he_diagonal(dev):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((7, 4))
    X[2] *= 3.0  # unequal norms
    for L in (1, 2, 3, 6):
        theta = to_host(inf.infinite_ntk(dev(X), L))
        S, P = (to_host(a) for a in inf.infinite_ntk_shares(dev(X), L))
        assert np.allclose(theta, (S + P).sum(0), rtol=1e-13, atol=0)
        # He: Σ^(l)(x,x) = 2‖x‖²/D and Σ̇(x,x) = 1 at every layer, so Θ_∞(x,x) = L (2‖x‖²/D + 1)
        assert np.allclose(np.diag(theta), L * (2 * (X * X).sum(1) / 4 + 1), rtol=1e-13)
        assert np.allclose(theta, theta.T, rtol=0, atol=1e-13)
        lam = np.linalg.eigvalsh(theta)
        # L = 1: (2/D) XXᵀ + 1 has rank ≤ D + 1 = 5 < N = 7; deeper, the ReLU kernel is positive definite
        assert lam[0] > (1e-3 * lam[-1] if L > 1 else -1e-13 * lam[-1]), (L, lam[:2])
    # one explicit step of R4 against the formula
    sig1 = inf.input_kernel(dev(X))
    step = to_host(inf.ntk_step(sig1 + 1.0, inf.relu_derivative_step(sig1), inf.relu_nngp_step(sig1)))
    assert np.allclose(step, to_host(inf.infinite_ntk(dev(X), 2)), rtol=1e-14)


def test_zero_input_gets_zero_kernel(dev):
    X = np.array([[0.0, 0.0], [1.0, 2.0]])
    S = inf.input_kernel(dev(X))
    assert np.all(to_host(inf.relu_nngp_step(S))[0] == 0) and np.all(to_host(inf.relu_derivative_step(S))[0] == 0)
    theta = to_host(inf.infinite_ntk(dev(X), 3))
    assert theta[0, 0] == pytest.approx(1.0)  # only the last layer's bias sees a zero input (φ'(0) = 0 below)


# --------------------------------------------------------------------------- (b) K outputs


def test_several_outputs_tend_to_theta_kron_identity(be, dev):
    N, D, L, K = 4, 3, 2, 2
    X = dev(np.random.default_rng(8).standard_normal((N, D)))
    want = inf.infinite_ntk(X, L, d_out=K)
    assert np.allclose(to_host(want), np.kron(to_host(inf.infinite_ntk(X, L)), np.eye(K)))
    err = np.mean([shares.relative_error(shares.scaled_empirical_ntk(mlp(D, 2048, L, K, seed=s, dtype="float64",
                                                                   backend=be), X), want) for s in range(3)])
    assert err < 0.06, err  # seen ≈ 0.03


# --------------------------------------------------------------------------- bad input


def test_bad_arguments_raise_clear_errors(be, dev):
    X = dev(np.ones((3, 2)))
    with pytest.raises(ValueError, match="X: expected a 2-D"):
        inf.infinite_ntk(dev(np.ones(3)), 2)
    with pytest.raises(ValueError, match="X: expected finite"):
        inf.infinite_ntk(dev(np.array([[1.0, np.nan]])), 2)
    with pytest.raises(TypeError, match="X: expected"):
        inf.infinite_ntk([[1.0, 2.0]], 2)
    with pytest.raises(ValueError, match="depth"):
        inf.infinite_ntk(X, 0)
    with pytest.raises(ValueError, match="weight_var"):
        inf.infinite_ntk(X, 2, weight_var=-1.0)
    with pytest.raises(ValueError, match="scaling"):
        inf.infinite_ntk(X, 2, scaling="mup")
    with pytest.raises(ValueError, match="width"):
        inf.infinite_ntk(X, 2, scaling="standard")
    with pytest.raises(ValueError, match="d_out"):
        inf.infinite_ntk(X, 2, d_out=0)
    with pytest.raises(ValueError, match="S: expected a square"):
        inf.relu_nngp_step(dev(np.ones((2, 3))))
    with pytest.raises(ValueError, match="expected one shape"):
        inf.ntk_step(dev(np.ones((2, 2))), dev(np.ones((2, 2))), dev(np.ones((3, 3))))
