"""Initialisation sensitivity: the variance exponent ``p`` of ``N(0, h^{−2p})`` at fixed width.

Reproduces the initialisation experiment of Xu, Min, Tarmoun, Mallada, Vidal
(arXiv 2505.11664, App. G.1; THEORY.md §2), ``p ∈ {0.275, 0.375, 0.475}``
at fixed ``h``.  Both factors scale together, so ``κ(T₀)`` hardly depends on
``p``; what changes is the scale ``σ²(T₀) ≈ 2h^{1−2p}`` against the size of
the solution: a small ``p`` (large start) makes the loss-dependent part
``√(2KL)`` of the local smoothness relatively small and the weights move
little (``σ²(T_t)`` stays put), a large ``p`` (small start) makes the weights
travel further.  The paper's summary: smaller ``p`` speeds convergence.
"""
from __future__ import annotations

import logging

import pathlib

import numpy as np


from .linear_runs import SCHEDULE_LABELS, cached_run, data_caption, trend
from ..theory.linear.trajectory import observed_rate, steps_to_tolerance

log = logging.getLogger("minilplr.experiments")  # per-run lines: run_all.py --verbose

NAME = "linear_init"
TITLE = "Xu et al. 2025 (arXiv 2505.11664), App. G.1: sensitivity to the initialisation scale p"

_DATA = {"N": 20, "n": 20, "m": 20, "seed": 0, "x_cond": 1.0}
_OPTS = {"adaptive": {"eta0": 0.01, "sigma_bound": "paper"}}
PRESETS = {
    "quick": {"data": _DATA, "h": 1000, "ps": [0.275, 0.375, 0.475], "init_seeds": [0, 1, 2],
              "schedules": ["adaptive", "constant"], "schedule_opts": _OPTS,
              "steps": 1000, "tol": 1e-12, "report_tol": 1e-10, "dtype": "float64"},
    "paper": {"data": _DATA, "h": 1000, "ps": [0.275, 0.375, 0.475], "init_seeds": list(range(10)),
              "schedules": ["adaptive", "constant"], "schedule_opts": _OPTS,
              "steps": 3000, "tol": 1e-12, "report_tol": 1e-10, "dtype": "float64"},
}


def run(config, out_dir, backend=None, progress=True) -> dict:
    """GD per ``p`` × seed × schedule (cached per run)."""
    folder = pathlib.Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    runs = []
    for sched in config["schedules"]:
        for p in config["ps"]:
            for seed in config["init_seeds"]:
                spec = {"data": config["data"], "h": int(config["h"]), "init": {"kind": "gaussian", "p": float(p)},
                        "init_seed": int(seed), "schedule": sched,
                        "schedule_opts": config["schedule_opts"].get(sched, {}), "steps": int(config["steps"]),
                        "tol": float(config["tol"]), "track_drift": False, "dtype": config["dtype"]}
                r = cached_run(folder / "runs", spec, backend=backend)
                row = {"schedule": sched, "p": float(p), "seed": int(seed), "gap": r["gap"], "lr": r["lr"],
                       "sigma2_min": r["sigma2_min"], "sigma2_max": r["sigma2_max"], "kappa0": float(r["kappa0"]),
                       "sigma2_max0": float(r["sigma2_max0"]), "rate": observed_rate(r["gap"]),
                       "iters_to_tol": steps_to_tolerance(r["gap"], float(config["report_tol"])),
                       "steps": int(r["steps"]), "stopped": str(r["stopped"])}
                runs.append(row)
                log.info(f"[{NAME}] {sched:9s} p={p} seed={seed}: κ(T₀)={row['kappa0']:.3f} "
                          f"σ²_max(T₀)={row['sigma2_max0']:.3g} iterations={row['iters_to_tol']:g} ({r['stopped']})")
    results = {"name": NAME, "config": config, "data": config["data"], "runs": runs}
    return results


