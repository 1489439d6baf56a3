r"""The spectrum of the empirical NTK Θ, with an honest ``λ_min`` (THEORY.md §1).

Θ = J Jᵀ ``(N·K, N·K)`` comes from :mod:`.ntk`.  Its smallest eigenvalue
gives the PL constant ``μ = λ_min(Θ)/N`` of Theorem 5.1
(:func:`minilplr.theory.pl.pl_constant`, steps (6)–(9)), its largest the
Gauss–Newton smoothness ``λ_max(Θ)/N``:

.. math:: \lambda_{\min}(\Theta) = \min_{\lVert v\rVert = 1} v^\top \Theta v, \qquad
          \kappa = \lambda_{\max}/\lambda_{\min}

What is here: :func:`ntk_spectrum` -> :class:`Spectrum` (dense ``eigvalsh``,
shift-invert Lanczos through a Cholesky factor, or plain Lanczos), :func:`symmetric_norm` (``‖A‖₂`` of a symmetric matrix, for the
NTK drift of :mod:`minilplr.theory.dynamics`) and the Lanczos call they share.
Imports only the backend; never the training loops or the experiments.

Precision, and an honest ``λ_min``
----------------------------------
Θ is assembled in ``dtype`` (default: the model's) from factors (the
layers' inputs ``A`` and sensitivities ``G``, i.e. the Jacobian ``J``)
computed in the model's dtype.  Its spectrum is always computed in float64
(:func:`ntk_spectrum`), but an eigenvalue is known only to a floor, the sum
of two parts (THEORY.md, "Verdicts with power", (F1) and (F2)):

* the accumulation, ``ε_Θ · (N·K) · λ_max`` (F1) with ``ε_Θ`` the machine
  epsilon of Θ's dtype (Weyl: an entrywise perturbation of relative size
  ``ε`` moves eigenvalues by up to ``ε · N · max|Θ_ij| ≤ ε · N · λ_max``);
* the factors, ``2γ√(λ_min λ_max) + γ²λ_max`` with ``γ = c·ε_f`` (F2):
  ``J`` computed in a dtype of machine epsilon ``ε_f`` is ``J + δJ``; the
  singular values of ``J`` move by at most ``‖δJ‖₂`` (Weyl for singular
  values), and ``λ = σ²``, so ``|Δλ| ≤ 2‖δJ‖₂√λ + ‖δJ‖₂²``.  With
  ``‖δJ‖₂ ≤ γ‖J‖₂ = γ√λ_max``.  The constant ``c`` (:data:`FACTOR_ROUNDING`)
  is not known a priori (rounding through every layer, and ReLU masks that
  flip where a pre-activation is within rounding of zero); it is set from a
  measurement (below) with an order of magnitude to spare.

A ``λ_min`` under the floor (plus the solver's residual) is reported
*unresolved*, with the bound ``λ_min ≤ floor + computed``, never as a
number, and the message says what would resolve it.  The floor is the ``±``
that :class:`Spectrum` prints.

Which dtype the factors had, Θ cannot tell (a float64 Θ may come from a
float32 model, ``empirical_ntk(..., dtype="float64")``, or from a float64
one): ``ntk_spectrum(theta, factors=...)`` says it, the model's dtype; by
default the engine's training dtype, float32 — conservative for a float64
model, which passes ``factors="float64"``.

Measured on the Fig. 1 network (``784 → 2048 ×4 → 1``, He, float32, offline
binary MNIST, ``θ_0``), the float32-factor kernel accumulated in float64
against the kernel of the float64 twin (:func:`minilplr.nn.state.float64_copy`):
at ``N = 200``, ``|Δλ_min| = 9.6·10⁻⁷`` (``λ_min = 52.86``, ``λ_max = 9.29·10⁴``);
at ``N = 1000``, ``|Δλ_min| = 5.4·10⁻⁴`` and ``‖ΔΘ‖₂ = 18.2`` (``λ_min = 25.68``,
``λ_max = 4.49·10⁵``), against an accumulation floor of ``1.0·10⁻⁷`` and
``2ε₃₂√(λ_min λ_max) = 8.1·10⁻⁴``: an effective ``c`` of 0.67.  With
``c = 8`` the floor there is ``6.5·10⁻³``.

Smallest, and certified so
--------------------------
A residual ``‖Θv − λv‖`` shows that *an* eigenvalue lies near ``λ``, not
that it is the smallest: a Lanczos run can miss an eigenvalue whose
eigenvector its start barely touches.  :class:`Spectrum` says what
certifies ``λ_min`` (:attr:`Spectrum.certificate`): the dense solver
computes every eigenvalue (backward stable: each within the accumulation
floor of an eigenvalue of Θ), so its smallest is the smallest; the Lanczos
solvers factor ``Θ − s·I`` with ``s = λ − floor − residual`` (Cholesky,
``n³/3`` flops): it succeeds exactly when every eigenvalue of Θ exceeds
``s`` (to the factorisation's own rounding, of the order of the
accumulation floor), so no eigenvalue was missed below the reported one.
A failed factorisation means one was: ``λ_min`` is then unresolved.
``certify=False`` skips the factorisation and the spectrum says "not
certified".

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
from dataclasses import dataclass, field, replace

import numpy as np

from ..backend import backend_of, get_array_module, resolve_dtype, to_device, to_host, to_scalar
from ..validate import check_values

__all__ = ["Spectrum", "ntk_spectrum", "factor_floor", "symmetric_norm", "DENSE_MAX", "FACTOR_ROUNDING"]

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
FACTOR_ROUNDING = 8.0
"""``c`` in ``‖δJ‖₂ ≤ c·ε_f·‖J‖₂``, the Jacobian's rounding relative to its norm (F2).

