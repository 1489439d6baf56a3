r"""Judging Theorem 5.4 on a measured loss curve, with power (THEORY.md §§ "Verdicts with power", issue 20).

Theorem 5.4 (THEORY.md §1) promises, for GD with ``η ≤ 1/β`` on a region
where the PL inequality holds with ``μ = λ_min(Θ)/N`` (``N`` samples; the
functions' argument ``n`` is this ``N``):

.. math:: L_{t+1} - L^* \le (1 - \eta\mu)(L_t - L^*) \tag{14}
.. math:: L_t - L^* \le (1 - \eta\mu)^t (L_0 - L^*) \tag{10}

and, in the lazy regime, the loss curve of :func:`minilplr.theory.dynamics.kernel_regime_loss`,
a sum of geometric terms.  Checked naively, each can pass without meaning
anything; the judges here say when they had power:

* :func:`envelope_bound` — (10) at every step.  With ``ημ = 2.5·10⁻⁵`` the
  envelope after 250 steps is still ``0.994·(L_0 − L*)``: it could fail
  only if the loss failed to fall by 0.6 %.  *Vacuous* when the envelope
  demands less than a decade over the run (E1), and the row says so in numbers.
* :func:`per_step_contraction` — (14) at every step, with a rounding slack
  from the loss's dtype (C2): the step of the proof, which does fail where
  the loss rises.  The fraction of steps that hold, the worst violation and where.
* :func:`kernel_modes`, :func:`dominance_time` — the time ``t_dom`` after which the
  kernel-regime curve of ``Θ_0`` is one geometric term to within ``δ`` in
  its local rate (K2).  Before it, the curve's slope on a log axis still
  bends, so a straight-line test cannot tell linear from sublinear.
* :func:`local_rate_ratio`, :func:`linear_convergence` — the linear-convergence
  judge (L1): *untestable* when the run is shorter than ``t_dom`` or the
  judged window spans less than a decade; otherwise the ratio of the local
  rates of the window's two halves, which a geometric tail keeps above
  ``1/(1 + δ)`` and a power law ``(τ + t)^{−p}`` cannot, unless ``p``
  exceeds the power bound the verdict prints (:func:`power_law_exponent_floor`).

Every judge returns a :class:`~minilplr.theory.verdicts.Verdict`.  Host
NumPy; imports :mod:`.verdicts` and the backend (:func:`kernel_modes` brings
``Θ_0`` to the host once); never the engine, the training loops or the
experiments.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..backend import to_host
from .verdicts import Verdict, fmt, margin_one_sided, untestable, vacuous

__all__ = [
    "rounding_slack", "envelope_bound", "per_step_contraction",
    "kernel_modes", "local_rate_excess", "DominanceTime", "dominance_time",
    "local_rate_ratio", "power_law_ratio", "power_law_exponent_floor", "linear_convergence", "mu_per_step",
    "step_size_verdict",
]

MIN_DEMAND = 10.0
"""An envelope that demands less than this factor of decrease over the run is a check without power (E1)."""
DELTA = 0.1
"""Default tolerance of the local rate: within 10 % of the slowest term's rate counts as one geometric term (K2)."""


def _gap(loss, l_star):
    g = np.asarray(loss, float).ravel() - float(l_star)
    if g.size < 2 or not np.all(np.isfinite(g)):
        raise ValueError(f"loss: expected at least two finite values, got {g.size} (finite: {bool(np.all(np.isfinite(g)))})")
    return g


