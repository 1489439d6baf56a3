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

The package, one topic per module:

* :mod:`.verdict` — the :class:`Verdict`, its margins, the rows no judge
  decides (:func:`vacuous`, :func:`untestable`), the worst of several
  (:func:`worst_case`), the claims-table row (:func:`render_row`) and the
  one number formatter :func:`fmt`;
* :mod:`.thresholds` — the threshold judges (:func:`compare`,
  :func:`within`, :func:`identity`) and the decade rule (:func:`too_short`,
  :data:`R2_LINEAR`);
* :mod:`.trends` — trends over all points (:func:`monotone`, Spearman's
  :func:`rank_correlation`);
* :mod:`.power_law` — a power-law exponent over seeds, with its bootstrap.

This ``__init__`` is the vocabulary's interface: import from
``minilplr.theory.verdicts``.

Everything here works on host floats and NumPy arrays; a :class:`Verdict`
is JSON data (:meth:`Verdict.to_dict`, :meth:`Verdict.from_dict`), never a
pickle.  Imports NumPy (and SciPy's normal quantile); never the engine,
the training loops or the experiments.
"""
from __future__ import annotations

from .power_law import PowerLawFit, fit_power_law, power_law_exponent, small_sample_factor
from .thresholds import R2_LINEAR, compare, identity, too_short, within
from .trends import critical_spearman, monotone, rank_correlation, spearman
from .verdict import (MARGINAL, STATUSES, TABLE_HEADER, Verdict, fmt, margin_interval, margin_one_sided, render_row,
                      untestable, vacuous, worst_case)

__all__ = [
    "STATUSES", "MARGINAL", "Verdict", "margin_one_sided", "margin_interval",
    "compare", "within", "identity", "vacuous", "untestable", "too_short",
    "monotone", "spearman", "rank_correlation", "critical_spearman",
    "PowerLawFit", "fit_power_law", "power_law_exponent", "small_sample_factor",
    "TABLE_HEADER", "render_row", "fmt", "R2_LINEAR", "worst_case",
]
