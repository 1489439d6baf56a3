r"""The :class:`Spectrum` of Θ: its extreme eigenvalues, the floor below which ``λ_min`` is not resolved (F1, F2), the certificate.

Package docstring: where the floor comes from and how ``λ_min`` is certified.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

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
    def slack(self) -> float:
        """What ``λ_min`` is known to: the floor, plus the residual where one was measured."""
        return self.floor + (self.residual or 0.0)

    @property
    def resolved(self) -> bool:
        """``λ_min`` is above the floor (and residual), and no eigenvalue was found below it: trust it to ``± (floor + residual)``."""
        return self.converged and self.certified is not False and self.lam_min_computed > self.slack

    @property
    def lam_min(self):
        """``λ_min(Θ)`` as a float if resolved, else ``None`` (use :attr:`lam_min_upper`)."""
        return self.lam_min_computed if self.resolved else None

    @property
    def lam_min_lower(self) -> float:
        """A lower bound ``max(λ_computed − floor − residual, 0)`` (Θ is PSD): 0 when unresolved."""
        return max(self.lam_min_computed - self.slack, 0.0) if self.resolved else 0.0

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
