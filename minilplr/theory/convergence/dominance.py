r"""The kernel regime's dominance time (K2): after ``t_dom`` the curve of ``Θ_0`` is one geometric term to within ``δ``.

Before it, the curve's slope on a log axis still bends, so a straight-line
test cannot tell linear from sublinear (:mod:`.linear`).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ...backend import to_host

DELTA = 0.1
"""Default tolerance of the local rate: within 10 % of the slowest term's rate counts as one geometric term (K2)."""

# --------------------------------------------------------------------------- (K2): the kernel regime's dominance time


def kernel_modes(theta0, r0):
    r"""The terms of the kernel-regime curve (K1): eigenvalues ``λ_i`` of ``Θ_0`` and weights ``c_i = (u_iᵀ r_0)²``.

    .. math:: L_t = \frac{1}{2N} \sum_i c_i \Big(1 - \frac{\eta\lambda_i}{N}\Big)^{2t}, \qquad c_i = (u_i^\top r_0)^2

    ``theta0 (N·K, N·K)`` and ``r0 (N·K,)`` (or ``(N, K)``) as host or
    device arrays (copied to the host once: ``N·K`` up to a few thousand);
    returns host float64 ``(lam, c2)``, ascending in ``λ``.
    """
    T = np.asarray(to_host(theta0), dtype=np.float64)
    r = np.asarray(to_host(r0), dtype=np.float64).reshape(-1)
    if T.ndim != 2 or T.shape[0] != T.shape[1] or T.shape[0] != r.size:
        raise ValueError(f"theta0: expected a square ({r.size}, {r.size}) kernel to match r0, got {T.shape}")
    lam, U = np.linalg.eigh((T + T.T) / 2)
    return lam, (U.T @ r) ** 2


def _rates(lam, c2, eta, n):
    """``(log|q_i|, c_i)`` of the decaying terms, the constant part ``Σ c_i`` with ``q_i = 1``, and a divergence flag."""
    lam, c2 = np.asarray(lam, float).ravel(), np.asarray(c2, float).ravel()
    if lam.shape != c2.shape:
        raise ValueError(f"c2: expected one weight per eigenvalue ({lam.size}), got {c2.size}")
    if not (np.all(np.isfinite(lam)) and np.all(np.isfinite(c2)) and np.all(c2 >= 0)):
        raise ValueError("lam, c2: expected finite eigenvalues and non-negative weights")
    q = np.abs(1.0 - float(eta) * np.clip(lam, 0, None) / int(n))
    const = (q == 1.0) & (c2 > 0)
    live = (q < 1.0) & (q > 0) & (c2 > 0)
    return np.log(q[live]), c2[live], float(c2[const].sum()), bool(np.any((q > 1.0) & (c2 > 0)))


def local_rate_excess(t, lam, c2, eta: float, n: int) -> np.ndarray:
    r"""How far the kernel-regime curve's local rate is above its slowest term's (K2).

    .. math:: D(t) = \frac{s(t)}{s_\infty} - 1 = \sum_i w_i(t)\,(a_i - 1), \qquad
              w_i(t) = \frac{c_i |q_i|^{2t}}{\sum_j c_j |q_j|^{2t}}, \quad a_i = \frac{\log|q_i|}{\log|q_s|}

    with ``q_i = 1 − ηλ_i/N`` (``N`` = the argument ``n``), ``s(t) = −d/dt log(L_t − L*_kernel)`` the
    curve's local rate and ``s_∞ = −2 log|q_s|`` its slowest term's (``q_s``
    the largest ``|q_i| < 1`` with ``c_i > 0``).  ``D`` never increases
    (``dD/dt = −2|log q_s|·Var_w(a) ≤ 0``).  Terms with ``q_i = 1``
    (``λ_i = 0``) are the constant ``L*`` of the kernel regime, not part of
    the gap.  ``t``: a number or an array; returns a host array.
    """
    lq, c, _, _ = _rates(lam, c2, eta, n)
    ts = np.asarray(t, float)
    if lq.size == 0:
        return np.zeros_like(ts)
    a = lq / lq.max()  # a_i = log|q_i| / log|q_s| ≥ 1
    logw = np.log(c)[:, None] + 2.0 * np.outer(lq, ts.ravel())
    logw -= logw.max(axis=0)
    w = np.exp(logw)
    w /= w.sum(axis=0)
    return ((a - 1.0) @ w).reshape(ts.shape)