Measured on the Fig. 1 network at ``θ_0`` (module docstring): the effective
``c`` that reproduces ``|Δλ_min|`` between the float32- and float64-factor
kernels is 0.0018 at ``N = 200`` (``9.6·10⁻⁷/(2ε₃₂√(52.86 · 9.29·10⁴))``)
and 0.67 at ``N = 1000`` (where ReLU masks flipped between the two
precisions: ``‖ΔΘ‖₂ = 18.2``).  8 keeps an order of magnitude above the
largest measured."""


# --------------------------------------------------------------------------- the spectrum


def factor_floor(lam: float, lam_max: float, factor_eps: float, c: float = FACTOR_ROUNDING) -> float:
    r"""How far the float factors of Θ = J Jᵀ can move an eigenvalue ``λ`` (F2).

    .. math:: |\tilde\lambda - \lambda| \le 2\gamma\sqrt{\lambda\,\lambda_{\max}} + \gamma^2 \lambda_{\max},
              \qquad \gamma = c\,\varepsilon_f

    From ``|σ_i(J + δJ) − σ_i(J)| ≤ ‖δJ‖₂`` (Weyl, singular values),
    ``λ = σ²`` and ``‖δJ‖₂ ≤ γ‖J‖₂ = γ√λ_max``.  ``λ`` below 0 counts as 0.
    """
    g = float(c) * float(factor_eps)
    lm = max(float(lam_max), 0.0)
    return 2.0 * g * math.sqrt(max(float(lam), 0.0) * lm) + g * g * lm


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Extreme eigenvalues of Θ (float64), the floor below which ``λ_min`` is not resolved, and what certifies it.

    Attributes
    ----------
    lam_min_computed : float
        What the solver returned.  Meaningful only when :attr:`resolved`;
        read :attr:`lam_min` (``None`` when unresolved) instead.
    lam_max : float
    floor : float
        The ``±`` of ``λ_min``: :attr:`floor_accumulation` (``ε · size · λ_max``
        dense, ``max(ε · size, tol) · λ_max`` Lanczos: the rounding of Θ's
        own dtype) plus :attr:`floor_factors` (the float factors' share, (F2),
        :func:`factor_floor`).
    size : int
        ``N·K``, Θ's side.
    eps : float
        Machine epsilon of Θ's accumulation (``finfo(dtype).eps``; the unit roundoff is half of it).
    solver : str
        ``"dense"``, ``"shift-invert"`` or ``"lanczos"``.
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
        within ``residual`` of it (not necessarily the smallest: see
        :attr:`certified`).  ``λ_min`` counts as resolved only above
        ``floor + residual``.
    floor_factors : float
        The factors' share of :attr:`floor` (0 when the factors are exact).
    factor_eps : float
        Machine epsilon of the factors' dtype (the model's).
    certified : bool or None
        That ``lam_min_computed`` is the *smallest* eigenvalue to within
        ``floor + residual``: ``True`` (dense: every eigenvalue computed;
        Lanczos: Cholesky of ``Θ − s·I`` succeeded, ``s = λ − floor −
        residual``), ``False`` (the factorisation failed: an eigenvalue below
        ``s`` exists and ``λ_min`` is unresolved), ``None`` (not attempted:
        unresolved anyway, or ``certify=False``).
    certificate : str
        What :attr:`certified` rests on, in words.
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
    floor_factors: float = 0.0
    factor_eps: float = 0.0
    certified: bool | None = None
    certificate: str = ""

    @property
    def floor_accumulation(self) -> float:
        """The accumulation's share of :attr:`floor` (F1)."""
        return self.floor - self.floor_factors

    @property
    def _slack(self) -> float:
        """What ``λ_min`` is known to: the floor, plus the residual where one was measured."""
        return self.floor + (self.residual or 0.0)

    @property
    def resolved(self) -> bool:
        """``λ_min`` is above the floor (and residual), and no eigenvalue was found below it: trust it to ``± (floor + residual)``."""
        return self.converged and self.certified is not False and self.lam_min_computed > self._slack

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

    def how_to_resolve(self) -> str:
        """An unresolved ``λ_min``: what would resolve it, in one sentence (empty when resolved)."""
        if self.resolved:
            return ""
        if not self.converged:
            return "Lanczos did not converge: try solver='dense' (or 'shift-invert' above a few thousand)"
        if self.certified is False:
            return ("Θ has an eigenvalue below the one Lanczos found (the Cholesky of Θ − s·I failed): use "
                    "solver='dense'")
        acc = self.floor_accumulation
        eps64 = float(np.finfo(np.float64).eps)
        if acc >= self.floor_factors and self.eps > eps64 * 1.5:
            lower = eps64 * self.size * abs(self.lam_max) + factor_floor(self.lam_min_upper, self.lam_max,
                                                                         max(self.factor_eps, eps64))
            return (f"Θ was accumulated in a dtype of ε = {self.eps:.3g}: assemble it in float64 "
                    f"(empirical_ntk(model, X, dtype='float64')) to lower the floor to ≈ {lower:.2g}")
        if self.floor_factors > acc and self.factor_eps > eps64 * 1.5:
            lower = acc + factor_floor(self.lam_min_upper, self.lam_max, eps64)
            return (f"the floor is set by the factors' precision (ε_f = {self.factor_eps:.3g}): a float64 model "
                    f"(minilplr.nn.state.float64_copy) and factors='float64' lower it to ≈ {lower:.2g}")
        return ("λ_min is at float64's rounding floor: Θ is singular to working precision (N·K > P, duplicate "
                "samples, or a network that cannot fit every target)")

    def __str__(self):
        if self.resolved:
            res = "" if self.residual is None else f", residual ‖Θv − λv‖ {self.residual:.3g}"
            cert = f"; the smallest: {self.certificate}" if self.certificate else ""
            lo = (f"λ_min = {self.lam_min_computed:.6g} ± {self.floor:.2g} (accumulation "
                  f"{self.floor_accumulation:.2g} + factors {self.floor_factors:.2g}{res}{cert})")
        elif not self.converged:
            lo = f"λ_min ≤ {self.lam_min_upper:.3g} (unresolved: {self.how_to_resolve()})"
        else:
            lo = (f"λ_min ≤ {self.lam_min_upper:.3g} (unresolved: below the floor {self.floor:.3g} = accumulation "
                  f"ε·N·λ_max {self.floor_accumulation:.3g} (ε = {self.eps:.3g}) + factors "
                  f"{self.floor_factors:.3g} (ε_f = {self.factor_eps:.3g}); {self.how_to_resolve()})")
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


