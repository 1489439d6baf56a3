"""Checking a gradient: central differences in float64 and the relative error.

.. math:: \\frac{\\partial f}{\\partial x_i} \\approx
          \\frac{f(x + h e_i) - f(x - h e_i)}{2h}

The truncation error is ``O(h²)`` and the rounding error ``O(ε/h)``; in
float64 (``ε ≈ 1e-16``) ``h = 1e-6`` balances them near ``1e-10`` relative,
which is why checks run in float64 (in float32, ``ε ≈ 1e-7`` leaves ~1e-3).
"""
from __future__ import annotations

import numpy as np

from .backend import get_array_module, to_scalar

__all__ = ["numerical_gradient", "numerical_gradient_at", "numerical_jvp_columns", "rel_error"]


def _flat_view(x):
    """A flat view of ``x`` (writes go through to ``x``); refuse copies."""
    if not x.flags["C_CONTIGUOUS"]:
        raise ValueError("x: expected a C-contiguous array to perturb in place")
    return x.reshape(-1)


def _central_difference(f, flat_x, i: int, h: float) -> float:
    """``(f(x + h e_i) − f(x − h e_i)) / 2h``, perturbing ``flat_x[i]`` in place and restoring it."""
    old = to_scalar(flat_x[i])
    flat_x[i] = old + h
    fp = to_scalar(f())
    flat_x[i] = old - h
    fm = to_scalar(f())
    flat_x[i] = old
    return (fp - fm) / (2 * h)


def numerical_gradient(f, x, h: float = 1e-6):
    """Central-difference gradient of a scalar function ``f()`` w.r.t. array ``x``.

    ``x`` is perturbed **in place**, one entry at a time, and restored; ``f``
    takes no argument and must read ``x`` (e.g. a closure over a model whose
    parameter is ``x``).

    Parameters
    ----------
    f : callable () -> scalar (0-d array or float)
    x : array, any shape, float64 recommended
    h : float

    Returns
    -------
    grad : array, same shape and backend as ``x``
    """
    xp = get_array_module(x)
    grad = xp.zeros(x.shape, dtype=x.dtype)
    flat_x = _flat_view(x)
    g = grad.reshape(-1)
    for i in range(x.size):
        g[i] = _central_difference(f, flat_x, i, h)
    return grad


def numerical_gradient_at(f, x, idx, h: float = 1e-6):
    """Central differences of the scalar ``f()`` in the flat coordinates ``idx`` of ``x`` only.

    For parameters too large to difference entry by entry (a ResNet's): a
    random subset of coordinates checks the same formula.  Returns a host
    float64 array ``(len(idx),)``.
    """
    flat_x = _flat_view(x)
    return np.array([_central_difference(f, flat_x, i, h) for i in idx], dtype=np.float64)


def numerical_jvp_columns(f, x, h: float = 1e-6):
    """Central-difference Jacobian of an array function ``f()`` w.r.t. ``x``.

    Returns ``(f().size, x.size)``: column ``i`` is ``(f(x+he_i) − f(x−he_i)) / 2h``.
    """
    xp = get_array_module(x)
    flat_x = _flat_view(x)
    cols = []
    for i in range(x.size):
        old = to_scalar(flat_x[i])
        flat_x[i] = old + h
        fp = f().reshape(-1).copy()
        flat_x[i] = old - h
        fm = f().reshape(-1).copy()
        flat_x[i] = old
        cols.append((fp - fm) / (2 * h))
    return xp.stack(cols, axis=1)


def rel_error(a, b, floor: float = 1e-8) -> float:
    """Relative error ``‖a − b‖ / max(‖a‖ + ‖b‖, floor)`` (Frobenius norms), as a float.

    Norm-based rather than entrywise, so an entry that is zero in both
    gradients does not divide by zero.  The floor (cs231n's ``1e-8``) is the
    resolution of a float64 central difference at unit scale
    (``ε·|f|/h ≈ 1e-16/1e-6``): gradients smaller than that in norm (a
    saturated softmax, say) cannot be told apart from zero by differences.
    """
    xp = get_array_module(a, b)
    num = to_scalar(xp.linalg.norm((a - b).reshape(-1)))
    den = to_scalar(xp.linalg.norm(a.reshape(-1))) + to_scalar(xp.linalg.norm(b.reshape(-1)))
    return num / max(den, floor)
