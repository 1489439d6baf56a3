r"""Local PL and smoothness constants, and the imbalance, of ``L(W₁, W₂) = ℓ(W₁W₂ᵀ)``.

THEORY.md §2.  ``ℓ`` is μ_ℓ-strongly convex and β_ℓ-smooth; ``L`` is neither
globally PL nor globally smooth, but at the weights of step ``t``

* **local PL** (exact, from ``∇L = 𝒯(∇ℓ)``):
  ``½‖∇L‖² ≥ μ_t (L − L*)`` with ``μ_t = μ_ℓ σ²_min(𝒯_t)``;
* **local smoothness** along the step ``θ → θ − η∇L``: the Hessian of ``L``
  is bounded by ``β_t = β_ℓ σ²_max(𝒯_t) + √(2β_ℓ L(t)) + O(η√L(t))``; the
  ``O(η√L)`` term is lost in our copy and :func:`local_smoothness` derives
  one (reconstruction);
* the **imbalance** ``𝒟 = W₁ᵀW₁ − W₂ᵀW₂`` is constant under gradient flow and
  moves by ``η²`` times the imbalance of the gradient under GD.

Two identities keep every quantity cheap whatever the width ``H``:
``σ(𝒯)`` needs only ``D×D`` and ``K×K`` Gram matrices (:mod:`.operator`), and
the Frobenius norm of an ``H×H`` matrix ``UᵀV`` with few rows in ``U`` and
``V`` is that of a small matrix in a basis of their row space
(:func:`fro_UtV`).  The explicit ``H×H`` forms (:func:`imbalance`,
:func:`imbalance_increment`) are kept for small checks.
"""
from __future__ import annotations

import math

from ...backend import get_array_module, to_scalar
from .operator import sigma2_T

__all__ = [
    "imbalance",
    "imbalance_increment",
    "fro_UtV",
    "imbalance_drift",
    "imbalance_step_norm",
    "imbalance_step_bound",
    "local_pl_constant",
    "local_smoothness",
    "local_smoothness_bound",
    "lr_for_smoothness",
    "descent_bound",
    "pl_contraction_bound",
    "gradient_norm_bound",
    "positive_root",
]


# ---------------------------------------------------------------------------
# Imbalance.
# ---------------------------------------------------------------------------


def imbalance(W1, W2):
    r"""The imbalance ``𝒟 = W₁ᵀW₁ − W₂ᵀW₂`` (THEORY.md §2), shape ``(H, H)``.

    Under gradient flow ``Ẇ₁ = −GW₂``, ``Ẇ₂ = −GᵀW₁`` (``G = ∇ℓ(W₁W₂ᵀ)``):
    ``Ḋ = −W₁ᵀGW₂ − W₂ᵀGᵀW₁ + W₂ᵀGᵀW₁ + W₁ᵀGW₂ = 0``, so ``𝒟`` is conserved.
    Explicit ``H×H`` matrix: for checks on small widths.
    """
    return W1.T @ W1 - W2.T @ W2


def imbalance_increment(dW1, dW2, lr: float):
    r"""The exact one-step change of the imbalance under GD, shape ``(H, H)``.

    With ``W₁' = W₁ − η∇₁``, ``W₂' = W₂ − η∇₂`` (``∇₁ = GW₂``, ``∇₂ = GᵀW₁``)
    the first-order terms cancel as in gradient flow and what is left is

    .. math:: \mathcal D(k+1) - \mathcal D(k) = \eta_k^2\,\big(\nabla_1^\top\nabla_1 - \nabla_2^\top\nabla_2\big),

    ``η²`` times the imbalance of the gradient.  Hence
    ``‖𝒟(k+1) − 𝒟(k)‖_F ≤ η²‖∇L‖² ≤ η² σ²_max(𝒯)‖∇ℓ‖² ≤ 2β_ℓη²σ²_max(𝒯)(L − L*)``,
    the per-step bound of THEORY.md §2 (:func:`imbalance_step_bound`).

    Parameters
    ----------
    dW1 : array (D, H), dW2 : array (K, H)
        ``∇_{W₁}L`` and ``∇_{W₂}L`` at step ``k``.
    lr : float
        ``η_k``.
    """
    return lr * lr * (dW1.T @ dW1 - dW2.T @ dW2)


