r"""The LPLR map (not in the paper; issue 13): where does GD sit in a locally PL region, and does the theorem
predict its rate?

The Fig. 1 setting — an MLP ``784 -> H x 4 -> 1``, ReLU, He init, full-batch
GD on the squared loss ``L = ‖f − y‖²/(2n)`` over binary MNIST (0 vs 1,
labels ±1) — over a grid of widths ``H`` × step sizes ``η``.  Each width's
step sizes are set from its own smoothness at initialisation,
``β_0 = ‖∇²L(θ_0)‖₂`` (Lanczos on a float64 copy, :func:`pilot_cell`):

* ``η = c/β_0`` for ``c`` in ``eta_fractions`` (default 0.1, 0.5, 0.95, 1.5, 1.9):
  well inside Theorem 5.4's ``η ≤ 1/β``, just inside it, and past it up to
  just below the edge of stability ``2/β_0``.  Not ``c = 1`` itself: there
  ``η·β_0 = 1`` exactly and the verdict "``η·β ≤ 1`` certified" would hang on
  the last digit of the Lanczos residual; 0.95 is inside with a margin;
* the paper's fixed step ``η = 0.001`` (``fixed_lrs``), whatever ``β_0`` is.

Every cell is one GD run (:func:`map_cell`, a :mod:`minilplr.sweep` cell: it runs in
this process, on ``--workers N`` or on ``--cluster``), recording per step the
loss, ``‖∇L‖²`` and ``‖θ_t − θ_0‖``, and every ``diag_every`` steps the NTK
``Θ_t (N, N)`` in float64: ``λ_min(Θ_t)`` (honest: NaN when under the
rounding floor, :mod:`minilplr.theory.spectrum`), ``λ_max(Θ_t)``, the drift
``‖Θ_t − Θ_0‖/‖Θ_0‖``.

The diagnostics of a cell (:func:`summarise`)
---------------------------------------------
* ``r2``, ``rate``: the linear-rate fit ``L_t ≈ C q^t`` with ``L* = 0`` over
  the whole run (:func:`~minilplr.experiments.fits.fit_linear_rate`);
  ``r2_late``, ``rate_late`` the same fit over the second half only (after the
  fast directions of ``Θ_0`` have converged), and ``r2_late_power`` the R² of
  a power law ``L_t ≈ C t^{−p}`` (a line in ``log t``) over the same steps;
  ``decrease = L_0/L_T``;
* ``rate_vs_kernel = log q / log q_kernel``: the fitted rate against the same
  fit of the kernel-regime curve ``L_t = Σ_i (u_iᵀr_0)²(1 − ηλ_i/n)^{2t}/(2n)``
  of ``Θ_0`` (:func:`~minilplr.theory.dynamics.kernel_regime_loss`); 1 = the
  linearised network predicts the rate;
* ``rate_vs_bound = log q / log(1 − ημ)`` with ``μ = min_t λ_min(Θ_t)/n``:
  Theorem 5.4 promises ``L_t ≤ (1 − ημ)^t L_0``, i.e. a ratio ``≥ 1``; far above
  1 the bound is true but says little about the rate; ``envelope_holds``:
  the bound itself, checked at every step;
* ``ntk_drift = max_t ‖Θ_t − Θ_0‖_F/‖Θ_0‖_F``; ``lam_ratio = min_t λ_min(Θ_t)/λ_min(Θ_0)``;
* ``eta_beta_max = max_t η·β_t`` over the **two** Lanczos checkpoints ``t = 0``
  (the pilot's ``β_0``) and ``t = T`` (the end of a finished run), and
  ``eta_gn_max = max_t η·λ_max(Θ_t)/n`` at every NTK checkpoint: the
  Gauss–Newton part of the Hessian, which is ``β`` up to the residual term
  (the pilots print both).  What two Lanczos checkpoints miss: a
  sharpening and relaxing between them (edge-of-stability oscillations, a
  catapult) — the Gauss–Newton proxy at every NTK checkpoint is there to
  show such a transient, but it is not a certificate;
* ``mu_cert = (λ₀ − L̂_Θ r)/n`` (:func:`minilplr.experiments.mnist_gd.run_certificate`,
  :mod:`minilplr.theory.certificate`), with ``L̂_Θ`` a lower estimate from the
  checkpoints and ``r`` the largest drift reached; shown as
  ``n·μ_cert/λ₀ = 1 − L̂_Θ r/λ₀`` (1: the kernel did not move; ≤ 0: refuted);
* ``diverged``: :class:`~minilplr.train.loops.Diverged` (a non-finite loss, or
  one 10⁶ times its start).

The verdicts (:func:`classify`; the thresholds are in the config's ``rules``)
----------------------------------------------------------------------------
The hypotheses, read two ways.  **On the path** (``path``) — all of:

1. ``λ_min(Θ_t)`` resolved at every NTK checkpoint (``t = 0`` included);
2. ``min_t λ_min(Θ_t)/λ_min(Θ_0) ≥ lam_ratio_min`` (0.5: the kernel kept at
   least half its smallest eigenvalue — "bounded away from 0");
3. ``η·β_t ≤ 1`` *certified* (:func:`~minilplr.theory.smoothness.step_size_condition`:
   converged Lanczos and ``η·β(1 + residual) ≤ 1``) at both Lanczos
   checkpoints; a diverged run has no ``β_T``, so only ``β_0`` is checked.

These are what the proof of Theorem 5.4 uses step by step (the PL
inequality at each iterate with ``μ = min_t λ_min(Θ_t)/n``, the descent
lemma with ``η ≤ 1/β``), measured where the run went.  **v3's** reading
(``hypotheses``) adds

4. ``μ_cert > 0``: the PL constant ``(λ₀ − L_Θ r)/n`` holds on the whole ball
   of radius ``r`` around ``θ_0`` — Weyl's worst case, which needs
   ``‖Θ_t − Θ_0‖₂ < λ_min(Θ_0)``, a relative kernel drift below ``1/κ(Θ_0)``.

**The loss** — one of:

* *diverged*;
* *too short*: ``L_0/L_T < decrease_min`` (10): over less than a decade of
  decrease any smooth decreasing curve is nearly straight on a log axis, so
  the run cannot tell linear from sublinear;
* *linear*: over the second half of the run, the geometric fit has
  ``R² ≥ r2_min`` (0.95), ``q < 1``, and fits at least as well as a power
  law (``r2_late ≥ r2_late_power``);
* *not linear*: otherwise (the reason says which test failed).

Why the second half, and why the power law.  Linear convergence means
``L_t − L* ≤ C q^t``: an upper bound by a geometric sequence, not one
straight line.  Under the kernel regime the loss is a *sum* of geometric
terms ``Σ_i c_i (1 − ηλ_i/n)^{2t}``, bent over the whole run and straight
once its fast terms have died out; a whole-run R² would call such a run
"not linear" although it converges linearly at the rate of its slowest
term.  Over a short stretch, though, any smooth curve is nearly straight,
a sublinear ``1/t`` included; so the rule also asks that the straight line
in ``t`` beat the straight line in ``log t`` on the same steps (a ``1/t``
decay is exactly a line in ``log t``).  The whole-run ``R²`` is kept as a
diagnostic (the first heat map).

**The cross-table**, "hypotheses ⇒ linear rate", for each reading:
*confirmed* (held, linear), *contradicted* (held, and not linear or
diverged), *untested* (held, too short), *vacuous* (not held: the theorem
says nothing; v3 frames it as a sufficient condition, so a linear loss
there is no contradiction).  What the theorem literally promises is the
bound ``L_t ≤ (1 − ημ)^t L_0``, a rate, not a straight line: the report
checks it at every step of every cell whose hypotheses held, and how far
the fitted rate is from it.

The data, and the cost
----------------------
Binary MNIST at ``n = 200`` for the paper preset, not Fig. 1's ``n = 1000``,
and 100 full-batch steps, not the paper's 250: every caption names ``n``, the
steps and the data used.  Measured on the 2-core machine shared with other
jobs (load 5–11), at ``n = 200``: a width-2048 GD step 0.52 s (float32), its
NTK 0.26 s, its ``β`` 39 s (13 float64 Hessian–vector products of ~3 s);
a width-2048 cell (100 steps, 11 NTKs, ``β_T``) 70–100 s, a width-1024 cell
~20 s, width ≤ 512 cells 1.5–13 s.  The paper preset's 6 pilots + 36 cells
took 838 s in one process (14 min; width 2048 is ~2/3 of it), 202 s with
``--workers 2`` on the nearly idle machine (load 1–2); ``n = 1000``
would multiply the GD and Hessian costs by ~5 and not fit 20 minutes.  The
quick preset (widths 32–256, ``n = 100``, 60 steps, 4 pilots + 24 cells)
took 29 s in one process and 52 s with ``--workers 2`` under load 7–11
(bit-identical results either way), 5 s in one process on the idle machine.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import sweep
from ..backend import get_backend, to_device, to_host
from ..nn.models import mlp
from ..theory import dynamics as _dynamics
from ..theory import ntk as _ntk
from ..theory import smoothness as _smoothness
from ..theory import spectrum as _spectrum
from ..train.loops import Diverged, train_gd
from ..train.optim import GD
from .fits import fit_line, fit_linear_rate
from .mnist_gd import KernelMove, fmt, load_task, run_certificate
from .plotting import figure, footer, plt, save
from .timing import phase

NAME = "lplr_map"
TITLE = ("not in the paper (issue 13): the LPLR map — widths × step sizes, where GD sits in a locally PL region "
         "and whether Theorem 5.4 predicts its rate")

#: The thresholds of :func:`classify` (see the module docstring).
RULES = dict(lam_ratio_min=0.5, r2_min=0.95, decrease_min=10.0,
             linear="second half: geometric fit, at least as good as a power law")
"""``linear`` names the rule for a linear loss; being part of the config, a change of rule re-derives every
verdict from the saved cells (nothing is retrained)."""

_TASK = dict(digits=[0, 1], data_source=None, preprocess="unit", depth=5, init="he", init_factor=None, seed=0,
             dtype="float32", hessian_iters=20, eta_fractions=[0.1, 0.5, 0.95, 1.5, 1.9], fixed_lrs=[1e-3],
             rules=RULES)
PRESETS = {
    "paper": dict(_TASK, n=200, widths=[64, 128, 256, 512, 1024, 2048], steps=100, diag_every=10),
    "quick": dict(_TASK, n=100, widths=[32, 64, 128, 256], steps=60, diag_every=10),
}

_TASK_KEYS = ("digits", "n", "data_source", "preprocess", "depth", "init", "init_factor", "seed", "dtype",
              "hessian_iters")


# --------------------------------------------------------------------------- the cells (run where the executor puts them)


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

    Six Lanczos vectors, as :func:`minilplr.experiments.mnist_gd.gd_run` (whose docstring has the measurement).
    """
    top = _smoothness.hessian_top_eigenvalue(_ntk.float64_copy(model), X.astype(np.float64), y.astype(np.float64),
                                             tol=1e-6, ncv=6, maxiter=int(cell["hessian_iters"]), seed=seed)
    return dict(beta=float(top.beta), rayleigh=float(top.rayleigh), matvecs=int(top.matvecs),
                converged=bool(top.converged), residual=float(top.residual), tol=float(top.tol))


