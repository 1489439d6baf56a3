r"""The PL certificate of the LPLR paper's v3, measured along a GD run.

THEORY.md, "The v3 PL certificate, measured along a run".

The v3 abstract (May 2026) states the local PL constant as

.. math:: \mu \;=\; \lambda_0 - L_\Theta\, r(R) \;>\; 0

(divided by ``N`` in our normalisation ``L = ‖r‖²/(2N)``): ``λ₀`` the
smallest eigenvalue of the NTK ``Θ (N·K, N·K)`` at initialisation,
``L_Θ`` the Lipschitz constant of ``θ ↦ Θ(θ)`` on the region, ``r`` the
region's radius.  Why it works: on the ball ``‖θ − θ_0‖ ≤ r``,
``‖Θ(θ) − Θ_0‖₂ ≤ L_Θ r``, and Weyl's inequality moves no eigenvalue by
more than that, so ``λ_min(Θ(θ)) ≥ λ₀ − L_Θ r`` and steps (6)–(9) give the PL
inequality with ``μ = (λ₀ − L_Θ r)/N`` everywhere on the ball.

What is here, each one equation:

* :func:`ntk_lipschitz_estimate` — ``L̂_Θ = max_t ‖Θ_t − Θ_0‖₂ / ‖θ_t − θ_0‖``
  over the run's NTK checkpoints;
* :func:`pl_certificate` -> :class:`Certificate` — ``μ_cert = (λ₀ − L̂_Θ r)/N``
  and whether it is positive;
* :func:`a_priori_radius` — ``R = 2√(2β(L₀ − L*))/μ``, how far GD can go
  if the PL inequality holds with ``μ`` all along;
* :func:`path_length` — ``Σ_t η_t ‖∇L_t‖``, the bound on the drift that the
  radius argument starts from;
* :func:`run_certificate` — all of them from one GD run's record (its NTK
  checkpoints, drifts, losses and ``β_0``), as the experiments report them.

What a measured certificate means
---------------------------------
Every checkpoint ``θ_t`` lies in any region that contains the path, so each
ratio ``‖Θ_t − Θ_0‖₂/‖θ_t − θ_0‖`` is at most the true ``L_Θ``: the estimate
``L̂_Θ`` is a **lower** estimate of the Lipschitz constant (pairs of points
off the path, or between checkpoints, may be worse).  Hence ``μ_cert`` is an
**upper** estimate of the constant the v3 certificate gives:

* ``μ_cert ≤ 0``: the certificate fails for sure (the true one is smaller still);
* ``μ_cert > 0``: *consistent* with a PL region around the path, measured on
  the path — not a proof;
* ``λ₀`` unresolved (below the rounding floor of :mod:`.spectrum`): no certificate.

The certificate is also never better than what the run itself saw: since
``r ≥ ‖θ_t − θ_0‖`` at every checkpoint, ``L̂_Θ r ≥ ‖Θ_t − Θ_0‖₂`` and Weyl give
``N·μ_cert ≤ λ₀ − ‖Θ_t − Θ_0‖₂ ≤ λ_min(Θ_t)`` for every ``t`` — a worst case
over the ball, where the measured ``λ_min(Θ_t)/N`` is the value on the path.

Imports numpy and :mod:`minilplr.validate` only; all inputs are host numbers.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..validate import check_int, check_positive, check_real

__all__ = ["ntk_lipschitz_estimate", "Certificate", "pl_certificate", "a_priori_radius", "path_length",
           "run_certificate"]


def _host_vector(name: str, x) -> np.ndarray:
    """``x`` as a 1-D host float64 array of finite, non-negative values, or ``ValueError`` naming ``name``."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a 1-D array of non-negative numbers, got {type(x).__name__}") from None
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array (one value per checkpoint or step), got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name}: expected finite non-negative values, got {a[~(np.isfinite(a) & (a >= 0))][:3]}")
    return a


def _real_or_nan(name: str, value) -> float:
    """``value`` as a float: a finite real number or ``nan`` (unmeasured), else ``ValueError`` naming ``name``."""
    try:
        if isinstance(value, (float, np.floating)) and math.isnan(value):
            return float("nan")
    except TypeError:
        pass
    return check_real(name, value)


# --------------------------------------------------------------------------- L_Θ