def fro_UtV(U, V) -> float:
    r"""``‖UᵀV‖_F`` for ``U, V (r, H)`` without forming the ``H×H`` product.

    The rows of ``U`` and ``V`` span at most ``2r`` dimensions of ``ℝ^H``; with
    ``Q (H, k)`` an orthonormal basis of that span (reduced QR of
    ``[U; V]ᵀ``), ``U = ŨQᵀ`` and ``V = ṼQᵀ`` with ``Ũ = UQ``, ``Ṽ = VQ`` ``(r, k)``, so

    .. math:: U^\top V = Q\,\tilde U^\top \tilde V\,Q^\top, \qquad
              \lVert U^\top V\rVert_F = \lVert \tilde U^\top \tilde V\rVert_F ,

    a ``k×k`` matrix, ``k ≤ 2r``.  Cost ``O(r²h)`` instead of ``O(rh²)``.  (The
    shorter identity ``‖UᵀV‖²_F = ⟨UUᵀ, VVᵀ⟩_F`` squares the cancellation when
    ``UᵀV`` is a small difference of large terms, as the imbalance drift is.)
    """
    xp = get_array_module(U, V)
    Q, _ = xp.linalg.qr(xp.concatenate([U, V], axis=0).T)  # (h, k), orthonormal columns
    M = (U @ Q).T @ (V @ Q)  # Ũᵀ Ṽ, (k, k)
    return to_scalar(xp.linalg.norm(M))


def imbalance_drift(W1, W2, W1_0, W2_0) -> float:
    r"""``‖𝒟(t) − 𝒟(0)‖_F`` for ``W₁ (D, H)``, ``W₂ (K, H)`` and their initial values.

    Written as ``UᵀV`` with the increments ``E_i = W_i − W_i(0)`` so that no
    large terms cancel in floating point:

    .. math:: \mathcal D(t) - \mathcal D(0) = E_1^\top W_1 + W_1(0)^\top E_1 - E_2^\top W_2 - W_2(0)^\top E_2 ,

    ``U = [E₁; W₁(0); −E₂; −W₂(0)]``, ``V = [W₁; E₁; W₂; E₂]`` (rows stacked), and
    :func:`fro_UtV`.
    """
    xp = get_array_module(W1, W2)
    E1, E2 = W1 - W1_0, W2 - W2_0
    U = xp.concatenate([E1, W1_0, -E2, -W2_0], axis=0)
    V = xp.concatenate([W1, E1, W2, E2], axis=0)
    return fro_UtV(U, V)


def imbalance_step_norm(dW1, dW2, lr: float) -> float:
    r"""``‖𝒟(k+1) − 𝒟(k)‖_F = η²‖∇₁ᵀ∇₁ − ∇₂ᵀ∇₂‖_F`` (see :func:`imbalance_increment`)."""
    xp = get_array_module(dW1, dW2)
    U = xp.concatenate([dW1, -dW2], axis=0)
    V = xp.concatenate([dW1, dW2], axis=0)
    return lr * lr * fro_UtV(U, V)


def imbalance_step_bound(K: float, lr: float, sigma2_max: float, gap: float) -> float:
    r"""Per-step imbalance bound of THEORY.md §2 (the paper's Lemma E.2).

    .. math:: \lVert \mathcal D(k+1) - \mathcal D(k)\rVert_F \le 2\beta_\ell\eta_k^2\,\sigma^2_{\max}(\mathcal T_k)\,(L(k) - L^*)

    THEORY.md writes ``L(k)``; with ``L* = 0`` (the paper's ``Y = XW_⋆`` data)
    the two agree and with ``L* > 0`` the gap is the tighter valid bound
    (``‖∇ℓ‖² ≤ 2β_ℓ(ℓ − ℓ*)`` for a β_ℓ-smooth convex ``ℓ``).
    """
    return 2.0 * K * lr * lr * sigma2_max * max(gap, 0.0)


# ---------------------------------------------------------------------------
# Local PL and smoothness.
# ---------------------------------------------------------------------------


def local_pl_constant(mu: float, W1, W2) -> float:
    r"""Local PL constant ``μ_t = μ_ℓ σ²_min(𝒯_t)`` (THEORY.md §2; the paper's Theorem 3.1).

    .. math:: \tfrac12\lVert\nabla L\rVert^2 = \tfrac12\lVert\mathcal T(\nabla\ell)\rVert^2
              \ge \tfrac12\sigma^2_{\min}(\mathcal T)\lVert\nabla\ell\rVert^2
              \ge \mu_\ell\,\sigma^2_{\min}(\mathcal T)\,(L - L^*)

    (the last step is the global PL inequality of the μ_ℓ-strongly convex ``ℓ``).
    """
    return mu * sigma2_T(W1, W2)[0]


