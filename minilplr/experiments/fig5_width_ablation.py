"""LPLR paper, Figure 5: width ablation of the MNIST GD run.

The same setting as Fig. 1 at several widths: the final training loss after
the paper's 250 epochs, the parameter drift ``‖θ_T − θ_0‖`` and the final
``λ_min(Θ_T)`` per width.  The paper reports that wider networks reach a
lower loss; its newest version adds that a fixed-step width-1024 run leaves
the local regime (drift 1.870, cut to 0.158 by a smaller step).  Ours shows
what our runs do.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .mnist_gd import MNIST_PRESETS, fmt, gd_run, run_config, settings_text
from .plotting import figure, footer, save

NAME = "fig5_width_ablation"
TITLE = "LPLR paper Fig. 5: width ablation (final loss, parameter drift, final λ_min per width)"
PRESETS = {
    "paper": dict(MNIST_PRESETS["paper"], widths=[64, 128, 256, 512, 1024, 2048]),
    "quick": dict(MNIST_PRESETS["quick"], widths=[32, 64, 128, 256]),
}


def run(config, out_dir, backend=None, progress=True):
    rows = []
    for w in config["widths"]:
        res = gd_run(run_config(config, width=w), Path(out_dir).parent / "runs", backend, progress,
                     label=config["init"])
        d = res["diag"]
        rows.append(dict(width=w, status=res["status"], final_loss=float(res["history"]["loss"][-1]),
                         drift=res["final_param_drift"],
                         lam_min0=float(d["lam_min"][0]) if d else float("nan"),
                         lam_minT=float(d["lam_min"][-1]) if d else float("nan"),
                         ntk_driftT=float(d["ntk_drift_fro"][-1]) if d else float("nan"),
                         loss=res["history"]["loss"]))
        last = res
    return dict(status="finished" if all(r["status"] == "finished" for r in rows) else "partly diverged",
                data=last["data"], rows=rows, n=last["n"], example=last)


def plot(results, out_dir):
    rows = results["rows"]
    w = np.array([r["width"] for r in rows], float)
    fig, axes = figure(ncols=3, width=4.3)
    ax = axes[0]
    for i, r in enumerate(rows):
        ax.semilogy(r["loss"], color=f"C{i}", lw=1.2, label=f"width {r['width']}" + ("" if r["status"] == "finished" else " (diverged)"))
    ax.set_xlabel("GD step t")
    ax.set_ylabel("$L_t$")
    ax.legend(fontsize=7)
    ax.set_title("training loss", fontsize=10)
    ax = axes[1]
    ax.loglog(w, [r["final_loss"] for r in rows], "o-", color="C0", label="final loss $L_T$")
    ax.loglog(w, [r["drift"] for r in rows], "s-", color="C1", label=r"drift $\|\theta_T-\theta_0\|$")
    ax.loglog(w, [r["ntk_driftT"] for r in rows], "^-", color="C2", label=r"NTK drift $\|\Theta_T-\Theta_0\|_F/\|\Theta_0\|_F$")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("width H")
    ax.legend(fontsize=7)
    ax.set_title("after the last epoch", fontsize=10)
    ax = axes[2]
    ax.loglog(w, [r["lam_min0"] for r in rows], "o-", color="C3", label=r"$\lambda_{\min}(\Theta_0)$")
    ax.loglog(w, [r["lam_minT"] for r in rows], "s--", color="C4", label=r"$\lambda_{\min}(\Theta_T)$")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("width H")
    ax.legend(fontsize=7)
    ax.set_title("smallest NTK eigenvalue", fontsize=10)
    fig.suptitle("Fig. 5 (LPLR): width ablation", fontsize=11)
    footer(fig, settings_text(results["example"]).replace(f"{results['example']['run_config']['width']} -> ", "H -> ").replace(
        f"-> {results['example']['run_config']['width']}", "-> H") + f"; widths {', '.join(str(int(x)) for x in w)}")
    return [save(fig, Path(out_dir) / "fig5_width_ablation.png")]


def report(results):
    rows = results["rows"]
    finals = [r["final_loss"] for r in rows]
    drifts = [r["drift"] for r in rows]
    mono = all(b <= a for a, b in zip(finals, finals[1:]))
    corr = float(np.corrcoef(np.log([r["width"] for r in rows]), np.log(finals))[0, 1]) if len(rows) > 2 else float("nan")
    table = "; ".join(f"H={r['width']}: L_T {fmt(r['final_loss'])}, drift {fmt(r['drift'])}, λ_min(Θ_T) {fmt(r['lam_minT'])}"
                      for r in rows)
    cap = (f"Fig. 5 (LPLR): width ablation. {settings_text(results['example'])}. {table}.")
    claims = [
        dict(claim="Wider networks reach a lower final training loss",
             measured=f"final losses {', '.join(fmt(x) for x in finals)} for widths "
                      f"{', '.join(str(r['width']) for r in rows)} (monotone: {mono}; corr(log H, log L_T) = {fmt(corr)})",
             holds=bool(mono) if mono else (bool(corr < -0.8) if np.isfinite(corr) else None)),
        dict(claim="Parameter drift shrinks with width (the lazy / local regime)",
             measured=", ".join(f"{r['width']}: {fmt(d)}" for r, d in zip(rows, drifts)),
             holds=bool(drifts[-1] < drifts[0])),
    ]
    return {"figures": [("fig5_width_ablation.png", cap)], "claims": claims}
