r"""The Polyak–Łojasiewicz diagnostics of the LPLR paper (THEORY.md §1), one function per step.

Notation (THEORY.md): ``n = N`` samples, ``k = K`` outputs per sample, the
residual ``r = f(X; θ) − y`` of shape ``N·K``, ``J = ∂r/∂θ`` ``(N·K, P)``,
``Θ = J Jᵀ`` ``(N·K, N·K)``, and the squared loss normalised per *sample*

.. math:: L(\theta) = \frac{1}{2n}\lVert f(X;\theta) - y\rVert^2
          \qquad\text{(reconstruction; } n = N \text{ even when } K > 1\text{)},

which is :func:`minilplr.nn.losses.mse`.  With that ``n``,

.. math:: \nabla L = \tfrac1n J^\top r,\qquad
          \lVert\nabla L\rVert^2 = \tfrac{1}{n^2} r^\top\Theta r,\qquad
          \lVert r\rVert^2 = 2nL,

so the PL constant is ``μ = λ_min(Θ)/n`` with ``λ_min`` taken over all
``N·K`` directions (``λ_min = 0`` whenever ``N·K > P``).

Every inequality comes back as a :class:`Check` ``(lhs, rhs, holds)``.  Where
a step uses ``λ_min`` and is handed a :class:`~minilplr.theory.ntk.Spectrum`, it uses
the spectrum's *lower bound* ``max(λ_computed − floor, 0)`` (0 when
``λ_min`` is unresolved), so ``holds`` is a check of the mathematics, not of
the eigen-solver's rounding.

Functions that take a model run its forward (and backward) pass on ``X``;
they leave the model exactly as they found it: parameters, batch norm's
running statistics, the train/eval mode, ``grads`` and the activations a later
``backward`` relies on (:func:`minilplr.nn.layers.untouched`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..backend import backend_of, get_array_module, to_device, to_host, to_scalar
from ..nn.losses import as_targets, mse
from .ntk import Spectrum, empirical_ntk, ntk_spectrum, symmetric_norm
from ..nn.params import flatten, load_flat
from ..nn.layers import frozen_activations, untouched

__all__ = [
    "Check",
    "LossGrad",
    "loss_and_gradient",
    "gradient_from_jacobian",
    "gradient_norm_identity",
    "pl_step6_rayleigh",
    "pl_step7_gradient_bound",
    "pl_step8_loss_bound",
    "pl_step9_pl_inequality",
    "pl_constant",
    "pl_ratio",
    "gauss_newton_smoothness",
    "ntk_drift",
    "NTKDrift",
    "param_drift",
    "pl_envelope",
    "kernel_regime_loss",
    "contraction_step14",
    "descent_lemma",
    "descent_lemma_step",
    "hessian_vector_product",
    "HessianTop",
    "hessian_top_eigenvalue",
    "step_size_condition",
    "PLReport",
    "pl_diagnostics",
]


class Check(NamedTuple):
    """Both sides of an inequality ``lhs ≥ rhs`` (or ``≤``, as the function says) and whether it held.

    ``holds`` allows a rounding slack ``rtol · scale``, ``scale`` the size of
    the terms compared (``max(|lhs|, |rhs|)`` unless the function says
    otherwise; ``rtol`` from the inputs' dtype: ``1e-12`` for float64,
    ``1e-5`` for float32, unless the function is given one).  ``holds is None``
    where a function says so: the inequality is not certified either way.
    """

    lhs: float
    rhs: float
    holds: bool | None  # None: neither holds nor fails within what the inputs certify (see step_size_condition)

    def __str__(self):
        verdict = "not certified" if self.holds is None else "holds" if self.holds else "FAILS"
        return f"{self.lhs:.6g} vs {self.rhs:.6g}: {verdict}"


def _rtol(*arrays, rtol=None) -> float:
    if rtol is not None:
        return float(rtol)
    low = any(getattr(a, "dtype", None) is not None and a.dtype == np.float32 for a in arrays)
    return 1e-5 if low else 1e-12


def _geq(lhs: float, rhs: float, rtol: float, scale: float | None = None) -> Check:
    scale = max(abs(lhs), abs(rhs)) if scale is None else scale
    return Check(lhs, rhs, bool(lhs >= rhs - rtol * scale))


def _leq(lhs: float, rhs: float, rtol: float, scale: float | None = None) -> Check:
    scale = max(abs(lhs), abs(rhs)) if scale is None else scale
    return Check(lhs, rhs, bool(lhs <= rhs + rtol * scale))


def _flat(name, v):
    """A flat ``(P,)`` array from an array, a ``name -> array`` mapping or a model."""
    if hasattr(v, "params") and not isinstance(v, Mapping):
        v = v.params
    if isinstance(v, Mapping):
        v = flatten(v)
    if not hasattr(v, "shape"):
        raise TypeError(f"{name}: expected an array, a name -> array mapping or a model, got {type(v).__name__}")
    return v.reshape(-1)


def _sq(x) -> float:
    """``‖x‖²`` in float64, as a Python float (one number crosses to the host)."""
    x64 = x.reshape(-1).astype(np.float64)
    return to_scalar(x64 @ x64)


def _lam(name, lam):
    """``λ`` from a float or a Spectrum (its lower bound); must be ≥ 0."""
    if isinstance(lam, Spectrum):
        return lam.lam_min_lower
    try:
        v = float(lam)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number or a minilplr.theory.ntk.Spectrum, got {type(lam).__name__}") from None
    if not (v >= 0) or math.isinf(v):
        raise ValueError(f"{name}: expected a finite non-negative eigenvalue, got {lam!r}")
    return v


def _n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected the number of samples, a positive integer, got {n!r}")
    return int(n)


# --------------------------------------------------------------------------- loss, gradient, residual


class LossGrad(NamedTuple):
    """``L`` (float), ``∇L`` ``(P,)``, ``r`` ``(N·K,)`` (device arrays) and ``n = N``."""

    loss: float
    grad: object
    r: object
    n: int


def loss_and_gradient(model, X, y) -> LossGrad:
    r"""One forward and one backward pass: ``L = 1/(2n)‖f − y‖²``, ``∇L`` and ``r``.

    The gradient is the hand-written backward's, flattened in ``model.params``
    order (the columns of ``J``).  ``r = f(X; θ) − y`` flattened, row
    ``i·K + k`` (the rows of ``J``).  The model is left untouched
    (:func:`~minilplr.nn.layers.untouched`): ``model.grads`` and the cached
    activations are what they were before the call, and a training-mode batch
    norm's running statistics have not moved.
    """
    with untouched(model):
        return _loss_and_gradient(model, X, y)


def _loss_and_gradient(model, X, y) -> LossGrad:
    """:func:`loss_and_gradient` on the model itself: it keeps the pass's grads and caches."""
    if not hasattr(y, "shape"):
        raise TypeError(f"y: expected an array of targets (N, K) or (N,), got {type(y).__name__}")
    pred = model.forward(X)
    loss, dpred = mse(pred, y)
    model.backward(dpred)
    r = (pred - as_targets(pred, y)).reshape(-1)  # r = f(X; θ) − y
    return LossGrad(to_scalar(loss), flatten(model.grads), r, int(pred.shape[0]))