def rounding_slack(loss, dtype="float32", n_terms: int = 1, residual_error: float | None = None) -> np.ndarray:
    r"""How far the loss computed in ``dtype`` can be from the exact ``L`` (C2): the sum's and the residuals' rounding.

    .. math:: |\hat L - L| \le (\lceil \log_2 (NK) \rceil + 2)\,\varepsilon\,L
              \;+\; \rho\sqrt{2L} \;+\; \rho^2/2

    ``L = Σ_{i,k} r_{ik}²/(2N)`` over ``n_terms = N·K`` squares, each
    residual ``r̂ = r + δ`` off by ``δ`` from the forward pass's rounding,
    with ``ρ² = Σ δ²/N``.  Two parts:

    * the sum: NumPy's pairwise ``sum`` of ``N·K`` squares errs by
      ``⌈log₂(NK)⌉ ε`` relative to ``Σ|x_i|`` (``L`` itself for squares),
      plus one rounding for the square and one for the division;
    * the residuals: ``Σ(r + δ)²/(2N) − L = Σ rδ/N + Σ δ²/(2N)``, and by
      Cauchy–Schwarz ``|Σ rδ|/N ≤ ‖r‖‖δ‖/N = ρ√(2L)``.  This term is
      *absolute*: relative to ``L`` it is ``ρ√(2/L)``, which grows as the
      loss falls.  Against the per-step demand ``ημ·L`` it takes over once
      ``L ≲ 2(ρ/(ημ))²``, a scale set by ``(ε/ημ)²``, not by ``ε²``.

    ``ε`` is the machine epsilon of ``dtype`` (the model's: the dtype the
    loss is computed in).  ``residual_error``: ``ρ``, the root-mean-square
    over samples of the residuals' rounding (measure it as the RMS of
    ``f(X)`` in ``dtype`` minus ``f(X)`` in float64, with the same
    parameters, times a safety factor).  ``None``: the estimate
    ``ρ = 2ε·√(2·max_t L_t)``, the forward pass erring by about ``2ε`` of
    the residuals' first scale (a dense layer with ``D = 512`` inputs,
    weights and inputs rounded to float32: ``ρ = 1.3ε·√(2L_0)``, measured);
    deep networks compound it over layers, so pass a measured ``ρ`` for
    them.  ``0``: losses computed from exact residuals (synthetic curves).
    Returns a host float64 array of ``loss``'s shape.
    """
    eps = float(np.finfo(np.dtype(dtype)).eps)
    if int(n_terms) < 1:
        raise ValueError(f"n_terms: expected a positive count of summed squares, got {n_terms!r}")
    L = np.abs(np.asarray(loss, float))
    if residual_error is None:
        rho = 2.0 * eps * math.sqrt(2.0 * float(np.max(L))) if L.size else 0.0
    else:
        rho = float(residual_error)
        if not (math.isfinite(rho) and rho >= 0):
            raise ValueError(f"residual_error: expected a finite ρ ≥ 0 (the residuals' RMS rounding), got {residual_error!r}")
    return (math.ceil(math.log2(int(n_terms))) + 2) * eps * L + rho * np.sqrt(2.0 * L) + rho * rho / 2


# --------------------------------------------------------------------------- (10): the envelope and its power


