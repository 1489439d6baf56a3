"""LPLR paper, Figure 4: He initialisation against the depth-aware "enhanced" He initialisation.

Both runs use the MNIST setting of Fig. 1; the enhanced one scales He's
weight variance by a depth factor ``c(L) < 1`` (default ``1/L``: a
reconstruction, the paper's formula is lost; :func:`minilplr.nn.init.enhanced_he_normal`).
The paper reports that both converge linearly and the enhanced one more
slowly.  The figure shows both loss curves on a semi-log axis with their
fitted rates (L* = 0), and ``λ_min(Θ_t)/n`` of each.

Each initialisation's "converges linearly" is judged behind the decade
rule (:func:`~minilplr.theory.verdicts.too_short`, the LPLR map's): a loss
that fell by less than ×10 is *untestable*, however straight, and only
then ``R² ≥`` :data:`~minilplr.theory.verdicts.R2_LINEAR`.

The He run is Fig. 1's (the same config, so the same cached run); the other
initialisation's Hessian ``β`` is read by nobody, so that run is made without
it (:func:`~minilplr.experiments.mnist_gd.lean_config`, ``hessian_iters = 0``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .fits import fit_linear_rate
from ..theory.verdicts import R2_LINEAR, Verdict, compare, fmt, too_short
from .mnist_gd import MNIST_PRESETS, gd_run, lean_config, mu_along_path, run_config, settings_text
from .plotting import figure, footer, save
from .timing import phase

NAME = "fig4_initialisation"
TITLE = "LPLR paper Fig. 4: He against depth-aware enhanced He initialisation (factor 1/L, a reconstruction)"
PRESETS = {k: dict(v, inits=["he", "enhanced_he"]) for k, v in MNIST_PRESETS.items()}


def run(config, out_dir, backend=None, progress=True):
    runs = {}
    for init in config["inits"]:
        # the configured init's run is shared (Fig. 1, 2, NTK stability: same config, same cache key); the
        # others' β is read by no figure or claim
        rc = run_config(config) if init == config["init"] else lean_config(config, beta=False, init=init)
        runs[init] = gd_run(rc, Path(out_dir).parent / "runs", backend, progress, label=init)
    with phase("fits"):
        fits = {k: fit_linear_rate(r["history"]["loss"], 0.0) for k, r in runs.items()}
    mus = {k: mu_along_path(r) for k, r in runs.items()}
    status = "finished" if all(r["status"] == "finished" for r in runs.values()) else "partly diverged"
    return dict(status=status, data=next(iter(runs.values()))["data"], runs=runs, fits=fits, mus=mus)


def plot(results, out_dir):
    fig, (ax1, ax2) = figure(ncols=2)
    for i, (init, res) in enumerate(results["runs"].items()):
        loss = res["history"]["loss"]
        t = np.arange(loss.size)
        f = results["fits"][init]
        tag = "" if res["status"] == "finished" else f" ({res['status']})"
        ax1.semilogy(t, loss, color=f"C{i}", lw=1.6, label=f"{init}{tag}: q = {fmt(f['rate'], 6)}, R² {fmt(f['r2'])}")
        if f["lo"] is not None:
            tt = np.arange(f["lo"], f["hi"] + 1)
            ax1.semilogy(tt, np.exp(f["intercept"] + f["log_rate"] * tt), "--", color=f"C{i}", lw=0.9)
        d = res["diag"]
        if d:
            ax2.semilogy(d["step"], d["lam_min"] / res["n"], "o-", color=f"C{i}", ms=3, label=f"{init}")
    ax1.set_xlabel("GD step t")
    ax1.set_ylabel("$L_t$ (L* = 0)")
    ax1.legend(fontsize=7)
    ax1.set_title("training loss and fitted rates", fontsize=10)
    ax2.set_xlabel("GD step t")
    ax2.set_ylabel(r"$\mu_t = \lambda_{\min}(\Theta_t)/n$")
    ax2.legend(fontsize=7)
    ax2.set_title("NTK lower bound along training", fontsize=10)
    fig.suptitle("Fig. 4 (LPLR): initialisation comparison", fontsize=11)
    res0 = next(iter(results["runs"].values()))
    footer(fig, settings_text(res0).replace(f"{res0['run_config']['init']} init", "He / enhanced-He (c = 1/L) init"))
    return [save(fig, Path(out_dir) / "fig4_initialisation.png")]


def linear_verdict(init: str, loss, fit: dict) -> Verdict:
    """One initialisation's "converges linearly": untestable when its loss fell by less than a decade
    (:func:`~minilplr.theory.verdicts.too_short`, the map's rule), else ``R² ≥`` :data:`R2_LINEAR` of the log-loss line."""
    claim = f"{init} converges linearly (R² ≥ {fmt(R2_LINEAR)} of the log-loss line, L* = 0)"
    gate = too_short(claim, loss)
    if gate is not None:
        return gate
    return compare(claim, fit["r2"], R2_LINEAR, "≥", quantity="R²",
                   rests_on=f"q = {fmt(fit['rate'], 6)}/step over steps {fit['lo']}–{fit['hi']}; loss "
                            f"{fmt(loss[0])} → {fmt(loss[-1])}", missing="no resolvable steps to fit")


def slower_verdict(runs, fits) -> Verdict:
    r"""The enhanced initialisation is slower than He: the ratio of fitted log-rates ``log q_{enh}/log q_{He} < 1``
    (margin in units of 1), with the final losses beside it."""
    he, en = fits.get("he"), fits.get("enhanced_he")
    ratio = en["log_rate"] / he["log_rate"] if he["log_rate"] < 0 else float("nan")
    return compare("The enhanced (depth-aware) initialisation converges more slowly than He (ratio of fitted "
                   "log-rates < 1)", ratio, 1.0, "≤", quantity="log q(enhanced)/log q(He)",
                   rests_on=f"q(He) = {fmt(he['rate'], 6)}, q(enhanced) = {fmt(en['rate'], 6)}; final loss "
                            f"{fmt(runs['he']['history']['loss'][-1])} vs "
                            f"{fmt(runs['enhanced_he']['history']['loss'][-1])}",
                   missing="He's loss did not fall: no rate to compare with")


def report(results):
    fits, runs = results["fits"], results["runs"]
    res0 = runs["he"]
    cap = (f"Fig. 4 (LPLR): He vs enhanced He (variance × 1/L, reconstruction), loss on a semi-log axis with fitted "
           f"rates, and λ_min(Θ_t)/n. {settings_text(res0).replace('he init', 'He / enhanced-He init')}. "
           + "; ".join(f"{k}: q = {fmt(f['rate'], 6)}/step, R² {fmt(f['r2'])}, final loss "
                       f"{fmt(runs[k]['history']['loss'][-1])}" for k, f in fits.items()))
    claims = [linear_verdict(k, runs[k]["history"]["loss"], f) for k, f in fits.items()]
    claims.append(slower_verdict(runs, fits))
    return {"figures": [("fig4_initialisation.png", cap)], "claims": claims}