def gradient_from_jacobian(J, r, n: int):
    r"""``∇L = (1/n) Jᵀ r`` (THEORY.md §1, proof of Theorem 5.1: "the gradient is ∇L = (1/n)Jᵀr").

    Parameters
    ----------
    J : array (N·K, P)
    r : array (N·K,)
    n : int, the number of samples ``N``

    Returns
    -------
    array (P,)
    """
    n = _n(n)
    if J.ndim != 2 or r.reshape(-1).shape[0] != J.shape[0]:
        raise ValueError(f"r: expected {J.shape[0]} entries to match J {tuple(J.shape)}, got shape {tuple(r.shape)}")
    return (J.T @ r.reshape(-1)) / n  # (1/n) Jᵀ r


def gradient_norm_identity(grad, theta, r, n: int, rtol=None) -> Check:
    r"""``‖∇L‖² = (1/n²) rᵀ Θ r`` (THEORY.md §1, proof of Theorem 5.1; an identity).

    ``lhs = ‖∇L‖²`` from the gradient handed in (the backward pass's),
    ``rhs = rᵀΘr/n²``; ``holds`` if they agree to ``rtol`` relative
    (default ``1e-9`` in float64, ``1e-4`` in float32).
    """
    n = _n(n)
    g, r = _flat("grad", grad), r.reshape(-1)
    lhs = _sq(g)
    r64 = r.astype(np.float64)
    rhs = to_scalar(r64 @ (theta.astype(np.float64) @ r64)) / n**2  # rᵀΘr / n²
    if rtol is None:
        rtol = 1e-4 if any(a.dtype == np.float32 for a in (g, theta, r)) else 1e-9
    return Check(lhs, rhs, bool(abs(lhs - rhs) <= float(rtol) * max(abs(lhs), abs(rhs))))


