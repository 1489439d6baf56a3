"""The LPLR map in the report: the figure's caption and the claims table, from saved results only."""
from __future__ import annotations

import numpy as np

from ...theory.verdicts import fmt
from .cells import cell_name
from .figure import fixed_step_note, settings_text
from .summary import CellSummary
from .verdicts import geometric_late

__all__ = ["report"]


def _v3_row(results, summaries):
    """v3: at width 1024 the fixed step leaves the local regime (final drift 1.870), a smaller step keeps it (0.158)."""
    claim = ("v3 width ablation: at width 1024 the fixed step η = 0.001 leaves the local regime (final drift 1.870) "
             "while a smaller step keeps it (0.158); holds if our fixed-step cell fails the hypotheses on the path, "
             "the smallest step passes them, and its drift is smaller")
    fixed = [c for c in results["columns"] if c["fraction"] is None and abs(c["lr"] - 1e-3) < 1e-12]
    if 1024 not in results["widths"] or not fixed:
        return dict(claim=claim, measured="not in this grid (no width 1024 or no η = 0.001 column; the paper "
                                          "preset has both)", holds=None)
    name_f = cell_name(1024, fixed[0])
    sf, vf = summaries[name_f], results["cells"][name_f]["verdict"]
    smaller = [(s.lr, name) for name, s in summaries.items() if s.width == 1024 and s.lr < sf.lr]
    text = (f"H=1024, η = 0.001 (= {fmt(sf.eta_beta0, 2)}/β₀): final drift {fmt(sf.final_param_drift)}, "
            f"NTK drift {fmt(sf.ntk_drift)}, min λ_min ratio {fmt(sf.lam_ratio)}, hypotheses on the path "
            f"{'held' if vf['path'] else 'not held (' + vf['path_why'] + ')'}")
    if not smaller:
        return dict(claim=claim, measured=text + "; no smaller step in the grid", holds=None)
    lr_s, name = min(smaller)
    ss, vs = summaries[name], results["cells"][name]["verdict"]
    text += (f"; smallest step η = {fmt(lr_s)} (= {fmt(ss.eta_beta0, 2)}/β₀): final drift "
             f"{fmt(ss.final_param_drift)}, NTK drift {fmt(ss.ntk_drift)}, min λ_min ratio "
             f"{fmt(ss.lam_ratio)}, hypotheses on the path "
             f"{'held' if vs['path'] else 'not held (' + vs['path_why'] + ')'}; n = {results['n']}, "
             f"{results['settings']['steps']} steps (v3's n and epochs are not known)")
    agree = (not vf["path"]) and vs["path"] and sf.final_param_drift > ss.final_param_drift
    return dict(claim=claim, measured=text, holds=bool(agree))


def _why_counts(cells, key) -> str:
    why = {}
    for c in cells.values():
        if not c["verdict"][key.replace("_why", "")]:
            k = c["verdict"][key].split(" (")[0].split(" = ")[0].split(" <")[0]
            why[k] = why.get(k, 0) + 1
    return ", ".join(f"{k}: {n}" for k, n in why.items()) or "—"


def _cross_row(results, which: str, claim: str) -> dict:
    cross = results["cross" if which == "hypotheses" else "cross_path"]
    t, v = cross["table"], cross["verdicts"]
    table = "; ".join(f"{h}: " + ", ".join(f"{s} {n}" for s, n in row.items()) for h, row in t.items())
    return dict(claim=claim, measured=f"confirmed {v['confirmed']}, contradicted {v['contradicted']}, untested "
                                      f"{v['untested']}, vacuous {v['vacuous']} ({table})",
                holds=(v["contradicted"] == 0) if v["confirmed"] + v["contradicted"] else None)


