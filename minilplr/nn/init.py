"""Initialisers: draw on the host (seeded), identical on every backend.

Each initialiser draws in float64 on the host and returns a NumPy array of
``dtype`` (float64 by default); :mod:`minilplr.nn.models` asks for the model's
dtype and moves it to the device once.  Drawing on the host in float64 is
what makes a NumPy model and a CuPy model with the same seed start from
bit-identical (up to the final cast) parameters.

The draw is float64 whatever ``dtype`` is: NumPy's float32 normal sampler
is another algorithm (other values from the same seed), so drawing in
float32 would change every result.  To keep a float32 model's peak memory
near its own size, the float64 values are drawn and cast in blocks of rows
(:data:`DRAW_BLOCK_BYTES` of float64 at a time) into the ``dtype`` array:
the generator produces the same values in the same order either way, so the
weights are the same bits as one whole float64 draw cast at the end.
"""
from __future__ import annotations

import math

import numpy as np

from ..validate import check_int, check_positive, check_real

__all__ = ["he_normal", "enhanced_he_normal", "gaussian_power", "normal_draw", "INITIALISERS", "DRAW_BLOCK_BYTES"]

#: The float64 block drawn at a time by :func:`normal_draw` (bytes).
DRAW_BLOCK_BYTES = 16 * 2**20


def normal_draw(shape, rng: np.random.Generator, scales=(), dtype=np.float64) -> np.ndarray:
    r"""``rng.standard_normal(shape)`` times each of ``scales`` in turn (float64), cast to ``dtype``.

    .. math:: W = \big(\cdots(Z \cdot s_1)\cdots\big)\cdot s_m, \qquad Z_{ij} \sim \mathcal N(0, 1)

    Drawn in blocks of rows (module docstring): the result has the bits of
    ``(rng.standard_normal(shape) * s_1 * … * s_m).astype(dtype)`` with a peak
    of one ``dtype`` array plus :data:`DRAW_BLOCK_BYTES`.
    """
    rows, cols = int(shape[0]), int(np.prod(shape[1:], dtype=np.int64))
    out = np.empty((rows, cols), dtype=np.dtype(dtype))
    step = max(1, DRAW_BLOCK_BYTES // (8 * max(1, cols)))
    for r in range(0, rows, step):
        block = rng.standard_normal((min(rows, r + step) - r, cols))  # the next values of the stream, float64
        for s in scales:
            block *= s  # in float64, in the order the formula multiplies
        out[r:r + step] = block  # the one cast to dtype
    return out.reshape(shape)


def _check_layer(fan_in, fan_out, rng):
    """``(fan_in, fan_out)`` as ints; ``ValueError`` / ``TypeError`` naming the bad argument."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    return check_int("fan_in", fan_in, 1), check_int("fan_out", fan_out, 1)


def he_normal(fan_in: int, fan_out: int, rng: np.random.Generator, *, dtype=np.float64) -> np.ndarray:
    r"""He/Kaiming normal (fan-in mode) weights for a ReLU network.

    .. math:: W_{ij} \sim \mathcal N\!\left(0, \tfrac{2}{D}\right)

    Returns shape ``(D, H)`` = ``(fan_in, fan_out)``.  The factor 2 keeps the
    second moment of the pre-activations constant through ReLU layers
    (He et al., 2015).
    """
    fan_in, fan_out = _check_layer(fan_in, fan_out, rng)
    return normal_draw((fan_in, fan_out), rng, (math.sqrt(2.0 / fan_in),), dtype)


def enhanced_he_normal(
    fan_in: int, fan_out: int, rng: np.random.Generator, *, depth: int, factor: float | None = None,
    dtype=np.float64,
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
    fan_in, fan_out = _check_layer(fan_in, fan_out, rng)
    return normal_draw((fan_in, fan_out), rng, (math.sqrt(2.0 / fan_in), math.sqrt(c)), dtype)  # He's, then √c


def gaussian_power(fan_in: int, fan_out: int, rng: np.random.Generator, *, h: int, p: float,
                   dtype=np.float64) -> np.ndarray:
    r"""Gaussian weights ``N(0, h^{-2p})`` of the linear-network paper (THEORY.md §2).

    .. math:: W_{ij} \sim \mathcal N\!\left(0, h^{-2p}\right), \qquad \tfrac14 < p < \tfrac12

    ``h`` is the hidden width of the two-layer network; returns ``(D, H)``.
    """
    fan_in, fan_out = _check_layer(fan_in, fan_out, rng)
    h, p = check_int("h", h, 1), check_real("p", p)
    return normal_draw((fan_in, fan_out), rng, (float(h) ** (-p),), dtype)


INITIALISERS = ("he", "enhanced_he", "gaussian")

