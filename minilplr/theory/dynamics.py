r"""What gradient descent's trajectory should look like, and how far it strays (THEORY.md §1).

* The linear-rate envelope of Theorem 5.4, eq. (10) (reconstruction):

  .. math:: L_t - L^* \le (1 - \eta\mu)^t\,(L_0 - L^*) \tag{10}

  (:func:`pl_envelope`; ``μ`` from :func:`minilplr.theory.pl.pl_constant`).
* The loss curve GD would follow if the NTK stayed at ``Θ_0``, one geometric
  sequence per eigen-direction (:func:`kernel_regime_loss`; derived, not in
  the paper).
* NTK drift ``‖Θ_t − Θ_0‖/‖Θ_0‖`` (:func:`ntk_drift`; Assumption 5.2), and
  the same with ``Θ_0``'s norms computed once per run (:class:`KernelMove`).  The
  parameter drift ``‖θ_t − θ_0‖`` is :func:`minilplr.nn.params.param_drift`,
  which the training loops record every step.

Imports the engine's backend and :mod:`.spectrum`; never the training loops
or the experiments.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module, to_host, to_scalar
from .spectrum import symmetric_norm

__all__ = ["pl_envelope", "kernel_regime_loss", "NTKDrift", "ntk_drift", "KernelMove"]


# --------------------------------------------------------------------------- Theorem 5.4's envelope, the kernel regime


def pl_envelope(t, eta: float, mu: float, gap0: float = 1.0):
    r"""The linear-rate envelope of Theorem 5.4, eq. (10).

    .. math:: L_t - L^* \;\le\; (1 - \eta\mu)^t\,(L_0 - L^*) \tag{10}

    (reconstruction of the blank (10); with ``η = 1/β`` it is ``(1 − μ/β)^t``).

    Parameters
    ----------
    t : int or sequence of ints (steps)
    eta, mu : float, ``0 ≤ ημ ≤ 1`` (Theorem 5.4's ``η ≤ 1/β`` and ``μ ≤ β`` give it)
    gap0 : float, ``L_0 − L*``

    Returns
    -------
    float for a scalar ``t``, else a host float64 array of ``t``'s shape.
    """
    eta, mu = float(eta), float(mu)
    if not (eta > 0):
        raise ValueError(f"eta: expected a positive step size, got {eta!r}")
    if not (mu >= 0):
        raise ValueError(f"mu: expected a non-negative PL constant, got {mu!r}")
    if eta * mu > 1 + 1e-9:  # beyond rounding: the theorem does not apply
        raise ValueError(
            f"eta, mu: expected eta*mu <= 1 (Theorem 5.4 needs eta <= 1/beta and mu <= beta), got "
            f"eta*mu = {eta * mu:.4g}"
        )
    ts = np.asarray(t)
    if ts.dtype.kind not in "iu" or (ts < 0).any():
        raise ValueError(f"t: expected non-negative integer step counts, got {t!r}")
    env = float(gap0) * max(1.0 - eta * mu, 0.0) ** ts.astype(np.float64)
    return float(env) if ts.ndim == 0 else env


def kernel_regime_loss(theta0, r0, eta: float, n: int, steps: int) -> np.ndarray:
    r"""The loss curve GD would follow if the NTK stayed at ``Θ_0`` (not in the paper; derived).

    Linearising the network at ``θ_0``, ``f(θ) ≈ f(θ_0) + J_0(θ − θ_0)``, one
    GD step on ``L = ‖r‖²/(2N)`` moves the residual by
    ``r_{t+1} = r_t − (η/N) J_0 J_0ᵀ r_t = (I − ηΘ_0/N) r_t``.  In the
    eigenbasis ``Θ_0 = Σ_i λ_i u_i u_iᵀ``:

    .. math:: L_t = \frac{1}{2N}\sum_i (u_i^\top r_0)^2\,\Big(1 - \frac{\eta\lambda_i}{N}\Big)^{2t}

    a *sum* of geometric sequences, one per eigen-direction.  Its slowest
    term has ratio ``(1 − ημ)²`` with ``μ = λ_min/N`` — the envelope of
    Theorem 5.4 (squared, because that bound uses ``½‖∇L‖² ≥ μL`` once per
    step).  When the measured curve follows this one, the network is in the
    lazy (kernel) regime and its loss curve is set by the NTK spectrum: fast
    directions first, then the slow ones.

    Parameters
    ----------
    theta0 : array (N·K, N·K), the NTK at initialisation (host or device)
    r0 : array (N·K,) or (N, K), the residual ``f(X; θ_0) − y``
    eta : float, step size; n : int, samples ``N``; steps : int

    Returns
    -------
    host float64 array (steps,): ``L_0 … L_{steps-1}``
    """
    T = np.asarray(to_host(theta0), dtype=np.float64)
    r = np.asarray(to_host(r0), dtype=np.float64).reshape(-1)
    if T.ndim != 2 or T.shape[0] != T.shape[1] or T.shape[0] != r.size:
        raise ValueError(f"theta0: expected a square ({r.size}, {r.size}) kernel to match r0, got {T.shape}")
    if not (float(eta) > 0) or int(n) < 1 or int(steps) < 1:
        raise ValueError(f"eta, n, steps: expected positive values, got {eta!r}, {n!r}, {steps!r}")
    lam, U = np.linalg.eigh((T + T.T) / 2)
    c2 = (U.T @ r) ** 2  # (u_iᵀ r_0)²
    q2 = (1.0 - float(eta) * np.clip(lam, 0, None) / int(n)) ** 2  # (1 − ηλ_i/n)²
    t = np.arange(int(steps), dtype=np.float64)
    return (np.power.outer(q2, t) * c2[:, None]).sum(axis=0) / (2 * int(n))


# --------------------------------------------------------------------------- drift


class NTKDrift(NamedTuple):
    """Relative NTK drift in the Frobenius and the spectral norm."""

    frobenius: float
    spectral: float


def ntk_drift(theta_t, theta_0) -> NTKDrift:
    r"""Relative drift of the kernel from initialisation (THEORY.md §1, Assumption 5.2 / arXiv v3).

    .. math:: \frac{\lVert\Theta_t - \Theta_0\rVert_F}{\lVert\Theta_0\rVert_F},\qquad
              \frac{\lVert\Theta_t - \Theta_0\rVert_2}{\lVert\Theta_0\rVert_2}

    Assumption 5.2 asks ``‖Θ(θ) − Θ(θ')‖ ≤ L_Θ‖θ − θ'‖`` on the region; a
    small drift is the "lazy" regime in which ``λ_min`` stays near its value
    at initialisation.  Both in float64; the spectral norm by
    :func:`minilplr.theory.spectrum.symmetric_norm`.
    """
    if tuple(theta_t.shape) != tuple(theta_0.shape):
        raise ValueError(f"theta_t: expected shape {tuple(theta_0.shape)} to match theta_0, got {tuple(theta_t.shape)}")
    xp = get_array_module(theta_t, theta_0)
    d = theta_t.astype(np.float64) - theta_0.astype(np.float64)
    t0 = theta_0.astype(np.float64)
    fro0 = to_scalar(xp.linalg.norm(t0.reshape(-1)))
    spec0 = symmetric_norm(t0)
    if fro0 == 0 or spec0 == 0:
        raise ValueError("theta_0: the initial kernel is zero; the relative drift is undefined")
    return NTKDrift(to_scalar(xp.linalg.norm(d.reshape(-1))) / fro0, symmetric_norm(d) / spec0)


class KernelMove:
    r"""How far ``Θ_t`` is from ``Θ_0``, with ``Θ_0``'s norms computed once per run (a speed helper).

    ``KernelMove(Θ_0)(Θ_t)`` returns ``(fro, spec, diff)`` equal, bit for bit, to the plain expressions

    .. math:: (\text{fro}, \text{spec}) = \left(\frac{\lVert\Theta_t - \Theta_0\rVert_F}{\lVert\Theta_0\rVert_F},\;
              \frac{\lVert\Theta_t - \Theta_0\rVert_2}{\lVert\Theta_0\rVert_2}\right),\qquad
              \text{diff} = \lVert\Theta_t - \Theta_0\rVert_2

    i.e. ``ntk_drift(Θ_t, Θ_0)`` and ``symmetric_norm(Θ_t − Θ_0)``
    (:func:`ntk_drift`, :func:`minilplr.theory.spectrum.symmetric_norm`), with one
    symmetric eigensolve per checkpoint instead of three: the plain expressions
    solve for ``‖Θ_0‖₂`` at every checkpoint and for ``‖Θ_t − Θ_0‖₂`` twice
    (once inside the spectral drift, once for ``diff``), each a dense
    ``(N, N)`` ``eigvalsh``.  ``Θ_t``, ``Θ_0``: ``(N, N)`` on one backend, any
    float dtype (cast to float64, as ``ntk_drift`` does).  The training runs
    call it at every NTK checkpoint (``tests/theory/test_dynamics.py`` checks
    the bits against the plain expressions).
    """

    def __init__(self, theta_0):
        self.theta_0 = theta_0
        t0 = theta_0.astype(np.float64)
        self._xp = get_array_module(t0)
        self.fro0 = to_scalar(self._xp.linalg.norm(t0.reshape(-1)))
        self.spec0 = symmetric_norm(t0)
        if self.fro0 == 0 or self.spec0 == 0:
            raise ValueError("theta_0: the initial kernel is zero; the relative drift is undefined")

    def __call__(self, theta_t) -> tuple[float, float, float]:
        if tuple(theta_t.shape) != tuple(self.theta_0.shape):
            raise ValueError(f"theta_t: expected shape {tuple(self.theta_0.shape)} to match theta_0, "
                             f"got {tuple(theta_t.shape)}")
        d = theta_t.astype(np.float64) - self.theta_0.astype(np.float64)  # the same d as ntk_drift's
        diff = symmetric_norm(d)
        return to_scalar(self._xp.linalg.norm(d.reshape(-1))) / self.fro0, diff / self.spec0, diff
