"""Initialisers: draw on the host (seeded), identical on every backend.

Each initialiser returns a float64 NumPy array; :mod:`minilplr.nn.models` casts it
to the model dtype and moves it to the device once.  Drawing on the host in
float64 is what makes a NumPy model and a CuPy model with the same seed start
from bit-identical (up to the final cast) parameters.
"""
from __future__ import annotations

import math

import numpy as np

from ..validate import check_int, check_positive, check_real

__all__ = ["he_normal", "enhanced_he_normal", "gaussian_power", "INITIALISERS"]


def _check_layer(fan_in, fan_out, rng):
    """``(fan_in, fan_out)`` as ints; ``ValueError`` / ``TypeError`` naming the bad argument."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    return check_int("fan_in", fan_in, 1), check_int("fan_out", fan_out, 1)


def he_normal(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    r"""He/Kaiming normal (fan-in mode) weights for a ReLU network.

    .. math:: W_{ij} \sim \mathcal N\!\left(0, \tfrac{2}{D}\right)

    Returns shape ``(D, H)`` = ``(fan_in, fan_out)``.  The factor 2 keeps the
    second moment of the pre-activations constant through ReLU layers
    (He et al., 2015).
    """
    fan_in, fan_out = _check_layer(fan_in, fan_out, rng)
    return rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)


def enhanced_he_normal(
    fan_in: int, fan_out: int, rng: np.random.Generator, *, depth: int, factor: float | None = None
) -> np.ndarray:
    r"""The LPLR paper's "enhanced, depth-aware" He initialisation (reconstruction).

    .. math:: W_{ij} \sim \mathcal N\!\left(0, \tfrac{2}{D}\cdot c(L)\right),
              \qquad c(L) = 1/L \text{ by default}

    The paper (Sec. 6.4) scales He's variance per layer by a factor that
    depends on the depth ``L`` and is smaller than one; our copy lost the
    formula, so the factor is a parameter (THEORY.md §1) and the default
    ``1/L`` is our choice, not the paper's statement.

    Returns shape ``(D, H)``.
    """
    depth = check_int("depth", depth, 1)
    c = 1.0 / depth if factor is None else check_positive("factor", factor)
    return he_normal(fan_in, fan_out, rng) * math.sqrt(c)


def gaussian_power(fan_in: int, fan_out: int, rng: np.random.Generator, *, h: int, p: float) -> np.ndarray:
    r"""Gaussian weights ``N(0, h^{-2p})`` of the linear-network paper (THEORY.md §2).

    .. math:: W_{ij} \sim \mathcal N\!\left(0, h^{-2p}\right), \qquad \tfrac14 < p < \tfrac12

    ``h`` is the hidden width of the two-layer network; returns ``(D, H)``.
    """
    fan_in, fan_out = _check_layer(fan_in, fan_out, rng)
    h, p = check_int("h", h, 1), check_real("p", p)
    return rng.standard_normal((fan_in, fan_out)) * float(h) ** (-p)


INITIALISERS = ("he", "enhanced_he", "gaussian")

