r"""Gradient descent on ``L(W₁, W₂)`` with the local constants recorded at every step.

:func:`run_gd` is the one training loop of the linear-network experiments.
At each step ``t`` it records (host floats, one sync per step)

==================  =========================================================
``loss``, ``gap``   ``L(t)`` and ``L(t) − L*``
``lr``              ``η_t`` from the schedule
``sigma2_min/max``  ``σ²_min(𝒯_t)``, ``σ²_max(𝒯_t)``
``mu_t``            local PL constant ``μ_ℓσ²_min(𝒯_t)``
``K_t``             local smoothness ``β_t(η_t)`` with ``g = ‖∇ℓ(W_t)‖_F`` (reconstruction)
``grad_sq``         ``‖∇L‖²``
``pl_ratio``        ``½‖∇L‖² / (L − L*)``, which the local PL inequality says is ``≥ μ_t``
``rate_bound``      ``1 − η_tμ_t(2 − η_tK_t)``, the contraction the constants guarantee
``drift_step``      ``‖𝒟(t+1) − 𝒟(t)‖_F`` and ``drift_step_bound`` ``2β_ℓη²σ²_max(L − L*)``
``drift``           ``‖𝒟(t) − 𝒟(0)‖_F`` and ``drift_bound``, the running sum of step bounds
``evals``           gradient evaluations plus the schedule's extra loss evaluations so far
==================  =========================================================

Arrays have one entry per visited iterate ``t = 0 … T`` (``lr`` and the
step quantities are ``nan`` at the last iterate, where no step was taken).

With ``checkpoint=path`` the loop saves, every ``checkpoint_every`` steps,
everything the rest of the run depends on (the weights, the optimiser's
``state_dict`` with the schedule's state inside, ``W(0)``, and the loop's
running values: the records, ``L(0)``, the running drift bound) through the
training loops' own :class:`minilplr.train.resumable.Resumable`, and the same
call made again resumes from it: the resumed run equals the uninterrupted
one bit for bit.  The checkpoint carries the run's fingerprint (data,
initial weights, optimiser and schedule, ``steps``, ``tol`` …) and refuses to
resume any other run (:class:`~minilplr.train.checkpoint.CheckpointMismatch`).
"""
from __future__ import annotations

import math

import numpy as np

from ...backend import to_host, to_scalar
from ...nn.params import sq_norm
from ...train.optim import SGD
from ...train.resumable import Arrays, Resumable, signature
from ...store import fingerprint as data_hash
from ...validate import check_int
from .constants import (
    imbalance_drift,
    imbalance_step_bound,
    imbalance_step_norm,
    local_smoothness,
    pl_contraction_bound,
)
from .model import TwoLayerLinear
from .operator import sigma2_T
from .threads import small_blas

__all__ = ["run_gd", "observed_rate", "steps_to_tolerance", "FIELDS"]

FIELDS = (
    "loss", "gap", "lr", "sigma2_min", "sigma2_max", "mu_t", "K_t", "grad_sq", "grad_ell", "pl_ratio",
    "rate_bound", "drift_step", "drift_step_bound", "drift", "drift_bound", "evals", "sigma_bound",
)


def _fingerprint(net: TwoLayerLinear, opt: SGD, **run) -> dict:
    """What a checkpoint of this run must match: the loss and its data, the initial weights, the optimiser, the run.

    Called before the first step, so ``net``'s weights are ``W(0)``: a checkpoint
    of a run from another start is refused like one of other data.
    """
    loss_fn = net.loss_fn
    return {
        "loss": {"class": type(loss_fn).__name__, "lam": getattr(loss_fn, "lam", None)},
        "data": data_hash(to_host(loss_fn.X), to_host(loss_fn.Y)),
        "shapes": {k: list(p.shape) for k, p in net.params.items()},
        "dtype": str(net.W1.dtype),
        "init": data_hash(*(to_host(p) for p in net.params.values())),
        "optimiser": signature(opt),
        **run,
    }


