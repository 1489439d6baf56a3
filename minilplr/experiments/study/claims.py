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
    the width at which ``y`` (a failure factor) would reach ``target``, per value of
    the setting ``per``: its own module, :mod:`.closing` (the formula and the
    assumption it rests on); one row per value, checked and judged there.
``threshold``
    ``y relation value`` for ``over`` = ``every`` cell (the worst one
    decides), or their ``mean``, ``max`` or ``min``, over the cells that
    measured ``y`` (the row counts the others; *untestable* when none did).

``grid = i`` (any kind) keeps only the cells of the ``i``-th ``[[grid]]`` product.
``exclude_largest = true`` (power_law, extrapolate) fits without the largest
``x``, the range a ``held_out`` claim fits on.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ...theory import verdicts as V

__all__ = ["KINDS", "check", "check_grid_index", "finite_number", "judge", "judge_all", "select", "seed_samples", "fit_rows",
           "closing_x"]

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


def finite_number(chk, key, v):
    """``v`` as a float, or one line naming ``key``: a finite number expected (booleans refused)."""
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
        out["level"] = finite_number(chk, f"{key}.level", c.get("level", 0.95))
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
            out[f] = finite_number(chk, f"{key}.{f}", c[f])
        if "alternative" in c:
            if f != "predicted":
                chk.fail(f"{key}.alternative", "an alternative only beside predicted", c["alternative"])
            out["alternative"] = finite_number(chk, f"{key}.alternative", c["alternative"])
    if k == "closing_width":
        from . import closing  # closing builds on select and fit_rows here: imported when needed, no cycle
        closing.check_claim(chk, key, c, out, kind)
    elif k == "extrapolate":
        if "target" not in c:
            chk.fail(f"{key}.target", "a value (the y the extrapolation reaches)", "nothing")
        out["target"] = finite_number(chk, f"{key}.target", c["target"])
        if out["target"] <= 0:
            chk.fail(f"{key}.target", "a positive number (a power law's value)", c["target"])
    elif k == "threshold":
        out["relation"] = chk.string(f"{key}.relation", c.get("relation", ""), ("<=", ">="))
        if "value" not in c:
            chk.fail(f"{key}.value", "a number", "nothing")
        out["value"] = finite_number(chk, f"{key}.value", c["value"])
        out["over"] = chk.string(f"{key}.over", c.get("over", "every"), ("every", "mean", "max", "min"))
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


def seed_samples(rows, x, y):
    """``(xs, samples)``: the distinct values of ``x`` ascending, and the ``y`` of the rows at each (its seeds)."""
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


def judge_all(c: dict, table: list) -> list:
    """The claim's verdict rows: one for most kinds, one per value of ``per`` (and the consistency row) for ``closing_width``."""
    if c["kind"] == "closing_width":
        from . import closing  # see check
        return closing.judge_closing(c, table)
    return [judge(c, table)]


def fit_rows(c, rows):
    """``(fit, held)``: the power law of ``c["y"]`` in ``c["x"]`` over ``rows`` (seed means, a bootstrap over
    seeds), without the largest ``x`` for ``held_out`` or ``exclude_largest`` (``held`` = that ``(x, samples)``, else None)."""
    xs, samples = seed_samples(rows, c["x"], c["y"])
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
    if bad and (c["kind"] != "threshold" or len(bad) == len(rows)):
        return V.untestable(claim, f"{len(bad)} of {len(rows)} cells have no {'finite' if c['kind'] == 'threshold' else 'positive finite'} {y}",
                            "cells where it is measured", quantity=y)
    if c["kind"] == "threshold":  # judged on the cells that measured y; the row counts the others (F finding 9)
        gone = {id(r) for r in bad}
        vals = np.array([r["diag"][y] for r in rows if id(r) not in gone])
        worst = (vals.max() if c["relation"] == "<=" else vals.min()) if c["over"] == "every" else \
            {"mean": vals.mean(), "max": vals.max(), "min": vals.min()}[c["over"]]
        v = V.compare(claim, float(worst), c["value"], c["relation"], quantity=f"{c['over']} {y}",
                      scale=abs(c["value"]) or 1.0, rests_on=f"{vals.size} cells")
        if bad:
            lost = ", ".join(", ".join(f"{k} = {val}" for k, val in r["settings"].items()) for r in bad[:3])
            v = dataclasses.replace(v, rests_on=f"{vals.size} of {len(rows)} cells", why=(
                f"{len(bad)} of {len(rows)} cells have no finite {y} ({lost}{', ...' if len(bad) > 3 else ''}): "
                f"judged on the other {vals.size}"))
        return v
    if len({r["settings"][c["x"]] for r in rows}) < (3 if c["kind"] == "held_out" or c.get("exclude_largest") else 2):
        return V.untestable(claim, f"too few distinct {c['x']} to fit", f"more values of {c['x']}", quantity=y)
    fit, held = fit_rows(c, rows)
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
