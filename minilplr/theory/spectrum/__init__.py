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

The package, one topic per module (this ``__init__`` is its interface):

* :mod:`.result` — the :class:`Spectrum` record, its floor (F1, F2) and when
  ``λ_min`` is resolved;
* :mod:`.extremes` — :func:`ntk_spectrum` and :func:`symmetric_norm`: check
  the input, pick the solver by size, build the :class:`Spectrum`;
* :mod:`.solvers` — the algorithms: ARPACK's Lanczos, shift-invert Lanczos
  through a Cholesky factor, and the Cholesky certificate of ``λ_min``.

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

from .extremes import ASYMMETRY_ROUNDING, DENSE_MAX, ntk_spectrum, symmetric_norm
from .result import FACTOR_ROUNDING, Spectrum, factor_floor

__all__ = ["Spectrum", "ntk_spectrum", "factor_floor", "symmetric_norm", "DENSE_MAX", "FACTOR_ROUNDING",
           "ASYMMETRY_ROUNDING"]