def envelope_bound(loss, eta: float, mu: float, *, l_star: float = 0.0, dtype="float32", n_terms: int = 1,
                   residual_error: float | None = None, min_demand: float = MIN_DEMAND,
                   claim: str = "Theorem 5.4, eq. (10): L_t − L* ≤ (1 − ημ)^t (L_0 − L*) at every step") -> Verdict:
    r"""Eq. (10) at every step, and whether it could have failed (E1).

    .. math:: L_t - L^* \le (1 - \eta\mu)^t (L_0 - L^*) \tag{10}

    Holds where every ``L_t − L*`` is under the envelope, up to the
    rounding slack ``s_t`` of the two losses (:func:`rounding_slack`); the
    margin is ``min_{t ≥ 1} (env_t + s_t − gap_t)/env_t``, the tightest
    step's distance below the envelope (negative: above it).  The envelope's *demand* is the decrease it asks for by the
    last step, ``(1 − ημ)^{−(T−1)}``.  A passing check whose demand is below
    ``min_demand`` (a decade) is **vacuous**: the envelope is checked at
    every step, so a loss that stalls or rises early can still fail it, but
    any curve that keeps under an envelope asking for less than a decade
    passes, linear or not; the verdict
    prints the envelope's last value and the loss's own decrease, and names
    the per-step contraction (:func:`per_step_contraction`) as the check with power.
    A failure is a failure whatever the demand.

    Parameters
    ----------
    loss : sequence (T,), ``L_0 … L_{T−1}``
    eta, mu : float, ``0 < ημ ≤ 1`` (μ NaN or ≤ 0: untestable, μ unresolved)
    l_star : float, ``L*``
    dtype, n_terms, residual_error : the loss's dtype, the count ``N·K`` of squares it sums and the
        residuals' rounding ``ρ`` (the slack, :func:`rounding_slack`)
    min_demand : float, the decrease an envelope must demand to have power
    """
    g = _gap(loss, l_star)
    eta, mu = float(eta), float(mu)
    if not (math.isfinite(mu) and mu > 0):
        return untestable(claim, f"μ = {fmt(mu)}: λ_min(Θ) unresolved or zero, no envelope", "a resolved λ_min(Θ_t) "
                          "on the path (a float64 kernel: empirical_ntk(..., dtype='float64'))", quantity="μ")
    if not (eta > 0 and eta * mu <= 1 + 1e-12):
        raise ValueError(f"eta, mu: expected 0 < eta*mu <= 1 (Theorem 5.4), got eta*mu = {eta * mu!r}")
    if g[0] <= 0:
        return untestable(claim, f"L_0 − L* = {fmt(g[0])} ≤ 0", "a run that starts above L*", quantity="L_0 − L*")
    t = np.arange(g.size, dtype=float)
    env = g[0] * (1.0 - eta * mu) ** t
    s = rounding_slack(np.asarray(loss, float), dtype, n_terms, residual_error)
    slack = s + s[0] * (env / g[0])  # L_t's rounding, and L_0's carried along the envelope
    rel = (env[1:] + slack[1:] - g[1:]) / env[1:]  # t ≥ 1 (at t = 0 the gap is the envelope); < 0: above it
    tight = int(np.argmin(rel)) + 1
    m = float(rel[tight - 1])  # the tightest step, relative to the envelope
    demand = float(g[0] / env[-1])
    dec = float(g[0] / g[-1]) if g[-1] > 0 else math.inf
    rests = (f"ημ = {fmt(eta * mu)}, {g.size} steps: envelope {fmt(env[-1] / g[0])}·(L_0 − L*) at the end; the gap "
             f"fell by ×{fmt(dec)}; tightest at t = {tight}")
    det = dict(eta_mu=eta * mu, demand=demand, envelope_end=float(env[-1] / g[0]), decrease=dec, worst_step=tight)
    if m < 0:
        return Verdict(claim, "fails", "min_t (env_t − gap_t)/env_t", m, 0.0, "≥", m, rests,
                       why=f"above the envelope at t = {tight} by {fmt(-100 * m)} % of it", details=det)
    if demand < float(min_demand):
        return vacuous(claim, f"the envelope never drops below {fmt(env[-1] / g[0], 4)}·(L_0 − L*): it demands a "
                       f"decrease ×{fmt(demand, 4)} < {fmt(float(min_demand))} over {g.size} steps: a loss passes it by never "
                       f"rising above an envelope that asks for a fall of {fmt(100 * (1 - 1 / demand))} % by the "
                       f"end, linear or not (this one fell ×{fmt(dec)})",
                       "the per-step contraction L_{t+1} − L* ≤ (1 − ημ_t)(L_t − L*), the proof's own step",
                       quantity="min_t (env_t − gap_t)/env_t", measured=m, threshold=0.0, relation="≥", margin=m,
                       rests_on=rests, details=det)
    return Verdict(claim, "holds", "min_t (env_t − gap_t)/env_t", m, 0.0, "≥", m, rests, details=det)


# --------------------------------------------------------------------------- (14): the per-step contraction


