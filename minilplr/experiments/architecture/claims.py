"""The architecture study's claims, in the verdict vocabulary (:mod:`minilplr.theory.verdicts`), and the caption.

Each row is a :class:`~minilplr.theory.verdicts.Verdict` built from the saved
summaries only.  The claims are stated as hypotheses a reader would bring
(depth lowers ``μ``; skip connections and batch norm raise it and speed GD
up; Theorem 5.4's step holds); each row says what the run showed, whatever it showed.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ...theory.verdicts import Verdict, compare, fmt, monotone, within
from .cells import arch_name

__all__ = ["report", "verdicts", "summary_of", "series"]


def _name(depth, residual, batchnorm, init):
    from . import cell_name  # the package's naming (no import cycle at module load)

    return cell_name(depth, residual, batchnorm, init)


def summary_of(results, depth, residual, batchnorm, init):
    """The summary dict of one cell (a residual MLP of depth 2 is the plain one: ``results["aliases"]``), or None."""
    name = _name(depth, residual, batchnorm, init)
    name = results.get("aliases", {}).get(name, name)
    c = results["cells"].get(name)
    return None if c is None else c["summary"]


def series(results, key, residual, batchnorm, init):
    """``(depths, values)`` of summary field ``key`` for one architecture (NaN where a cell is missing)."""
    d = results["depths"]
    vals = [summary_of(results, L, residual, batchnorm, init) for L in d]
    return np.array(d, float), np.array([np.nan if s is None else float(s[key]) for s in vals])


def _list(x, y, digits=3):
    return ", ".join(f"L={int(a)}: {fmt(float(b), digits)}" for a, b in zip(x, y))


def _ratio_row(results, key, what, change, fixed, claim):
    """``key`` with ``change`` on over off, at the deepest depth, ``≥ 1``; the rest of the depths in ``rests_on``."""
    L = max(results["depths"])
    on = dict(fixed, **{change: True})
    off = dict(fixed, **{change: False})
    x, a = series(results, key, **on)
    _, b = series(results, key, **off)
    ratio = a / b
    rests = (f"{what} of {arch_name(**_args(on))} / {arch_name(**_args(off))}, by depth: {_list(x, ratio)}; "
             f"{key} with: {_list(x, a)}; without: {_list(x, b)}")
    return compare(claim, float(ratio[-1]), 1.0, "≥", quantity=f"ratio at L = {L}", rests_on=rests,
                   missing="a cell at the deepest depth is missing or its rate was not fitted (diverged, or no decrease)")


#: The ratio rows of each component, on over off at the deepest depth: (summary key, what it is, the claim's
#: predicate, its verbs filled in by the component's subject).
_RATIOS = (("mu0", "μ_0", "{raise_} μ_0"),
           ("eta_mu0", "η μ_0 = c μ_0/β_0", "{raise_} η μ_0 = c μ_0/β₀, the theorem's rate at its step,"),
           ("rate", "fitted rate −log q", "{make} GD at η = c/β₀ faster"))
#: The components switched on and off: (setting, subject, its verbs, the setting held fixed beside the init, how
#: that one reads in the claim's brackets).
_COMPONENTS = (("residual", "skip connections", dict(raise_="raise", make="make"), "batchnorm",
                lambda b: "BN, " if b else ""),
               ("batchnorm", "batch norm", dict(raise_="raises", make="makes"), "residual",
                lambda r: ("residual" if r else "plain") + ", "))
_INIT = {"he": "He", "enhanced_he": "enhanced He"}


def _args(d):
    return dict(residual=d["residual"], batchnorm=d["batchnorm"], init=d["init"])


def _where(s):
    return f"{arch_name(s['residual'], s['batchnorm'], s['init'])}, L = {s['depth']}"


def _step_rows(sums) -> list[Verdict]:
    """Theorem 5.4's hypothesis along the path (no cell's loss rose), then its step (14) judged only on the cells
    where that hypothesis is not contradicted: a cell whose loss rose had ``η > 2/β`` there (``summary.loss_rises``),
    outside the theorem, so its failing step would not be the theorem's."""
    judged = [s for s in sums if s["contraction_status"] in ("holds", "fails")]
    broken = [s for s in judged if s["loss_rises"] > 0]
    ok = [s for s in judged if s["loss_rises"] == 0]
    rose = "; ".join(f"{_where(s)}: {s['loss_rises']}" for s in broken) or "none"
    rows = [compare("Theorem 5.4's hypothesis η ≤ 1/β holds along the path in every cell, as far as the loss shows "
                    "(it never rose beyond rounding: a rise means η > 2/β there, by the descent lemma)",
                    len(broken), 0, "≤", quantity="cells whose loss rose", scale=max(len(judged), 1),
                    rests_on=f"{len(judged)} judged cells ({len(sums) - len(judged)} not judged); steps where the "
                    f"loss rose, per cell: {rose}", missing="no cell could be judged")]
    held = [s for s in ok if s["contraction_status"] == "holds"]
    fr = [s["contraction_held"] for s in ok]
    rows.append(compare("Theorem 5.4's step (14), L_{t+1} ≤ (1 − ημ_t) L_t with μ_t = λ_min(Θ_t)/N held between "
                        "checkpoints, holds at every step of every cell where its hypothesis held (the loss never "
                        "rose)", len(held) / len(ok) if ok else float("nan"), 1.0, "≥",
                        quantity="share of cells where every step held",
                        rests_on=(f"{len(held)} of {len(ok)} cells; {len(broken)} cells excluded, their loss rose "
                                  f"(η ≤ 1/β broken along the path: not the theorem's case); {len(sums) - len(judged)}"
                                  f" not judged; share of steps held per cell from {fmt(min(fr)) if fr else 'n/a'} to "
                                  f"{fmt(max(fr)) if fr else 'n/a'}"),
                        missing=f"no cell where the hypothesis held ({len(broken)} of {len(judged)} cells' loss rose)"))
    return rows