# --------------------------------------------------------------------------- the proof of Theorem 5.1


def pl_step6_rayleigh(theta, r, lam_min, rtol=None) -> Check:
    r"""Step (6): the eigenvalue bound on the kernel's quadratic form.

    .. math:: r^\top \Theta r \;\ge\; \lambda_{\min}(\Theta)\,\lVert r\rVert^2 \tag{6}

    (reconstruction of the blank (6): "the smallest non-zero eigenvalue of
    JᵀJ is equal to that of JJᵀ … gives us a bound on the squared gradient").

    Parameters
    ----------
    theta : array (N·K, N·K)
    r : array (N·K,) or (N, K)
    lam_min : float or Spectrum (its lower bound is used)

    Returns
    -------
    Check(lhs = rᵀΘr, rhs = λ_min‖r‖², holds)
    """
    lam = _lam("lam_min", lam_min)
    r64 = r.reshape(-1).astype(np.float64)
    if theta.ndim != 2 or theta.shape[0] != r64.shape[0]:
        raise ValueError(f"r: expected {theta.shape[0]} entries to match theta {tuple(theta.shape)}, got {tuple(r.shape)}")
    lhs = to_scalar(r64 @ (theta.astype(np.float64) @ r64))  # rᵀ Θ r
    return _geq(lhs, lam * to_scalar(r64 @ r64), _rtol(theta, r, rtol=rtol))


def pl_step7_gradient_bound(grad, r, lam_min, n: int, rtol=None) -> Check:
    r"""Step (7): the bound substituted into the gradient norm.

    .. math:: \lVert\nabla L\rVert^2 = \frac{1}{n^2} r^\top\Theta r
              \;\ge\; \frac{\lambda_{\min}(\Theta)}{n^2}\lVert r\rVert^2 \tag{7}

    (reconstruction of the blank (7)).  ``lhs`` is ``‖∇L‖²`` of the gradient
    handed in (the hand-written backward's), so this checks (6) and the
    identity ``∇L = (1/n)Jᵀr`` together.

    Returns
    -------
    Check(lhs = ‖∇L‖², rhs = λ_min‖r‖²/n², holds)
    """
    n, lam, g = _n(n), _lam("lam_min", lam_min), _flat("grad", grad)
    return _geq(_sq(g), lam / n**2 * _sq(r), _rtol(g, r, rtol=rtol))


def pl_step8_loss_bound(grad, loss, lam_min, n: int, rtol=None) -> Check:
    r"""Step (8): with ``‖r‖² = 2nL`` (the loss's definition), the bound in terms of ``L``.

    .. math:: \lVert\nabla L\rVert^2 \;\ge\; \frac{2\lambda_{\min}(\Theta)}{n}\, L \tag{8}

    (reconstruction of the blank (8)).

    Returns
    -------
    Check(lhs = ‖∇L‖², rhs = 2 λ_min L / n, holds)
    """
    n, lam, g = _n(n), _lam("lam_min", lam_min), _flat("grad", grad)
    L = float(loss)
    return _geq(_sq(g), 2.0 * lam / n * L, _rtol(g, rtol=rtol))


def pl_step9_pl_inequality(grad, loss, lam_min, n: int, loss_star: float = 0.0, rtol=None) -> Check:
    r"""Step (9), the PL inequality of Theorem 5.1 with ``μ = λ_min(Θ)/n``.

    .. math:: \tfrac12\lVert\nabla L\rVert^2 \;\ge\; \mu\,(L - L^*),
              \qquad \mu = \frac{\lambda_{\min}(\Theta)}{n} \tag{9}

    (the local form of (1)/(2); reconstruction of the blank (9)).  Follows from
    (8) for any ``L* ≥ 0``.

    Returns
    -------
    Check(lhs = ½‖∇L‖², rhs = μ (L − L*), holds)
    """
    n, lam, g = _n(n), _lam("lam_min", lam_min), _flat("grad", grad)
    mu = lam / n
    return _geq(0.5 * _sq(g), mu * (float(loss) - float(loss_star)), _rtol(g, rtol=rtol))