def _hessian_top(b: dict) -> _smoothness.HessianTop:
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
    (the kernel-regime loss of ``Θ_0``), ``beta0``, ``betaT`` (``None`` for a
    diverged run), ``certificate`` (:func:`~minilplr.experiments.mnist_gd.run_certificate`),
    ``n``, ``lr``, ``data``.
    """
    data, model, X, y = _task(cell)
    n, lr = int(data.n), float(cell["lr"])
    with phase("ntk"):
        K0 = _ntk.empirical_ntk(model, X, method="structured", dtype="float64")  # Θ_0 (N, N), float64, device
    r0 = to_host(model.forward(X) - y).astype(np.float64)  # (N, 1) residual at θ_0
    move = KernelMove(K0)  # ‖Θ_0‖_F, ‖Θ_0‖₂ once per cell; one eigensolve per checkpoint

    @phase("ntk")
    def diagnostics(model_, t):
        K = K0 if t == 0 else _ntk.empirical_ntk(model_, X, method="structured", dtype="float64")
        spec = _spectrum.ntk_spectrum(K)
        fro, spec_rel, diff = (0.0, 0.0, 0.0) if t == 0 else move(K)  # ntk_drift and ‖Θ_t − Θ_0‖₂, bit for bit
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
                beta0=dict(cell["beta0"]), betaT=betaT,
                certificate={k: v for k, v in cert.items() if not isinstance(v, np.ndarray)})


# --------------------------------------------------------------------------- what a cell says


def _late_fits(loss):
    """Over the second half of a loss curve: the geometric fit ``L_t ≈ C q^t`` and the power law ``L_t ≈ C t^{−p}``.

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