def per_step_contraction(loss, eta: float, mu, *, l_star: float = 0.0, dtype="float32", n_terms: int = 1,
                         residual_error: float | None = None,
                         claim: str = "Theorem 5.4, eq. (14): L_{t+1} − L* ≤ (1 − ημ_t)(L_t − L*) at every step"
                         ) -> Verdict:
    r"""Eq. (14) at every step, the step of the proof: how many steps hold, the worst violation, where (C2).

    .. math:: L_{t+1} - L^* \le (1 - \eta\mu_t)(L_t - L^*) + s_t \tag{14}

    with ``s_t = σ_{t+1} + (1 − ημ_t)σ_t`` the rounding slack of ``L_t`` and
    ``L_{t+1}`` (``σ``: :func:`rounding_slack`, the sum's and the residuals'
    rounding).  Per step, the demanded decrease is ``d_t = ημ_t(L_t − L*)``
    and the achieved one ``L_t − L_{t+1}``; the step fails when
    ``L_t − L_{t+1} + s_t < d_t``.  A step has *power* when ``s_t < d_t``:
    then a loss that stood still would fail it.  Steps without power (the
    demanded decrease within the losses' own rounding, which happens once
    ``L ≲ 2(ρ/(ημ))²``, see :func:`rounding_slack`) and steps whose gap is
    within the rounding (the loss at its floor) are not counted, unless they
    fail: the loss rose by more than the slack, which rounding cannot do.
    The margin is the tightest counted step's

    .. math:: m = \min_t \frac{(L_t - L_{t+1} + s_t) - \eta\mu_t (L_t - L^*)}{\eta\mu_t (L_t - L^*)}

    (``−1 + s_t/d_t``: the loss stood still; below it: it rose).  The row
    prints the largest slack-to-demand ratio ``max_t s_t/d_t`` over the
    counted steps: a shortfall of the achieved decrease below that fraction
    of the demand cannot be seen.  *holds* when every counted step holds,
    *fails* when one fails (with the fraction held and the worst violation
    ``max_t (L_{t+1} − L* − (1 − ημ_t)(L_t − L*))/(L_t − L*)``),
    *untestable* when no step has power.

    Parameters
    ----------
    loss : sequence (T,)
    eta : float
    mu : float or sequence (T − 1,) or (T,): ``μ_t`` per step (e.g. ``λ_min(Θ_t)/N`` held
        between NTK checkpoints); NaN or ≤ 0 anywhere: untestable (λ_min unresolved)
    l_star, dtype, n_terms, residual_error : as :func:`envelope_bound`
    """
    g = _gap(loss, l_star)
    T = g.size
    mus = np.broadcast_to(np.asarray(mu, float), (T,) if np.ndim(mu) == 0 else np.shape(mu)).ravel()
    if mus.size == T:
        mus = mus[:-1]
    if mus.size != T - 1:
        raise ValueError(f"mu: expected a number or {T - 1} (or {T}) values, one per step, got {mus.size}")
    eta = float(eta)
    if not (eta > 0):
        raise ValueError(f"eta: expected a positive step size, got {eta!r}")
    if not np.all(np.isfinite(mus)) or np.any(mus <= 0):
        return untestable(claim, "μ_t unresolved (NaN) or ≤ 0 at some step: λ_min(Θ_t) below its floor",
                          "a resolved λ_min(Θ_t) at every checkpoint (a float64 kernel)", quantity="μ_t")
    q = 1.0 - eta * mus
    s = rounding_slack(np.asarray(loss, float), dtype, n_terms, residual_error)
    slack = s[1:] + q * s[:-1]
    demand = eta * mus * g[:-1]
    achieved = g[:-1] - g[1:]
    lhs, rhs = g[1:], q * g[:-1] + slack
    ok = lhs <= rhs
    above = g[:-1] > s[:-1] + s[1:]  # the gap stands above the rounding of the two losses
    power = above & (slack < demand)  # a loss that stood still would fail this step
    judged = power | (above & ~ok)  # a failure beyond the slack counts whatever the step's power
    ratio = np.where(demand > 0, slack / np.where(demand > 0, demand, 1.0), np.inf)  # s_t/d_t
    if not np.any(judged):
        if np.any(above):
            r_min = float(np.min(ratio[above]))
            return untestable(claim, f"the demanded decrease ημ_t(L_t − L*) is within the losses' rounding at every "
                              f"step (slack/demand ≥ {fmt(r_min)}; ρ = residuals' rounding, dtype {np.dtype(dtype).name}): "
                              "a loss that stood still would pass",
                              "the losses computed in float64 from float64 residuals, a larger ημ, or the judged "
                              "window cut where 2(ρ/(ημ))² < L", quantity="slack/demand",
                              measured=r_min, threshold=1.0, relation="<", details=dict(steps_with_power=0))
        return untestable(claim, f"every gap L_t − L* is within the losses' rounding ({T} steps)",
                          "a run whose loss stands above L* by more than its rounding", quantity="steps judged")
    safe = np.where(judged, g[:-1], 1.0)  # the judged gaps are positive; the others are not divided by
    rel = np.where(judged, (achieved + slack - demand) / (eta * mus * safe), np.inf)  # < 0 exactly where it fails
    viol = np.where(judged, (lhs - q * g[:-1]) / safe, -np.inf)
    t_m, t_v = int(np.argmin(rel)), int(np.argmax(viol))
    n_j, n_ok = int(judged.sum()), int((ok & judged).sum())
    n_floor, n_weak = int((~above).sum()), int((above & ~judged).sum())
    r_max = float(np.max(ratio[judged]))
    m = float(rel[t_m])
    rests = (f"{n_ok} of {n_j} steps hold ({n_floor} at the rounding floor and {n_weak} without power, slack ≥ "
             f"demand, not counted); slack/demand ≤ {fmt(r_max)} on the counted steps (a shortfall below that "
             f"fraction of the demand is not seen); ημ_t in [{fmt(float(np.min(eta * mus)))}, "
             f"{fmt(float(np.max(eta * mus)))}]; tightest step t = {t_m}: achieved {fmt(float(achieved[t_m]))} "
             f"against the demanded {fmt(float(demand[t_m]))}")
    det = dict(fraction=n_ok / n_j, steps_judged=n_j, steps_held=n_ok, worst_violation=float(viol[t_v]),
               worst_step=t_v, tightest_step=t_m, failed_steps=[int(i) for i in np.nonzero(~ok & judged)[0][:20]],
               slack_to_demand=r_max, steps_without_power=n_weak)
    if n_ok < n_j:
        return Verdict(claim, "fails", "(achieved − demanded)/demanded at the tightest step", m, 0.0, "≥", m, rests,
                       why=f"{n_j - n_ok} step(s) fail; worst at t = {t_v}: L_(t+1) − L* exceeds (1 − ημ)(L_t − L*) by "
                           f"{fmt(100 * float(viol[t_v]))} % of the gap", details=det)
    return Verdict(claim, "holds", "(achieved − demanded)/demanded at the tightest step", m, 0.0, "≥", m, rests,
                   details=det)


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


