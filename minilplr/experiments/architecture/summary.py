r"""What one cell of the architecture study says: the PL constant, the conditioning, the rate, the kernel's motion.

:func:`summarise` turns a cell's saved result (:func:`.cells.architecture_cell`) into a flat dict of host
numbers, each defined here once:

``mu0``
    ``μ_0 = λ_min(Θ_0)/N``, the PL constant at initialisation (Θ: the kernel of the function GD trains,
    :mod:`.cells`); NaN when ``λ_min`` is below its rounding floor.
``kappa0``
    ``κ(Θ_0) = λ_max(Θ_0)/λ_min(Θ_0)``.
``lam_ratio_min``, ``lam_ratio_end``
    ``min_t λ_min(Θ_t)/λ_min(Θ_0)`` over the NTK checkpoints, and its value at ``t = T``.
``mu_path``
    ``min_t λ_min(Θ_t)/N``: the PL constant along the path (on the checkpoints).
``beta0``, ``lr``, ``eta_mu0``
    ``β_0``, ``η = c/β_0``, and ``η μ_0``: Theorem 5.4's per-step contraction is ``1 − ημ``.
``rate``, ``rate_r2``
    The fitted rate ``−log q`` per step of ``L_t ≈ C q^t`` (:func:`minilplr.experiments.fits.fit_linear_rate`,
    ``L* = 0``: the squared loss of an interpolating network) and its ``R²``.
``rate_vs_bound``
    ``rate / (−log(1 − η μ_path))``: the fitted rate in units of the theorem's guaranteed one
    (``≥ 1``: at least as fast as the bound).
``contraction_held``, ``contraction_status``
    :func:`minilplr.theory.convergence.per_step_contraction` with ``μ_t`` held between checkpoints: the
    fraction of steps where eq. (14) held, and the verdict's word.
``loss_rises``, ``hypothesis_broken``, ``contraction_held_hyp``
    :func:`loss_rises`: the steps where the loss rose by more than the two losses' rounding
    (:func:`minilplr.theory.convergence.rounding_slack`).  By the descent lemma,
    ``L(θ − η∇L) ≤ L − η(1 − ηβ/2)‖∇L‖²`` with ``β`` the smoothness along the step, so a rise means
    ``ηβ > 2`` there: Theorem 5.4's hypothesis ``η ≤ 1/β`` along the path is broken (``hypothesis_broken = 1``;
    a loss that never rose does not prove it, it only does not contradict it).  ``contraction_held_hyp``:
    ``contraction_held`` where the hypothesis is not contradicted, NaN where it is broken (eq. (14) is
    then not the theorem's claim).
``kernel_err``
    ``max_t |L_t − L^Θ₀_t| / L_t``: the relative error of the kernel-regime prediction
    (:func:`minilplr.theory.dynamics.kernel_regime_loss`) along the run.
``ntk_drift``
    ``‖Θ_T − Θ_0‖_F/‖Θ_0‖_F`` at the last checkpoint.
``decrease``
    ``L_0/L_T``.
``frozen_ratio``
    BN cells: ``λ_min(Θ_frozen)/λ_min(Θ_batch)`` at ``t = 0`` (:func:`.cells.frozen_kernel`); NaN otherwise.
``lam_min_inf``, ``lam_min_scaled0``
    Plain MLP without BN: ``λ_min(Θ_∞)`` and ``λ_min(Θ̃_0)`` (NTK scaling); NaN otherwise.

A study (kind ``architecture``) records them by name: :data:`MEASURES`, from :func:`measures`
(the numeric fields above, and ``inf_ratio = λ_min(Θ̃_0)/λ_min(Θ_∞)``).
"""
from __future__ import annotations

import math

import numpy as np

from ...theory.convergence import per_step_contraction, rounding_slack
from ..fits import fit_linear_rate

__all__ = ["summarise", "mu_per_step", "loss_rises", "measures", "MEASURES"]


def _nan(x):
    return float("nan") if x is None else float(x)


def mu_per_step(res: dict) -> np.ndarray:
    """``μ_t = λ_min(Θ_s)/N`` for each step ``t`` (``T`` values), ``s`` the last checkpoint at or before ``t``."""
    T = len(res["loss"])
    steps = np.asarray(res["diag"]["step"], float)
    lam = np.asarray(res["diag"]["lam_min"], float)
    idx = np.searchsorted(steps, np.arange(T), side="right") - 1
    return lam[np.clip(idx, 0, lam.size - 1)] / res["n"]


def loss_rises(loss, dtype) -> int:
    """How many steps raise the loss beyond rounding: ``L_{t+1} − L_t > s_t + s_{t+1}`` (``s``:
    :func:`~minilplr.theory.convergence.rounding_slack` of ``loss (T,)`` in ``dtype``); non-finite losses count."""
    L = np.asarray(loss, float)
    if L.size < 2:
        return 0
    with np.errstate(invalid="ignore"):
        s = rounding_slack(np.where(np.isfinite(L), L, 0.0), dtype)  # a non-finite loss leaves the others' slack
        rose = ~(L[1:] - L[:-1] <= s[1:] + s[:-1])  # NaN compares False: counted as a rise
    return int(np.sum(rose))