class _Running:
    """The loop's running values beside the weights and the optimiser: the records, ``L(0)``, the drift bound.

    A part of the run's checkpoint (``state_dict`` / ``load_state_dict``).  The
    records are float64 arrays there (every bit of the Python floats kept);
    ``L0`` and ``gap0`` decide the stopping tests, ``extra_evals0`` (the
    schedule's loss evaluations before the run) the ``evals`` record,
    ``drift_bound`` is the running sum of step bounds.  The iterate ``t`` is
    the number of records.
    """

    def __init__(self, schedule):
        self.rec = {k: [] for k in FIELDS}
        self.drift_bound = 0.0
        self.gap0 = self.L0 = None
        self.extra_evals0 = getattr(schedule, "function_evals", 0)

    def state_dict(self) -> dict:
        return {"records": {k: np.asarray(v, dtype=np.float64) for k, v in self.rec.items()},
                "drift_bound": self.drift_bound, "gap0": self.gap0, "L0": self.L0, "extra_evals0": self.extra_evals0}

    def load_state_dict(self, state: dict) -> None:
        self.rec = {k: state["records"][k].tolist() for k in FIELDS}
        self.drift_bound, self.gap0, self.L0 = float(state["drift_bound"]), float(state["gap0"]), float(state["L0"])
        self.extra_evals0 = int(state["extra_evals0"])


def run_gd(net: TwoLayerLinear, schedule, steps: int, *, tol: float = 1e-12, track_drift: bool = True,
           diverge_factor: float = 1e6, checkpoint=None, checkpoint_every: int = 100, callback=None) -> dict:
    """Run at most ``steps`` GD steps ``θ ← θ − η_t∇L(θ)`` and record the diagnostics.

    Parameters
    ----------
    net : TwoLayerLinear
        Updated in place.
    schedule : Schedule or float
        Passed to :class:`minilplr.train.optim.SGD`; it sees ``params=``, ``grads=``, ``loss=``.
    steps : int
    tol : float
        Stop once ``L − L* ≤ tol · (L(0) − L*)`` (float64 reaches ~1e-15 relative).
    track_drift : bool
        Compute the imbalance drift ``‖𝒟(t) − 𝒟(0)‖_F`` and step ``‖𝒟(t+1) − 𝒟(t)‖_F``
        each step (two QRs of ``(H, 2(D+K))``, ``O((D+K)²H)``: more than the rest of
        the step; ``nan`` when off).
    diverge_factor : float
        Stop (``stopped = "diverged"``) if ``L`` is not finite or exceeds this times ``L(0)``.
    checkpoint : path, optional
        Save/resume file (``path.json`` + ``path.npz``, see the module docstring).
        Call again with a freshly built ``net`` and ``schedule`` (as a new
        process would) to resume; the caller removes it once the result is stored.
    checkpoint_every : int
        Steps between checkpoints.
    callback : callable ``t -> None``, optional
        Called at each iterate ``t`` before anything is computed there (a
        progress hook; an exception it raises stops the run like a kill).

    Returns
    -------
    dict
        ``FIELDS`` as float64 host arrays, plus ``steps`` (steps taken),
        ``stopped`` (``"tol"``, ``"steps"``, ``"diverged"``), ``K`` (= ``β_ℓ``), ``mu``,
        ``min_value`` and ``h`` (= ``H``).

    Raises
    ------
    CheckpointMismatch
        ``checkpoint`` holds another run's state.
    """
    if not isinstance(net, TwoLayerLinear):
        raise TypeError(f"net: expected a TwoLayerLinear, got {type(net).__name__}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"steps: expected a non-negative integer, got {steps!r}")
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, 1)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable t -> None, got {type(callback).__name__}")
    loss_fn = net.loss_fn
    K, mu, Lstar = loss_fn.K, loss_fn.mu, loss_fn.min_value
    opt = SGD(schedule)
    schedule = opt.schedule  # a float became Constant(η)
    fp = None if checkpoint is None else _fingerprint(
        net, opt, steps=int(steps), tol=float(tol), diverge_factor=float(diverge_factor), track_drift=bool(track_drift))
    W0, run = net.copy_params(), _Running(schedule)
    ck = Resumable(checkpoint, fp, {"weights": Arrays(net.params), "W0": Arrays(W0), "optimiser": opt, "run": run},
                   every=checkpoint_every)
    ck.restore()  # a resumed run: W₁, W₂, W(0), the optimiser and schedule, the records as saved
    rec, t = run.rec, len(run.rec["loss"])
    stopped = "steps"
    with small_blas():  # (n, h) products with n, m = 20: one BLAS thread (threads.py says why)
        while True:
            if callback is not None:
                callback(t)
            L = to_scalar(net.backward())
            gap = max(L - Lstar, 0.0)
            if run.gap0 is None:
                run.gap0, run.L0 = gap, L
            s2min, s2max = sigma2_T(net.W1, net.W2)
            mu_t = mu * s2min
            grad_sq = sq_norm(net.grads)  # ‖∇L‖² = ‖∇_{W₁}L‖² + ‖∇_{W₂}L‖²
            g_ell = math.sqrt(max(to_scalar((net.grad_ell * net.grad_ell).sum()), 0.0))
            rec["loss"].append(L)
            rec["gap"].append(gap)
            rec["sigma2_min"].append(s2min)
            rec["sigma2_max"].append(s2max)
            rec["mu_t"].append(mu_t)
            rec["grad_sq"].append(grad_sq)
            rec["grad_ell"].append(g_ell)
            rec["pl_ratio"].append(0.5 * grad_sq / gap if gap > 0 else float("nan"))
            rec["drift"].append(
                imbalance_drift(net.W1, net.W2, W0["W1"], W0["W2"]) if track_drift else float("nan"))
            rec["drift_bound"].append(run.drift_bound)
            rec["evals"].append(t + 1 + getattr(schedule, "function_evals", 0) - run.extra_evals0)
            if not math.isfinite(L) or L > diverge_factor * max(run.L0, 1e-300):
                stopped = "diverged"
            elif gap <= tol * run.gap0:
                stopped = "tol"
            elif t >= steps:
                stopped = "steps"
            else:
                stopped = None
            if stopped is not None:
                for k in ("lr", "K_t", "rate_bound", "drift_step", "drift_step_bound", "sigma_bound"):
                    rec[k].append(float("nan"))
                break
            dW1, dW2 = net.grads["W1"], net.grads["W2"]
            lr = opt.step(net.params, net.grads, loss=L)
            K_t = local_smoothness(K, s2max, g_ell, lr)
            step_bound = imbalance_step_bound(K, lr, s2max, gap)
            run.drift_bound += step_bound
            rec["lr"].append(lr)
            rec["K_t"].append(K_t)
            rec["rate_bound"].append(pl_contraction_bound(lr, mu_t, K_t))
            rec["drift_step"].append(imbalance_step_norm(dW1, dW2, lr) if track_drift else float("nan"))
            rec["drift_step_bound"].append(step_bound)
            rec["sigma_bound"].append(float(getattr(schedule, "last", {}).get("sigma_bound", float("nan"))))
            t += 1
            if ck.due(t):
                ck.save()
    out = {k: np.asarray(v, dtype=np.float64) for k, v in rec.items()}
    out.update(steps=t, stopped=stopped, K=K, mu=mu, min_value=Lstar, h=net.h)
    return out


