"""The LPLR map in the report: the figure's caption and the claims (Verdicts, the runner's contract), from saved results."""
from __future__ import annotations

import math

import numpy as np

from ...theory.verdicts import Verdict, compare, fmt, untestable
from .cells import cell_name
from .figure import fixed_step_note, settings_text
from .summary import CellSummary
from .verdicts import RULES

__all__ = ["report"]


def _v3_row(results, summaries) -> Verdict:
    """v3: at width 1024 the fixed step leaves the local regime (final drift 1.870), a smaller step keeps it (0.158)."""
    claim = ("v3 width ablation: at width 1024 the fixed step η = 0.001 leaves the local regime (final drift 1.870) "
             "while a smaller step keeps it (0.158): our fixed-step cell fails the hypotheses on the path, the "
             "smallest step passes them, and its drift is smaller")
    fixed = [c for c in results["columns"] if c["fraction"] is None and abs(c["lr"] - 1e-3) < 1e-12]
    if 1024 not in results["widths"] or not fixed:
        return untestable(claim, "not in this grid (no width 1024 or no η = 0.001 column)",
                          "the paper preset, which has both")
    name_f = cell_name(1024, fixed[0])
    sf, vf = summaries[name_f], results["cells"][name_f]["verdict"]
    smaller = [(s.lr, name) for name, s in summaries.items() if s.width == 1024 and s.lr < sf.lr]
    text = (f"H=1024, η = 0.001 (= {fmt(sf.eta_beta0, 2)}/β₀): final drift {fmt(sf.final_param_drift)}, "
            f"NTK drift {fmt(sf.ntk_drift)}, min λ_min ratio {fmt(sf.lam_ratio)}, hypotheses on the path "
            f"{'held' if vf['path'] else 'not held (' + vf['path_why'] + ')'}")
    if not smaller:
        return untestable(claim, text + "; no smaller step in the grid", "a column with a smaller step")
    lr_s, name = min(smaller)
    ss, vs = summaries[name], results["cells"][name]["verdict"]
    text += (f"; smallest step η = {fmt(lr_s)} (= {fmt(ss.eta_beta0, 2)}/β₀): final drift "
             f"{fmt(ss.final_param_drift)}, hypotheses on the path "
             f"{'held' if vs['path'] else 'not held (' + vs['path_why'] + ')'}; n = {results['n']}, "
             f"{results['settings']['steps']} steps (v3's n and epochs are not known)")
    agree = (not vf["path"]) and vs["path"] and sf.final_param_drift > ss.final_param_drift
    return compare(claim, ss.final_param_drift, sf.final_param_drift, "≤", quantity="smallest step's final drift",
                   rests_on=text) if agree else Verdict(claim, "fails", rests_on=text,
                                                        why="the three conditions do not all hold")


def _why_counts(cells, key) -> str:
    why = {}
    for c in cells.values():
        if not c["verdict"][key.replace("_why", "")]:
            k = c["verdict"][key].split(" (")[0].split(" = ")[0].split(" <")[0]
            why[k] = why.get(k, 0) + 1
    return ", ".join(f"{k}: {n}" for k, n in why.items()) or "—"


def _cross_text(cross) -> str:
    t, lo = cross["table"], cross["loss"]
    return ("conclusion (14)/(10) — " + "; ".join(f"{h}: " + ", ".join(f"{s} {n}" for s, n in row.items())
                                                 for h, row in t.items())
            + ". loss — " + "; ".join(f"{h}: " + ", ".join(f"{s} {n}" for s, n in row.items()) for h, row in lo.items()))


def _theorem_row(results, summaries, which: str, claim: str) -> Verdict:
    """Theorem 5.4 on the map: no cell whose hypotheses held has its conclusion fail; margin: the tightest cell."""
    cells = results["cells"]
    held = [n for n, c in cells.items() if c["verdict"][which]]
    judged = [n for n in held if cells[n]["verdict"]["conclusion"] in ("holds", "fails")]
    v = results["cross" if which == "hypotheses" else "cross_path"]["verdicts"]
    outside = [n for n, c in cells.items() if not c["verdict"][which] and c["verdict"]["conclusion"] == "fails"]
    rests = (f"confirmed {v['confirmed']}, contradicted {v['contradicted']}, untestable {v['untestable']}, vacuous "
             f"{v['vacuous']} of {len(cells)} cells; " + _cross_text(results["cross" if which == "hypotheses"
                                                                           else "cross_path"])
             + (f"; outside the hypotheses (14)/(10) fail in {', '.join(outside)}" if outside else ""))
    q = "min over cells of (achieved − demanded)/demanded at the tightest step of (14)"
    if not judged:
        return untestable(claim, f"{len(held)} cell(s) held the hypotheses and none could be judged",
                          "cells whose hypotheses hold with a resolved λ_min", quantity=q, rests_on=rests)
    margins = {n: Verdict.from_dict(summaries[n].contraction_verdict).margin for n in judged}
    env_fail = [n for n in judged if Verdict.from_dict(summaries[n].envelope_verdict).status == "fails"]
    worst = min(judged, key=lambda n: margins[n] if margins[n] is not None else -math.inf)
    m = margins[worst]
    bad = [n for n in judged if cells[n]["verdict"]["conclusion"] == "fails"]
    why = (f"contradicted in {', '.join(bad)}: " + "; ".join(cells[n]["verdict"]["conclusion_why"] for n in bad)
           if bad else f"tightest cell {worst}")
    return Verdict(claim, "fails" if bad else "holds", q, m, 0.0, "≥", m, rests, why=why,
                   details=dict(judged=len(judged), contradicted=bad, envelope_fails=env_fail))