def ntk_lipschitz_estimate(ntk_diff_spec, param_drift) -> float:
    r"""A lower estimate of the NTK's Lipschitz constant ``L_Θ`` from a run's checkpoints.

    .. math:: \hat L_\Theta = \max_{t:\ \lVert\theta_t-\theta_0\rVert > 0}
              \frac{\lVert\Theta_t - \Theta_0\rVert_2}{\lVert\theta_t - \theta_0\rVert}
              \;\le\; L_\Theta

    Assumption 5.2 / v3: ``‖Θ(θ) − Θ(θ')‖₂ ≤ L_Θ ‖θ − θ'‖`` on the region.
    Each checkpoint is one pair ``(θ_t, θ_0)`` of points of the region, so the
    maximum is a lower estimate of ``L_Θ``: pairs not measured can only raise
    it.  With no checkpoint away from ``θ_0`` nothing was measured: ``nan``
    (not ``0``, which would certify any radius).

    Parameters
    ----------
    ntk_diff_spec : array (T,), ``‖Θ_t − Θ_0‖₂`` at each checkpoint (absolute, not relative)
    param_drift : array (T,), ``‖θ_t − θ_0‖`` at the same checkpoints

    Returns
    -------
    float, ``L̂_Θ ≥ 0``, or ``nan`` when no checkpoint has moved.

    Raises ``ValueError`` if a checkpoint has ``θ_t = θ_0`` but ``Θ_t ≠ Θ_0``
    (an infinite ratio: the two arrays are not aligned, or Θ is not a function of θ).
    """
    d = _host_vector("ntk_diff_spec", ntk_diff_spec)
    r = _host_vector("param_drift", param_drift)
    if d.shape != r.shape:
        raise ValueError(f"param_drift: expected one value per checkpoint, shape {d.shape} like ntk_diff_spec, "
                         f"got {r.shape}")
    still = r == 0
    if (d[still] > 0).any():
        t = int(np.flatnonzero(still & (d > 0))[0])
        raise ValueError(f"ntk_diff_spec: checkpoint {t} has ‖θ_t − θ_0‖ = 0 but ‖Θ_t − Θ_0‖₂ = {d[t]:.3g} > 0 "
                         f"(an infinite Lipschitz ratio: are the two arrays aligned?)")
    moved = ~still
    return float((d[moved] / r[moved]).max()) if moved.any() else float("nan")


# --------------------------------------------------------------------------- μ = (λ₀ − L_Θ r)/n


class Certificate(NamedTuple):
    """The v3 PL certificate ``μ_cert = (λ₀ − L_Θ r)/N`` and what it rests on.

    ``mu_cert`` is ``nan`` when ``λ₀`` is unresolved; ``certified`` is true
    only for a resolved ``λ₀`` and ``μ_cert > 0``.  With ``L_Θ`` a lower
    estimate (:func:`ntk_lipschitz_estimate`), ``certified`` reads
    "consistent with a PL region of radius ``r``, measured on the path",
    ``not certified`` with a finite ``mu_cert`` reads "refuted".
    """

    mu_cert: float
    lam0: float
    L_theta: float
    r: float
    n: int
    certified: bool
    rests_on: str

    @property
    def radius_max(self) -> float:
        r"""The largest radius this ``λ₀`` and ``L_Θ`` certify: ``ρ* = λ₀/L_Θ``, where ``μ_cert(ρ)`` reaches 0.

        .. math:: \mu_{\rm cert}(\rho) = \frac{\lambda_0 - L_\Theta\,\rho}{N} > 0 \iff \rho < \rho^* = \frac{\lambda_0}{L_\Theta}

        With ``L_Θ`` a lower estimate, ``ρ*`` is an upper estimate; ``inf`` for
        ``L_Θ = 0`` (a kernel that does not move), ``nan`` without a certificate's inputs.
        """
        if math.isnan(self.lam0) or math.isnan(self.L_theta):
            return float("nan")
        return self.lam0 / self.L_theta if self.L_theta > 0 else math.inf


