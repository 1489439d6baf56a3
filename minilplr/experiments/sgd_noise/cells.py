"""The noise-ball study's cells: one constant-step SGD run per (batch size, step size, seed), as host data.

The Fig. 1 task (an MLP ``784 -> H x (depth-1) -> 1``, ReLU, He init, the
squared loss ``L = ‖f − y‖²/(2N)`` over binary MNIST with labels ±1), in
float64.  A *pilot* per task measures ``β_0 = ‖∇²L(θ_0)‖₂`` and
``μ_0 = λ_min(Θ_0)/N`` (:func:`minilplr.experiments.lplr_map.cells.pilot_cell`);
the steps are ``η = c/β_0``.  A *cell* (:func:`sgd_cell`) runs SGD with
its own loop, because the theory needs each step's batch to be an
*independent* uniform ``b``-subset drawn without replacement (the training
loop :func:`minilplr.train.loops.train_sgd` reshuffles once per epoch
instead: its batches within an epoch are disjoint, not independent).

Cell configuration keys (for the study specs): every key of
:data:`TASK_KEYS` (the task and the network: ``digits``, ``n``,
``data_source``, ``preprocess``, ``width``, ``depth``, ``init``,
``init_factor``, ``seed`` — data subset and initialisation —, ``dtype``),
``backend`` (its name), and :data:`RUN_KEYS`: ``batch`` (``b``; ``b ≥ n``
is full-batch GD), ``lr`` (the absolute ``η``), ``sgd_seed`` (the batch
draws), ``steps``, ``record_every`` (full-batch loss every so many steps),
``noise_every`` (``Θ_t`` and the per-sample gradient moments every so many
steps), ``beta0`` and ``mu0`` (the pilot's, carried for the record).

As a study (``kind = "sgd_noise"``, ``studies/sgd_noise.toml``): :data:`CELL_KIND`
declares the spec's keys (the step as ``c_beta0``, ``η = c/β_0``, or ``eta``),
the pilot (:func:`~minilplr.experiments.lplr_map.cells.pilot_cell`, one per
task, always run: the cell needs ``β_0`` and ``μ_0``) and the named measures
(:data:`.summary.MEASURES`).  :func:`study_cell` is the adapter: it turns the
study's cell (the pilot's fields as a dict ``beta0``) into exactly the
experiment's configuration (:func:`experiment_config`) and runs :func:`sgd_cell`.
"""
from __future__ import annotations

import math

import numpy as np

from ...backend import to_device, to_host
from ...nn.losses import mse
from ...nn.models import mlp
from ...theory import ntk as _ntk
from ...theory import sgd_noise as sn
from ...theory import spectrum as _spectrum
from ...train.optim import SGD
from ..mnist_gd import load_task
from ..study.kinds import TASK_INITS, CellKind, check_model_fits
from ..timing import phase
from .summary import MEASURES

__all__ = ["TASK_KEYS", "RUN_KEYS", "sgd_cell", "noise_at", "batch_indices", "cell_name", "CELL_KIND",
           "study_cell", "experiment_config"]

#: The task and the network (the pilot's keys, :func:`minilplr.experiments.lplr_map.cells.pilot_cell`, plus ``width``).
TASK_KEYS = ("digits", "n", "data_source", "preprocess", "width", "depth", "init", "init_factor", "seed", "dtype")
#: One SGD run's keys besides the task.
RUN_KEYS = ("batch", "lr", "sgd_seed", "steps", "record_every", "noise_every", "beta0", "mu0")
#: The loss may grow by this factor over ``L_0`` before the run is declared diverged.
DIVERGENCE = 1e6