def pl_constant(lam_min, n: int) -> float:
    r"""The local PL constant of Theorem 5.1, ``μ = λ_min(Θ)/n`` (THEORY.md §1, step (9)).

    ``lam_min``: a float, or a :class:`~minilplr.theory.ntk.Spectrum` (then its lower
    bound: ``0`` when ``λ_min`` is unresolved, so ``μ`` is never claimed from
    rounding noise).
    """
    return _lam("lam_min", lam_min) / _n(n)


def pl_ratio(grad, loss, loss_star: float = 0.0) -> float:
    r"""The empirical PL ratio ``‖∇L‖² / (2(L − L*))`` (THEORY.md §1, arXiv v3 diagnostics).

    .. math:: \rho = \frac{\lVert\nabla L\rVert^2}{2\,(L - L^*)} \;\ge\; \mu \text{ wherever (9) holds}

    By (8) it is at least ``λ_min(Θ)/n`` at every point (with ``L* = 0``): a
    free consistency check of any eigen-solver.  ``nan`` where ``L ≤ L*``
    (the ratio is undefined at the minimum).

    Parameters
    ----------
    grad : array (P,), or a ``name -> array`` mapping (``model.grads``)
    loss, loss_star : float
    """
    gap = float(loss) - float(loss_star)
    if not gap > 0:
        return math.nan
    return _sq(_flat("grad", grad)) / (2.0 * gap)


def gauss_newton_smoothness(lam_max, n: int) -> float:
    r"""Smoothness of the Gauss–Newton part of the Hessian, ``λ_max(Θ)/n`` (THEORY.md §1, consequence).

    .. math:: \nabla^2 L = \underbrace{\tfrac1n J^\top J}_{\text{Gauss–Newton}}
              + \tfrac1n\sum_i r_i \nabla^2 r_i,
              \qquad \lambda_{\max}\big(\tfrac1n J^\top J\big) = \frac{\lambda_{\max}(\Theta)}{n}

    (not in the paper).  Equals the Hessian's top eigenvalue when the
    residual-curvature term vanishes (a linear model, or ``r = 0``).
    ``lam_max``: a float or a :class:`~minilplr.theory.ntk.Spectrum`.
    """
    v = lam_max.lam_max if isinstance(lam_max, Spectrum) else float(lam_max)
    return v / _n(n)


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
    :func:`minilplr.theory.ntk.symmetric_norm`.
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


def param_drift(params_t, params_0) -> float:
    r"""Parameter drift ``‖θ_t − θ_0‖`` (Euclidean; THEORY.md §1, arXiv v3 diagnostics).

    Measures how far gradient descent went from initialisation: the local
    regime of Theorem 5.1 is a ball ``‖θ − θ₀‖ ≤ R``.  Each argument: a flat
    ``(P,)`` array, a ``name -> array`` mapping, or a model.
    """
    a, b = _flat("params_t", params_t), _flat("params_0", params_0)
    if a.shape != b.shape:
        raise ValueError(f"params_t: expected {b.shape[0]} parameters to match params_0, got {a.shape[0]}")
    return math.sqrt(_sq(a.astype(np.float64) - b.astype(np.float64)))


# --------------------------------------------------------------------------- Theorem 5.4


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
    GD step on ``L = ‖r‖²/(2n)`` moves the residual by
    ``r_{t+1} = r_t − (η/n) J_0 J_0ᵀ r_t = (I − ηΘ_0/n) r_t``.  In the
    eigenbasis ``Θ_0 = Σ_i λ_i u_i u_iᵀ``:

    .. math:: L_t = \frac{1}{2n}\sum_i (u_i^\top r_0)^2\,\Big(1 - \frac{\eta\lambda_i}{n}\Big)^{2t}

    a *sum* of geometric sequences, one per eigen-direction.  Its slowest
    term has ratio ``(1 − ημ)²`` with ``μ = λ_min/n`` — the envelope of
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