def _envelope_row(results, summaries) -> Verdict:
    """Whether the envelope (10) could have failed where the hypotheses held: vacuous where it demands under a decade."""
    claim = "Where the hypotheses held on the path, Theorem 5.4's envelope L_t ≤ (1 − ημ)^t L_0 held at every step"
    held = [n for n, c in results["cells"].items() if c["verdict"]["path"]]
    env = {n: Verdict.from_dict(summaries[n].envelope_verdict) for n in held}
    st = [e.status for e in env.values()]
    demand = [e.details.get("demand") for e in env.values() if e.details.get("demand") is not None]
    rests = (f"{st.count('holds')} hold, {st.count('vacuous')} vacuous, {st.count('fails')} fail, "
             f"{st.count('untestable')} untestable of {len(held)} cells; demanded decrease (1 − ημ)^−(T−1) from "
             f"{fmt(min(demand)) if demand else 'n/a'} to {fmt(max(demand)) if demand else 'n/a'}")
    q = "min over cells of min_t (env_t − gap_t)/env_t"
    judged = [e for e in env.values() if e.status in ("holds", "fails", "vacuous")]
    if not judged:
        return untestable(claim, "no cell held the hypotheses with a resolved μ", "such a cell", quantity=q,
                          rests_on=rests)
    m = min(e.margin for e in judged)
    if "fails" in st:
        return Verdict(claim, "fails", q, m, 0.0, "≥", m, rests, why="above the envelope in "
                       + ", ".join(n for n, e in env.items() if e.status == "fails"))
    if st.count("holds") == 0:
        return Verdict(claim, "vacuous", q, m, 0.0, "≥", m, rests,
                       why=f"in every judged cell the envelope demands less than ×10 over {results['settings']['steps']}"
                           " steps: any loss that fell by 90 % passes it",
                       decide="the per-step contraction (14), the row above")
    return Verdict(claim, "holds", q, m, 0.0, "≥", m, rests,
                   why=f"{st.count('vacuous')} of the passing cells vacuous (demand < ×10)" if "vacuous" in st else "")


def _linear_row(results, summaries, rules) -> Verdict:
    claim = ("Where the hypotheses held on the path, the loss converged linearly (judged after the kernel-regime "
             "dominance time t_dom of Θ_0: the local-rate ratio of the window's halves)")
    held = [n for n, c in results["cells"].items() if c["verdict"]["path"] and not summaries[n].diverged]
    lin = {n: Verdict.from_dict(summaries[n].linear_verdict) for n in held}
    st = [v.status for v in lin.values()]
    tdoms = [summaries[n].t_dom for n in held if summaries[n].t_dom is not None]
    rests = (f"{st.count('holds')} linear, {st.count('fails')} not linear, {st.count('untestable')} untestable of "
             f"{len(held)} cells; T = {results['settings']['steps']}; t_dom "
             + (f"from {fmt(min(tdoms))} to {fmt(max(tdoms))}" if tdoms else "not saved (cells made before issue 20)"))
    judged = {n: v for n, v in lin.items() if v.status in ("holds", "fails") and v.measured is not None}
    if not judged:
        decide = sorted({v.decide for v in lin.values() if v.decide})
        return untestable(claim, "no cell can decide it: " + (next(iter(lin.values())).why if lin else "no cell"),
                          "; ".join(decide[:2]) or "longer runs", quantity="local-rate ratio R", rests_on=rests)
    worst = min(judged, key=lambda n: judged[n].margin)
    w = judged[worst]
    return Verdict(claim, "fails" if "fails" in st else "holds", "min over judged cells of R", w.measured, w.threshold,
                   "≥", w.margin, rests, why=f"tightest cell {worst}: {w.why}")


