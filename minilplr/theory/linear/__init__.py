r"""Overparametrised two-layer linear networks: local PL and smoothness (THEORY.md §2).

Xu, Min, Tarmoun, Mallada, Vidal (arXiv 2505.11664): gradient descent on
``L(W₁, W₂) = ℓ(W₁W₂ᵀ)``, ``ℓ`` μ_ℓ-strongly convex and β_ℓ-smooth, converges
linearly although ``L`` is neither globally PL nor globally smooth, because
both hold *locally* with constants that stay bounded along the trajectory.

Modules, in reading order:

* :mod:`.model` — the losses ``ℓ`` (interface :class:`ConvexLoss`; least
  squares, ridge) and the network :class:`TwoLayerLinear`;
* :mod:`.operator` — ``𝒯(G) = (GW₂, GᵀW₁)``, ``∇L = 𝒯(∇ℓ)``, its singular values;
* :mod:`.constants` — imbalance ``𝒟``, local PL ``μ_t``, local smoothness
  ``β_t`` and ``β̄_t``;
* :mod:`.schedules` — constant, adaptive (eq. 19), the 2023 schedule, Armijo;
* :mod:`.init` — Gaussian ``N(0, H^{−2p})`` and imbalance-controlled starts, the data;
* :mod:`.trajectory` — the GD loop that records all of the above.

The experiments ``minilplr.experiments.linear_*`` build their runs from
configurations in :mod:`minilplr.experiments.linear_runs`.

The docstrings write the course's letters (chapter 7): ``W`` is ``D × K``,
``H`` the width, ``N`` samples, ``β_ℓ`` the smoothness constant of ``ℓ``; the
code's names keep the paper's (``n``, ``m``, ``h``, ``mu``, ``K``): see
:mod:`.model` for the table.
"""
from .constants import (
    descent_bound,
    fro_UtV,
    gradient_norm_bound,
    imbalance,
    imbalance_drift,
    imbalance_increment,
    imbalance_step_bound,
    imbalance_step_norm,
    local_pl_constant,
    local_smoothness,
    local_smoothness_bound,
    lr_for_smoothness,
    pl_contraction_bound,
    positive_root,
)
from .init import gaussian_init, imbalance_init, imbalance_ratio, make_network, synthetic_regression
from .model import ConvexLoss, LeastSquares, RidgeLeastSquares, TwoLayerLinear, product_backward, product_forward
from .operator import T_matrix, apply_T, apply_T_adjoint, kappa_T, sigma2_T, sigma2_T_spectrum
from .schedules import (
    SCHEDULES,
    AdaptiveStep,
    Armijo,
    Constant,
    Xu2023Step,
    initial_safe_lr,
    xu2023_coefficients,
    xu2023_rate,
    xu2023_step,
)
from .trajectory import observed_rate, run_gd, steps_to_tolerance

__all__ = [
    "ConvexLoss", "LeastSquares", "RidgeLeastSquares", "TwoLayerLinear", "product_forward", "product_backward",
    "apply_T", "apply_T_adjoint", "T_matrix", "sigma2_T", "sigma2_T_spectrum", "kappa_T",
    "imbalance", "imbalance_increment", "fro_UtV", "imbalance_drift", "imbalance_step_norm",
    "imbalance_step_bound", "local_pl_constant", "local_smoothness", "local_smoothness_bound",
    "lr_for_smoothness", "descent_bound", "pl_contraction_bound", "gradient_norm_bound", "positive_root",
    "Constant", "AdaptiveStep", "Xu2023Step", "Armijo", "initial_safe_lr", "xu2023_coefficients",
    "xu2023_rate", "xu2023_step", "SCHEDULES",
    "gaussian_init", "imbalance_init", "imbalance_ratio", "synthetic_regression", "make_network",
    "run_gd", "observed_rate", "steps_to_tolerance",
]
