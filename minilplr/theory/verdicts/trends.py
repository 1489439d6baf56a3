r"""Trend judges over all points: strictly monotone, and Spearman's rank correlation with its permutation ``p``."""
from __future__ import annotations

import itertools
import math

import numpy as np

from .verdict import Verdict, fmt, margin_one_sided, untestable

# --------------------------------------------------------------------------- monotone, rank correlation


def _order(x, y, name="y"):
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{name}: expected as many values as x ({x.size}), got {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError(f"x, {name}: expected finite values")
    o = np.argsort(x, kind="stable")
    return x[o], y[o]


def monotone(claim: str, x, y, direction: str = "decreasing", *, quantity: str = "y") -> Verdict:
    r"""``y`` strictly monotone in ``x`` (every consecutive pair, all points): holds or fails.

    .. math:: m = \frac{\min_i s\,\Delta y_i}{\operatorname{mean}_i |\Delta y_i|}, \qquad
              s = -1 \text{ (decreasing)},\ +1 \text{ (increasing)}

    The margin is the worst step against the typical step: ``m < 0``: some
    step goes the wrong way (by ``|m|`` typical steps); ``0 ≤ m < 0.1``: one
    step is nearly flat.  Untestable with fewer than 3 points.
    """
    if direction not in ("decreasing", "increasing"):
        raise ValueError(f"direction: expected 'decreasing' or 'increasing', got {direction!r}")
    xs, ys = _order(x, y)
    s = -1.0 if direction == "decreasing" else 1.0
    if xs.size < 3:
        return untestable(claim, f"{xs.size} point(s): a trend needs at least 3", "at least 3 points",
                          quantity=f"min step of {quantity}")
    dy = np.diff(ys)
    typical = float(np.mean(np.abs(dy)))
    if typical == 0:
        return Verdict(claim, "fails", f"min step of {quantity}", 0.0, 0.0, "≥", 0.0, f"{xs.size} points, all equal")
    worst = int(np.argmin(s * dy))
    m = float(s * dy[worst]) / typical
    text = (f"{xs.size} points; the worst step {fmt(ys[worst])} → {fmt(ys[worst + 1])} at x = {fmt(xs[worst])} → "
            f"{fmt(xs[worst + 1])} (mean |step| {fmt(typical)})")
    return Verdict(claim, "holds" if m > 0 else "fails", f"worst {direction[:-3]}e step / mean |step|", m, 0.0, "≥", m,
                   text, details=dict(x=xs.tolist(), y=ys.tolist()))


def _ranks(a):
    """Average ranks (ties share their mean rank), 0-based."""
    a = np.asarray(a, float)
    order = np.argsort(a, kind="stable")
    r = np.empty(a.size)
    r[order] = np.arange(a.size, dtype=float)
    for v in np.unique(a):
        tie = a == v
        if tie.sum() > 1:
            r[tie] = r[tie].mean()
    return r


def spearman(x, y) -> float:
    r"""Spearman's rank correlation: Pearson's correlation of the (average) ranks, all points used.

    .. math:: \rho_s = \frac{\sum_i (R_i - \bar R)(S_i - \bar S)}{\sqrt{\sum_i (R_i - \bar R)^2 \sum_i (S_i - \bar S)^2}}
    """
    rx, ry = _ranks(np.asarray(x, float).ravel()), _ranks(np.asarray(y, float).ravel())
    if rx.size != ry.size:
        raise ValueError(f"y: expected as many values as x ({rx.size}), got {ry.size}")
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / den if den > 0 else float("nan")


EXACT_MAX = 8
"""Up to this many points the permutation distribution of ``ρ_s`` is enumerated (8! = 40,320 orderings)."""


def _permuted_rhos(x, y) -> np.ndarray:
    """``ρ_s`` of ``x`` against every ordering of ``y`` (``n!`` values; ranks permute with the values)."""
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    rx = rx - rx.mean()
    perms = np.array(list(itertools.permutations(range(ry.size))), dtype=np.intp)
    R = ry[perms] - ry.mean()  # (n!, n): each row one ordering's ranks, centred
    den = math.sqrt(float(rx @ rx)) * np.sqrt(np.einsum("ij,ij->i", R, R))
    return (R @ rx) / np.where(den > 0, den, np.inf)


def _permutation_p(x, y, s: float) -> float:
    """One-sided permutation ``p``: the fraction of orderings of ``y`` with ``s·ρ_s ≥`` the observed (exact)."""
    return float(np.mean(s * _permuted_rhos(x, y) >= s * spearman(x, y) - 1e-12))


def critical_spearman(n: int, alpha: float = 0.05) -> float:
    r"""The smallest ``ρ_s`` whose one-sided ``p ≤ α`` with ``n`` untied points (``inf`` if none can reach it).

    Exact (all ``n!`` orderings) for ``n ≤ EXACT_MAX``; above, the normal
    approximation ``ρ_crit = z_{1−α}/\sqrt{n − 1}`` (the null variance of
    ``ρ_s`` is ``1/(n − 1)``).
    """
    n = int(n)
    if n < 2:
        return math.inf
    if n <= EXACT_MAX:
        ref = np.arange(n, dtype=float)
        rhos = _permuted_rhos(ref, ref)
        crit = math.inf
        for u in np.unique(np.round(rhos, 12))[::-1]:  # from ρ = 1 down: the tail grows
            if np.mean(rhos >= u - 1e-9) > float(alpha):
                break
            crit = float(u)
        return crit
    from scipy.stats import norm

    return float(norm.ppf(1 - float(alpha)) / math.sqrt(n - 1))


def rank_correlation(claim: str, x, y, expect: str = "decreasing", *, alpha: float = 0.05,
                     threshold: float | None = None, quantity: str = "ρ_s") -> Verdict:
    r"""A monotone trend by Spearman's ``ρ_s`` over all points, with its one-sided permutation ``p``.

    The claim holds when ``s·ρ_s ≥ ρ_crit`` (``s = −1`` for ``"decreasing"``):
    by default ``ρ_crit`` is :func:`critical_spearman` at ``alpha`` (the
    trend is significant), or the caller's ``threshold``.  The margin is
    ``(s·ρ_s − ρ_crit)/ρ_crit``.  *Untestable* when no ordering of ``n``
    points could reach ``p ≤ α`` (``1/n! > α``: with 3 points even a perfect
    ranking has ``p = 1/6``): the row says how many points would.
    """
    if expect not in ("decreasing", "increasing"):
        raise ValueError(f"expect: expected 'decreasing' or 'increasing', got {expect!r}")
    if not (0 < float(alpha) < 1):
        raise ValueError(f"alpha: expected a level in (0, 1), got {alpha!r}")
    xs, ys = _order(x, y)
    n, s = xs.size, (-1.0 if expect == "decreasing" else 1.0)
    if 1.0 / math.factorial(max(n, 1)) > float(alpha) or n < 3:
        need = next(k for k in range(3, 20) if 1.0 / math.factorial(k) <= float(alpha))
        return untestable(claim, f"{n} point(s): even a perfect ranking has p = 1/{n}! = "
                          f"{fmt(1 / math.factorial(max(n, 1)))} > α = {fmt(float(alpha))}",
                          f"at least {need} points", quantity=quantity)
    rho = spearman(xs, ys)
    crit = critical_spearman(n, alpha) if threshold is None else float(threshold)
    p = _permutation_p(xs, ys, s) if n <= EXACT_MAX else _normal_p(s * rho, n)
    if not math.isfinite(rho):
        return Verdict(claim, "fails", quantity, None, crit, "≥", None, f"{n} points, y constant: no ranking")
    m = margin_one_sided(s * rho, crit, "≥")
    test = f"significant at α = {fmt(float(alpha))}" if threshold is None else "the caller's threshold"
    return Verdict(claim, "holds" if m >= 0 else "fails", f"{'−' if s < 0 else ''}ρ_s", s * rho, crit, "≥", m,
                   f"Spearman ρ_s = {fmt(rho)} over all {n} points (one-sided permutation p = {fmt(p)}; threshold: "
                   f"{test})", details=dict(rho=rho, p=p, n=n, alpha=float(alpha)))


def _normal_p(r: float, n: int) -> float:
    from scipy.stats import norm

    return float(norm.sf(r * math.sqrt(n - 1)))