# --------------------------------------------------------------------------- (L1): the linear-convergence judge


def local_rate_ratio(gap, start: int, stop: int) -> tuple:
    r"""The mean local rates of the two halves of ``[start, stop]`` and their ratio (L1).

    .. math:: \bar\rho_1 = \frac{\log(g_a/g_m)}{m - a}, \quad \bar\rho_2 = \frac{\log(g_m/g_b)}{b - m}, \quad
              R = \bar\rho_2/\bar\rho_1, \qquad m = \lfloor (a + b)/2 \rfloor

    ``g`` the gap ``L_t − L*`` (positive on the window).  Returns ``(R, ρ̄₁, ρ̄₂)``.
    """
    g = np.asarray(gap, float)
    a, b = int(start), int(stop)
    if not (0 <= a and b < g.size and b - a >= 2):
        raise ValueError(f"start, stop: expected 0 ≤ start, stop − start ≥ 2, stop < {g.size}, got {start!r}, {stop!r}")
    mid = (a + b) // 2
    r1 = math.log(g[a] / g[mid]) / (mid - a)
    r2 = math.log(g[mid] / g[b]) / (b - mid)
    return (r2 / r1 if r1 > 0 else float("nan")), r1, r2


def power_law_ratio(x: float) -> float:
    r"""``R`` of a power law ``(τ + t)^{−p}`` on a window whose ``τ + t`` grows by ``x`` (any ``p``, any ``τ``).

    .. math:: R_{pow}(x) = \frac{\log\big(2x/(1 + x)\big)}{\log\big((1 + x)/2\big)}

    (two equal halves in ``t``: ``τ + t`` runs ``u → u(1+x)/2 → ux``).
    ``R_{pow}(1) = 1``, and it falls as the window stretches: ``0.87`` at
    ``x = 4/3``, ``0.71`` at ``x = 2``.
    """
    x = float(x)
    if not (x > 1):
        return 1.0
    return math.log(2 * x / (1 + x)) / math.log((1 + x) / 2)


def power_law_exponent_floor(decrease: float, threshold: float) -> float:
    r"""The smallest exponent ``p`` of a power law ``(τ + t)^{−p}`` that passes ``R ≥ threshold`` with this window's decrease.

    A power law on a window with stretch ``x`` falls by ``x^p`` and has
    ``R = R_{pow}(x)`` (:func:`power_law_ratio`); passing needs
    ``x ≤ x_*`` with ``R_{pow}(x_*) = threshold``, hence

    .. math:: p \ge p_{\min} = \frac{\log(\text{decrease})}{\log x_*}

    so a "linear" verdict excludes every power law with ``p < p_min``.
    """
    lo, hi = 1.0 + 1e-12, 1e6
    for _ in range(200):  # R_pow decreases in x: bisection for R_pow(x) = threshold
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if power_law_ratio(mid) >= float(threshold) else (lo, mid)
    return math.log(float(decrease)) / math.log(lo)


