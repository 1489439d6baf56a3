"""The operator ``T(G) = (GW₂, GᵀW₁)`` (:mod:`minilplr.theory.linear.operator`): its explicit matrix,
singular values, ``κ(T)``, its adjoint, and ``∇L = T(∇ℓ)``.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from minilplr import backend as B
from minilplr.nn.gradcheck import rel_error
from minilplr.theory.linear import apply_T, apply_T_adjoint, kappa_T, sigma2_T, sigma2_T_spectrum, T_matrix

from ...helpers import two_layer_linear
from ...strategies import linear_problems


def _S(x):
    return B.to_scalar(x)


def _host(x):
    return B.to_host(x)


@given(linear_problems(max_n=3, max_m=3, max_h=5))
def test_sigma_T_closed_form_matches_explicit_matrix(be, dev, cfg):
    net = two_layer_linear(cfg, dev, be)
    xp = be.xp
    M = T_matrix(net.W1, net.W2)
    n, m, h = cfg["n"], cfg["m"], cfg["h"]
    assert tuple(M.shape) == (n * h + m * h, n * m)
    # the explicit matrix acts as T
    G = dev(np.random.default_rng(cfg["seed"] + 1).standard_normal((n, m)))
    A, Bm = apply_T(G, net.W1, net.W2)
    assert rel_error(M @ G.reshape(-1), xp.concatenate([A.reshape(-1), Bm.reshape(-1)])) < 1e-12
    # its squared singular values are all sums λ_i(W₁W₁ᵀ) + λ_j(W₂W₂ᵀ)
    sv = xp.linalg.svd(M, compute_uv=False)  # min(rows, n·m) values; the rest are 0
    sv2 = xp.sort(xp.concatenate([sv ** 2, xp.zeros(n * m - sv.shape[0])]))
    spec = sigma2_T_spectrum(net.W1, net.W2)
    scale = _S(spec[-1]) + 1e-300
    assert _S(xp.abs(sv2 - spec).max()) <= 1e-10 * scale
    s2min, s2max = sigma2_T(net.W1, net.W2)
    assert abs(s2min - _S(sv2[0])) <= 1e-10 * scale
    assert abs(s2max - _S(sv2[-1])) <= 1e-10 * scale
    # σ²_max(T) = ‖W₁‖² + ‖W₂‖²
    w1 = _S(xp.linalg.svd(net.W1, compute_uv=False)[0])
    w2 = _S(xp.linalg.svd(net.W2, compute_uv=False)[0])
    assert abs(s2max - (w1 ** 2 + w2 ** 2)) <= 1e-10 * scale


@given(linear_problems(max_n=3, max_m=3, max_h=1))
def test_kappa_T_matches_the_explicit_operator(be, dev, cfg):
    """``κ(T₀) = σ_max/σ_min`` of the explicit ``(n·h + m·h) × n·m`` matrix of ``T``, by a plain SVD.

    ``h ≥ n + m`` so that ``σ_min(T) > 0``.  The SVD's singular values carry
    an absolute error ~``nε σ_max``, the closed form's ``σ²_min`` an absolute
    error ~``nε σ²_max``; both give ``κ`` to ~``nε κ²`` relative, so
    ``1e-12 κ²`` (about 50ε κ²) bounds the difference.
    """
    rng = np.random.default_rng(cfg["seed"])
    n, m = cfg["n"], cfg["m"]
    h = n + m + int(rng.integers(0, 4))
    W1 = dev(rng.standard_normal((n, h)) * cfg["scale"])
    W2 = dev(rng.standard_normal((m, h)) * cfg["scale"])
    sv = _host(be.xp.linalg.svd(T_matrix(W1, W2), compute_uv=False))
    assert sv.shape == (n * m,) and sv[-1] > 0
    explicit = sv[0] / sv[-1]
    kappa = kappa_T(W1, W2)
    assert kappa == pytest.approx(explicit, rel=1e-12 * explicit ** 2)
    assert kappa >= 1.0


@given(linear_problems())
def test_T_adjoint_and_gradient_is_T_of_grad_ell(be, dev, cfg):
    net = two_layer_linear(cfg, dev, be)
    rng = np.random.default_rng(cfg["seed"] + 2)
    G = dev(rng.standard_normal((cfg["n"], cfg["m"])))
    A = dev(rng.standard_normal((cfg["n"], cfg["h"])))
    Bm = dev(rng.standard_normal((cfg["m"], cfg["h"])))
    TA, TB = apply_T(G, net.W1, net.W2)
    lhs = _S((TA * A).sum() + (TB * Bm).sum())
    rhs = _S((G * apply_T_adjoint(A, Bm, net.W1, net.W2)).sum())
    assert abs(lhs - rhs) <= 1e-10 * (abs(lhs) + abs(rhs) + 1.0)
    net.backward()
    g1, g2 = apply_T(net.grad_ell, net.W1, net.W2)
    assert rel_error(g1, net.grads["W1"]) < 1e-13 and rel_error(g2, net.grads["W2"]) < 1e-13
