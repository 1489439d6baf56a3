r"""The threshold judges (``≤``, ``≥``, an interval, an identity) and the decade rule of a straight-line reading."""
from __future__ import annotations

import math

import numpy as np

from .verdict import RELATIONS, Verdict, finite_number, fmt, margin_interval, margin_one_sided, untestable

# --------------------------------------------------------------------------- threshold judges


def compare(claim: str, measured, threshold: float, relation: str, *, quantity: str = "", scale: float | None = None,
            rests_on: str = "", missing: str = "") -> Verdict:
    """``measured ≤ threshold`` or ``≥``: holds or fails, with the margin; untestable when nothing was measured.

    Parameters
    ----------
    measured : float (NaN or None: nothing measured -> untestable, ``missing`` says why)
    threshold : float
    relation : "≤" or "≥" (also "<=", ">=")
    scale : float, optional
        The margin's unit (default ``|threshold|``; needed for a threshold at 0).
    """
    rel = RELATIONS.get(relation)
    if rel is None:
        raise ValueError(f"relation: expected '≤' or '≥' (or '<=', '>='), got {relation!r}")
    if not finite_number(threshold):
        raise ValueError(f"threshold: expected a finite number, got {threshold!r}")
    if not finite_number(measured):
        return Verdict(claim, "untestable", quantity, None, float(threshold), rel, None, rests_on,
                       why=missing or f"{quantity or 'the number'} was not measured (n/a)",
                       decide="a run that measures it")
    m = margin_one_sided(measured, threshold, rel, scale)
    return Verdict(claim, "holds" if m >= 0 else "fails", quantity, float(measured), float(threshold), rel, m, rests_on)


def within(claim: str, measured, lo: float, hi: float, *, quantity: str = "", rests_on: str = "",
           missing: str = "") -> Verdict:
    """``lo ≤ measured ≤ hi``: holds or fails, margin in half-widths; untestable when nothing was measured."""
    if not (finite_number(lo) and finite_number(hi) and float(hi) > float(lo)):
        raise ValueError(f"lo, hi: expected finite lo < hi, got {lo!r}, {hi!r}")
    if not finite_number(measured):
        return Verdict(claim, "untestable", quantity, None, (float(lo), float(hi)), "in", None, rests_on,
                       why=missing or f"{quantity or 'the number'} was not measured (n/a)",
                       decide="a run that measures it")
    m = margin_interval(measured, lo, hi)
    return Verdict(claim, "holds" if m >= 0 else "fails", quantity, float(measured), (float(lo), float(hi)), "in", m,
                   rests_on)


def identity(claim: str, error, tolerance: float, *, quantity: str = "relative error", rests_on: str = "") -> Verdict:
    """A mathematical identity checked numerically: ``identity`` when ``error ≤ tolerance``, else ``fails``.

    ``error`` is how far the two sides are apart (relative, say); the margin
    is ``(tolerance − error)/tolerance``.  An identity is true for every
    network: the row checks the solver, not the theory, and says so.
    """
    if not (finite_number(tolerance) and float(tolerance) > 0):
        raise ValueError(f"tolerance: expected a positive number, got {tolerance!r}")
    if not finite_number(error):
        return Verdict(claim, "fails", quantity, None, float(tolerance), "≤", None, rests_on,
                       why="the identity's two sides could not be compared (n/a)")
    m = margin_one_sided(error, tolerance, "≤")
    return Verdict(claim, "identity" if m >= 0 else "fails", quantity, float(error), float(tolerance), "≤", m, rests_on,
                   why="a mathematical identity, true for every network: a check of the solver, not of the theory"
                   if m >= 0 else "the identity does not hold to the tolerance: the solver or the code is wrong")
# --------------------------------------------------------------------------- too short: the decade rule


def too_short(claim: str, loss, *, l_star: float = 0.0, factor: float = 10.0) -> Verdict | None:
    r"""The decade rule: ``untestable`` when the gap fell by less than ``factor`` over the run, else ``None``.

    .. math:: \frac{L_0 - L^*}{L_{T-1} - L^*} < 10 \;\Rightarrow\; \text{untestable}

    Over less than a decade of decrease any smooth decreasing curve is
    nearly straight on a log axis: a straight-line (linear-rate) reading
    cannot be told from a sublinear one.  The verdict says how many more
    steps would reach a decade at the rate of the run's second half (or
    that the gap has stopped falling).  A gate: ``v = too_short(...)``;
    ``if v: return v``.

    Parameters
    ----------
    loss : sequence (T,), the loss per step
    l_star : float, ``L*``
    factor : float > 1, the decrease asked for (10: a decade)
    """
    g = np.asarray(loss, float) - float(l_star)
    if not (float(factor) > 1):
        raise ValueError(f"factor: expected a decrease factor > 1, got {factor!r}")
    if g.size < 2 or not np.all(np.isfinite(g)) or g[0] <= 0:
        return untestable(claim, f"{g.size} step(s) with a positive finite gap L_t − L*", "a run of at least two steps "
                          "with L_0 > L*", quantity="L_0/L_T")
    if g[-1] <= 0:
        return None  # the gap reached L*: it fell by more than any factor
    dec = float(g[0] / g[-1])
    if dec >= float(factor):
        return None
    half = g.size // 2
    rate = math.log(g[half] / g[-1]) / max(g.size - 1 - half, 1) if g[half] > 0 else float("nan")
    need = math.log(float(factor) / dec)
    more = (f"about {math.ceil(need / rate)} more steps at the second half's rate "
            f"({fmt(rate)} per step in log)") if rate > 0 else "a run whose gap still falls (it stopped falling)"
    return untestable(claim, f"the gap fell by a factor {fmt(dec)} < {fmt(float(factor))} over {g.size} steps: over "
                      "less than a decade any smooth decreasing curve is nearly straight on a log axis",
                      f"a run over which the gap falls by {fmt(float(factor))}: {more}",
                      quantity="(L_0 − L*)/(L_T − L*)", measured=dec, threshold=float(factor), relation="≥")


# --------------------------------------------------------------------------- shared thresholds, worst case (V2)

R2_LINEAR = 0.95
r"""The one R² threshold of a straight-line (geometric-rate) reading of ``log(L_t − L*)`` against ``t``.

Shared by Fig. 1, Fig. 3 and Fig. 4: a run is read as "log-linear" when the
least-squares line through ``log(L_t − L*)`` explains at least 95 % of its
variance.  R² alone has little power against sublinear decay over less than
a decade (:func:`too_short` gates it) and none against a sum of geometric
terms (:func:`minilplr.theory.convergence.linear_convergence` is the test
with power); it is kept because it is what the paper's figures show.
"""
