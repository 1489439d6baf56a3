r"""The architecture study's cells: one network, one full-batch GD run, every diagnostic of its PL constant.

A cell is a pure function of its configuration (:func:`architecture_cell`:
a JSON dict in, a JSON-able dict of host data out), run through
:func:`minilplr.sweep.run_cells`.  The task is Fig. 1's: binary MNIST
(``N`` images of two digits, labels ±1), squared loss ``L = ‖f − y‖²/(2N)``,
full-batch GD at ``η = c/β_0`` (``β_0 = ‖∇²L(θ_0)‖₂`` by Lanczos).

The kernel each cell measures (``Θ (N, N)``, float64)
-----------------------------------------------------
Full-batch GD moves the outputs by ``f_{t+1} − f_t ≈ −(η/N) J Jᵀ r_t`` with
``J = ∂f(X; θ)/∂θ (N, P)`` the Jacobian of **the function GD trains**, and
``‖∇L‖² = rᵀ J Jᵀ r / N² ≥ 2 (λ_min(J Jᵀ)/N) L``: ``μ = λ_min(Θ)/N`` is the
PL constant exactly when ``Θ = J Jᵀ`` of that function.

* Without batch norm the rows of ``J`` are per-sample gradients and
  ``Θ`` is the empirical NTK (:func:`minilplr.theory.ntk.empirical_ntk`, structured).
* With batch norm, GD trains the **training-mode** network: every output
  depends on every sample through the batch's ``μ`` and ``σ²``, which depend
  on ``θ``.  Its ``J`` has no per-sample view, so :func:`batch_jacobian`
  builds it row by row, one backward pass of the whole batch per seed ``e_n``
  (``N`` passes): ``Θ_batch = J Jᵀ``, the kernel of the dynamics, and the one
  whose ``λ_min/N`` is the PL constant of the loss GD descends.  This is what
  every BN row of the study reports as ``μ``.
* For comparison, at ``t = 0`` a BN cell also reports ``λ_min`` of the
  *frozen-statistics* kernel ``Θ_frozen``: the eval-mode network with its
  running statistics recalibrated on the whole batch (biased variance), which
  computes the same outputs on ``X`` as the training-mode one, but holds
  ``μ``, ``σ²`` constant in ``θ`` (:func:`frozen_kernel`).  It is the NTK the
  per-sample view can give; it is not the kernel GD follows, and the gap
  between the two is the share of the batch coupling.

The configuration (:data:`CELL_KEYS`; every key required)
---------------------------------------------------------
``digits`` (two ints), ``n`` (``N``), ``data_source`` (None: auto), ``preprocess``
(``"unit"``), ``seed`` (data subset and weights), ``dtype`` (the model's,
``"float32"``; every kernel is float64), ``backend``,
``width`` (``H``), ``depth`` (``L`` dense layers; even when ``residual``),
``residual``, ``batchnorm`` (bools: :func:`minilplr.nn.models.mlp`'s options),
``init`` (``"he"`` or ``"enhanced_he"``), ``init_factor`` (None: ``c(L) = 1/L``),
``eta_fraction`` (``c`` of ``η = c/β_0``), ``steps``, ``diag_every`` (NTK
checkpoints every so many steps, and at the end), ``hessian_iters`` (Lanczos
iterations for ``β_0``).

The result (:func:`architecture_cell`) holds ``status``, ``message``, ``n``, ``lr``,
``beta0`` (the Lanczos fields), ``loss`` (per step), ``diag`` (per checkpoint:
``step``, ``lam_min`` (NaN when unresolved), ``lam_max``, ``ntk_drift``),
``lam_min_frozen0`` (BN cells; NaN otherwise), ``kernel_pred`` (the
kernel-regime loss of ``Θ_0``), ``infinite`` (plain MLP without BN:
``λ_min`` of ``Θ_∞`` and of the layer-wise rescaled ``Θ̃_0``; else None),
``kernel`` (which kernel ``diag`` measured), ``data``.

As a study (``kind = "architecture"``, ``studies/architecture.toml``): :data:`CELL_KIND`
declares every key of :data:`CELL_KEYS` but ``backend`` (typed), no pilot (the cell
measures ``β_0`` itself; its step is ``eta_fraction``, so the kind takes no
``eta``/``c_beta0``), and the named measures of :data:`.summary.MEASURES`.
"""
from __future__ import annotations

