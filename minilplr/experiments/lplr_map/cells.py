"""The LPLR map's grid and its cells: which runs it makes, and what each one measures.

The Fig. 1 setting (an MLP ``784 -> H x 4 -> 1``, ReLU, He init, full-batch GD
on ``L = ‖f − y‖²/(2n)`` over binary MNIST, labels ±1) over widths ``H`` ×
step sizes.  A *pilot* per width measures ``β_0 = ‖∇²L(θ_0)‖₂`` (Lanczos on a
float64 copy) and the spectrum of ``Θ_0``; the width's step sizes are
``η = c/β_0`` (:func:`columns`), plus the paper's fixed ``η = 0.001``.  A
*cell* is one GD run at one width and step, recording per step the loss,
``‖∇L‖²`` and ``‖θ_t − θ_0‖``, and every ``diag_every`` steps the NTK
``Θ_t (N, N)`` in float64.  Both are sweep cells: they run where the
executor puts them (this process, ``--workers N``, ``--cluster``) and return
host data.  Why these steps and what each diagnostic means:
``docs/lplr-map.md``.
"""
from __future__ import annotations

import numpy as np

from ...backend import to_device, to_host
from ...nn.models import mlp
from ...nn.state import float64_copy
from ...nn.params import load_params
from ...theory import convergence as _convergence
from ...theory import dynamics as _dynamics
from ...theory import ntk as _ntk
from ...theory import smoothness as _smoothness
from ...theory import spectrum as _spectrum
from ...theory.certificate import run_certificate
from ...theory.dynamics import KernelMove
from ...train.loops import Diverged, train_gd
from ...train.optim import GD
from ..mnist_gd import load_task
from ..timing import phase

__all__ = ["TASK_KEYS", "BETA_KEYS", "pilot_cell", "map_cell", "hessian_top", "columns", "cell_name"]

#: The configuration keys every pilot and cell shares (the task); the grid adds ``width``, ``lr``, ``steps``, ...
TASK_KEYS = ("digits", "n", "data_source", "preprocess", "depth", "init", "init_factor", "seed", "dtype",
             "hessian_iters")
#: The Lanczos fields of a ``β`` a pilot or a cell keeps (:func:`hessian_top` reads them back).
BETA_KEYS = ("beta", "rayleigh", "matvecs", "converged", "residual", "tol")


def _model(cell: dict):
    return mlp(784, cell["width"], cell["depth"], 1, init=cell["init"], seed=cell["seed"], dtype=cell["dtype"],
               backend=cell["backend"], init_factor=cell.get("init_factor"))


def _task(cell: dict):
    """``(data, model at θ_0, X (N, 784), y (N, 1))``, X and y on the cell's backend in the model's dtype."""
    data = load_task(cell)
    model = _model(cell)
    be = model.backend
    return data, model, to_device(data.X, be, model.dtype), to_device(data.y.reshape(-1, 1), be, model.dtype)


@phase("hessian")
def _beta(model, X, y, cell: dict, seed: int) -> dict:
    """``β = ‖∇²L‖₂`` at the model's θ by Lanczos on a float64 copy, with what certifies it (host numbers).

    Six Lanczos vectors, as :func:`minilplr.experiments.mnist_gd.gd_run` (whose docstring says why).
    """
    top = _smoothness.hessian_top_eigenvalue(float64_copy(model), X.astype(np.float64), y.astype(np.float64),
                                             tol=1e-6, ncv=6, maxiter=int(cell["hessian_iters"]), seed=seed)
    return dict(beta=float(top.beta), rayleigh=float(top.rayleigh), matvecs=int(top.matvecs),
                converged=bool(top.converged), residual=float(top.residual), tol=float(top.tol))


def hessian_top(b: dict) -> _smoothness.HessianTop:
    """The :class:`~minilplr.theory.smoothness.HessianTop` of a ``β`` kept as host numbers (:data:`BETA_KEYS`)."""
    return _smoothness.HessianTop(b["beta"], b["rayleigh"], b["matvecs"], b["converged"], b["residual"], b["tol"])


def pilot_cell(cell: dict) -> dict:
    """One width's pilot: ``β_0`` (Lanczos, float64) and the spectrum of ``Θ_0 (N, N)``; host data.

    The step sizes of the width's cells are ``c/β_0``.  ``gn0 = λ_max(Θ_0)/n``
    is the Gauss–Newton part of the Hessian's top eigenvalue, printed beside
    ``β_0`` to show how well it tracks ``β`` (it is the proxy the cells
    record at every NTK checkpoint).
    """
    data, model, X, y = _task(cell)
    with phase("ntk"):
        spec = _spectrum.ntk_spectrum(_ntk.empirical_ntk(model, X, method="structured", dtype="float64"))
    b = _beta(model, X, y, cell, cell["seed"])
    return dict(b, width=int(cell["width"]), data=data.description, n=int(data.n),
                lam_min0=spec.lam_min if spec.resolved else float("nan"), lam_max0=float(spec.lam_max),
                gn0=float(spec.lam_max) / data.n)