def summarise(res: dict) -> dict:
    """The numbers of one cell (module docstring), host floats and strings."""
    n, loss = int(res["n"]), np.asarray(res["loss"], float)
    lam = np.asarray(res["diag"]["lam_min"], float)
    lmax = np.asarray(res["diag"]["lam_max"], float)
    lr = float(res["lr"])
    mu0 = lam[0] / n
    mu_path = float(np.min(lam)) / n if lam.size and np.all(np.isfinite(lam)) else float("nan")
    finished = res["status"] == "finished"
    fit = fit_linear_rate(loss, 0.0) if finished else dict(rate=float("nan"), r2=float("nan"))
    rate = -math.log(fit["rate"]) if finished and 0 < fit["rate"] < 1 else float("nan")
    bound = -math.log1p(-lr * mu_path) if (math.isfinite(mu_path) and 0 < lr * mu_path < 1) else float("nan")
    v = (per_step_contraction(loss, lr, mu_per_step(res), dtype=res["config"]["dtype"]) if finished and loss.size > 1
         else None)
    rises = loss_rises(loss, res["config"]["dtype"])
    held = float(v.details.get("fraction", float("nan"))) if v is not None and v.details else float("nan")
    kp = np.asarray(res["kernel_pred"], float)
    k = min(kp.size, loss.size)
    kernel_err = float(np.max(np.abs(loss[:k] - kp[:k]) / loss[:k])) if k else float("nan")
    inf = res.get("infinite") or {}
    cfg = res["config"]
    return dict(
        depth=int(cfg["depth"]), residual=bool(cfg["residual"]), batchnorm=bool(cfg["batchnorm"]), init=cfg["init"],
        status=res["status"], n=n, mu0=float(mu0), kappa0=float(lmax[0] / lam[0]) if lam[0] > 0 else float("nan"),
        lam_ratio_min=float(np.min(lam) / lam[0]), lam_ratio_end=float(lam[-1] / lam[0]), mu_path=mu_path,
        beta0=float(res["beta0"]["beta"]), lr=lr, eta_mu0=float(lr * mu0), rate=rate, rate_r2=_nan(fit.get("r2")),
        rate_vs_bound=rate / bound if math.isfinite(bound) and bound > 0 else float("nan"),
        contraction_held=held, contraction_status=v.status if v is not None else "n/a",
        loss_rises=rises, hypothesis_broken=float(rises > 0), contraction_held_hyp=held if rises == 0 else float("nan"),
        kernel_err=kernel_err, ntk_drift=float(res["diag"]["ntk_drift"][-1]),
        decrease=float(loss[0] / loss[-1]) if loss.size else float("nan"),
        frozen_ratio=float(res["lam_min_frozen0"]) / lam[0] if cfg["batchnorm"] else float("nan"),
        lam_min_inf=_nan(inf.get("lam_min_inf")), lam_min_scaled0=_nan(inf.get("lam_min_scaled0")),
    )


#: The study's named numbers of one cell (``CellKind.measures``, :func:`measures`; the module docstring defines them).
MEASURES = {
    "mu0": "μ_0 = λ_min(Θ_0)/N", "kappa0": "κ(Θ_0) = λ_max/λ_min", "lam_ratio_min": "min_t λ_min(Θ_t)/λ_min(Θ_0)",
    "lam_ratio_end": "λ_min(Θ_T)/λ_min(Θ_0)", "mu_path": "min_t λ_min(Θ_t)/N", "beta0": "β_0", "lr": "η = c/β_0",
    "eta_mu0": "η μ_0", "rate": "fitted rate −log q per step", "rate_r2": "R² of that fit",
    "rate_vs_bound": "rate / (−log(1 − η μ_path))", "contraction_held": "share of steps where eq. (14) held",
    "loss_rises": "steps where the loss rose beyond rounding (η > 2/β there)",
    "hypothesis_broken": "1 where the loss rose (Theorem 5.4's η ≤ 1/β broken along the path), else 0",
    "contraction_held_hyp": "contraction_held where the loss never rose (the hypothesis not contradicted), else NaN",
    "kernel_err": "max_t |L_t − L^Θ₀_t|/L_t", "ntk_drift": "‖Θ_T − Θ_0‖_F/‖Θ_0‖_F", "decrease": "L_0/L_T",
    "frozen_ratio": "BN: λ_min(Θ_frozen)/λ_min(Θ_batch) at t = 0", "lam_min_inf": "plain MLP: λ_min(Θ_∞)",
    "lam_min_scaled0": "plain MLP: λ_min(Θ̃_0), NTK scaling", "inf_ratio": "plain MLP: λ_min(Θ̃_0)/λ_min(Θ_∞)",
}


def measures(res: dict, cell: dict | None = None) -> dict:
    """Every :data:`MEASURES` number of one :func:`~.cells.architecture_cell` result, from :func:`summarise`."""
    s = summarise(res)
    d = {k: float(s[k]) for k in MEASURES if k in s}
    inf, fin = d["lam_min_inf"], d["lam_min_scaled0"]
    d["inf_ratio"] = fin / inf if math.isfinite(inf) and inf > 0 else float("nan")
    return d
