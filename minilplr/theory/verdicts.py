r"""The verdict vocabulary: what one row of a claims table may say, and the judges that say it (issue 20).

A claims table is worth what its "yes" could have been "no".  Every claim
minilplr checks ends in one :class:`Verdict`, whose ``status`` is one of five
words, each defined exactly:

``holds``
    The measured number is on the claim's side of a stated threshold, and the
    check could have failed on this run: a different curve, a different
    number, would have flipped it.  The row states the threshold and the
    margin.
``fails``
    The measured number is on the other side of the stated threshold.  The
    row states by how much (a negative margin).
``vacuous``
    The check passed but could not have failed on this run, or only on a
    run unlike any the experiment could produce.  The row says why in numbers
    ("the envelope never drops below 0.994·(L_0 − L*)") and names the check
    that has power (``decide``).
``untestable``
    The run is too short or too small to tell the claim from its negation
    (a loss that fell by less than a decade, a run shorter than the time its
    kernel-regime curve needs to be one straight line, three points to
    rank).  The row says what would decide it (``decide``): more steps, more
    seeds, more points, and how many.
``identity``
    A mathematical identity, true for every network, shown to hold to the
    solver's tolerance: a check of the code, not of the theory (e.g. the
    Rayleigh-quotient steps (6)–(8) of Theorem 5.1).  When the identity
    does not hold to the tolerance, the solver is wrong and the row says
    ``fails``.

The margin (signed, relative: how far from flipping)
----------------------------------------------------
For a one-sided threshold ``x ≤ c`` (or ``x ≥ c``), the margin is the
distance to the threshold in units of its scale ``s`` (default ``|c|``),
positive on the claim's side:

.. math:: m = \frac{c - x}{s} \quad (x \le c), \qquad m = \frac{x - c}{s} \quad (x \ge c)

so ``m = 0.12`` means the measured number could move by 12 % of the
threshold before the verdict flips, and ``m = −0.05`` that it missed by 5 %.
A threshold at zero has no scale of its own; the judge then asks for one
(e.g. ``λ_0/n`` for ``μ_cert > 0``).  For an interval ``lo ≤ x ≤ hi`` the
unit is the half-width: ``m = min(x − lo, hi − x) / ((hi − lo)/2)`` (1 at
the centre, 0 at an end).  A row whose ``|m| < 0.1`` is **marginal**: within
10 % of its threshold, flagged in the table whatever its status.

The judges
----------
:func:`compare` (``≤``, ``≥``), :func:`within` (an interval),
:func:`identity`, :func:`too_short` (the decade rule), :func:`monotone`,
:func:`rank_correlation` (Spearman, all points, with its permutation
``p``), :func:`fit_power_law` + :func:`power_law_exponent` (an exponent
with a bootstrap interval over seeds, and :meth:`PowerLawFit.predict`
to extrapolate with an interval), :func:`vacuous` and :func:`untestable`
for rows that a judge of another module decides (:mod:`.convergence`).
:func:`render_row` writes one row of the claims table,
``claim | measured | threshold | margin | verdict``.

Everything here works on host floats and NumPy arrays; a :class:`Verdict`
is JSON data (:meth:`Verdict.to_dict`, :meth:`Verdict.from_dict`), never a
pickle.  Imports NumPy (and SciPy's normal quantile); never the engine,
the training loops or the experiments.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "STATUSES", "MARGINAL", "Verdict", "margin_one_sided", "margin_interval",
    "compare", "within", "identity", "vacuous", "untestable", "too_short",
    "monotone", "spearman", "rank_correlation", "critical_spearman",
    "PowerLawFit", "fit_power_law", "power_law_exponent",
    "TABLE_HEADER", "render_row", "fmt", "R2_LINEAR", "worst_case",
]

STATUSES = ("holds", "fails", "vacuous", "untestable", "identity")
"""The five words a claims-table row may say (module docstring)."""
MARGINAL = 0.1
"""A row whose ``|margin|`` is below this is marked marginal (within 10 % of its threshold)."""
RELATIONS = {"<=": "≤", "≤": "≤", ">=": "≥", "≥": "≥"}


def fmt(x, digits: int = 3) -> str:
    """A compact number, the one formatter of verdicts, captions and reports: ``digits`` significant digits
    (``:g``), integers and booleans as they are, ``n/a`` for ``None`` or a non-finite float."""
    if x is None or (isinstance(x, (float, np.floating)) and not math.isfinite(float(x))):
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.{digits}g}"


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float, np.integer, np.floating)) and math.isfinite(float(x))


def _float_or_none(x):
    return None if x is None else float(x)


# --------------------------------------------------------------------------- the verdict


@dataclass(frozen=True)
class Verdict:
    """One row of a claims table: the claim, the number, the threshold, the margin and one of five words.

    Attributes
    ----------
    claim : str
        What is claimed, in words a reader can check ("GD converges linearly").
    status : str
        One of :data:`STATUSES` (module docstring: each word's definition).
    quantity : str
        The name of the measured number ("R²", "local-rate ratio", "ρ_s").
    measured : float or None
        The number the verdict compares (None when there is none, e.g. an
        untestable row with nothing measured).
    threshold : float, (lo, hi) or None
        What it is compared with; ``relation`` says how.
    relation : str
        ``"≤"``, ``"≥"``, ``"in"`` (an interval), or ``""`` when nothing is compared.
    margin : float or None
        Signed relative distance to flipping (module docstring); positive on
        the claim's side.
    rests_on : str
        How the number was measured: the data, the steps, the fit, the solver.
    why : str
        Why this status: for ``vacuous`` and ``untestable`` the reason in
        numbers; for the others an optional one-line reading.
    decide : str
        ``untestable``: what would decide the claim (more steps, seeds,
        points: how many).  ``vacuous``: the check that has power.
    details : dict
        Further numbers, JSON data (host floats, ints, strings, lists).
    """

    claim: str
    status: str
    quantity: str = ""
    measured: float | None = None
    threshold: float | tuple | None = None
    relation: str = ""
    margin: float | None = None
    rests_on: str = ""
    why: str = ""
    decide: str = ""
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status: expected one of {', '.join(STATUSES)}, got {self.status!r}")
        if not isinstance(self.claim, str) or not self.claim:
            raise ValueError(f"claim: expected a non-empty string, got {self.claim!r}")

    @property
    def marginal(self) -> bool:
        """``|margin| < MARGINAL``: the verdict would flip if the measured number moved by under 10 % of the threshold."""
        return _finite(self.margin) and abs(float(self.margin)) < MARGINAL

    @property
    def holds(self):
        """The runner's old column: ``True`` for holds and identity, ``False`` for fails, ``None`` otherwise."""
        return {"holds": True, "identity": True, "fails": False}.get(self.status)

    def to_dict(self) -> dict:
        """JSON data (tuples become lists; NaN stays a float, which :mod:`json` writes as ``NaN``)."""
        thr = list(self.threshold) if isinstance(self.threshold, tuple) else self.threshold
        return dict(claim=self.claim, status=self.status, quantity=self.quantity,
                    measured=_float_or_none(self.measured),
                    threshold=[float(t) for t in thr] if isinstance(thr, list) else _float_or_none(thr),
                    relation=self.relation, margin=_float_or_none(self.margin), marginal=self.marginal,
                    rests_on=self.rests_on, why=self.why, decide=self.decide, details=dict(self.details))

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        """The inverse of :meth:`to_dict` (``marginal`` is recomputed, not read)."""
        thr = d.get("threshold")
        return cls(claim=d["claim"], status=d["status"], quantity=d.get("quantity", ""), measured=d.get("measured"),
                   threshold=tuple(thr) if isinstance(thr, list) else thr, relation=d.get("relation", ""),
                   margin=d.get("margin"), rests_on=d.get("rests_on", ""), why=d.get("why", ""),
                   decide=d.get("decide", ""), details=dict(d.get("details", {})))

    def __str__(self):
        return render_row(self)


def margin_one_sided(measured: float, threshold: float, relation: str, scale: float | None = None) -> float:
    r"""The signed margin of ``measured relation threshold`` (module docstring).

    .. math:: m = \frac{c - x}{s}\ (x \le c), \qquad m = \frac{x - c}{s}\ (x \ge c), \qquad s = |c| \text{ unless given}
    """
    rel = RELATIONS.get(relation)
    if rel is None:
        raise ValueError(f"relation: expected '≤' or '≥' (or '<=', '>='), got {relation!r}")
    s = abs(float(threshold)) if scale is None else float(scale)
    if not (s > 0 and math.isfinite(s)):
        raise ValueError(f"scale: expected a positive finite scale for the margin (a threshold at 0 needs one), "
                         f"got {scale!r} with threshold {threshold!r}")
    d = float(threshold) - float(measured) if rel == "≤" else float(measured) - float(threshold)
    return d / s


def margin_interval(measured: float, lo: float, hi: float) -> float:
    r"""The signed margin of ``lo ≤ x ≤ hi``: ``min(x − lo, hi − x)`` in units of the half-width."""
    if not (float(hi) > float(lo)):
        raise ValueError(f"lo, hi: expected lo < hi, got {lo!r}, {hi!r}")
    return min(float(measured) - float(lo), float(hi) - float(measured)) / ((float(hi) - float(lo)) / 2)


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
    if not _finite(threshold):
        raise ValueError(f"threshold: expected a finite number, got {threshold!r}")
    if not _finite(measured):
        return Verdict(claim, "untestable", quantity, None, float(threshold), rel, None, rests_on,
                       why=missing or f"{quantity or 'the number'} was not measured (n/a)",
                       decide="a run that measures it")
    m = margin_one_sided(measured, threshold, rel, scale)
    return Verdict(claim, "holds" if m >= 0 else "fails", quantity, float(measured), float(threshold), rel, m, rests_on)


def within(claim: str, measured, lo: float, hi: float, *, quantity: str = "", rests_on: str = "",
           missing: str = "") -> Verdict:
    """``lo ≤ measured ≤ hi``: holds or fails, margin in half-widths; untestable when nothing was measured."""
    if not (_finite(lo) and _finite(hi) and float(hi) > float(lo)):
        raise ValueError(f"lo, hi: expected finite lo < hi, got {lo!r}, {hi!r}")
    if not _finite(measured):
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
    if not (_finite(tolerance) and float(tolerance) > 0):
        raise ValueError(f"tolerance: expected a positive number, got {tolerance!r}")
    if not _finite(error):
        return Verdict(claim, "fails", quantity, None, float(tolerance), "≤", None, rests_on,
                       why="the identity's two sides could not be compared (n/a)")
    m = margin_one_sided(error, tolerance, "≤")
    return Verdict(claim, "identity" if m >= 0 else "fails", quantity, float(error), float(tolerance), "≤", m, rests_on,
                   why="a mathematical identity, true for every network: a check of the solver, not of the theory"
                   if m >= 0 else "the identity does not hold to the tolerance: the solver or the code is wrong")


def vacuous(claim: str, why: str, decide: str = "", *, quantity: str = "", measured=None, threshold=None,
            relation: str = "", margin=None, rests_on: str = "", details: dict | None = None) -> Verdict:
    """A row that passed but could not have failed: ``why`` says so in numbers, ``decide`` names the check with power."""
    if not why:
        raise ValueError("why: a vacuous verdict must say why the check could not have failed")
    return Verdict(claim, "vacuous", quantity, _float_or_none(measured), threshold, relation, _float_or_none(margin),
                   rests_on, why, decide, dict(details or {}))


def untestable(claim: str, why: str, decide: str, *, quantity: str = "", measured=None, threshold=None,
               relation: str = "", rests_on: str = "", details: dict | None = None) -> Verdict:
    """A row the run cannot decide: ``why`` (too short, too few points) and ``decide`` (what would) are required."""
    if not why or not decide:
        raise ValueError("why, decide: an untestable verdict must say why and what would decide it")
    return Verdict(claim, "untestable", quantity, _float_or_none(measured), threshold, relation, None, rests_on, why,
                   decide, dict(details or {}))


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
        The bootstrap percentile interval of ``a`` at ``level``.
    level : float
    boot : numpy array (B, 2)
        ``(a, log C)`` of each bootstrap resample (host).
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


def fit_power_law(x, samples, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0,
                  paired: bool = False) -> PowerLawFit:
    r"""Fit ``E[y] ∝ x^a`` through the seed means, with a bootstrap interval for ``a`` over the seeds.

    .. math:: \log \bar y(x_j) = \log C + a \log x_j, \qquad \bar y(x_j) = \frac{1}{S_j}\sum_{s} y_{s}(x_j)

    The mean, not the median, because the claim is about ``E[y]``.  The
    bootstrap resamples the seeds of each ``x`` with replacement
    (``paired=True``: the same seed indices for every ``x``, for runs that
    share their seeds across ``x``), refits, and takes the percentile
    interval of the ``n_boot`` exponents.  The resampling generator is seeded:
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
    q = (1 - float(level)) / 2
    lo, hi = np.quantile(boot[:, 0], [q, 1 - q])
    return PowerLawFit(a, lc, (float(lo), float(hi)), float(level), boot, xs, means, tuple(int(c.size) for c in cols))


def power_law_exponent(claim: str, fit: PowerLawFit, predicted: float, alternative: float | None = None, *,
                       quantity: str = "a") -> Verdict:
    r"""The exponent claim: holds when the interval contains ``predicted`` and excludes ``alternative``.

    * *fails*: the interval excludes ``predicted`` (margin: how far outside,
      in half-widths, negative);
    * *untestable*: the interval contains both ``predicted`` and
      ``alternative``: too few seeds to tell them apart.  The row says how
      many would: the half-width shrinks like ``1/√S``, so
      ``S·(w/w_needed)²`` with ``w_needed = |predicted − alternative|/2``;
    * *holds*: contains ``predicted`` and excludes ``alternative``; the margin is the
      smaller of the two distances (to the interval's nearer end, and of the
      alternative outside it), in half-widths;
    * *untestable* also when some ``x`` has fewer than 2 seeds, or the
      interval has zero width: a bootstrap over one seed (or over seeds that
      agree exactly) resamples no spread, and its interval, a single point,
      is a certainty drawn from nothing.  The row asks for at least 2 seeds
      per ``x`` (3 or more for a usable interval), after which it says how
      many would decide.
    """
    lo, hi = fit.interval
    w = (hi - lo) / 2
    if min(fit.seeds) < 2 or not w > 0:
        few = min(fit.seeds) < 2
        seeds = "/".join(str(k) for k in fit.seeds)
        return untestable(claim, (f"{seeds} seeds per x: one seed at some x has no spread to resample, so the "
                                  f"bootstrap interval [{fmt(lo)}, {fmt(hi)}] is a point, not an uncertainty") if few
                          else (f"the {seeds} seeds at every x give the same mean under every resample (interval "
                                f"[{fmt(lo)}, {fmt(hi)}] of zero width): no spread, deterministic or repeated runs"),
                          "at least 2 independent seeds at every x (3 or more for a usable interval); the row then "
                          "says how many seeds would separate the predicted exponent from the alternative",
                          quantity=quantity, measured=fit.a, threshold=(lo, hi), relation="in",
                          details=dict(a=fit.a, interval=list(fit.interval), seeds=list(fit.seeds)))
    ctr = f"{fmt(fit.level * 100, 3)} % bootstrap interval [{fmt(lo)}, {fmt(hi)}] over seeds"
    rests = (f"E[y] ∝ x^a through the seed means at x = {', '.join(fmt(v) for v in fit.x)} "
             f"({'/'.join(str(s) for s in fit.seeds)} seeds): a = {fmt(fit.a)}, {ctr}")
    det = dict(a=fit.a, interval=list(fit.interval), level=fit.level, predicted=float(predicted),
               alternative=None if alternative is None else float(alternative), seeds=list(fit.seeds))
    m_in = margin_interval(predicted, lo, hi)
    if m_in < 0:
        return Verdict(claim, "fails", quantity, fit.a, (lo, hi), "in", m_in, rests,
                       why=f"the interval excludes the predicted exponent {fmt(float(predicted))}", details=det)
    if alternative is None:
        return Verdict(claim, "holds", quantity, fit.a, (lo, hi), "in", m_in, rests, details=det)
    out = max(lo - float(alternative), float(alternative) - hi) / w
    if out < 0:
        need = abs(float(predicted) - float(alternative)) / 2
        more = math.ceil(max(fit.seeds) * (w / need) ** 2) if need > 0 else math.inf
        return untestable(claim, f"the interval contains both the predicted {fmt(float(predicted))} and the "
                          f"alternative {fmt(float(alternative))}", f"about {more} seeds per x (the half-width "
                          f"{fmt(w)} must fall below {fmt(need)}; it shrinks like 1/√seeds)",
                          quantity=quantity, measured=fit.a, threshold=(lo, hi), relation="in", rests_on=rests,
                          details=det)
    return Verdict(claim, "holds", quantity, fit.a, (lo, hi), "in", min(m_in, out), rests,
                   why=f"contains {fmt(float(predicted))}, excludes {fmt(float(alternative))}", details=det)


# --------------------------------------------------------------------------- the claims table

TABLE_HEADER = ("| experiment | claim | measured | threshold | margin | verdict |\n"
                "|---|---|---|---|---|---|")
"""The claims table's header (with :func:`render_row` ``experiment=...``)."""


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _threshold_text(v: Verdict) -> str:
    if v.threshold is None:
        return "—"
    if isinstance(v.threshold, tuple):
        return f"in [{fmt(v.threshold[0])}, {fmt(v.threshold[1])}]"
    return f"{v.relation} {fmt(v.threshold)}".strip()


def render_row(v: Verdict, experiment: str | None = None) -> str:
    """One Markdown row ``[experiment |] claim | measured | threshold | margin | verdict``.

    *measured*: ``quantity = number; rests_on``.  *margin*: signed percent,
    "(marginal)" within 10 %.  *verdict*: the status word (``fails`` in bold),
    then ``why`` and, for vacuous and untestable rows, ``decide``.
    """
    meas = f"{v.quantity} = {fmt(v.measured, 4)}" if v.measured is not None else (v.quantity or "—")
    if v.rests_on:
        meas = f"{meas}; {v.rests_on}"
    marg = "—" if not _finite(v.margin) else f"{float(v.margin) * 100:+.3g} %" + (" (marginal)" if v.marginal else "")
    word = f"**{v.status}**" if v.status == "fails" else v.status
    tail = "; ".join(t for t in (v.why, f"decide: {v.decide}" if v.decide else "") if t)
    cells = [v.claim, meas, _threshold_text(v), marg, f"{word}: {tail}" if tail else word]
    if experiment is not None:
        cells.insert(0, experiment)
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


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


def worst_case(claim: str, verdicts, *, labels=None, rests_on: str = "") -> Verdict:
    r"""One claim over several settings (seeds, smoothing factors, widths): it holds only where every part holds.

    The status is the worst of the parts, in the order
    ``fails > untestable > vacuous > holds > identity``; the measured number,
    threshold and margin are those of the part with the smallest margin
    among the parts of that status (the one nearest to flipping, or
    furthest on the wrong side), so the row states the worst case, not an
    average.

    .. math:: m = \min_k m_k

    Parameters
    ----------
    verdicts : sequence of Verdict (at least one)
    labels : sequence of str, optional, one per verdict ("seed 0, EMA 0.9"), named in the row
    rests_on : str, prefixed to the worst part's own ``rests_on``
    """
    vs = list(verdicts)
    if not vs or not all(isinstance(v, Verdict) for v in vs):
        raise ValueError("verdicts: expected at least one Verdict")
    labels = [f"part {i}" for i in range(len(vs))] if labels is None else [str(x) for x in labels]
    if len(labels) != len(vs):
        raise ValueError(f"labels: expected one label per verdict ({len(vs)}), got {len(labels)}")
    order = ("fails", "untestable", "vacuous", "holds", "identity")
    status = min((v.status for v in vs), key=order.index)
    part = [i for i, v in enumerate(vs) if v.status == status]
    worst = min(part, key=lambda i: float(vs[i].margin) if _finite(vs[i].margin) else math.inf)
    w = vs[worst]
    counts = ", ".join(f"{sum(v.status == s for v in vs)} {s}" for s in order if any(v.status == s for v in vs))
    text = "; ".join(t for t in (rests_on, f"worst of {len(vs)} ({counts}): {labels[worst]}"
                                 + (f", {w.rests_on}" if w.rests_on else "")) if t)
    margins = [float(v.margin) if _finite(v.margin) else None for v in vs]
    return Verdict(claim, status, w.quantity, w.measured, w.threshold, w.relation, w.margin, text, w.why, w.decide,
                   details=dict(labels=labels, statuses=[v.status for v in vs], margins=margins,
                                measured=[_float_or_none(v.measured) for v in vs]))
