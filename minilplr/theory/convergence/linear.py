r"""The linear-convergence judge (L1): the ratio of the local rates of a judged window's two halves."""
from __future__ import annotations

import math

import numpy as np

from ..verdicts import Verdict, fmt, untestable
from .dominance import DELTA, DominanceTime
from .envelope import loss_gap, rounding_slack

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
    g = loss_gap(loss, l_star)
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
