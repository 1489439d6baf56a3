"""Imbalance drift against its bound, and the local PL constant along the trajectory.

Checks the two mechanisms of Xu, Min, Tarmoun, Mallada, Vidal (arXiv
2505.11664, Lemma E.2, Lemma 3.1, Theorem 3.1; THEORY.md §2) on GD runs:

* the imbalance ``D = W₁ᵀW₁ − W₂ᵀW₂`` moves by exactly
  ``η²(∇₁ᵀ∇₁ − ∇₂ᵀ∇₂)`` per step, bounded by ``2Kη²σ²_max(T)(L − L*)``; summed,
  ``‖D(t) − D(0)‖_F`` stays small next to ``‖D(0)‖_F``;
* so ``σ(T_t)`` stays near ``σ(T₀)``, the local PL constant ``μ_t = μσ²_min(T_t)``
  stays bounded below, the local PL inequality holds at every iterate, and
  the per-step contraction of ``L − L*`` is below ``1 − η_tμ_t(2 − η_tK_t)``.

Also recorded: whether ``σ²_max(T_t) ≤ α₂ exp(√η₀)`` (the bound our
reconstruction of ``K̄_t`` borrows from the paper) held.  Not in the paper as
a figure: these are the diagnostics behind its Theorem 3.2.
"""
from __future__ import annotations

import logging

import math
import pathlib

import numpy as np

from ..theory.verdicts import Verdict, compare, fmt, vacuous, worst_case

from .linear_runs import cached_run, data_caption, init_label

log = logging.getLogger("minilplr.experiments")  # per-run lines: run_all.py --verbose

NAME = "linear_imbalance"
TITLE = "Xu et al. 2025 (arXiv 2505.11664), Lemma E.2 / Thm 3.1: imbalance drift vs bound, local PL along GD"

_DATA = {"N": 20, "n": 20, "m": 20, "seed": 0, "x_cond": 1.0}
_OPTS = {"adaptive": {"eta0": 0.01, "sigma_bound": "paper"}, "armijo": {"lr_init": 1.0, "shrink": 0.5, "c": 1e-4}}
_RUNS = [
    {"init": {"kind": "gaussian", "p": 0.375}, "schedule": "adaptive"},
    {"init": {"kind": "gaussian", "p": 0.475}, "schedule": "adaptive"},
    {"init": {"kind": "imbalance", "sigma": 1.0, "p": 0.375}, "schedule": "adaptive"},
    {"init": {"kind": "imbalance", "sigma": 5.0, "p": 0.375}, "schedule": "adaptive"},
    {"init": {"kind": "gaussian", "p": 0.375}, "schedule": "armijo"},
]
PRESETS = {
    "quick": {"data": _DATA, "h": 1000, "runs": _RUNS, "init_seeds": [0, 1], "schedule_opts": _OPTS,
              "steps": 2000, "tol": 1e-12, "contraction_floor": 1e-9, "imbalance_tol": 0.05, "mu_floor": 0.5,
              "dtype": "float64"},
    "paper": {"data": _DATA, "h": 1000, "runs": _RUNS, "init_seeds": list(range(5)), "schedule_opts": _OPTS,
              "steps": 3000, "tol": 1e-12, "contraction_floor": 1e-9, "imbalance_tol": 0.05, "mu_floor": 0.5,
              "dtype": "float64"},
}

_KEEP = ("gap", "lr", "mu_t", "K_t", "pl_ratio", "rate_bound", "drift", "drift_bound", "drift_step",
         "drift_step_bound", "sigma2_min", "sigma2_max", "sigma_bound", "loss")


def _label(run) -> str:
    return f"{init_label(run['init'])}, {run['schedule']}"


