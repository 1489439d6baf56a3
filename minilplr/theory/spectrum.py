r"""The spectrum of the empirical NTK Θ, with an honest ``λ_min`` (THEORY.md §1).

Θ = J Jᵀ ``(N·K, N·K)`` comes from :mod:`.ntk`.  Its smallest eigenvalue
gives the PL constant ``μ = λ_min(Θ)/n`` of Theorem 5.1
(:func:`minilplr.theory.pl.pl_constant`, steps (6)–(9)), its largest the
Gauss–Newton smoothness ``λ_max(Θ)/n``:

.. math:: \lambda_{\min}(\Theta) = \min_{\lVert v\rVert = 1} v^\top \Theta v, \qquad
          \kappa = \lambda_{\max}/\lambda_{\min}

What is here: :func:`ntk_spectrum` -> :class:`Spectrum` (dense ``eigvalsh``,
shift-invert Lanczos through a Cholesky factor, or plain Lanczos), :func:`symmetric_norm` (``‖A‖₂`` of a symmetric matrix, for the
NTK drift of :mod:`minilplr.theory.dynamics`) and the Lanczos call they share.
Imports only the backend; never the training loops or the experiments.

Precision, and an honest ``λ_min``
----------------------------------
Θ is assembled in ``dtype`` (default: the model's).  Its spectrum is always
computed in float64 (:func:`ntk_spectrum`), but an eigenvalue of a matrix
known to ``ε`` relative can only be told from zero above a floor
``ε · (N·K) · λ_max`` (Weyl: an entrywise perturbation of relative size
``ε`` moves eigenvalues by up to ``ε · N · max|Θ_ij| ≤ ε · N · λ_max``).
A ``λ_min`` under the floor is reported *unresolved*, with the bound
``λ_min ≤ floor + computed``, never as a number.

The floor is a worst case.  For the paper's MLP at ``N = 1000`` a float32 Θ
has floor ``≈ 200`` against ``λ_min ≈ 275``, yet agrees with the float64 Θ
to six digits; ``empirical_ntk(..., dtype="float64")`` on the float32 model
costs a little more (float64 Gram products) and lowers the floor to
``≈ 4·10⁻⁷``.  Its factors ``A``, ``G`` are still float32: the result is the
exact kernel of a Jacobian within ``≈ ε₃₂`` (relative) of the float32
model's, so ``√λ_min`` is known to about ``ε₃₂ √λ_max``; pass
``eps=np.finfo(np.float32).eps`` to :func:`ntk_spectrum` for the
conservative floor.

The solver by size
------------------
Up to :data:`DENSE_MAX` the dense ``eigvalsh`` (all eigenvalues, ``~n³``
flops but half of them memory-bound, and three ``n × n`` copies).  Above it,
``"shift-invert"``: ``λ_max`` by Lanczos on Θ, then a Cholesky factor
``Θ = L Lᵀ`` (``n³/3`` flops, BLAS 3, in place of the one float64 copy) and
Lanczos on ``Θ⁻¹ = L⁻ᵀ L⁻¹`` (two triangular solves a step), whose largest
eigenvalue ``1/λ_min`` is its best separated one: it converges in tens of
steps where Lanczos on Θ itself needs thousands for ``λ_min`` of an
ill-conditioned Θ.  A Cholesky that fails says Θ is not positive definite to
working precision (``λ_min`` at or under the floor): reported unresolved.
The achieved accuracy is measured, not assumed: the Ritz vector ``v`` of
``λ_min`` gives the residual ``‖Θv − λv‖`` (:attr:`Spectrum.residual`), and a
symmetric matrix has an eigenvalue within it of ``λ``.  Memory: Θ and one
float64 copy (2 × 1.28 GB at ``N = 12,665``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..backend import backend_of, get_array_module, to_device, to_host, to_scalar

__all__ = ["Spectrum", "ntk_spectrum", "symmetric_norm", "DENSE_MAX"]

DENSE_MAX = 4096
"""``solver="auto"`` uses the dense eigen-solver up to this side length, shift-invert above.