def _geometric_late(r2_late, rate_late, r2_power, rules) -> bool:
    """The rule for a linear loss (module docstring): second half geometric, at least as good as a power law."""
    return bool(r2_late >= rules["r2_min"] and rate_late < 1 and r2_late >= r2_power)


def summarise(cell: dict) -> dict:
    """The map's diagnostics of one cell's result (:func:`map_cell`), host floats (see the module docstring).

    Pure: computed from the saved result, so a change of thresholds or of a
    diagnostic never reruns a cell.
    """
    loss = np.asarray(cell["loss"], float)
    d = {k: np.asarray(v, float) for k, v in cell["diag"].items()}
    lr, n = float(cell["lr"]), int(cell["n"])
    diverged = cell["status"] != "finished"
    fit = fit_linear_rate(loss, 0.0) if loss.size >= 3 else {"rate": float("nan"), "r2": float("nan")}
    late, power = _late_fits(loss)
    kp = np.asarray(cell["kernel_pred"], float)
    kfit = fit_linear_rate(kp, 0.0) if kp.size >= 3 else {"rate": float("nan")}
    klate, kpower = _late_fits(kp)
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
    conds = [_smoothness.step_size_condition(lr, _hessian_top(b)).holds for b in betas]
    cert = cell["certificate"]
    decrease = float(loss[0] / loss[-1]) if loss.size and loss[-1] > 0 else float("nan")
    return dict(
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
        eta_gn_max=float(lr * np.max(d["lam_max"]) / n) if d["lam_max"].size else float("nan"),
        mu_cert=float(cert["mu_cert"]), certified=bool(cert["certified"]),
        cert_fraction=float(cert["mu_cert"] * n / cert["lam0"]) if math.isfinite(cert["lam0"]) and cert["lam0"] > 0
        else float("nan"),
        final_param_drift=float(cell["final_param_drift"]) if not diverged else
        (float(cell["param_drift"][-1]) if len(cell["param_drift"]) else float("nan")),
    )