def linear_convergence(loss, *, l_star: float = 0.0, dominance: DominanceTime | float | None = None,
                       delta: float = DELTA, decrease_min: float = 10.0, dtype="float32", n_terms: int = 1,
                       residual_error: float | None = None,
                       claim: str = "GD converges linearly: L_t − L* falls like a geometric sequence") -> Verdict:
    r"""Linear convergence judged where it can be judged (L1): untestable, or a test with power against sublinear decay.

    1. The gap ``g_t = L_t − L*`` is used up to the first step within the
       losses' rounding (:func:`rounding_slack`).
    2. The window starts at ``t_a = t_dom`` (the kernel-regime dominance
       time of ``Θ_0``, :func:`dominance_time`) when given, else at half
       the resolvable run.  A run with ``T ≤ t_dom + 2`` is **untestable**:
       before ``t_dom`` even the kernel-regime curve, a sum of geometric
       terms, still bends on a log axis; the row says what ``T`` would decide.
    3. A window over which the gap fell by less than ``decrease_min`` is
       **untestable** (the decade rule).
    4. Otherwise the local-rate ratio ``R`` of the window's halves
       (:func:`local_rate_ratio`) against ``1/(1 + δ)``: after ``t_dom`` the
       kernel-regime curve's local rate lies in ``[s_∞, (1 + δ)s_∞]``, so
       its ``R ≥ 1/(1 + δ)`` always: a geometric tail cannot fail.  A power
       law passes only with an exponent above
       :func:`power_law_exponent_floor` (printed).  ``R ≥ 1/(1+δ)``:
       **holds**.  ``R < 1/(1+δ)``: **fails** when ``t_dom`` was given (the
       curve decelerates after the time a geometric sum would have settled:
       slower than linear, or the kernel moved); **untestable** without it
       (sublinear, or a sum of geometric terms whose fast ones have not
       died out: the dominance time would decide).

    Parameters
    ----------
    loss : sequence (T,)
    l_star : float, ``L*`` (0 for the squared loss of an interpolating network)
    dominance : DominanceTime or a step count ``t_dom``, optional
    delta : float, the local-rate tolerance (the same ``δ`` as ``t_dom``'s)
    decrease_min : float, the decade rule
    dtype, n_terms, residual_error : the loss's rounding (:func:`rounding_slack`)
    """
    g = _gap(loss, l_star)
    thr = 1.0 / (1.0 + float(delta))
    if isinstance(dominance, DominanceTime):
        t_dom, dom = dominance.t_dom, dominance
    else:
        t_dom, dom = (None if dominance is None else float(dominance)), None
    s = rounding_slack(np.asarray(loss, float), dtype, n_terms, residual_error)
    bad = np.nonzero(~(g > 2 * s))[0]
    T = int(bad[0]) if bad.size else g.size  # resolvable steps 0 … T−1
    q = "local-rate ratio R"
    if t_dom is not None and not math.isfinite(t_dom):
        return untestable(claim, "the kernel-regime curve of Θ_0 diverges (η λ_max/N > 2) or never settles",
                          "a step size inside the kernel regime's stability, η < 2N/λ_max(Θ_0)", quantity=q)
    start = int(t_dom) if t_dom is not None else T // 2
    if T - 1 - start < 2:
        if t_dom is not None and T == g.size:
            need = (f"{dom.steps_to_decide(decrease_min):.0f}" if dom is not None
                    else f"more than {int(t_dom) + 3}")
            return untestable(claim, f"the run ({g.size} steps) is shorter than the kernel-regime dominance time "
                              f"t_dom = {int(t_dom)} (δ = {fmt(float(delta))}): before it even the kernel-regime curve "
                              "of Θ_0, a sum of geometric terms, still bends on a log axis",
                              f"a run of T ≥ {need} steps",
                              quantity=q, details=dict(t_dom=t_dom, steps=g.size))
        return untestable(claim, f"only {T} steps above the losses' rounding floor"
                          + (f", t_dom = {int(t_dom)}" if t_dom is not None else ""),
                          "a run whose gap stays above its rounding floor for longer", quantity=q,
                          details=dict(resolvable=T))
    stop = T - 1
    dec = float(g[start] / g[stop])
    window = f"steps {start}–{stop}" + (f" (from t_dom = {int(t_dom)})" if t_dom is not None else " (second half)")
    if not dec >= float(decrease_min):
        rate = math.log(g[start] / g[stop]) / (stop - start) if g[stop] < g[start] else 0.0
        if dom is not None and dom.rate > 0:
            rate = dom.rate
        more = (f"a run of about T = {start + 1 + max(2, math.ceil(math.log(float(decrease_min)) / rate))} steps"
                if rate > 0 else "a run whose gap still falls")
        return untestable(claim, f"over {window} the gap fell only ×{fmt(dec)} < {fmt(float(decrease_min))}: over less "
                          "than a decade any smooth decreasing curve is nearly straight on a log axis",
                          f"{more} (the window's gap falling by {fmt(float(decrease_min))})", quantity=q,
                          measured=None, details=dict(window=[start, stop], decrease=dec, t_dom=t_dom))
    R, r1, r2 = local_rate_ratio(g, start, stop)
    pmin = power_law_exponent_floor(dec, thr)
    rests = (f"{window}: gap fell ×{fmt(dec)}; mean log-decrease per step {fmt(r1)} (first half), {fmt(r2)} (second); "
             f"a power law (τ + t)^−p passes only with p ≥ {fmt(pmin)}")
    det = dict(window=[start, stop], decrease=dec, rho1=r1, rho2=r2, p_min=pmin, t_dom=t_dom, delta=float(delta))
    if not math.isfinite(R):
        return Verdict(claim, "fails", q, None, thr, "≥", None, rests, why="the gap did not fall over the window's "
                       "first half", details=det)
    m = (R - thr) / thr
    if R >= thr:
        return Verdict(claim, "holds", q, R, thr, "≥", m, rests, why="the local rate is constant to δ: geometric",
                       details=det)
    if t_dom is not None:
        return Verdict(claim, "fails", q, R, thr, "≥", m, rests,
                       why=f"the local rate fell by {fmt(100 * (1 - R))} % after t_dom, where a geometric tail allows "
                           f"at most {fmt(100 * (1 - thr))} %: slower than linear, or the kernel moved", details=det)
    return untestable(claim, f"the local rate fell by {fmt(100 * (1 - R))} % over the window (R = {fmt(R)} < "
                      f"{fmt(thr)}): a sublinear decay, or a sum of geometric terms whose fast ones have not died out",
                      "the kernel-regime dominance time t_dom of Θ_0 (dominance_time) for the window's start",
                      quantity=q, measured=R, threshold=thr, relation="≥", rests_on=rests, details=det)


