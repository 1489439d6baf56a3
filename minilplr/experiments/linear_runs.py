"""Recipes shared by the linear-network experiments: config -> data, weights, schedule; cached runs.

An experiment config names plain JSON values; these helpers turn them into
the objects of :mod:`minilplr.theory.linear` and run :func:`~minilplr.theory.linear.trajectory.run_gd`
with its result cached on disk, so an interrupted experiment resumes where it
stopped and re-plotting never re-trains.  Each run is a :mod:`minilplr.store`
unit ``<key>.json`` + ``<key>.npz``, ``key`` a hash of everything that
determines the run (:func:`minilplr.store.config_hash`); a damaged one is moved aside and
recomputed.  While a run is going, ``<key>.checkpoint.json`` + ``.npz`` hold
its state, so a run killed mid-way continues from its last checkpoint.
"""
from __future__ import annotations

import pathlib

import numpy as np

from ..backend import get_array_module
from ..train.checkpoint import remove_checkpoint
from ..store import config_hash, load_or_discard, save_unit
from ..theory.verdicts import Verdict, monotone, untestable
from ..theory.linear.constants import fro_UtV
from ..theory.linear.init import gaussian_init, imbalance_init, make_network, synthetic_regression
from ..theory.linear.operator import kappa_T, sigma2_T
from ..theory.linear.schedules import AdaptiveStep, Armijo, Constant, Xu2023Step, initial_safe_lr
from ..theory.linear.threads import small_blas
from ..theory.linear.trajectory import run_gd
from .timing import phase

__all__ = ["trend", "data_from_config", "weights_from_config", "schedule_from_config", "cached_run",
           "save_run", "load_run", "data_caption", "init_label", "SCHEDULE_LABELS"]

SCHEDULE_LABELS = {
    "constant": "constant η = 1/K₀",
    "adaptive": "adaptive (eq. 19)",
    "xu2023": "Xu et al. 2023",
    "armijo": "Armijo backtracking",
}


def data_from_config(data: dict):
    """``{"N", "n", "m", "seed", "x_cond"}`` -> host ``X (N, n)``, ``Y (N, m)``."""
    rng = np.random.default_rng(int(data["seed"]))
    return synthetic_regression(int(data["N"]), int(data["n"]), int(data["m"]), rng,
                                float(data.get("x_cond", 1.0)))


def weights_from_config(n: int, m: int, h: int, init: dict, seed: int):
    """``init = {"kind": "gaussian", "p"}`` or ``{"kind": "imbalance", "sigma", "p"}`` -> host ``W1, W2``.

    The imbalance-controlled start uses ``scale = h^{−p}`` (our choice, so that
    it is the Gaussian start rescaled by ``r`` and ``1/r``; the 2023 code has
    ``scale = 1``).
    """
    rng = np.random.default_rng(int(seed))
    kind = init.get("kind", "gaussian")
    if kind == "gaussian":
        return gaussian_init(n, m, h, float(init["p"]), rng)
    if kind == "imbalance":
        scale = float(h) ** (-float(init.get("p", 0.375)))
        return imbalance_init(n, m, h, float(init["sigma"]), rng, scale=scale)
    raise ValueError(f"init.kind: expected 'gaussian' or 'imbalance', got {kind!r}")


def init_label(init: dict) -> str:
    if init.get("kind", "gaussian") == "gaussian":
        return f"Gaussian p={init['p']:g}"
    return f"imbalance σ={init['sigma']:g} (scale h^-{init.get('p', 0.375):g})"


def schedule_from_config(name: str, net, opts: dict | None = None):
    """A schedule by name (``constant``, ``adaptive``, ``xu2023``, ``armijo``) for ``net``."""
    opts = dict(opts or {})
    if name == "constant":
        return Constant(initial_safe_lr(net.loss_fn, net.W1, net.W2))
    if name == "adaptive":
        return AdaptiveStep(net.loss_fn, eta0=float(opts.get("eta0", 0.01)),
                            sigma_bound=opts.get("sigma_bound", "paper"), grad_bound=opts.get("grad_bound", "loss"),
                            second_order=bool(opts.get("second_order", True)))
    if name == "xu2023":
        return Xu2023Step(net.loss_fn, c1=float(opts.get("c1", 1.5)), c2=float(opts.get("c2", 0.5)))
    if name == "armijo":
        return Armijo(net.loss, lr_init=float(opts.get("lr_init", 1.0)), shrink=float(opts.get("shrink", 0.5)),
                      c=float(opts.get("c", 1e-4)))
    raise ValueError(f"schedule: expected one of {', '.join(SCHEDULE_LABELS)}, got {name!r}")