def classify(s: dict, rules: dict = RULES) -> dict:
    """The verdicts of one cell from its :func:`summarise` diagnostics: the exact rules of the module docstring.

    Returns ``path`` (bool: conditions 1–3, the hypotheses measured on the
    path), ``path_why`` (the first failing one, or "held"), ``hypotheses``
    (bool: 1–4, v3's certificate included), ``hypotheses_why``, ``loss``
    ("linear" | "not linear" | "too short" | "diverged"), ``loss_why``, and
    the cross-table entries ``verdict`` (of ``hypotheses``) and
    ``path_verdict`` (of ``path``): "confirmed" | "contradicted" | "untested" | "vacuous".
    """
    if not s["lam_resolved"]:
        path, why = False, "λ_min(Θ_t) unresolved at some checkpoint"
    elif not s["lam_ratio"] >= rules["lam_ratio_min"]:
        path, why = False, f"min λ_min(Θ_t)/λ_min(Θ_0) = {fmt(s['lam_ratio'])} < {rules['lam_ratio_min']:g}"
    elif not s["eta_beta_certified"]:
        path, why = False, (f"η·β_t ≤ 1 not certified (max η·β_t = {fmt(s['eta_beta_max'])} over "
                            f"{s['beta_checkpoints']} Lanczos checkpoint(s))")
    else:
        path, why = True, "held"
    if not path:
        held, hwhy = False, why
    elif not s["certified"]:
        held, hwhy = False, f"μ_cert ≤ 0 (n·μ_cert/λ₀ = {fmt(s['cert_fraction'])})"
    else:
        held, hwhy = True, "held"
    if s["diverged"]:
        loss, lwhy = "diverged", "the run diverged"
    elif not s["decrease"] >= rules["decrease_min"]:
        loss, lwhy = "too short", f"L_0/L_T = {fmt(s['decrease'])} < {rules['decrease_min']:g}"
    elif _geometric_late(s["r2_late"], s["rate_late"], s["r2_late_power"], rules):
        loss, lwhy = "linear", (f"second half: geometric R² = {fmt(s['r2_late'], 4)} ≥ {rules['r2_min']:g} and ≥ the "
                                f"power law's {fmt(s['r2_late_power'], 4)}, q = {fmt(s['rate_late'], 5)} < 1")
    elif not (s["r2_late"] >= rules["r2_min"] and s["rate_late"] < 1):
        loss, lwhy = "not linear", (f"second half: geometric R² = {fmt(s['r2_late'])}, q = {fmt(s['rate_late'], 5)} "
                                    f"(needs R² ≥ {rules['r2_min']:g}, q < 1)")
    else:
        loss, lwhy = "not linear", (f"second half: a power law fits better (R² {fmt(s['r2_late_power'], 4)} in log t "
                                    f"against {fmt(s['r2_late'], 4)} in t)")

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
    counts = {v: 0 for v in ("confirmed", "contradicted", "untested", "vacuous")}
    key = "verdict" if which == "hypotheses" else "path_verdict"
    for v in verdicts:
        table["held" if v[which] else "not held"][v["loss"]] += 1
        counts[v[key]] += 1
    return dict(table=table, verdicts=counts)


# --------------------------------------------------------------------------- the grid


def _cell_name(width: int, col: dict) -> str:
    return f"h{width}-" + (f"f{col['fraction']:g}" if col["fraction"] is not None else f"lr{col['lr']:g}")


def columns(config) -> list[dict]:
    """The grid's columns: ``{"label", "fraction", "lr"}``, one per ``c/β_0`` then one per fixed step."""
    cols = [dict(label=f"{c:g}/β₀", fraction=float(c), lr=None) for c in config["eta_fractions"]]
    cols += [dict(label=f"η={lr:g}", fraction=None, lr=float(lr)) for lr in config["fixed_lrs"]]
    return cols