def _shift_invert(theta, eps: float, tol: float, factor_eps: float, certify: bool) -> Spectrum:
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
    return _certified(spec, theta, certify)


def _subtract_diagonal(c64, shift: float) -> None:
    """``c64 -= shift·I`` in place, one ``TILE``-sided diagonal piece at a time (no ``n × n`` identity)."""
    xp = get_array_module(c64)
    n = c64.shape[0]
    for i0 in range(0, n, TILE):
        I = slice(i0, min(n, i0 + TILE))
        c64[I, I] -= float(shift) * xp.eye(I.stop - I.start, dtype=np.float64)


def _certified(spec: Spectrum, theta, certify: bool) -> Spectrum:
    r"""A Lanczos ``λ_min`` certified the smallest: Cholesky of ``(Θ + Θᵀ)/2 − s·I``, ``s = λ − floor − residual``.

    .. math:: \Theta - sI = LL^\top \text{ exists} \iff \lambda_{\min}(\Theta) > s

    (to the factorisation's own rounding, of the order of the accumulation
    floor).  Only for a ``λ_min`` that is otherwise resolved; one more float64
    copy of Θ and ``n³/3`` flops.  ``certify=False``: returned as is,
    ``certified = None``.
    """
    if not (spec.converged and spec.lam_min_computed > spec._slack):
        return spec  # unresolved anyway: nothing to certify
    if not certify:
        return replace(spec, certified=None, certificate="not certified (certify=False): a Lanczos residual shows an "
                                                         "eigenvalue near λ_min, not that none lies below")
    shift = spec.lam_min_computed - spec._slack
    c64 = _sym64(theta)
    _subtract_diagonal(c64, shift)
    ok = _cholesky_lower(c64) is not None
    del c64
    if ok:
        return replace(spec, certified=True, certificate=f"Cholesky of Θ − s·I succeeded, s = {shift:.6g}: no "
                                                         "eigenvalue below s")
    return replace(spec, certified=False, certificate=f"Cholesky of Θ − s·I failed, s = {shift:.6g}: Θ has an "
                                                      "eigenvalue below the reported λ_min")


