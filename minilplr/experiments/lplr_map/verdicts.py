"""The LPLR map's verdicts on one cell: the hypotheses held or not, the loss linear or not, and the cross-table.

The exact rules, and why they read so, are in ``docs/lplr-map.md``
("The verdicts").  Their thresholds are :data:`RULES`, part of the
experiment's config: a change of rule re-derives every verdict from the
saved cells (nothing is retrained).
"""
from __future__ import annotations

from ...theory.verdicts import fmt
from .summary import CellSummary

__all__ = ["RULES", "VERDICTS", "geometric_late", "classify", "cross_table"]

#: The thresholds of :func:`classify`.
RULES = dict(lam_ratio_min=0.5, r2_min=0.95, decrease_min=10.0,
             linear="second half: geometric fit, at least as good as a power law")
"""``linear`` names the rule for a linear loss; being part of the config, a change of rule re-derives every
verdict from the saved cells (nothing is retrained)."""

#: The cross-table's entries, in the order of the figure's legend.
VERDICTS = ("confirmed", "contradicted", "untested", "vacuous")


def geometric_late(r2_late, rate_late, r2_power, rules) -> bool:
    """The rule for a linear loss: over the second half geometric (``R² ≥ r2_min``, ``q < 1``), at least as good as a power law."""
    return bool(r2_late >= rules["r2_min"] and rate_late < 1 and r2_late >= r2_power)


def classify(s: CellSummary, rules: dict = RULES) -> dict:
    """The verdicts of one cell from its :class:`~.summary.CellSummary`: the rules of ``docs/lplr-map.md``.

    Returns ``path`` (bool: conditions 1–3, the hypotheses measured on the
    path), ``path_why`` (the first failing one, or "held"), ``hypotheses``
    (bool: 1–4, v3's certificate included), ``hypotheses_why``, ``loss``
    ("linear" | "not linear" | "too short" | "diverged"), ``loss_why``, and
    the cross-table entries ``verdict`` (of ``hypotheses``) and
    ``path_verdict`` (of ``path``): "confirmed" | "contradicted" | "untested" | "vacuous".
    """
    if not s.lam_resolved:
        path, why = False, "λ_min(Θ_t) unresolved at some checkpoint"
    elif not s.lam_ratio >= rules["lam_ratio_min"]:
        path, why = False, f"min λ_min(Θ_t)/λ_min(Θ_0) = {fmt(s.lam_ratio)} < {rules['lam_ratio_min']:g}"
    elif not s.eta_beta_certified:
        path, why = False, (f"η·β_t ≤ 1 not certified (max η·β_t = {fmt(s.eta_beta_max)} over "
                            f"{s.beta_checkpoints} Lanczos checkpoint(s))")
    else:
        path, why = True, "held"
    if not path:
        held, hwhy = False, why
    elif not s.certified:
        held, hwhy = False, f"μ_cert ≤ 0 (n·μ_cert/λ₀ = {fmt(s.cert_fraction)})"
    else:
        held, hwhy = True, "held"
    if s.diverged:
        loss, lwhy = "diverged", "the run diverged"
    elif not s.decrease >= rules["decrease_min"]:
        loss, lwhy = "too short", f"L_0/L_T = {fmt(s.decrease)} < {rules['decrease_min']:g}"
    elif geometric_late(s.r2_late, s.rate_late, s.r2_late_power, rules):
        loss, lwhy = "linear", (f"second half: geometric R² = {fmt(s.r2_late, 4)} ≥ {rules['r2_min']:g} and ≥ the "
                                f"power law's {fmt(s.r2_late_power, 4)}, q = {fmt(s.rate_late, 5)} < 1")
    elif not (s.r2_late >= rules["r2_min"] and s.rate_late < 1):
        loss, lwhy = "not linear", (f"second half: geometric R² = {fmt(s.r2_late)}, q = {fmt(s.rate_late, 5)} "
                                    f"(needs R² ≥ {rules['r2_min']:g}, q < 1)")
    else:
        loss, lwhy = "not linear", (f"second half: a power law fits better (R² {fmt(s.r2_late_power, 4)} in log t "
                                    f"against {fmt(s.r2_late, 4)} in t)")

    def verdict(h):
        return "vacuous" if not h else {"linear": "confirmed", "too short": "untested"}.get(loss, "contradicted")

    return dict(path=path, path_why=why, hypotheses=held, hypotheses_why=hwhy, loss=loss, loss_why=lwhy,
                verdict=verdict(held), path_verdict=verdict(path))


def cross_table(verdicts, which: str = "hypotheses") -> dict:
    """The cross-table of ``which`` ("hypotheses": v3's, certificate included; "path": 1–3) against the loss.

    ``{"table": {"held" | "not held": {loss state: count}}, "verdicts": {verdict: count}}`` from
    :func:`classify` outputs.
    """
    if which not in ("hypotheses", "path"):
        raise ValueError(f"which: expected 'hypotheses' or 'path', got {which!r}")
    states = ("linear", "not linear", "too short", "diverged")
    table = {h: {s: 0 for s in states} for h in ("held", "not held")}
    counts = {v: 0 for v in VERDICTS}
    key = "verdict" if which == "hypotheses" else "path_verdict"
    for v in verdicts:
        table["held" if v[which] else "not held"][v["loss"]] += 1
        counts[v[key]] += 1
    return dict(table=table, verdicts=counts)
