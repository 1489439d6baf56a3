"""The LPLR paper's MNIST setting: one full-batch GD run with every diagnostic.

Figures 1, 2, 4, 5 and the NTK-stability figure all read runs made here:
an MLP (``784 -> H x (L-1) -> 1``, ReLU) trained by full-batch GD on the
squared loss ``L = ‖f − y‖²/(2n)`` over a binary MNIST task with labels ±1.
A run records every step (loss, ``‖∇L‖²``, step size, ``‖θ_t − θ_0‖``) and,
every ``diag_every`` steps, the NTK diagnostics: ``λ_min(Θ_t)``,
``λ_max(Θ_t)``, the NTK drift ``‖Θ_t − Θ_0‖/‖Θ_0‖`` (Frobenius and
spectral) and its absolute spectral norm ``‖Θ_t − Θ_0‖₂``, and the PL ratio
``‖∇L‖²/(2L)`` against ``λ_min(Θ_t)/n``; at the start and the end, the
Hessian's top eigenvalue ``β`` against ``1/η`` (``hessian_iters = 0``: not
computed, for runs whose β no figure reads).  After the run, the v3 PL
certificate ``μ_cert = (λ₀ − L_Θ r)/n`` and the a-priori radius ``R`` from
those measurements (:func:`minilplr.theory.certificate.run_certificate`).

Runs are cached under ``<out>/runs/<label>-<hash of the run config>/`` so
that experiments sharing a run (Fig. 1, Fig. 2 and the NTK-stability figure
all use the He run) train it once, and a killed run resumes from its
checkpoint, saved :data:`CHECKPOINTS_PER_RUN` times per run
(:func:`checkpoint_interval`).  The run config is the cache key: an
experiment that shares a run must ask for it with the same config (Fig. 4
and Fig. 5 use ``run_config(config)`` unchanged for the He run, and
leaner configs, :func:`lean_config`, only for the runs nobody else reads).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from ..theory import dynamics as _dynamics
from ..theory import ntk as _ntk
from ..theory import smoothness as _smoothness
from ..theory import spectrum as _spectrum
from ..theory import convergence as _convergence
from ..theory.certificate import run_certificate
from ..theory.dynamics import KernelMove
from ..backend import get_backend, to_device, to_host
from ..train.checkpoint import remove_checkpoint
from ..data import binary_mnist
from ..nn.models import mlp
from ..nn.params import sq_norm_on_device
from ..nn.state import float64_copy
from ..train.optim import GD
from ..train.loops import Diverged, train_gd
from ..store import load_or_discard, save_unit
from ..validate import check_int
from ..theory.verdicts import fmt
from .io import config_hash, load_results, save_results
from .timing import phase

log = logging.getLogger("minilplr.experiments")

__all__ = ["RUN_KEYS", "MNIST_PRESETS", "CHECKPOINTS_PER_RUN", "gd_run", "load_task", "run_config", "lean_config",
           "checkpoint_interval", "envelope", "mu_along_path", "settings_text", "kernel_modes_of",
           "convergence_verdicts", "theta0_norm", "init_model"]

#: The paper's MNIST setting (Sec. 6.1) and a small version of it.  The digits, n, the pixel scaling and
#: the label encoding are not in the paper: our choices, shown in every caption.
MNIST_PRESETS = {
    "paper": dict(digits=[0, 1], n=1000, data_source=None, preprocess="unit", width=2048, depth=5, init="he",
                  init_factor=None, lr=1e-3, epochs=250, seed=0, dtype="float32", diag_every=10, hessian_iters=20),
    "quick": dict(digits=[0, 1], n=200, data_source=None, preprocess="unit", width=256, depth=5, init="he",
                  init_factor=None, lr=1e-3, epochs=250, seed=0, dtype="float32", diag_every=10, hessian_iters=20),
}

#: The configuration keys that define one GD run (everything else is presentation).
RUN_KEYS = ("digits", "n", "data_source", "preprocess", "width", "depth", "init", "init_factor", "lr", "epochs",
            "seed", "dtype", "diag_every", "hessian_iters")


#: A run saves its checkpoint this many times (:func:`checkpoint_interval`): a killed run loses at most
#: ``ceil(epochs / CHECKPOINTS_PER_RUN)`` steps (50 of the paper's 250).  At width 2048 one save costs about as
#: much as one GD step, so saving every 10 steps instead would add a few percent to a run to lose at most 10.
CHECKPOINTS_PER_RUN = 5


def run_config(cfg: dict, **override) -> dict:
    """The run-defining subset of an experiment config, with overrides (e.g. ``width=64``)."""
    c = {k: cfg.get(k) for k in RUN_KEYS}
    c.update(override)
    return c


def lean_config(cfg: dict, *, beta: bool = True, every_checkpoint: bool = True, **override) -> dict:
    """:func:`run_config` with only the diagnostics a figure reads: ``beta=False`` sets ``hessian_iters = 0`` (no
    Hessian β at the start or the end); ``every_checkpoint=False`` sets ``diag_every = epochs`` (NTK diagnostics
    at ``t = 0`` and ``t = T`` only).

    The training is the same, bit for bit (diagnostics only read θ_t); the config, hence the cache key, differs,
    so use it only for runs no other experiment shares (the He run of Fig. 1, 2 and the NTK-stability figure
    keeps :func:`run_config`'s).
    """
    c = run_config(cfg, **override)
    if not beta:
        c["hessian_iters"] = 0
    if not every_checkpoint:
        c["diag_every"] = c["epochs"]
    return c


def checkpoint_interval(rc: dict) -> int:
    """Steps between checkpoint saves of the run ``rc``: ``ceil(epochs / CHECKPOINTS_PER_RUN)``, at least 1.

    Independent of ``diag_every`` (a resumed run is bit-identical whatever
    the interval: the checkpoint holds the diagnostics recorded so far) and
    not part of the cache key.
    """
    return max(1, math.ceil(int(rc["epochs"]) / CHECKPOINTS_PER_RUN))


def load_task(rc: dict):
    """The binary MNIST :class:`~minilplr.data.Dataset` of a run config (host arrays)."""
    return binary_mnist(digits=tuple(rc["digits"]), n=rc["n"], seed=rc["seed"], source=rc["data_source"] or "auto",
                        preprocess=rc["preprocess"], dtype=np.float64)


def gd_run(rc: dict, runs_dir: Path, backend=None, progress=True, label="run") -> dict:
    """Train (or load, or resume) the GD run ``rc``; returns its results (host arrays).

    Results: ``status`` ("finished" | "diverged"), ``message``, ``data``,
    ``history`` (per step), ``diag`` (per checkpoint), ``hessian``
    (``beta0``, ``betaT``, each with ``_converged``, ``_residual``, ``_tol``,
    ``_matvecs``; empty when ``rc["hessian_iters"] == 0``), ``n``, ``lr``, ``run_config``, ``certificate``
    (:func:`minilplr.theory.certificate.run_certificate`; recomputed on loading, so runs saved before it existed
    have it too).
    """
    be = get_backend(backend)
    folder = Path(runs_dir) / f"{label}-{config_hash(rc)}"
    done = load_results(folder)  # damaged: moved aside with one line, and the run is redone
    if done is not None and done.get("status") in ("finished", "diverged"):
        remove_checkpoint(folder / "checkpoint")  # left behind if a run was killed right after saving
        done["certificate"] = run_certificate(done)  # recomputed: results saved before (a field of) it existed have it too
        if "theta0_norm" not in done:  # runs saved before issue 20: θ_0 rebuilt from its seed (deterministic init)
            done["theta0_norm"] = theta0_norm(init_model(rc, be))
        if "kernel_lam" not in done:  # runs saved before issue 20: from the saved Θ_0 and r_0 units
            done.update(kernel_modes_of(load_or_discard(folder, "ntk0", log=log.warning),
                                        load_or_discard(folder, "r0", log=log.warning)))
        return done

    data = load_task(rc)
    n = data.n
    model = init_model(rc, be)
    norm0 = theta0_norm(model)
    X = to_device(data.X, be, model.dtype)
    y = to_device(data.y.reshape(-1, 1), be, model.dtype)
    lr = float(rc["lr"])
    folder.mkdir(parents=True, exist_ok=True)

    # Θ_0 (N, N) assembled in float64 whatever the training dtype: a float32 kernel could not resolve
    # λ_min below ε₃₂·N·λ_max (see minilplr.theory.spectrum, "an honest λ_min").  Computed before training, while the
    # model is still at θ_0, so a resumed run whose ntk0 unit was damaged recomputes it at θ_0, not θ_t.
    saved = load_or_discard(folder, "ntk0", log=log.warning)
    if saved is None:
        with phase("ntk"):
            K0 = _ntk.empirical_ntk(model, X, method="structured", dtype="float64")
        saved = {"ntk0": to_host(K0)}
        save_unit(folder, "ntk0", saved)
    state = {"ntk0": saved["ntk0"]}
    state["ntk0_dev"] = to_device(state["ntk0"], be)  # moved once

    move = KernelMove(state["ntk0_dev"])  # ‖Θ_0‖_F, ‖Θ_0‖₂ once per run

    @phase("ntk")
    def diagnostics(model_, t):
        K = state["ntk0_dev"] if t == 0 else _ntk.empirical_ntk(model_, X, method="structured", dtype="float64")
        spec = _spectrum.ntk_spectrum(K)
        # ntk_drift(K, Θ_0) and ‖Θ_t − Θ_0‖₂ (float64); at t = 0 all three are 0.0, as the plain expressions give
        fro, rel_spec, diff = (0.0, 0.0, 0.0) if t == 0 else move(K)
        return dict(
            lam_min=spec.lam_min if spec.resolved else float("nan"),  # never a number below the floor
            lam_min_bound=spec.lam_min_upper,
            resolved=bool(spec.resolved),
            lam_max=spec.lam_max,
            ntk_drift_fro=fro,
            ntk_drift_spec=rel_spec,
            ntk_diff_spec=diff,
        )

    @phase("hessian")
    def hessian_beta(seed, key):
        """Theorem 5.4's β = ‖∇²L‖₂ at the current θ, by Lanczos on a float64 copy, and what certifies it.

        ``{key: β, key_rayleigh (signed), key_converged, key_residual (‖Hv − λv‖/β, measured), key_tol,
        key_matvecs}``.
        ``rc["hessian_iters"]`` is the Lanczos restart budget; ``ncv = 6`` vectors (memory 6·P float64
        on the host).  On the paper's He run at θ_0, ``ncv = 6`` converges in its first cycle, 8
        Hessian–vector products, relative residual 5e-8, β = 451.823828; ``ncv = 10`` took 12 products for the
        same digits (residual 2e-11).  The figures print β to 3–6 digits, and the verdict
        needs ``η·β(1 + residual) ≤ 1``: a residual of 1e-7 is as good as 1e-11 for both.
        """
        m64 = float64_copy(model)
        top = _smoothness.hessian_top_eigenvalue(m64, X.astype(np.float64), y.astype(np.float64), tol=1e-6, ncv=6,
                                         maxiter=int(rc["hessian_iters"]), seed=seed)
        return {key: float(top.beta), f"{key}_rayleigh": float(top.rayleigh), f"{key}_converged": bool(top.converged),
                f"{key}_residual": float(top.residual), f"{key}_tol": float(top.tol),
                f"{key}_matvecs": int(top.matvecs)}

    # computed before training started; a resumed run must not redo it at θ_t.  hessian_iters = 0: no β at all
    want_beta = check_int("hessian_iters", rc["hessian_iters"], 0) > 0
    hess = (load_or_discard(folder, "hessian0", log=log.warning) or {}) if want_beta else {}
    if want_beta and not hess:
        hess.update(hessian_beta(rc["seed"], "beta0"))
        save_unit(folder, "hessian0", hess)

    r0 = load_or_discard(folder, "r0", log=log.warning)  # the residual at θ_0, for the kernel-regime prediction
    if r0 is None:
        r0 = {"r0": to_host(model.forward(X) - y).astype(np.float64)}
        save_unit(folder, "r0", r0)

    status, message = "finished", ""
    try:
        with phase("train"):  # the NTK checkpoints it calls are charged to "ntk"
            h = train_gd(model, X, y, GD(lr), steps=int(rc["epochs"]), loss="mse", diagnostics=diagnostics,
                         diag_every=int(rc["diag_every"]), checkpoint=folder / "checkpoint",
                         checkpoint_every=checkpoint_interval(rc), progress=progress,
                         desc=f"{label} (width {rc['width']})")
    except Diverged as exc:
        h, status, message = exc.history, "diverged", str(exc)
        log.warning(message)
    if status == "finished" and want_beta:
        hess.update(hessian_beta(rc["seed"] + 1, "betaT"))
    # a run resumed from a checkpoint of older code has checkpoints without ‖Θ_t − Θ_0‖₂: nan, filled in by
    # run_certificate from the relative drift
    diag = {k: np.array([d.get(k, np.nan) if k == "ntk_diff_spec" else d[k] for d in h["diag"]], dtype=float)
            for k in ("step", "lam_min", "lam_min_bound", "resolved", "lam_max", "ntk_drift_fro", "ntk_drift_spec",
                      "ntk_diff_spec")}
    if diag:
        # PL ratio ‖∇L‖²/(2L) at the checkpoints, from the per-step records at the same θ_t (L* = 0);
        # by (8) it is ≥ λ_min(Θ_t)/n exactly.  The final checkpoint (after the last update) has none.
        t = diag["step"].astype(int)
        L, g2 = np.asarray(h["loss"], float), np.asarray(h["grad_norm_sq"], float)
        inside = t < len(L)
        diag["pl_ratio0"] = np.where(inside, g2[np.minimum(t, len(L) - 1)] / (2 * L[np.minimum(t, len(L) - 1)]), np.nan)
    with phase("fits"):
        kernel_pred = (_dynamics.kernel_regime_loss(state["ntk0"], r0["r0"], lr, n, len(h["loss"]))
                       if state["ntk0"] is not None and len(h["loss"]) else np.zeros(0))
    res = dict(
        kernel_pred=kernel_pred, status=status, message=message, data=data.description, data_summary=data.summary(), n=n, lr=lr,
        run_config=rc, history={k: np.asarray(v, dtype=float) for k, v in
                                 ((k, h[k]) for k in ("loss", "grad_norm_sq", "lr", "param_drift"))},
        final_param_drift=float(h.get("final_param_drift", float("nan"))), diag=diag, hessian=hess,
        width=rc["width"], init=rc["init"],
    )
    res.update(kernel_modes_of(state, r0))
    res["theta0_norm"] = norm0
    res["certificate"] = run_certificate(res)
    save_results(folder, res)
    remove_checkpoint(folder / "checkpoint")  # finished: the saved results replace it
    return res


def init_model(rc: dict, be):
    """The run's MLP at θ_0 (its seed makes it the same every time)."""
    return mlp(784, rc["width"], rc["depth"], 1, init=rc["init"], seed=rc["seed"], dtype=rc["dtype"], backend=be,
               init_factor=rc.get("init_factor"))


def theta0_norm(model) -> float:
    """``‖θ_0‖`` (Euclidean, summed in float64): the scale an a-priori radius ``R`` is compared with."""
    return float(math.sqrt(float(to_host(sq_norm_on_device(model.params)))))


def envelope(loss0_gap: float, lr: float, mu: float, steps: int) -> np.ndarray:
    """Theorem 5.4's envelope ``(L_0 − L*)(1 − ημ)^t`` for ``t = 0 … steps-1`` (:func:`minilplr.theory.dynamics.pl_envelope`)."""
    return _dynamics.pl_envelope(np.arange(steps), lr, mu, loss0_gap)


def mu_along_path(res: dict) -> float:
    """The smallest resolved ``λ_min(Θ_t)/n`` seen over the run (the μ valid along the path)."""
    d = res["diag"]
    lam = np.asarray(d.get("lam_min", []), float)
    lam = lam[np.isfinite(lam)]
    return float(lam.min() / res["n"]) if lam.size else float("nan")


def settings_text(res: dict) -> str:
    """One line for captions: architecture, init, step size, epochs, data."""
    rc = res["run_config"]
    arch = " -> ".join(["784"] + [str(rc["width"])] * (rc["depth"] - 1) + ["1"])
    init = rc["init"] + (f" (factor {fmt(rc['init_factor'])})" if rc.get("init_factor") else
                         " (factor 1/L)" if rc["init"] == "enhanced_he" else "")
    return (f"MLP {arch} ReLU, {init} init, full-batch GD, η = {rc['lr']:g}, {rc['epochs']} epochs, "
            f"{rc['dtype']}, seed {rc['seed']}; data: {res['data']}")


def kernel_modes_of(ntk0, r0) -> dict:
    """``{"kernel_lam" (N,), "kernel_c2" (N,)}``: the terms of the kernel-regime curve of ``Θ_0``
    (:func:`minilplr.theory.convergence.kernel_modes`), from the saved ``ntk0`` and ``r0`` units; empty if either is
    missing.  What :func:`convergence_verdicts` needs for the dominance time ``t_dom``."""
    if not ntk0 or not r0 or ntk0.get("ntk0") is None or r0.get("r0") is None:
        return {}
    lam, c2 = _convergence.kernel_modes(ntk0["ntk0"], r0["r0"])
    return {"kernel_lam": lam, "kernel_c2": c2}


def convergence_verdicts(loss, lr: float, n: int, diag: dict, *, lam=None, c2=None, dtype="float32",
                         label: str = "") -> dict:
    """Theorem 5.4's three rows for one GD run, from its saved arrays (issue 20).

    ``{"envelope", "contraction", "linear"}``, each a
    :class:`~minilplr.theory.verdicts.Verdict`, and ``"t_dom"`` (the
    :class:`~minilplr.theory.convergence.DominanceTime`, or None):

    * ``envelope``: eq. (10), :func:`~minilplr.theory.convergence.envelope_bound`
      with ``μ = min_t λ_min(Θ_t)/n`` (vacuous where the envelope demands
      under a decade);
    * ``contraction``: eq. (14), the proof's step,
      :func:`~minilplr.theory.convergence.per_step_contraction` with ``μ_t``
      the smaller ``λ_min/n`` of the two NTK checkpoints around each step
      (:func:`~minilplr.theory.convergence.mu_per_step`);
    * ``linear``: :func:`~minilplr.theory.convergence.linear_convergence`
      from ``t_dom`` of ``Θ_0``'s kernel-regime curve (``lam``, ``c2``:
      :func:`kernel_modes_of`); without them the window is the second half
      and a failing ratio reads untestable.

    ``loss (T,)``, ``diag``: the run's NTK checkpoints (``step``, ``lam_min``);
    ``dtype`` the model's (the losses' rounding, ``n`` squares summed).
    """
    loss = np.asarray(loss, float)
    pre = f"{label}: " if label else ""
    steps = np.asarray(diag.get("step", []), float)
    lam_min = np.asarray(diag.get("lam_min", []), float)
    resolved = lam_min[np.isfinite(lam_min)]
    mu = float(resolved.min() / n) if resolved.size == lam_min.size and lam_min.size else float("nan")
    mu = min(mu, 1.0 / lr) if np.isfinite(mu) else mu  # ημ ≤ 1 always holds for a PL constant (μ ≤ β ≤ 1/η)
    env = _convergence.envelope_bound(loss, lr, mu, dtype=dtype, n_terms=n,
                                      claim=f"{pre}Theorem 5.4, eq. (10): L_t ≤ (1 − ημ)^t L_0 at every step, "
                                            "μ = min_t λ_min(Θ_t)/n")
    mus = (_convergence.mu_per_step(steps, lam_min, n, loss.size) if steps.size and loss.size >= 2
           else np.full(max(loss.size - 1, 1), np.nan))
    con = _convergence.per_step_contraction(loss, lr, np.minimum(mus, 1.0 / lr), dtype=dtype, n_terms=n,
                                            claim=f"{pre}Theorem 5.4, eq. (14), the proof's step: L_(t+1) ≤ "
                                                  "(1 − ημ_t) L_t at every step, μ_t = λ_min(Θ)/n at the "
                                                  "checkpoints around it")
    dom = None
    if lam is not None and c2 is not None and np.size(lam):
        dom = _convergence.dominance_time(lam, c2, lr, n)
    lin = _convergence.linear_convergence(loss, dominance=dom, dtype=dtype, n_terms=n,
                                          claim=f"{pre}GD converges linearly: L_t falls like a geometric sequence "
                                                "(L* = 0), judged after the kernel-regime dominance time t_dom")
    return dict(envelope=env, contraction=con, linear=lin, t_dom=dom)