def run(config, out_dir, backend=None, progress=True) -> dict:
    """GD runs (init × schedule × seed) with the imbalance tracked at every step (cached per run)."""
    folder = pathlib.Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    eta0 = float(config["schedule_opts"]["adaptive"]["eta0"])
    floor = float(config["contraction_floor"])
    runs = []
    for i, desc in enumerate(config["runs"]):
        for seed in config["init_seeds"]:
            spec = {"data": config["data"], "h": int(config["h"]), "init": desc["init"], "init_seed": int(seed),
                    "schedule": desc["schedule"], "schedule_opts": config["schedule_opts"].get(desc["schedule"], {}),
                    "steps": int(config["steps"]), "tol": float(config["tol"]), "track_drift": True,
                    "dtype": config["dtype"]}
            r = cached_run(folder / "runs", spec, backend=backend)
            gap = r["gap"]
            T = int(r["steps"])
            d0 = float(r["imbalance0"])
            # per-step contraction where the gap is above the floating-point floor
            ok = gap[:-1] > floor * gap[0]
            contr = gap[1:] / np.where(gap[:-1] > 0, gap[:-1], np.nan)
            lrK = r["lr"][:T] * r["K_t"][:T]
            dec = np.diff(r["loss"]) <= 0
            row = {
                "index": i, "label": _label(desc), "schedule": desc["schedule"], "init": desc["init"],
                "seed": int(seed), "steps": T, "stopped": str(r["stopped"]), "imbalance0": d0,
                **{k: r[k] for k in _KEEP},
                "max_rel_drift": float(np.nanmax(r["drift"]) / d0),
                "drift_within_bound": bool(np.all(r["drift"] <= r["drift_bound"] * (1 + 1e-9) + 1e-12 * d0)),
                "step_within_bound": bool(np.all(r["drift_step"][:T] <= r["drift_step_bound"][:T] * (1 + 1e-9)
                                                 + 1e-15)),
                "min_mu_ratio": float(np.min(r["mu_t"]) / r["mu_t"][0]),
                "min_pl_margin": float(np.nanmin(r["pl_ratio"] / r["mu_t"])),
                "max_lr_K": float(np.max(lrK)) if T else float("nan"),
                "decrease_when_lrK_below_2": bool(np.all(dec[lrK < 2])) if T else True,
                "contraction_within_bound": bool(np.all(contr[ok] <= r["rate_bound"][:T][ok] * (1 + 1e-9)))
                if T else True,
                "max_contraction_slack": float(np.max(contr[ok] - r["rate_bound"][:T][ok])) if ok.any() else float("nan"),
                "max_sigma2_max_ratio": float(np.max(r["sigma2_max"]) / r["sigma2_max"][0]),
                "paper_sigma_bound": math.exp(math.sqrt(eta0)),
            }
            runs.append(row)
            log.info(f"[{NAME}] {row['label']:45s} seed={seed}: ‖D−D₀‖/‖D₀‖ ≤ {row['max_rel_drift']:.2e}, "
                      f"min μ_t/μ₀ = {row['min_mu_ratio']:.3f}, max ηK_t = {row['max_lr_K']:.2f}, "
                      f"max σ²_max/α₂ = {row['max_sigma2_max_ratio']:.3f}, {T} steps ({r['stopped']})")
    results = {"name": NAME, "config": config, "data": config["data"], "runs": runs}
    return results


def _caption(results) -> str:
    c = results["config"]
    return (f"{data_caption(results['data'], c['dtype'])} Width h = {c['h']}; init seeds {c['init_seeds']} "
            f"(first bold). Adaptive: η₀ = {c['schedule_opts']['adaptive']['eta0']}, σ̄² = α₂e^√η₀; Armijo: "
            f"η_init = {c['schedule_opts']['armijo']['lr_init']}, ρ = {c['schedule_opts']['armijo']['shrink']}. "
            f"Imbalance init: W₁ = rU, W₂ = V/r, r² − r⁻² = σ, U, V ~ N(0, h^(-2p)). Contractions shown while "
            f"(L − L*) > {c['contraction_floor']:g}(L₀ − L*).")