# --------------------------------------------------------------------------- μ_t between NTK checkpoints


def mu_per_step(steps, lam_min, n: int, T: int) -> np.ndarray:
    r"""``μ_t`` for each GD step ``t → t+1`` (``t = 0 … T−2``) from ``λ_min(Θ)`` measured at NTK checkpoints.

    .. math:: \mu_t = \frac{1}{n}\min\big(\lambda_{\min}(\Theta_{a}), \lambda_{\min}(\Theta_{b})\big),
              \qquad a = \max\{s \le t\},\ b = \min\{s \ge t + 1\}

    over the checkpoint steps ``s`` (``steps (C,)``, ascending, ``lam_min (C,)``):
    the smaller of the two checkpoints that bracket the step, so the demanded
    decrease ``ημ_t(L_t − L*)`` of :func:`per_step_contraction` is never
    larger than either end measured (a failure is not an artefact of
    interpolating ``λ_min`` between checkpoints).  A step after the last
    checkpoint uses the last one.  NaN (unresolved) spreads to the steps it
    brackets, which makes :func:`per_step_contraction` untestable.  Host
    float64 ``(T − 1,)``.
    """
    s = np.asarray(steps, float).ravel()
    lam = np.asarray(lam_min, float).ravel()
    if s.size == 0 or s.size != lam.size or np.any(np.diff(s) <= 0):
        raise ValueError(f"steps, lam_min: expected as many checkpoints as values, ascending, got {s.size} and "
                         f"{lam.size}")
    if int(T) < 2 or int(n) < 1:
        raise ValueError(f"T, n: expected at least two losses and one sample, got {T!r}, {n!r}")
    t = np.arange(int(T) - 1, dtype=float)
    a = np.clip(np.searchsorted(s, t, side="right") - 1, 0, s.size - 1)  # last checkpoint ≤ t
    b = np.clip(np.searchsorted(s, t + 1, side="left"), 0, s.size - 1)  # first checkpoint ≥ t + 1
    return np.minimum(lam[a], lam[b]) / int(n)


# --------------------------------------------------------------------------- η ≤ 1/β along the path