def pl_certificate(lam0, L_theta: float, r: float, n: int) -> Certificate:
    r"""v3's PL constant on the ball ``‖θ − θ_0‖ ≤ r``, in our normalisation.

    .. math:: \mu_{\rm cert} = \frac{\lambda_0 - L_\Theta\, r}{N}, \qquad
              \text{certified} \iff \mu_{\rm cert} > 0

    From Weyl: ``λ_min(Θ(θ)) ≥ λ_min(Θ_0) − ‖Θ(θ) − Θ_0‖₂ ≥ λ₀ − L_Θ r`` on the
    ball, and (6)–(9): ``½‖∇L‖² ≥ (λ_min(Θ(θ))/N) L``.

    Parameters
    ----------
    lam0 : float or None, ``λ_min(Θ_0)``; ``None`` or ``nan`` = unresolved (no certificate)
    L_theta : float ≥ 0, the NTK's Lipschitz constant (or its lower estimate); ``nan`` = not
        measured (no certificate)
    r : float ≥ 0, the radius (for a run: the largest drift ``‖θ_t − θ_0‖`` reached)
    n : int ≥ 1, samples ``N``

    Returns
    -------
    Certificate
    """
    r = check_positive("r", r, allow_zero=True)
    n = check_int("n", n, 1)
    lam = float("nan") if lam0 is None else _real_or_nan("lam0", lam0)
    L_theta = _real_or_nan("L_theta", L_theta)
    if L_theta < 0:
        raise ValueError(f"L_theta: expected a non-negative Lipschitz constant (or nan: not measured), got {L_theta!r}")
    if math.isnan(lam):
        return Certificate(float("nan"), lam, L_theta, r, n, False,
                           "λ_min(Θ_0) unresolved (below the rounding floor): no certificate")
    if math.isnan(L_theta):
        return Certificate(float("nan"), lam, L_theta, r, n, False,
                           "L_Θ not measured (no NTK checkpoint away from θ_0): no certificate")
    mu = (lam - L_theta * r) / n
    if mu > 0:
        why = (f"λ₀ = {lam:.4g} > L_Θ·r = {L_theta * r:.4g}; L_Θ is a lower estimate (checkpoints on the path), "
               "so this is consistent with a PL region of radius r, not a proof")
    else:
        why = (f"λ₀ = {lam:.4g} ≤ L_Θ·r = {L_theta * r:.4g}; L_Θ is a lower estimate, so the true certificate "
               "is no better: refuted")
    return Certificate(mu, lam, L_theta, r, n, bool(mu > 0), why)


# --------------------------------------------------------------------------- how far GD can go


def a_priori_radius(beta: float, loss_gap0: float, mu: float) -> float:
    r"""The radius the linear-rate proof confines GD to: ``R = 2√(2β(L₀ − L*))/μ``.

    .. math:: R = \frac{2\sqrt{2\beta\,(L_0 - L^*)}}{\mu}

    Derivation (GD ``θ_{t+1} = θ_t − η∇L_t`` with ``η ≤ 1/β``, ``ημ ≤ 1``, and
    the PL inequality with ``μ`` at every iterate):

    1. triangle inequality: ``‖θ_T − θ_0‖ ≤ Σ_{t<T} η‖∇L_t‖`` (:func:`path_length`);
    2. β-smoothness, ``L* ≤ L(θ − ∇L/β) ≤ L − ‖∇L‖²/(2β)``: ``‖∇L_t‖² ≤ 2β(L_t − L*)``;
    3. the linear rate (10): ``L_t − L* ≤ (1 − ημ)^t (L₀ − L*)``;

    so, with ``q = √(1 − ημ)`` and ``Δ₀ = L₀ − L*``,

    .. math:: \lVert\theta_T-\theta_0\rVert \le \eta\sqrt{2\beta\Delta_0}\sum_{t\ge 0} q^t
              = \frac{\eta\sqrt{2\beta\Delta_0}}{1-\sqrt{1-\eta\mu}}
              \le \frac{\eta\sqrt{2\beta\Delta_0}}{\eta\mu/2} = R,

    using ``1 − √(1 − x) ≥ x/2`` on ``[0, 1]``.  ``R`` does not depend on ``η``
    nor on ``T``: a bound for the whole run.  The argument is circular unless
    the PL inequality holds on the ball of radius ``R`` — the v3 hypothesis
    that the iterates stay in the region; with the certificate,
    ``R(μ_cert) ≤ r`` would close it.

    Parameters
    ----------
    beta : float > 0, smoothness constant ``β``
    loss_gap0 : float ≥ 0, ``L₀ − L*`` (with ``L* = 0`` for an interpolating squared loss
        this is an upper estimate, so ``R`` too)
    mu : float > 0, PL constant

    Returns
    -------
    float, ``R``
    """
    beta = check_positive("beta", beta)
    gap = check_positive("loss_gap0", loss_gap0, allow_zero=True)
    mu = check_positive("mu", mu)
    return 2.0 * math.sqrt(2.0 * beta * gap) / mu