def plot(results, out_dir) -> list:
    from .plotting import figure, footer, plt, save

    folder = pathlib.Path(out_dir)
    cfg = results["config"]
    first = cfg["init_seeds"][0]
    colors = plt.cm.tab10(np.arange(len(cfg["runs"])))
    floor = float(cfg["contraction_floor"])

    # Figure 1: the imbalance.
    fig, ax = figure(ncols=2, width=6.5, height=4.8)
    lo, hi = np.inf, 0.0
    for r in results["runs"]:
        main = r["seed"] == first
        c = colors[r["index"]]
        kw = dict(color=c, lw=1.6 if main else 0.6, alpha=1.0 if main else 0.4)
        t = np.arange(r["drift"].size)
        ax[0].semilogy(t[1:], r["drift"][1:] / r["imbalance0"], label=r["label"] if main else None, **kw)
        ax[0].semilogy(t[1:], r["drift_bound"][1:] / r["imbalance0"], ls="--", **kw)
        T = r["steps"]
        x, y = r["drift_step_bound"][:T], r["drift_step"][:T]
        keep = (x > 0) & (y > 0)
        ax[1].loglog(x[keep], y[keep], "o", ms=3 if main else 2, color=c, alpha=0.8 if main else 0.3,
                     label=r["label"] if main else None)
        if keep.any():
            lo, hi = min(lo, x[keep].min(), y[keep].min()), max(hi, x[keep].max(), y[keep].max())
    ax[0].set(xlabel="iteration t", ylabel="‖D(t) − D(0)‖_F / ‖D(0)‖_F",
              title="(a) imbalance drift (solid) and summed bound Σ2Kη²σ²_max(L−L*) (dashed)")
    ax[0].legend(fontsize=7)
    if np.isfinite(lo):
        ax[1].plot([lo, hi], [lo, hi], "k--", lw=1, label="drift = bound")
    ax[1].set(xlabel="per-step bound 2Kη_t²σ²_max(T_t)(L_t − L*)", ylabel="‖D(t+1) − D(t)‖_F",
              title="(b) per-step drift against its bound (all below the diagonal)")
    ax[1].legend(fontsize=7)
    fig.suptitle("Imbalance D = W₁ᵀW₁ − W₂ᵀW₂ under gradient descent")
    footer(fig, _caption(results), width=170)
    p1 = save(fig, folder / "imbalance.png")

    # Figure 2: the local constants along the trajectory.
    fig, ax = figure(ncols=2, nrows=2, width=6.5, height=4.4)
    for r in results["runs"]:
        main = r["seed"] == first
        c = colors[r["index"]]
        kw = dict(color=c, lw=1.6 if main else 0.6, alpha=1.0 if main else 0.4)
        lab = r["label"] if main else None
        t = np.arange(r["gap"].size)
        T = r["steps"]
        ax[0].plot(t, r["mu_t"] / r["mu_t"][0], label=lab, **kw)
        ax[0].plot(t, r["sigma2_max"] / r["sigma2_max"][0], ls=":", **kw)
        ax[1].plot(t, r["pl_ratio"] / r["mu_t"], label=lab, **kw)
        ok = r["gap"][:-1] > floor * r["gap"][0]
        contr = r["gap"][1:] / r["gap"][:-1]
        ax[2].semilogy(t[:-1][ok], contr[ok], label=lab, **kw)
        ax[2].semilogy(t[:-1][ok], np.clip(r["rate_bound"][:T][ok], 1e-6, None), ls="--", **kw)
        ax[3].plot(t[:T], r["lr"][:T] * r["K_t"][:T], label=lab, **kw)
    ax[0].axhline(results["runs"][0]["paper_sigma_bound"], color="k", ls="--", lw=1,
                  label="e^√η₀ (paper's bound on σ²_max/α₂)")
    ax[0].set(xlabel="iteration t", ylabel="ratio to t = 0",
              title="(a) μ_t/μ₀ = σ²_min(T_t)/σ²_min(T₀) (solid), σ²_max(T_t)/α₂ (dotted)")
    ax[1].axhline(1.0, color="k", ls="--", lw=1, label="local PL: ratio ≥ 1")
    ax[1].set(xlabel="iteration t", ylabel="½‖∇L‖² / (μ_t (L − L*))",
              title="(b) local PL inequality along the trajectory")
    ax[2].set(xlabel="iteration t", ylabel="(L(t+1) − L*) / (L(t) − L*)",
              title="(c) observed contraction (solid) vs 1 − ημ_t(2 − ηK_t) (dashed, where ηK_t ≤ 2)")
    ax[3].axhline(2.0, color="k", ls="--", lw=1, label="η_t K_t = 2 (descent limit)")
    ax[3].set(xlabel="iteration t", ylabel="η_t K_t(η_t)", title="(d) step against the local smoothness K_t")
    for a in ax:
        a.legend(fontsize=7)
    fig.suptitle("Local PL constant μ_t = μσ²_min(T_t) and local smoothness K_t along GD")
    footer(fig, _caption(results), width=170)
    p2 = save(fig, folder / "local_pl.png")
    return [p1, p2]


def _worst(claim, runs, value, threshold, relation, quantity, label_key="label", **kw) -> Verdict:
    """``value(run) relation threshold`` for every run; the row is the worst run (:func:`~minilplr.theory.verdicts.worst_case`)."""
    parts = [compare(claim, value(r), threshold, relation, quantity=quantity, **kw) for r in runs]
    return worst_case(claim, parts, labels=[f"{r[label_key]}, seed {r['seed']}" for r in runs])


def _max_ratio(num, den, upto=None) -> float:
    """``max_t num_t/den_t`` over the steps where ``den_t > 0`` (NaN if none)."""
    num, den = np.asarray(num, float)[:upto], np.asarray(den, float)[:upto]
    ok = den > 0
    return float(np.max(num[ok] / den[ok])) if ok.any() else float("nan")


def _contraction_ratio(r, floor: float = 1e-9) -> float:
    """``max_t ((L_{t+1} − L*)/(L_t − L*)) / bound_t`` over the steps above the floating-point floor."""
    gap, T = np.asarray(r["gap"], float), int(r["steps"])
    if T < 1:
        return float("nan")
    ok = gap[:T] > floor * gap[0]
    contr = gap[1:T + 1] / np.where(gap[:T] > 0, gap[:T], np.nan)
    return _max_ratio(contr[ok], np.asarray(r["rate_bound"], float)[:T][ok])


