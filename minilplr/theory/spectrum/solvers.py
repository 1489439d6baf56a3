r"""The eigen-solvers behind :func:`~minilplr.theory.spectrum.ntk_spectrum`: Lanczos, shift-invert, the Cholesky certificate.

* :func:`lanczos` — one extreme eigenvalue by ARPACK on the host, the matrix
  staying on its device;
* :func:`shift_invert` — ``λ_max`` by Lanczos on Θ, ``λ_min`` by Lanczos on
  ``Θ⁻¹`` through a Cholesky factor (package docstring: "The solver by size");
* :func:`certify_lambda_min` — a Cholesky of ``Θ − s·I`` that shows no
  eigenvalue lies below a Lanczos ``λ_min``.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ...backend import backend_of, get_array_module, to_device, to_host, to_scalar
from .result import Spectrum, factor_floor

LANCZOS_NCV = 64
LANCZOS_MAXITER = 5000
SHIFT_INVERT_STEPS = 300
"""Most Lanczos steps of the shift-invert solver (full reorthogonalisation: the basis is ``steps × n``)."""
TILE = 256
"""Side of the square pieces in which the shift-invert solver copies and multiplies Θ."""


def lanczos(sym64, which: str, tol: float):
    """One extreme eigenvalue of a symmetric float64 device matrix by ARPACK (scipy).

    ARPACK runs on the host; the matrix stays where it is and each
    matrix-vector product crosses explicitly (``to_device`` / ``to_host``), so
    CuPy (and the strict stand-in) never meets SciPy implicitly.

    Returns ``(value, converged)``; when ARPACK gives up, ``value`` is its
    best Ritz value (``nan`` if it has none).
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    be = backend_of(sym64)
    n = sym64.shape[0]

    def matvec(v):
        return to_host(sym64 @ to_device(np.ravel(v), be, np.float64))

    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)  # deterministic start
    try:
        w = eigsh(op, k=1, which=which, tol=tol, v0=v0, ncv=min(n - 1, LANCZOS_NCV), maxiter=LANCZOS_MAXITER,
                  return_eigenvectors=False)
        return float(w[0]), True
    except ArpackNoConvergence as exc:
        return (float(exc.eigenvalues[0]) if len(exc.eigenvalues) else math.nan), False


# --------------------------------------------------------------------------- shift-invert (large Θ)


def _sym64(theta):
    """``(Θ + Θᵀ)/2`` in float64, one new ``(n, n)`` array, built in ``TILE``-sided pieces (no other n×n temporary)."""
    xp = get_array_module(theta)
    n = theta.shape[0]
    out = xp.empty((n, n), dtype=np.float64)
    for i0 in range(0, n, TILE):
        I = slice(i0, min(n, i0 + TILE))
        for j0 in range(i0, n, TILE):
            J = slice(j0, min(n, j0 + TILE))
            blk = theta[I, J].astype(np.float64) + theta[J, I].T.astype(np.float64)
            blk *= 0.5  # (Θ + Θᵀ)/2 on this tile
            out[I, J] = blk
            if j0 != i0:
                out[J, I] = blk.T
    return out


def _sym_matvec(theta, v):
    """``(Θ + Θᵀ)/2 · v`` in float64 without a float64 copy of Θ: row blocks of ``TILE`` rows."""
    xp = get_array_module(theta)
    n = theta.shape[0]
    out = xp.empty(n, dtype=np.float64)
    for i0 in range(0, n, TILE):
        I = slice(i0, min(n, i0 + TILE))
        out[I] = (theta[I, :].astype(np.float64, copy=False) @ v + v @ theta[:, I].astype(np.float64, copy=False)) * 0.5
    return out


def _cholesky_lower(c64):
    """The lower Cholesky factor ``L`` of the symmetric float64 ``c64`` (destroyed), or ``None`` if not positive definite.

    NumPy: LAPACK ``dpotrf`` in place (``c64.T`` is column-major, so SciPy's
    wrapper does not copy), the one ``n × n`` array there is; only ``L``'s
    lower triangle is meaningful.  Other backends: ``xp.linalg.cholesky``
    (a new array; the device has the memory), checked on its diagonal, since
    CuPy reports no failure by default.
    """
    be = backend_of(c64)
    if be.name == "numpy":
        from scipy.linalg import lapack

        L, info = lapack.dpotrf(c64.T, lower=1, overwrite_a=1, clean=0)
        return L if info == 0 else None
    xp = be.xp
    try:
        L = xp.linalg.cholesky(c64)
    except xp.linalg.LinAlgError:
        return None
    d = xp.diagonal(L)
    return L if to_scalar(xp.all(xp.isfinite(d) & (d > 0))) else None


def _cholesky_solver(L):
    """``v -> (L Lᵀ)⁻¹ v``: two triangular solves, on the factor's own backend."""
    be = backend_of(L)
    if be.name == "cupy":
        from cupyx.scipy.linalg import solve_triangular

        return lambda v: solve_triangular(L, solve_triangular(L, v, lower=True), lower=True, trans="T")
    from scipy.linalg import solve_triangular

    if be.name == "numpy":
        return lambda v: solve_triangular(L, solve_triangular(L, v, lower=True, check_finite=False),
                                          lower=True, trans="T", check_finite=False)
    Lh = to_host(L)  # the stand-in: SciPy on the host, crossings explicit (small test matrices only)

    def solve(v):
        y = solve_triangular(Lh, to_host(v), lower=True)
        return to_device(solve_triangular(Lh, y, lower=True, trans="T"), be, np.float64)

    return solve