class DominanceTime(NamedTuple):
    """The kernel-regime dominance time (K2) and what it rests on.

    Attributes
    ----------
    t_dom : float
        The first step at which the local rate is within ``delta`` of the
        slowest term's: ``D(t_dom) ≤ δ`` (``inf``: never, the curve diverges).
    delta : float
    rate : float
        ``s_∞ = −2 log|q_s|``, the slowest term's decrease per step in log.
    level : float
        ``(L_{t_dom} − L*)/(L_0 − L*)`` of the kernel curve: how far it has
        fallen when its straight part begins (below a dtype's resolution:
        the straight part cannot be seen).
    bound : float
        The closed form ``(C/c_s − 1)/(2e·δ·|log q_s|)`` (K2), an upper
        bound of ``t_dom``.
    """

    t_dom: float
    delta: float
    rate: float
    level: float
    bound: float

    def steps_to_decide(self, decrease: float = 10.0) -> float:
        """Steps ``T`` a run needs to judge a straight line after ``t_dom``: a ``decrease`` at the slowest rate.

        The run's steps are ``0 … T − 1`` and the window ``t_dom … T − 1``
        spans ``T − 1 − t_dom`` steps, which must fall by ``decrease``
        (``k = ⌈log(decrease)/s_∞⌉`` steps, at least 2), hence ``T = t_dom + 1 + k``.
        """
        if not self.rate > 0:
            return math.inf
        return self.t_dom + 1 + max(2, math.ceil(math.log(float(decrease)) / self.rate))


def dominance_time(lam, c2, eta: float, n: int, delta: float = DELTA) -> DominanceTime:
    r"""The step after which the kernel-regime curve of ``Θ_0`` is one geometric term, to ``δ`` in its local rate (K2).

    .. math:: t_{dom}(\delta) = \min\{t \in \mathbb{N} : D(t) \le \delta\}
              \;\le\; \frac{C/c_s - 1}{2e\,\delta\,|\log q_s|} \approx \frac{N\,(C/c_s - 1)}{2e\,\delta\,\eta\lambda_{\min}}

    ``D`` is :func:`local_rate_excess`; ``C = Σ c_i`` over the decaying
    terms and ``c_s`` the slowest term's weight.  Derivation (THEORY.md,
    "Verdicts with power"): ``w_i ≤ (c_i/c_s) e^{−2κ(a_i−1)t}`` with
    ``κ = |log q_s|``, and ``x e^{−bx} ≤ 1/(eb)``.  ``D`` is non-increasing,
    so ``t_dom`` is found by doubling and bisection on integers.

    Parameters
    ----------
    lam, c2 : arrays (N·K,), from :func:`kernel_modes`
    eta : float, the step; n : int, the sample count ``N`` of ``L = ‖r‖²/(2N)``
    delta : float in (0, 1), the tolerance of the local rate
    """
    if not (0 < float(delta) < 1):
        raise ValueError(f"delta: expected a tolerance in (0, 1), got {delta!r}")
    if not (float(eta) > 0) or int(n) < 1:
        raise ValueError(f"eta, n: expected a positive step and sample count, got {eta!r}, {n!r}")
    lq, c, _, diverges = _rates(lam, c2, eta, n)
    if diverges:
        return DominanceTime(math.inf, float(delta), 0.0, float("nan"), math.inf)
    if lq.size == 0:
        return DominanceTime(0.0, float(delta), math.inf, 0.0, 0.0)
    s = int(np.argmax(lq))
    kappa = -float(lq[s])
    bound = (float(c.sum()) / float(c[s]) - 1.0) / (2 * math.e * float(delta) * kappa)

    def excess(t):
        return float(local_rate_excess(float(t), lam, c2, eta, n))

    lo, hi = 0, 1
    if excess(0) <= delta:
        t_dom = 0
    else:
        while excess(hi) > delta:
            lo, hi = hi, hi * 2
            if hi > 1e15:
                return DominanceTime(math.inf, float(delta), 2 * kappa, float("nan"), bound)
        while hi - lo > 1:  # excess(lo) > δ ≥ excess(hi)
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if excess(mid) <= delta else (mid, hi)
        t_dom = hi
    level = float(np.sum(c * np.exp(2 * lq * t_dom)) / c.sum())
    return DominanceTime(float(t_dom), float(delta), 2 * kappa, level, bound)