def path_length(eta, grad_norm_sq) -> float:
    r"""The length of GD's path, ``Σ_t η_t ‖∇L_t‖``: a bound on the drift it reaches.

    .. math:: \lVert\theta_T - \theta_0\rVert = \Big\lVert\sum_{t<T}\eta_t\nabla L_t\Big\rVert
              \le \sum_{t<T}\eta_t\,\lVert\nabla L_t\rVert

    (the triangle inequality; step 1 of :func:`a_priori_radius`).  Every
    drift reached by step ``T`` is at most the length of the first ``T`` steps.

    Parameters
    ----------
    eta : float or array (T,), step sizes ``η_t`` (a float: the same at every step)
    grad_norm_sq : array (T,), ``‖∇L_t‖²`` as the training loops record it

    Returns
    -------
    float
    """
    g2 = _host_vector("grad_norm_sq", grad_norm_sq)
    if np.ndim(eta) == 0:
        steps = np.full(g2.shape, check_positive("eta", eta))
    else:
        steps = _host_vector("eta", eta)
        if steps.shape != g2.shape:
            raise ValueError(f"eta: expected one step size per step, shape {g2.shape} like grad_norm_sq, "
                             f"got {steps.shape}")
    return float((steps * np.sqrt(g2)).sum())


# --------------------------------------------------------------------------- along one run


def _checkpoint_drift(res: dict, steps: np.ndarray) -> np.ndarray:
    """``‖θ_t − θ_0‖`` at each NTK checkpoint ``t``, from the per-step history.

    The loop calls the diagnostics at step ``t`` *before* the update, at the
    same ``θ_t`` as ``history["param_drift"][t]``; the last checkpoint
    (``t = T``, after the last update) is ``final_param_drift``.  A diverged
    run's last checkpoint has no drift recorded: ``nan``.
    """
    drift = np.asarray(res["history"]["param_drift"], float)
    final = float(res.get("final_param_drift", float("nan")))
    t = steps.astype(int)
    out = np.full(t.shape, np.nan)
    inside = t < drift.size
    out[inside] = drift[t[inside]]  # diagnostics(θ_t) and param_drift[t] see the same θ_t
    out[t == drift.size] = final  # the checkpoint after the last update
    return out