def map_cell(cell: dict) -> dict:
    """One GD run of the map: width ``cell["width"]``, step ``cell["lr"]``; every diagnostic, as host data.

    The cell carries its pilot's ``β_0`` (``cell["beta0"]``, the dict of
    :func:`pilot_cell`'s Lanczos fields).  Returns ``status`` ("finished" |
    "diverged"), ``message``, ``loss``/``grad_norm_sq``/``param_drift`` (per
    step), ``final_param_drift``, ``diag`` (per NTK checkpoint: ``step``,
    ``lam_min`` (NaN when unresolved), ``resolved``, ``lam_max``,
    ``ntk_drift_fro``, ``ntk_drift_spec``, ``ntk_diff_spec``), ``kernel_pred``
    (the kernel-regime loss of ``Θ_0``), ``kernel_lam``, ``kernel_c2`` (its
    terms, :func:`~minilplr.theory.convergence.kernel_modes`, for the
    dominance time ``t_dom``), ``beta0``, ``betaT`` (``None`` for a
    diverged run), ``beta_peak`` (Lanczos at the NTK checkpoint ``step``,
    ``0 < step < T``, where ``λ_max(Θ_t)``, hence the Gauss–Newton proxy
    ``η·λ_max(Θ_t)/n``, peaks among the checkpoints between the two other
    Lanczos points; ``None`` for a diverged run or one without such a checkpoint),
    ``certificate`` (:func:`~minilplr.theory.certificate.run_certificate`),
    ``n``, ``lr``, ``data``.
    """
    data, model, X, y = _task(cell)
    n, lr = int(data.n), float(cell["lr"])
    with phase("ntk"):
        K0 = _ntk.empirical_ntk(model, X, method="structured", dtype="float64")  # Θ_0 (N, N), float64, device
    r0 = to_host(model.forward(X) - y).astype(np.float64)  # (N, 1) residual at θ_0
    move = KernelMove(K0)  # ‖Θ_0‖_F, ‖Θ_0‖₂ once per cell; one eigensolve per checkpoint

    peak = dict(lam_max=-np.inf, step=None, params=None)  # the checkpoint 0 < t < T where λ_max(Θ_t) peaks

    @phase("ntk")
    def diagnostics(model_, t):
        K = K0 if t == 0 else _ntk.empirical_ntk(model_, X, method="structured", dtype="float64")
        spec = _spectrum.ntk_spectrum(K)
        fro, spec_rel, diff = (0.0, 0.0, 0.0) if t == 0 else move(K)  # ntk_drift and ‖Θ_t − Θ_0‖₂, bit for bit
        if 0 < t < int(cell["steps"]) and float(spec.lam_max) > peak["lam_max"]:  # θ_t kept (one copy): Lanczos after
            peak.update(lam_max=float(spec.lam_max), step=int(t),
                        params={k: v.copy() for k, v in model_.params.items()})
        return dict(lam_min=spec.lam_min if spec.resolved else float("nan"), resolved=bool(spec.resolved),
                    lam_max=float(spec.lam_max), ntk_drift_fro=fro, ntk_drift_spec=spec_rel, ntk_diff_spec=diff)

    status, message = "finished", ""
    try:
        with phase("train"):  # the diagnostics inside charge "ntk" (the innermost phase)
            h = train_gd(model, X, y, GD(lr), steps=int(cell["steps"]), loss="mse", diagnostics=diagnostics,
                         diag_every=int(cell["diag_every"]))
    except Diverged as exc:
        h, status, message = exc.history, "diverged", str(exc)
    betaT = _beta(model, X, y, cell, cell["seed"] + 1) if status == "finished" else None
    beta_peak = None  # Lanczos where the Gauss–Newton proxy η·λ_max(Θ_t)/n peaks, unless that is t = 0 or T
    if status == "finished" and peak["step"] is not None:
        load_params(model, peak["params"])
        beta_peak = dict(_beta(model, X, y, cell, cell["seed"] + 2), step=int(peak["step"]))
    lam_k, c2_k = _convergence.kernel_modes(K0, r0)  # the kernel-regime curve's terms: its dominance time t_dom
    keys = ("step", "lam_min", "resolved", "lam_max", "ntk_drift_fro", "ntk_drift_spec", "ntk_diff_spec")
    diag = {k: np.array([d[k] for d in h["diag"]], dtype=float) for k in keys}
    hist = {k: np.asarray(h[k], dtype=float) for k in ("loss", "grad_norm_sq", "lr", "param_drift")}
    res = dict(status=status, message=message, data=data.description, n=n, lr=lr, diag=diag, history=hist,
               final_param_drift=float(h.get("final_param_drift", float("nan"))),
               hessian=dict(beta0=float(cell["beta0"]["beta"])))
    cert = run_certificate(res)
    with phase("fits"):
        kernel = (_dynamics.kernel_regime_loss(K0, r0, lr, n, hist["loss"].size) if hist["loss"].size
                  else np.zeros(0))
    return dict(status=status, message=message, data=data.description, n=n, lr=lr, width=int(cell["width"]),
                loss=hist["loss"], grad_norm_sq=hist["grad_norm_sq"], param_drift=hist["param_drift"],
                final_param_drift=res["final_param_drift"], diag=diag, kernel_pred=kernel,
                beta0=dict(cell["beta0"]), betaT=betaT, beta_peak=beta_peak, kernel_lam=lam_k, kernel_c2=c2_k,
                certificate={k: v for k, v in cert.items() if not isinstance(v, np.ndarray)})


# --------------------------------------------------------------------------- the grid


def cell_name(width: int, col: dict) -> str:
    """The cell's name (its folder under ``cells/``): ``h<width>-f<c>`` for ``η = c/β_0``, ``h<width>-lr<η>``."""
    return f"h{width}-" + (f"f{col['fraction']:g}" if col["fraction"] is not None else f"lr{col['lr']:g}")


def columns(config) -> list[dict]:
    """The grid's columns: ``{"label", "fraction", "lr"}``, one per ``c/β_0`` then one per fixed step."""
    cols = [dict(label=f"{c:g}/β₀", fraction=float(c), lr=None) for c in config["eta_fractions"]]
    cols += [dict(label=f"η={lr:g}", fraction=None, lr=float(lr)) for lr in config["fixed_lrs"]]
    return cols
