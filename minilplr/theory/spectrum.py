r"""The spectrum of the empirical NTK Θ, with an honest ``λ_min`` (THEORY.md §1).

Θ = J Jᵀ ``(N·K, N·K)`` comes from :mod:`.ntk`.  Its smallest eigenvalue
gives the PL constant ``μ = λ_min(Θ)/n`` of Theorem 5.1
(:func:`minilplr.theory.pl.pl_constant`, steps (6)–(9)), its largest the
Gauss–Newton smoothness ``λ_max(Θ)/n``:

.. math:: \lambda_{\min}(\Theta) = \min_{\lVert v\rVert = 1} v^\top \Theta v, \qquad
          \kappa = \lambda_{\max}/\lambda_{\min}

What is here: :func:`ntk_spectrum` -> :class:`Spectrum` (dense ``eigvalsh``
or Lanczos), :func:`symmetric_norm` (``‖A‖₂`` of a symmetric matrix, for the
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
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..backend import backend_of, get_array_module, to_device, to_host, to_scalar

__all__ = ["Spectrum", "ntk_spectrum", "symmetric_norm", "DENSE_MAX"]

DENSE_MAX = 16384
"""``solver="auto"`` uses the dense eigen-solver up to this side length, Lanczos above.

Dense is the better choice wherever Θ fits twice in memory: Lanczos finds
``λ_max`` in a few dozen products but ``λ_min`` of an ill-conditioned Θ only
slowly (measured on a shared 2-core CPU, a ``5000 × 5000`` NTK with
``κ ≈ 7·10⁴``: ``eigvalsh`` 7.7 s, ARPACK ``"SA"`` 47 s with 64 Lanczos
vectors, 337 s with ARPACK's default 20)."""
LANCZOS_NCV = 64
LANCZOS_MAXITER = 5000


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
    """

    lam_min_computed: float
    lam_max: float
    floor: float
    size: int
    eps: float
    solver: str
    eigenvalues: np.ndarray | None = field(default=None, repr=False)
    converged: bool = True

    @property
    def resolved(self) -> bool:
        """``λ_min`` is above the floor: a positive number we can trust to ``± floor``."""
        return self.converged and self.lam_min_computed > self.floor

    @property
    def lam_min(self):
        """``λ_min(Θ)`` as a float if resolved, else ``None`` (use :attr:`lam_min_upper`)."""
        return self.lam_min_computed if self.resolved else None

    @property
    def lam_min_lower(self) -> float:
        """A lower bound ``max(λ_computed − floor, 0)`` (Θ is PSD): 0 when unresolved."""
        return max(self.lam_min_computed - self.floor, 0.0) if self.resolved else 0.0

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
            lo = f"λ_min = {self.lam_min_computed:.6g} (± floor {self.floor:.3g})"
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
    solver : {"auto", "dense", "lanczos"}
        ``dense``: ``xp.linalg.eigvalsh`` (all eigenvalues, on the array's own
        backend); ``lanczos``: ARPACK's ``eigsh`` for the two extreme
        eigenvalues only; ``auto``: dense up to ``dense_max``, else Lanczos.
    tol : float
        Lanczos relative tolerance; the floor is at least ``tol · λ_max``.

    Returns
    -------
    Spectrum
    """
    _check_square("theta", theta)
    if solver not in ("auto", "dense", "lanczos"):
        raise ValueError(f"solver: expected 'auto', 'dense' or 'lanczos', got {solver!r}")
    if eps is None:
        eps = float(np.finfo(theta.dtype).eps)
    elif not (float(eps) > 0):
        raise ValueError(f"eps: expected a positive unit roundoff, got {eps!r}")
    if not (float(tol) > 0):
        raise ValueError(f"tol: expected a positive tolerance, got {tol!r}")
    n = theta.shape[0]
    t64 = theta.astype(np.float64)  # spectra in float64 whatever the training dtype
    t64 = (t64 + t64.T) * 0.5  # symmetric to the last bit
    if solver == "auto":
        solver = "dense" if n <= max(int(dense_max), 2) else "lanczos"
    if solver == "lanczos" and n < 3:
        solver = "dense"  # ARPACK needs k < N - 1
    if solver == "dense":
        xp = get_array_module(t64)
        ev = xp.linalg.eigvalsh(t64)  # ascending
        lam_min, lam_max = to_scalar(ev[0]), to_scalar(ev[-1])
        floor = eps * n * max(abs(lam_max), abs(lam_min))
        return Spectrum(lam_min, lam_max, floor, n, float(eps), "dense", to_host(ev))
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
