"""Step-size schedules compared on the two-layer linear network: constant, adaptive, 2023, Armijo.

Reproduces the schedule comparison of Xu, Min, Tarmoun, Mallada, Vidal (arXiv
2505.11664, Sec. 4.2 / Fig. 2; THEORY.md §2): their adaptive step
(eq. 19, ``η_t = min((1 + η₀²)^t/(2η₀), 1/K̄_t)``) against the 2023 schedule
(minimiser of the rate polynomial of Xu et al., AISTATS 2023), backtracking
line search, and (our addition) the constant step ``η = 1/K₀``.

The loss and ``η_t`` are plotted against iterations; since backtracking pays
loss evaluations for its trial points, the loss is also plotted against the
number of evaluations (one gradient per step, plus every trial loss).
"""
from __future__ import annotations

import logging

import pathlib

import numpy as np

from ..theory.verdicts import Verdict, compare, fmt, untestable

from .linear_runs import SCHEDULE_LABELS, cached_run, data_caption
from ..theory.linear.trajectory import steps_to_tolerance

log = logging.getLogger("minilplr.experiments")  # per-run lines: run_all.py --verbose

NAME = "linear_schedules"
TITLE = "Xu et al. 2025 (arXiv 2505.11664), Sec. 4.2 / Fig. 2: adaptive step size vs the 2023 schedule and backtracking"

_DATA = {"N": 20, "n": 20, "m": 20, "seed": 0, "x_cond": 1.0}
_OPTS = {
    "adaptive": {"eta0": 0.01, "sigma_bound": "paper", "grad_bound": "loss", "second_order": True},
    "xu2023": {"c1": 1.5, "c2": 0.5},
    "armijo": {"lr_init": 1.0, "shrink": 0.5, "c": 1e-4},
}
PRESETS = {
    "quick": {
        "data": _DATA, "h": 1000, "init": {"kind": "gaussian", "p": 0.375}, "init_seeds": [0, 1, 2],
        "schedules": ["constant", "adaptive", "xu2023", "armijo"], "schedule_opts": _OPTS,
        "steps": 1000, "tol": 1e-12, "report_tol": 1e-10, "dtype": "float64",
    },
    "paper": {
        "data": _DATA, "h": 1000, "init": {"kind": "gaussian", "p": 0.375}, "init_seeds": list(range(10)),
        "schedules": ["constant", "adaptive", "xu2023", "armijo"], "schedule_opts": _OPTS,
        "steps": 3000, "tol": 1e-12, "report_tol": 1e-10, "dtype": "float64",
    },
}

_COLORS = {"constant": "tab:gray", "adaptive": "tab:blue", "xu2023": "tab:orange", "armijo": "tab:green"}


def run(config, out_dir, backend=None, progress=True) -> dict:
    """GD with each schedule from the same starts (seed × schedule, cached per run)."""
    folder = pathlib.Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    runs = []
    for sched in config["schedules"]:
        for seed in config["init_seeds"]:
            spec = {"data": config["data"], "h": int(config["h"]), "init": config["init"], "init_seed": int(seed),
                    "schedule": sched, "schedule_opts": config["schedule_opts"].get(sched, {}),
                    "steps": int(config["steps"]), "tol": float(config["tol"]), "track_drift": False,
                    "dtype": config["dtype"]}
            r = cached_run(folder / "runs", spec, backend=backend)
            tol = float(config["report_tol"])
            row = {"schedule": sched, "seed": int(seed), "gap": r["gap"], "lr": r["lr"], "evals": r["evals"],
                   "steps": int(r["steps"]), "stopped": str(r["stopped"]),
                   "iters_to_tol": steps_to_tolerance(r["gap"], tol),
                   "evals_to_tol": steps_to_tolerance(r["gap"], tol, r["evals"]),
                   "function_evals": int(r["function_evals"]), "armijo_failures": int(r["armijo_failures"]),
                   "max_lr_K": float(np.nanmax(r["lr"] * r["K_t"])) if r["steps"] else float("nan")}
            runs.append(row)
            log.info(f"[{NAME}] {sched:9s} seed={seed}: {row['iters_to_tol']:g} iterations, "
                      f"{row['evals_to_tol']:g} evaluations to {tol:g}; {r['steps']} steps ({r['stopped']})")
    results = {"name": NAME, "config": config, "data": config["data"], "runs": runs}
    return results


def _table(results):
    """``schedule -> (mean iterations, mean evaluations)`` to ``report_tol`` (nan if any seed missed)."""
    out = {}
    for sched in results["config"]["schedules"]:
        rows = [r for r in results["runs"] if r["schedule"] == sched]
        out[sched] = (float(np.mean([r["iters_to_tol"] for r in rows])),
                      float(np.mean([r["evals_to_tol"] for r in rows])))
    return out


