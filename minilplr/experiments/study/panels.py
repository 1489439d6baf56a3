r"""A study's panels: figures drawn from its saved table only (re-plotting never reruns a cell).

``lines``
    ``y`` (a diagnostic, or a list of them) against the setting ``x``,
    log–log, the seed mean with each seed as a dot, one line per value of
    ``group`` (a setting; optional); ``fit = true`` draws the fitted power law
    ``C x^a`` with its exponent and bootstrap interval in the legend
    (:func:`~minilplr.theory.verdicts.fit_power_law`), and ``target = t`` extends
    it, dashed, to where it reaches ``t`` (an extrapolation, drawn as such);
    ``exclude_largest = true`` fits without the largest ``x`` (drawn hollow),
    as a ``held_out`` claim does.
``closing_width``
    the predicted closing width ``H^*(v)`` against the setting ``per``, with
    its bootstrap interval (an arrow where it reaches infinity), drawn as a
    prediction: dashed, hollow, labelled with the assumption it rests on
    (the width exponent does not depend on ``per``); the direct width
    extrapolation at the width product's own ``per`` as a filled star.  The
    fields of the ``closing_width`` claim (:mod:`.closing`).
``heatmap``
    the seed mean of the diagnostic ``value`` over two settings ``x`` and ``y``.

Both take ``where`` (settings that must match), ``grid`` (the index of one
``[[grid]]`` product: only its cells) and ``title``.
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter

from ...theory import verdicts as V
from ..plotting import figure, footer, save
from .claims import check_grid_index, closing_x
from .closing import check_closing_fields, closing_per

__all__ = ["KINDS", "check", "draw", "file_name"]

KINDS = ("lines", "heatmap", "closing_width")
_FIELDS = {"lines": ("kind", "title", "x", "y", "where", "grid", "group", "fit", "target", "exclude_largest"),
           "closing_width": ("kind", "title", "x", "y", "per", "where", "grid", "width_grid", "target",
                             "exclude_largest", "level"),
           "heatmap": ("kind", "title", "x", "y", "value", "where", "grid")}


def check(chk, key: str, p, diag_names, kind) -> dict:
    """One ``[[panels]]`` entry checked; returns it with its defaults."""
    chk.table(key, p, required=("kind",))
    k = chk.string(f"{key}.kind", p["kind"], KINDS)
    chk.table(key, p, _FIELDS[k], required=("x", "y") + (("value",) if k == "heatmap" else ()))
    out = dict(kind=k, title=str(p.get("title", "")), where=dict(chk.table(f"{key}.where", p.get("where", {}))),
               grid=check_grid_index(chk, f"{key}.grid", p.get("grid")))
    settings = [s for s in kind.keys if s != "data"]
    for w in out["where"]:
        if w not in settings:
            chk.fail(f"{key}.where.{w}", f"a setting of the kind {kind.name!r}", "an unknown key")
    axes = ("x", "y") if k == "heatmap" else ("x",) + (("group",) if "group" in p else ())
    for a in axes:
        if p[a] not in settings:
            chk.fail(f"{key}.{a}", f"a setting of the kind {kind.name!r} ({', '.join(settings)})", p[a])
        out[a] = p[a]
    values = [p["value"]] if k == "heatmap" else (p["y"] if isinstance(p["y"], list) else [p["y"]])
    if not values:
        chk.fail(f"{key}.y", "a diagnostic or a non-empty list of them", p["y"])
    for v in values:
        if v not in diag_names:
            chk.fail(f"{key}.{'value' if k == 'heatmap' else 'y'}",
                     f"one of the study's diagnostics ({', '.join(diag_names) or 'none declared'})", v)
    if k == "closing_width":
        if not isinstance(p["y"], str):
            chk.fail(f"{key}.y", "one diagnostic (the failure factor)", p["y"])
        out["y"] = p["y"]
        check_closing_fields(chk, key, p, out, kind)
        if not isinstance(p.get("exclude_largest", False), bool):
            chk.fail(f"{key}.exclude_largest", "true or false", p["exclude_largest"])
        out["exclude_largest"] = bool(p.get("exclude_largest", False))
        lv = p.get("level", 0.95)
        if isinstance(lv, bool) or not isinstance(lv, (int, float)) or not 0 < lv < 1:
            chk.fail(f"{key}.level", "a number in (0, 1)", lv)
        out["level"] = float(lv)
    elif k == "heatmap":
        out["value"] = p["value"]
    else:
        out["y"] = values
        if not isinstance(p.get("fit", True), bool):
            chk.fail(f"{key}.fit", "true or false", p["fit"])
        out["fit"] = bool(p.get("fit", True))
        if not isinstance(p.get("exclude_largest", False), bool):
            chk.fail(f"{key}.exclude_largest", "true or false", p["exclude_largest"])
        out["exclude_largest"] = bool(p.get("exclude_largest", False))
        if "target" in p:
            t = p["target"]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not (t > 0 and math.isfinite(t)):
                chk.fail(f"{key}.target", "a positive finite number", t)
            out["target"] = float(t)
    return out


def file_name(study: str, i: int, panel: dict) -> str:
    """The panel's file: ``<study>_<i>_<kind>.png``."""
    return f"{study}_{i}_{panel['kind']}.png"


