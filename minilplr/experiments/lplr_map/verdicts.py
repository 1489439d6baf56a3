"""The LPLR map's verdicts on one cell: the hypotheses held or not, Theorem 5.4's conclusion, the loss, the cross-table.

The exact rules, and why they read so, are in ``docs/lplr-map.md``
("The verdicts").  Their thresholds are :data:`RULES`, part of the
experiment's config: a change of rule re-derives every verdict from the
saved cells (nothing is retrained).  Every judgement is a word of the one
vocabulary (:mod:`minilplr.theory.verdicts`): the cell's conclusion rows
come from :mod:`minilplr.theory.convergence` (issue 20).
"""
from __future__ import annotations

from ...theory.verdicts import Verdict, fmt
from .summary import CellSummary

__all__ = ["RULES", "VERDICTS", "LOSS_STATES", "classify", "cross_table", "conclusion"]

#: The thresholds and rules of :func:`classify`.
RULES = dict(lam_ratio_min=0.5,
             step="η ≤ 1/β: converged Lanczos at t = 0, at the Gauss–Newton proxy's peak and at T, and the proxy "
                  "max_t η·λ_max(Θ_t)/n ≤ 1 (convergence.step_size_verdict)",
             conclusion="the per-step contraction (14) and the envelope (10) (convergence.per_step_contraction, "
                        "envelope_bound): contradicted only where one fails while the hypotheses held",
             linear="convergence.linear_convergence from the kernel-regime dominance time t_dom of Θ_0 "
                    "(untestable when T < t_dom)")
"""The rules by name; being part of the config, a change of rule re-derives every verdict from the saved cells
(nothing is retrained)."""

#: The cross-table's entries, in the order of the figure's legend.
VERDICTS = ("confirmed", "contradicted", "untestable", "vacuous")
#: What the loss did (the linear-convergence judge's word, or diverged).
LOSS_STATES = ("linear", "not linear", "untestable", "diverged")


def conclusion(s: CellSummary) -> tuple:
    """Theorem 5.4's conclusion on one cell: ``(status, why)``.

    ``fails`` when the per-step contraction (14) or the envelope (10) fails,
    ``holds`` when the contraction holds (the envelope then holds or is
    vacuous), ``untestable`` otherwise (``μ`` unresolved, the loss at its
    rounding floor).
    """
    env, con = Verdict.from_dict(s.envelope_verdict), Verdict.from_dict(s.contraction_verdict)
    d = con.details
    if con.status == "fails" or env.status == "fails":
        parts = []
        if con.status == "fails":
            parts.append(f"(14) fails at {d['steps_judged'] - d['steps_held']} of {d['steps_judged']} steps, worst "
                         f"at t = {d['worst_step']}: {fmt(100 * d['worst_violation'])} % of the gap above (1 − ημ_t)")
        if env.status == "fails":
            parts.append(f"(10) fails: {env.why}")
        return "fails", "; ".join(parts)
    if con.status == "holds":
        return "holds", (f"(14) holds at all {d['steps_judged']} steps (tightest margin {fmt(con.margin)}); "
                         f"(10) {env.status}")
    return "untestable", f"(14) untestable: {con.why}"


def classify(s: CellSummary, rules: dict = RULES) -> dict:
    """The verdicts of one cell from its :class:`~.summary.CellSummary`: the rules of ``docs/lplr-map.md``.

    Returns ``path`` (bool: conditions 1–3, the hypotheses measured on the
    path), ``path_why`` (the first failing one, or "held"), ``hypotheses``
    (bool: 1–4, v3's certificate included), ``hypotheses_why``,
    ``conclusion`` (holds | fails | untestable: Theorem 5.4's own
    conclusion, :func:`conclusion`), ``conclusion_why``, ``loss`` (one of
    :data:`LOSS_STATES`), ``loss_why``, and the cross-table entries
    ``verdict`` (of ``hypotheses``) and ``path_verdict`` (of ``path``), one
    of :data:`VERDICTS`: *contradicted* only where the conclusion fails
    while the hypotheses held; *confirmed* where it holds while they held;
    *untestable* where they held and the conclusion cannot be judged;
    *vacuous* where they did not hold (the theorem says nothing).
    """
    step = Verdict.from_dict(s.step_verdict)
    if not s.lam_resolved:
        path, why = False, "λ_min(Θ_t) unresolved at some checkpoint"
    elif not s.lam_ratio >= rules["lam_ratio_min"]:
        path, why = False, f"min λ_min(Θ_t)/λ_min(Θ_0) = {fmt(s.lam_ratio)} < {rules['lam_ratio_min']:g}"
    elif step.status != "holds":
        path, why = False, f"η ≤ 1/β {step.status} ({step.quantity} = {fmt(step.measured)}: {step.why or step.rests_on})"
    else:
        path, why = True, "held"
    if not path:
        held, hwhy = False, why
    elif not s.certified:
        held, hwhy = False, f"μ_cert ≤ 0 (n·μ_cert/λ₀ = {fmt(s.cert_fraction)})"
    else:
        held, hwhy = True, "held"
    concl, cwhy = conclusion(s)
    lin = Verdict.from_dict(s.linear_verdict)
    if s.diverged:
        loss, lwhy = "diverged", "the run diverged"
    else:
        loss = {"holds": "linear", "fails": "not linear"}.get(lin.status, "untestable")
        lwhy = f"{lin.quantity} = {fmt(lin.measured)}: {lin.why or lin.rests_on}" + (
            f"; decide: {lin.decide}" if lin.decide else "")

    def verdict(h):
        return "vacuous" if not h else {"fails": "contradicted", "holds": "confirmed"}.get(concl, "untestable")

    return dict(path=path, path_why=why, hypotheses=held, hypotheses_why=hwhy, conclusion=concl,
                conclusion_why=cwhy, loss=loss, loss_why=lwhy, verdict=verdict(held), path_verdict=verdict(path))


def cross_table(verdicts, which: str = "hypotheses") -> dict:
    """The cross-table of ``which`` ("hypotheses": v3's, certificate included; "path": 1–3) against the conclusion.

    ``{"table": {"held" | "not held": {conclusion: count}}, "loss": {"held" | "not held": {loss state: count}},
    "verdicts": {verdict: count}}`` from :func:`classify` outputs.
    """
    if which not in ("hypotheses", "path"):
        raise ValueError(f"which: expected 'hypotheses' or 'path', got {which!r}")
    table = {h: {c: 0 for c in ("holds", "fails", "untestable")} for h in ("held", "not held")}
    loss = {h: {s: 0 for s in LOSS_STATES} for h in ("held", "not held")}
    counts = {v: 0 for v in VERDICTS}
    key = "verdict" if which == "hypotheses" else "path_verdict"
    for v in verdicts:
        h = "held" if v[which] else "not held"
        table[h][v["conclusion"]] += 1
        loss[h][v["loss"]] += 1
        counts[v[key]] += 1
    return dict(table=table, loss=loss, verdicts=counts)
