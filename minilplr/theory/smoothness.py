r"""Theorem 5.4 of the LPLR paper (THEORY.md §1): smoothness ``β``, the descent lemma, ``η ≤ 1/β``.

Theorem 5.4 assumes ``L`` is β-smooth and ``η ≤ 1/β``; then

.. math:: L(\theta - \eta\nabla L) \le L(\theta) - \eta\Big(1 - \frac{\beta\eta}{2}\Big)\lVert\nabla L\rVert^2 \tag{11}

and with the PL inequality (9) of :mod:`minilplr.theory.pl`,

.. math:: L_{t+1} - L^* \le (1 - \eta\mu)\,(L_t - L^*) \tag{14}

(reconstructions of the blanks (11) and (14)).  What is here: (11) for given
numbers and at the model's ``θ`` (:func:`descent_lemma`,
:func:`descent_lemma_step`), (14) for one step (:func:`contraction_step14`),
Hessian–vector products by central differences of the hand-written gradient
(:func:`hessian_vector_product`), the local smoothness constant
``β = ‖∇²L‖₂`` by Lanczos (:func:`hessian_top_eigenvalue`, :class:`HessianTop`)
and the verdict on ``η ≤ 1/β`` (:func:`step_size_condition`).  The
Gauss–Newton estimate ``λ_max(Θ)/N`` is
:func:`minilplr.theory.pl.gauss_newton_smoothness`, beside ``μ``.

Imports the engine (:mod:`minilplr.nn`) and :mod:`.pl` (:class:`~.pl.Check`
and its :func:`~.pl.rounding_rtol`, the loss and gradient at a point by
:func:`~.pl.forward_backward`); never the training loops or the
experiments.  Functions that take a model leave it exactly as they found it
(:func:`minilplr.nn.state.untouched`).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..backend import backend_of, sparse_linalg, to_device, to_host, to_scalar
from ..nn.state import frozen_activations, untouched
from ..nn.losses import mse
from ..nn.params import as_flat, flatten, load_flat, params_dtype, sq_norm
from .pl import Check, forward_backward, rounding_rtol

__all__ = [
    "descent_lemma",
    "descent_lemma_step",
    "contraction_step14",
    "hessian_vector_product",
    "HessianTop",
    "hessian_top_eigenvalue",
    "step_size_condition",
]


# --------------------------------------------------------------------------- (11) and (14)


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
    g = as_flat(grad, "grad")
    eta, beta, g2 = float(eta), float(beta), sq_norm(g)
    rhs = float(loss) - eta * (1.0 - beta * eta / 2.0) * g2
    scale = abs(float(loss)) + abs(float(loss_next)) + eta * g2 * (1.0 + abs(beta) * eta / 2.0)
    return Check.leq(float(loss_next), rhs + float(atol), rounding_rtol(g, rtol=rtol), scale)


def descent_lemma_step(model, X, y, eta: float, beta: float, rtol=None, atol: float = 0.0) -> Check:
    """(11) at the model's current ``θ``: takes the step ``θ − η∇L``, measures, leaves the model untouched."""
    with untouched(model):
        lg = forward_backward(model, X, y)
        theta0 = flatten(model.params)
        load_flat(model, theta0 - float(eta) * lg.grad.astype(theta0.dtype))
        loss_next = to_scalar(mse(model.forward(X), y)[0])
    return descent_lemma(loss_next, lg.loss, lg.grad, eta, beta, rtol=rtol, atol=atol)


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
    return Check.leq(lhs, rhs + float(atol), 1e-12 if rtol is None else float(rtol), scale)


# --------------------------------------------------------------------------- the Hessian's top eigenvalue


def _require_float64(model):
    dt = params_dtype(model)
    if dt != np.float64:
        raise ValueError(
            f"model: expected a float64 model for finite-difference Hessian-vector products, got {dt} "
            "(float32 differences lose ~3 digits of 7); use minilplr.nn.state.float64_copy(model)"
        )