def run(config, out_dir, backend=None, progress=True):
    be = get_backend(backend).name
    task = {k: config[k] for k in _TASK_KEYS}
    pilots = sweep.run_cells(pilot_cell, {f"h{w}": dict(task, width=int(w), backend=be) for w in config["widths"]},
                             out_dir, folder="pilots", progress=progress)
    cols = columns(config)
    cells = {}
    for w in config["widths"]:
        p = pilots[f"h{w}"]
        beta0 = {k: p[k] for k in ("beta", "rayleigh", "matvecs", "converged", "residual", "tol")}
        for col in cols:
            lr = col["lr"] if col["fraction"] is None else col["fraction"] / p["beta"]
            cells[_cell_name(w, col)] = dict(task, width=int(w), backend=be, lr=float(lr), steps=int(config["steps"]),
                                             diag_every=int(config["diag_every"]), beta0=beta0)
    done = sweep.run_cells(map_cell, cells, out_dir, folder="cells", progress=progress)
    rules = dict(RULES, **config.get("rules", {}))
    out = {}
    for name, res in done.items():
        s = summarise(res)
        out[name] = dict(summary=s, verdict=classify(s, rules), loss=res["loss"], kernel_pred=res["kernel_pred"],
                         status=res["status"], message=res["message"])
    first = next(iter(done.values()))
    return dict(status="partly diverged" if any(c["summary"]["diverged"] for c in out.values()) else "finished",
                data=first["data"], n=first["n"], widths=[int(w) for w in config["widths"]], columns=cols,
                pilots={k: dict(v) for k, v in pilots.items()}, cells=out, rules=rules,
                cross=cross_table([c["verdict"] for c in out.values()], "hypotheses"),
                cross_path=cross_table([c["verdict"] for c in out.values()], "path"),
                settings=dict(steps=int(config["steps"]), diag_every=int(config["diag_every"]), depth=config["depth"],
                              init=config["init"], dtype=config["dtype"], seed=config["seed"]))


# --------------------------------------------------------------------------- figures


def _settings(results) -> str:
    s = results["settings"]
    return (f"MLP 784 -> H x {s['depth'] - 1} -> 1 ReLU, {s['init']} init, full-batch GD, {s['steps']} steps, "
            f"NTK every {s['diag_every']}, {s['dtype']}, seed {s['seed']}; n = {results['n']}; "
            f"data: {results['data']}")


def _grid(results, key, source="summary"):
    """``(widths × columns)`` array of a summary field (NaN where absent) and the diverged mask."""
    W, C = results["widths"], results["columns"]
    val = np.full((len(W), len(C)), np.nan)
    div = np.zeros((len(W), len(C)), bool)
    for i, w in enumerate(W):
        for j, col in enumerate(C):
            c = results["cells"].get(_cell_name(w, col))
            if c is None:
                continue
            x = c[source][key]
            val[i, j] = np.nan if x is None else float(x)
            div[i, j] = bool(c["summary"]["diverged"])
    return val, div


#: The heat maps: (summary key, title, colour-bar label, colour map, log colour scale, vmin, vmax, number format).
PANELS = [
    ("r2", "geometric fit R² over the whole run (L* = 0)", "R² (the linear rule: 2nd half, see report)", "viridis", False, 0.5, 1.0, "{:.2f}"),
    ("rate_vs_kernel", "fitted rate vs kernel regime", "log q / log q_kernel  (1 = predicted)", "coolwarm", False,
     0.0, 2.0, "{:.2f}"),
    ("rate_vs_bound", "fitted rate vs theorem (1 − ημ)", "log q / log(1 − ημ)  (≥ 1: bound holds)", "magma", True,
     None, None, "{:.3g}"),
    ("ntk_drift", "NTK drift max_t ‖Θ_t − Θ_0‖_F/‖Θ_0‖_F", "relative drift (log scale)", "viridis", True, None,
     None, "{:.2g}"),
    ("lam_ratio", "min_t λ_min(Θ_t)/λ_min(Θ_0)", "ratio  (hypothesis: ≥ 0.5)", "viridis", False, 0.0, 1.2,
     "{:.2f}"),
    ("eta_beta_max", "max_t η·β_t (Lanczos at t = 0, T)", "η·β  (hypothesis: ≤ 1; EoS: 2)", "coolwarm", False, 0.0,
     2.0, "{:.2f}"),
    ("cert_fraction", "certificate n·μ_cert/λ₀ = 1 − L̂_Θ r/λ₀", "fraction of λ₀ certified  (> 0: μ_cert > 0)",
     "RdBu", False, -1.0, 1.0, "{:.3g}"),
    ("final_param_drift", "parameter drift ‖θ_T − θ_0‖", "drift (log scale)", "viridis", True, None, None,
     "{:.3g}"),
]
_VERDICTS = ["confirmed", "contradicted", "untested", "vacuous"]
_VERDICT_COLOURS = ["#4daf4a", "#e41a1c", "#ffd92f", "#bdbdbd"]


def _axes_labels(ax, results):
    ax.set_xticks(range(len(results["columns"])))
    ax.set_xticklabels([c["label"] for c in results["columns"]], fontsize=7)
    ax.set_yticks(range(len(results["widths"])))
    ax.set_yticklabels([str(w) for w in results["widths"]], fontsize=8)
    ax.set_xlabel("step size η", fontsize=8)
    ax.set_ylabel("width H", fontsize=8)
    ax.grid(False)