def _rows(table, p, keys=()):
    """The rows of the panel's product (``grid``) matching its ``where`` that have every setting in ``keys``."""
    return [r for r in table if all(r["settings"].get(k) == v for k, v in p["where"].items())
            and all(r["settings"].get(k) is not None for k in keys)
            and (p.get("grid") is None or p["grid"] in r.get("grids", [p["grid"]]))]


def _caption(rows, where, replicates=("seed",)) -> str:
    """``N cells; <where>; seeds ...``: the replicates the panel pools at each point (the kind's
    ``CellKind.replicates``: the seeds, and e.g. SGD's batch-draw seeds ``sgd_seed``), each with its values."""
    fixed = ", ".join(f"{k} = {v}" for k, v in where.items())
    pooled = ["seeds " + ", ".join(map(str, sorted({r["settings"].get("seed") for r in rows}, key=str)))]
    pooled += [f"{k} " + ", ".join(map(str, sorted({r["settings"].get(k) for r in rows}, key=str)))
               for k in replicates if k != "seed"]
    return f"{len(rows)} cells{'; ' + fixed if fixed else ''}" + (f"; {' × '.join(pooled)}" if rows else "")


def _nothing(ax, rows, p, what: str) -> None:
    """Say in the panel why it is empty (no legend of nothing): no cell matches, or none has a value to draw."""
    where = ", ".join(f"{k} = {v}" for k, v in p["where"].items()) or "the panel's settings"
    if p.get("grid") is not None:
        where += f" in grid {p['grid']}"
    msg = f"no cells match {where}" if not rows else f"none of the {len(rows)} cells has {what}"
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(msg, 60)), ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set_xticks([])  # no axis values where nothing is drawn
    ax.set_yticks([])


def _value_ticks(axis, values) -> None:
    """Ticks at the grid's own values, written plainly (2, 4, 6; not 2×10⁰), when there are few of them."""
    vals = sorted({float(v) for v in values if not isinstance(v, str)})
    if 0 < len(vals) <= 8:
        axis.set_major_locator(FixedLocator(vals))
        axis.set_major_formatter(FixedFormatter([V.fmt(v) for v in vals]))
        axis.set_minor_formatter(NullFormatter())