def contraction_step14(loss_next, loss, eta: float, mu: float, loss_star: float = 0.0, rtol=None,
                       atol: float = 0.0) -> Check:
    r"""One step of Theorem 5.4, eq. (14): the gap contracts by ``1 − ημ``.

    .. math:: L_{t+1} - L^* \;\le\; (1 - \eta\mu)\,(L_t - L^*) \tag{14}

    (reconstruction of the blank (14); it follows from (11)–(13) when
    ``η ≤ 1/β``).  Returns ``Check(lhs = L_{t+1} − L*, rhs = (1 − ημ)(L_t − L*), holds)``,
    ``holds`` meaning ``lhs ≤ rhs`` up to ``rtol`` of the gap ``L_t − L*``
    plus ``atol`` (the loss's own rounding floor, once ``L_t`` is at it).
    """
    gap = float(loss) - float(loss_star)
    lhs = float(loss_next) - float(loss_star)
    rhs = (1.0 - float(eta) * float(mu)) * gap
    scale = max(abs(gap), abs(lhs)) * max(1.0, float(eta) * float(mu))
    return _leq(lhs, rhs + float(atol), 1e-12 if rtol is None else float(rtol), scale)


def descent_lemma(loss_next, loss, grad, eta: float, beta: float, rtol=None, atol: float = 0.0) -> Check:
    r"""The descent lemma of a β-smooth function, eq. (11).

    .. math:: L(\theta - \eta\nabla L) \;\le\; L(\theta) - \eta\Big(1 - \frac{\beta\eta}{2}\Big)\lVert\nabla L\rVert^2 \tag{11}

    (reconstruction of the blank (11)).  It holds for every ``η`` if ``β``
    bounds the Hessian on the segment from ``θ`` to ``θ − η∇L``; a failure
    says ``β`` is not a smoothness constant there.

    Returns
    -------
    Check(lhs = L(θ − η∇L), rhs = L(θ) − η(1 − βη/2)‖∇L‖², holds)  (``holds``: lhs ≤ rhs
    up to ``rtol`` of the terms' size ``|L| + η‖∇L‖² + βη²‖∇L‖²/2``, plus ``atol``, the
    loss's rounding floor once ``L`` is at it)
    """
    g = _flat("grad", grad)
    eta, beta, g2 = float(eta), float(beta), _sq(g)
    rhs = float(loss) - eta * (1.0 - beta * eta / 2.0) * g2
    scale = abs(float(loss)) + abs(float(loss_next)) + eta * g2 * (1.0 + abs(beta) * eta / 2.0)
    return _leq(float(loss_next), rhs + float(atol), _rtol(g, rtol=rtol), scale)