def _mark_diverged(ax, div):
    for i, j in zip(*np.nonzero(div)):
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.6", edgecolor="0.3", hatch="///", lw=0))
        ax.text(j, i, "×\ndiverged", ha="center", va="center", fontsize=6, color="k")


def _panel(fig, ax, results, key, title, label, cmap, log, vmin, vmax, number):
    import matplotlib.colors as mcolors
    import matplotlib.ticker as mticker

    val, div = _grid(results, key)
    show = np.where(div, np.nan, val)
    if log:
        pos = show[np.isfinite(show) & (show > 0)]
        norm = mcolors.LogNorm(pos.min(), pos.max()) if pos.size and pos.min() < pos.max() else None
        show = np.where(show > 0, show, np.nan)
    else:
        norm = mcolors.Normalize(vmin, vmax)
    cm = plt.get_cmap(cmap).with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(show), cmap=cm, norm=norm, aspect="auto")
    cb = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    cb.set_label(label, fontsize=7)
    cb.ax.tick_params(labelsize=6)
    if log:  # ticks at 1, 2, 5 × 10^k, written plainly: legible within one decade too
        cb.ax.yaxis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        cb.ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        cb.ax.yaxis.set_minor_formatter(mticker.NullFormatter())
    for i in range(val.shape[0]):
        for j in range(val.shape[1]):
            if div[i, j]:
                continue
            v = val[i, j]
            text = "n/a" if not np.isfinite(v) else number.format(v)
            rgba = im.cmap(im.norm(v)) if np.isfinite(v) and (not log or v > 0) else (1, 1, 1, 1)
            dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="w" if dark else "k")
    _mark_diverged(ax, div)
    ax.set_title(title, fontsize=9)
    _axes_labels(ax, results)