def gradient_norm_bound(K: float, gap: float) -> float:
    r"""``‖∇ℓ(W)‖_F ≤ √(2β_ℓ(ℓ(W) − ℓ*))`` for a β_ℓ-smooth convex ``ℓ`` (the paper's ``√(2KL)``)."""
    return math.sqrt(2.0 * K * max(gap, 0.0))


def local_smoothness(K: float, sigma2_max: float, grad_norm: float, lr: float = 0.0,
                     second_order: bool = True) -> float:
    r"""Local smoothness ``β_t(η)``: a bound on ``‖∇²L‖`` along the GD step (reconstruction).

    THEORY.md §2 gives ``β_t = β_ℓσ²_max(𝒯_t) + √(2β_ℓ L(t)) + O(η_t √L(t))``; the
    ``O(η√L)`` term is lost in our copy.  This is our derivation, with
    ``σ² = σ²_max(𝒯_t)`` and ``g ≥ ‖∇ℓ(W_t)‖_F``:

    * at any point, for a direction ``Δ = (Δ₁, Δ₂)``,
      ``∇²L[Δ, Δ] = ∇²ℓ[𝒯*Δ, 𝒯*Δ] + 2⟨∇ℓ, Δ₁Δ₂ᵀ⟩ ≤ (β_ℓσ²_max(𝒯) + ‖∇ℓ‖_F)‖Δ‖²``
      — the paper's two leading terms;
    * along ``θ(s) = θ − s∇L``, ``0 ≤ s ≤ η``: ``‖W₁(s)‖ ≤ ‖W₁‖ + sg‖W₂‖`` (and
      symmetrically), so ``σ²_max(𝒯(s)) ≤ σ²(1 + ηg)²``; and
      ``‖W(s) − W‖_F ≤ ηgσ² + η²g²σ²/2``, so
      ``‖∇ℓ(W(s))‖_F ≤ g + β_ℓηgσ²(1 + ηg/2)``.

    Together:

    .. math:: \beta_t(\eta) = \beta_\ell\sigma^2 (1 + \eta g)^2 + g\,\big(1 + \beta_\ell\eta\sigma^2(1 + \eta g/2)\big)

    and the descent lemma ``L(θ − η∇L) ≤ L − η(1 − ηK_t(η)/2)‖∇L‖²`` holds
    (:func:`descent_bound`), so the loss decreases whenever ``η β_t(η) < 2``.
    ``second_order=False`` drops the ``O(η)`` terms (``β_ℓσ² + g``, the
    paper's leading part).

    Parameters
    ----------
    K : float
        Smoothness of ``ℓ``.
    sigma2_max : float
        ``σ²_max(𝒯_t)`` (or an upper bound of it).
    grad_norm : float
        ``g``: ``‖∇ℓ(W_t)‖_F`` or the bound :func:`gradient_norm_bound`.
    lr : float
        The step ``η`` the bound must cover.
    """
    s, g, e = float(sigma2_max), float(grad_norm), float(lr)
    if not second_order:
        return K * s + g
    return K * s * (1.0 + e * g) ** 2 + g * (1.0 + K * e * s * (1.0 + 0.5 * e * g))


def local_smoothness_bound(K: float, alpha2: float, gap: float, eta0: float, lr: float = 0.0,
                           sigma2_max: float | None = None, second_order: bool = True) -> float:
    r"""``β̄_t``, an upper bound of ``β_t`` that falls with the loss (reconstruction).

    The paper bounds ``σ²_max(𝒯_t) ≤ α₂ exp(√η₀)`` along its trajectories
    (summary, Lemma 3.1; ``α₂`` bounds ``σ²_max(𝒯₀)``) and ``‖∇ℓ‖ ≤ √(2β_ℓL(t))``;
    ``β̄_t`` then decreases to ``β_ℓ exp(√η₀) α₂`` as ``L(t) → 0``.  Our
    reconstruction substitutes both bounds into :func:`local_smoothness`:

    .. math:: \bar\beta_t(\eta) = \beta_t(\eta)\big|_{\sigma^2 = \alpha_2 e^{\sqrt{\eta_0}},\;
              g = \sqrt{2\beta_\ell(L(t) - L^*)}}

    with ``α₂ = σ²_max(𝒯₀)`` (our choice).  Pass ``sigma2_max`` to use the
    measured ``σ²_max(𝒯_t)`` instead of ``α₂ exp(√η₀)`` (the "current" variant).
    """
    s = alpha2 * math.exp(math.sqrt(eta0)) if sigma2_max is None else float(sigma2_max)
    return local_smoothness(K, s, gradient_norm_bound(K, gap), lr, second_order)