def verdicts(results) -> list[Verdict]:
    """Every claim of the study, one :class:`Verdict` each (module docstring)."""
    out = []
    archs = [(a["residual"], a["batchnorm"], a["init"]) for a in results["architectures"]]
    for r, b, i in archs:  # depth
        x, mu = series(results, "mu0", r, b, i)
        v = monotone(f"μ_0 = λ_min(Θ_0)/N falls with depth: {arch_name(r, b, i)}", x, mu, "decreasing", quantity="μ_0")
        out.append(dataclasses.replace(v, rests_on=f"μ_0 by depth: {_list(x, mu)}; " + v.rests_on))
    for i in ("he", "enhanced_he"):  # skip connections, batch norm: μ_0, η μ_0 and the rate
        for change, subject, verbs, other, reads in _COMPONENTS:
            for o in (False, True):
                for key, what, predicate in _RATIOS:
                    out.append(_ratio_row(results, key, what, change, {other: o, "init": i},
                                          f"{subject} {predicate.format(**verbs)} at the deepest depth "
                                          f"({reads(o)}{_INIT[i]})"))
    sums = [c["summary"] for c in results["cells"].values()]
    out.extend(_step_rows(sums))
    rb = [s["rate_vs_bound"] for s in sums if np.isfinite(s["rate_vs_bound"])]
    out.append(compare("the fitted rate is at least the theorem's guaranteed −log(1 − η μ_path) in every cell",
                       min(rb) if rb else float("nan"), 1.0, "≥", quantity="min over cells of rate / bound",
                       rests_on=f"{len(rb)} cells; rate / bound from {fmt(min(rb)) if rb else 'n/a'} to "
                                f"{fmt(max(rb)) if rb else 'n/a'}"))
    x, inf = series(results, "lam_min_inf", False, False, "he")
    _, fin = series(results, "lam_min_scaled0", False, False, "he")
    v = monotone("λ_min(Θ_∞) of the analytic kernel falls with depth (plain MLP, He)", x, inf, "decreasing",
                 quantity="λ_min(Θ_∞)")
    out.append(dataclasses.replace(v, rests_on=f"λ_min(Θ_∞): {_list(x, inf)}; " + v.rests_on))
    ratio = fin / inf
    worst = int(np.nanargmax(np.abs(np.log(ratio)))) if np.any(np.isfinite(ratio)) else 0
    out.append(within("the finite-width λ_min(Θ̃_0) (NTK scaling) is within a factor 2 of λ_min(Θ_∞) at every depth "
                      "(plain MLP, He)", float(ratio[worst]), 0.5, 2.0, quantity=f"λ_min(Θ̃_0)/λ_min(Θ_∞) at "
                      f"L = {int(x[worst])} (the worst depth)",
                      rests_on=f"ratio by depth: {_list(x, ratio)}; λ_min(Θ̃_0): {_list(x, fin)}; "
                               f"H = {results['settings']['width']}, N = {results['n']}"))
    fz = [(s["depth"], arch_name(s["residual"], s["batchnorm"], s["init"]), s["frozen_ratio"]) for s in sums
          if s["batchnorm"] and np.isfinite(s["frozen_ratio"])]
    if fz:
        w = max(fz, key=lambda t: abs(np.log(t[2])))
        out.append(within("batch norm: the frozen-statistics kernel (eval mode, recalibrated on the batch) has "
                          "λ_min within a factor 2 of the training-mode batch kernel that GD follows",
                          float(w[2]), 0.5, 2.0, quantity=f"λ_min(Θ_frozen)/λ_min(Θ_batch), worst cell ({w[1]}, "
                          f"L = {w[0]})",
                          rests_on="; ".join(f"{a}, L={d}: {fmt(q)}" for d, a, q in sorted(fz))))
    return out


def report(results):
    """The caption of ``architecture.png`` and the claims table, judged again from the saved cells.

    (``results["verdicts"]`` keeps what :func:`~minilplr.experiments.architecture.run` judged, as its record; a
    report by a newer minilplr shows its own verdicts, never stale ones.)
    """
    vs = verdicts(results)
    s = results["settings"]
    cap = (f"Architecture and the PL constant: μ_0 = λ_min(Θ_0)/N, κ(Θ_0), min_t λ_min(Θ_t)/λ_min(Θ_0), the fitted "
           f"rate −log q against ημ_0, the kernel-regime prediction error and the NTK drift, against depth, one line "
           f"per architecture (solid: He, dashed: enhanced He c(L) = 1/L). MLP 784 -> H = {s['width']} -> 1, ReLU, "
           f"full-batch GD at η = {s['eta_fraction']:g}/β₀ for {s['steps']} steps, kernel every {s['diag_every']} "
           f"steps, {s['dtype']}, seed {s['seed']}; N = {results['n']}; data: {results['data']}. BN networks: Θ is "
           f"the training-mode batch kernel J Jᵀ (N backward passes), the kernel GD follows; without BN the "
           f"empirical NTK. A residual MLP of depth 2 has no block (it is the plain one).")
    return {"figures": [("architecture.png", cap)], "claims": vs}
