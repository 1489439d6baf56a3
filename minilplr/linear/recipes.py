"""Recipes shared by the linear-network experiments: config -> data, weights, schedule; cached runs.

An experiment config names plain JSON values; these helpers turn them into
the objects of :mod:`minilplr.linear` and run :func:`~minilplr.linear.trajectory.run_gd`
with its result cached on disk (one ``.npz`` per run, its name carrying a
hash of everything that determines the run), so an interrupted experiment
resumes where it stopped and re-plotting never re-trains.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib

import numpy as np

from ..backend import get_array_module
from .constants import fro_UtV
from .init import gaussian_init, imbalance_init, make_network, synthetic_regression
from .operator import sigma2_T
from .schedules import AdaptiveStep, Armijo, Constant, Xu2023Step, initial_safe_lr
from .trajectory import run_gd

__all__ = ["data_from_config", "weights_from_config", "schedule_from_config", "cached_run", "run_key",
           "data_caption",
           "init_label", "SCHEDULE_LABELS"]

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


def run_key(spec: dict) -> str:
    """A short stable hash of a run's full specification (plain JSON)."""
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def _save_npz(path: pathlib.Path, res: dict) -> None:
    arrays = {}
    for k, v in res.items():
        arrays[k] = np.asarray(v)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # atomic: a killed run never leaves a half-written file


def _load_npz(path: pathlib.Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        out = {}
        for k in z.files:
            a = z[k]
            if a.ndim == 0:
                out[k] = a.item()
            else:
                out[k] = a
        return out


def cached_run(folder, spec: dict, backend=None) -> dict:
    """Run (or load) one GD trajectory described by ``spec``; saved as ``folder/<hash>.npz``.

    ``spec`` = ``{"data": {...}, "h", "init": {...}, "init_seed", "schedule", "schedule_opts",
    "steps", "tol", "track_drift", "dtype"}``.  The result is the dict of
    :func:`run_gd` plus ``imbalance0`` (``‖D(0)‖_F``), ``kappa0`` (``κ(T₀)``) and the
    spec's hash ``key``.
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = run_key(spec)
    path = folder / f"{key}.npz"
    if path.exists():
        return _load_npz(path)
    X, Y = data_from_config(spec["data"])
    n, m = X.shape[1], Y.shape[1]
    W1, W2 = weights_from_config(n, m, int(spec["h"]), spec["init"], int(spec["init_seed"]))
    net = make_network(X, Y, W1, W2, backend=backend, dtype=spec.get("dtype", "float64"))
    s2min, s2max = sigma2_T(net.W1, net.W2)
    xp = get_array_module(net.W1)
    imb0 = fro_UtV(  # ‖D(0)‖_F = ‖UᵀV‖_F with U = [W₁; −W₂], V = [W₁; W₂]
        xp.concatenate([net.W1, -net.W2], 0), xp.concatenate([net.W1, net.W2], 0))
    sched = schedule_from_config(spec["schedule"], net, spec.get("schedule_opts"))
    res = run_gd(net, sched, int(spec["steps"]), tol=float(spec.get("tol", 1e-12)),
                 track_drift=bool(spec.get("track_drift", False)))
    res.update(imbalance0=imb0, kappa0=(s2max / s2min) ** 0.5 if s2min > 0 else float("inf"),
               sigma2_min0=s2min, sigma2_max0=s2max, key=key,
               function_evals=int(getattr(sched, "function_evals", 0)),
               armijo_failures=int(getattr(sched, "failures", 0)))
    _save_npz(path, res)
    return _load_npz(path)


def data_caption(data: dict, dtype: str = "float64") -> str:
    """One line naming the synthetic data for a figure caption."""
    xdesc = "orthonormal columns" if float(data.get("x_cond", 1.0)) == 1.0 else f"κ(X)={data['x_cond']:g}"
    return (f"Data: X ∈ R^{data['N']}×{data['n']} with {xdesc}, Y = XΘ, Θ ~ N(0, 1/n), m = {data['m']} "
            f"(data seed {data['seed']}); loss ½‖Y − XW₁W₂ᵀ‖²_F, {dtype}.")