import numpy as np

from ...backend import to_device, to_host
from ...nn import params as _params
from ...nn.batchnorm import BatchNorm1D, recalibrate_batchnorm
from ...nn.models import mlp, residual_depth_ok
from ...nn.state import float64_copy, iter_layers, named_buffers, untouched
from ...theory import dynamics as _dynamics
from ...theory import infinite_ntk as _inf
from ...theory import ntk as _ntk
from ...theory import ntk_shares as _shares
from ...theory import smoothness as _smoothness
from ...theory import spectrum as _spectrum
from ...theory.dynamics import KernelMove
from ...train.loops import Diverged, train_gd
from ...train.optim import GD
from ..mnist_gd import load_task
from ..study.kinds import CellKind, check_model_fits
from ..timing import phase
from .summary import MEASURES

__all__ = ["CELL_KEYS", "CELL_KIND", "architecture_cell", "batch_jacobian", "frozen_kernel", "kernel", "arch_name"]

#: Every key a cell's configuration holds (the module docstring says what each means).
CELL_KEYS = ("digits", "n", "data_source", "preprocess", "seed", "dtype", "backend", "width", "depth", "residual",
             "batchnorm", "init", "init_factor", "eta_fraction", "steps", "diag_every", "hessian_iters")


def arch_name(residual: bool, batchnorm: bool, init: str) -> str:
    """The architecture's label in tables and legends: ``plain``/``residual``, ``+BN``, ``He``/``eHe``."""
    return ("residual" if residual else "plain") + ("+BN" if batchnorm else "") + (" eHe" if init == "enhanced_he"
                                                                                   else " He")


def _model(cell: dict):
    return mlp(784, cell["width"], cell["depth"], 1, init=cell["init"], seed=cell["seed"], dtype=cell["dtype"],
               backend=cell["backend"], init_factor=cell["init_factor"], residual=bool(cell["residual"]),
               batchnorm=bool(cell["batchnorm"]))


def _has_bn(model) -> bool:
    return any(isinstance(layer, BatchNorm1D) for layer in iter_layers(model))


def batch_jacobian(model, X):
    r"""``J = ∂f(X; θ)/∂θ`` ``(N·K, P)`` of the network *as it computes on the batch* ``X (N, D)``, row by row.

    Row ``i·K + k`` is the gradient of output ``k`` of sample ``i``, found by
    one backward pass of the whole batch with the seed ``e_{ik}`` (ones at
    ``(i, k)``, zeros elsewhere): ``backward`` returns
    :math:`\sum_{j,k'} e_{ik}[j,k']\,\partial f_{k'}(x_j)/\partial\theta = \partial f_k(x_i)/\partial\theta`
    including, in training-mode batch norm, the terms through the batch
    statistics (which the per-sample view of :func:`minilplr.theory.ntk.jacobian`
    cannot hold).  In evaluation mode, or without batch norm, it equals that
    Jacobian (tested).  ``N·K`` backward passes after one forward pass (a
    backward pass reads what forward kept and changes none of it); the
    model is left untouched (:func:`~minilplr.nn.state.untouched`: the
    training-mode forward pass moves the running statistics).
    """
    with untouched(model):
        out = model.forward(X)
        n, k = out.shape
        xp = model.backend.xp
        rows = []
        for i in range(n):
            for j in range(k):
                seed = xp.zeros_like(out)
                seed[i, j] = 1.0  # e_ik
                model.backward(seed, need_dx=False)
                rows.append(_params.flatten(model.grads))  # ∂f_k(x_i)/∂θ  (P,)
        return xp.stack(rows, axis=0)