def observed_rate(gap, lo: float = 1e-10, hi: float = 1e-1) -> float:
    r"""Observed per-step contraction ``ρ`` of ``L_t − L*``: ``exp`` of the fitted slope of ``log gap``.

    Fits ``log(gap_t) ≈ a + t log ρ`` by least squares on the iterates with
    ``lo ≤ gap_t / gap_0 ≤ hi`` (past the transient, before the floating-point
    floor).  ``nan`` if fewer than 3 iterates fall in the window.
    """
    g = np.asarray(gap, dtype=np.float64)
    if g.size == 0 or not (g[0] > 0):
        return float("nan")
    rel = g / g[0]
    idx = np.nonzero((rel >= lo) & (rel <= hi) & (g > 0))[0]
    if idx.size < 3:
        return float("nan")
    slope = np.polyfit(idx.astype(np.float64), np.log(g[idx]), 1)[0]
    return float(np.exp(slope))


def steps_to_tolerance(gap, tol: float, evals=None) -> float:
    """First ``t`` (or ``evals[t]``) with ``gap_t ≤ tol · gap_0``; ``nan`` if never reached."""
    g = np.asarray(gap, dtype=np.float64)
    hit = np.nonzero(g <= tol * g[0])[0]
    if hit.size == 0:
        return float("nan")
    return float(hit[0] if evals is None else np.asarray(evals)[hit[0]])
