r"""The :class:`Verdict`: one row of a claims table, its signed margin, its rendering (package docstring: the words).

Also the rows that a judge of another module decides (:func:`vacuous`,
:func:`untestable`), the worst of several verdicts (:func:`worst_case`), and
the one number formatter :func:`fmt` of verdicts, captions and reports.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

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



def finite_number(x) -> bool:
    """``x`` is an int or a float (Python or NumPy) and finite; ``None``, strings and NaN are not."""
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
        return finite_number(self.margin) and abs(float(self.margin)) < MARGINAL

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
    alt = v.details.get("alternative") if v.relation == "=" else None  # an exponent claim: "= 1 (alt. 0)"
    return f"{v.relation} {fmt(v.threshold)}".strip() + (f" (alt. {fmt(alt)})" if alt is not None else "")


def render_row(v: Verdict, experiment: str | None = None) -> str:
    """One Markdown row ``[experiment |] claim | measured | threshold | margin | verdict``.

    *measured*: ``quantity = number; rests_on``.  *margin*: signed percent,
    "(marginal)" within 10 %.  *verdict*: the status word (``fails`` in bold),
    then ``why`` and, for vacuous and untestable rows, ``decide``.
    """
    meas = f"{v.quantity} = {fmt(v.measured, 4)}" if v.measured is not None else (v.quantity or "—")
    if v.rests_on:
        meas = f"{meas}; {v.rests_on}"
    marg = "—" if not finite_number(v.margin) else f"{float(v.margin) * 100:+.3g} %" + (" (marginal)" if v.marginal else "")
    word = f"**{v.status}**" if v.status == "fails" else v.status
    tail = "; ".join(t for t in (v.why, f"decide: {v.decide}" if v.decide else "") if t)
    cells = [v.claim, meas, _threshold_text(v), marg, f"{word}: {tail}" if tail else word]
    if experiment is not None:
        cells.insert(0, experiment)
    return "| " + " | ".join(_cell(c) for c in cells) + " |"



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
    worst = min(part, key=lambda i: float(vs[i].margin) if finite_number(vs[i].margin) else math.inf)
    w = vs[worst]
    counts = ", ".join(f"{sum(v.status == s for v in vs)} {s}" for s in order if any(v.status == s for v in vs))
    text = "; ".join(t for t in (rests_on, f"worst of {len(vs)} ({counts}): {labels[worst]}"
                                 + (f", {w.rests_on}" if w.rests_on else "")) if t)
    margins = [float(v.margin) if finite_number(v.margin) else None for v in vs]
    return Verdict(claim, status, w.quantity, w.measured, w.threshold, w.relation, w.margin, text, w.why, w.decide,
                   details=dict(labels=labels, statuses=[v.status for v in vs], margins=margins,
                                measured=[_float_or_none(v.measured) for v in vs]))