def _verdict_panel(ax, results):
    import matplotlib.colors as mcolors

    W, C = results["widths"], results["columns"]
    code = np.full((len(W), len(C)), np.nan)
    div = np.zeros(code.shape, bool)
    for i, w in enumerate(W):
        for j, col in enumerate(C):
            c = results["cells"].get(_cell_name(w, col))
            if c is None:
                continue
            v = c["verdict"]
            code[i, j] = _VERDICTS.index(v["path_verdict"])
            div[i, j] = c["summary"]["diverged"]
            short = {"linear": "lin", "not linear": "not lin", "too short": "short", "diverged": "div"}[v["loss"]]
            ax.text(j, i, f"{v['path_verdict']}\nP{'✓' if v['path'] else '✗'} C{'✓' if v['hypotheses'] else '✗'}"
                          f" {short}", ha="center", va="center", fontsize=6)
    ax.imshow(np.ma.masked_invalid(code), cmap=mcolors.ListedColormap(_VERDICT_COLOURS),
              norm=mcolors.BoundaryNorm(np.arange(-0.5, 4), 4), aspect="auto")
    for i, j in zip(*np.nonzero(div)):
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="0.3", hatch="///", lw=0))
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _VERDICT_COLOURS]
    ax.legend(handles, _VERDICTS, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("hypotheses on the path (P) ⇒ linear rate; C: μ_cert > 0", fontsize=9)
    _axes_labels(ax, results)


def plot(results, out_dir):
    """Nine heat maps (widths × step sizes), one per diagnostic, and the verdicts; from saved results only."""
    fig, axes = figure(ncols=3, nrows=3, width=5.4, height=3.6)
    for ax, panel in zip(axes, PANELS):
        _panel(fig, ax, results, *panel)
    _verdict_panel(axes[len(PANELS)], results)
    fig.suptitle("The LPLR map: where full-batch GD sits in a locally PL region (grey × = diverged; "
                 "columns c/β₀ use each width's own β₀)", fontsize=11)
    footer(fig, _settings(results) + ". " + _fixed_note(results), width=170)
    return [save(fig, Path(out_dir) / "lplr_map.png")]


def _fixed_note(results) -> str:
    parts = []
    for col in results["columns"]:
        if col["fraction"] is None:
            parts.append(f"η = {col['lr']:g} is " + ", ".join(
                f"{fmt(c['summary']['eta_beta0'], 2)}/β₀ at H={w}" for w in results["widths"]
                if (c := results["cells"].get(_cell_name(w, col)))))
    return "; ".join(parts)


# --------------------------------------------------------------------------- report


def _v3_row(results):
    """v3: at width 1024 the fixed step leaves the local regime (final drift 1.870), a smaller step keeps it (0.158)."""
    claim = ("v3 width ablation: at width 1024 the fixed step η = 0.001 leaves the local regime (final drift 1.870) "
             "while a smaller step keeps it (0.158); holds if our fixed-step cell fails the hypotheses on the path, "
             "the smallest step passes them, and its drift is smaller")
    fixed = [c for c in results["columns"] if c["fraction"] is None and abs(c["lr"] - 1e-3) < 1e-12]
    if 1024 not in results["widths"] or not fixed:
        return dict(claim=claim, measured="not in this grid (no width 1024 or no η = 0.001 column; the paper "
                                          "preset has both)", holds=None)
    cf = results["cells"][_cell_name(1024, fixed[0])]
    smaller = [(c["summary"]["lr"], name) for name, c in results["cells"].items()
               if c["summary"]["width"] == 1024 and c["summary"]["lr"] < cf["summary"]["lr"]]
    sf, vf = cf["summary"], cf["verdict"]
    text = (f"H=1024, η = 0.001 (= {fmt(sf['eta_beta0'], 2)}/β₀): final drift {fmt(sf['final_param_drift'])}, "
            f"NTK drift {fmt(sf['ntk_drift'])}, min λ_min ratio {fmt(sf['lam_ratio'])}, hypotheses on the path "
            f"{'held' if vf['path'] else 'not held (' + vf['path_why'] + ')'}")
    if not smaller:
        return dict(claim=claim, measured=text + "; no smaller step in the grid", holds=None)
    lr_s, name = min(smaller)
    cs = results["cells"][name]
    ss, vs = cs["summary"], cs["verdict"]
    text += (f"; smallest step η = {fmt(lr_s)} (= {fmt(ss['eta_beta0'], 2)}/β₀): final drift "
             f"{fmt(ss['final_param_drift'])}, NTK drift {fmt(ss['ntk_drift'])}, min λ_min ratio "
             f"{fmt(ss['lam_ratio'])}, hypotheses on the path "
             f"{'held' if vs['path'] else 'not held (' + vs['path_why'] + ')'}; n = {results['n']}, {results['settings']['steps']} steps "
             f"(v3's n and epochs are not known)")
    agree = (not vf["path"]) and vs["path"] and sf["final_param_drift"] > ss["final_param_drift"]
    return dict(claim=claim, measured=text, holds=bool(agree))


def _why_counts(cells, key) -> str:
    why = {}
    for c in cells.values():
        if not c["verdict"][key.replace("_why", "")]:
            k = c["verdict"][key].split(" (")[0].split(" = ")[0].split(" <")[0]
            why[k] = why.get(k, 0) + 1
    return ", ".join(f"{k}: {n}" for k, n in why.items()) or "—"


def _cross_row(results, which: str, claim: str) -> dict:
    cross = results["cross" if which == "hypotheses" else "cross_path"]
    t, v = cross["table"], cross["verdicts"]
    table = "; ".join(f"{h}: " + ", ".join(f"{s} {n}" for s, n in row.items()) for h, row in t.items())
    return dict(claim=claim, measured=f"confirmed {v['confirmed']}, contradicted {v['contradicted']}, untested "
                                      f"{v['untested']}, vacuous {v['vacuous']} ({table})",
                holds=(v["contradicted"] == 0) if v["confirmed"] + v["contradicted"] else None)


def report(results):
    cells = results["cells"]
    total = len(cells)
    rules = results["rules"]
    ver = [c["verdict"] for c in cells.values()]
    n_path = sum(v["path"] for v in ver)
    n_held = sum(v["hypotheses"] for v in ver)
    n_lin = sum(v["loss"] == "linear" for v in ver)
    n_div = sum(v["loss"] == "diverged" for v in ver)
    n_short = sum(v["loss"] == "too short" for v in ver)
    in_p = [c for c in cells.values() if c["verdict"]["path"]]
    env = [c["summary"]["envelope_holds"] for c in in_p]
    kern = [c["summary"]["rate_vs_kernel"] for c in in_p if not c["summary"]["diverged"]]
    near = sum(1 for k in kern if np.isfinite(k) and abs(k - 1) <= 0.2)
    lin_p = [c["summary"] for c in in_p if c["verdict"]["loss"] == "linear"]
    bent_p = [c["summary"] for c in in_p if c["verdict"]["loss"] == "not linear" and "kernel_r2_late" in c["summary"]]
    kernel_bent = [not _geometric_late(s["kernel_r2_late"], s["kernel_rate_late"], s["kernel_r2_late_power"], rules)
                   for s in bent_p]
    bound = [c["summary"]["rate_vs_bound"] for c in in_p if np.isfinite(c["summary"]["rate_vs_bound"])]
    cf = [c["summary"]["cert_fraction"] for c in cells.values() if np.isfinite(c["summary"]["cert_fraction"])]
    pil = "; ".join(f"H={p['width']}: β₀ {fmt(p['beta'])} (λ_max(Θ_0)/n {fmt(p['gn0'])}, residual "
                    f"{fmt(p['residual'], 2)}), λ_min(Θ_0) {fmt(p['lam_min0'])}" for p in results["pilots"].values())
    cap = (f"The LPLR map: {len(results['widths'])} widths × {len(results['columns'])} step sizes "
           f"({', '.join(c['label'] for c in results['columns'])}); one heat map per diagnostic, diverged cells grey "
           f"with ×; the last panel: the cross-table entry of each cell (hypotheses on the path; 'cert': v3's "
           f"μ_cert > 0). {_settings(results)}. Pilots: {pil}. {_fixed_note(results)}.")
    claims = [
        dict(claim=f"Cells where the hypotheses held on the path (λ_min(Θ_t) resolved, min_t λ_min(Θ_t)/λ_min(Θ_0) ≥ "
                   f"{rules['lam_ratio_min']:g}, η·β_t ≤ 1 certified at t = 0 and T)",
             measured=f"{n_path} of {total}; failed first on: {_why_counts(cells, 'path_why')}", holds=None),
        dict(claim="Cells where v3's hypotheses held (the above and the certificate μ_cert = (λ₀ − L_Θ r)/n > 0)",
             measured=f"{n_held} of {total}; failed first on: {_why_counts(cells, 'hypotheses_why')}; "
                      f"n·μ_cert/λ₀ = 1 − L̂_Θ r/λ₀ from {fmt(min(cf)) if cf else 'n/a'} to "
                      f"{fmt(max(cf)) if cf else 'n/a'}", holds=None),
        dict(claim=f"Cells where the loss converged linearly (not diverged, L_0/L_T ≥ {rules['decrease_min']:g}; "
                   f"over the second half a geometric fit with R² ≥ {rules['r2_min']:g}, q < 1, at least as good "
                   f"as a power law)",
             measured=f"{n_lin} of {total} ({n_div} diverged, {n_short} too short, "
                      f"{total - n_lin - n_div - n_short} not linear)", holds=None),
        _cross_row(results, "path", "Hypotheses on the path ⇒ linear rate (cross-table)"),
        _cross_row(results, "hypotheses", "v3's hypotheses (with μ_cert > 0) ⇒ linear rate (cross-table)"),
        dict(claim="Where the hypotheses held on the path, Theorem 5.4's bound L_t ≤ (1 − ημ)^t L_0 "
                   "(μ = min_t λ_min(Θ_t)/n) held at every step",
             measured=f"{sum(e is True for e in env)} of {len(env)} cells; log q / log(1 − ημ) from "
                      f"{fmt(min(bound)) if bound else 'n/a'} to {fmt(max(bound)) if bound else 'n/a'} "
                      f"(≥ 1: the bound holds; far above 1: it says little about the rate)",
             holds=bool(all(e is True for e in env)) if env else None),
        dict(claim="Where the hypotheses held on the path, the kernel regime of Θ_0 predicts the fitted rate "
                   "(log q / log q_kernel within 20% of 1, the same fit on both curves)",
             measured=f"{near} of {len(kern)} cells" + (f"; ratios {', '.join(fmt(k, 2) for k in kern)}" if kern else ""),
             holds=bool(near == len(kern)) if kern else None),
        dict(claim="Where the hypotheses held on the path and the loss did not converge linearly over the run, the "
                   "kernel regime of Θ_0 did not either (the same rule on the linearised curve): the spread of Θ_0's "
                   "spectrum, not a failure of the hypotheses, bends the loss",
             measured=(f"{sum(kernel_bent)} of {len(bent_p)} cells; second-half R² of the kernel curve, geometric "
                       "against power law: "
                       + ", ".join(f"{fmt(s['kernel_r2_late'], 4)}/{fmt(s['kernel_r2_late_power'], 4)}" for s in bent_p))
             if bent_p else "no such cell",
             holds=bool(all(kernel_bent)) if bent_p else None),
        dict(claim="Where the hypotheses held on the path, the loss is one straight line over the whole run "
                   f"(geometric fit R² ≥ {rules['r2_min']:g} from t = 0), as a single rate (1 − ημ)^t would draw it",
             measured=(f"{sum(s['r2'] >= rules['r2_min'] for s in lin_p)} of {len(lin_p)} linearly converging cells; "
                       f"whole-run R² from {fmt(min(s['r2'] for s in lin_p), 2)} to "
                       f"{fmt(max(s['r2'] for s in lin_p), 2)} (bent: a sum of geometric terms, the kernel regime)")
             if lin_p else "no such cell",
             holds=bool(all(s["r2"] >= rules["r2_min"] for s in lin_p)) if lin_p else None),
        dict(claim="Between the two Lanczos checkpoints, the Gauss–Newton proxy η·λ_max(Θ_t)/n at every NTK checkpoint "
                   "stayed ≤ 1 where the hypotheses held on the path (a sharpening the checkpoints missed would show)",
             measured=f"{sum(c['summary']['eta_gn_max'] <= 1 for c in in_p)} of {len(in_p)} cells; largest "
                      f"{fmt(max((c['summary']['eta_gn_max'] for c in in_p), default=float('nan')))}",
             holds=bool(all(c["summary"]["eta_gn_max"] <= 1 for c in in_p)) if in_p else None),
        _v3_row(results),
    ]
    return {"figures": [("lplr_map.png", cap)], "claims": claims}