def hessian_vector_product(model, X, y, v, h: float = 1e-5):
    r"""``H v`` by central differences of the hand-written gradient, in float64.

    .. math:: \nabla^2 L(\theta)\, v \;\approx\; \frac{\nabla L(\theta + h v) - \nabla L(\theta - h v)}{2h}

    Truncation ``O(h²)``, rounding ``O(ε‖∇L‖/h)`` (``h = 1e-5`` balances them
    near ``1e-10`` for ``‖v‖ = 1``).  The ReLU masks are frozen at ``θ``
    (:func:`minilplr.nn.state.frozen_activations`): without that, a difference
    whose two points straddle a kink sees the gradient's jump divided by
    ``2h``.  On the paper's MLP that is no rare event — 200 samples × 1024
    hidden units put a few pre-activations within ``h`` of zero — and it once
    inflated ``β`` from 94 to 656 at ``h = 1e-5``.  Frozen, the result is the
    Hessian of the linear piece at ``θ`` (what autograd computes), the same
    for every ``h``.

    Parameters
    ----------
    model : float64 Model or Sequential (left untouched, :func:`~minilplr.nn.state.untouched`)
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
        forward_backward(model, X, y)  # a forward pass at θ sets the masks to freeze
        with frozen_activations(model):
            return _hvp_frozen(model, X, y, theta0, v, float(h))


def _hvp_frozen(model, X, y, theta0, v, h: float):
    """``(∇L(θ₀+hv) − ∇L(θ₀−hv)) / 2h``, masks already frozen: two gradient evaluations, θ₀ restored."""
    load_flat(model, theta0 + h * v)
    g_plus = forward_backward(model, X, y).grad
    load_flat(model, theta0 - h * v)
    g_minus = forward_backward(model, X, y).grad
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
        solve.  What it shows: *some* eigenvalue lies within ``residual · β``
        of ``rayleigh``.  What it does not: that this eigenvalue is the top
        one.  A Krylov solver from a random start misses the top only when
        the start is nearly orthogonal to its eigenvector, which nothing here
        rules out; if it is the top one, ``β ≤ ‖∇²L‖₂ ≤ β (1 + residual)``.
        Report ``β`` as "converged Lanczos, residual r", not as certified.
        (A ReLU network is not globally smooth either: the gradient jumps
        where an activation pattern flips, and ``β`` is the curvature of the
        linear piece that contains ``θ``, :func:`hessian_vector_product`.)
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
        """``β (1 + residual)`` when converged (the bracket's top if β is the top eigenvalue), else ``inf``."""
        return self.beta * (1.0 + self.residual) if self.converged else math.inf

    def __str__(self):
        state = (f"converged Lanczos, residual {self.residual:.1e}" if self.converged else
                 f"Lanczos NOT converged to tol {self.tol:.0e}, residual {self.residual:.1e}")
        return f"β = {self.beta:.6g} ({state}; {self.matvecs} Hessian-vector products)"


def _top_ritz_vector(matvec, P: int, be, tol: float, ncv: int, maxiter: int, seed: int):
    """The Ritz vector of the largest ``|λ|`` of a symmetric operator ``(P,) -> (P,)`` on the device, by Lanczos.

    On a device (CuPy, and the strict stand-in in CI) with ``P ≥ 4``: the
    backend's own eigensolver, :func:`minilplr.backend.sparse_linalg` (``cupyx``'s
    thick-restart Lanczos on the GPU), every vector on the device.  It has no
    failure signal: ``solver_ok`` is then ``True`` and the caller's measured
    residual alone decides ``converged``.  Two of its conventions differ from
    ARPACK's and are translated here: it needs ``k + 1 < ncv < P`` (so
    ``P ≥ 4``), and its ``maxiter`` counts Lanczos steps, not restarts
    (``ncv`` steps, then ``ncv − 1`` per restart), so ``maxiter`` restarts
    become ``ncv + maxiter·(ncv − 1)`` steps.  (Its ``tol`` bounds the absolute
    residual ``‖Hv − λv‖``, ARPACK's the relative one: with ``β < 1`` the GPU's
    solve may stop above the relative ``tol`` and the result is honestly
    "not converged".)

    NumPy, and any backend with ``P < 4``: SciPy's ARPACK on the host, each
    product crossing explicitly (``to_device`` in, ``to_host`` out, as
    :func:`minilplr.theory.spectrum.solvers.lanczos`); ``ArpackNoConvergence`` gives
    ``solver_ok = False``.  Returns ``(v (P,) on the device, solver_ok)``.
    """
    v0 = np.random.default_rng(seed).standard_normal(P)  # host seed, deterministic start
    if be.name != "numpy" and P >= 4:
        spla = sparse_linalg(be)
        ncv = min(max(int(ncv), 3), P - 1)  # k + 1 < ncv < P, k = 1
        op = spla.LinearOperator((P, P), matvec=lambda v: matvec(v.reshape(-1)), dtype=np.float64)
        _, V = spla.eigsh(op, k=1, which="LM", v0=to_device(v0, be, np.float64), ncv=ncv,
                          maxiter=ncv + int(maxiter) * (ncv - 1), tol=tol)
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

    One more product after the solve measures the residual
    ``‖Hv − λv‖/|λ|`` of the returned pair (see :class:`HessianTop`): the
    result is a *converged Lanczos* estimate with that residual, which
    places an eigenvalue near ``β`` but does not show it is the top one.
    ARPACK giving up (``ArpackNoConvergence``) is caught: the result then has
    ``converged=False`` and ``beta`` is the Rayleigh quotient of its best
    vector, still a lower bound.  The model is left untouched.

    Parameters
    ----------
    model : float64 model (see :func:`minilplr.nn.state.float64_copy`)
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
        forward_backward(model, X, y)  # a forward pass at θ sets the masks to freeze
        with frozen_activations(model):
            v, solver_ok = _top_ritz_vector(matvec, P, be, float(tol), int(ncv), int(maxiter), int(seed))
            v = v / math.sqrt(sq_norm(v))
            Hv = matvec(v)  # one more product: the residual
    lam = to_scalar(v @ Hv)  # vᵀHv, the Rayleigh quotient
    r = math.sqrt(sq_norm(Hv - lam * v))  # ‖Hv − λv‖
    residual = r / abs(lam) if lam != 0 else (0.0 if r == 0 else math.inf)
    return HessianTop(abs(lam), lam, count[0], bool(solver_ok and residual <= tol), residual, float(tol))


def step_size_condition(eta: float, beta) -> Check:
    r"""Theorem 5.4's step-size condition ``η ≤ 1/β``: did it hold?

    ``beta`` a float: ``Check(lhs = η, rhs = 1/β, holds = η ≤ 1/β)`` (exact
    comparison, no slack).

    ``beta`` a :class:`HessianTop`: the verdict rests on what the solver
    showed.  ``β`` is a lower bound of ``‖∇²L‖₂``, so ``ηβ > 1`` *fails*
    whatever the solver did; ``holds`` needs a converged Lanczos and
    ``η · β(1 + residual) ≤ 1`` (the bracket's top, if ``β`` is the top
    eigenvalue: the residual does not show that); anything else is
    ``holds = None``: not established.
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
