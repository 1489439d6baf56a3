r"""What one SGD cell says, from its saved result only (:func:`summarise`).

Per cell: the full-batch loss over the last ``window`` of the run (mean,
spread, and ``drift``, how much it still falls; a *plateau* only where it
has levelled, ``drift > DRIFT_MAX``, else none), the mini-batch
noise ``σ_b²`` averaged over the NTK checkpoints in that window, the KNS
ball ``ηβ_0σ_b²/(2μ_0)`` and the quadratic's ``ησ_b²/4`` at that noise,
``ρ_t`` along the path with its kernel bound ``N max_i Θ_ii/λ_min(Θ_t)``,
and the transient rate against ``1 − ημ_0`` (:mod:`minilplr.theory.sgd_noise`).
Pure: the claims and the figures read nothing else of a cell.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ...theory import sgd_noise as sn

__all__ = ["CellSummary", "summarise", "measures", "MEASURES", "WINDOW", "DRIFT_MAX", "levelled"]

#: The plateau's window, the fraction of the run at its end (the experiment's presets use it too).
WINDOW = 0.25
DRIFT_MAX = 0.9
"""The loss still falls over the last window when ``drift`` (the mean of the window's second half over its first
half's) is at most this: the interpolation row's threshold, and where a cell has no plateau (:func:`levelled`)."""


def levelled(drift: float) -> bool:
    """Whether the loss has levelled over the last window: ``drift > DRIFT_MAX`` (finite); only then is the
    window's mean a plateau.  A loss that still falls (``drift ≤ DRIFT_MAX``) has no plateau to compare with a ball."""
    return math.isfinite(drift) and drift > DRIFT_MAX


@dataclass(frozen=True, kw_only=True)
class CellSummary:
    """One cell's numbers (host floats); stored as a dict (:meth:`to_dict`)."""

    batch: int  #: b (N for the full batch)
    n: int  #: N
    lr: float  #: η
    fraction: float  #: η β_0
    diverged: bool
    c_b: float  #: (N − b)/(b(N − 1))
    window_loss: float  #: mean of L over the last window (the plateau only where the loss has levelled: :attr:`plateau`)
    plateau_std: float  #: the window's spread (standard deviation over its records)
    drift: float  #: mean(second half of the window)/mean(first half): ≈ 1 on a ball, < 1 still falling
    final_loss: float  #: L(θ_T)
    sigma2_b: float  #: mean σ_b² over the NTK checkpoints in the window
    ball: float  #: η β_0 σ_b² / (2 μ_0), the KNS ball at that noise (NaN for the full batch: no noise)
    tightness: float  #: window_loss / ball (KNS's bound holds at every t, so at the window too, plateau or not)
    quad: float  #: η σ_b²/4, the quadratic's stationary gap at that noise
    quad_ratio: float  #: window_loss / quad (a plateau's ratio only where the loss has levelled)
    rho_max: float  #: max_t ρ_t along the path
    rho_end: float  #: ρ_T
    rho_b_max: float  #: 1 + c_b (ρ_max − 1)
    rho_bound0: float  #: N max_i Θ_ii(θ_0)/λ_min(Θ_0), the kernel-regime strong-growth constant at θ_0
    sgc_step: float  #: η β_0 ρ_b,max (≤ 1: Vaswani et al.'s theorem covers the step)
    rate: float  #: q, the transient's per-step factor (least squares on log L_t until L < 2·window_loss)
    bound_rate: float  #: 1 − η μ_0

    @property
    def levelled(self) -> bool:
        """The loss has levelled over the last window (:func:`levelled` of :attr:`drift`)."""
        return levelled(self.drift)

    @property
    def plateau(self) -> float:
        """The plateau: :attr:`window_loss` where the loss has levelled, NaN where it still falls (no plateau)."""
        return self.window_loss if self.levelled else float("nan")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CellSummary":
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in d]
        if missing:
            raise ValueError(f"summary: expected the fields {', '.join(missing)} of a CellSummary, got a summary "
                             "without them (saved by an older version: delete the experiment's results.json and results.npz "
                             "and run it again; its saved cells/ are reused and re-summarised)")
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