def descent_lemma_step(model, X, y, eta: float, beta: float, rtol=None, atol: float = 0.0) -> Check:
    """(11) at the model's current ``θ``: takes the step ``θ − η∇L``, measures, leaves the model untouched."""
    with untouched(model):
        lg = _loss_and_gradient(model, X, y)
        theta0 = flatten(model.params)
        load_flat(model, theta0 - float(eta) * lg.grad.astype(theta0.dtype))
        loss_next = to_scalar(mse(model.forward(X), y)[0])
    return descent_lemma(loss_next, lg.loss, lg.grad, eta, beta, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- the Hessian's top eigenvalue


def _require_float64(model):
    dt = getattr(model, "dtype", None)
    if dt is None:
        dt = next(iter(model.params.values())).dtype
    if np.dtype(dt) != np.float64:
        raise ValueError(
            f"model: expected a float64 model for finite-difference Hessian-vector products, got {np.dtype(dt)} "
            "(float32 differences lose ~3 digits of 7); use minilplr.theory.ntk.float64_copy(model)"
        )


def hessian_vector_product(model, X, y, v, h: float = 1e-5):
    r"""``H v`` by central differences of the hand-written gradient, in float64.

    .. math:: \nabla^2 L(\theta)\, v \;\approx\; \frac{\nabla L(\theta + h v) - \nabla L(\theta - h v)}{2h}

    Truncation ``O(h²)``, rounding ``O(ε‖∇L‖/h)`` (``h = 1e-5`` balances them
    near ``1e-10`` for ``‖v‖ = 1``).  The ReLU masks are frozen at ``θ``
    (:func:`minilplr.nn.layers.frozen_activations`): without that, a difference
    whose two points straddle a kink sees the gradient's jump divided by
    ``2h``.  On the paper's MLP that is no rare event — 200 samples × 1024
    hidden units put a few pre-activations within ``h`` of zero — and it once
    inflated ``β`` from 94 to 656 at ``h = 1e-5``.  Frozen, the result is the
    Hessian of the linear piece at ``θ`` (what autograd computes), the same
    for every ``h``.

    Parameters
    ----------
    model : float64 Model or Sequential (left untouched, :func:`~minilplr.nn.layers.untouched`)
    X, y : arrays on the model's backend
    v : array (P,), ``model.params`` order
    h : float

    Returns
    -------
    array (P,), float64
    """
    _require_float64(model)
    theta0 = flatten(model.params)
    v = v.reshape(-1)
    if v.shape != theta0.shape:
        raise ValueError(f"v: expected shape {tuple(theta0.shape)} (P,), got {tuple(v.shape)}")
    if not (float(h) > 0):
        raise ValueError(f"h: expected a positive step, got {h!r}")
    with untouched(model):
        _loss_and_gradient(model, X, y)  # a forward pass at θ sets the masks to freeze
        with frozen_activations(model):
            return _hvp_frozen(model, X, y, theta0, v, float(h))


def _hvp_frozen(model, X, y, theta0, v, h: float):
    """``(∇L(θ₀+hv) − ∇L(θ₀−hv)) / 2h``, masks already frozen: two gradient evaluations, θ₀ restored."""
    load_flat(model, theta0 + h * v)
    g_plus = _loss_and_gradient(model, X, y).grad
    load_flat(model, theta0 - h * v)
    g_minus = _loss_and_gradient(model, X, y).grad
    load_flat(model, theta0)
    return (g_plus - g_minus) / (2.0 * h)  # (∇L(θ+hv) − ∇L(θ−hv)) / 2h


class HessianTop(NamedTuple):
    """``β = ‖∇²L‖₂`` from Lanczos, and what that number rests on.

    Attributes
    ----------
    beta : float
        ``|rayleigh|``.  A Rayleigh quotient never exceeds the spectral norm,
        so ``β`` is a *lower bound* of ``‖∇²L‖₂`` whatever the solver did.
    rayleigh : float
        The signed eigenvalue estimate ``vᵀHv`` (``‖v‖ = 1``): its sign says
        whether the top curvature is a valley (``+``) or a ridge (``−``).
    matvecs : int
        Hessian–vector products used, the residual's included (each is two
        gradient evaluations).
    converged : bool
        The solver converged and the measured ``residual`` is within ``tol``.
    residual : float
        ``‖Hv − (vᵀHv) v‖ / β``, measured with one more product after the
        solve.  Some eigenvalue lies within ``residual · β`` of ``rayleigh``;
        when it is the top one (a Krylov solver from a random start misses
        that one only by bad luck), ``β ≤ ‖∇²L‖₂ ≤ β (1 + residual)``.
    tol : float
        The relative tolerance asked of the solver.
    """

    beta: float
    rayleigh: float
    matvecs: int
    converged: bool
    residual: float
    tol: float

    @property
    def upper(self) -> float:
        """``β (1 + residual)`` when converged (the bracket's top), else ``inf``: nothing is certified."""
        return self.beta * (1.0 + self.residual) if self.converged else math.inf

    def __str__(self):
        state = f"relative residual {self.residual:.1e}" + ("" if self.converged else
                                                          f", NOT converged to tol {self.tol:.0e}")
        return f"β = {self.beta:.6g} ({state}; {self.matvecs} Hessian-vector products)"


def _top_ritz_vector(matvec, P: int, be, tol: float, ncv: int, maxiter: int, seed: int):
    """The Ritz vector of the largest ``|λ|`` of a symmetric operator ``(P,) -> (P,)`` on the device, by Lanczos.

    NumPy and the strict stand-in: SciPy's ARPACK on the host, each product
    crossing explicitly (``to_device`` in, ``to_host`` out, as
    :func:`minilplr.theory.ntk._lanczos`).  CuPy: ``cupyx``'s thick-restart Lanczos,
    vectors on the device; it has no failure signal, so the caller's measured
    residual decides.  Returns ``(v (P,) on the device, solver_ok)``.
    """
    v0 = np.random.default_rng(seed).standard_normal(P)  # host seed, deterministic start
    if be.name == "cupy" and P >= 4:  # cupyx needs k + 1 < ncv < P
        from cupyx.scipy.sparse.linalg import LinearOperator, eigsh

        op = LinearOperator((P, P), matvec=lambda v: matvec(v.reshape(-1)), dtype=np.float64)
        _, V = eigsh(op, k=1, which="LM", v0=to_device(v0, be), ncv=min(max(int(ncv), 3), P - 1),
                     maxiter=maxiter, tol=tol)
        return V[:, 0], True
    ncv = min(int(ncv), P)  # ARPACK: k < ncv ≤ P
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    op = LinearOperator((P, P), matvec=lambda v: to_host(matvec(to_device(np.ravel(v), be, np.float64))),
                        dtype=np.float64)
    try:
        _, V = eigsh(op, k=1, which="LM", v0=v0, ncv=ncv, maxiter=maxiter, tol=tol)
        return to_device(V[:, 0], be), True
    except ArpackNoConvergence as exc:  # ARPACK gave up: its best vector, or the start vector
        V = exc.eigenvectors if exc.eigenvectors.size else v0.reshape(-1, 1) / np.linalg.norm(v0)
        return to_device(np.ascontiguousarray(V[:, 0]), be), False


def hessian_top_eigenvalue(model, X, y, tol: float = 1e-8, ncv: int = 20, maxiter: int = 30, seed: int = 0,
                           h: float = 1e-5) -> HessianTop:
    r"""The Hessian's largest eigenvalue in magnitude, ``β = ‖∇²L‖₂``, by Lanczos.

    .. math:: \beta = \max_i |\lambda_i(\nabla^2 L)| = \max_{\lVert v\rVert = 1} |v^\top \nabla^2 L\, v|

    Lanczos (``eigsh``, ``which="LM"``) on finite-difference Hessian–vector
    products (:func:`hessian_vector_product`, masks frozen once at ``θ``)
    builds the Krylov space ``span{v₀, Hv₀, H²v₀, …}`` and reads the
    extreme eigenvalue off the small tridiagonal matrix it projects ``H`` to.
    It converges in tens of products where power iteration, which keeps only
    the last vector, needs a number set by the gap ``|λ₂|/|λ₁|`` (hundreds
    when the top eigenvalues are close).  This is the local smoothness
    constant of Theorem 5.4 (THEORY.md §1, consequence); test its step-size
    condition with :func:`step_size_condition`.

    The answer is certified after the fact: one more product gives the
    residual ``‖Hv − λv‖/|λ|`` of the returned pair (see :class:`HessianTop`).
    ARPACK giving up (``ArpackNoConvergence``) is caught: the result then has
    ``converged=False`` and ``beta`` is the Rayleigh quotient of its best
    vector, still a lower bound.  The model is left untouched.

    Parameters
    ----------
    model : float64 model (see :func:`minilplr.theory.ntk.float64_copy`)
    X, y : data on the model's backend
    tol : float
        Relative tolerance of the eigenvalue (the solver's, and the bound the
        measured residual must meet for ``converged``).  Keep it above the
        products' own error, ``~1e-9`` relative at ``h = 1e-5``.
    ncv : int
        Lanczos vectors kept (memory ``ncv · P`` floats; products per restart).
    maxiter : int
        Lanczos restarts.
    seed : int
        Host seed of the start vector.
    h : float
        Finite-difference step.

    Returns
    -------
    HessianTop(beta, rayleigh, matvecs, converged, residual, tol)
    """
    _require_float64(model)
    for name, v, low in (("ncv", ncv, 2), ("maxiter", maxiter, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name}: expected an integer ≥ {low}, got {v!r}")
    if not (0 < float(tol) < 1):
        raise ValueError(f"tol: expected a relative tolerance in (0, 1), got {tol!r}")
    theta0 = flatten(model.params)
    be, P = backend_of(theta0), int(theta0.shape[0])
    if P < 2:
        raise ValueError(f"model: Lanczos needs at least 2 parameters, got P = {P}")
    count = [0]

    def matvec(v):  # H v, v (P,) on the device
        count[0] += 1
        return _hvp_frozen(model, X, y, theta0, v, float(h))

    with untouched(model):
        _loss_and_gradient(model, X, y)  # a forward pass at θ sets the masks to freeze
        with frozen_activations(model):
            v, solver_ok = _top_ritz_vector(matvec, P, be, float(tol), int(ncv), int(maxiter), int(seed))
            v = v / math.sqrt(_sq(v))
            Hv = matvec(v)  # one more product: the certificate
    lam = to_scalar(v @ Hv)  # vᵀHv, the Rayleigh quotient
    r = math.sqrt(_sq(Hv - lam * v))  # ‖Hv − λv‖
    residual = r / abs(lam) if lam != 0 else (0.0 if r == 0 else math.inf)
    return HessianTop(abs(lam), lam, count[0], bool(solver_ok and residual <= tol), residual, float(tol))


def step_size_condition(eta: float, beta) -> Check:
    r"""Theorem 5.4's step-size condition ``η ≤ 1/β``: did it hold?

    ``beta`` a float: ``Check(lhs = η, rhs = 1/β, holds = η ≤ 1/β)`` (exact
    comparison, no slack).

    ``beta`` a :class:`HessianTop`: the verdict rests on what the solver
    certified.  ``β`` is a lower bound of ``‖∇²L‖₂``, so ``ηβ > 1`` *fails*
    whatever the solver did; ``holds`` needs a converged solve and
    ``η · β(1 + residual) ≤ 1`` (the bracket's top); anything else is
    ``holds = None``: not certified.
    """
    b = beta.beta if isinstance(beta, HessianTop) else float(beta)
    eta = float(eta)
    if not (eta > 0):
        raise ValueError(f"eta: expected a positive step size, got {eta!r}")
    if not (b >= 0):
        raise ValueError(f"beta: expected a non-negative smoothness constant, got {beta!r}")
    bound = math.inf if b == 0 else 1.0 / b
    if not isinstance(beta, HessianTop):
        return Check(eta, bound, bool(eta <= bound))
    if eta * b > 1.0:
        return Check(eta, bound, False)  # η > 1/β ≥ 1/‖∇²L‖₂
    return Check(eta, bound, True if eta * beta.upper <= 1.0 else None)


# --------------------------------------------------------------------------- all of it at one point


@dataclass(eq=False)
class PLReport:
    """The PL diagnostics of Theorem 5.1 at one point ``θ`` (see :func:`pl_diagnostics`)."""

    n: int
    loss: float
    loss_star: float
    grad_sq: float
    spectrum: Spectrum
    mu: float
    pl_ratio: float
    smoothness_gn: float
    identity: Check
    steps: dict

    @property
    def holds(self) -> bool:
        """Every step (6)–(9) held."""
        return all(c.holds for c in self.steps.values())

    def __str__(self):
        lines = [
            f"n = {self.n}, L = {self.loss:.6g}, L* = {self.loss_star:.6g}, ‖∇L‖² = {self.grad_sq:.6g}",
            f"Θ: {self.spectrum}",
            f"μ = λ_min/n = {self.mu:.6g}" + ("" if self.spectrum.resolved else " (λ_min unresolved: lower bound 0)"),
            f"PL ratio ‖∇L‖²/(2(L−L*)) = {self.pl_ratio:.6g}, Gauss–Newton smoothness λ_max/n = {self.smoothness_gn:.6g}",
            f"‖∇L‖² = rᵀΘr/n²: {self.identity}",
        ]
        lines += [f"step ({k}): {c}" for k, c in self.steps.items()]
        return "\n".join(lines)


def pl_diagnostics(model, X, y, loss_star: float = 0.0, method: str = "structured", dtype=None,
                   solver: str = "auto") -> PLReport:
    r"""Θ, its spectrum, ``μ``, the PL ratio and every step (6)–(9) of Theorem 5.1 at the current ``θ``.

    One forward/backward pass for ``L``, ``∇L`` and ``r``; one
    :func:`~minilplr.theory.ntk.empirical_ntk` (``method``, ``dtype``) and
    :func:`~minilplr.theory.ntk.ntk_spectrum` (``solver``).  ``n = N = X.shape[0]``.

    The model is left untouched (:func:`~minilplr.nn.layers.untouched`).

    Returns
    -------
    PLReport with ``steps = {6: Check, 7: Check, 8: Check, 9: Check}``.
    """
    with untouched(model):
        lg = _loss_and_gradient(model, X, y)
        theta = empirical_ntk(model, X, method=method, dtype=dtype)
    spec = ntk_spectrum(theta, solver=solver)
    n = lg.n
    steps = {
        6: pl_step6_rayleigh(theta, lg.r, spec),
        7: pl_step7_gradient_bound(lg.grad, lg.r, spec, n),
        8: pl_step8_loss_bound(lg.grad, lg.loss, spec, n),
        9: pl_step9_pl_inequality(lg.grad, lg.loss, spec, n, loss_star=loss_star),
    }
    return PLReport(
        n=n,
        loss=lg.loss,
        loss_star=float(loss_star),
        grad_sq=_sq(lg.grad),
        spectrum=spec,
        mu=pl_constant(spec, n),
        pl_ratio=pl_ratio(lg.grad, lg.loss, loss_star),
        smoothness_gn=gauss_newton_smoothness(spec, n),
        identity=gradient_norm_identity(lg.grad, theta, lg.r, n),
        steps=steps,
    )