def ntk_spectrum(theta, eps: float | None = None, solver: str = "auto", dense_max: int = DENSE_MAX,
                 tol: float = 1e-10, factors=None, certify: bool = True) -> Spectrum:
    r"""``λ_min``, ``λ_max`` and the condition number of Θ, in float64, with the floor and the certificate of ``λ_min``.

    .. math:: \lambda_{\min}(\Theta) = \min_{\lVert v\rVert = 1} v^\top \Theta v, \qquad
              \kappa = \lambda_{\max}/\lambda_{\min}

    Parameters
    ----------
    theta : array (N·K, N·K), symmetric PSD (any float dtype, any backend)
        Cast to float64 and symmetrised ``(Θ + Θᵀ)/2`` before solving.
    eps : float, optional
        Machine epsilon of the arithmetic that assembled Θ; default
        ``finfo(theta.dtype).eps``.  Sets the accumulation floor ``ε · N·K · λ_max`` (F1).
    solver : {"auto", "dense", "shift-invert", "lanczos"}
        ``dense``: ``xp.linalg.eigvalsh`` (all eigenvalues, on the array's own
        backend); ``shift-invert``: Lanczos on Θ for ``λ_max`` and on ``Θ⁻¹``
        (a Cholesky factor) for ``λ_min``, with its residual (module
        docstring); ``lanczos``: ARPACK's ``eigsh`` on Θ for the two extreme
        eigenvalues; ``auto``: dense up to ``dense_max``, else shift-invert.
    tol : float
        Lanczos relative tolerance; for ``"lanczos"`` the floor is at least
        ``tol · λ_max`` (``"shift-invert"`` measures its residual instead).
    factors : dtype, optional
        The dtype the Jacobian's factors were computed in: the model's
        (:func:`minilplr.nn.params.params_dtype`).  Sets the factors' floor
        (F2, :func:`factor_floor`).  Default: the engine's training dtype,
        float32 (Θ cannot tell; conservative for a float64 model).
    certify : bool
        Lanczos solvers: certify that ``λ_min`` is the smallest eigenvalue by
        a Cholesky of ``Θ − s·I`` (module docstring); ``False`` skips it (the
        spectrum then says "not certified").  The dense solver computes every
        eigenvalue and needs no factorisation.

    Returns
    -------
    Spectrum
    """
    _check_square("theta", theta)
    check_values("theta", theta)  # NaN/inf: one line naming theta, not LinAlgError from the solver (one transfer)
    if solver not in ("auto", "dense", "shift-invert", "lanczos"):
        raise ValueError(f"solver: expected 'auto', 'dense', 'shift-invert' or 'lanczos', got {solver!r}")
    if eps is None:
        eps = float(np.finfo(theta.dtype).eps)
    elif not (float(eps) > 0):
        raise ValueError(f"eps: expected a positive machine epsilon, got {eps!r}")
    if not (float(tol) > 0):
        raise ValueError(f"tol: expected a positive tolerance, got {tol!r}")
    try:
        factor_eps = float(np.finfo(resolve_dtype(factors)).eps)
    except ValueError:
        raise ValueError(f"factors: expected the model's dtype, 'float32' or 'float64', got {factors!r}") from None
    if not isinstance(certify, (bool, np.bool_)):
        raise ValueError(f"certify: expected True or False, got {certify!r}")
    n = theta.shape[0]
    if solver == "auto":
        solver = "dense" if n <= max(int(dense_max), 2) else "shift-invert"
    if solver == "lanczos" and n < 3:
        solver = "dense"  # ARPACK needs k < N - 1
    if solver == "shift-invert":
        return _shift_invert(theta, float(eps), float(tol), factor_eps, bool(certify))
    t64 = theta.astype(np.float64)  # spectra in float64 whatever the training dtype
    t64 = (t64 + t64.T) * 0.5  # symmetric to the last bit
    if solver == "dense":
        xp = get_array_module(t64)
        ev = xp.linalg.eigvalsh(t64)  # ascending
        ev = to_host(ev)  # one sync: the spectrum crosses once, both ends read on the host
        lam_min, lam_max = float(ev[0]), float(ev[-1])
        acc = eps * n * max(abs(lam_max), abs(lam_min))
        ff = factor_floor(lam_min, lam_max, factor_eps)
        return Spectrum(lam_min, lam_max, acc + ff, n, float(eps), "dense", ev, floor_factors=ff,
                        factor_eps=factor_eps, certified=True,
                        certificate="every eigenvalue computed")
    lam_max, ok_max = _lanczos(t64, "LA", tol)
    if not ok_max:
        raise RuntimeError(f"theta: Lanczos did not converge for λ_max in {LANCZOS_MAXITER} restarts; use solver='dense'")
    lam_min, ok_min = _lanczos(t64, "SA", tol)
    if math.isnan(lam_min):
        lam_min, ok_min = lam_max, False  # no Ritz value at all: only λ_min ≤ λ_max is known
    del t64
    acc = max(eps * n, float(tol)) * max(abs(lam_max), abs(lam_min))
    ff = factor_floor(lam_min, lam_max, factor_eps)
    spec = Spectrum(lam_min, lam_max, acc + ff, n, float(eps), "lanczos", converged=ok_min, floor_factors=ff,
                    factor_eps=factor_eps)
    return _certified(spec, theta, bool(certify))


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
