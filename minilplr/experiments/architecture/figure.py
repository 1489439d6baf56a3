"""The architecture study's figure: each diagnostic against depth, one line per architecture; from saved results only."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import figure, footer, save
from .claims import series

__all__ = ["PANELS", "plot"]

#: (summary key, title, log y axis)
PANELS = [
    ("mu0", "μ_0 = λ_min(Θ_0)/N", True),
    ("kappa0", "κ(Θ_0) = λ_max/λ_min", True),
    ("lam_ratio_min", "min_t λ_min(Θ_t)/λ_min(Θ_0)", False),
    ("rate", "fitted rate −log q per step (×: η μ_0)", True),
    ("kernel_err", "kernel-regime error max_t |L_t − L^Θ₀_t|/L_t", True),
    ("ntk_drift", "NTK drift ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F", True),
]
_COLOURS = {(False, False): "#377eb8", (True, False): "#e41a1c", (False, True): "#4daf4a", (True, True): "#984ea3"}


def plot(results, out_dir):
    """Six panels against depth, one line per architecture (colour: plain/residual × BN; dashed: enhanced He)."""
    fig, axes = figure(ncols=3, nrows=2, width=4.6, height=3.4)
    for ax, (key, title, log) in zip(axes, PANELS):
        for a in results["architectures"]:
            r, b, i = a["residual"], a["batchnorm"], a["init"]
            x, y = series(results, key, r, b, i)
            ls = "--" if i == "enhanced_he" else "-"
            ok = np.isfinite(y) & ((y > 0) if log else True)
            ax.plot(x[ok], y[ok], ls, marker="o", ms=3, color=_COLOURS[(r, b)], label=a["label"])
            if key == "rate":
                _, em = series(results, "eta_mu0", r, b, i)
                ax.plot(x, em, "x", ms=5, color=_COLOURS[(r, b)], alpha=0.7)
        if log:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("depth L (dense layers)", fontsize=8)
        ax.set_xticks(results["depths"])
    axes[0].legend(fontsize=6, ncol=2)
    s = results["settings"]
    fig.suptitle("Architecture and the PL constant (BN: the training-mode batch kernel; residual L = 2 is the plain MLP)",
                 fontsize=10)
    footer(fig, f"MLP 784 -> H = {s['width']} -> 1, full-batch GD at η = {s['eta_fraction']:g}/β₀, {s['steps']} steps, "
                f"{s['dtype']}, seed {s['seed']}; N = {results['n']}; data: {results['data']}", width=150)
    return [save(fig, Path(out_dir) / "architecture.png")]