def _caption(results) -> str:
    c = results["config"]
    o = c["schedule_opts"]
    return (f"{data_caption(results['data'], c['dtype'])} Width h = {c['h']}, init N(0, h^(-2p)), p = {c['init']['p']}, "
            f"init seeds {c['init_seeds']} (seed {c['init_seeds'][0]} bold). Adaptive: η₀ = {o['adaptive']['eta0']}, "
            f"σ̄² = α₂e^√η₀ (reconstruction of K̄_t); 2023: c₁ = {o['xu2023']['c1']}, c₂ = {o['xu2023']['c2']}; "
            f"Armijo: η_init = {o['armijo']['lr_init']}, ρ = {o['armijo']['shrink']}, c = {o['armijo']['c']}; "
            f"constant: η = 1/K₀. Stop at (L − L*) ≤ {c['tol']:g}(L₀ − L*).")


def plot(results, out_dir) -> list:
    from .plotting import figure, footer, save

    folder = pathlib.Path(out_dir)
    first = results["config"]["init_seeds"][0]
    fig, ax = figure(ncols=3, width=5.0, height=4.4)
    for r in results["runs"]:
        c, main = _COLORS.get(r["schedule"], "k"), r["seed"] == first
        kw = dict(color=c, lw=1.8 if main else 0.7, alpha=1.0 if main else 0.35,
                  label=SCHEDULE_LABELS[r["schedule"]] if main else None)
        t = np.arange(r["gap"].size)
        ax[0].semilogy(t, r["gap"], **kw)
        ax[1].semilogy(t[:-1], r["lr"][:-1], **kw)
        ax[2].semilogy(r["evals"], r["gap"], **kw)
    ax[0].set_xlabel("iteration t")
    ax[0].set_ylabel("L(t) − L*")
    ax[0].set_title("(a) loss against iterations")
    ax[1].set_xlabel("iteration t")
    ax[1].set_ylabel("step size η_t")
    ax[1].set_title("(b) step size")
    ax[2].set_xlabel("evaluations (gradients + trial losses)")
    ax[2].set_ylabel("L − L*")
    ax[2].set_title("(c) loss against evaluations")
    for a in ax:
        a.legend(fontsize=8)
    tab = _table(results)
    txt = "\n".join(f"{SCHEDULE_LABELS[s]}: {it:.1f} it, {ev:.1f} ev" for s, (it, ev) in tab.items())
    ax[2].text(0.98, 0.55, f"to {results['config']['report_tol']:g} (mean):\n" + txt, transform=ax[2].transAxes,
               ha="right", va="center", fontsize=7, bbox=dict(boxstyle="round", fc="white", alpha=0.8))
    fig.suptitle("Two-layer linear network: step-size schedules")
    footer(fig, _caption(results), width=230)
    return [save(fig, folder / "schedules.png")]


def fastest_verdict(claim: str, means: dict, what: str) -> Verdict:
    """``adaptive`` needs fewer (mean) ``what`` than the best other schedule: ratio ``adaptive/best other ≤ 1``.

    A schedule that missed the tolerance in some seed (NaN) cannot be the
    best other; an adaptive NaN is untestable."""
    ad = means.get("adaptive", float("nan"))
    others = {s: v for s, v in means.items() if s != "adaptive" and np.isfinite(v)}
    if not others:
        return untestable(claim, "no other schedule reached the tolerance in every seed", "a longer run")
    best = min(others, key=others.get)
    return compare(claim, ad / others[best] if np.isfinite(ad) else float("nan"), 1.0, "≤",
                   quantity=f"adaptive/{best}", missing="the adaptive schedule missed the tolerance in some seed",
                   rests_on=f"mean {what} " + "; ".join(f"{s}: {fmt(v, 4)}" for s, v in means.items()))


def report(results) -> dict:
    tab = _table(results)
    tol = results["config"]["report_tol"]
    fails = sum(r["armijo_failures"] for r in results["runs"])
    claims = [
        fastest_verdict(f"The adaptive step size (eq. 19) is fastest: fewest mean iterations to (L − L*) ≤ "
                        f"{tol:g}(L₀ − L*) (ratio to the best other schedule ≤ 1)",
                        {s: v[0] for s, v in tab.items()}, "iterations"),
        fastest_verdict("… also counting evaluations (backtracking pays a loss evaluation per trial step)",
                        {s: v[1] for s, v in tab.items()}, "gradient+loss evaluations"
                        + (f" (Armijo gave up {fails}×)" if fails else "")),
    ]
    cap = ("L − L* and η_t against iterations, and L − L* against gradient + loss evaluations, for the four "
           "schedules. " + _caption(results))
    return {"figures": [(f"schedules.png", cap)], "claims": claims}
