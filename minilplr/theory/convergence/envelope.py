r"""Theorem 5.4's (10) and (14) on a measured loss curve: the envelope and its demand, the per-step contraction.

.. math:: L_{t+1} - L^* \le (1 - \eta\mu)(L_t - L^*) \tag{14}
.. math:: L_t - L^* \le (1 - \eta\mu)^t (L_0 - L^*) \tag{10}

Both with the rounding slack of the loss's dtype (:func:`rounding_slack`),
and ``μ_t`` held between NTK checkpoints (:func:`mu_per_step`).  Package
docstring: when each check has power.
"""
from __future__ import annotations

import math

import numpy as np

from ..verdicts import Verdict, fmt, untestable, vacuous

MIN_DEMAND = 10.0
"""An envelope that demands less than this factor of decrease over the run is a check without power (E1)."""


def loss_gap(loss, l_star):
    """``L_t − L*`` as a host float64 vector ``(T,)``; refuses fewer than two values or a non-finite one."""
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
    g = loss_gap(loss, l_star)
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
    g = loss_gap(loss, l_star)
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
