"""The noise-ball study's two figures, from saved results only: the last window's loss against ``η·c_b``, and the path."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...theory.verdicts import fmt
from ..plotting import figure, footer, save
from .claims import summaries

__all__ = ["plot"]


_PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _colours(batches):
    return {b: _PALETTE[i % len(_PALETTE)] for i, b in enumerate(batches)}


def _settings(results) -> str:
    st = results["settings"]
    return (f"{results['data']}; MLP 784→{st['width']}×{st['depth'] - 1}→1, N = {results['n']}, {st['steps']} steps, "
            f"β₀ = {fmt(results['beta0'])}, μ₀ = {fmt(results['mu0'])}, seeds {st['sgd_seeds']}")


def _plateau_figure(results, out_dir):
    S = summaries(results)
    n = results["n"]
    batches = sorted({s.batch for s in S.values()})
    col = _colours(batches)
    marks = {f: m for f, m in zip(sorted({round(s.fraction, 9) for s in S.values()}), "os^Dv<>")}
    fig, ax = figure(width=8.6, height=4.6)
    xs = []
    for name, s in S.items():
        if s.batch >= n or s.diverged:
            continue
        x = s.lr * s.c_b
        xs.append(x)
        ax.loglog(x, s.window_loss, marks[round(s.fraction, 9)], color=col[s.batch], ms=6, alpha=0.8,
                  mfc=col[s.batch] if s.levelled else "none")  # hollow: still falling, no plateau
    spread = [s.sigma2_b / s.c_b for s in S.values() if s.batch < n and s.c_b > 0 and np.isfinite(s.sigma2_b)]
    if xs and spread:
        s1 = float(np.median(spread))
        xx = np.geomspace(min(xs) / 1.5, max(xs) * 1.5, 50)
        ax.loglog(xx, xx * results["beta0"] * s1 / (2 * results["mu0"]), "k--", lw=1,
                  label=f"KNS ball ηc_bβ₀σ₁²/(2μ₀), σ₁² = {fmt(s1, 2)}")
        ax.loglog(xx, xx * s1 / 4, "k:", lw=1, label="quadratic ηc_bσ₁²/4")
    for s in S.values():
        if s.batch >= n and not s.diverged:
            ax.axhline(s.window_loss, color=col[s.batch], lw=0.8, ls="-.", alpha=0.7)
    for b in batches:
        ax.plot([], [], "o", color=col[b], label=f"b = {b}" if b < n else f"full batch (c_b = 0), -.-")
    for f, m in marks.items():
        ax.plot([], [], m, color="0.4", label=f"η = {fmt(f, 2)}/β₀")
    ax.set_xlabel("η · c_b,  c_b = (N − b)/(b(N − 1))")
    ax.plot([], [], "o", color="0.4", mfc="none", label="hollow: still falling (no plateau)")
    ax.set_ylabel("mean L over the last window")
    ax.set_title("Does the last window's loss scale as η/b? (a noise ball would level off and follow the lines)",
                 fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    footer(fig, _settings(results), width=110)
    return save(fig, Path(out_dir) / "sgd_noise_plateau.png")


def _path_figure(results, out_dir):
    S = summaries(results)
    n = results["n"]
    batches = sorted({s.batch for s in S.values()})
    col = _colours(batches)
    styles = {f: ls for f, ls in zip(sorted({round(s.fraction, 9) for s in S.values()}), ["-", "--", ":", "-."])}
    seed0 = results["settings"]["sgd_seeds"][0]
    fig, axes = figure(ncols=3, width=4.6, height=3.8)
    for name, c in results["cells"].items():
        s = S[name]
        if c["sgd_seed"] != seed0:
            continue
        kw = dict(color=col[s.batch], ls=styles[round(s.fraction, 9)], lw=1)
        axes[0].semilogy(c["record_steps"], c["loss"], **kw)
        axes[1].semilogy(c["noise_steps"], c["rho"], **kw)
        if s.batch < n:
            axes[2].semilogy(c["noise_steps"], np.maximum(c["sigma2_b"], 1e-300), **kw)
    b0 = next(iter(S.values())).rho_bound0
    axes[1].axhline(b0, color="k", ls="--", lw=0.8, label=f"N max Θ_ii/λ_min(Θ₀) = {fmt(b0)}")
    for b in batches:
        axes[0].plot([], [], color=col[b], label=f"b = {b}" if b < n else "full batch")
    for f, ls in styles.items():
        axes[0].plot([], [], color="0.4", ls=ls, label=f"η = {fmt(f, 2)}/β₀")
    axes[0].set_title("full-batch loss L_t", fontsize=10)
    axes[1].set_title("strong growth ρ_t = E‖∇ℓ_i‖²/‖∇L‖²", fontsize=10)
    axes[2].set_title("mini-batch noise σ_b² = c_b σ₁²", fontsize=10)
    for ax in axes:
        ax.set_xlabel("step t")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    footer(fig, _settings(results), width=160)
    return save(fig, Path(out_dir) / "sgd_noise_path.png")


def plot(results, out_dir):
    """``sgd_noise_plateau.png`` and ``sgd_noise_path.png`` (captions: :func:`.claims.report`)."""
    return [_plateau_figure(results, out_dir), _path_figure(results, out_dir)]
