"""NTK stability along the MNIST GD run (Assumption 5.2; not a figure of the paper).

The LPLR theorem needs, on the region GD visits, ``λ_min(Θ(θ)) ≥ λ₀ > 0``
and a Lipschitz NTK, and Theorem 5.4 needs ``η ≤ 1/β``.  This figure shows,
for the He run of Fig. 1: ``λ_min(Θ_t)`` and ``λ_max(Θ_t)``, the NTK drift
``‖Θ_t − Θ_0‖/‖Θ_0‖`` (Frobenius and spectral) and the parameter drift
``‖θ_t − θ_0‖`` over training; and ``η`` against ``1/β`` with ``β`` the
Hessian's top eigenvalue (Lanczos, :func:`minilplr.theory.smoothness.hessian_top_eigenvalue`)
at the start and the end, beside the Gauss–Newton estimate ``λ_max(Θ)/n``.

The step-size verdict rests on what the solver certified
(:func:`minilplr.theory.smoothness.step_size_condition`): ``β`` is a Rayleigh quotient, a
lower bound of ``‖∇²L‖₂``, so ``ηβ > 1`` fails for sure; "holds" needs a
converged solve with ``η·β(1 + residual) ≤ 1``; anything else (a solve that
did not converge, or a run saved before the residual was recorded) is
"not certified".
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..theory import smoothness as _smoothness
from .mnist_gd import MNIST_PRESETS, fmt, gd_run, run_config, settings_text
from .plotting import figure, footer, save

NAME = "ntk_stability"
TITLE = "NTK stability along GD (Assumption 5.2): λ_min(Θ_t), NTK and parameter drift, η against 1/β"
PRESETS = MNIST_PRESETS


def run(config, out_dir, backend=None, progress=True):
    res = gd_run(run_config(config), Path(out_dir).parent / "runs", backend, progress, label="he")
    return dict(status=res["status"], data=res["data"], run=res)


def plot(results, out_dir):
    res = results["run"]
    d, h, n, lr = res["diag"], res["history"], res["n"], res["lr"]
    fig, axes = figure(ncols=3, width=4.3)
    ax = axes[0]
    if d:
        ax.semilogy(d["step"], d["lam_min"], "o-", ms=3, color="C3", label=r"$\lambda_{\min}(\Theta_t)$")
        ax.semilogy(d["step"], d["lam_max"], "s-", ms=3, color="C0", label=r"$\lambda_{\max}(\Theta_t)$")
        unres = d["resolved"] == 0
        if unres.any():
            ax.semilogy(d["step"][unres], d["lam_min_bound"][unres], "v", color="0.5", label="λ_min unresolved (bound)")
    ax.set_xlabel("GD step t")
    ax.set_ylabel("NTK eigenvalue")
    ax.legend(fontsize=7)
    ax.set_title("NTK spectrum edges", fontsize=10)
    ax = axes[1]
    if d:
        ax.plot(d["step"], d["ntk_drift_fro"], "o-", ms=3, color="C2", label=r"$\|\Theta_t-\Theta_0\|_F/\|\Theta_0\|_F$")
        ax.plot(d["step"], d["ntk_drift_spec"], "s--", ms=3, color="C4", label=r"$\|\Theta_t-\Theta_0\|_2/\|\Theta_0\|_2$")
    ax2 = ax.twinx()
    ax2.plot(np.arange(h["param_drift"].size), h["param_drift"], color="C1", lw=1.2, label=r"$\|\theta_t-\theta_0\|$")
    ax2.set_ylabel(r"$\|\theta_t-\theta_0\|$", color="C1")
    ax.set_xlabel("GD step t")
    ax.set_ylabel("relative NTK drift")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper left")
    ax.set_title("drift of the kernel and the parameters", fontsize=10)
    ax = axes[2]
    hs = res["hessian"]
    labels, vals = [], []
    for key, lab in (("beta0", "β at start"), ("betaT", "β at end")):
        if key in hs:
            labels.append(lab)
            vals.append(hs[key])
    if d:
        labels += ["λ_max(Θ_0)/n", "λ_max(Θ_T)/n"]
        vals += [d["lam_max"][0] / n, d["lam_max"][-1] / n]
    ax.bar(range(len(vals)), vals, color=["C0", "C0", "C2", "C2"][: len(vals)])
    ax.axhline(1 / lr, color="C3", ls="--", label=f"1/η = {1 / lr:g}")
    ax.set_xticks(range(len(vals)), labels, rotation=20, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("smoothness estimate")
    ax.legend(fontsize=7)
    ax.set_title("step-size condition η ≤ 1/β", fontsize=10)
    fig.suptitle("NTK stability along GD (Assumption 5.2 and Theorem 5.4's step condition)", fontsize=11)
    footer(fig, settings_text(res))
    return [save(fig, Path(out_dir) / "ntk_stability.png")]


def certified_beta(hs: dict, key: str) -> _smoothness.HessianTop:
    """The stored β ``hs[key]`` with its certificate, as a :class:`~minilplr.theory.smoothness.HessianTop`.

    A run saved without the certificate (the power-iteration era) reads as
    not converged, residual ``nan``: its β is a lower bound and nothing more.
    """
    return _smoothness.HessianTop(beta=float(hs[key]), rayleigh=float(hs.get(f"{key}_rayleigh", hs[key])),
                          matvecs=int(hs.get(f"{key}_matvecs", 0)),
                          converged=bool(hs.get(f"{key}_converged", False)) and f"{key}_residual" in hs,
                          residual=float(hs.get(f"{key}_residual", float("nan"))),
                          tol=float(hs.get(f"{key}_tol", float("nan"))))


def beta_text(top: _smoothness.HessianTop) -> str:
    """``β`` with its achieved accuracy, for captions: "93.5197 (relative residual 2e-10)"."""
    if top.converged:
        return f"{fmt(top.beta, 6)} (relative residual {top.residual:.0e})"
    why = "no residual recorded" if np.isnan(top.residual) else "the solver did not converge"
    return f"{fmt(top.beta, 6)} (a lower bound: {why})"


def verdict_word(check) -> str:
    return "not certified" if check.holds is None else "holds" if check.holds else "fails"


def report(results):
    res = results["run"]
    d, lr, hs = res["diag"], res["lr"], res["hessian"]
    lam = np.asarray(d.get("lam_min", []), float)
    ratio = float(np.nanmin(lam) / lam[0]) if lam.size and np.isfinite(lam[0]) else float("nan")
    tops = [certified_beta(hs, k) for k in ("beta0", "betaT") if k in hs]
    checks = [_smoothness.step_size_condition(lr, t) for t in tops]
    verdicts = [c.holds for c in checks]  # True, False or None (not certified)
    if not checks or (None in verdicts and False not in verdicts):
        step_holds = None  # not computed, or not certified
    else:
        step_holds = all(verdicts)  # one certain failure fails it
    cap = (f"NTK stability (Assumption 5.2): λ_min/λ_max of Θ_t, NTK and parameter drift, and η against 1/β. "
           f"{settings_text(res)}. λ_min(Θ_0) = {fmt(lam[0] if lam.size else float('nan'))}, "
           f"min_t λ_min(Θ_t)/λ_min(Θ_0) = {fmt(ratio)}, final NTK drift {fmt(d['ntk_drift_fro'][-1] if d else float('nan'))}, "
           f"β (start, end) = {', '.join(beta_text(t) for t in tops) or 'n/a'}, 1/η = {1 / lr:g}.")
    claims = [
        dict(claim="Assumption 5.2: λ_min(Θ_t) stays bounded away from 0 along GD (min over t ≥ half its start)",
             measured=f"λ_min(Θ_0) = {fmt(lam[0] if lam.size else float('nan'))}, min_t λ_min(Θ_t)/λ_min(Θ_0) = {fmt(ratio)}",
             holds=None if not np.isfinite(ratio) else bool(ratio >= 0.5)),
        dict(claim="The NTK stays close to its initial value (relative Frobenius drift < 0.1)",
             measured=f"final drift {fmt(d['ntk_drift_fro'][-1] if d else float('nan'))}",
             holds=bool(d["ntk_drift_fro"][-1] < 0.1) if d else None),
        dict(claim="Theorem 5.4's step condition η ≤ 1/β holds (β: Hessian top eigenvalue, start and end)",
             measured="; ".join(f"η·β = {fmt(lr * t.beta)}, β = {beta_text(t)}: {verdict_word(c)}"
                                for t, c in zip(tops, checks)) or "β not computed",
             holds=step_holds),
    ]
    return {"figures": [("ntk_stability.png", cap)], "claims": claims}