def run_certificate(res: dict) -> dict:
    """The v3 PL certificate and the a-priori radius, from one GD run's measurements (this module's equations).

    ``res`` is the run's record, host data, as :func:`minilplr.experiments.mnist_gd.gd_run` and the LPLR
    map's cells keep it: ``n`` (samples ``N``); ``history`` with ``loss``, ``grad_norm_sq``, ``lr`` and
    ``param_drift`` per step, arrays ``(T,)`` (:func:`minilplr.train.loops.train_gd`'s records);
    ``final_param_drift`` (``‖θ_T − θ_0‖`` after the last step, optional); ``diag`` per NTK checkpoint,
    arrays ``(C,)``: ``step``, ``lam_min`` (NaN where unresolved), ``lam_max``, ``ntk_diff_spec``
    (``‖Θ_t − Θ_0‖₂``; or only ``ntk_drift_spec`` for runs saved before it was recorded); ``hessian`` with
    ``beta0`` (optional: β at ``θ_0``).  What comes back:

    * ``L_theta``: :func:`~minilplr.theory.certificate.ntk_lipschitz_estimate` over the NTK
      checkpoints, a *lower* estimate of the NTK's Lipschitz constant (pairs
      off the path, or between checkpoints, are not measured);
    * ``r``: the largest drift ``‖θ_t − θ_0‖`` reached at any step;
    * ``mu_cert = (λ₀ − L_Θ r)/N`` and ``certified`` (:func:`~minilplr.theory.certificate.pl_certificate`);
      with ``L_Θ`` underestimated, ``μ_cert ≤ 0`` refutes the certificate for
      sure and ``μ_cert > 0`` is only consistent with a PL region;
    * ``R = 2√(2β(L₀ − L*))/μ`` (:func:`~minilplr.theory.certificate.a_priori_radius`)
      with ``β = beta0`` (the Hessian's top eigenvalue at ``θ_0``), ``L* = 0``
      and ``μ = λ₀/N``: the radius the proof would give if the PL inequality
      held with the kernel's own constant at initialisation, the value the
      run starts with and the most optimistic one (NaN, and ``beta_source``
      says "not measured", for a run made without β, ``hessian_iters = 0``); ``R_cert`` the same with
      ``μ_cert`` when positive (the radius the certificate itself implies;
      ``closes`` says whether ``R_cert ≤ r``, i.e. the argument closes on
      the measured region); ``radius_max = λ₀/L_Θ``, the largest radius the
      measurements could certify (an upper estimate);
    * ``path_length = Σ_t η_t‖∇L_t‖`` (:func:`~minilplr.theory.certificate.path_length`),
      an upper bound of every drift.

    Runs saved before ``‖Θ_t − Θ_0‖₂`` was recorded get it as the relative
    spectral drift times ``‖Θ_0‖₂ = λ_max(Θ_0)`` (Θ_0 is PSD), which is what
    the relative drift was divided by; ``diff_source`` says which.
    """
    d, h, n = res["diag"], res["history"], int(res["n"])
    steps = np.asarray(d.get("step", []), float)
    drift_t = _checkpoint_drift(res, steps)
    diff = np.asarray(d.get("ntk_diff_spec", np.full(steps.shape, np.nan)), float)
    missing = ~np.isfinite(diff)
    diff_source = "measured ‖Θ_t − Θ_0‖₂ (float64)"
    if missing.any():
        spec0 = float(d["lam_max"][0]) if steps.size and steps[0] == 0 else float("nan")  # ‖Θ_0‖₂ = λ_max(Θ_0)
        diff = np.where(missing, np.asarray(d.get("ntk_drift_spec", np.full(steps.shape, np.nan)), float) * spec0,
                        diff)
        diff_source = ("derived: ‖Θ_t − Θ_0‖₂/‖Θ_0‖₂ × λ_max(Θ_0) at {} of {} checkpoints (saved before the "
                       "absolute value was recorded)".format(int(missing.sum()), steps.size))
    use = np.isfinite(diff) & np.isfinite(drift_t)
    L_theta = ntk_lipschitz_estimate(diff[use], drift_t[use])
    ratio = np.where(use & (drift_t > 0), diff / np.where(drift_t > 0, drift_t, 1.0), np.nan)
    all_drift = np.concatenate([np.asarray(h["param_drift"], float), [float(res.get("final_param_drift", np.nan))]])
    r = float(np.nanmax(all_drift)) if np.isfinite(all_drift).any() else 0.0
    lam = np.asarray(d.get("lam_min", []), float)
    lam0 = float(lam[0]) if lam.size and steps[0] == 0 else float("nan")
    cert = pl_certificate(lam0, L_theta, r, n)
    loss = np.asarray(h["loss"], float)
    beta = float(res.get("hessian", {}).get("beta0", float("nan")))
    gap0 = float(loss[0]) if loss.size else float("nan")  # L* = 0: an upper estimate of L₀ − L*, so of R
    ok = math.isfinite(beta) and beta > 0 and math.isfinite(gap0)
    R = a_priori_radius(beta, gap0, lam0 / n) if ok and math.isfinite(lam0) and lam0 > 0 else float("nan")
    R_cert = a_priori_radius(beta, gap0, cert.mu_cert) if ok and cert.certified else float("nan")
    path = path_length(np.asarray(h["lr"], float), np.asarray(h["grad_norm_sq"], float)) if loss.size else 0.0
    return dict(
        lam0=lam0, L_theta=L_theta, r=r, n=n, mu_cert=cert.mu_cert, certified=cert.certified, rests_on=cert.rests_on,
        lam0_over_n=lam0 / n, L_theta_r_over_n=L_theta * r / n, radius_max=cert.radius_max,
        checkpoint_step=steps.astype(np.int64), checkpoint_drift=drift_t, ntk_diff_spec=diff, lipschitz_ratio=ratio,
        checkpoints_used=int((use & (drift_t > 0)).sum()), diff_source=diff_source,
        L_theta_step=int(steps[np.nanargmax(ratio)]) if np.isfinite(ratio).any() else -1,
        beta=beta, loss_gap0=gap0,
        beta_source=("beta0: the Hessian's top eigenvalue at θ_0 (Lanczos)" if "beta0" in res.get("hessian", {}) else
                     "not measured: the run was made without β (hessian_iters = 0), so R and R_cert are not measured"),
        L_star=0.0, mu_for_R=lam0 / n, R=R, R_cert=R_cert, path_length=path,
        drift_within_R=bool(r <= R) if math.isfinite(R) else None,
        closes=bool(R_cert <= r) if math.isfinite(R_cert) else None,
    )