def report(results):
    """The caption of ``lplr_map.png`` and the claims table: counts, the cross-tables, the bound, the kernel regime."""
    cells = results["cells"]
    summaries = {name: CellSummary.from_dict(c["summary"]) for name, c in cells.items()}
    total = len(cells)
    rules = results["rules"]
    ver = [c["verdict"] for c in cells.values()]
    n_path = sum(v["path"] for v in ver)
    n_held = sum(v["hypotheses"] for v in ver)
    n_lin = sum(v["loss"] == "linear" for v in ver)
    n_div = sum(v["loss"] == "diverged" for v in ver)
    n_short = sum(v["loss"] == "too short" for v in ver)
    in_p = [summaries[name] for name, c in cells.items() if c["verdict"]["path"]]
    lin_p = [summaries[name] for name, c in cells.items() if c["verdict"]["path"] and c["verdict"]["loss"] == "linear"]
    bent_p = [summaries[name] for name, c in cells.items() if c["verdict"]["path"]
              and c["verdict"]["loss"] == "not linear" and summaries[name].kernel_r2_late is not None]
    env = [s.envelope_holds for s in in_p]
    kern = [s.rate_vs_kernel for s in in_p if not s.diverged]
    near = sum(1 for k in kern if np.isfinite(k) and abs(k - 1) <= 0.2)
    kernel_bent = [not geometric_late(s.kernel_r2_late, s.kernel_rate_late, s.kernel_r2_late_power, rules)
                   for s in bent_p]
    bound = [s.rate_vs_bound for s in in_p if np.isfinite(s.rate_vs_bound)]
    cf = [s.cert_fraction for s in summaries.values() if np.isfinite(s.cert_fraction)]
    pil = "; ".join(f"H={p['width']}: β₀ {fmt(p['beta'])} (λ_max(Θ_0)/n {fmt(p['gn0'])}, residual "
                    f"{fmt(p['residual'], 2)}), λ_min(Θ_0) {fmt(p['lam_min0'])}" for p in results["pilots"].values())
    cap = (f"The LPLR map: {len(results['widths'])} widths × {len(results['columns'])} step sizes "
           f"({', '.join(c['label'] for c in results['columns'])}); one heat map per diagnostic, diverged cells grey "
           f"with ×; the last panel: the cross-table entry of each cell (hypotheses on the path; 'cert': v3's "
           f"μ_cert > 0). {settings_text(results)}. Pilots: {pil}. {fixed_step_note(results)}.")
    claims = [
        dict(claim=f"Cells where the hypotheses held on the path (λ_min(Θ_t) resolved, min_t λ_min(Θ_t)/λ_min(Θ_0) ≥ "
                   f"{rules['lam_ratio_min']:g}, η·β_t ≤ 1 certified at t = 0 and T)",
             measured=f"{n_path} of {total}; failed first on: {_why_counts(cells, 'path_why')}", holds=None),
        dict(claim="Cells where v3's hypotheses held (the above and the certificate μ_cert = (λ₀ − L_Θ r)/n > 0)",
             measured=f"{n_held} of {total}; failed first on: {_why_counts(cells, 'hypotheses_why')}; "
                      f"n·μ_cert/λ₀ = 1 − L̂_Θ r/λ₀ from {fmt(min(cf)) if cf else 'n/a'} to "
                      f"{fmt(max(cf)) if cf else 'n/a'}", holds=None),
        dict(claim=f"Cells where the loss converged linearly (not diverged, L_0/L_T ≥ {rules['decrease_min']:g}; "
                   f"over the second half a geometric fit with R² ≥ {rules['r2_min']:g}, q < 1, at least as good "
                   f"as a power law)",
             measured=f"{n_lin} of {total} ({n_div} diverged, {n_short} too short, "
                      f"{total - n_lin - n_div - n_short} not linear)", holds=None),
        _cross_row(results, "path", "Hypotheses on the path ⇒ linear rate (cross-table)"),
        _cross_row(results, "hypotheses", "v3's hypotheses (with μ_cert > 0) ⇒ linear rate (cross-table)"),
        dict(claim="Where the hypotheses held on the path, Theorem 5.4's bound L_t ≤ (1 − ημ)^t L_0 "
                   "(μ = min_t λ_min(Θ_t)/n) held at every step",
             measured=f"{sum(e is True for e in env)} of {len(env)} cells; log q / log(1 − ημ) from "
                      f"{fmt(min(bound)) if bound else 'n/a'} to {fmt(max(bound)) if bound else 'n/a'} "
                      f"(≥ 1: the bound holds; far above 1: it says little about the rate)",
             holds=bool(all(e is True for e in env)) if env else None),
        dict(claim="Where the hypotheses held on the path, the kernel regime of Θ_0 predicts the fitted rate "
                   "(log q / log q_kernel within 20% of 1, the same fit on both curves)",
             measured=f"{near} of {len(kern)} cells" + (f"; ratios {', '.join(fmt(k, 2) for k in kern)}" if kern else ""),
             holds=bool(near == len(kern)) if kern else None),
        dict(claim="Where the hypotheses held on the path and the loss did not converge linearly over the run, the "
                   "kernel regime of Θ_0 did not either (the same rule on the linearised curve): the spread of Θ_0's "
                   "spectrum, not a failure of the hypotheses, bends the loss",
             measured=(f"{sum(kernel_bent)} of {len(bent_p)} cells; second-half R² of the kernel curve, geometric "
                       "against power law: "
                       + ", ".join(f"{fmt(s.kernel_r2_late, 4)}/{fmt(s.kernel_r2_late_power, 4)}" for s in bent_p))
             if bent_p else "no such cell",
             holds=bool(all(kernel_bent)) if bent_p else None),
        dict(claim="Where the hypotheses held on the path, the loss is one straight line over the whole run "
                   f"(geometric fit R² ≥ {rules['r2_min']:g} from t = 0), as a single rate (1 − ημ)^t would draw it",
             measured=(f"{sum(s.r2 >= rules['r2_min'] for s in lin_p)} of {len(lin_p)} linearly converging cells; "
                       f"whole-run R² from {fmt(min(s.r2 for s in lin_p), 2)} to "
                       f"{fmt(max(s.r2 for s in lin_p), 2)} (bent: a sum of geometric terms, the kernel regime)")
             if lin_p else "no such cell",
             holds=bool(all(s.r2 >= rules["r2_min"] for s in lin_p)) if lin_p else None),
        dict(claim="Between the two Lanczos checkpoints, the Gauss–Newton proxy η·λ_max(Θ_t)/n at every NTK checkpoint "
                   "stayed ≤ 1 where the hypotheses held on the path (a sharpening the checkpoints missed would show)",
             measured=f"{sum(s.eta_gn_max <= 1 for s in in_p)} of {len(in_p)} cells; largest "
                      f"{fmt(max((s.eta_gn_max for s in in_p), default=float('nan')))}",
             holds=bool(all(s.eta_gn_max <= 1 for s in in_p)) if in_p else None),
        _v3_row(results, summaries),
    ]
    return {"figures": [("lplr_map.png", cap)], "claims": claims}
