r"""Initialisations of ``W₁ (D, H)``, ``W₂ (K, H)`` and the synthetic regression data.

Drawn on the host in float64 from a seeded generator (so every backend starts
from the same weights); :func:`make_network` moves them to the device once.

* :func:`gaussian_init` — ``N(0, H^{−2p})`` entries, ``1/4 < p < 1/2`` (THEORY.md §2).
  For ``H ≫ D, K`` the singular values of ``W₁`` concentrate at
  ``H^{−p}(√H ± √D)``, so ``σ²(𝒯₀) ∈ H^{1−2p}[(1 − √(D/H))², (1 + √(D/H))²]·2``
  and ``κ(𝒯₀) → 1`` as ``H`` grows.
* :func:`imbalance_init` — the 2023 experiments' imbalance-controlled start.
* :func:`synthetic_regression` — ``X`` with orthonormal columns, ``Y = XW_⋆``,
  ``W_⋆ ~ N(0, 1/D)`` (the 2023 experiments; THEORY.md §2).
"""
from __future__ import annotations

import math

import numpy as np

from ...backend import get_backend, resolve_dtype, to_device
from ...nn.init import gaussian_power
from ...validate import check_int, check_positive
from .model import LeastSquares, TwoLayerLinear

__all__ = ["gaussian_init", "imbalance_init", "imbalance_ratio", "synthetic_regression", "make_network"]


def gaussian_init(n: int, m: int, h: int, p: float, rng: np.random.Generator):
    r"""``W₁, W₂`` with i.i.d. ``N(0, H^{−2p})`` entries (THEORY.md §2).

    Each is the engine's :func:`minilplr.nn.init.gaussian_power`; this adds the
    pair's shapes and holds ``p`` to the paper's range.

    .. math:: [W_1]_{ij}, [W_2]_{ij} \sim \mathcal N(0, H^{-2p}), \qquad \tfrac14 < p < \tfrac12

    The paper needs ``1/4 < p < 1/2`` (the init is large enough that
    ``σ_min(𝒯₀) > 0`` dominates, small enough that ``W₀ = W₁W₂ᵀ`` is ``o(1)``).

    Returns host float64 arrays ``(D, H)`` and ``(K, H)``.
    """
    n, m, h = check_int("n", n, 1), check_int("m", m, 1), check_int("h", h, 1)
    if not (0.25 < float(p) < 0.5):
        raise ValueError(f"p: expected 1/4 < p < 1/2 (the paper's range), got {p!r}")
    W1 = gaussian_power(n, h, rng, h=h, p=float(p))
    W2 = gaussian_power(m, h, rng, h=h, p=float(p))
    return W1, W2


def imbalance_ratio(sigma: float) -> float:
    r"""``r`` with ``r² − r^{−2} = σ``: ``r = √((σ + √(σ² + 4))/2)``."""
    return math.sqrt((sigma + math.sqrt(sigma * sigma + 4.0)) / 2.0)


def imbalance_init(n: int, m: int, h: int, sigma: float, rng: np.random.Generator, scale: float = 1.0):
    r"""The 2023 experiments' imbalance-controlled initialisation.

    ``U (D, H)``, ``V (K, H)`` with ``N(0, scale²)`` entries and
    ``W₁ = r U``, ``W₂ = V / r`` with ``r² − r^{−2} = σ`` (:func:`imbalance_ratio`),
    as in the public code of Xu et al. (2023) (``scale = 1`` there).  The
    product ``W₁W₂ᵀ = UVᵀ`` does not depend on ``σ``, only the imbalance does:

    .. math:: \mathbb E[\mathcal D(0)] = \mathrm{scale}^2\,(D r^2 - K r^{-2})\, I_H
              \;=\; \mathrm{scale}^2\, D\,\sigma\, I_H \quad (D = K).

    Returns host float64 arrays ``(D, H)`` and ``(K, H)``.
    """
    n, m, h = check_int("n", n, 1), check_int("m", m, 1), check_int("h", h, 1)
    if not (float(sigma) >= 0.0) or math.isinf(sigma):
        raise ValueError(f"sigma: expected a finite imbalance level >= 0, got {sigma!r}")
    scale = check_positive("scale", scale)
    r = imbalance_ratio(float(sigma))
    U = rng.standard_normal((n, h)) * scale
    V = rng.standard_normal((m, h)) * scale
    return r * U, V / r


def synthetic_regression(N: int, n: int, m: int, rng: np.random.Generator, x_cond: float = 1.0):
    r"""The 2023 synthetic data: ``X (N, D)``, ``Y = XW_⋆ (N, K)``, ``W_⋆ (D, K) ~ N(0, 1/D)``.

    ``X`` has orthonormal columns (``x_cond = 1``, THEORY.md §2: ``μ_ℓ = β_ℓ = 1``)
    or, for ``x_cond > 1``, singular values spread evenly in ``[1, x_cond]``
    (``μ_ℓ = 1``, ``β_ℓ = x_cond²``; our addition).  Needs ``N ≥ D``.  Host float64.
    """
    N, n, m = check_int("N", N, 1), check_int("n", n, 1), check_int("m", m, 1)
    if N < n:
        raise ValueError(f"N: expected at least n = {n} samples for a full-column-rank X, got {N}")
    x_cond = check_positive("x_cond", x_cond)
    if x_cond < 1.0:
        raise ValueError(f"x_cond: expected a condition number >= 1, got {x_cond!r}")
    Q, _ = np.linalg.qr(rng.standard_normal((N, n)))  # orthonormal columns
    if x_cond != 1.0:
        R, _ = np.linalg.qr(rng.standard_normal((n, n)))
        Q = Q @ np.diag(np.linspace(x_cond, 1.0, n)) @ R.T
    theta = rng.standard_normal((n, m)) / math.sqrt(n)
    return Q, Q @ theta


def make_network(X, Y, W1, W2, backend=None, dtype="float64", lam: float | None = None) -> TwoLayerLinear:
    """Host arrays -> a :class:`TwoLayerLinear` on ``backend`` in ``dtype`` (least squares, or ridge if ``lam``).

    ``X (N, D)``, ``Y (N, K)``, ``W1 (D, H)``, ``W2 (K, H)``; the weights are copied.
    """
    from .model import RidgeLeastSquares

    be = get_backend(backend)
    dt = resolve_dtype(dtype)
    Xd, Yd = to_device(X, be, dt), to_device(Y, be, dt)
    loss = LeastSquares(Xd, Yd) if lam is None else RidgeLeastSquares(Xd, Yd, lam)
    # Copies: GD updates the weights in place and must not touch the caller's host arrays.
    return TwoLayerLinear(loss, to_device(np.array(W1), be, dt), to_device(np.array(W2), be, dt))
