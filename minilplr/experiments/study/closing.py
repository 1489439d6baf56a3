r"""The closing width: where a study's failure factor would reach 1, predicted per depth, per n, ... (claim and panel kind ``closing_width``).

v3's certificate ``μ = (λ₀ − L̂_Θ r)/n`` is positive iff its failure factor
``f = L̂_Θ r/λ₀`` is below 1 (:mod:`.diagnostics`).  Measured at widths where
``f > 1``, the question is the width ``H^*`` at which it would close, for each
value ``v`` of another setting ``per`` (depth, n, ...).  A study gives two
``[[grid]]`` products: ``width_grid`` varies the width ``x`` (``per`` fixed),
``grid`` varies ``per`` at one width ``H_0``.  Then

.. math:: H^*(v) = H_0 \left(\frac{t}{f(H_0, v)}\right)^{1/a}

with ``t`` the target (1), ``f(H_0, v)`` the seed mean of ``y`` at ``H_0`` and
``v``, and ``a`` the exponent of ``E[y] ∝ x^a`` fitted on the width product
(:func:`~.claims.fit_rows`, :func:`~minilplr.theory.verdicts.fit_power_law`).

The assumption, which the grids do not test: **the width exponent ``a`` does
not depend on ``per``** (only the level ``f`` is measured at each ``v``).  So
every ``H^*(v)`` is a reconstruction and an extrapolation beyond every measured
width: one *untestable* row per ``v``, with a bootstrap interval resampling the
seeds of both products (:func:`closing_per`).  ``consistency = true`` adds the
one check the grids afford, at the width product's own value of ``per``: the
direct extrapolation of the width fit (:func:`~.claims.closing_x`) must lie
inside that value's predicted interval; it checks the level at one point
(the cell at ``H_0`` is shared by both grids), not the assumption, so inside
it is *vacuous* (it could hardly have failed, and says so), outside *fails*.

A claim (:func:`judge_closing`) and a panel (:mod:`.panels`) share the fields
(:func:`check_closing_fields`): ``per``, ``grid``, ``width_grid`` (required),
``target`` (default 1), ``where``, ``exclude_largest``, ``level``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...theory import verdicts as V
from .claims import check_grid_index, closing_x, finite_number, fit_rows, seed_samples, select

__all__ = ["ClosingWidths", "check_claim", "check_closing_fields", "closing_per", "closing_width", "judge_closing"]


def check_closing_fields(chk, key: str, c, out: dict, kind) -> dict:
    """The fields a ``closing_width`` claim and panel share: ``per``, ``grid``, ``width_grid`` (both required), ``target``."""
    for f in ("per", "grid", "width_grid"):
        if f not in c:
            chk.fail(f"{key}.{f}", {"per": "the setting the prediction is made for (depth, n, ...)",
                                     "grid": "the index of the [[grid]] product that varies per (at one width)",
                                     "width_grid": "the index of the [[grid]] product that varies the width"}[f],
                     "nothing")
    if c["per"] not in kind.keys or c["per"] in ("data", "seed") or c["per"] == c["x"]:
        chk.fail(f"{key}.per", f"a setting of the kind {kind.name!r} other than x and seed", c["per"])
    out["per"] = c["per"]
    out["grid"] = check_grid_index(chk, f"{key}.grid", c["grid"])
    out["width_grid"] = check_grid_index(chk, f"{key}.width_grid", c["width_grid"])
    if out["grid"] == out["width_grid"]:
        chk.fail(f"{key}.width_grid", "another product than grid (the width product)", c["width_grid"])
    out["target"] = finite_number(chk, f"{key}.target", c.get("target", 1.0))
    if out["target"] <= 0:
        chk.fail(f"{key}.target", "a positive number (a power law's value)", c["target"])
    return out


def check_claim(chk, key: str, c, out: dict, kind) -> dict:
    """A ``[[claims]]`` entry of kind ``closing_width``: the shared fields (:func:`check_closing_fields`) and
    ``consistency`` (true or false); fills ``out``."""
    check_closing_fields(chk, key, c, out, kind)
    if not isinstance(c.get("consistency", False), bool):
        chk.fail(f"{key}.consistency", "true or false", c["consistency"])
    out["consistency"] = bool(c.get("consistency", False))
    return out



@dataclass
class ClosingWidths:
    r"""The predicted closing width per value of a setting (:func:`closing_per`).

    Attributes
    ----------
    per : str
        The setting (``depth``, ``n``, ...).
    h0 : float
        The one width of the ``per`` product's cells.
    values : list (V,)
        The values ``v`` of ``per``, ascending.
    factor, seeds : lists (V,)
        The seed mean ``f(H_0, v)`` and the number of seeds at each ``v``.
    h_star, lo, hi : lists (V,)
        ``H^*(v)`` and its bootstrap interval (``hi`` may be ``inf``).
    never : list (V,)
        The share of bootstrap resamples that never reach the target (``a_b ≥ 0``).
    fit : PowerLawFit
        The width fit (``a`` and its bootstrap).
    own : value or None
        The width product's own value of ``per`` (one value; else None).
    direct : (float, float, float) or None
        ``closing_x`` of the width fit: the direct extrapolation at ``own``.
    """

    per: str
    h0: float
    values: list
    factor: list
    seeds: list
    h_star: list
    lo: list
    hi: list
    never: list
    fit: object
    own: object
    direct: tuple | None


def closing_width(h0: float, factor, a: float, target: float = 1.0) -> float:
    r"""The width at which ``C' H^a`` through ``(H_0, f)`` reaches ``target``: ``H^* = H_0 (t/f)^{1/a}``; ``∞`` if ``a ≥ 0``.

    .. math:: f\,(H^*/H_0)^{a} = t \iff \log H^* = \log H_0 + (\log t - \log f)/a

    Only the exponent ``a`` comes from the width fit; the level ``f`` is
    measured at ``H_0`` (on another product: the assumption that ``a`` does not
    depend on that product's setting).  ``a ≥ 0`` (the factor does not fall
    with width): no closing width, ``∞``.
    """
    if not a < 0:
        return math.inf
    return math.exp(min(700.0, math.log(h0) + (math.log(target) - math.log(factor)) / a))


def closing_per(c: dict, table: list):
    r"""The closing width per value of ``c["per"]`` (:class:`ClosingWidths`), or the reason it is untestable (a str).

    ``a``: the exponent of ``E[y] ∝ x^a`` on product ``c["width_grid"]`` (its
    cells matching ``where``; ``exclude_largest`` as in ``extrapolate``).
    ``f(H_0, v)``: the seed mean of ``y`` on product ``c["grid"]`` at each ``v``
    (one width ``H_0`` there).  ``H^*(v)`` by :func:`closing_width`.  The
    interval: resample ``b`` pairs the width fit's bootstrap ``a_b``
    (:func:`~minilplr.theory.verdicts.fit_power_law`, seeds resampled per
    width) with a resample of the seeds at every ``v`` (a generator of its own,
    seeded: reproducible), ``H^*_b(v) = H_0 (t/f_b(v))^{1/a_b}``, ``∞`` when
    ``a_b ≥ 0``; the percentile interval at ``level``.
    """
    x, y, per, t = c["x"], c["y"], c["per"], c["target"]
    wrows, wvary = select(table, c["where"], x, c["width_grid"])
    prows, pvary = select(table, c["where"], per, c["grid"])
    if not wrows or not prows:
        return (f"no cell matches where = {c['where']} in grid {c['width_grid'] if not wrows else c['grid']}")
    if wvary:
        return f"the width product's cells also vary in {', '.join(wvary)}: fix them in where"
    if pvary:
        return f"the {per} product's cells also vary in {', '.join(pvary)}: one width and every other setting fixed"
    widths = {r["settings"].get(x) for r in prows}
    if len(widths) != 1 or None in widths:
        return f"the {per} product's cells are not at one {x} (got {sorted(map(str, widths))})"
    bad = [r for r in wrows + prows if not (math.isfinite(r["diag"][y]) and r["diag"][y] > 0)]
    if bad:
        return f"{len(bad)} cells have no positive finite {y}"
    if len({r["settings"][x] for r in wrows}) < (3 if c.get("exclude_largest") else 2):
        return f"too few distinct {x} in the width product to fit"
    fit, _ = fit_rows(dict(c, kind="extrapolate", y=y, x=x), wrows)
    vs, samples = seed_samples(prows, per, y)
    if min(fit.seeds) < 2 or min(len(s) for s in samples) < 2:
        return f"fewer than 2 seeds at some {x} or {per}: no bootstrap interval over seeds"
    if not fit.a < 0:
        return (f"the width exponent a = {V.fmt(fit.a)} ≥ 0 [{V.fmt(fit.interval[0])}, {V.fmt(fit.interval[1])}]: "
                f"{y} does not fall with {x}, no closing {x} is predicted")
    h0 = float(widths.pop())
    cols = [np.asarray(s, float) for s in samples]
    rng = np.random.default_rng(1)  # not the fit's generator (seed 0): independent resamples of the other product
    a_b = fit.boot[:, 0]
    boot = np.full((a_b.size, len(cols)), np.inf)  # a_b ≥ 0: that resample never reaches the target
    falls = a_b < 0
    for j, col in enumerate(cols):
        f_b = col[rng.integers(0, col.size, (a_b.size, col.size))].mean(axis=1)  # resample b: the seed mean at v
        f_b = col.mean() * (f_b / col.mean()) ** V.small_sample_factor(col.size, fit.level)  # widened as the fit's
        boot[falls, j] = np.exp(np.minimum(700.0, math.log(h0) + (math.log(t) - np.log(f_b[falls])) / a_b[falls]))
    q = (1 - fit.level) / 2
    own = {repr(r["settings"].get(per)) for r in wrows}
    own_v = wrows[0]["settings"].get(per) if len(own) == 1 else None
    return ClosingWidths(per, h0, list(vs), [float(col.mean()) for col in cols], [int(col.size) for col in cols],
                         [closing_width(h0, col.mean(), fit.a, t) for col in cols],
                         [float(np.quantile(boot[:, j], q, method="lower")) for j in range(len(cols))],
                         [float(np.quantile(boot[:, j], 1 - q, method="higher")) for j in range(len(cols))],
                         [float(np.mean(~np.isfinite(boot[:, j]))) for j in range(len(cols))],
                         fit, own_v, closing_x(fit, t) if own_v is not None else None)


def _show(v: float) -> str:
    """:func:`~minilplr.theory.verdicts.fmt`, but infinity as ``∞`` (a closing width no resample reaches)."""
    return "∞" if v == math.inf else V.fmt(v)


def judge_closing(c: dict, table: list) -> list:
    """``closing_width``: one untestable prediction row per value of ``per``, and the consistency row if asked."""
    base = c["text"] or f"{c['y']} would reach {V.fmt(c['target'])} at a predicted {c['x']}, per {c['per']}"
    res = closing_per(c, table)
    if isinstance(res, str):
        return [V.untestable(base, res, f"a width product that fits and a {c['per']} product with 2+ seeds per value",
                             quantity=f"{c['x']}*")]
    fit, per, x = res.fit, res.per, c["x"]
    lo_a, hi_a = fit.interval
    assumption = (f"ASSUMED (a reconstruction, an extrapolation): the width exponent does not depend on {per}. "
                  f"a = {V.fmt(fit.a)} [{V.fmt(lo_a)}, {V.fmt(hi_a)}] from E[{c['y']}] ∝ {x}^a on grid "
                  f"{c['width_grid']} ({x} = {', '.join(V.fmt(v) for v in fit.x)}"
                  + (f", {per} = {res.own}" if res.own is not None else "") + f"); {c['x']}* = H0 (t/f)^(1/a) with "
                  f"f the seed mean of {c['y']} at H0 = {V.fmt(res.h0)} on grid {c['grid']}; "
                  f"{V.fmt(fit.level * 100)} % interval: the width fit's bootstrap paired with a resample of the "
                  f"seeds at each {per}")
    out = []
    for j, v in enumerate(res.values):
        h, lo, hi = res.h_star[j], res.lo[j], res.hi[j]
        shown_hi = _show(hi)
        why = (f"a prediction beyond every measured {x}: {x}* = {V.fmt(h)}, interval [{V.fmt(lo)}, {shown_hi}]"
               + (f" (reaches infinity: {V.fmt(100 * res.never[j])} % of resamples have a_b ≥ 0, no closing)"
                  if not math.isfinite(hi) else "")
               + (f"; f = {V.fmt(res.factor[j])} ≤ {V.fmt(c['target'])} already at {x} = {V.fmt(res.h0)}"
                  if res.factor[j] <= c["target"] else ""))
        out.append(V.Verdict(f"{base} ({per} = {v})", "untestable", f"{x}* at {per} = {v}", h, (lo, hi), "in", None,
                             assumption + f" ({res.seeds[j]} seeds at {per} = {v}, f = {V.fmt(res.factor[j])})",
                             why=why, decide=f"cells at {x} ≈ {V.fmt(h)} and {per} = {v}",
                             details=dict(per=per, value=v, h0=res.h0, factor=res.factor[j], h_star=h,
                                          interval=[lo, hi], never=res.never[j], a=fit.a, a_interval=[lo_a, hi_a])))
    if c.get("consistency"):
        claim = (f"consistency of the per-{per} prediction at the width grid's own {per}: the direct width "
                 f"extrapolation lies inside it")
        if res.own is None or res.own not in res.values:
            own = "not at one value" if res.own is None else f"at {per} = {res.own}"
            out.append(V.untestable(claim, f"the width grid's cells are {own}, not among grid {c['grid']}'s {per} = "
                                    f"{', '.join(map(str, res.values))}",
                                    f"cells at the width grid's {per} in grid {c['grid']}", quantity=f"direct {x}*"))
            return out
        j = res.values.index(res.own)
        direct, dlo, dhi = res.direct
        rests = (f"the direct extrapolation {x}* = {V.fmt(direct)} [{V.fmt(dlo)}, {V.fmt(dhi)}] (the width fit's C and a) "
                 f"against the {per} = {res.own} prediction's interval; both use the same a, so this checks the level "
                 f"f(H0) against the fit's C H0^a at one point, not that a is independent of {per}")
        if not (math.isfinite(res.lo[j]) and math.isfinite(res.hi[j]) and res.hi[j] > res.lo[j]):
            out.append(V.untestable(claim, f"the prediction's interval [{_show(res.lo[j])}, {_show(res.hi[j])}] "
                                    "is not finite", "more seeds (a narrower width exponent)",
                                    quantity=f"direct {x}*", measured=direct, rests_on=rests))
        else:
            v = V.within(claim, direct, res.lo[j], res.hi[j], quantity=f"direct {x}* ({per} = {res.own})",
                         rests_on=rests)
            if v.status == "holds":  # inside: the check had almost no power (F finding 3), say so
                v = V.vacuous(claim, f"it can only fail if the seed mean of {c['y']} at the cell shared by both "
                              f"grids ({x} = {V.fmt(res.h0)}, {per} = {res.own}) disagrees with the width fit's level "
                              f"C H0^a there: both rows use the same a and, at H0 inside the fitted {x}, largely the "
                              f"same cell, so it holds almost by construction",
                              f"the per-{per} predictions against cells at {x} ≈ {x}* (decide rows above)",
                              quantity=v.quantity, measured=v.measured, threshold=v.threshold, relation=v.relation,
                              margin=v.margin, rests_on=rests)
            out.append(v)
    return out
