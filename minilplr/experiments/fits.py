"""Fits used by the figures: a linear (geometric) rate, a log–log slope, smoothing.

All on host NumPy arrays.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["LineFit", "fit_line", "fit_linear_rate", "fit_loglog_slope", "ema", "resolvable_mask"]


class LineFit(dict):
    """``slope``, ``intercept``, ``r2`` and the fitted index range ``(lo, hi)`` (a dict)."""

    @property
    def slope(self):
        return self["slope"]

    @property
    def r2(self):
        return self["r2"]


def fit_line(x, y) -> LineFit:
    """Least-squares line ``y ≈ a x + b`` with its coefficient of determination R²."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 3:
        return LineFit(slope=float("nan"), intercept=float("nan"), r2=float("nan"), n=int(x.size))
    a, b = np.polyfit(x, y, 1)
    resid = y - (a * x + b)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return LineFit(slope=float(a), intercept=float(b), r2=r2, n=int(x.size))


def resolvable_mask(loss, l_star: float, *, rate: float | None = None, floor_rel: float = 1e-6) -> np.ndarray:
    """Steps where the gap ``L_t − L*`` says something about the rate.

    * The gap must exceed ``floor_rel · max(L_t, L*)``: below that it is
      rounding of the loss itself (float32 resolves ~1e-7 relative).
    * When ``L*`` is the minimum *seen* (the paper's proxy), the last steps
      are biased: if ``L_t − L_true = c q^t`` then
      ``L_t − L_T = c (q^t − q^T)``, whose logarithm bends down by
      ``log(1 − q^{T−t})``.  With a rate ``q`` known (from a first fit), steps
      with ``q^{T−t} > 0.02`` (a bias over 0.02 in log) are excluded.
    """
    loss = np.asarray(loss, float)
    gap = loss - l_star
    ok = gap > floor_rel * np.maximum(np.abs(loss), abs(l_star))
    if rate is not None and 0 < rate < 1:
        T = len(loss) - 1
        t = np.arange(len(loss))
        ok &= rate ** (T - t) <= 0.02
    return ok


def fit_linear_rate(loss, l_star: float = 0.0, *, star_is_min_seen: bool = False, start: int = 0) -> dict:
    r"""Fit ``L_t − L* ≈ C q^t`` on the resolvable steps: returns ``q``, ``R²``, the range.

    ``log(L_t − L*) = log C + t log q`` is a straight line in ``t`` exactly
    when convergence is linear (geometric); R² says how straight.  With
    ``star_is_min_seen`` the fit is done twice, the second time without the
    steps that the proxy bends (see :func:`resolvable_mask`), repeated until
    the fitted range stops changing.

    Returns
    -------
    dict with ``rate`` (q per step), ``log_rate`` (slope), ``r2``, ``lo``, ``hi``
    (first and last fitted step), ``n`` (points), ``l_star``.
    """
    loss = np.asarray(loss, float)
    t = np.arange(len(loss))
    mask = resolvable_mask(loss, l_star) & (t >= start)
    fit = _fit_masked(t, loss, l_star, mask)
    for _ in range(20 if star_is_min_seen else 0):  # the biased first rate excludes too little: iterate
        if not math.isfinite(fit["rate"]):
            break
        new = resolvable_mask(loss, l_star, rate=fit["rate"]) & (t >= start)
        if np.array_equal(new, mask):
            break
        mask = new
        fit = _fit_masked(t, loss, l_star, mask)
    return fit


def _fit_masked(t, loss, l_star, mask):
    idx = np.nonzero(mask)[0]
    if idx.size < 3:
        return dict(rate=float("nan"), log_rate=float("nan"), r2=float("nan"), lo=None, hi=None, n=int(idx.size),
                    l_star=float(l_star))
    f = fit_line(t[idx], np.log(loss[idx] - l_star))
    return dict(rate=math.exp(f.slope), log_rate=f.slope, intercept=f["intercept"], r2=f.r2, lo=int(idx[0]),
                hi=int(idx[-1]), n=int(idx.size), l_star=float(l_star))


def fit_loglog_slope(x, y, mask=None) -> dict:
    """Slope and R² of ``log y`` against ``log x`` (positive entries, optional mask)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        ok &= mask
    f = fit_line(np.log(x[ok]), np.log(y[ok]))
    return dict(slope=f.slope, intercept=f.get("intercept", float("nan")), r2=f.r2, n=int(ok.sum()))


def ema(x, beta: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average (for noisy SGD losses)."""
    x = np.asarray(x, float)
    out = np.empty_like(x)
    m = 0.0
    for i, v in enumerate(x):
        m = beta * m + (1 - beta) * v
        out[i] = m / (1 - beta ** (i + 1))
    return out