def _lines(ax, table, p, data, replicates=("seed",)):
    rows = _rows(table, p, (p["x"],) + ((p["group"],) if "group" in p else ()))
    drawn, beyond = [], False  # the x values drawn; whether an extrapolation runs past them
    groups = sorted({r["settings"].get(p["group"]) for r in rows}, key=str) if "group" in p else [None]
    for y in p["y"]:
        for g in groups:
            sel = [r for r in rows if g is None or r["settings"].get(p["group"]) == g]
            xs = sorted({r["settings"][p["x"]] for r in sel})
            samples = [[r["diag"][y] for r in sel if r["settings"][p["x"]] == v] for v in xs]
            ok = [i for i, s in enumerate(samples) if s and all(math.isfinite(v) and v > 0 for v in s)]
            if not ok:
                continue
            xs, samples = [xs[i] for i in ok], [samples[i] for i in ok]
            drawn += xs
            label = y + (f", {p['group']} = {g}" if g is not None else "")
            means = [float(np.mean(s)) for s in samples]
            line, = ax.plot(xs, means, "o-", lw=1.2, ms=4, label=label)
            for xv, s in zip(xs, samples):
                ax.plot([xv] * len(s), s, ".", color=line.get_color(), alpha=0.35, ms=3)
            held = p.get("exclude_largest") and len(xs) >= 3
            if held:  # the held-out width: drawn hollow, left out of the fit
                ax.plot([xs[-1]], [means[-1]], "o", mfc="w", color=line.get_color(), ms=8, zorder=4,
                        label=f"held out of the fit: {p['x']} = {V.fmt(xs[-1])}")
            fx, fs = (xs[:-1], samples[:-1]) if held else (xs, samples)
            if p["fit"] and len(fx) >= 2:
                fit = V.fit_power_law(fx, fs)
                lo, hi = fit.interval
                xx = np.geomspace(min(fx), max(fx), 50)
                ax.plot(xx, np.exp(fit.log_c) * xx ** fit.a, "-", color=line.get_color(), alpha=0.5, lw=3,
                        label=f"fit: a = {V.fmt(fit.a)} [{V.fmt(lo)}, {V.fmt(hi)}]")
                if "target" in p:
                    xs_, xlo, xhi = closing_x(fit, p["target"])
                    if math.isfinite(xs_):
                        beyond = True
                        xe = np.geomspace(max(fx), xs_, 50)
                        ax.plot(xe, np.exp(fit.log_c) * xe ** fit.a, "--", color=line.get_color(), lw=1,
                                label=f"extrapolated: {y} = {V.fmt(p['target'])} at {p['x']} ≈ {V.fmt(xs_)} "
                                      f"[{V.fmt(xlo)}, {V.fmt(xhi)}]")
                        ax.axhline(p["target"], color="0.4", lw=0.8, ls=":")
    ax.set_xlabel(p["x"])
    ax.set_ylabel(", ".join(p["y"]))
    if not drawn:
        _nothing(ax, rows, p, f"a positive finite {' or '.join(p['y'])}")
        return _caption(rows, p["where"], replicates)
    ax.set_xscale("log")
    ax.set_yscale("log")
    if not beyond:  # past the grid the log axis keeps its decades, to read the extrapolation by
        _value_ticks(ax.xaxis, drawn)
    legend_below(ax)
    return _caption(rows, p["where"], replicates)


def legend_below(ax) -> None:
    """The legend under the axes (below the x label), never over the points: a fit's, an extrapolation's and a
    held-out point's labels are long, and inside the axes ``loc="best"`` still covered the held-out markers."""
    labels = ax.get_legend_handles_labels()[1]
    two = len(labels) > 4 and max(map(len, labels)) <= 45  # two columns only where two fit across the figure
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2 if two else 1, frameon=False,
              borderaxespad=6.0)  # 6 x 6.5 pt: a fixed gap under the axes, clear of the tick labels and the x label


#: A heat map's colour scale turns logarithmic when its positive values span more than this factor (a decade).
LOG_SPAN = 10.0


def colour_norm(grid):
    """The heat map's colour normalisation: logarithmic (:class:`~matplotlib.colors.LogNorm`) when every finite
    value is positive and they span more than :data:`LOG_SPAN`, else linear (``None``)."""
    from matplotlib.colors import LogNorm

    v = grid[np.isfinite(grid)]
    if v.size and v.min() > 0 and v.max() / v.min() > LOG_SPAN:
        return LogNorm(vmin=float(v.min()), vmax=float(v.max()))
    return None


