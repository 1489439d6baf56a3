r"""The operator ``𝒯`` that turns ``∇ℓ`` into ``∇L``, and its singular values.

THEORY.md §2.  For fixed weights, the gradient of the overparametrised loss is
a linear image of the gradient of the plain loss:

.. math:: \nabla L(W_1, W_2) = \mathcal T(\nabla \ell(W)), \qquad
          \mathcal T(G) = (G W_2,\; G^\top W_1),

``𝒯 : ℝ^{D×K} → ℝ^{D×H} × ℝ^{K×H}``.  Its adjoint is
``𝒯*(A, B) = A W₂ᵀ + W₁ Bᵀ``, so

.. math:: \mathcal T^*\mathcal T(G) = W_1 W_1^\top G + G\, W_2 W_2^\top ,

a Sylvester operator whose eigenvalues are all sums ``λ_i(W₁W₁ᵀ) + λ_j(W₂W₂ᵀ)``.
Hence (THEORY.md §2)

.. math:: \sigma^2_{\min}(\mathcal T) = \lambda_{\min}(W_1W_1^\top) + \lambda_{\min}(W_2W_2^\top)
          = \sigma_D(W_1)^2 + \sigma_K(W_2)^2,\qquad
          \sigma^2_{\max}(\mathcal T) = \lVert W_1\rVert^2 + \lVert W_2\rVert^2

(``σ_D(W₁) = 0`` when ``H < D``).  Only the small Gram matrices ``W₁W₁ᵀ (D, D)``
and ``W₂W₂ᵀ (K, K)`` are needed, whatever ``H``.  :func:`T_matrix` builds
``𝒯`` as an explicit ``(D·H + K·H) × D·K`` matrix so that a test can check the
closed form against a plain SVD.
"""
from __future__ import annotations

from ...backend import get_array_module, to_scalar

__all__ = ["apply_T", "apply_T_adjoint", "T_matrix", "sigma2_T", "sigma2_T_spectrum", "kappa_T"]


def apply_T(G, W1, W2):
    r"""``𝒯(G) = (G W₂, Gᵀ W₁)``: ``G (D, K)`` -> ``((D, H), (K, H))``."""
    return G @ W2, G.T @ W1


def apply_T_adjoint(A, B, W1, W2):
    r"""``𝒯*(A, B) = A W₂ᵀ + W₁ Bᵀ``: ``A (D, H)``, ``B (K, H)`` -> ``(D, K)``.

    The adjoint in the Frobenius inner product:
    ``⟨𝒯(G), (A, B)⟩ = tr(W₂ᵀGᵀA) + tr(W₁ᵀGBᵀ) = ⟨G, AW₂ᵀ + W₁Bᵀ⟩``.
    It is also the differential of ``W = W₁W₂ᵀ`` in the direction ``(A, B)``.
    """
    return A @ W2.T + W1 @ B.T


def T_matrix(W1, W2):
    r"""``𝒯`` as an explicit matrix of shape ``(D·H + K·H, D·K)`` (small sizes only).

    Column ``i·K + j`` is ``𝒯(E_ij)`` flattened in C order (first the ``D×H``
    block ``E_ij W₂``, then the ``K×H`` block ``E_ijᵀ W₁``), so that
    ``T_matrix @ G.reshape(-1)`` equals the concatenation of ``𝒯(G)``'s blocks.
    """
    xp = get_array_module(W1, W2)
    n, m = W1.shape[0], W2.shape[0]
    E = xp.eye(n * m, dtype=W1.dtype).reshape(n * m, n, m)  # the basis E_ij, (n·m, n, m)
    top = (E @ W2).reshape(n * m, -1)  # E_ij W₂, flattened
    bottom = (xp.transpose(E, (0, 2, 1)) @ W1).reshape(n * m, -1)  # E_ijᵀ W₁, flattened
    return xp.concatenate([top, bottom], axis=1).T


def _gram_eigs(W1, W2):
    """Ascending eigenvalues of ``W₁W₁ᵀ (D, D)`` and ``W₂W₂ᵀ (K, K)``, clipped at 0."""
    xp = get_array_module(W1, W2)
    e1 = xp.linalg.eigvalsh(W1 @ W1.T)
    e2 = xp.linalg.eigvalsh(W2 @ W2.T)
    return xp.maximum(e1, 0.0), xp.maximum(e2, 0.0)


def sigma2_T(W1, W2) -> tuple[float, float]:
    r"""``(σ²_min(𝒯), σ²_max(𝒯))`` from the closed form (THEORY.md §2).

    .. math:: \sigma^2_{\min}(\mathcal T) = \sigma_D(W_1)^2 + \sigma_K(W_2)^2, \qquad
              \sigma^2_{\max}(\mathcal T) = \lVert W_1\rVert_2^2 + \lVert W_2\rVert_2^2

    Parameters
    ----------
    W1 : array (D, H), W2 : array (K, H)

    Returns
    -------
    (float, float)
        Host scalars (one device sync).
    """
    e1, e2 = _gram_eigs(W1, W2)
    return to_scalar(e1[0] + e2[0]), to_scalar(e1[-1] + e2[-1])


def sigma2_T_spectrum(W1, W2):
    r"""All ``D·K`` squared singular values of ``𝒯``, ascending: ``{λ_i(W₁W₁ᵀ) + λ_j(W₂W₂ᵀ)}``.

    Returns an array ``(D·K,)`` on the weights' backend.
    """
    xp = get_array_module(W1, W2)
    e1, e2 = _gram_eigs(W1, W2)
    return xp.sort((e1[:, None] + e2[None, :]).reshape(-1))


def kappa_T(W1, W2) -> float:
    r"""Condition number ``κ(𝒯) = σ_max(𝒯) / σ_min(𝒯)`` (``inf`` if ``σ_min(𝒯) = 0``).

    The paper's ratio ``α₁/α₂`` of the bounds on ``σ²_min`` and ``σ²_max`` is
    ``1/κ(𝒯)²`` at initialisation.
    """
    s2min, s2max = sigma2_T(W1, W2)
    return float("inf") if s2min <= 0 else (s2max / s2min) ** 0.5