def step_size_verdict(eta: float, betas, *, gn_max: float | None = None, gn_step=None,
                      claim: str = "Theorem 5.4's step size η ≤ 1/β along the path") -> Verdict:
    r"""Theorem 5.4's ``η ≤ 1/β`` judged at every point where it was measured (issue 20, item 4).

    ``betas``: ``[(label, HessianTop), …]``, the Lanczos solves (e.g. at
    ``t = 0``, at the NTK checkpoint where the Gauss–Newton proxy peaks, and at
    ``T``).  ``gn_max``: ``max_t η·λ_max(Θ_t)/n`` over the NTK checkpoints
    (at ``gn_step``), the Gauss–Newton part of ``η·β_t``: a necessary check
    between the Lanczos points (it is the Hessian's top eigenvalue when the
    residual term ``Σ_i r_i ∇²f_i/n`` vanishes; not a bound on ``β`` otherwise).

    * **fails** when some ``η·β > 1`` (a Lanczos ``β`` is a Rayleigh quotient,
      a lower bound of ``‖∇²L‖₂``: this is certain) or the proxy exceeds 1;
    * **untestable** when a solve did not converge (its ``β`` is a lower
      bound only) or none was made;
    * **holds** when every solve converged with ``η·β(1 + residual) ≤ 1``
      and the proxy ``≤ 1``; the measured number is the largest
      ``η·β(1 + residual)``, threshold 1.

    A converged Lanczos with residual ``r`` shows that *an* eigenvalue of
    ``∇²L`` lies within ``r·β`` of ``β``, not that it is the top one: the
    row says "converged Lanczos, residual r", never "certified".
    """
    eta = float(eta)
    betas = list(betas)
    parts = [f"{lab}: η·β = {fmt(eta * b.beta)} (converged Lanczos, residual {fmt(b.residual, 2)})" if b.converged
             else f"{lab}: η·β ≥ {fmt(eta * b.beta)} (Lanczos not converged: a lower bound)" for lab, b in betas]
    if gn_max is not None and math.isfinite(float(gn_max)):
        parts.append(f"Gauss–Newton proxy max_t η·λ_max(Θ_t)/n = {fmt(float(gn_max))}"
                     + (f" at t = {int(gn_step)}" if gn_step is not None else ""))
    rests = "; ".join(parts)
    q = "max η·β(1 + residual)"
    det = dict(points=[lab for lab, _ in betas], gn_max=None if gn_max is None else float(gn_max))
    if not betas:
        return untestable(claim, "β was not computed (hessian_iters = 0)", "a run with Lanczos at t = 0 and T",
                          quantity=q, rests_on=rests, details=det)
    lower = max(eta * b.beta for _, b in betas)
    if lower > 1.0:
        worst = max(betas, key=lambda x: x[1].beta)[0]
        return Verdict(claim, "fails", "max η·β", lower, 1.0, "≤", margin_one_sided(lower, 1.0, "≤"), rests,
                       why=f"η·β = {fmt(lower)} > 1 at {worst} (a Rayleigh quotient: β ≤ ‖∇²L‖₂, so this is certain)",
                       details=det)
    if gn_max is not None and float(gn_max) > 1.0:
        return Verdict(claim, "fails", "max_t η·λ_max(Θ_t)/n", float(gn_max), 1.0, "≤",
                       margin_one_sided(float(gn_max), 1.0, "≤"), rests,
                       why="the Gauss–Newton proxy, a necessary check between the Lanczos points, exceeds 1",
                       details=det)
    if not all(b.converged and math.isfinite(b.residual) for _, b in betas):
        bad = [lab for lab, b in betas if not (b.converged and math.isfinite(b.residual))]
        return untestable(claim, f"Lanczos did not converge at {', '.join(bad)}: β there is a lower bound only",
                          "a converged solve (more hessian_iters)", quantity=q, measured=lower, threshold=1.0,
                          relation="≤", rests_on=rests, details=det)
    upper = max(eta * b.upper for _, b in betas)
    m = margin_one_sided(upper, 1.0, "≤")
    return Verdict(claim, "holds" if m >= 0 else "untestable", q, upper, 1.0, "≤", m if m >= 0 else None, rests,
                   why="" if m >= 0 else "η·β ≤ 1 but η·β(1 + residual) > 1: the solve's accuracy cannot decide",
                   decide="" if m >= 0 else "a tighter Lanczos tolerance", details=det)