def frozen_kernel(model, X):
    r"""The frozen-statistics NTK ``(N, N)`` float64 of a batch-norm network on ``X (N, D)`` (host-free, device).

    A float64 copy, its running statistics recalibrated on ``X`` as one batch
    (:func:`~minilplr.nn.batchnorm.recalibrate_batchnorm`) and the variance
    scaled back from unbiased to biased (``×(N−1)/N``), in evaluation mode:
    it computes on ``X`` exactly the training-mode outputs, with ``μ``, ``σ²``
    held constant in ``θ``.  Its empirical NTK, by the per-sample rules.
    """
    twin = float64_copy(model)
    X64 = X.astype(np.float64)
    n = int(X.shape[0])
    recalibrate_batchnorm(twin, X64, batch_size=n)
    for name, b in named_buffers(twin).items():
        if name.endswith("running_var"):
            b *= (n - 1) / n  # unbiased -> biased: what training mode divides by
    twin.eval()
    return _ntk.empirical_ntk(twin, X64, method="structured", dtype="float64")


def kernel(model, X):
    """``Θ = J Jᵀ (N, N)`` float64 of the function GD trains (module docstring): the NTK, or ``Θ_batch`` with BN."""
    if not _has_bn(model):
        return _ntk.empirical_ntk(model, X, method="structured", dtype="float64")
    J = batch_jacobian(float64_copy(model), X.astype(np.float64))
    return J @ J.T


@phase("hessian")
def _beta(model, X, y, cell: dict) -> dict:
    """``β_0 = ‖∇²L(θ_0)‖₂`` by Lanczos on a float64 copy (six Lanczos vectors, as the LPLR map's pilots)."""
    top = _smoothness.hessian_top_eigenvalue(float64_copy(model), X.astype(np.float64), y.astype(np.float64),
                                             tol=1e-6, ncv=6, maxiter=int(cell["hessian_iters"]), seed=cell["seed"])
    return dict(beta=float(top.beta), rayleigh=float(top.rayleigh), matvecs=int(top.matvecs),
                converged=bool(top.converged), residual=float(top.residual))


def _infinite(model, X, depth: int) -> dict:
    r"""Plain MLP without BN: ``λ_min(Θ_∞)`` (the analytic kernel at the model's ``σ²``, depth ``L``) and
    ``λ_min(Θ̃_0)``, the finite-width kernel in the same (NTK) scaling (:func:`~minilplr.theory.ntk_shares.scaled_empirical_ntk`)."""
    X64 = X.astype(np.float64)
    wv = _shares.model_weight_var(model)
    s_inf = _spectrum.ntk_spectrum(_inf.infinite_ntk(X64, depth, weight_var=wv))
    s_fin = _spectrum.ntk_spectrum(_shares.scaled_empirical_ntk(float64_copy(model), X64, "ntk"))
    return dict(lam_min_inf=s_inf.lam_min if s_inf.resolved else float("nan"), lam_max_inf=float(s_inf.lam_max),
                lam_min_scaled0=s_fin.lam_min if s_fin.resolved else float("nan"),
                lam_max_scaled0=float(s_fin.lam_max), weight_var=float(wv))


