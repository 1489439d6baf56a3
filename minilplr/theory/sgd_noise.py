r"""Constant-step SGD under PL: the noise ball, its interpolation case, and the estimators that test them (issue 24).

The loss is an average of per-sample losses, ``L(θ) = (1/N) Σ_i ℓ_i(θ)``;
for the squared loss of :mod:`minilplr.nn.losses`, ``ℓ_i = ‖f(x_i) − y_i‖²/2``
(so ``L = ‖f − y‖²/(2N)``) and ``∇ℓ_i = J_iᵀ r_i`` with ``r_i = f(x_i) − y_i``
``(K,)`` and ``J_i (K, P)`` the rows of the Jacobian of sample ``i``.  One
SGD step with a mini-batch ``B`` of ``b`` samples is
``θ_{t+1} = θ_t − η g_B``, ``g_B = (1/b) Σ_{i∈B} ∇ℓ_i``.

The theory (docs/THEORY.md, "SGD with a constant step: the noise ball",
derived there with its sources), one function per equation:

* :func:`batch_factor` — ``c_b``, the variance of a mini-batch mean relative
  to one sample's: ``(N − b)/(b(N − 1))`` without replacement, ``1/b`` with;
* :func:`noise_ball` — the ball ``ηβσ_b²/(2μ)`` of the variance form of
  Karimi, Nutini & Schmidt (2016), Theorem 4, and :func:`kns_bound`, the
  whole bound ``(1 − ημ)^t (L_0 − L*) + ηβσ_b²/(2μ)`` for ``η ≤ 1/β``;
* :func:`growth_of_batch` — the strong-growth constant of a mini-batch,
  ``ρ_b = 1 + c_b(ρ − 1)``, and :func:`sgc_step_limit`, :func:`sgc_bound` —
  the interpolation case of Vaswani, Bach & Schmidt (2019), Theorem 4:
  ``E[L_t − L*] ≤ (1 − ημ)^t (L_0 − L*)`` for ``η ≤ 1/(ρ_b β)``.

The estimators, from per-sample gradients (exact, no sampling):

* :func:`per_sample_gram` — ``G_ij = ⟨∇ℓ_i, ∇ℓ_j⟩ (N, N)`` from the NTK
  ``Θ = J Jᵀ (N·K, N·K)`` and the residual ``r (N, K)``, without forming
  ``J``; :func:`gram_of_gradients` — the same from explicit gradients ``(N, P)``;
* :func:`gradient_moments` — ``E_i‖∇ℓ_i‖²``, ``‖∇L‖²``, the per-sample
  spread ``σ_1² = (1/N) Σ ‖∇ℓ_i − ∇L‖²``, the mini-batch noise
  ``σ_b² = c_b σ_1²`` (:func:`minibatch_noise`) and the strong-growth ratio
  ``ρ = E_i‖∇ℓ_i‖² / ‖∇L‖²`` (:func:`strong_growth_ratio`) and its bound
  from the NTK, ``N max_i Θ_ii/λ_min(Θ)`` (:func:`rho_kernel_bound`);
* :func:`plateau` — mean and spread of the loss over the last window, and
  whether it still falls; :func:`transient_rate` — the per-step factor of
  the transient, to hold against ``1 − ημ``.

Everything here takes host or device arrays and returns host floats;
float64 throughout.  Imports NumPy and the backend's ``to_host``; never the
training loops or the experiments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..backend import to_host
from ..validate import check_int, check_real

__all__ = ["batch_factor", "noise_ball", "quadratic_plateau", "kns_bound", "growth_of_batch", "sgc_step_limit", "sgc_bound",
           "per_sample_gram", "gram_of_gradients", "GradientMoments", "gradient_moments", "minibatch_noise",
           "strong_growth_ratio", "rho_kernel_bound", "Plateau", "plateau", "transient_rate"]


def _host64(x) -> np.ndarray:
    return np.asarray(to_host(x), dtype=np.float64)


# --------------------------------------------------------------------------- the theory


def batch_factor(N: int, b: int, replacement: bool = False) -> float:
    r"""``c_b``: the variance of a mini-batch mean of ``b`` of ``N`` vectors over one sample's.

    .. math:: \mathbb{E}_B\lVert g_B - \nabla L\rVert^2 = c_b\,\sigma_1^2, \qquad
              c_b = \frac{N - b}{b(N - 1)} \ \text{(without replacement)}, \qquad c_b = \frac1b \ \text{(with)}

    with ``σ_1² = (1/N) Σ_i ‖∇ℓ_i − ∇L‖²`` (THEORY.md, eq. (N1)).  Without
    replacement ``c_N = 0``: the full batch has no noise.
    """
    N, b = check_int("N", N, 1), check_int("b", b, 1)
    if replacement:
        return 1.0 / b
    if b > N:
        raise ValueError(f"b: expected a batch of at most N = {N} samples without replacement, got {b}")
    return 0.0 if N == 1 else (N - b) / (b * (N - 1))


def noise_ball(eta: float, beta: float, mu: float, sigma2_b: float) -> float:
    r"""The radius of the noise ball, the fixed point of the one-step recursion (THEORY.md, eq. (N3)).

    .. math:: \Delta_\infty = \frac{\eta\,\beta\,\sigma_b^2}{2\mu}

    (variance form of Karimi, Nutini & Schmidt 2016, Theorem 4, for ``η ≤ 1/β``).
    """
    eta, beta, mu = check_real("eta", eta, above=0), check_real("beta", beta, above=0), check_real("mu", mu, above=0)
    s = check_real("sigma2_b", sigma2_b)
    if s < 0:
        raise ValueError(f"sigma2_b: expected a variance ≥ 0, got {sigma2_b!r}")
    return eta * beta * s / (2.0 * mu)


def quadratic_plateau(eta: float, sigma2_b: float) -> float:
    r"""The stationary gap of constant-step SGD on a quadratic, to first order in ``ηβ`` (THEORY.md, eq. (N8)).

    .. math:: \lim_{t\to\infty}\mathbb{E}[L_t - L^*] = \frac{\eta\,\sigma_b^2}{4}\bigl(1 + O(\eta\beta)\bigr)

    with ``Σ_b`` the covariance of ``g_B`` at ``θ*`` (``tr Σ_b = σ_b²``): the
    stationary covariance ``C`` of ``θ − θ*`` solves ``HC + CH = ηΣ_b``, so
    ``E[L − L*] = tr(HC)/2 = η tr(Σ_b)/4``, whatever ``H``.
    Against :func:`noise_ball`: the KNS ball is loose by ``2β/μ`` on a quadratic.
    """
    eta = check_real("eta", eta, above=0)
    s = check_real("sigma2_b", sigma2_b)
    if s < 0:
        raise ValueError(f"sigma2_b: expected a variance ≥ 0, got {sigma2_b!r}")
    return eta * s / 4.0


def kns_bound(t, gap0: float, eta: float, beta: float, mu: float, sigma2_b: float) -> np.ndarray:
    r"""The PL bound for constant-step SGD (THEORY.md, eq. (N4); Karimi, Nutini & Schmidt 2016, Theorem 4).

    .. math:: \mathbb{E}[L_t - L^*] \le (1 - \eta\mu)^t (L_0 - L^*) + \frac{\eta\beta\sigma_b^2}{2\mu},
              \qquad \eta \le \frac1\beta

    Parameters
    ----------
    t : int or array (T,), steps
    gap0 : float, ``L_0 − L*``
    eta, beta, mu, sigma2_b : floats (``σ_b²`` a bound on the mini-batch noise along the path)

    Returns
    -------
    array shaped like ``t`` (host float64)
    """
    ball = noise_ball(eta, beta, mu, sigma2_b)
    if eta * beta > 1.0:
        raise ValueError(f"eta: the bound needs η ≤ 1/β = {1.0 / beta:.6g}, got η = {eta!r}")
    if eta * mu >= 1.0:
        raise ValueError(f"eta: expected ημ < 1 (μ ≤ β always), got η = {eta!r}, μ = {mu!r}")
    tt = np.asarray(t, dtype=np.float64)
    return (1.0 - eta * mu) ** tt * float(gap0) + ball


def growth_of_batch(rho: float, N: int, b: int, replacement: bool = False) -> float:
    r"""The strong-growth constant of a mini-batch of ``b`` from that of one sample (THEORY.md, eq. (N5)).

    .. math:: \mathbb{E}_B\lVert g_B\rVert^2 = \lVert\nabla L\rVert^2 + c_b\,\sigma_1^2
              = \bigl(1 + c_b(\rho - 1)\bigr)\lVert\nabla L\rVert^2 =: \rho_b \lVert\nabla L\rVert^2

    since ``σ_1² = E_i‖∇ℓ_i‖² − ‖∇L‖² = (ρ − 1)‖∇L‖²``.  ``ρ_1 = ρ``; ``ρ_N = 1`` without replacement.
    """
    rho = check_real("rho", rho)
    if rho < 1.0:
        raise ValueError(f"rho: expected a strong-growth ratio ≥ 1 (E‖∇ℓ_i‖² ≥ ‖∇L‖²), got {rho!r}")
    return 1.0 + batch_factor(N, b, replacement) * (rho - 1.0)


def sgc_step_limit(beta: float, rho_b: float) -> float:
    r"""The largest step of the interpolation case (THEORY.md, eq. (N6); Vaswani, Bach & Schmidt 2019, Thm 4).

    .. math:: \eta \le \frac{1}{\rho_b\,\beta}
    """
    beta, rho_b = check_real("beta", beta, above=0), check_real("rho_b", rho_b)
    if rho_b < 1.0:
        raise ValueError(f"rho_b: expected a strong-growth constant ≥ 1, got {rho_b!r}")
    return 1.0 / (rho_b * beta)


def sgc_bound(t, gap0: float, eta: float, beta: float, mu: float, rho_b: float) -> np.ndarray:
    r"""Linear convergence to ``L*`` under strong growth (THEORY.md, eq. (N7); Vaswani, Bach & Schmidt 2019).

    .. math:: \mathbb{E}[L_t - L^*] \le (1 - \eta\mu)^t (L_0 - L^*), \qquad \eta \le \frac{1}{\rho_b\beta}

    No ball: when every ``∇ℓ_i`` vanishes where ``∇L`` does (interpolation),
    the noise shrinks with the gradient.  At ``η = 1/(ρ_bβ)`` the rate is
    Vaswani et al.'s ``1 − μ/(ρ_bβ)``.
    """
    eta, mu = check_real("eta", eta, above=0), check_real("mu", mu, above=0)
    limit = sgc_step_limit(beta, rho_b)
    if eta > limit * (1 + 1e-12):
        raise ValueError(f"eta: the bound needs η ≤ 1/(ρ_b β) = {limit:.6g}, got η = {eta!r}")
    tt = np.asarray(t, dtype=np.float64)
    return (1.0 - eta * mu) ** tt * float(gap0)


# --------------------------------------------------------------------------- the estimators


def per_sample_gram(theta, r) -> np.ndarray:
    r"""``G_ij = ⟨∇ℓ_i, ∇ℓ_j⟩`` for the squared loss, from the NTK and the residual, without ``J``.

    .. math:: \nabla\ell_i = J_i^\top r_i \;\Rightarrow\;
              G_{ij} = r_i^\top J_i J_j^\top r_j = \sum_{k,k'} r_{ik}\,\Theta_{iK+k,\,jK+k'}\,r_{jk'}

    Parameters
    ----------
    theta : array (N·K, N·K), the empirical NTK ``Θ = J Jᵀ`` (:func:`minilplr.theory.ntk.empirical_ntk`)
    r : array (N, K) or (N,), the residual ``f(X) − y``

    Returns
    -------
    G : host array (N, N), float64
    """
    T, R = _host64(theta), _host64(r)
    if R.ndim == 1:
        R = R[:, None]
    if R.ndim != 2:
        raise ValueError(f"r: expected the residual (N, K), got shape {R.shape}")
    N, K = R.shape
    if T.shape != (N * K, N * K):
        raise ValueError(f"theta: expected the NTK ({N * K}, {N * K}) of the residual's N = {N}, K = {K}, got {T.shape}")
    T4 = T.reshape(N, K, N, K)
    return np.einsum("ik,ikjl,jl->ij", R, T4, R)


def gram_of_gradients(grads) -> np.ndarray:
    r"""``G = ∇ℓ ∇ℓᵀ (N, N)`` from explicit per-sample gradients ``∇ℓ (N, P)`` (rows ``∇ℓ_i``), float64."""
    g = _host64(grads)
    if g.ndim != 2:
        raise ValueError(f"grads: expected per-sample gradients (N, P), got shape {g.shape}")
    return g @ g.T


@dataclass(frozen=True)
class GradientMoments:
    r"""The second moments of the per-sample gradients at one ``θ`` (:func:`gradient_moments`).

    Attributes
    ----------
    N : int
    mean_sq : float, ``E_i‖∇ℓ_i‖² = tr(G)/N``
    full_sq : float, ``‖∇L‖² = 1ᵀG1/N²``
    spread : float, ``σ_1² = (1/N) Σ_i ‖∇ℓ_i − ∇L‖² = mean_sq − full_sq``
    """

    N: int
    mean_sq: float
    full_sq: float
    spread: float


def gradient_moments(G) -> GradientMoments:
    r"""``E_i‖∇ℓ_i‖²``, ``‖∇L‖²`` and the per-sample spread ``σ_1²`` from the Gram ``G (N, N)``.

    .. math:: \mathbb{E}_i\lVert\nabla\ell_i\rVert^2 = \frac{\operatorname{tr} G}{N}, \qquad
              \lVert\nabla L\rVert^2 = \frac{\mathbf 1^\top G\,\mathbf 1}{N^2}, \qquad
              \sigma_1^2 = \frac1N\sum_i\lVert\nabla\ell_i - \nabla L\rVert^2
              = \mathbb{E}_i\lVert\nabla\ell_i\rVert^2 - \lVert\nabla L\rVert^2

    (the last by expanding the square; THEORY.md, eq. (N1)).
    """
    G = _host64(G)
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ValueError(f"G: expected a square Gram matrix (N, N), got shape {G.shape}")
    N = G.shape[0]
    mean_sq = float(np.trace(G)) / N
    full_sq = float(G.sum()) / N ** 2
    return GradientMoments(N, mean_sq, full_sq, max(mean_sq - full_sq, 0.0))


def minibatch_noise(G, b: int, replacement: bool = False) -> float:
    r"""``σ_b² = E_B‖g_B − ∇L‖²`` over mini-batches of ``b`` drawn uniformly, exactly (THEORY.md, eq. (N1)).

    .. math:: \sigma_b^2 = c_b\,\sigma_1^2, \qquad c_b = \frac{N - b}{b(N - 1)} \ \text{(without replacement)}

    Parameters
    ----------
    G : array (N, N), :func:`per_sample_gram` or :func:`gram_of_gradients`
    b : int, the batch size; replacement : bool
    """
    m = gradient_moments(G)
    return batch_factor(m.N, b, replacement) * m.spread


def strong_growth_ratio(G) -> float:
    r"""``ρ = E_i‖∇ℓ_i‖² / ‖∇L‖²`` at one ``θ`` (THEORY.md, eq. (N5)); ``inf`` where ``∇L = 0`` but some ``∇ℓ_i ≠ 0``.

    .. math:: \rho(\theta) = \frac{\mathbb{E}_i\lVert\nabla\ell_i(\theta)\rVert^2}{\lVert\nabla L(\theta)\rVert^2}
              = \frac{N \operatorname{tr} G}{\mathbf 1^\top G\,\mathbf 1} \ \ge 1
    """
    m = gradient_moments(G)
    if m.full_sq > 0:
        return m.mean_sq / m.full_sq
    return 1.0 if m.mean_sq == 0 else math.inf


def rho_kernel_bound(theta) -> float:
    r"""A bound on ``ρ`` at every residual, from the NTK alone (THEORY.md, eq. (N9)); ``K = 1``.

    .. math:: \rho = \frac{N\sum_i r_i^2\,\Theta_{ii}}{r^\top\Theta\,r}
              \le \frac{N \max_i \Theta_{ii}}{\lambda_{\min}(\Theta)}

    (numerator ``≤ max_i Θ_ii ‖r‖²``, denominator ``≥ λ_min(Θ)‖r‖²``):
    strong growth holds wherever ``Θ_t`` stays well conditioned, the LPLR
    hypothesis.  Equality at ``Θ = cI`` (``ρ = N`` for every ``r``).
    ``inf`` when ``λ_min(Θ) ≤ 0``.

    Parameters
    ----------
    theta : array (N, N), the empirical NTK of a one-output model, float64
    """
    T = _host64(theta)
    if T.ndim != 2 or T.shape[0] != T.shape[1]:
        raise ValueError(f"theta: expected a square NTK (N, N) of a one-output model, got shape {T.shape}")
    lam = float(np.linalg.eigvalsh((T + T.T) / 2)[0])
    return T.shape[0] * float(np.max(np.diag(T))) / lam if lam > 0 else math.inf


# --------------------------------------------------------------------------- reading a loss curve


@dataclass(frozen=True)
class Plateau:
    r"""The end of a loss curve (:func:`plateau`).

    Attributes
    ----------
    mean, std : float, over the window ``[start, T)``
    start : int, the window's first index
    drift : float, ``mean(second half of the window) / mean(first half)``: near 1 on a plateau,
        below 1 while the loss still falls (an interpolating run)
    """

    mean: float
    std: float
    start: int
    drift: float

    def to_dict(self) -> dict:
        return dict(mean=self.mean, std=self.std, start=self.start, drift=self.drift)


def plateau(loss, window: float = 0.25) -> Plateau:
    r"""Mean and spread of the loss over the last ``window`` fraction of the run, and how much it still falls.

    .. math:: \bar L = \frac{1}{|W|}\sum_{t\in W} L_t, \qquad
              s = \Bigl(\frac{1}{|W|}\sum_{t\in W}(L_t - \bar L)^2\Bigr)^{1/2}, \qquad
              \text{drift} = \frac{\bar L_{W_2}}{\bar L_{W_1}}

    with ``W`` the last ``⌈window·T⌉`` records (at least 2) and ``W_1``,
    ``W_2`` its halves.  A noise ball is a plateau with ``drift ≈ 1``; a
    run converging to ``L* = 0`` has ``drift < 1``.

    Parameters
    ----------
    loss : sequence (T,), the full-batch loss ``L(θ_t)`` at the records
    window : float in (0, 1]
    """
    L = _host64(loss).ravel()
    window = check_real("window", window, above=0)
    if window > 1 or L.size < 2:
        raise ValueError(f"window, loss: expected a window in (0, 1] and at least 2 records, got {window!r}, {L.size}")
    k = max(2, math.ceil(window * L.size))
    w = L[-k:]
    h = k // 2
    first, second = float(w[:h].mean()), float(w[h:].mean())
    return Plateau(float(w.mean()), float(w.std()), int(L.size - k), second / first if first > 0 else float("nan"))


def transient_rate(steps, loss, *, l_star: float = 0.0, stop: float | None = None) -> float:
    r"""The per-step contraction ``q`` of the transient, by least squares on ``log(L_t − L*)``.

    .. math:: \log(L_t - L^*) \approx c + t \log q \quad (t < t_{\text{stop}})

    to hold against the bound's ``1 − ημ`` (``q ≤ 1 − ημ``: at least as fast).
    The transient ends at the first record whose gap is below ``stop`` (e.g.
    twice the plateau; default: the whole curve).  NaN with fewer than 3
    points before it.

    Parameters
    ----------
    steps : sequence (T,), the step of each record (records may be every few steps)
    loss : sequence (T,)
    """
    t, g = _host64(steps).ravel(), _host64(loss).ravel() - float(l_star)
    if t.shape != g.shape:
        raise ValueError(f"steps: expected one step per loss record ({g.size}), got {t.size}")
    end = g.size
    if stop is not None:
        below = np.nonzero(g < float(stop))[0]
        end = int(below[0]) if below.size else g.size
    t, g = t[:end], g[:end]
    ok = g > 0
    if ok.sum() < 3:
        return float("nan")
    t, lg = t[ok], np.log(g[ok])
    tm = t - t.mean()
    slope = float(tm @ (lg - lg.mean())) / float(tm @ tm)
    return math.exp(slope)
