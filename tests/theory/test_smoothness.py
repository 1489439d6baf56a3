"""Theorem 5.4's smoothness side (minilplr.theory.smoothness), as properties in float64.

* a linear model (quadratic loss): the descent lemma (11) fails for an underestimated ``β``;
* Lanczos finds the top eigenvalue of the explicit Hessian (built column by
  column from Hessian–vector products), and of the exact Hessian
  ``[X 1]ᵀ[X 1]/n ⊗ I_K`` of a linear model; ``η ≤ 1/β`` is "not certified"
  when the solver did not converge;
* Hessian–vector products on a float32 model's float64 copy, and next to a ReLU kink.

(11), (14) and the envelope (10) along gradient descent are in test_dynamics.py.
"""
import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from minilplr.nn import models
from minilplr.theory import ntk, pl, smoothness, spectrum
from minilplr.backend import to_device, to_host
from minilplr.nn.gradcheck import numerical_jvp_columns, rel_error
from minilplr.nn.params import num_params
from minilplr.nn.state import float64_copy

from ..strategies import gaussian, linear_problem, mlp_configs, mlp_problem, seeds


def test_descent_lemma_fails_for_a_too_small_beta(be, dev):
    m, X, y = linear_problem(0, 3, 4, 1, be, dev)
    beta = pl.gauss_newton_smoothness(spectrum.ntk_spectrum(ntk.empirical_ntk(m, X)), 3)
    assert smoothness.descent_lemma_step(m, X, y, 1.9 / beta, beta).holds
    assert not smoothness.descent_lemma_step(m, X, y, 1.9 / beta, 0.01 * beta).holds  # β underestimated


# --------------------------------------------------------------------------- the Hessian


def _explicit_hessian(m, X, y):
    """``H (P, P)`` on the host: column ``p`` is ``smoothness.hessian_vector_product`` of ``e_p``; symmetrised."""
    be = m.backend
    P = num_params(m.params)
    H = np.stack([to_host(smoothness.hessian_vector_product(m, X, y, to_device(e, be))) for e in np.eye(P)], axis=1)
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
    m, X, y = mlp_problem(cfg, be, dev, y_scale=y_scale)
    ev = np.linalg.eigvalsh(_explicit_hessian(m, X, y))
    ref = max(abs(ev[0]), abs(ev[-1]))
    assume(ref > 1e-6)  # a dead network has H ≈ 0: nothing to find
    small = smoothness.hessian_top_eigenvalue(m, X, y, ncv=min(ncv, num_params(m.params)))
    top = smoothness.hessian_top_eigenvalue(m, X, y)
    for t in (small, top):
        assert t.beta <= ref * (1 + 1e-9)  # a Rayleigh quotient: a lower bound (up to the products' error, ~1e-10)
        assert not t.converged or t.residual <= t.tol  # converged means the measured residual is within tol
    assert small.converged or smoothness.step_size_condition(0.5 / small.beta, small).holds is None
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
    m, X, y = linear_problem(seed, n, d, k, be, dev)
    Xh = gaussian(seed + 1, n, d)
    A1 = np.hstack([Xh, np.ones((n, 1))])  # [X 1] (N, D+1)
    H = np.kron(A1.T @ A1 / n, np.eye(k))  # (P, P), P = (D+1)·K
    v = gaussian(seed + 3, (d + 1) * k)
    Hv = to_host(smoothness.hessian_vector_product(m, X, y, dev(v)))
    # a quadratic: differences exact up to rounding ε‖∇L‖/(h‖Hv‖); seen ≤ 2e-10 (median 4e-12) over 300 draws
    assert rel_error(Hv, H @ v) < 1e-8
    top = smoothness.hessian_top_eigenvalue(m, X, y)
    beta = np.linalg.eigvalsh(H)[-1]  # PSD: the top eigenvalue is the top |eigenvalue|
    assert top.converged
    assert top.beta == pytest.approx(beta, rel=1e-9)  # seen ≤ 4e-11 (median 4e-12) over 200 draws


def test_step_size_condition_is_not_certified_without_convergence(be, dev):
    m, X, y = mlp_problem(dict(d_in=4, width=6, depth=3, d_out=2, n=5, seed=3), be, dev)
    top = smoothness.hessian_top_eigenvalue(m, X, y, ncv=2, maxiter=1, tol=1e-12)  # too small a budget to converge
    assert not top.converged and top.residual > top.tol
    assert top.upper == math.inf
    assert smoothness.step_size_condition(0.5 / top.beta, top).holds is None  # looks fine, but nothing is certified
    assert "not certified" in str(smoothness.step_size_condition(0.5 / top.beta, top))
    assert smoothness.step_size_condition(2.0 / top.beta, top).holds is False  # β is a lower bound: this fails for sure
    good = smoothness.hessian_top_eigenvalue(m, X, y)
    assert good.converged and good.beta >= top.beta * (1 - 1e-9)  # the unconverged β was a lower bound
    assert smoothness.step_size_condition(0.5 / good.beta, good).holds is True


# --------------------------------------------------------------------------- bad input, float32, kinks


def test_bad_arguments_raise_clear_errors(be, dev):
    m = models.mlp(2, 3, 2, 1, seed=0, dtype="float64", backend=be)
    X, y = dev(gaussian(0, 3, 2)), dev(gaussian(1, 3, 1))
    with pytest.raises(ValueError, match="eta"):
        smoothness.step_size_condition(0.0, 1.0)
    with pytest.raises(ValueError, match="float64"):
        smoothness.hessian_top_eigenvalue(models.mlp(2, 3, 2, 1, seed=0, backend=be), X, y)
    with pytest.raises(ValueError, match="ncv"):
        smoothness.hessian_top_eigenvalue(m, X, y, ncv=1)
    with pytest.raises(ValueError, match="tol"):
        smoothness.hessian_top_eigenvalue(m, X, y, tol=0.0)
    with pytest.raises(ValueError, match="v: expected"):
        smoothness.hessian_vector_product(m, X, y, dev(np.ones(3)))


def test_hessian_on_a_float32_model_via_float64_copy(be, dev):
    m32 = models.mlp(2, 3, 2, 1, seed=0, backend=be)
    X, y = dev(gaussian(0, 4, 2)), dev(gaussian(1, 4, 1))
    m64 = float64_copy(m32)
    top = smoothness.hessian_top_eigenvalue(m64, X, y)
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
    from minilplr.theory.smoothness import hessian_vector_product

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
