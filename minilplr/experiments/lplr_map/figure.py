"""The LPLR map's figure: one heat map per diagnostic over widths × step sizes, and the verdicts; from saved results only."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...theory.verdicts import fmt
from ..plotting import figure, footer, plt, save
from .cells import cell_name
from .summary import CellSummary
from .verdicts import VERDICTS

__all__ = ["PANELS", "plot", "grid", "settings_text", "fixed_step_note"]


def settings_text(results) -> str:
    """One line for the caption and the figure's footer: the network, the run, ``n`` and the data."""
    s = results["settings"]
    return (f"MLP 784 -> H x {s['depth'] - 1} -> 1 ReLU, {s['init']} init, full-batch GD, {s['steps']} steps, "
            f"NTK every {s['diag_every']}, {s['dtype']}, seed {s['seed']}; n = {results['n']}; "
            f"data: {results['data']}")


def grid(results, key: str):
    """``(widths × columns)`` array of the :class:`~.summary.CellSummary` field ``key`` (NaN where absent or
    ``None``) and the diverged mask, both ``(len(widths), len(columns))``."""
    W, C = results["widths"], results["columns"]
    val = np.full((len(W), len(C)), np.nan)
    div = np.zeros((len(W), len(C)), bool)
    for i, w in enumerate(W):
        for j, col in enumerate(C):
            c = results["cells"].get(cell_name(w, col))
            if c is None:
                continue
            s = CellSummary.from_dict(c["summary"])
            x = getattr(s, key)
            val[i, j] = np.nan if x is None else float(x)
            div[i, j] = bool(s.diverged)
    return val, div


#: The heat maps: (summary key, title, colour-bar label, colour map, log colour scale, vmin, vmax, number format).
PANELS = [
    ("r2", "geometric fit R² over the whole run (L* = 0)", "R² (the linear rule: 2nd half, see report)", "viridis", False, 0.5, 1.0, "{:.2f}"),
    ("rate_vs_kernel", "fitted rate vs kernel regime", "log q / log q_kernel  (1 = predicted)", "coolwarm", False,
     0.0, 2.0, "{:.2f}"),
    ("rate_vs_bound", "fitted rate vs theorem (1 − ημ)", "log q / log(1 − ημ)  (≥ 1: bound holds)", "magma", True,
     None, None, "{:.3g}"),
    ("ntk_drift", "NTK drift max_t ‖Θ_t − Θ_0‖_F/‖Θ_0‖_F", "relative drift (log scale)", "viridis", True, None,
     None, "{:.2g}"),
    ("lam_ratio", "min_t λ_min(Θ_t)/λ_min(Θ_0)", "ratio  (hypothesis: ≥ 0.5)", "viridis", False, 0.0, 1.2,
     "{:.2f}"),
    ("eta_beta_max", "max_t η·β_t (Lanczos at t = 0, T)", "η·β  (hypothesis: ≤ 1; EoS: 2)", "coolwarm", False, 0.0,
     2.0, "{:.2f}"),
    ("cert_fraction", "certificate n·μ_cert/λ₀ = 1 − L̂_Θ r/λ₀", "fraction of λ₀ certified  (> 0: μ_cert > 0)",
     "RdBu", False, -1.0, 1.0, "{:.3g}"),
    ("final_param_drift", "parameter drift ‖θ_T − θ_0‖", "drift (log scale)", "viridis", True, None, None,
     "{:.3g}"),
]
_VERDICT_COLOURS = ["#4daf4a", "#e41a1c", "#ffd92f", "#bdbdbd"]


def _axes_labels(ax, results):
    ax.set_xticks(range(len(results["columns"])))
    ax.set_xticklabels([c["label"] for c in results["columns"]], fontsize=7)
    ax.set_yticks(range(len(results["widths"])))
    ax.set_yticklabels([str(w) for w in results["widths"]], fontsize=8)
    ax.set_xlabel("step size η", fontsize=8)
    ax.set_ylabel("width H", fontsize=8)
    ax.grid(False)


def _mark_diverged(ax, div):
    for i, j in zip(*np.nonzero(div)):
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.6", edgecolor="0.3", hatch="///", lw=0))
        ax.text(j, i, "×\ndiverged", ha="center", va="center", fontsize=6, color="k")


