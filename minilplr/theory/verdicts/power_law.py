r"""A power-law exponent over seeds: the fit through the seed means, its bootstrap interval, the exponent claim."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .verdict import Verdict, fmt, untestable

# --------------------------------------------------------------------------- power laws over seeds


@dataclass(frozen=True)
class PowerLawFit:
    r"""``E[y] = C x^a`` fitted to seed means, with a bootstrap over seeds (:func:`fit_power_law`).

    Attributes
    ----------
    a, log_c : float
        The least-squares line ``log ȳ(x) = log C + a log x`` through the
        seed means ``ȳ(x)``.
    interval : (float, float)
        The bootstrap percentile interval of ``a`` at ``level``, its
        deviations widened by :func:`small_sample_factor` (few seeds).
    level : float
    boot : numpy array (B, 2)
        ``(a, log C)`` of each bootstrap resample, widened about the point
        estimate by :attr:`widen` (host).
    x, mean_y : numpy arrays (k,)
        The distinct ``x`` and the seed means.
    seeds : tuple of int
        Samples per ``x``.
    """

    a: float
    log_c: float
    interval: tuple
    level: float
    boot: np.ndarray = field(repr=False)
    x: np.ndarray = field(repr=False)
    mean_y: np.ndarray = field(repr=False)
    seeds: tuple = ()
    widen: float = 1.0

    def predict(self, x_new):
        r"""``C x^a`` at ``x_new`` and its bootstrap interval at :attr:`level`: ``(y, lo, hi)`` host arrays.

        .. math:: \hat y(x) = C x^{a}, \qquad [\hat y_{lo}, \hat y_{hi}] = \text{percentiles of } C_b x^{a_b}

        An extrapolation (``x`` beyond the fitted range) carries the
        exponent's uncertainty, which grows with ``|log(x/x̄)|``.
        """
        xn = np.asarray(x_new, float)
        if np.any(xn <= 0):
            raise ValueError("x_new: expected positive values (a power law of x)")
        lx = np.log(xn)
        y = np.exp(self.log_c + self.a * lx)
        draws = np.exp(self.boot[:, 1][:, None] + self.boot[:, 0][:, None] * lx.reshape(1, -1))
        q = (1 - self.level) / 2
        lo, hi = np.quantile(draws, [q, 1 - q], axis=0)
        return y, lo.reshape(xn.shape), hi.reshape(xn.shape)


def _loglog_line(lx, ly):
    """Least-squares ``(slope, intercept)`` of ``ly`` on ``lx``."""
    lxm = lx - lx.mean()
    a = float(lxm @ (ly - ly.mean())) / float(lxm @ lxm)
    return a, float(ly.mean() - a * lx.mean())


def small_sample_factor(m: int, level: float) -> float:
    r"""How much wider than the raw bootstrap an interval over ``m`` seeds must be: ``√(m/(m−1))·t_{m−1,q}/z_q``.

    .. math:: f(m) = \sqrt{\frac{m}{m-1}}\;\frac{t_{m-1,\,(1+\text{level})/2}}{z_{(1+\text{level})/2}}

    Two small-sample biases of the percentile bootstrap over ``m`` seeds, each
    corrected as for a mean: the resampled mean's variance is the plug-in
    ``s²(m−1)/m²`` rather than ``s²/m`` (the ``√(m/(m−1))``), and its spread is
    read off as if the variance were known (the normal quantile ``z``) when
    it is estimated from ``m`` seeds (Student's ``t`` with ``m−1`` degrees of
    freedom).  ``m`` is the fewest seeds at any ``x``; the ``t`` is not pooled
    over the ``x`` (that would assume the same relative spread at every
    ``x``).  Measured (tests/theory/test_verdicts.py): a nominal 95 % interval
    covered the true exponent in 66 / 81 / 85 % of synthetic fits at 2 / 3 / 4
    seeds uncorrected, 99 / 99 / 99 % corrected (8 seeds: 89 % → 94 %).
    The price: with 2 seeds ``f = 9.2`` at 95 %, so 2 seeds rarely decide.
    ``m < 2``: 1 (nothing to resample; :func:`power_law_exponent` calls such a
    fit untestable).

    Parameters
    ----------
    m : int, seeds
    level : float in (0, 1)
    """
    if int(m) < 2:
        return 1.0
    from scipy import stats
    q = (1 + float(level)) / 2
    return float(math.sqrt(m / (m - 1)) * stats.t.ppf(q, int(m) - 1) / stats.norm.ppf(q))


def fit_power_law(x, samples, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0,
                  paired: bool = False) -> PowerLawFit:
    r"""Fit ``E[y] ∝ x^a`` through the seed means, with a bootstrap interval for ``a`` over the seeds.

    .. math:: \log \bar y(x_j) = \log C + a \log x_j, \qquad \bar y(x_j) = \frac{1}{S_j}\sum_{s} y_{s}(x_j)

    The mean, not the median, because the claim is about ``E[y]``.  The
    bootstrap resamples the seeds of each ``x`` with replacement
    (``paired=True``: the same seed indices for every ``x``, for runs that
    share their seeds across ``x``), refits, widens each resample's
    deviation from the point estimate by :func:`small_sample_factor` (the
    raw percentile interval covers 66 % instead of 95 % with 2 seeds), and
    takes the percentile interval of the ``n_boot`` exponents.  The resampling generator is seeded:
    the interval is reproducible.  With one seed at some ``x`` (or seeds
    that agree exactly) the interval has no spread to show: the fit is a
    point estimate, and :func:`power_law_exponent` calls it untestable.

    Parameters
    ----------
    x : sequence (k,), positive, distinct
    samples : sequence of k sequences (S_j,) of positive numbers, or an array (S, k)
    level : float in (0, 1)
    n_boot : int, resamples
    seed : int, the bootstrap's generator seed
    paired : bool, resample seed indices jointly (needs the same ``S`` for every ``x``)
    """
    xs = np.asarray(x, float).ravel()
    if isinstance(samples, np.ndarray) and samples.ndim == 2:
        if samples.shape[1] != xs.size:
            raise ValueError(f"samples: expected an (S, {xs.size}) array, got {samples.shape}")
        cols = [samples[:, j].astype(float) for j in range(xs.size)]
    else:
        cols = [np.asarray(s, float).ravel() for s in samples]
    if len(cols) != xs.size or xs.size < 2:
        raise ValueError(f"samples: expected one sequence of samples per x ({xs.size} x, at least 2), got {len(cols)}")
    if np.any(xs <= 0) or np.unique(xs).size != xs.size:
        raise ValueError("x: expected distinct positive values")
    if any(c.size < 1 or not np.all(np.isfinite(c)) or not np.all(c > 0) for c in cols):
        raise ValueError("samples: expected at least one positive finite sample per x")
    if not (0 < float(level) < 1) or int(n_boot) < 100:
        raise ValueError(f"level, n_boot: expected a level in (0, 1) and at least 100 resamples, got {level!r}, {n_boot!r}")
    if paired and len({c.size for c in cols}) != 1:
        raise ValueError("samples: paired=True needs the same number of seeds for every x")
    lx = np.log(xs)
    means = np.array([c.mean() for c in cols])
    a, lc = _loglog_line(lx, np.log(means))
    rng = np.random.default_rng(int(seed))
    boot = np.empty((int(n_boot), 2))
    for b in range(int(n_boot)):
        if paired:
            idx = rng.integers(0, cols[0].size, cols[0].size)
            mb = np.array([c[idx].mean() for c in cols])
        else:
            mb = np.array([c[rng.integers(0, c.size, c.size)].mean() for c in cols])
        boot[b] = _loglog_line(lx, np.log(mb))
    f = small_sample_factor(min(c.size for c in cols), float(level))
    boot = np.array([a, lc]) + f * (boot - np.array([a, lc]))
    q = (1 - float(level)) / 2
    lo, hi = np.quantile(boot[:, 0], [q, 1 - q])
    return PowerLawFit(a, lc, (float(lo), float(hi)), float(level), boot, xs, means,
                       tuple(int(c.size) for c in cols), f)


def power_law_exponent(claim: str, fit: PowerLawFit, predicted: float, alternative: float | None = None, *,
                       quantity: str = "a") -> Verdict:
    r"""The exponent claim: holds when the interval contains ``predicted`` and excludes ``alternative``.

    The row compares the measured exponent with the prediction: threshold
    ``= predicted`` (relation ``"="``; the table shows ``= p (alt. q)``), the
    interval in *rests on*.  The margin is a distance in exponent units
    relative to ``s = |predicted − alternative|`` (the gap the claim must
    resolve; without an alternative ``s = |predicted|``, or 1 at 0), and the
    *why* says it in words ("the interval excludes 1 by 3.04"):

    * *fails*: the interval excludes ``predicted``; margin ``−d/s``, ``d`` the
      distance from ``predicted`` to the interval's nearer end;
    * *untestable*: the interval contains both ``predicted`` and
      ``alternative``: too few seeds to tell them apart.  The row says how
      many would: the half-width shrinks like ``1/√S`` (more slowly with the
      small-sample widening, so the count is a lower bound), so
      ``S·(w/w_needed)²`` with ``w_needed = |predicted − alternative|/2``;
    * *holds*: contains ``predicted`` and excludes ``alternative``; the margin is the
      smaller of the two distances (of ``predicted`` to the interval's nearer
      end, and of the alternative outside it), over ``s``;
    * *untestable* also when some ``x`` has fewer than 2 seeds, or the
      interval has zero width: a bootstrap over one seed (or over seeds that
      agree exactly) resamples no spread, and its interval, a single point,
      is a certainty drawn from nothing.  The row asks for at least 2 seeds
      per ``x`` (3 or more for a usable interval), after which it says how
      many would decide.
    """
    lo, hi = fit.interval
    w = (hi - lo) / 2
    p = float(predicted)
    alt = None if alternative is None else float(alternative)
    s = abs(p - alt) if alt is not None and alt != p else (abs(p) or 1.0)
    if min(fit.seeds) < 2 or not w > 0:
        few = min(fit.seeds) < 2
        seeds = "/".join(str(k) for k in fit.seeds)
        return untestable(claim, (f"{seeds} seeds per x: one seed at some x has no spread to resample, so the "
                                  f"bootstrap interval [{fmt(lo)}, {fmt(hi)}] is a point, not an uncertainty") if few
                          else (f"the {seeds} seeds at every x give the same mean under every resample (interval "
                                f"[{fmt(lo)}, {fmt(hi)}] of zero width): no spread, deterministic or repeated runs"),
                          "at least 2 independent seeds at every x (3 or more for a usable interval); the row then "
                          "says how many seeds would separate the predicted exponent from the alternative",
                          quantity=quantity, measured=fit.a, threshold=p, relation="=",
                          details=dict(a=fit.a, interval=list(fit.interval), seeds=list(fit.seeds), predicted=p,
                                       alternative=alt))
    ctr = f"{fmt(fit.level * 100, 3)} % bootstrap interval [{fmt(lo)}, {fmt(hi)}] over seeds"
    rests = (f"E[y] ∝ x^a through the seed means at x = {', '.join(fmt(v) for v in fit.x)} "
             f"({'/'.join(str(s) for s in fit.seeds)} seeds): a = {fmt(fit.a)}, {ctr}")
    det = dict(a=fit.a, interval=list(fit.interval), level=fit.level, predicted=p, alternative=alt,
               seeds=list(fit.seeds), scale=s)
    d_in = min(p - lo, hi - p)  # < 0: p outside, by −d_in
    unit = f" (margin relative to |{fmt(p)} − {fmt(alt)}| = {fmt(s)})" if alt is not None and alt != p else \
        f" (margin relative to {fmt(s)})"
    if d_in < 0:
        return Verdict(claim, "fails", quantity, fit.a, p, "=", d_in / s, rests,
                       why=f"the interval excludes the predicted exponent {fmt(p)} by {fmt(-d_in)}" + unit,
                       details=det)
    if alt is None:
        return Verdict(claim, "holds", quantity, fit.a, p, "=", d_in / s, rests,
                       why=f"the interval contains {fmt(p)}, {fmt(d_in)} inside its nearer end" + unit, details=det)
    out = max(lo - alt, alt - hi)
    if out < 0:
        need = abs(p - alt) / 2
        more = math.ceil(max(fit.seeds) * (w / need) ** 2) if need > 0 else math.inf
        return untestable(claim, f"the interval [{fmt(lo)}, {fmt(hi)}] contains both the predicted {fmt(p)} and the "
                          f"alternative {fmt(alt)}", f"at least {more} seeds per x (the half-width "
                          f"{fmt(w)} must fall below {fmt(need)}; it shrinks like 1/√seeds)",
                          quantity=quantity, measured=fit.a, threshold=p, relation="=", rests_on=rests,
                          details=det)
    return Verdict(claim, "holds", quantity, fit.a, p, "=", min(d_in, out) / s, rests,
                   why=f"contains {fmt(p)} ({fmt(d_in)} inside its nearer end), excludes {fmt(alt)} by {fmt(out)}"
                       + unit, details=det)
