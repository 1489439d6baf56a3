r"""A study's claims: rules in the verdict vocabulary (:mod:`minilplr.theory.verdicts`), judged on its table.

The table is one row per cell, ``{"settings": {...}, "diag": {...}}``.  A
claim picks its cells with ``where`` (settings that must match), groups them
by its ``x`` setting and pools the seeds of each ``x``: every other setting
must be fixed by ``where`` (else the claim is *untestable*, naming them).
The kinds:

``power_law``
    ``E[y] = C x^a`` through the seed means, a bootstrap interval over the
    seeds (:func:`~minilplr.theory.verdicts.fit_power_law`); judged by
    exactly one of ``below = b`` (the whole interval below ``b``: *holds*;
    above: *fails*; straddling: *untestable*, more seeds), ``above = b``,
    ``expect = [lo, hi]`` (the exponent inside), ``predicted = p`` (with an
    optional ``alternative``: :func:`~minilplr.theory.verdicts.power_law_exponent`).
``extrapolate``
    the ``x`` at which the fitted ``C x^a`` reaches ``target``,
    ``x^* = (target/C)^{1/a}``, with the bootstrap interval of ``x^*``; a
    prediction the run cannot decide, so *untestable* with what would.
``held_out``
    fit without the largest ``x``, predict ``E[y]`` there with its bootstrap
    interval, and compare the measured seed mean: *holds* inside, *fails* outside, margin in half-widths.
``closing_width``
    the width at which ``y`` (a failure factor) would reach ``target`` (1:
    the certificate closes), predicted for each value ``v`` of the setting
    ``per`` (depth, n, ...) of product ``grid``, whose cells sit at one width
    ``H_0``: ``H^*(v) = H_0 (t/f(H_0, v))^{1/a}``, ``f`` the seed mean there
    and ``a`` the exponent of ``y ∝ x^a`` fitted on product ``width_grid``
    (:func:`closing_per`).  It rests on an assumption the grids do not test:
    ``a`` does not depend on ``per`` (a reconstruction, an extrapolation);
    one *untestable* row per ``v``, with a bootstrap interval resampling the
    seeds of both products.  ``consistency = true`` adds the one check the
    grids afford, at the width product's own value of ``per``: the direct
    extrapolation of the width fit (``extrapolate``) must lie inside that
    value's predicted interval (*holds* or *fails*).
``threshold``
    ``y relation value`` for ``over`` = ``every`` cell (the worst one
    decides), or their ``mean``, ``max`` or ``min``.

``grid = i`` (any kind) keeps only the cells of the ``i``-th ``[[grid]]`` product.
``exclude_largest = true`` (power_law, extrapolate) fits without the largest
``x``, the range a ``held_out`` claim fits on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...theory import verdicts as V

__all__ = ["KINDS", "check", "judge", "judge_all", "select", "closing_x", "closing_per", "ClosingWidths"]

KINDS = ("power_law", "extrapolate", "held_out", "closing_width", "threshold")
_FIELDS = {
    "power_law": ("kind", "text", "grid", "x", "y", "where", "below", "above", "expect", "predicted", "alternative",
                  "exclude_largest", "level"),
    "extrapolate": ("kind", "text", "grid", "x", "y", "where", "target", "exclude_largest", "level"),
    "held_out": ("kind", "text", "grid", "x", "y", "where", "level"),
    "closing_width": ("kind", "text", "grid", "width_grid", "x", "y", "per", "where", "target", "exclude_largest",
                      "level", "consistency"),
    "threshold": ("kind", "text", "grid", "y", "where", "relation", "value", "over"),
}
_REAL = (int, float)


def _real(chk, key, v):
    if isinstance(v, bool) or not isinstance(v, _REAL) or not math.isfinite(float(v)):
        chk.fail(key, "a finite number", v)
    return float(v)


def check(chk, key: str, c, diag_names, kind) -> dict:
    """One ``[[claims]]`` entry checked; returns it with its defaults."""
    chk.table(key, c, required=("kind",))
    k = chk.string(f"{key}.kind", c["kind"], KINDS)
    chk.table(key, c, _FIELDS[k], required=("y",) + (("x",) if k != "threshold" else ()))
    out = dict(kind=k, text=str(c.get("text", "")), y=c["y"], where=dict(c.get("where", {})),
               grid=check_grid_index(chk, f"{key}.grid", c.get("grid")))
    if tuple(kind.replicates) != ("seed",):  # the kind's repeats (e.g. SGD's batch draws); absent: the seeds
        out["replicates"] = list(kind.replicates)
    if "text" in c:
        chk.string(f"{key}.text", c["text"])
    if c["y"] not in diag_names:
        chk.fail(f"{key}.y", f"one of the study's diagnostics ({', '.join(diag_names) or 'none declared'})", c["y"])
    chk.table(f"{key}.where", c.get("where", {}))
    for w in out["where"]:
        if w not in kind.keys:
            chk.fail(f"{key}.where.{w}", f"a setting of the kind {kind.name!r}", "an unknown key")
    if k != "threshold":
        if c["x"] not in kind.keys or c["x"] == "data":
            chk.fail(f"{key}.x", f"a setting of the kind {kind.name!r} (an axis)", c["x"])
        out["x"] = c["x"]
        out["level"] = _real(chk, f"{key}.level", c.get("level", 0.95))
        if not 0 < out["level"] < 1:
            chk.fail(f"{key}.level", "a number in (0, 1)", c["level"])
        out["exclude_largest"] = bool(c.get("exclude_largest", False))
        if not isinstance(c.get("exclude_largest", False), bool):
            chk.fail(f"{key}.exclude_largest", "true or false", c["exclude_largest"])
    if k == "power_law":
        given = [f for f in ("below", "above", "expect", "predicted") if f in c]
        if len(given) != 1:
            chk.fail(key, "exactly one of below, above, expect, predicted", " and ".join(given) or "none")
        f = given[0]
        if f == "expect":
            e = c["expect"]
            if not (isinstance(e, list) and len(e) == 2 and all(isinstance(v, _REAL) and not isinstance(v, bool)
                                                                 for v in e) and e[0] < e[1]):
                chk.fail(f"{key}.expect", "an interval [lo, hi] with lo < hi", e)
            out["expect"] = [float(e[0]), float(e[1])]
        else:
            out[f] = _real(chk, f"{key}.{f}", c[f])
        if "alternative" in c:
            if f != "predicted":
                chk.fail(f"{key}.alternative", "an alternative only beside predicted", c["alternative"])
            out["alternative"] = _real(chk, f"{key}.alternative", c["alternative"])
    if k == "closing_width":
        check_closing_fields(chk, key, c, out, kind)
        if not isinstance(c.get("consistency", False), bool):
            chk.fail(f"{key}.consistency", "true or false", c["consistency"])
        out["consistency"] = bool(c.get("consistency", False))
    elif k == "extrapolate":
        if "target" not in c:
            chk.fail(f"{key}.target", "a value (the y the extrapolation reaches)", "nothing")
        out["target"] = _real(chk, f"{key}.target", c["target"])
        if out["target"] <= 0:
            chk.fail(f"{key}.target", "a positive number (a power law's value)", c["target"])
    elif k == "threshold":
        out["relation"] = chk.string(f"{key}.relation", c.get("relation", ""), ("<=", ">="))
        if "value" not in c:
            chk.fail(f"{key}.value", "a number", "nothing")
        out["value"] = _real(chk, f"{key}.value", c["value"])
        out["over"] = chk.string(f"{key}.over", c.get("over", "every"), ("every", "mean", "max", "min"))
    return out


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
    out["target"] = _real(chk, f"{key}.target", c.get("target", 1.0))
    if out["target"] <= 0:
        chk.fail(f"{key}.target", "a positive number (a power law's value)", c["target"])
    return out


def check_grid_index(chk, key, g):
    """``grid = i``: the index of one product of [[grid]] (checked against the grids in :func:`select`), or None."""
    if g is not None and (isinstance(g, bool) or not isinstance(g, int) or g < 0):
        chk.fail(key, "the index of a [[grid]] product (0, 1, ...)", g)
    return g


def select(table: list, where: dict, x: str | None, grid: int | None = None, replicates=("seed",)):
    """``(rows, varying)``: the rows of product ``grid`` (all if None) matching ``where``, and the settings
    other than ``x``, the ``replicates`` (the kind's seeds) and ``lr`` that vary among them."""
    rows = [r for r in table if all(r["settings"].get(k) == v for k, v in where.items())
            and (x is None or r["settings"].get(x) is not None) and (grid is None or grid in r.get("grids", [grid]))]
    keys = set().union(*(r["settings"] for r in rows)) if rows else set()
    varying = sorted(k for k in keys if k not in (x, "lr", *replicates)  # lr: derived from c_beta0 and the seed's β_0
                     and len({repr(r["settings"].get(k)) for r in rows}) > 1)
    return rows, varying


def _samples(rows, x, y):
    xs = sorted({r["settings"][x] for r in rows})
    return xs, [[r["diag"][y] for r in rows if r["settings"][x] == v] for v in xs]


def closing_x(fit, target: float):
    r"""``x^* = (target/C)^{1/a}``, where the fitted ``C x^a`` equals ``target``, and its bootstrap interval ``(x*, lo, hi)``.

    .. math:: C x^a = t \iff \log x^* = (\log t - \log C)/a

    The interval: the percentiles of ``x^*_b`` over the bootstrap's ``(a_b, C_b)``
    (a resample with ``a_b = 0`` never reaches ``t``: ``x^*_b = ∞``).  Far
    beyond the fitted range it is wide: ``log x^*`` divides by the uncertain ``a``.
    """
    lt = math.log(target)

    def solve(a, lc):
        return math.exp(min(700.0, (lt - lc) / a)) if a != 0 else math.inf

    d = np.array([solve(a, lc) for a, lc in fit.boot])
    q = (1 - fit.level) / 2
    lo, hi = float(np.quantile(d, q, method="lower")), float(np.quantile(d, 1 - q, method="higher"))
    return float(solve(fit.a, fit.log_c)), lo, hi


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
    fit, _ = _fit(dict(c, kind="extrapolate", y=y, x=x), wrows)
    vs, samples = _samples(prows, per, y)
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


def _judge_closing(c: dict, table: list) -> list:
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
            out.append(V.within(claim, direct, res.lo[j], res.hi[j], quantity=f"direct {x}* ({per} = {res.own})",
                                rests_on=rests))
    return out


def judge_all(c: dict, table: list) -> list:
    """The claim's verdict rows: one for most kinds, one per value of ``per`` (and the consistency row) for ``closing_width``."""
    if c["kind"] == "closing_width":
        return _judge_closing(c, table)
    return [judge(c, table)]


def _fit(c, rows):
    xs, samples = _samples(rows, c["x"], c["y"])
    held = None
    if c.get("exclude_largest") or c["kind"] == "held_out":
        held = (xs[-1], samples[-1])
        xs, samples = xs[:-1], samples[:-1]
    fit = V.fit_power_law(xs, samples, level=c["level"])
    return fit, held


def _claim_text(c) -> str:
    if c["text"]:
        return c["text"]
    where = ", ".join(f"{k} = {v}" for k, v in c["where"].items())
    tail = f" ({where})" if where else ""
    return {"power_law": f"{c['y']} ∝ {c.get('x')}^a{tail}",
            "extrapolate": f"{c['y']} reaches {V.fmt(c.get('target'))} at a predicted {c.get('x')}{tail}",
            "held_out": f"the power law of {c['y']} in {c.get('x')} predicts the held-out largest {c.get('x')}{tail}",
            "threshold": f"{c['y']} {c.get('relation')} {V.fmt(c.get('value'))} ({c.get('over')}){tail}"}[c["kind"]]


def judge(c: dict, table: list) -> V.Verdict:
    """One claim on the study's table: a :class:`~minilplr.theory.verdicts.Verdict` (``closing_width``: :func:`judge_all`)."""
    if c["kind"] == "closing_width":
        raise ValueError("c: a closing_width claim gives one row per value: judge it with judge_all")
    claim = _claim_text(c)
    rows, varying = select(table, c["where"], c.get("x"), c.get("grid"),
                           replicates=c.get("replicates", ("seed",)))
    y = c["y"]
    if not rows:
        return V.untestable(claim, f"no cell matches where = {c['where']}"
                            + (f" in grid {c['grid']}" if c.get("grid") is not None else ""), "cells with these settings",
                            quantity=y)
    if varying and c["kind"] != "threshold":
        return V.untestable(claim, f"the selected cells also vary in {', '.join(varying)}",
                            f"fix {', '.join(varying)} in the claim's where", quantity=y)
    bad = [r for r in rows if not (math.isfinite(r["diag"][y]) and (c["kind"] == "threshold" or r["diag"][y] > 0))]
    if bad:
        return V.untestable(claim, f"{len(bad)} of {len(rows)} cells have no {'finite' if c['kind'] == 'threshold' else 'positive finite'} {y}",
                            "cells where it is measured", quantity=y)
    if c["kind"] == "threshold":
        vals = np.array([r["diag"][y] for r in rows])
        worst = (vals.max() if c["relation"] == "<=" else vals.min()) if c["over"] == "every" else \
            {"mean": vals.mean(), "max": vals.max(), "min": vals.min()}[c["over"]]
        return V.compare(claim, float(worst), c["value"], c["relation"], quantity=f"{c['over']} {y}",
                         scale=abs(c["value"]) or 1.0, rests_on=f"{len(rows)} cells")
    if len({r["settings"][c["x"]] for r in rows}) < (3 if c["kind"] == "held_out" or c.get("exclude_largest") else 2):
        return V.untestable(claim, f"too few distinct {c['x']} to fit", f"more values of {c['x']}", quantity=y)
    fit, held = _fit(c, rows)
    if min(fit.seeds) < 2:
        return V.untestable(claim, f"{min(fit.seeds)} seed at some {c['x']}: no bootstrap interval over seeds "
                            f"(a = {V.fmt(fit.a)} through the points)", f"at least 2 seeds per {c['x']} (4 for an "
                            "interval worth reading)", quantity="a", measured=fit.a)
    lo, hi = fit.interval
    w = (hi - lo) / 2
    rests = (f"E[{y}] ∝ {c['x']}^a through seed means at {c['x']} = {', '.join(V.fmt(v) for v in fit.x)} "
             f"({'/'.join(map(str, fit.seeds))} seeds): a = {V.fmt(fit.a)}, {V.fmt(fit.level * 100)} % bootstrap "
             f"interval [{V.fmt(lo)}, {V.fmt(hi)}]")
    det = dict(a=fit.a, log_c=fit.log_c, interval=[lo, hi], x=[float(v) for v in fit.x],
               mean_y=[float(v) for v in fit.mean_y], seeds=list(fit.seeds))
    if c["kind"] == "power_law":
        if "predicted" in c:
            return V.power_law_exponent(claim, fit, c["predicted"], c.get("alternative"), quantity="a")
        if "expect" in c:
            v = V.within(claim, fit.a, *c["expect"], quantity="a", rests_on=rests)
            return V.Verdict(claim, v.status, "a", v.measured, v.threshold, v.relation, v.margin, rests, details=det)
        side, b = ("below", c["below"]) if "below" in c else ("above", c["above"])
        far, near = (hi, lo) if side == "below" else (lo, hi)
        rel = "≤" if side == "below" else "≥"
        ok = far <= b if side == "below" else far >= b
        wrong = near >= b if side == "below" else near <= b
        margin = ((b - far) if side == "below" else (far - b)) / w if w > 0 else (math.inf if ok else -math.inf)
        if ok:
            return V.Verdict(claim, "holds", "a", fit.a, b, rel, margin, rests, details=det,
                             why=f"the whole interval lies {side} {V.fmt(b)}")
        if wrong:
            return V.Verdict(claim, "fails", "a", fit.a, b, rel, margin, rests, details=det,
                             why=f"the whole interval lies on the other side of {V.fmt(b)}")
        return V.untestable(claim, f"the interval [{V.fmt(lo)}, {V.fmt(hi)}] contains {V.fmt(b)}",
                            "more seeds per x or a wider range of x", quantity="a", measured=fit.a,
                            threshold=b, relation=rel, rests_on=rests, details=det)
    if c["kind"] == "extrapolate":
        xs, xlo, xhi = closing_x(fit, c["target"])
        det.update(x_star=xs, x_star_interval=[xlo, xhi], target=c["target"])
        return V.Verdict(claim, "untestable", f"{c['x']}*", xs, (xlo, xhi), "in", None, rests, details=det,
                         why=f"an extrapolation beyond the fitted {c['x']} ≤ {V.fmt(float(fit.x.max()))}: "
                             f"{c['x']}* = {V.fmt(xs)}, {V.fmt(fit.level * 100)} % interval [{V.fmt(xlo)}, {V.fmt(xhi)}]",
                         decide=f"cells at {c['x']} ≈ {V.fmt(xs)}")
    x_h, s_h = held
    pred, plo, phi = (float(np.ravel(v)[0]) for v in fit.predict([x_h]))
    measured = float(np.mean(s_h))
    det.update(held_x=float(x_h), predicted=pred, predicted_interval=[plo, phi], held_samples=[float(v) for v in s_h])
    v = V.within(claim, measured, plo, phi, quantity=f"mean {y} at {c['x']} = {V.fmt(x_h)}",
                 rests_on=rests + f"; predicted {V.fmt(pred)} at {c['x']} = {V.fmt(x_h)} (the interval is the "
                 f"fit's, over seeds of the fitted cells; the held-out mean of {len(s_h)} seeds has its own noise)")
    return V.Verdict(v.claim, v.status, v.quantity, v.measured, v.threshold, v.relation, v.margin, v.rests_on,
                     details=det)