def _panel(fig, ax, results, key, title, label, cmap, log, vmin, vmax, number):
    import matplotlib.colors as mcolors
    import matplotlib.ticker as mticker

    val, div = grid(results, key)
    show = np.where(div, np.nan, val)
    if log:
        pos = show[np.isfinite(show) & (show > 0)]
        norm = mcolors.LogNorm(pos.min(), pos.max()) if pos.size and pos.min() < pos.max() else None
        show = np.where(show > 0, show, np.nan)
    else:
        norm = mcolors.Normalize(vmin, vmax)
    cm = plt.get_cmap(cmap).with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(show), cmap=cm, norm=norm, aspect="auto")
    cb = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    cb.set_label(label, fontsize=7)
    cb.ax.tick_params(labelsize=6)
    if log:  # ticks at 1, 2, 5 × 10^k, written plainly: legible within one decade too
        cb.ax.yaxis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        cb.ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        cb.ax.yaxis.set_minor_formatter(mticker.NullFormatter())
    for i in range(val.shape[0]):
        for j in range(val.shape[1]):
            if div[i, j]:
                continue
            v = val[i, j]
            text = "n/a" if not np.isfinite(v) else number.format(v)
            rgba = im.cmap(im.norm(v)) if np.isfinite(v) and (not log or v > 0) else (1, 1, 1, 1)
            dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="w" if dark else "k")
    _mark_diverged(ax, div)
    ax.set_title(title, fontsize=9)
    _axes_labels(ax, results)


def _verdict_panel(ax, results):
    import matplotlib.colors as mcolors

    W, C = results["widths"], results["columns"]
    code = np.full((len(W), len(C)), np.nan)
    div = np.zeros(code.shape, bool)
    for i, w in enumerate(W):
        for j, col in enumerate(C):
            c = results["cells"].get(cell_name(w, col))
            if c is None:
                continue
            v = c["verdict"]
            code[i, j] = VERDICTS.index(v["path_verdict"])
            div[i, j] = CellSummary.from_dict(c["summary"]).diverged
            short = {"linear": "lin", "not linear": "not lin", "untestable": "lin?", "diverged": "div"}[v["loss"]]
            ax.text(j, i, f"{v['path_verdict']}\nP{'✓' if v['path'] else '✗'} C{'✓' if v['hypotheses'] else '✗'}"
                          f" {short}", ha="center", va="center", fontsize=6)
    ax.imshow(np.ma.masked_invalid(code), cmap=mcolors.ListedColormap(_VERDICT_COLOURS),
              norm=mcolors.BoundaryNorm(np.arange(-0.5, 4), 4), aspect="auto")
    for i, j in zip(*np.nonzero(div)):
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="0.3", hatch="///", lw=0))
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _VERDICT_COLOURS]
    ax.legend(handles, VERDICTS, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("hypotheses on the path (P) ⇒ (14) and (10); C: μ_cert > 0; lin?: untestable", fontsize=9)
    _axes_labels(ax, results)


def plot(results, out_dir):
    """Nine heat maps (widths × step sizes), one per diagnostic, and the verdicts; from saved results only."""
    fig, axes = figure(ncols=3, nrows=3, width=5.4, height=3.6)
    for ax, panel in zip(axes, PANELS):
        _panel(fig, ax, results, *panel)
    _verdict_panel(axes[len(PANELS)], results)
    fig.suptitle("The LPLR map: where full-batch GD sits in a locally PL region (grey × = diverged; "
                 "columns c/β₀ use each width's own β₀)", fontsize=11)
    footer(fig, settings_text(results) + ". " + fixed_step_note(results), width=170)
    return [save(fig, Path(out_dir) / "lplr_map.png")]


def fixed_step_note(results) -> str:
    """Each fixed step in units of each width's ``1/β₀``: ``"η = 0.001 is 0.12/β₀ at H=32, ..."``."""
    parts = []
    for col in results["columns"]:
        if col["fraction"] is None:
            parts.append(f"η = {col['lr']:g} is " + ", ".join(
                f"{fmt(CellSummary.from_dict(c['summary']).eta_beta0, 2)}/β₀ at H={w}" for w in results["widths"]
                if (c := results["cells"].get(cell_name(w, col)))))
    return "; ".join(parts)