def batch_indices(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """One step's batch: a uniform ``b``-subset of ``range(n)`` drawn without replacement, independent of the
    other steps' (``b ≥ n``: every sample, full-batch GD)."""
    if b >= n:
        return np.arange(n)
    return np.sort(rng.permutation(n)[:b])


@phase("ntk")
def noise_at(model, X, y) -> dict:
    r"""The per-sample gradient moments at the model's ``θ``, exactly, from ``Θ (N, N)`` in float64 and ``r (N, 1)``.

    Returns ``mean_sq`` (``E_i‖∇ℓ_i‖²``), ``grad_sq`` (``‖∇L‖²``), ``spread``
    (``σ_1²``), ``rho`` (``ρ``), and ``lam_min`` (``λ_min(Θ)``, NaN when below
    its floor) with ``diag_max`` (``max_i Θ_ii``): ``ρ ≤ N max_i Θ_ii/λ_min(Θ)``
    (THEORY.md, eq. (N9)); host floats (:mod:`minilplr.theory.sgd_noise`).
    """
    theta = _ntk.empirical_ntk(model, X, method="structured", dtype="float64")
    r = to_host(model.forward(X) - y).astype(np.float64)
    G = sn.per_sample_gram(theta, r)
    m = sn.gradient_moments(G)
    spec = _spectrum.ntk_spectrum(theta)
    return dict(mean_sq=m.mean_sq, grad_sq=m.full_sq, spread=m.spread, rho=sn.strong_growth_ratio(G),
                lam_min=float(spec.lam_min) if spec.resolved else float("nan"),
                diag_max=float(np.max(to_host(theta).diagonal())))


def sgd_cell(cell: dict) -> dict:
    """One constant-step SGD run (module docstring: the keys); host data.

    Returns ``status`` ("finished" | "diverged"), ``message``, ``record_steps``
    and ``loss`` (the full-batch ``L(θ_t)`` every ``record_every`` steps and at
    the end), ``noise_steps`` with ``mean_sq``, ``grad_sq``, ``spread``, ``rho``,
    ``lam_min``, ``diag_max`` (:func:`noise_at`) and ``sigma2_b`` (``c_b σ_1²``), ``n``, ``batch``
    (the ``b`` used, ``n`` for full batch), ``lr``, ``beta0``, ``mu0``, ``data``.
    """
    data = load_task(cell)
    n = int(data.n)
    model = mlp(784, cell["width"], cell["depth"], 1, init=cell["init"], seed=cell["seed"], dtype=cell["dtype"],
                backend=cell["backend"], init_factor=cell.get("init_factor"))
    be = model.backend
    X = to_device(data.X, be, model.dtype)
    y = to_device(data.y.reshape(-1, 1), be, model.dtype)
    b = min(int(cell["batch"]), n)
    lr, steps = float(cell["lr"]), int(cell["steps"])
    rec, every = int(cell["record_every"]), int(cell["noise_every"])
    cb = sn.batch_factor(n, b)
    rng = np.random.default_rng([int(cell["sgd_seed"]), 24])
    opt = SGD(lr)
    out = dict(record_steps=[], loss=[], noise_steps=[], mean_sq=[], grad_sq=[], spread=[], rho=[], lam_min=[],
               diag_max=[])
    status, message, loss0 = "finished", "", None
    with phase("train"):
        for t in range(steps + 1):
            if t % rec == 0 or t == steps:
                L = float(mse(model.forward(X), y)[0])  # the full-batch loss L(θ_t)
                loss0 = L if loss0 is None else loss0
                out["record_steps"].append(t)
                out["loss"].append(L)
                if not math.isfinite(L) or L > DIVERGENCE * loss0:
                    status, message = "diverged", f"loss {L:.4g} at step {t} (from {loss0:.4g}), η = {lr:.4g}, b = {b}"
                    break
            if t % every == 0 or t == steps:
                for k, v in noise_at(model, X, y).items():
                    out[k].append(v)
                out["noise_steps"].append(t)
            if t == steps:
                break
            idx = to_device(batch_indices(rng, n, b), be)
            _, dout = mse(model.forward(X[idx]), y[idx])  # ∂L_B/∂f = r_B/b
            model.backward(dout, need_dx=False)
            opt.step(model.params, model.grads)
    res = {k: np.asarray(v, dtype=float) for k, v in out.items()}
    res["sigma2_b"] = cb * res["spread"]
    return dict(res, status=status, message=message, n=n, batch=b, lr=lr, beta0=float(cell["beta0"]),
                mu0=float(cell["mu0"]), data=data.description)


def cell_name(b: int, fraction: float, seed: int, n: int) -> str:
    """``b<b>-f<c>-s<seed>`` (``bfull`` for the full batch)."""
    return f"b{'full' if b >= n else b}-f{fraction:g}-s{seed}"


def experiment_config(cell: dict) -> dict:
    """The experiment's configuration of a study's cell: its task, ``backend``, the run's keys, and the pilot's
    ``β_0`` and ``μ_0 = λ_min(Θ_0)/N`` as floats (the study hands the pilot over as the dict ``beta0``)."""
    pilot = cell["beta0"]
    cfg = {k: cell[k] for k in TASK_KEYS + ("backend",) + tuple(k for k in RUN_KEYS if k not in ("beta0", "mu0"))}
    cfg.update(beta0=float(pilot["beta"]), mu0=float(pilot["lam_min0"]) / int(pilot["n"]))
    return cfg


def study_cell(cell: dict) -> dict:
    """The ``sgd_noise`` kind's cell: :func:`sgd_cell` on :func:`experiment_config` of the study's cell."""
    return sgd_cell(experiment_config(cell))


def study_check(cell: dict, chk) -> None:
    """A study cell's settings before anything runs: a batch of at most ``n`` samples (``b = n`` is full-batch GD;
    a larger one would run as ``b = n`` while its settings say otherwise) and a model that fits in memory."""
    if cell["batch"] > cell["n"]:
        chk.fail("batch", f"at most n = {cell['n']} samples (batch = n is full-batch GD)", cell["batch"])
    check_model_fits(cell, chk)


#: The ``sgd_noise`` cell kind (:mod:`minilplr.experiments.study.kinds`): every key the cell reads, typed.
CELL_KIND = CellKind(
    name="sgd_noise", cell="minilplr.experiments.sgd_noise.cells:study_cell",
    keys={"digits": ("int_list", None), "n": ("pos_int", None),
          "data_source": ("str", ("auto", "download", "offline")),
          "preprocess": ("str", ("unit", "standardize", "raw")), "width": ("pos_int", None),
          "depth": ("pos_int", None), "init": ("str", TASK_INITS), "init_factor": ("pos_real", None),
          "seed": ("nonneg_int", None), "dtype": ("str", ("float32", "float64")),
          "hessian_iters": ("nonneg_int", None), "batch": ("pos_int", None), "sgd_seed": ("nonneg_int", None),
          "steps": ("pos_int", None), "record_every": ("pos_int", None), "noise_every": ("pos_int", None),
          "eta": ("pos_real", None), "c_beta0": ("pos_real", None)},
    defaults=dict(digits=[0, 1], data_source=None, preprocess="unit", depth=5, init="he", init_factor=None, seed=0,
                  dtype="float64", hessian_iters=20, sgd_seed=0),
    required=("width", "n", "batch", "steps", "record_every", "noise_every"),
    pilot="minilplr.experiments.lplr_map.cells:pilot_cell", pilot_keys=TASK_KEYS + ("hessian_iters", "backend"),
    pilot_always=True, beta_keys=("beta", "lam_min0", "n"),
    measures=MEASURES, summarise="minilplr.experiments.sgd_noise.summary:measures",
    replicates=("seed", "sgd_seed"), check="minilplr.experiments.sgd_noise.cells:study_check")
