r"""``λ_min``, ``λ_max`` of Θ (:func:`ntk_spectrum`) and ``‖A‖₂`` (:func:`symmetric_norm`): check, pick a solver, report.

Package docstring: the precision of ``λ_min``, its certificate, the solver by size.
"""
from __future__ import annotations

import math

import numpy as np

from ...backend import get_array_module, resolve_dtype, to_host, to_scalar
from ...validate import check_bool, check_finite
from .result import Spectrum, factor_floor
from .solvers import LANCZOS_MAXITER, TILE, certify_lambda_min, lanczos, shift_invert

DENSE_MAX = 4096
"""``solver="auto"`` uses the dense eigen-solver up to this side length, shift-invert above.

Above it the dense ``eigvalsh`` (``~n³`` flops, half of them memory-bound,
three ``n × n`` float64 copies) costs several times a Cholesky factor
(``n³/3`` flops, BLAS 3, one copy); plain Lanczos is no alternative for the
``λ_min`` of an ill-conditioned Θ (thousands of steps).  The measured times
behind the choice are in README's "Time and memory"."""


def _check_square(name, theta):
    if not hasattr(theta, "ndim") or theta.ndim != 2 or theta.shape[0] != theta.shape[1] or theta.shape[0] < 1:
        raise ValueError(f"{name}: expected a square (N·K, N·K) array, got {getattr(theta, 'shape', type(theta).__name__)}")
    if theta.dtype.kind != "f":
        raise ValueError(f"{name}: expected a floating array, got dtype {theta.dtype}")


ASYMMETRY_ROUNDING = 8.0
r"""``c`` in the largest asymmetry a symmetric assembly of Θ can show: ``max|Θ − Θᵀ| ≤ c·ε·max|Θ|``.

The engine's kernels are symmetric to the last bit (a product ``A Aᵀ``
is computed by ``syrk``; the structured NTK's tiles are mirrored).  A
general product ``B Cᵀ`` of two copies of ``J`` (a GEMM, as on a GPU) rounds
its two triangles apart: measured in float32 on Gaussian ``J`` up to
``1000 × 20,000``, at most ``0.63·ε·max|Θ|`` (at ``30 × 30``; less as the
matrix grows).  8 keeps an order of magnitude above it.  Anything larger is
not rounding: a matrix that is not a kernel, which :func:`ntk_spectrum`
refuses rather than symmetrise."""


def _extremes_and_asymmetry(theta):
    """``[min Θ, max Θ, max|Θ − Θᵀ|]`` on the device, row blocks of ``TILE`` (no ``n × n`` temporary)."""
    xp = get_array_module(theta)
    n = theta.shape[0]
    asym = [xp.max(xp.abs(theta[i0:i0 + TILE, :] - theta[:, i0:i0 + TILE].T)) for i0 in range(0, n, TILE)]
    return xp.stack([theta.min(), theta.max(), xp.max(xp.stack(asym))])


def _check_kernel(name, theta, eps: float) -> None:
    """Θ finite and symmetric to rounding (:data:`ASYMMETRY_ROUNDING`), one transfer; else one line naming ``name``."""
    with np.errstate(invalid="ignore"):  # inf − inf: NaN, never read (an inf entry is refused below first)
        lo, hi, asym = to_host(_extremes_and_asymmetry(theta)).tolist()  # one sync for the three checks
    if not (math.isfinite(lo) and math.isfinite(hi)):
        check_finite(name, theta)  # raises, with the count and the first index
    big = max(abs(lo), abs(hi))
    if asym > ASYMMETRY_ROUNDING * eps * big:
        raise ValueError(f"{name}: expected a symmetric kernel, got max|Θ − Θᵀ| = {asym:.3g}, "
                         f"{asym / (eps * big):.3g}·ε·max|Θ| (rounding of a symmetric assembly stays under "
                         f"{ASYMMETRY_ROUNDING:g}·ε·max|Θ|, ε = {eps:.3g}); pass (Θ + Θᵀ)/2 if that is what you mean")



def ntk_spectrum(theta, eps: float | None = None, solver: str = "auto", dense_max: int = DENSE_MAX,
                 tol: float = 1e-10, factors=None, certify: bool = True) -> Spectrum:
    r"""``λ_min``, ``λ_max`` and the condition number of Θ, in float64, with the floor and the certificate of ``λ_min``.

    .. math:: \lambda_{\min}(\Theta) = \min_{\lVert v\rVert = 1} v^\top \Theta v, \qquad
              \kappa = \lambda_{\max}/\lambda_{\min}

    Parameters
    ----------
    theta : array (N·K, N·K), symmetric PSD (any float dtype, any backend)
        Cast to float64 and symmetrised ``(Θ + Θᵀ)/2`` before solving, which
        only removes rounding: an asymmetry above
        :data:`ASYMMETRY_ROUNDING` ``·ε·max|Θ|`` is refused.
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
    certify = check_bool("certify", certify)
    _check_kernel("theta", theta, float(eps))  # NaN/inf or not symmetric: one line naming theta (one transfer)
    n = theta.shape[0]
    if solver == "auto":
        solver = "dense" if n <= max(int(dense_max), 2) else "shift-invert"
    if solver == "lanczos" and n < 3:
        solver = "dense"  # ARPACK needs k < N - 1
    if solver == "shift-invert":
        return shift_invert(theta, float(eps), float(tol), factor_eps, bool(certify))
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
    lam_max, ok_max = lanczos(t64, "LA", tol)
    if not ok_max:
        raise RuntimeError(f"theta: Lanczos did not converge for λ_max in {LANCZOS_MAXITER} restarts; use solver='dense'")
    lam_min, ok_min = lanczos(t64, "SA", tol)
    if math.isnan(lam_min):
        lam_min, ok_min = lam_max, False  # no Ritz value at all: only λ_min ≤ λ_max is known
    del t64
    acc = max(eps * n, float(tol)) * max(abs(lam_max), abs(lam_min))
    ff = factor_floor(lam_min, lam_max, factor_eps)
    spec = Spectrum(lam_min, lam_max, acc + ff, n, float(eps), "lanczos", converged=ok_min, floor_factors=ff,
                    factor_eps=factor_eps)
    return certify_lambda_min(spec, theta, bool(certify))


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
    value, ok = lanczos(a64, "LM", tol)
    if not ok:
        raise RuntimeError(f"A: Lanczos did not converge for the spectral norm in {LANCZOS_MAXITER} restarts; use solver='dense'")
    return abs(value)
