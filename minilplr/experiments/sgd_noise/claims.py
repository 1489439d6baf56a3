"""The noise-ball study in the report: its verdicts (:func:`verdicts`) and the claims table, from saved results only.

Every row is a :class:`~minilplr.theory.verdicts.Verdict`: the regime (does
the loss still fall at the end?), the plateau's exponents in ``η`` and in
``c_b`` with bootstrap intervals over the seeds (untestable where a cell's
loss still falls: it has no plateau), strong growth along the
path, Vaswani et al.'s step condition, the KNS ball's validity and
tightness, and the transient against ``1 − ημ_0``.
"""
from __future__ import annotations

import numpy as np

from ...theory.verdicts import Verdict, compare, fit_power_law, fmt, power_law_exponent, untestable, within
from .summary import DRIFT_MAX, CellSummary

__all__ = ["verdicts", "report", "summaries", "DRIFT_MAX", "QUAD_BAND"]
QUAD_BAND = (0.5, 2.0)
"""The plateau "is" the quadratic's stationary ``ησ_b²/4`` when their ratio lies in this band."""


def summaries(results) -> dict:
    """``{cell name: CellSummary}`` of the saved cells."""
    return {name: CellSummary.from_dict(c["summary"]) for name, c in results["cells"].items()}


def _stochastic(results, S):
    return {k: s for k, s in S.items() if s.batch < results["n"] and not s.diverged}


def _grouped(results, S, by: str, at):
    """``{x: [summary per seed]}`` of the SGD cells with ``by`` (``"fraction"`` or ``"batch"``) fixed at ``at``."""
    out = {}
    for name, s in _stochastic(results, S).items():
        if by == "fraction" and abs(s.fraction - at) < 1e-9 * max(1.0, at):
            out.setdefault(s.c_b, []).append((results["cells"][name]["sgd_seed"], s))
        if by == "batch" and s.batch == at:
            out.setdefault(s.lr, []).append((results["cells"][name]["sgd_seed"], s))
    return {x: [c for _, c in sorted(v, key=lambda t: t[0])] for x, v in sorted(out.items())}


def _fit(groups, field):
    x = list(groups)
    return fit_power_law(x, np.array([[getattr(c, field) for c in groups[k]] for k in x]).T, paired=True,
                         n_boot=2000, seed=0)


def _exponent(claim, groups, xname):
    """The plateau's exponent in ``xname`` (predicted 1, alternative 0), judged only where every cell has a plateau:
    where one still falls the row is untestable, naming the drifts, with the last window's loss's exponent as a
    description (no prediction attached to it: that loss is not a plateau)."""
    if len(groups) < 2 or len({len(v) for v in groups.values()}) != 1:
        return untestable(claim, f"{len(groups)} value(s) of {xname} with the same seeds", "at least 2 values of "
                          f"{xname}, each with every seed", quantity="a")
    cs = [c for v in groups.values() for c in v]
    falling = [c.drift for c in cs if not c.levelled]
    if falling:
        fit = _fit(groups, "window_loss")
        lo, hi = fit.interval
        return untestable(claim, f"no plateau (the loss still falls over the last window: drift from "
                          f"{fmt(min(falling))} to {fmt(max(falling))} ≤ {fmt(DRIFT_MAX)} in {len(falling)} of "
                          f"{len(cs)} cells); descriptive only, the last window's loss against {xname}: exponent "
                          f"{fmt(fit.a)}, {fmt(fit.level * 100)} % interval [{fmt(lo)}, {fmt(hi)}]",
                          "cells whose loss has levelled (drift > " + fmt(DRIFT_MAX) + "): longer runs",
                          quantity="a", measured=fit.a)
    return power_law_exponent(claim, _fit(groups, "plateau"), 1.0, 0.0, quantity="a")