def architecture_cell(cell: dict) -> dict:
    """One architecture at one depth: ``β_0``, ``η = c/β_0``, GD, the kernel along the way; host data (module docstring)."""
    missing = [k for k in CELL_KEYS if k not in cell]
    if missing:
        raise ValueError(f"cell: missing configuration keys {missing} (minilplr.experiments.architecture.cells)")
    data = load_task(cell)
    model = _model(cell)
    be = model.backend
    X = to_device(data.X, be, model.dtype)
    y = to_device(data.y.reshape(-1, 1), be, model.dtype)
    n, bn = int(data.n), _has_bn(model)
    beta0 = _beta(model, X, y, cell)
    lr = float(cell["eta_fraction"]) / beta0["beta"]
    with phase("ntk"):
        K0 = kernel(model, X)
        lam_frozen0 = float("nan")
        if bn:
            s = _spectrum.ntk_spectrum(frozen_kernel(model, X))
            lam_frozen0 = s.lam_min if s.resolved else float("nan")
        infinite = None if (bn or cell["residual"]) else _infinite(model, X, int(cell["depth"]))
    with untouched(model):
        r0 = to_host(model.forward(X) - y).astype(np.float64)  # (N, 1) residual at θ_0 (as GD's first step sees it)
    move = KernelMove(K0)

    @phase("ntk")
    def diagnostics(model_, t):
        K = K0 if t == 0 else kernel(model_, X)
        spec = _spectrum.ntk_spectrum(K)
        fro = 0.0 if t == 0 else move(K)[0]
        return dict(lam_min=spec.lam_min if spec.resolved else float("nan"), lam_max=float(spec.lam_max),
                    ntk_drift=fro)

    status, message = "finished", ""
    try:
        with phase("train"):
            h = train_gd(model, X, y, GD(lr), steps=int(cell["steps"]), loss="mse", diagnostics=diagnostics,
                         diag_every=int(cell["diag_every"]))
    except Diverged as exc:
        h, status, message = exc.history, "diverged", str(exc)
    diag = {k: np.array([d[k] for d in h["diag"]], dtype=float) for k in ("step", "lam_min", "lam_max", "ntk_drift")}
    loss = np.asarray(h["loss"], dtype=float)
    with phase("fits"):
        kp = _dynamics.kernel_regime_loss(K0, r0, lr, n, loss.size) if loss.size else np.zeros(0)
    return dict(status=status, message=message, data=data.description, n=n, lr=lr, beta0=beta0, loss=loss,
                diag=diag, lam_min_frozen0=float(lam_frozen0), kernel_pred=kp, infinite=infinite,
                kernel="batch (training-mode J Jᵀ, N backward passes)" if bn else "empirical NTK (structured)",
                config={k: cell[k] for k in CELL_KEYS})



def study_check(cell: dict, chk) -> None:
    """A study cell's settings before anything runs: a residual network's even depth (the check
    :func:`~minilplr.nn.models.mlp` makes) and a model that fits in memory."""
    if not residual_depth_ok(cell["depth"], cell["residual"]):
        chk.fail("depth", "an even depth >= 2 with residual = true (fc1, (depth - 2)/2 blocks of two dense layers, "
                 "the output layer)", cell["depth"])
    check_model_fits(cell, chk)


#: The ``architecture`` cell kind (:mod:`minilplr.experiments.study.kinds`): the cell's keys, typed.
CELL_KIND = CellKind(
    name="architecture", cell="minilplr.experiments.architecture.cells:architecture_cell",
    keys={"digits": ("int_list", None), "n": ("pos_int", None),
          "data_source": ("str", ("auto", "download", "offline")),
          "preprocess": ("str", ("unit", "standardize", "raw")), "seed": ("nonneg_int", None),
          "dtype": ("str", ("float32", "float64")), "width": ("pos_int", None), "depth": ("pos_int", None),
          "residual": ("bool", None), "batchnorm": ("bool", None), "init": ("str", ("he", "enhanced_he")),
          "init_factor": ("pos_real", None), "eta_fraction": ("pos_real", None), "steps": ("pos_int", None),
          "diag_every": ("pos_int", None), "hessian_iters": ("nonneg_int", None)},
    defaults=dict(digits=[0, 1], data_source=None, preprocess="unit", seed=0, dtype="float32", residual=False,
                  batchnorm=False, init="he", init_factor=None, eta_fraction=0.5, hessian_iters=20),
    required=("width", "n", "depth", "steps", "diag_every"), step_size=False,
    measures=MEASURES, summarise="minilplr.experiments.architecture.summary:measures",
    check="minilplr.experiments.architecture.cells:study_check")
