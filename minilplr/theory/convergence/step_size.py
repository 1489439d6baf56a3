r"""Theorem 5.4's step size ``η ≤ 1/β`` along the path, from Lanczos estimates of ``β`` (and a Gauss–Newton proxy)."""
from __future__ import annotations

import math

from ..verdicts import Verdict, fmt, margin_one_sided, untestable

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