def imbalance_verdicts(runs, tol: float, floor: float) -> list:
    r"""The imbalance experiment's claims, each over every run, its worst run in the row.

    The per-step bound of Lemma E.2 and the contraction bound are proven
    inequalities: they check the code and the constants of our
    reconstruction (a ratio measured against its bound; the margin says how
    tight).  The others are the paper's empirical statements.
    """
    ad = [r for r in runs if r["schedule"] == "adaptive"]
    out = [
        _worst(f"The imbalance stays near its start: ‖D(t) − D(0)‖_F ≤ {tol:g}‖D(0)‖_F under the adaptive schedule",
               ad, lambda r: r["max_rel_drift"], tol, "≤", "max ‖D(t) − D(0)‖_F/‖D(0)‖_F"),
        _worst("‖D(k+1) − D(k)‖_F ≤ 2Kη_k²σ²_max(T_k)(L(k) − L*) at every step (Lemma E.2, a proven bound: a check "
               "of the code; the margin is its slack)", runs,
               lambda r: _max_ratio(r["drift_step"], r["drift_step_bound"], int(r["steps"])), 1.0, "≤",
               "max step drift / bound"),
        _worst("… and so the summed drift ‖D(t) − D(0)‖_F ≤ Σ_k (per-step bound)", runs,
               lambda r: _max_ratio(r["drift"], r["drift_bound"]), 1.0, "≤", "max drift / summed bound"),
        _worst(f"μ_t stays bounded: min_t μ_t/μ₀ ≥ {floor:g} (σ_min(T_t) stays away from 0)", runs,
               lambda r: r["min_mu_ratio"], floor, "≥", "min μ_t/μ₀"),
        _worst("Local PL inequality ½‖∇L‖² ≥ μ_t(L − L*) with μ_t = μσ²_min(T_t) at every iterate (Thm 3.1)", runs,
               lambda r: r["min_pl_margin"], 1.0, "≥", "min ½‖∇L‖²/(μ_t(L − L*))"),
        _worst("(L_{t+1} − L*) ≤ (1 − η_tμ_t(2 − η_tK_t))(L_t − L*) at every step (the contraction bound)", runs,
               _contraction_ratio, 1.0, "≤", "max contraction / bound"),
    ]
    if ad:
        out.append(_worst(f"σ²_max(T_t) ≤ α₂e^√η₀ = {fmt(ad[0]['paper_sigma_bound'], 4)}·α₂ along the adaptive runs "
                          "(Lemma 3.1's bound, used in our K̄_t reconstruction)", ad,
                          lambda r: r["max_sigma2_max_ratio"] / r["paper_sigma_bound"], 1.0, "≤",
                          "max σ²_max(T_t)/(α₂e^√η₀)"))
    lrk = [r for r in runs if np.isfinite(r["max_lr_K"]) and r["max_lr_K"] < 2]
    out.append(vacuous("The loss decreases at every step with η_tK_t < 2", "implied by the contraction bound's row "
                       "whenever η_tK_t < 2 (its factor is then below 1); kept as its consequence",
                       "the contraction bound's row", quantity="runs with max η_tK_t < 2", measured=len(lrk))
               if all(r["decrease_when_lrK_below_2"] for r in runs) else
               Verdict("The loss decreases at every step with η_tK_t < 2", "fails", "runs that rose with η_tK_t < 2",
                       float(sum(not r["decrease_when_lrK_below_2"] for r in runs)), 0.0, "≤"))
    return out


def report(results) -> dict:
    cfg = results["config"]
    runs = results["runs"]
    ad = [r for r in runs if r["schedule"] == "adaptive"]
    tol, floor = float(cfg["imbalance_tol"]), float(cfg["mu_floor"])
    max_drift_ad = max(r["max_rel_drift"] for r in ad) if ad else float("nan")
    per_label = {}
    for r in runs:
        per_label.setdefault(r["label"], []).append(r)

    def worst(key, fn=max):
        return "; ".join(f"{lab}: {fn(x[key] for x in rs):.3g}" for lab, rs in per_label.items())

    claims = imbalance_verdicts(runs, tol, floor)
    cap1 = ("Imbalance drift ‖D(t) − D(0)‖_F/‖D(0)‖_F with its summed per-step bound, and each step's drift "
            "against 2Kη²σ²_max(L − L*). " + _caption(results))
    cap2 = ("Local PL constant μ_t and σ²_max(T_t) relative to the start, the local PL ratio, the observed "
            "per-step contraction against the bound from μ_t and K_t, and η_tK_t. " + _caption(results))
    return {"figures": [(f"imbalance.png", cap1), (f"local_pl.png", cap2)], "claims": claims}