def report(results):
    """The caption of ``lplr_map.png`` and the claims: Theorem 5.4's conclusion per cell, the envelope's power,
    the linear rate where it can be judged, β along the path, the kernel regime, v3's width ablation."""
    cells = results["cells"]
    rules = results["rules"]
    cap_fig = ("lplr_map.png", "")
    if "conclusion" not in rules:  # results saved by the rules before issue 20: their summaries lack the rows
        return {"figures": [cap_fig], "claims": [untestable(
            "The LPLR map's verdicts", "the results were saved by the rules before issue 20 (no per-step "
            "contraction, no t_dom, β at t = 0 and T only)", "run the map again: its cells are saved and nothing "
            "is retrained; the new rules re-derive every verdict")]}
    summaries = {name: CellSummary.from_dict(c["summary"]) for name, c in cells.items()}
    total = len(cells)
    ver = [c["verdict"] for c in cells.values()]
    n_path = sum(v["path"] for v in ver)
    n_held = sum(v["hypotheses"] for v in ver)
    in_p = [summaries[name] for name, c in cells.items() if c["verdict"]["path"]]
    kern = [s.rate_vs_kernel for s in in_p if not s.diverged and np.isfinite(s.rate_vs_kernel)]
    cf = [s.cert_fraction for s in summaries.values() if np.isfinite(s.cert_fraction)]
    pil = "; ".join(f"H={p['width']}: β₀ {fmt(p['beta'])} (λ_max(Θ_0)/n {fmt(p['gn0'])}, converged Lanczos, "
                    f"residual {fmt(p['residual'], 2)}), λ_min(Θ_0) {fmt(p['lam_min0'])}"
                    for p in results["pilots"].values())
    cap = (f"The LPLR map: {len(results['widths'])} widths × {len(results['columns'])} step sizes "
           f"({', '.join(c['label'] for c in results['columns'])}); one heat map per diagnostic, diverged cells grey "
           f"with ×; the last panel: the cross-table entry of each cell (hypotheses on the path; 'cert': v3's "
           f"μ_cert > 0). {settings_text(results)}. Pilots: {pil}. {fixed_step_note(results)}. Hypotheses held on "
           f"the path in {n_path} of {total} cells (failed first on: {_why_counts(cells, 'path_why')}); with v3's "
           f"certificate in {n_held} (failed first on: {_why_counts(cells, 'hypotheses_why')}; n·μ_cert/λ₀ from "
           f"{fmt(min(cf)) if cf else 'n/a'} to {fmt(max(cf)) if cf else 'n/a'}).")
    gn_only = [n for n, c in cells.items() if summaries[n].eta_gn_max > 1
               and all(x is True for x in summaries[n].eta_beta_conditions)]
    claims = [
        _theorem_row(results, summaries, "path", "Theorem 5.4 on the map: where its hypotheses held on the path "
                     "(λ_min(Θ_t) resolved, ≥ half its start; η ≤ 1/β along the path), its conclusion held: the "
                     "per-step contraction (14) and the envelope (10)"),
        _theorem_row(results, summaries, "hypotheses", "The same with v3's hypotheses (the above and μ_cert > 0)"),
        _envelope_row(results, summaries),
        _linear_row(results, summaries, rules),
        compare("Lanczos at t = 0 and T alone decides η ≤ 1/β: no cell whose Gauss–Newton proxy max_t η·λ_max(Θ_t)/n "
                "exceeds 1 between them", len(gn_only), 0.0, "≤", quantity="cells", scale=max(total, 1),
                rests_on=(f"{', '.join(gn_only)}: proxy above 1 while Lanczos at t = 0 and T passed" if gn_only else
                          f"largest proxy among the cells that passed Lanczos at 0 and T: "
                          f"{fmt(max((s.eta_gn_max for s in summaries.values() if all(x is True for x in s.eta_beta_conditions)), default=float('nan')))}")),
        compare("Where the hypotheses held on the path, the kernel regime of Θ_0 predicts the fitted rate "
                "(|log q / log q_kernel − 1| ≤ 0.2 in every such cell)",
                max((abs(k - 1) for k in kern), default=float("nan")), 0.2, "≤",
                quantity="max over cells |log q / log q_kernel − 1|",
                rests_on=f"{len(kern)} cells; ratios {', '.join(fmt(k, 2) for k in kern)}" if kern else "",
                missing="no cell held the hypotheses with a fitted rate"),
        _v3_row(results, summaries),
    ]
    return {"figures": [("lplr_map.png", cap)], "claims": claims}