def _closing(ax, table, p):
    """``closing_width``: the predictions per ``per`` with intervals, and the direct extrapolation, as predictions."""
    res = closing_per(p, table)
    per = p["per"]
    ax.set_xlabel(per)
    ax.set_ylabel(f"predicted {p['x']} where {p['y']} = {V.fmt(p['target'])}")
    ax.set_yscale("log")
    if isinstance(res, str):
        ax.text(0.5, 0.5, "\n".join(textwrap.wrap(f"no prediction: {res}", 60)), ha="center", va="center",
                transform=ax.transAxes, fontsize=8)
        return f"no prediction ({res})"
    v = np.asarray(res.values, float)
    h, lo, hi = (np.asarray(a, float) for a in (res.h_star, res.lo, res.hi))
    top = float(np.nanmax(np.where(np.isfinite(hi), hi, h))) * 3
    shown = np.where(np.isfinite(hi), hi, top)
    ax.errorbar(v, h, yerr=[h - lo, shown - h], fmt="o--", mfc="w", capsize=3, lw=1,
                label=f"predicted, ASSUMING the width exponent a = {V.fmt(res.fit.a)} "
                      f"[{V.fmt(res.fit.interval[0])}, {V.fmt(res.fit.interval[1])}] holds at every {per}")
    for xv, inf in zip(v, ~np.isfinite(hi)):
        if inf:
            ax.annotate("∞", (xv, top), ha="center", va="bottom", fontsize=9)
    if res.direct is not None and res.own is not None:
        d, dlo, dhi = res.direct
        ax.errorbar([float(res.own)], [d], yerr=[[d - dlo], [(dhi if math.isfinite(dhi) else top) - d]], fmt="*",
                    ms=10, capsize=3, label=f"the width fit extrapolated directly ({per} = {res.own})")
    ax.axhline(res.h0, color="0.5", lw=0.8, ls=":", label=f"{p['x']} measured on the {per} grid: {V.fmt(res.h0)}")
    if len(set(v)) > 1 and v.min() > 0 and v.max() / v.min() > 4:
        ax.set_xscale("log")
    own = [res.own] if res.direct is not None and res.own is not None else []  # the star's own value
    _value_ticks(ax.xaxis, list(v) + own)  # depth 2, 3, 4, 6 (not 2.0, 2.5, ...)
    legend_below(ax)
    return (f"predictions, not measurements: {p['x']}* = H0 (t/f)^(1/a), f at H0 = {V.fmt(res.h0)} per {per}, a from "
            f"grid {p['width_grid']}; {V.fmt(res.fit.level * 100)} % bootstrap intervals over the seeds of both grids")


def _heatmap(fig, ax, table, p, replicates=("seed",)):
    rows = _rows(table, p, (p["x"], p["y"]))
    if not rows:
        ax.set_xlabel(p["x"])
        ax.set_ylabel(p["y"])
        _nothing(ax, rows, p, "")
        return _caption(rows, p["where"], replicates)
    xs = sorted({r["settings"][p["x"]] for r in rows})
    ys = sorted({r["settings"][p["y"]] for r in rows})
    grid = np.full((len(ys), len(xs)), np.nan)
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            vals = [r["diag"][p["value"]] for r in rows if r["settings"][p["x"]] == xv and r["settings"][p["y"]] == yv]
            vals = [v for v in vals if math.isfinite(v)]
            if vals:
                grid[i, j] = float(np.mean(vals))
    norm = colour_norm(grid)
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis", norm=norm)
    for i in range(len(ys)):
        for j in range(len(xs)):
            bright = np.isfinite(grid[i, j]) and im.norm(grid[i, j]) > 0.6  # viridis turns yellow: dark text
            ax.text(j, i, V.fmt(grid[i, j]), ha="center", va="center", fontsize=7, color="k" if bright else "w")
    ax.set_xticks(range(len(xs)), [V.fmt(v) if not isinstance(v, str) else v for v in xs])
    ax.set_yticks(range(len(ys)), [V.fmt(v) if not isinstance(v, str) else v for v in ys])
    ax.set_xlabel(p["x"])
    ax.set_ylabel(p["y"])
    ax.grid(False)
    fig.colorbar(im, ax=ax, label=f"{p['value']} (seed mean{', log scale' if norm is not None else ''})")
    return _caption(rows, p["where"], replicates)


def footer_chars(fig, fontsize: float = 7.0) -> int:
    """How many characters of the footer fit on one line of ``fig``: its width in points over a generous average
    glyph width (0.6 em, so a line of wide letters fits too)."""
    return max(20, int(fig.get_figwidth() * 72 / (0.6 * fontsize)))


def draw(study: str, i: int, panel: dict, table: list, out_dir, data: str = "", replicates=("seed",)) -> Path:
    """Draw one panel into ``out_dir``; returns its path.  ``replicates``: the kind's repeated settings
    (``CellKind.replicates``), which a point pools and the footer lists."""
    fig, ax = figure(width=6.4, height=4.6)
    cap = (_lines(ax, table, panel, data, replicates) if panel["kind"] == "lines" else _closing(ax, table, panel)
           if panel["kind"] == "closing_width" else _heatmap(fig, ax, table, panel, replicates))
    ax.set_title("\n".join(textwrap.wrap(panel["title"] or f"{study}: {panel['kind']}", 80)), fontsize=9)
    footer(fig, f"{study}: {cap}. Data: {data}.", width=footer_chars(fig))
    return save(fig, Path(out_dir) / file_name(study, i, panel))