def _mean(results, sched, key):
    ps = results["config"]["ps"]
    return ps, [float(np.mean([r[key] for r in results["runs"] if r["schedule"] == sched and r["p"] == p]))
                for p in ps]


def _caption(results) -> str:
    c = results["config"]
    return (f"{data_caption(results['data'], c['dtype'])} Width h = {c['h']}, init N(0, h^(-2p)), p ∈ {c['ps']}, "
            f"init seeds {c['init_seeds']} (seed {c['init_seeds'][0]} bold). Adaptive schedule η₀ = "
            f"{c['schedule_opts']['adaptive']['eta0']}; stop at (L − L*) ≤ {c['tol']:g}(L₀ − L*).")


def plot(results, out_dir) -> list:
    from .plotting import figure, footer, plt, save

    folder = pathlib.Path(out_dir)
    ps = results["config"]["ps"]
    first = results["config"]["init_seeds"][0]
    colors = dict(zip(ps, plt.cm.plasma(np.linspace(0.1, 0.8, len(ps)))))
    fig, ax = figure(ncols=3, width=5.0, height=4.4)
    for r in results["runs"]:
        if r["schedule"] != "adaptive":
            continue
        main = r["seed"] == first
        kw = dict(color=colors[r["p"]], lw=1.8 if main else 0.7, alpha=1.0 if main else 0.4,
                  label=f"p={r['p']:g}" if main else None)
        t = np.arange(r["gap"].size)
        ax[0].semilogy(t, r["gap"], **kw)
        ax[1].semilogy(t[:-1], r["lr"][:-1], **kw)
        ax[2].plot(t, r["sigma2_min"] / r["sigma2_min"][0], **kw)
        ax[2].plot(t, r["sigma2_max"] / r["sigma2_max"][0], ls="--", **{**kw, "label": None})
    ax[0].set(xlabel="iteration t", ylabel="L(t) − L*", title="(a) loss, adaptive schedule")
    ax[1].set(xlabel="iteration t", ylabel="step size η_t", title="(b) adaptive step size")
    ax[2].set(xlabel="iteration t", ylabel="σ²(T_t) / σ²(T₀)",
              title="(c) σ²_min(T_t) (solid), σ²_max(T_t) (dashed)")
    for a in ax:
        a.legend(fontsize=8)
    _, kap = _mean(results, "adaptive", "kappa0")
    _, it = _mean(results, "adaptive", "iters_to_tol")
    lines = [f"p={p:g}: κ(T₀)={k:.3f}, {i:.1f} it" for p, k, i in zip(ps, kap, it)]
    if any(r["schedule"] == "constant" for r in results["runs"]):
        _, itc = _mean(results, "constant", "iters_to_tol")
        lines += [f"constant η=1/K₀, p={p:g}: {i:.1f} it" for p, i in zip(ps, itc)]
    ax[0].text(0.02, 0.03, f"to {results['config']['report_tol']:g} (mean):\n" + "\n".join(lines),
               transform=ax[0].transAxes, ha="left", va="bottom", fontsize=7,
               bbox=dict(boxstyle="round", fc="white", alpha=0.8))
    fig.suptitle("Two-layer linear network: initialisation scale N(0, h^(-2p))")
    footer(fig, _caption(results), width=230)
    return [save(fig, folder / "init.png")]


def report(results) -> dict:
    claims = []
    for sched in results["config"]["schedules"]:
        ps, it = _mean(results, sched, "iters_to_tol")
        claims.append(trend(f"Smaller p (larger initial variance) converges in fewer iterations, "
                               f"{SCHEDULE_LABELS[sched]} (Xu et al. 2025, App. G.1): mean iterations to "
                               f"{results['config']['report_tol']:g} increase with p at every step",
                               ps, it, "increasing", quantity="mean iterations"))
    cap = ("Loss, adaptive step size and the drift of σ²_min/σ²_max(T_t) for three initialisation scales. "
           + _caption(results))
    return {"figures": [(f"init.png", cap)], "claims": claims}
