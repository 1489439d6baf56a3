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

from ...theory import verdicts as V
from ..plotting import figure, footer, save
from .claims import check_grid_index, closing_x

__all__ = ["KINDS", "check", "draw", "file_name"]

KINDS = ("lines", "heatmap")
_FIELDS = {"lines": ("kind", "title", "x", "y", "where", "grid", "group", "fit", "target", "exclude_largest"),
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
    if k == "heatmap":
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


def _caption(rows, where) -> str:
    seeds = sorted({r["settings"].get("seed") for r in rows}, key=str)
    fixed = ", ".join(f"{k} = {v}" for k, v in where.items())
    return f"{len(rows)} cells{'; ' + fixed if fixed else ''}; seeds {', '.join(map(str, seeds))}"


def _lines(ax, table, p, data):
    rows = _rows(table, p, (p["x"],) + ((p["group"],) if "group" in p else ()))
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
            label = y + (f", {p['group']} = {g}" if g is not None else "")
            means = [float(np.mean(s)) for s in samples]
            line, = ax.plot(xs, means, "o-", lw=1.2, ms=4, label=label)
            for xv, s in zip(xs, samples):
                ax.plot([xv] * len(s), s, ".", color=line.get_color(), alpha=0.35, ms=3)
            held = p.get("exclude_largest") and len(xs) >= 3
            if held:  # the held-out width: drawn hollow, left out of the fit
                ax.plot([xs[-1]], [means[-1]], "o", mfc="w", color=line.get_color(), ms=8, zorder=3,
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
                        xe = np.geomspace(max(fx), xs_, 50)
                        ax.plot(xe, np.exp(fit.log_c) * xe ** fit.a, "--", color=line.get_color(), lw=1,
                                label=f"extrapolated: {y} = {V.fmt(p['target'])} at {p['x']} ≈ {V.fmt(xs_)} "
                                      f"[{V.fmt(xlo)}, {V.fmt(xhi)}]")
                        ax.axhline(p["target"], color="0.4", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(p["x"])
    ax.set_ylabel(", ".join(p["y"]))
    ax.legend(fontsize=6.5)
    return _caption(rows, p["where"])


def _heatmap(fig, ax, table, p):
    rows = _rows(table, p, (p["x"], p["y"]))
    xs = sorted({r["settings"][p["x"]] for r in rows})
    ys = sorted({r["settings"][p["y"]] for r in rows})
    grid = np.full((len(ys), len(xs)), np.nan)
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            vals = [r["diag"][p["value"]] for r in rows if r["settings"][p["x"]] == xv and r["settings"][p["y"]] == yv]
            vals = [v for v in vals if math.isfinite(v)]
            if vals:
                grid[i, j] = float(np.mean(vals))
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
    for i in range(len(ys)):
        for j in range(len(xs)):
            ax.text(j, i, V.fmt(grid[i, j]), ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(range(len(xs)), [V.fmt(v) if not isinstance(v, str) else v for v in xs])
    ax.set_yticks(range(len(ys)), [V.fmt(v) if not isinstance(v, str) else v for v in ys])
    ax.set_xlabel(p["x"])
    ax.set_ylabel(p["y"])
    ax.grid(False)
    fig.colorbar(im, ax=ax, label=f"{p['value']} (seed mean)")
    return _caption(rows, p["where"])


def draw(study: str, i: int, panel: dict, table: list, out_dir, data: str = "") -> Path:
    """Draw one panel into ``out_dir``; returns its path."""
    fig, ax = figure(width=6.4, height=4.6)
    cap = _lines(ax, table, panel, data) if panel["kind"] == "lines" else _heatmap(fig, ax, table, panel)
    ax.set_title("\n".join(textwrap.wrap(panel["title"] or f"{study}: {panel['kind']}", 80)), fontsize=9)
    footer(fig, f"{study}: {cap}. Data: {data}.")
    return save(fig, Path(out_dir) / file_name(study, i, panel))
