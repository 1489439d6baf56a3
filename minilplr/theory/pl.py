r"""Theorem 5.1 of the LPLR paper (THEORY.md §1): the PL inequality from the NTK, one function per step.

Notation (docs/notation.md): ``N`` samples, ``K`` outputs per sample, the
residual ``r = f(X; θ) − y`` of shape ``N·K``, ``J = ∂r/∂θ`` ``(N·K, P)``,
``Θ = J Jᵀ`` ``(N·K, N·K)``, and the squared loss normalised per *sample*

.. math:: L(\theta) = \frac{1}{2N}\lVert f(X;\theta) - y\rVert^2
          \qquad\text{(reconstruction; } N \text{ even when } K > 1\text{)},

which is :func:`minilplr.nn.losses.mse`.  With that ``N``,

.. math:: \nabla L = \tfrac1N J^\top r,\qquad
          \lVert\nabla L\rVert^2 = \tfrac{1}{N^2} r^\top\Theta r,\qquad
          \lVert r\rVert^2 = 2NL,

so the PL constant is ``μ = λ_min(Θ)/N`` with ``λ_min`` taken over all
``N·K`` directions (``λ_min = 0`` whenever ``N·K > P``).  The functions'
argument ``n`` is ``N`` (the paper's letter), and :class:`PLReport` prints
``n`` too (docs/04 says so); every formula here writes ``N``.

Every inequality comes back as a :class:`Check` ``(lhs, rhs, holds)``.  Where
a step uses ``λ_min`` and is handed a :class:`~minilplr.theory.spectrum.Spectrum`, it uses
the spectrum's *lower bound* ``max(λ_computed − floor, 0)`` (0 when
``λ_min`` is unresolved), so ``holds`` is a check of the mathematics, not of
the eigen-solver's rounding.

What is here: ``L``, ``∇L`` and ``r`` at a point (:func:`loss_and_gradient`);
``∇L = (1/N)Jᵀr`` and ``‖∇L‖² = rᵀΘr/N²``; the steps (6)–(9) of the proof;
``μ = λ_min/N`` (:func:`pl_constant`) and its other end, the Gauss–Newton
smoothness ``λ_max/N``; the empirical PL ratio; all of it at one point
(:func:`pl_diagnostics`, :class:`PLReport`); and :class:`Check`, the result
type every inequality of the theory returns.  Theorem 5.4 (the descent
lemma, ``β``, ``η ≤ 1/β``) is in :mod:`minilplr.theory.smoothness`; the
envelope ``(1 − ημ)^t``, the kernel-regime curve and drift are in
:mod:`minilplr.theory.dynamics`.

Imports the engine (:mod:`minilplr.nn`), :mod:`.ntk` and :mod:`.spectrum`;
never the training loops or the experiments.

Functions that take a model run its forward (and backward) pass on ``X``;
they leave the model exactly as they found it: parameters, batch norm's
running statistics, the train/eval mode, ``grads`` and the activations a later
``backward`` relies on (:func:`minilplr.nn.state.untouched`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..backend import to_scalar
from ..validate import check_model_input, check_real, check_real_array, check_values
from ..nn.state import untouched
from ..nn.losses import as_targets, mse
from ..nn.params import as_flat, flatten, params_dtype, sq_norm
from .ntk import empirical_ntk
from .spectrum import Spectrum, ntk_spectrum

__all__ = [
    "Check",
    "LossGrad",
    "loss_and_gradient",
    "forward_backward",
    "rounding_rtol",
    "gradient_from_jacobian",
    "gradient_norm_identity",
    "pl_step6_rayleigh",
    "pl_step7_gradient_bound",
    "pl_step8_loss_bound",
    "pl_step9_pl_inequality",
    "pl_constant",
    "pl_ratio",
    "gauss_newton_smoothness",
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

    @classmethod
    def geq(cls, lhs: float, rhs: float, rtol: float, scale: float | None = None) -> "Check":
        """``lhs ≥ rhs`` up to the slack ``rtol · scale`` (``scale`` default ``max(|lhs|, |rhs|)``)."""
        scale = max(abs(lhs), abs(rhs)) if scale is None else scale
        return cls(lhs, rhs, bool(lhs >= rhs - rtol * scale))

    @classmethod
    def leq(cls, lhs: float, rhs: float, rtol: float, scale: float | None = None) -> "Check":
        """``lhs ≤ rhs`` up to the slack ``rtol · scale`` (``scale`` default ``max(|lhs|, |rhs|)``)."""
        scale = max(abs(lhs), abs(rhs)) if scale is None else scale
        return cls(lhs, rhs, bool(lhs <= rhs + rtol * scale))


def rounding_rtol(*arrays, rtol=None) -> float:
    """The relative slack of a :class:`Check`: ``rtol`` if given, else from the arrays' dtype.

    ``1e-5`` if any array is float32 (the terms were rounded to 7 digits), else ``1e-12``.
    """
    if rtol is not None:
        return float(rtol)
    low = any(getattr(a, "dtype", None) is not None and a.dtype == np.float32 for a in arrays)
    return 1e-5 if low else 1e-12


def _lam(name, lam):
    """``λ`` from a float or a Spectrum (its lower bound); must be ≥ 0."""
    if isinstance(lam, Spectrum):
        return lam.lam_min_lower
    try:
        v = float(lam)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number or a minilplr.theory.spectrum.Spectrum, "
                        f"got {type(lam).__name__}") from None
    if not (v >= 0) or math.isinf(v):
        raise ValueError(f"{name}: expected a finite non-negative eigenvalue, got {lam!r}")
    return v


def _n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected the number of samples, a positive integer, got {n!r}")
    return int(n)


# --------------------------------------------------------------------------- loss, gradient, residual


class LossGrad(NamedTuple):
    """``L`` (float), ``∇L`` ``(P,)``, ``r`` ``(N·K,)`` (device arrays) and ``n``, the number of samples ``N``."""

    loss: float
    grad: object
    r: object
    n: int


def loss_and_gradient(model, X, y) -> LossGrad:
    r"""One forward and one backward pass: ``L = 1/(2N)‖f − y‖²``, ``∇L`` and ``r``.

    The gradient is the hand-written backward's, flattened in ``model.params``
    order (the columns of ``J``).  ``r = f(X; θ) − y`` flattened, row
    ``i·K + k`` (the rows of ``J``).  The model is left untouched
    (:func:`~minilplr.nn.state.untouched`): ``model.grads`` and the cached
    activations are what they were before the call, and a training-mode batch
    norm's running statistics have not moved.
    """
    with untouched(model):
        return forward_backward(model, X, y)


def forward_backward(model, X, y) -> LossGrad:
    """:func:`loss_and_gradient` on the model itself: ``model.grads`` and the caches are this pass's afterwards.

    For a caller that wants the pass's state (:mod:`.smoothness` freezes the ReLU masks this forward pass
    set, or differentiates ``∇L`` at ``θ ± hv`` inside its own :func:`~minilplr.nn.state.untouched`).
    ``X (N, D)``, ``y (N, K)`` or ``(N,)`` on the model's backend.
    """
    if not hasattr(y, "shape"):
        raise TypeError(f"y: expected an array of targets (N, K) or (N,), got {type(y).__name__}")
    pred = model.forward(X)
    loss, dpred = mse(pred, y)
    model.backward(dpred, need_dx=False)  # ∇_θ L only: nobody differentiates the data
    r = (pred - as_targets(pred, y)).reshape(-1)  # r = f(X; θ) − y
    return LossGrad(to_scalar(loss), flatten(model.grads), r, int(pred.shape[0]))


def gradient_from_jacobian(J, r, n: int):
    r"""``∇L = (1/N) Jᵀ r`` (THEORY.md §1, proof of Theorem 5.1: "the gradient is ∇L = (1/n)Jᵀr", the paper's n = N).

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
    r"""``‖∇L‖² = (1/N²) rᵀ Θ r`` (THEORY.md §1, proof of Theorem 5.1; an identity).

    ``lhs = ‖∇L‖²`` from the gradient handed in (the backward pass's),
    ``rhs = rᵀΘr/N²`` with ``N = n``, the number of samples; ``holds`` if they agree to ``rtol`` relative
    (default ``1e-9`` in float64, ``1e-4`` in float32).
    """
    n = _n(n)
    g, r = as_flat(grad, "grad"), r.reshape(-1)
    lhs = sq_norm(g)
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
    return Check.geq(lhs, lam * to_scalar(r64 @ r64), rounding_rtol(theta, r, rtol=rtol))


def pl_step7_gradient_bound(grad, r, lam_min, n: int, rtol=None) -> Check:
    r"""Step (7): the bound substituted into the gradient norm.

    .. math:: \lVert\nabla L\rVert^2 = \frac{1}{N^2} r^\top\Theta r
              \;\ge\; \frac{\lambda_{\min}(\Theta)}{N^2}\lVert r\rVert^2 \tag{7}

    (reconstruction of the blank (7)).  ``lhs`` is ``‖∇L‖²`` of the gradient
    handed in (the hand-written backward's), so this checks (6) and the
    identity ``∇L = (1/N)Jᵀr`` together; ``n`` is ``N``.

    Returns
    -------
    Check(lhs = ‖∇L‖², rhs = λ_min‖r‖²/N², holds)
    """
    n, lam, g = _n(n), _lam("lam_min", lam_min), as_flat(grad, "grad")
    return Check.geq(sq_norm(g), lam / n**2 * sq_norm(r), rounding_rtol(g, r, rtol=rtol))


def pl_step8_loss_bound(grad, loss, lam_min, n: int, rtol=None) -> Check:
    r"""Step (8): with ``‖r‖² = 2NL`` (the loss's definition), the bound in terms of ``L``.

    .. math:: \lVert\nabla L\rVert^2 \;\ge\; \frac{2\lambda_{\min}(\Theta)}{N}\, L \tag{8}

    (reconstruction of the blank (8)); ``n`` is ``N``.

    Returns
    -------
    Check(lhs = ‖∇L‖², rhs = 2 λ_min L / N, holds)
    """
    n, lam, g = _n(n), _lam("lam_min", lam_min), as_flat(grad, "grad")
    L = float(loss)
    return Check.geq(sq_norm(g), 2.0 * lam / n * L, rounding_rtol(g, rtol=rtol))


def pl_step9_pl_inequality(grad, loss, lam_min, n: int, loss_star: float = 0.0, rtol=None) -> Check:
    r"""Step (9), the PL inequality of Theorem 5.1 with ``μ = λ_min(Θ)/N``.

    .. math:: \tfrac12\lVert\nabla L\rVert^2 \;\ge\; \mu\,(L - L^*),
              \qquad \mu = \frac{\lambda_{\min}(\Theta)}{N} \tag{9}

    (the local form of (1)/(2); reconstruction of the blank (9)).  Follows from
    (8) for any ``L* ≥ 0``; ``n`` is ``N``.

    Returns
    -------
    Check(lhs = ½‖∇L‖², rhs = μ (L − L*), holds)
    """
    n, lam, g = _n(n), _lam("lam_min", lam_min), as_flat(grad, "grad")
    loss, loss_star = check_real("loss", loss), check_real("loss_star", loss_star)  # NaN: no verdict
    mu = lam / n
    return Check.geq(0.5 * sq_norm(g), mu * (loss - loss_star), rounding_rtol(g, rtol=rtol))


def pl_constant(lam_min, n: int) -> float:
    r"""The local PL constant of Theorem 5.1, ``μ = λ_min(Θ)/N`` (THEORY.md §1, step (9)); ``n`` is ``N``.

    ``lam_min``: a float, or a :class:`~minilplr.theory.spectrum.Spectrum` (then its lower
    bound: ``0`` when ``λ_min`` is unresolved, so ``μ`` is never claimed from
    rounding noise).
    """
    return _lam("lam_min", lam_min) / _n(n)


def pl_ratio(grad, loss, loss_star: float = 0.0) -> float:
    r"""The empirical PL ratio ``‖∇L‖² / (2(L − L*))`` (THEORY.md §1, arXiv v3 diagnostics).

    .. math:: \frac{\lVert\nabla L\rVert^2}{2\,(L - L^*)} \;\ge\; \mu \text{ wherever (9) holds}

    By (8) it is at least ``λ_min(Θ)/N`` at every point (with ``L* = 0``): a
    free consistency check of any eigen-solver.  ``nan`` where ``L ≤ L*``
    (the ratio is undefined at the minimum).

    Parameters
    ----------
    grad : array (P,), or a ``name -> array`` mapping (``model.grads``)
    loss, loss_star : float
    """
    gap = check_real("loss", loss) - check_real("loss_star", loss_star)
    if not gap > 0:
        return math.nan
    return sq_norm(as_flat(grad, "grad")) / (2.0 * gap)


def gauss_newton_smoothness(lam_max, n: int) -> float:
    r"""Smoothness of the Gauss–Newton part of the Hessian, ``λ_max(Θ)/N`` (THEORY.md §1, consequence).

    .. math:: \nabla^2 L = \underbrace{\tfrac1N J^\top J}_{\text{Gauss–Newton}}
              + \tfrac1N\sum_i r_i \nabla^2 r_i,
              \qquad \lambda_{\max}\big(\tfrac1N J^\top J\big) = \frac{\lambda_{\max}(\Theta)}{N}

    (not in the paper; ``n`` is ``N``).  It lives here, beside ``μ = λ_min/N``, because both
    are read off the same spectrum and :func:`pl_diagnostics` reports both;
    the Hessian's own top eigenvalue ``β`` is
    :func:`minilplr.theory.smoothness.hessian_top_eigenvalue`.  Equals the Hessian's top eigenvalue when the
    residual-curvature term vanishes (a linear model, or ``r = 0``).
    ``lam_max``: a float or a :class:`~minilplr.theory.spectrum.Spectrum`.
    """
    v = lam_max.lam_max if isinstance(lam_max, Spectrum) else float(lam_max)
    return v / _n(n)



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
    :func:`~minilplr.theory.spectrum.ntk_spectrum` (``solver``).  ``n = N = X.shape[0]``.

    The model is left untouched (:func:`~minilplr.nn.state.untouched`).

    Returns
    -------
    PLReport with ``steps = {6: Check, 7: Check, 8: Check, 9: Check}``.
    """
    loss_star = check_real("loss_star", loss_star)  # a NaN L* would make every step's verdict False, silently
    check_model_input(model, X)  # the training loops' check of X
    if hasattr(y, "dtype"):
        check_real_array("y", y)
        check_values("y", y)  # NaN targets: one line, not a verdict
    with untouched(model):
        lg = forward_backward(model, X, y)
        theta = empirical_ntk(model, X, method=method, dtype=dtype)
    spec = ntk_spectrum(theta, solver=solver, factors=params_dtype(model))  # the factors' floor: the model's dtype
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
        grad_sq=sq_norm(lg.grad),
        spectrum=spec,
        mu=pl_constant(spec, n),
        pl_ratio=pl_ratio(lg.grad, lg.loss, loss_star),
        smoothness_gn=gauss_newton_smoothness(spec, n),
        identity=gradient_norm_identity(lg.grad, theta, lg.r, n),
        steps=steps,
    )