def lr_for_smoothness(K: float, sigma2_max: float, grad_norm: float, second_order: bool = True,
                      target: float = 1.0) -> float:
    r"""The step ``η > 0`` with ``η β_t(η) = target`` (``target = 1``: "``η = 1/β_t``").

    ``β_t(η)`` depends on ``η`` itself (:func:`local_smoothness`), so ``1/β_t``
    is read as the fixed point; expanding,

    .. math:: \eta \beta_t(\eta) = \tfrac32 \beta_\ell\sigma^2 g^2\,\eta^3 + 3\beta_\ell\sigma^2 g\,\eta^2
              + (\beta_\ell\sigma^2 + g)\,\eta ,

    increasing in ``η``, so the root is unique (:func:`positive_root`; host scalars).
    """
    s, g = float(sigma2_max), float(grad_norm)
    lin = K * s + g
    if not (lin > 0):
        raise ValueError(f"sigma2_max: expected K σ²_max + g > 0, got K={K!r}, σ²={s!r}, g={g!r}")
    if not second_order:
        return target / lin
    return positive_root(float(target), (lin, 3.0 * K * s * g, 1.5 * K * s * g * g))


def positive_root(c0: float, coeffs) -> float:
    r"""The root ``η > 0`` of ``p(η) = −c₀ + c₁η + c₂η² + c₃η³`` (``c₀ > 0``, ``cᵢ ≥ 0``, not all 0).

    ``p`` is increasing and convex on ``η > 0`` and ``p(0) < 0``, so the root is
    unique.  Each term alone reaching ``c₀`` bounds it from above
    (``η ≤ (c₀/c_k)^{1/k}``); Newton's method started at the smallest such
    bound decreases monotonically to the root (convexity), with no
    polynomial-companion eigenvalues that over- or underflow when a
    coefficient is tiny.
    """
    cs = [float(c) for c in coeffs]
    if not (c0 > 0) or any(not (c >= 0) for c in cs) or not any(c > 0 for c in cs):
        raise ValueError(f"coeffs: expected c₀ > 0 and non-negative c₁..c₃, not all zero; got {c0!r}, {cs!r}")
    eta = min((c0 / c) ** (1.0 / k) for k, c in enumerate(cs, start=1) if c > 0)
    for _ in range(200):
        p = -c0 + sum(c * eta ** k for k, c in enumerate(cs, start=1))
        dp = sum(k * c * eta ** (k - 1) for k, c in enumerate(cs, start=1))
        eta_new = eta - p / dp  # stays right of the root: p is convex
        if not (eta_new < eta):  # no progress left in floating point
            return eta
        if eta - eta_new <= 1e-15 * eta:
            return eta_new
        eta = eta_new
    return eta  # pragma: no cover - Newton from the right converges in a few dozen steps


def descent_bound(loss: float, lr: float, grad_sq: float, K_t: float) -> float:
    r"""The descent lemma with the local constant: ``L − η(1 − ηK_t/2)‖∇L‖²``.

    .. math:: L(\theta - \eta\nabla L) \le L(\theta) - \eta\Big(1 - \frac{\eta \beta_t}{2}\Big)\lVert\nabla L\rVert^2
    """
    return loss - lr * (1.0 - 0.5 * lr * K_t) * grad_sq


def pl_contraction_bound(lr: float, mu_t: float, K_t: float) -> float:
    r"""Per-step contraction the local constants guarantee (for ``ηK_t ≤ 2``).

    Descent lemma plus local PL (``‖∇L‖² ≥ 2μ_t(L − L*)``):

    .. math:: \frac{L_{t+1} - L^*}{L_t - L^*} \le 1 - \eta_t\,\mu_t\,(2 - \eta_t \beta_t)

    With ``η = 1/β_t`` this is ``1 − μ_t/β_t``, the paper's rate.
    """
    if lr * K_t > 2.0:
        return float("inf")
    return 1.0 - lr * mu_t * (2.0 - lr * K_t)