Measured on a shared 2-core CPU: ``eigvalsh`` 5.5 s at ``n = 4000`` (≈ 170 s
extrapolated to ``n = 12,665``, with three 1.28 GB copies); a Cholesky factor
2 s at ``n = 4000``, 13 s at ``n = 8000``.  Plain Lanczos is no alternative
for ``λ_min``: a ``5000 × 5000`` NTK with ``κ ≈ 7·10⁴`` took ARPACK ``"SA"``
47 s with 64 Lanczos vectors, 337 s with ARPACK's default 20."""
LANCZOS_NCV = 64
LANCZOS_MAXITER = 5000
SHIFT_INVERT_STEPS = 300
"""Most Lanczos steps of the shift-invert solver (full reorthogonalisation: the basis is ``steps × n``)."""
TILE = 256
"""Side of the square pieces in which the shift-invert solver copies and multiplies Θ."""


# --------------------------------------------------------------------------- the spectrum


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Extreme eigenvalues of Θ (float64), with the floor below which ``λ_min`` is not resolved.

    Attributes
    ----------
    lam_min_computed : float
        What the solver returned.  Meaningful only when :attr:`resolved`;
        read :attr:`lam_min` (``None`` when unresolved) instead.
    lam_max : float
    floor : float
        ``ε · size · λ_max`` (dense) or ``max(ε · size, tol) · λ_max``
        (Lanczos): eigenvalues within ``floor`` of each other, or of zero,
        cannot be told apart in the dtype Θ was assembled in.
    size : int
        ``N·K``, Θ's side.
    eps : float
        Unit roundoff used for the floor.
    solver : str
        ``"dense"`` or ``"lanczos"``.
    eigenvalues : numpy array or None
        All eigenvalues, ascending, on the host (dense solver only).
    converged : bool
        ``False`` when Lanczos stopped before converging for ``λ_min``: then
        ``lam_min_computed`` is its smallest Ritz value, which is an upper
        bound of ``λ_min`` (Ritz values lie inside the spectrum), and
        ``λ_min`` is reported unresolved.
    residual : float or None
        Shift-invert only: ``‖Θv − λv‖`` for the unit Ritz vector ``v`` of
        ``lam_min_computed``, computed with Θ itself; Θ has an eigenvalue
        within ``residual`` of it.  ``λ_min`` counts as resolved only above
        ``floor + residual``.
    """

    lam_min_computed: float
    lam_max: float
    floor: float
    size: int
    eps: float
    solver: str
    eigenvalues: np.ndarray | None = field(default=None, repr=False)
    converged: bool = True
    residual: float | None = None

    @property
    def _slack(self) -> float:
        """What ``λ_min`` is known to: the floor, plus the residual where one was measured."""
        return self.floor + (self.residual or 0.0)

    @property
    def resolved(self) -> bool:
        """``λ_min`` is above the floor (and residual): a positive number we can trust to ``± (floor + residual)``."""
        return self.converged and self.lam_min_computed > self._slack

    @property
    def lam_min(self):
        """``λ_min(Θ)`` as a float if resolved, else ``None`` (use :attr:`lam_min_upper`)."""
        return self.lam_min_computed if self.resolved else None

    @property
    def lam_min_lower(self) -> float:
        """A lower bound ``max(λ_computed − floor − residual, 0)`` (Θ is PSD): 0 when unresolved."""
        return max(self.lam_min_computed - self._slack, 0.0) if self.resolved else 0.0

    @property
    def lam_min_upper(self) -> float:
        """An upper bound ``max(λ_computed, 0) + floor``; what to report when unresolved."""
        return max(self.lam_min_computed, 0.0) + self.floor

    @property
    def cond(self) -> float:
        """Condition number ``λ_max/λ_min``; ``inf`` when ``λ_min`` is unresolved."""
        return self.lam_max / self.lam_min_computed if self.resolved else math.inf

    def __str__(self):
        if self.resolved:
            res = "" if self.residual is None else f", residual ‖Θv − λv‖ {self.residual:.3g}"
            lo = f"λ_min = {self.lam_min_computed:.6g} (± floor {self.floor:.3g}{res})"
        elif not self.converged:
            lo = f"λ_min ≤ {self.lam_min_upper:.3g} (unresolved: Lanczos did not converge; try solver='dense')"
        else:
            lo = f"λ_min ≤ {self.lam_min_upper:.3g} (unresolved: below the floor ε·N·λ_max = {self.floor:.3g}, ε = {self.eps:.3g})"
        return f"{lo}, λ_max = {self.lam_max:.6g}, cond = {self.cond:.4g} [{self.solver}, {self.size}×{self.size}]"


def _check_square(name, theta):
    if not hasattr(theta, "ndim") or theta.ndim != 2 or theta.shape[0] != theta.shape[1] or theta.shape[0] < 1:
        raise ValueError(f"{name}: expected a square (N·K, N·K) array, got {getattr(theta, 'shape', type(theta).__name__)}")
    if theta.dtype.kind != "f":
        raise ValueError(f"{name}: expected a floating array, got dtype {theta.dtype}")


def _lanczos(sym64, which: str, tol: float):
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


def _shift_invert(theta, eps: float, tol: float) -> Spectrum:
    """``λ_max`` by Lanczos on Θ, ``λ_min`` by Lanczos on ``Θ⁻¹`` through a Cholesky factor, and its residual."""
    xp = get_array_module(theta)
    be = backend_of(theta)
    n = theta.shape[0]
    c64 = _sym64(theta)  # the one float64 copy: (Θ + Θᵀ)/2
    lam_max, _, ok_max = _lanczos_top(lambda v: c64 @ v, n, xp, be, tol)
    if not ok_max:
        raise RuntimeError(f"theta: Lanczos did not converge for λ_max in {SHIFT_INVERT_STEPS} steps; use solver='dense'")
    floor = eps * n * abs(lam_max)
    L = _cholesky_lower(c64)  # c64 is overwritten (NumPy)
    del c64
    if L is None:  # not positive definite to working precision: λ_min is at or under the floor
        return Spectrum(0.0, lam_max, floor, n, eps, "shift-invert")
    mu, v, ok = _lanczos_top(_cholesky_solver(L), n, xp, be, tol)  # μ = 1/λ_min, the top of Θ⁻¹
    del L
    lam_min = 1.0 / mu if mu > 0 else 0.0
    residual = to_scalar(xp.linalg.norm(_sym_matvec(theta, v) - lam_min * v))  # ‖Θv − λv‖, with Θ itself
    return Spectrum(lam_min, lam_max, floor, n, eps, "shift-invert", converged=ok, residual=residual)


def ntk_spectrum(theta, eps: float | None = None, solver: str = "auto", dense_max: int = DENSE_MAX,
                 tol: float = 1e-10) -> Spectrum:
    r"""``λ_min``, ``λ_max`` and the condition number of Θ, in float64.

    .. math:: \lambda_{\min}(\Theta) = \min_{\lVert v\rVert = 1} v^\top \Theta v, \qquad
              \kappa = \lambda_{\max}/\lambda_{\min}

    Parameters
    ----------
    theta : array (N·K, N·K), symmetric PSD (any float dtype, any backend)
        Cast to float64 and symmetrised ``(Θ + Θᵀ)/2`` before solving.
    eps : float, optional
        Unit roundoff of the arithmetic that assembled Θ; default
        ``finfo(theta.dtype).eps``.  Sets the floor ``ε · N·K · λ_max``.
    solver : {"auto", "dense", "shift-invert", "lanczos"}
        ``dense``: ``xp.linalg.eigvalsh`` (all eigenvalues, on the array's own
        backend); ``shift-invert``: Lanczos on Θ for ``λ_max`` and on ``Θ⁻¹``
        (a Cholesky factor) for ``λ_min``, with its residual (module
        docstring); ``lanczos``: ARPACK's ``eigsh`` on Θ for the two extreme
        eigenvalues; ``auto``: dense up to ``dense_max``, else shift-invert.
    tol : float
        Lanczos relative tolerance; for ``"lanczos"`` the floor is at least
        ``tol · λ_max`` (``"shift-invert"`` measures its residual instead).

    Returns
    -------
    Spectrum
    """
    _check_square("theta", theta)
    if solver not in ("auto", "dense", "shift-invert", "lanczos"):
        raise ValueError(f"solver: expected 'auto', 'dense', 'shift-invert' or 'lanczos', got {solver!r}")
    if eps is None:
        eps = float(np.finfo(theta.dtype).eps)
    elif not (float(eps) > 0):
        raise ValueError(f"eps: expected a positive unit roundoff, got {eps!r}")
    if not (float(tol) > 0):
        raise ValueError(f"tol: expected a positive tolerance, got {tol!r}")
    n = theta.shape[0]
    if solver == "auto":
        solver = "dense" if n <= max(int(dense_max), 2) else "shift-invert"
    if solver == "lanczos" and n < 3:
        solver = "dense"  # ARPACK needs k < N - 1
    if solver == "shift-invert":
        return _shift_invert(theta, float(eps), float(tol))
    t64 = theta.astype(np.float64)  # spectra in float64 whatever the training dtype
    t64 = (t64 + t64.T) * 0.5  # symmetric to the last bit
    if solver == "dense":
        xp = get_array_module(t64)
        ev = xp.linalg.eigvalsh(t64)  # ascending
        ev = to_host(ev)  # one sync: the spectrum crosses once, both ends read on the host
        lam_min, lam_max = float(ev[0]), float(ev[-1])
        floor = eps * n * max(abs(lam_max), abs(lam_min))
        return Spectrum(lam_min, lam_max, floor, n, float(eps), "dense", ev)
    lam_max, ok_max = _lanczos(t64, "LA", tol)
    if not ok_max:
        raise RuntimeError(f"theta: Lanczos did not converge for λ_max in {LANCZOS_MAXITER} restarts; use solver='dense'")
    lam_min, ok_min = _lanczos(t64, "SA", tol)
    if math.isnan(lam_min):
        lam_min, ok_min = lam_max, False  # no Ritz value at all: only λ_min ≤ λ_max is known
    floor = max(eps * n, float(tol)) * max(abs(lam_max), abs(lam_min))
    return Spectrum(lam_min, lam_max, floor, n, float(eps), "lanczos", converged=ok_min)


def symmetric_norm(A, solver: str = "auto", dense_max: int = DENSE_MAX, tol: float = 1e-10) -> float:
    """Spectral norm ``‖A‖₂ = max |λ_i(A)|`` of a symmetric ``(M, M)`` array, in float64.

    Dense ``eigvalsh`` up to ``dense_max``, else Lanczos (ARPACK, ``which="LM"``).
    """
    _check_square("A", A)
    if solver not in ("auto", "dense", "lanczos"):
        raise ValueError(f"solver: expected 'auto', 'dense' or 'lanczos', got {solver!r}")
    a64 = A.astype(np.float64)
    a64 = (a64 + a64.T) * 0.5
    n = a64.shape[0]
    if solver == "auto":
        solver = "dense" if n <= max(int(dense_max), 2) else "lanczos"
    if solver == "dense" or n < 3:
        xp = get_array_module(a64)
        ev = xp.linalg.eigvalsh(a64)
        return max(abs(to_scalar(ev[0])), abs(to_scalar(ev[-1])))
    value, ok = _lanczos(a64, "LM", tol)
    if not ok:
        raise RuntimeError(f"A: Lanczos did not converge for the spectral norm in {LANCZOS_MAXITER} restarts; use solver='dense'")
    return abs(value)