def summarise(res: dict, window: float = 0.25) -> CellSummary:
    """The :class:`CellSummary` of one :func:`~.cells.sgd_cell` result; ``window`` the plateau's fraction of the run."""
    n, b, lr = int(res["n"]), int(res["batch"]), float(res["lr"])
    beta0, mu0 = float(res["beta0"]), float(res["mu0"])
    diverged = res["status"] != "finished"
    loss, steps = np.asarray(res["loss"], float), np.asarray(res["record_steps"], float)
    p = sn.plateau(loss, window)
    t_start = steps[p.start]
    ns = np.asarray(res["noise_steps"], float)
    in_w = ns >= t_start
    s2 = float(np.mean(np.asarray(res["sigma2_b"], float)[in_w])) if in_w.any() else float("nan")
    cb = sn.batch_factor(n, b)
    ball = sn.noise_ball(lr, beta0, mu0, s2) if (s2 > 0 and math.isfinite(s2)) else float("nan")
    quad = sn.quadratic_plateau(lr, s2) if (s2 > 0 and math.isfinite(s2)) else float("nan")
    rho = np.asarray(res["rho"], float)
    rho_max = float(np.max(rho[np.isfinite(rho)])) if np.isfinite(rho).any() else float("nan")
    rho_b = sn.growth_of_batch(rho_max, n, b) if math.isfinite(rho_max) else float("nan")
    lam0, dmax0 = float(res["lam_min"][0]), float(res["diag_max"][0])
    return CellSummary(
        batch=b, n=n, lr=lr, fraction=lr * beta0, diverged=diverged, c_b=cb,
        window_loss=p.mean, plateau_std=p.std, drift=p.drift, final_loss=float(loss[-1]), sigma2_b=s2,
        ball=ball, tightness=p.mean / ball if ball > 0 else float("nan"),
        quad=quad, quad_ratio=p.mean / quad if quad > 0 else float("nan"),
        rho_max=rho_max, rho_end=float(rho[-1]), rho_b_max=rho_b,
        rho_bound0=n * dmax0 / lam0 if lam0 > 0 else float("nan"), sgc_step=lr * beta0 * rho_b,
        rate=sn.transient_rate(steps, loss, stop=2 * p.mean), bound_rate=1.0 - lr * mu0)


#: The study's named numbers of one cell (``CellKind.measures``, :func:`measures`): the numeric fields of
#: :class:`CellSummary`, and four derived ones.
MEASURES = {
    "plateau": "mean full-batch L over the last window where the loss has levelled (drift > 0.9); NaN where it "
               "still falls (no plateau)",
    "window_loss": "mean full-batch L over the last window, levelled or not",
    "plateau_std": "the window's spread over its records",
    "drift": "mean L over the window's second half / first half (≈ 1: a ball; < 1: still falling)",
    "final_loss": "L(θ_T)",
    "sigma2_b": "σ_b², the mini-batch noise at the plateau (mean over the window's NTK checkpoints)",
    "ball": "the KNS ball η β_0 σ_b²/(2 μ_0) at that noise",
    "tightness": "window_loss / ball (the last window's loss over the KNS ball)",
    "quad": "η σ_b²/4, the quadratic's stationary gap",
    "quad_ratio": "window_loss / (η σ_b²/4)",
    "rho_max": "max_t ρ_t along the path",
    "rho_end": "ρ_T",
    "rho_b_max": "ρ_b = 1 + c_b (max_t ρ_t − 1)",
    "rho_bound0": "N max_i Θ_ii/λ_min(Θ_0), the kernel bound on ρ at θ_0",
    "rho_over_bound0": "max_t ρ_t / (N max_i Θ_ii/λ_min(Θ_0)) (≤ 1: strong growth within the kernel bound)",
    "sgc_step": "η β_0 ρ_b (≤ 1: Vaswani et al.'s step condition)",
    "rate": "q, the transient's per-step factor",
    "bound_rate": "1 − η μ_0",
    "rate_ratio": "log q / log(1 − η μ_0) (≥ 1: at least as fast as KNS's transient)",
    "c_b": "c_b = (N − b)/(b(N − 1))",
    "eta_c_b": "η c_b, the ball's predicted scale",
    "lr": "η",
    "fraction": "η β_0",
    "beta0": "β_0 (the pilot's)",
    "mu0": "μ_0 = λ_min(Θ_0)/N (the pilot's)",
}


def measures(res: dict, cell: dict | None = None) -> dict:
    """Every :data:`MEASURES` number of one :func:`~.cells.sgd_cell` result (``window`` :data:`WINDOW`).

    A diverged cell has no plateau, rate or noise: every measure but ``lr``,
    ``fraction``, ``c_b``, ``beta0`` and ``mu0`` is NaN there (a claim over it is
    *untestable*, naming the cells), as the experiment's verdicts leave diverged cells out.
    """
    s = summarise(res, WINDOW)
    d = {k: float(getattr(s, k)) for k in MEASURES if hasattr(s, k)}  # plateau: NaN unless levelled
    d.update(beta0=float(res["beta0"]), mu0=float(res["mu0"]), eta_c_b=s.lr * s.c_b,
             rho_over_bound0=s.rho_max / s.rho_bound0 if s.rho_bound0 > 0 else float("nan"),
             rate_ratio=math.log(s.rate) / math.log(s.bound_rate) if 0 < s.rate < 1 and 0 < s.bound_rate < 1
             else float("nan"))
    if s.diverged:
        d.update({k: float("nan") for k in d if k not in ("lr", "fraction", "c_b", "beta0", "mu0")})
    return d