def save_run(folder, key: str, res: dict) -> None:
    """Store one run's result as the unit ``folder/<key>`` (atomic; arrays hashed in the JSON)."""
    save_unit(folder, key, res)


def load_run(folder, key: str, log=print):
    """A stored run's result, or ``None`` if absent or damaged (then moved aside, one line to ``log``)."""
    return load_or_discard(folder, key, log=log)


def cached_run(folder, spec: dict, backend=None, *, checkpoint_every: int = 100, log=print) -> dict:
    """Run (or load) one GD trajectory described by ``spec``; stored as the unit ``folder/<key>``.

    ``spec`` = ``{"data": {...}, "h", "init": {...}, "init_seed", "schedule", "schedule_opts",
    "steps", "tol", "track_drift", "dtype"}``.  The result is the dict of
    :func:`run_gd` plus ``imbalance0`` (``‖D(0)‖_F``), ``kappa0`` (``κ(T₀)``),
    ``sigma2_min0``, ``sigma2_max0``, the schedule's counters
    (``function_evals``, ``armijo_failures``) and the spec's hash ``key``.

    A stored result is returned as stored; a damaged one (truncated, or not the
    pair it claims) is moved aside with one line to ``log`` and recomputed.
    The run checkpoints to ``folder/<key>.checkpoint`` every ``checkpoint_every``
    steps and resumes from there; the checkpoint is removed once the result is
    saved.  Two processes computing the same key both write whole units (atomic
    renames), and a reader sees one of them or a detected damage, never a mix.
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = config_hash(spec)  # the same hash that names every results folder
    ck = folder / f"{key}.checkpoint"
    res = load_run(folder, key, log=log)
    if res is not None:
        remove_checkpoint(ck)  # left behind if a run was killed between saving its result and this removal
        return res
    # every matrix here is (20, h) or smaller: one BLAS thread (theory/linear/threads.py says why)
    with small_blas(), phase("train"):
        X, Y = data_from_config(spec["data"])
        n, m = X.shape[1], Y.shape[1]
        W1, W2 = weights_from_config(n, m, int(spec["h"]), spec["init"], int(spec["init_seed"]))
        net = make_network(X, Y, W1, W2, backend=backend, dtype=spec.get("dtype", "float64"))
        s2min, s2max = sigma2_T(net.W1, net.W2)  # everything "0" is measured here, before GD moves the weights
        kappa0 = kappa_T(net.W1, net.W2)
        xp = get_array_module(net.W1)
        imb0 = fro_UtV(  # ‖D(0)‖_F = ‖UᵀV‖_F with U = [W₁; −W₂], V = [W₁; W₂]
            xp.concatenate([net.W1, -net.W2], 0), xp.concatenate([net.W1, net.W2], 0))
        sched = schedule_from_config(spec["schedule"], net, spec.get("schedule_opts"))  # from W(0), before any resume
        res = run_gd(net, sched, int(spec["steps"]), tol=float(spec.get("tol", 1e-12)),
                     track_drift=bool(spec.get("track_drift", False)), checkpoint=ck, checkpoint_every=checkpoint_every)
        res.update(imbalance0=imb0, kappa0=kappa0,
                   sigma2_min0=s2min, sigma2_max0=s2max, key=key,
                   function_evals=int(getattr(sched, "function_evals", 0)),
                   armijo_failures=int(getattr(sched, "failures", 0)))
    save_run(folder, key, res)
    remove_checkpoint(ck)
    return res


def data_caption(data: dict, dtype: str = "float64") -> str:
    """One line naming the synthetic data for a figure caption."""
    xdesc = "orthonormal columns" if float(data.get("x_cond", 1.0)) == 1.0 else f"κ(X)={data['x_cond']:g}"
    return (f"Data: X ∈ R^{data['N']}×{data['n']} with {xdesc}, Y = XΘ, Θ ~ N(0, 1/n), m = {data['m']} "
            f"(data seed {data['seed']}); loss ½‖Y − XW₁W₂ᵀ‖²_F, {dtype}.")


def trend(claim: str, x, y, direction: str, *, quantity: str) -> Verdict:
    """:func:`~minilplr.theory.verdicts.monotone` over seed means; *untestable* when a mean is not finite (a seed
    that never reached the tolerance within the run's steps)."""
    y = np.asarray(y, float)
    if not np.all(np.isfinite(y)):
        return untestable(claim, f"{quantity} is n/a at {int(np.sum(~np.isfinite(y)))} of {y.size} points (a seed "
                          "did not reach the tolerance within the run)", "a run with more steps")
    return monotone(claim, x, y, direction, quantity=quantity)
