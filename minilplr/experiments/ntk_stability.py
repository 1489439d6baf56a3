"""NTK stability along the MNIST GD run (Assumption 5.2; not a figure of the paper).

The LPLR theorem needs, on the region GD visits, ``λ_min(Θ(θ)) ≥ λ₀ > 0``
and a Lipschitz NTK, and Theorem 5.4 needs ``η ≤ 1/β``.  This figure shows,
for the He run of Fig. 1: ``λ_min(Θ_t)`` and ``λ_max(Θ_t)``, the NTK drift
``‖Θ_t − Θ_0‖/‖Θ_0‖`` (Frobenius and spectral) and the parameter drift
``‖θ_t − θ_0‖`` over training; and ``η`` against ``1/β`` with ``β`` the
Hessian's top eigenvalue (Lanczos, :func:`minilplr.theory.smoothness.hessian_top_eigenvalue`)
at the start and the end, beside the Gauss–Newton estimate ``λ_max(Θ)/n``.

The bottom row is the PL certificate of the paper's v3,
``μ = (λ₀ − L_Θ r)/n`` (:mod:`minilplr.theory.certificate`, computed from the run by
:func:`~minilplr.theory.certificate.run_certificate`): against the radius
``ρ = ‖θ − θ_0‖``, the certified constant ``(λ₀ − L_Θ ρ)/n`` beside what the
run saw at its checkpoints, ``λ_min(Θ_t)/n`` and the per-checkpoint Weyl bound
``(λ₀ − ‖Θ_t − Θ_0‖₂)/n``; the radii (drift reached, path length, the
a-priori radius ``R = 2√(2β(L₀ − L*))/μ``, the largest certifiable radius
``λ₀/L_Θ``); and the numbers.  ``L_Θ`` is the largest
``‖Θ_t − Θ_0‖₂/‖θ_t − θ_0‖`` over the checkpoints, a *lower* estimate of the
Lipschitz constant, so ``μ_cert`` is an upper estimate: ``μ_cert ≤ 0``
refutes the certificate, ``μ_cert > 0`` is consistent with it, not a proof.

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
from ..theory.certificate import run_certificate
from ..theory.convergence import step_size_verdict
from ..theory.verdicts import compare, fmt, margin_one_sided, untestable, vacuous
from ..backend import get_backend
from .mnist_gd import MNIST_PRESETS, gd_run, init_model, run_config, settings_text, theta0_norm
from .plotting import figure, footer, save

NAME = "ntk_stability"
TITLE = ("NTK stability along GD (Assumption 5.2): λ_min(Θ_t), NTK and parameter drift, η against 1/β, "
         "and the v3 certificate μ = (λ₀ − L_Θ r)/n")
PRESETS = MNIST_PRESETS


def run(config, out_dir, backend=None, progress=True):
    res = gd_run(run_config(config), Path(out_dir).parent / "runs", backend, progress, label="he")
    return dict(status=res["status"], data=res["data"], run=res)


def plot(results, out_dir):
    res = results["run"]
    d, h, n, lr = res["diag"], res["history"], res["n"], res["lr"]
    fig, axes = figure(ncols=3, nrows=2, width=4.3, height=3.6)
    axes = list(axes)
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
    _plot_certificate(axes[3], axes[4], axes[5], res)
    fig.suptitle("NTK stability along GD (Assumption 5.2, Theorem 5.4's step condition, v3's PL certificate)",
                 fontsize=11)
    footer(fig, settings_text(res))
    return [save(fig, Path(out_dir) / "ntk_stability.png")]


def _plot_certificate(ax_mu, ax_r, ax_txt, res):
    """The bottom row: μ_cert against the radius, the radii, and the numbers (:func:`~minilplr.theory.certificate.run_certificate`)."""
    c, d, n = run_certificate(res), res["diag"], res["n"]
    lam0, L, r = c["lam0"], c["L_theta"], c["r"]
    drift_t = np.asarray(c["checkpoint_drift"], float)
    ax = ax_mu
    if np.isfinite(lam0) and np.isfinite(L):
        rho = np.linspace(0.0, max(r, 1e-12), 200)
        ax.plot(rho, (lam0 - L * rho) / n, color="C3", lw=1.5,
                label=r"certificate $(\lambda_0 - \hat L_\Theta\,\rho)/n$")
        ax.plot(drift_t, (lam0 - np.asarray(c["ntk_diff_spec"], float)) / n, "v", ms=3, color="C4",
                label=r"Weyl on the path $(\lambda_0 - \|\Theta_t-\Theta_0\|_2)/n$")
        ax.plot(drift_t, np.asarray(d["lam_min"], float) / n, "o", ms=3, color="C2",
                label=r"measured $\lambda_{\min}(\Theta_t)/n$")
        ax.axhline(0.0, color="0.3", lw=0.8)
        ax.axvline(r, color="C1", ls="--", lw=1, label=f"drift reached r = {fmt(r)}")
        if np.isfinite(c["radius_max"]) and c["radius_max"] <= r:
            ax.axvline(c["radius_max"], color="C3", ls=":", lw=1, label=rf"$\rho^* = \lambda_0/\hat L_\Theta$ = {fmt(c['radius_max'])}")
        ax.plot([r], [c["mu_cert"]], "*", ms=11, color="C3", label=rf"$\mu_{{cert}}$ = {fmt(c['mu_cert'])}")
        # symlog: linear within ±λ₀/n (where the path's λ_min/n lives), logarithmic below (where μ_cert can go)
        top = abs(lam0) / n
        ax.set_yscale("symlog", linthresh=top, linscale=1.5)
        low = min(float(np.nanmin((lam0 - L * rho) / n)), -top)
        decades = np.arange(np.ceil(np.log10(top)), np.floor(np.log10(-low)) + 1)
        ticks = sorted({0.0, top, *(-(10.0 ** decades))})
        ax.set_yticks(ticks, [fmt(v, 2) for v in ticks], fontsize=7)
        ax.set_ylim(low * 2.5, top * 2.5)
        ax.legend(fontsize=6.3, loc="center right", framealpha=0.9)
    else:
        ax.text(0.5, 0.5, "no certificate:\n" + c["rests_on"], ha="center", va="center", fontsize=8,
                transform=ax.transAxes, wrap=True)
    ax.set_xlabel(r"radius $\rho = \|\theta-\theta_0\|$")
    ax.set_ylabel("PL constant (symlog)")
    ax.set_title("v3 certificate μ = (λ₀ − L_Θ·ρ)/n", fontsize=10)

    ax = ax_r
    items = [("drift reached r", r, "C1"), ("path length Σ η‖∇L‖", c["path_length"], "C0"),
             ("R with μ = λ₀/n", c["R"], "C2"), ("R with μ_cert", c["R_cert"], "C3"),
             ("ρ* = λ₀/L_Θ", c["radius_max"], "C4")]
    items = [(lab, v, col) for lab, v, col in items if np.isfinite(v) and v > 0]
    ax.barh(range(len(items)), [v for _, v, _ in items], color=[col for _, _, col in items])
    for i, (_, v, _) in enumerate(items):
        ax.text(v, i, f" {fmt(v)}", va="center", fontsize=7)
    ax.set_yticks(range(len(items)), [lab for lab, _, _ in items], fontsize=8)
    ax.set_xscale("log")
    lo, hi = min(v for _, v, _ in items), max(v for _, v, _ in items)
    ax.set_xlim(lo / 3, hi * 20)
    ax.invert_yaxis()
    ax.set_xlabel(r"parameter distance from $\theta_0$")
    ax.set_title("radii: reached against a-priori R = 2√(2β(L₀−L*))/μ", fontsize=10)

    ax = ax_txt
    ax.axis("off")
    lam_path = np.asarray(d.get("lam_min", []), float)
    lam_path = lam_path[np.isfinite(lam_path)]
    verdict = ("consistent with a PL region (measured on the path; not a proof)" if c["certified"] else
               "refuted (μ_cert ≤ 0: L_Θ is a lower estimate)" if np.isfinite(c["mu_cert"]) else "no certificate")
    lines = [
        f"λ₀ = λ_min(Θ₀) = {fmt(lam0, 4)}   (λ₀/n = {fmt(c['lam0_over_n'], 3)})",
        f"L_Θ ≥ {fmt(L, 4)}  (max ‖Θ_t − Θ₀‖₂/‖θ_t − θ₀‖,",
        f"        {c['checkpoints_used']} checkpoints; largest at t = {c['L_theta_step']})",
        f"r = max_t ‖θ_t − θ₀‖ = {fmt(r, 4)}",
        f"L_Θ·r/n = {fmt(c['L_theta_r_over_n'], 4)}",
        f"μ_cert = (λ₀ − L_Θ·r)/n = {fmt(c['mu_cert'], 4)}",
        f"  → {verdict}",
        f"ρ* = λ₀/L_Θ = {fmt(c['radius_max'], 3)}  (largest certifiable radius)",
        f"on the path: min_t λ_min(Θ_t)/n = {fmt(lam_path.min() / n if lam_path.size else float('nan'), 3)} ≥ μ_cert",
        "",
        f"R = 2√(2β(L₀−L*))/μ with β = β₀ = {fmt(c['beta'], 4)},",
        f"   L₀ − L* = {fmt(c['loss_gap0'], 4)} (L* = 0), μ = λ₀/n: R = {fmt(c['R'], 4)}",
        "R with μ_cert: " + (fmt(c["R_cert"], 4) if np.isfinite(c["R_cert"]) else "none (no μ_cert > 0)"),
        f"path length Σ η_t‖∇L_t‖ = {fmt(c['path_length'], 4)} ≥ drift {fmt(r, 4)}",
    ]
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=7.5, family="DejaVu Sans",
            transform=ax.transAxes)
    ax.set_title("the certificate's numbers", fontsize=10)


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


def certificate_text(c: dict) -> str:
    """The certificate in one line, for captions and the claims table."""
    if not np.isfinite(c["mu_cert"]):
        return f"no certificate ({c['rests_on']})"
    return (f"λ₀ = {fmt(c['lam0'])}, L_Θ ≥ {fmt(c['L_theta'])} (max over {c['checkpoints_used']} checkpoints), "
            f"r = {fmt(c['r'])}: μ_cert = (λ₀ − L_Θ·r)/n = {fmt(c['mu_cert'])} against λ₀/n = {fmt(c['lam0_over_n'])}; "
            f"largest certifiable radius λ₀/L_Θ = {fmt(c['radius_max'])}")


def verdict_word(check) -> str:
    return "not certified" if check.holds is None else "holds" if check.holds else "fails"


def report(results):
    res = results["run"]
    d, lr, hs = res["diag"], res["lr"], res["hessian"]
    cert = run_certificate(res)
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
           f"β (start, end) = {', '.join(beta_text(t) for t in tops) or 'n/a'}, 1/η = {1 / lr:g}. "
           f"v3 certificate: {certificate_text(cert)}.")
    norm0 = res.get("theta0_norm")
    if norm0 is None and "run_config" in res:  # results saved before issue 20: θ_0 rebuilt from its seed (no training)
        norm0 = theta0_norm(init_model(res["run_config"], get_backend("numpy")))
    drift = float(d["ntk_drift_fro"][-1]) if d and len(d["ntk_drift_fro"]) else float("nan")
    betas = [(lab, t) for lab, t in zip(("t = 0", "t = T"), tops)]
    claims = [
        compare("Assumption 5.2: λ_min(Θ_t) stays bounded away from 0 along GD (min over t ≥ half its start)",
                ratio, 0.5, "≥", quantity="min_t λ_min(Θ_t)/λ_min(Θ_0)",
                rests_on=f"λ_min(Θ_0) = {fmt(lam[0] if lam.size else float('nan'))}, float64 kernels at "
                         f"{lam.size} NTK checkpoints", missing="λ_min(Θ_t) unresolved at some checkpoint"),
        compare("The NTK stays close to its initial value (relative Frobenius drift ≤ 0.1)", drift, 0.1, "≤",
                quantity="‖Θ_T − Θ_0‖_F/‖Θ_0‖_F", rests_on="float64 kernels at the first and last NTK checkpoints"),
        step_size_verdict(lr, betas, claim="Theorem 5.4's step condition η ≤ 1/β (β: the Hessian's top eigenvalue "
                                           "by Lanczos, at the start and the end)"),
        radius_verdicts(cert, norm0, beta_known="beta0" in hs),
    ]
    claims = [claims[0], claims[1], claims[2], *claims[3]]
    return {"figures": [("ntk_stability.png", cap)], "claims": claims}


def radius_verdicts(cert: dict, norm0, *, beta_known: bool = True) -> list:
    """The drift against the two radii (issue 20, item 1): the a-priori ``R`` (vacuous when ``R ≥ ‖θ_0‖``) and
    the certifiable ``λ₀/L̂_Θ`` (the row with power: the same test as v3's ``μ_cert > 0``)."""
    r, R, rmax = float(cert["r"]), float(cert["R"]), float(cert["radius_max"])
    claim_R = "The drift stays within the a-priori radius R = 2√(2β(L₀−L*))/μ (β = β₀, L* = 0, μ = λ₀/n)"
    rests_R = f"r = ‖θ_T − θ_0‖ ≤ path length Σ η‖∇L‖ = {fmt(cert['path_length'])}; R = {fmt(R)}" + (
        f", R with μ_cert = {fmt(cert['R_cert'])}" if np.isfinite(cert["R_cert"]) else "")
    if not beta_known or not np.isfinite(R):
        row_R = untestable(claim_R, "R not measured (the run was made without β, hessian_iters = 0)"
                           if not beta_known else "R not measured (λ₀ unresolved)", "a run with β₀ and a resolved λ₀",
                           quantity="r", measured=r)
    elif norm0 is not None and np.isfinite(float(norm0)) and R >= float(norm0) and r <= R:
        row_R = vacuous(claim_R, f"R = {fmt(R)} ≥ ‖θ_0‖ = {fmt(float(norm0))}: the ball around θ_0 contains the "
                        f"origin, so only a drift larger than the parameters' own norm could leave it (r = {fmt(r)})",
                        "the drift against the certifiable radius λ₀/L̂_Θ (next row)", quantity="r = ‖θ_T − θ_0‖",
                        measured=r, threshold=R, relation="≤", margin=margin_one_sided(r, R, "≤"), rests_on=rests_R,
                        details=dict(theta0_norm=float(norm0), R=R))
    else:
        row_R = compare(claim_R, r, R, "≤", quantity="r = ‖θ_T − θ_0‖", rests_on=rests_R + (
            f"; ‖θ_0‖ = {fmt(float(norm0))}" if norm0 is not None else "; ‖θ_0‖ not saved"))
    claim_c = ("v3's certificate: the drift stays within the certifiable radius λ₀/L̂_Θ, i.e. μ_cert = "
               "(λ₀ − L̂_Θ·r)/n > 0 (L̂_Θ a lower estimate of the NTK's Lipschitz constant: a failure refutes the "
               "certificate, a pass is consistent with it, not a proof)")
    if not np.isfinite(rmax):
        row_c = untestable(claim_c, certificate_text(cert), "a resolved λ₀ and at least one NTK checkpoint after t = 0",
                           quantity="r = ‖θ_T − θ_0‖", measured=r)
    else:
        row_c = compare(claim_c, r, rmax, "≤", quantity="r = ‖θ_T − θ_0‖", rests_on=certificate_text(cert))
    return [row_R, row_c]
