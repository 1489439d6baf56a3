r"""What one cell of the LPLR map says: its diagnostics, computed from the saved result only.

:func:`summarise` turns a cell's result (:func:`~.cells.map_cell`) into a
:class:`CellSummary`; the verdicts (:mod:`.verdicts`), the heat maps
(:mod:`.figure`) and the claims (:mod:`.claims`) read nothing else of a cell.
Pure: a change of thresholds or of a diagnostic never reruns a cell.  What
each diagnostic means, and why the second half of the run: ``docs/lplr-map.md``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ...theory import dynamics as _dynamics
from ...theory import smoothness as _smoothness
from ...theory.convergence import step_size_verdict
from ...theory.verdicts import untestable
from ..fits import fit_line, fit_linear_rate
from ..mnist_gd import convergence_verdicts
from .cells import hessian_top

__all__ = ["CellSummary", "late_fits", "summarise"]


@dataclass(frozen=True, kw_only=True)
class CellSummary:
    """The map's diagnostics of one cell, host numbers; stored in the results as a dict (:meth:`to_dict`).

    The field order is the stored order.  ``q`` below is a fitted geometric rate ``L_t ≈ C q^t`` (``L* = 0``).
    """

    width: int  #: H
    lr: float  #: η
    diverged: bool  #: the run stopped on a non-finite loss, or one 10⁶ times its start
    steps: int  #: GD steps recorded
    r2: float  #: R² of the geometric fit over the whole run
    rate: float  #: its ``q``
    r2_late: float  #: R² of the geometric fit over the second half
    rate_late: float  #: its ``q``
    r2_late_power: float  #: R² of a power law ``C t^{−p}`` (a line in ``log t``) over the same steps
    kernel_r2_late: float | None = None  #: the same three on the kernel-regime curve of ``Θ_0``
    kernel_rate_late: float | None = None  #: (``None``: results saved before they were recorded)
    kernel_r2_late_power: float | None = None
    decrease: float  #: ``L_0/L_T``
    rate_kernel: float  #: ``q`` of the kernel-regime curve of ``Θ_0`` over the whole run
    rate_vs_kernel: float  #: ``log q / log q_kernel`` (1: the linearised network predicts the rate)
    mu: float  #: ``min_t λ_min(Θ_t)/n`` (NaN unless every checkpoint resolved)
    bound: float  #: ``1 − ημ``, Theorem 5.4's rate
    rate_vs_bound: float  #: ``log q / log(1 − ημ)`` (≥ 1: the bound holds)
    envelope_holds: bool | None  #: ``L_t ≤ (1 − ημ)^t L_0`` at every step (``None``: no such bound)
    ntk_drift: float  #: ``max_t ‖Θ_t − Θ_0‖_F/‖Θ_0‖_F``
    lam_resolved: bool  #: ``λ_min(Θ_t)`` resolved at every NTK checkpoint
    lam_ratio: float  #: ``min_t λ_min(Θ_t)/λ_min(Θ_0)``
    eta_beta0: float  #: ``η·β_0``
    eta_beta_max: float  #: ``max_t η·β_t`` over the Lanczos checkpoints (``t = 0`` and, if finished, ``T``)
    beta_checkpoints: int  #: how many Lanczos checkpoints (1 or 2)
    eta_beta_certified: bool  #: ``η·β_t ≤ 1`` certified at every one
    eta_beta_conditions: list  #: each one's verdict (True, False or None: not certified)
    eta_gn_max: float  #: ``max_t η·λ_max(Θ_t)/n``, the Gauss–Newton proxy at every NTK checkpoint
    mu_cert: float  #: v3's ``(λ₀ − L̂_Θ r)/n``
    certified: bool  #: ``μ_cert > 0``
    cert_fraction: float  #: ``n·μ_cert/λ₀ = 1 − L̂_Θ r/λ₀``
    final_param_drift: float  #: ``‖θ_T − θ_0‖`` (a diverged run: the last recorded)
    # issue 20: Theorem 5.4's conclusion judged with power, and β along the path (None: summaries saved before)
    envelope_verdict: dict | None = None  #: eq. (10), :func:`~minilplr.theory.convergence.envelope_bound` (Verdict dict)
    contraction_verdict: dict | None = None  #: eq. (14), :func:`~minilplr.theory.convergence.per_step_contraction`
    linear_verdict: dict | None = None  #: :func:`~minilplr.theory.convergence.linear_convergence` from ``t_dom``
    t_dom: float | None = None  #: the kernel-regime dominance time of ``Θ_0`` (None: the cell did not save its modes)
    eta_gn_step: int | None = None  #: the NTK checkpoint where ``η·λ_max(Θ_t)/n`` peaks
    eta_beta_peak: float | None = None  #: ``η·β`` by Lanczos at that checkpoint (None: it is 0 or T, or not saved)
    step_verdict: dict | None = None  #: :func:`~minilplr.theory.convergence.step_size_verdict` over 0, the peak, T

    def to_dict(self) -> dict:
        """The stored form: a plain dict in field order (JSON types)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CellSummary":
        """A stored summary read back; ``ValueError`` naming the fields it lacks or does not know."""
        names = {f.name for f in dataclasses.fields(cls)}
        optional = {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
        unknown, missing = sorted(set(d) - names), sorted(names - optional - set(d))
        if unknown or missing:
            raise ValueError(f"summary: expected the fields of CellSummary, got unknown {unknown}, missing {missing}")
        return cls(**d)


def late_fits(loss):
    """Over the second half of a loss curve ``(T,)``: the geometric fit ``L_t ≈ C q^t`` and the power law ``L_t ≈ C t^{−p}``.

    ``(fit_linear_rate(...), fit_line(log t, log L))``, each with its ``r2``
    (NaN where the curve is too short or not positive).
    """
    loss = np.asarray(loss, float)
    late = (fit_linear_rate(loss, 0.0, start=loss.size // 2) if loss.size >= 6
            else {"r2": float("nan"), "rate": float("nan")})
    half = np.arange(max(1, loss.size // 2), loss.size)  # t ≥ 1: log t
    power = (fit_line(np.log(half), np.log(loss[half])) if half.size >= 3 and np.all(loss[half] > 0)
             else {"r2": float("nan")})
    return late, power


def summarise(cell: dict) -> CellSummary:
    """The map's diagnostics of one cell's result (:func:`~.cells.map_cell`), host floats.

    Pure: computed from the saved result, so a change of thresholds or of a
    diagnostic never reruns a cell.
    """
    loss = np.asarray(cell["loss"], float)
    if not np.all(np.isfinite(loss)):  # a diverged run's last loss: every diagnostic reads the finite part
        loss = loss[: int(np.argmax(~np.isfinite(loss)))]
    d = {k: np.asarray(v, float) for k, v in cell["diag"].items()}
    lr, n = float(cell["lr"]), int(cell["n"])
    diverged = cell["status"] != "finished"
    fit = fit_linear_rate(loss, 0.0) if loss.size >= 3 else {"rate": float("nan"), "r2": float("nan")}
    late, power = late_fits(loss)
    kp = np.asarray(cell["kernel_pred"], float)
    kfit = fit_linear_rate(kp, 0.0) if kp.size >= 3 else {"rate": float("nan")}
    klate, kpower = late_fits(kp)
    lam = d["lam_min"]
    resolved = bool(lam.size) and bool(np.all(d["resolved"] > 0)) and bool(np.all(np.isfinite(lam)))
    lam0 = float(lam[0]) if lam.size else float("nan")
    lam_ratio = float(np.min(lam) / lam0) if resolved and lam0 > 0 else float("nan")
    mu = float(np.min(lam)) / n if resolved else float("nan")
    bound = 1.0 - lr * mu if math.isfinite(mu) else float("nan")
    envelope = None
    if math.isfinite(bound) and 0 <= bound < 1 and loss.size:
        env = _dynamics.pl_envelope(np.arange(loss.size), lr, mu, float(loss[0]))
        envelope = bool(np.all(loss <= env * (1 + 1e-6)))
    q, qk = float(fit["rate"]), float(kfit["rate"])

    def log_ratio(a, b):
        ok = math.isfinite(a) and math.isfinite(b) and 0 < a < 1 and 0 < b < 1
        return math.log(a) / math.log(b) if ok else float("nan")

    betas = [cell["beta0"]] + ([cell["betaT"]] if cell.get("betaT") else [])
    conds = [_smoothness.step_size_condition(lr, hessian_top(b)).holds for b in betas]
    cert = cell["certificate"]
    fin = loss
    if fin.size >= 2:
        conv = convergence_verdicts(fin, lr, n, cell["diag"], lam=cell.get("kernel_lam"), c2=cell.get("kernel_c2"),
                                    dtype=cell.get("dtype", "float32"))
        rows = {k: conv[k].to_dict() for k in ("envelope", "contraction", "linear")}
        t_dom = conv["t_dom"].t_dom if conv["t_dom"] is not None else None
    else:
        rows = {k: untestable("Theorem 5.4", f"{fin.size} finite loss(es)", "a run with two finite losses").to_dict()
                for k in ("envelope", "contraction", "linear")}
        t_dom = None
    bp = cell.get("beta_peak")
    gn_step = int(d["step"][int(np.argmax(d["lam_max"]))]) if d["lam_max"].size else None
    points = ([("t = 0", hessian_top(cell["beta0"]))] + ([(f"t = {bp['step']}", hessian_top(bp))] if bp else [])
              + ([("t = T", hessian_top(cell["betaT"]))] if cell.get("betaT") else []))
    eta_gn_max = float(lr * np.max(d["lam_max"]) / n) if d["lam_max"].size else float("nan")
    step = step_size_verdict(lr, points, gn_max=eta_gn_max if math.isfinite(eta_gn_max) else None, gn_step=gn_step,
                             claim="η ≤ 1/β along the path")
    decrease = float(loss[0] / loss[-1]) if loss.size and loss[-1] > 0 else float("nan")
    return CellSummary(
        width=int(cell["width"]), lr=lr, diverged=diverged, steps=int(loss.size), r2=float(fit["r2"]), rate=q,
        r2_late=float(late["r2"]), rate_late=float(late["rate"]), r2_late_power=float(power["r2"]),
        kernel_r2_late=float(klate["r2"]), kernel_rate_late=float(klate["rate"]),
        kernel_r2_late_power=float(kpower["r2"]),
        decrease=decrease, rate_kernel=qk, rate_vs_kernel=log_ratio(q, qk), mu=mu, bound=bound,
        rate_vs_bound=log_ratio(q, bound), envelope_holds=envelope,
        ntk_drift=float(np.nanmax(d["ntk_drift_fro"])) if d["ntk_drift_fro"].size else float("nan"),
        lam_resolved=resolved, lam_ratio=lam_ratio,
        eta_beta0=lr * float(cell["beta0"]["beta"]),
        eta_beta_max=max(lr * float(b["beta"]) for b in betas), beta_checkpoints=len(betas),
        eta_beta_certified=bool(all(c is True for c in conds)), eta_beta_conditions=conds,
        eta_gn_max=eta_gn_max,
        mu_cert=float(cert["mu_cert"]), certified=bool(cert["certified"]),
        cert_fraction=float(cert["mu_cert"] * n / cert["lam0"]) if math.isfinite(cert["lam0"]) and cert["lam0"] > 0
        else float("nan"),
        final_param_drift=float(cell["final_param_drift"]) if not diverged else
        (float(cell["param_drift"][-1]) if len(cell["param_drift"]) else float("nan")),
        envelope_verdict=rows["envelope"], contraction_verdict=rows["contraction"], linear_verdict=rows["linear"],
        t_dom=t_dom, eta_gn_step=gn_step, eta_beta_peak=lr * float(bp["beta"]) if bp else None,
        step_verdict=step.to_dict(),
    )