def verdicts(results) -> list[Verdict]:
    """Every row of the claims table (module docstring), in order."""
    S = summaries(results)
    n = results["n"]
    sto = _stochastic(results, S)
    rows = []
    drifts = [s.drift for s in sto.values()]
    full = {round(s.fraction, 9): s for s in S.values() if s.batch >= n and not s.diverged}
    ratio = [s.final_loss / full[round(s.fraction, 9)].final_loss for s in sto.values()
             if round(s.fraction, 9) in full and full[round(s.fraction, 9)].final_loss > 0]
    v = compare("Interpolation regime: the loss of every SGD cell still falls over the last window (no plateau; a "
                "noise ball would level off, drift ≈ 1)", max(drifts) if drifts else None, DRIFT_MAX, "≤",
                quantity="max drift", rests_on=f"{len(drifts)} SGD cells; drift = mean L over the window's second "
                f"half / first half, from {fmt(min(drifts)) if drifts else 'n/a'} to "
                f"{fmt(max(drifts)) if drifts else 'n/a'}; final L(SGD)/L(GD) at the same η from "
                f"{fmt(min(ratio)) if ratio else 'n/a'} to {fmt(max(ratio)) if ratio else 'n/a'}")
    rows.append(v)
    for b in sorted({s.batch for s in sto.values()}):
        rows.append(_exponent(f"Plateau ∝ η at b = {b} (KNS: the ball ηβσ_b²/(2μ) is linear in η): the exponent "
                              "of mean L over the window against η", _grouped(results, S, "batch", b), "η"))
    for f in sorted({s.fraction for s in sto.values()}):
        rows.append(_exponent(f"Plateau ∝ c_b = (N − b)/(b(N − 1)) at η = {fmt(f, 2)}/β₀ (KNS: σ_b² = c_b σ_1²): "
                              "the exponent of mean L over the window against c_b",
                              _grouped(results, S, "fraction", f), "c_b"))
    rmax = max((s.rho_max for s in S.values()), default=float("nan"))
    b0 = next(iter(S.values())).rho_bound0 if S else float("nan")
    worst = max(S.items(), key=lambda kv: kv[1].rho_max)[0] if S else "—"
    rows.append(compare("Strong growth holds along the path: max_t ρ_t stays below the kernel bound at θ_0, "
                        "N max_i Θ_ii/λ_min(Θ_0) (ρ ≤ N max_i Θ_ii/λ_min(Θ_t) at every t)", rmax, b0, "≤",
                        quantity="max_t ρ_t", rests_on=f"{len(S)} cells, ρ_t exact from Θ_t (float64) at every noise "
                        f"checkpoint; the largest in {worst}"))
    steps = [s.sgc_step for s in sto.values()]
    rows.append(compare("Vaswani et al.'s step condition η ≤ 1/(ρ_b β_0) covers the steps used (ρ_b = 1 + c_b(ρ − 1) "
                        "from the path's max ρ_t)", max(steps) if steps else None, 1.0, "≤",
                        quantity="max η β_0 ρ_b", rests_on=f"{len(steps)} SGD cells; η β_0 ρ_b from "
                        f"{fmt(min(steps)) if steps else 'n/a'} to {fmt(max(steps)) if steps else 'n/a'}"))
    tight = [s.tightness for s in sto.values() if np.isfinite(s.tightness)]
    rows.append(compare("The last window's loss (the plateau where it has levelled) lies inside the KNS ball "
                        "ηβ_0σ_b²/(2μ_0) at the window's own noise (KNS bound the expected loss at every step)",
                        max(tight) if tight else None, 1.0, "≤", quantity="max window loss/ball",
                        rests_on=f"{len(tight)} SGD cells; window loss/ball from {fmt(min(tight)) if tight else 'n/a'} "
                        f"(median {fmt(float(np.median(tight))) if tight else 'n/a'}); β_0 = {fmt(results['beta0'])}, "
                        f"μ_0 = λ_min(Θ_0)/N = {fmt(results['mu0'])}"))
    quad = [s.quad_ratio for s in sto.values() if np.isfinite(s.quad_ratio) and s.levelled]
    falling = [s.drift for s in sto.values() if not s.levelled]
    if not quad and falling:
        rows.append(untestable("The plateau is a local noise ball: the quadratic's stationary ησ_b²/4 (eq. (N8)) at "
                               "the plateau's noise, median over SGD cells", f"no plateau (the loss still falls over "
                               f"the last window: drift from {fmt(min(falling))} to {fmt(max(falling))} ≤ "
                               f"{fmt(DRIFT_MAX)} in {len(falling)} of {len(sto)} SGD cells)",
                               f"cells whose loss has levelled (drift > {fmt(DRIFT_MAX)})",
                               quantity="median plateau/(ησ_b²/4)"))
    else:
        rows.append(within("The plateau is a local noise ball: the quadratic's stationary ησ_b²/4 (eq. (N8)) at the "
                           "plateau's noise, median over SGD cells", float(np.median(quad)) if quad else None,
                           *QUAD_BAND, quantity="median plateau/(ησ_b²/4)",
                           rests_on=f"{len(quad)} SGD cells with a plateau ({len(falling)} still falling, left out); "
                           f"from {fmt(min(quad)) if quad else 'n/a'} to {fmt(max(quad)) if quad else 'n/a'}"))
    rates = [np.log(s.rate) / np.log(s.bound_rate) for s in S.values() if not s.diverged and 0 < s.rate < 1]
    rows.append(compare("The transient contracts at least as fast as KNS's 1 − ημ_0 (log q / log(1 − ημ_0) ≥ 1)",
                        min(rates) if rates else None, 1.0, "≥", quantity="min log q / log(1 − ημ_0)",
                        rests_on=f"{len(rates)} cells, q by least squares on log L_t until L_t < 2·(the last window's mean L); the "
                        f"ratio from {fmt(min(rates)) if rates else 'n/a'} to {fmt(max(rates)) if rates else 'n/a'}"))
    return rows


def report(results):
    """The two figures' captions and the claims table."""
    st = results["settings"]
    S = summaries(results)
    setting = (f"MLP 784 → {st['width']} × {st['depth'] - 1} → 1 ({st['init']}, {st['dtype']}), N = {results['n']}, "
               f"{st['steps']} steps, batches {st['batches']} (≥ N: full batch), η = c/β_0 for c in "
               f"{st['eta_fractions']}, β_0 = {fmt(results['beta0'])}, μ_0 = {fmt(results['mu0'])}, seeds "
               f"{st['sgd_seeds']}; window loss = mean full-batch L over the last {fmt(st['window'] * 100)} % of the run "
               f"(a plateau only where it has levelled: drift > {fmt(DRIFT_MAX)})"
               f"; Data: {results.get('data', 'n/a')}")
    cap1 = (f"The last window's mean loss against η·c_b (log–log), one marker per cell: filled where the loss has "
            f"levelled (a plateau), hollow where it still falls (no plateau); lines: the KNS ball ηβ_0σ_1²c_b/(2μ_0) and the "
            f"quadratic's ησ_1²c_b/4 at the median per-sample spread σ_1² of the window; the full-batch cells "
            f"(c_b = 0) as horizontal lines. {setting}.")
    cap2 = (f"Along the path (seed {st['sgd_seeds'][0]}): the full-batch loss L_t, the strong-growth ratio ρ_t with "
            f"the kernel bound N max_i Θ_ii/λ_min(Θ_0) (dashed), and σ_b². {setting}.")
    return {"figures": [("sgd_noise_plateau.png", cap1), ("sgd_noise_path.png", cap2)],
            "claims": verdicts(results), "cells": len(S)}
