r"""Judging Theorem 5.4 on a measured loss curve, with power (THEORY.md §§ "Verdicts with power", issue 20).

Theorem 5.4 (THEORY.md §1) promises, for GD with ``η ≤ 1/β`` on a region
where the PL inequality holds with ``μ = λ_min(Θ)/N`` (``N`` samples; the
functions' argument ``n`` is this ``N``):

.. math:: L_{t+1} - L^* \le (1 - \eta\mu)(L_t - L^*) \tag{14}
.. math:: L_t - L^* \le (1 - \eta\mu)^t (L_0 - L^*) \tag{10}

and, in the lazy regime, the loss curve of :func:`minilplr.theory.dynamics.kernel_regime_loss`,
a sum of geometric terms.  Checked naively, each can pass without meaning
anything; the judges here say when they had power:

* :func:`envelope_bound` — (10) at every step.  With ``ημ = 2.5·10⁻⁵`` the
  envelope after 250 steps is still ``0.994·(L_0 − L*)``: it could fail
  only if the loss failed to fall by 0.6 %.  *Vacuous* when the envelope
  demands less than a decade over the run (E1), and the row says so in numbers.
* :func:`per_step_contraction` — (14) at every step, with a rounding slack
  from the loss's dtype (C2): the step of the proof, which does fail where
  the loss rises.  The fraction of steps that hold, the worst violation and where.
* :func:`kernel_modes`, :func:`dominance_time` — the time ``t_dom`` after which the
  kernel-regime curve of ``Θ_0`` is one geometric term to within ``δ`` in
  its local rate (K2).  Before it, the curve's slope on a log axis still
  bends, so a straight-line test cannot tell linear from sublinear.
* :func:`local_rate_ratio`, :func:`linear_convergence` — the linear-convergence
  judge (L1): *untestable* when the run is shorter than ``t_dom`` or the
  judged window spans less than a decade; otherwise the ratio of the local
  rates of the window's two halves, which a geometric tail keeps above
  ``1/(1 + δ)`` and a power law ``(τ + t)^{−p}`` cannot, unless ``p``
  exceeds the power bound the verdict prints (:func:`power_law_exponent_floor`).

The package, one topic per module:

* :mod:`.envelope` — (10) and (14): the loss's rounding slack, the
  envelope and its demand, the per-step contraction, ``μ_t`` held between
  NTK checkpoints;
* :mod:`.dominance` — the kernel-regime curve's terms and its dominance
  time ``t_dom`` (K2);
* :mod:`.linear` — the linear-convergence judge (L1);
* :mod:`.step_size` — Theorem 5.4's step size ``η ≤ 1/β`` along the path.

This ``__init__`` is the interface: import from ``minilplr.theory.convergence``.
Every judge returns a :class:`~minilplr.theory.verdicts.Verdict`.  Host
NumPy; imports :mod:`minilplr.theory.verdicts` and the backend (:func:`kernel_modes` brings
``Θ_0`` to the host once); never the engine, the training loops or the
experiments.
"""
from __future__ import annotations

from .dominance import DELTA, DominanceTime, dominance_time, kernel_modes, local_rate_excess
from .envelope import MIN_DEMAND, envelope_bound, mu_per_step, per_step_contraction, rounding_slack
from .linear import linear_convergence, local_rate_ratio, power_law_exponent_floor, power_law_ratio
from .step_size import step_size_verdict

__all__ = [
    "rounding_slack", "envelope_bound", "per_step_contraction",
    "kernel_modes", "local_rate_excess", "DominanceTime", "dominance_time",
    "local_rate_ratio", "power_law_ratio", "power_law_exponent_floor", "linear_convergence", "mu_per_step",
    "step_size_verdict",
]