def _lanczos_top(apply, n: int, xp, be, tol: float, steps: int = SHIFT_INVERT_STEPS):
    r"""The largest eigenvalue of a symmetric operator and its unit Ritz vector: Lanczos, full reorthogonalisation.

    .. math:: A V_m = V_m T_m + \beta_m v_{m+1} e_m^\top, \qquad
              \lVert A y - \theta y\rVert = \beta_m |s_m|

    (``T_m`` tridiagonal, ``(θ, s)`` its top eigenpair, ``y = V_m s``).
    Stops when ``β_m |s_m| ≤ tol · θ``.  Every vector stays on the device;
    only the ``α``, ``β`` cross to the host, where ``T_m`` (at most
    ``steps × steps``) is solved.

    Returns ``(θ, y, converged)``.
    """
    V = xp.empty((min(steps, n) + 1, n), dtype=np.float64)  # the Lanczos basis, one vector per row
    v = to_device(np.random.default_rng(0).standard_normal(n), be, np.float64)  # deterministic start
    V[0] = v / xp.linalg.norm(v)
    alpha, beta = [], []
    theta, s, ok = math.nan, None, False
    for j in range(min(steps, n)):
        w = apply(V[j])
        alpha.append(to_scalar(V[j] @ w))
        w -= alpha[-1] * V[j]
        if j:
            w -= beta[-1] * V[j - 1]
        for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
            w -= V[:j + 1].T @ (V[:j + 1] @ w)
        b = to_scalar(xp.linalg.norm(w))
        T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
        ev, evec = np.linalg.eigh(T)
        theta, s = float(ev[-1]), evec[:, -1]
        if b * abs(s[-1]) <= tol * abs(theta) or b <= 1e-300:  # converged, or an invariant subspace
            ok = True
            break
        beta.append(b)
        V[j + 1] = w / b
    y = V[:len(alpha)].T @ to_device(s, be, np.float64)
    return theta, y / xp.linalg.norm(y), ok


def shift_invert(theta, eps: float, tol: float, factor_eps: float, certify: bool) -> Spectrum:
    """``λ_max`` by Lanczos on Θ, ``λ_min`` by Lanczos on ``Θ⁻¹`` through a Cholesky factor, its residual, the certificate."""
    xp = get_array_module(theta)
    be = backend_of(theta)
    n = theta.shape[0]
    c64 = _sym64(theta)  # the one float64 copy: (Θ + Θᵀ)/2
    lam_max, _, ok_max = _lanczos_top(lambda v: c64 @ v, n, xp, be, tol)
    if not ok_max:
        raise RuntimeError(f"theta: Lanczos did not converge for λ_max in {SHIFT_INVERT_STEPS} steps; use solver='dense'")
    acc = eps * n * abs(lam_max)
    L = _cholesky_lower(c64)  # c64 is overwritten (NumPy)
    del c64
    if L is None:  # not positive definite to working precision: λ_min is at or under the floor
        ff = factor_floor(0.0, lam_max, factor_eps)
        return Spectrum(0.0, lam_max, acc + ff, n, eps, "shift-invert", floor_factors=ff, factor_eps=factor_eps)
    mu, v, ok = _lanczos_top(_cholesky_solver(L), n, xp, be, tol)  # μ = 1/λ_min, the top of Θ⁻¹
    del L
    lam_min = 1.0 / mu if mu > 0 else 0.0
    residual = to_scalar(xp.linalg.norm(_sym_matvec(theta, v) - lam_min * v))  # ‖Θv − λv‖, with Θ itself
    ff = factor_floor(lam_min, lam_max, factor_eps)
    spec = Spectrum(lam_min, lam_max, acc + ff, n, eps, "shift-invert", converged=ok, residual=residual,
                    floor_factors=ff, factor_eps=factor_eps)
    return certify_lambda_min(spec, theta, certify)


def _subtract_diagonal(c64, shift: float) -> None:
    """``c64 -= shift·I`` in place, one ``TILE``-sided diagonal piece at a time (no ``n × n`` identity)."""
    xp = get_array_module(c64)
    n = c64.shape[0]
    for i0 in range(0, n, TILE):
        I = slice(i0, min(n, i0 + TILE))
        c64[I, I] -= float(shift) * xp.eye(I.stop - I.start, dtype=np.float64)


def certify_lambda_min(spec: Spectrum, theta, certify: bool) -> Spectrum:
    r"""A Lanczos ``λ_min`` certified the smallest: Cholesky of ``(Θ + Θᵀ)/2 − s·I``, ``s = λ − floor − residual``.

    .. math:: \Theta - sI = LL^\top \text{ exists} \iff \lambda_{\min}(\Theta) > s

    (to the factorisation's own rounding, of the order of the accumulation
    floor).  Only for a ``λ_min`` that is otherwise resolved; one more float64
    copy of Θ and ``n³/3`` flops.  ``certify=False``: returned as is,
    ``certified = None``.
    """
    if not (spec.converged and spec.lam_min_computed > spec.slack):
        return spec  # unresolved anyway: nothing to certify
    if not certify:
        return replace(spec, certified=None, certificate="not certified (certify=False): a Lanczos residual shows an "
                                                         "eigenvalue near λ_min, not that none lies below")
    shift = spec.lam_min_computed - spec.slack
    c64 = _sym64(theta)
    _subtract_diagonal(c64, shift)
    ok = _cholesky_lower(c64) is not None
    del c64
    if ok:
        return replace(spec, certified=True, certificate=f"Cholesky of Θ − s·I succeeded, s = {shift:.6g}: no "
                                                         "eigenvalue below s")
    return replace(spec, certified=False, certificate=f"Cholesky of Θ − s·I failed, s = {shift:.6g}: Θ has an "
                                                      "eigenvalue below the reported λ_min")
