"""Checking a gradient: central differences in float64 and the relative error.

.. math:: \\frac{\\partial f}{\\partial x_i} \\approx
          \\frac{f(x + h e_i) - f(x - h e_i)}{2h}

The truncation error is ``O(h²)`` and the rounding error ``O(ε/h)``; in
float64 (``ε ≈ 1e-16``) ``h = 1e-6`` balances them near ``1e-10`` relative,
which is why checks run in float64 (in float32, ``ε ≈ 1e-7`` leaves ~1e-3).

"Near 1e-10" holds for a well-scaled check only: where the gradient is tiny
next to the function's value the rounding term grows to 1e-7 and beyond,
the size of real bugs.  :func:`check_gradient` therefore measures a backward
pass against the difference's *own* error (:func:`error_ratio`), and
:func:`assert_rel_error` / :data:`achieved` record what each named check
reaches, which is how the tests' tolerances were set.
"""
from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np

from ..backend import get_array_module, to_scalar
from .state import frozen_activations

__all__ = ["numerical_gradient", "numerical_gradient_at", "numerical_jvp_columns", "rel_error",
           "assert_rel_error", "error_ratio", "check_gradient", "achieved"]


def _flat_view(x):
    """A flat view of ``x`` (writes go through to ``x``); refuse copies."""
    if not x.flags["C_CONTIGUOUS"]:
        raise ValueError("x: expected a C-contiguous array to perturb in place")
    return x.reshape(-1)


def _frozen(f, freeze):
    """A context in which ``freeze``'s ReLU masks stay those of ``f()`` at the unperturbed point.

    A ReLU network is differentiable only between kinks; a pre-activation
    within ``h`` of zero makes a central difference straddle the kink and see
    the jump (Hypothesis finds such points: a residual block once gave 2e-2
    relative error at ``h = 1e-6`` and 4e-9 at ``h = 1e-7``).  Frozen, the
    difference is taken on the linear piece at ``x``, whose gradient is what
    backward computes (:func:`minilplr.nn.state.frozen_activations`).
    """
    if freeze is None:
        return nullcontext()
    f()  # one forward pass at the unperturbed point sets the masks
    return frozen_activations(freeze)


def _central_difference(f, flat_x, i: int, h: float, scalar: bool = True):
    """``(f(x + h e_i) − f(x − h e_i)) / 2h``, perturbing ``flat_x[i]`` in place and restoring it.

    A float for a scalar ``f``; with ``scalar=False`` an array (``f`` returns a fresh array).
    """
    value = to_scalar if scalar else (lambda a: a)
    old = to_scalar(flat_x[i])
    flat_x[i] = old + h
    fp = value(f())
    flat_x[i] = old - h
    fm = value(f())
    flat_x[i] = old
    return (fp - fm) / (2 * h)


def numerical_gradient(f, x, h: float = 1e-6, freeze=None):
    """Central-difference gradient of a scalar function ``f()`` w.r.t. array ``x``.

    ``x`` is perturbed **in place**, one entry at a time, and restored; ``f``
    takes no argument and must read ``x`` (e.g. a closure over a model whose
    parameter is ``x``).

    Parameters
    ----------
    f : callable () -> scalar (0-d array or float)
    x : array, any shape, float64 recommended
    h : float
    freeze : model or layer, optional
        Difference on the linear piece at ``x``: its ReLU masks stay those of
        the unperturbed point (see :func:`_frozen`).

    Returns
    -------
    grad : array, same shape and backend as ``x``
    """
    xp = get_array_module(x)
    grad = xp.zeros(x.shape, dtype=x.dtype)
    flat_x = _flat_view(x)
    g = grad.reshape(-1)
    with _frozen(f, freeze):
        for i in range(x.size):
            g[i] = _central_difference(f, flat_x, i, h)
    return grad


def numerical_gradient_at(f, x, idx, h: float = 1e-6, freeze=None):
    """Central differences of the scalar ``f()`` in the flat coordinates ``idx`` of ``x`` only.

    For parameters too large to difference entry by entry (a ResNet's): a
    random subset of coordinates checks the same formula.  Returns a host
    float64 array ``(len(idx),)``.  ``freeze`` as in :func:`numerical_gradient`.
    """
    flat_x = _flat_view(x)
    with _frozen(f, freeze):
        return np.array([_central_difference(f, flat_x, i, h) for i in idx], dtype=np.float64)


def numerical_jvp_columns(f, x, h: float = 1e-6, freeze=None, idx=None):
    """Central-difference Jacobian of an array function ``f()`` w.r.t. ``x``.

    Returns ``(f().size, x.size)``: column ``i`` is ``(f(x+he_i) − f(x−he_i)) / 2h``;
    with ``idx`` (flat coordinates of ``x``) only those columns, ``(f().size, len(idx))``.
    ``freeze`` as in :func:`numerical_gradient`.
    """
    xp = get_array_module(x)
    flat_x = _flat_view(x)
    idx = range(x.size) if idx is None else [int(i) for i in idx]
    with _frozen(f, freeze):
        cols = [_central_difference(lambda: f().reshape(-1).copy(), flat_x, i, h, scalar=False)
                for i in idx]
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


#: The largest error each named check has reached in this process, ``what -> float``
#: (a relative error for :func:`assert_rel_error`, an error ratio for
#: :func:`check_gradient`).  A tolerance is set from it: run the check over many
#: Hypothesis examples, read ``achieved[what]``, and put the tolerance one to two
#: orders of magnitude above it -- loose enough for rounding, tight enough that a
#: wrong formula of the checked layer fails.
achieved: "dict[str, float]" = {}


def _record(what: str, err: float) -> None:
    achieved[what] = max(achieved.get(what, 0.0), err)


def assert_rel_error(a, b, tol: float, what: str, floor: float = 1e-8) -> float:
    """Assert ``rel_error(a, b, floor) < tol``; the message names ``what`` and the error reached.

    Returns the relative error, and records the largest one per ``what`` in
    :data:`achieved` (how the tests' tolerances were measured).

    Raises
    ------
    AssertionError
        ``"<what>: relative error 3.1e-02 is not below the tolerance 1e-08"``.
    """
    err = rel_error(a, b, floor=floor)
    _record(what, err)
    if not err < tol:  # also fails on NaN
        raise AssertionError(f"{what}: relative error {err:.2e} is not below the tolerance {tol:.0e}")
    return err


def error_ratio(a, num, num_half, f_value: float, h: float = 1e-6) -> float:
    r"""How many times its own error the central difference ``num`` is away from ``a``.

    .. math:: \rho = \frac{\lVert a - g_h\rVert}
                          {\lVert g_h - g_{h/2}\rVert + \frac{\varepsilon}{h}\max(|f|, 1)\sqrt{P}}

    for ``P`` entries, ``g_h`` and ``g_{h/2}`` the differences at steps ``h``
    and ``h/2``, ``f`` the function's value at the point.  The denominator is
    the error of ``g_h`` itself:

    * truncation, ``O(h²)``: halving ``h`` quarters it, so ``‖g_h − g_{h/2}‖``
      is of its size (Richardson);
    * rounding: ``f`` is computed to about ``ε·|f|`` (``ε ≈ 2.2e-16``; at
      least ``ε``, for intermediates of unit size such as a softmax's
      ``log Σ e^z``), and a difference quotient divides that by ``h``:
      ``(ε/h)·max(|f|, 1)`` per entry, ``2e-10`` at unit scale.  (The gap
      ``g_h − g_{h/2}`` does not show it reliably: rounding to the float grid
      can repeat itself exactly at both steps.)

    That error is ~1e-10 of ``‖g‖`` on a well-scaled check but reaches 1e-7 or
    more where the gradient is tiny next to the function's value (a near-zero
    weight, a saturated softmax), and a plain relative error cannot tell it from
    a bug of that size (batch norm's ``ε`` dropped from its backward pass is
    ~1e-6 relative).  The ratio can: a correct gradient is off by about its
    error, ``ρ ≲ 1``; a wrong one by its bug, ``ρ ≫ 1``.
    """
    xp = get_array_module(a, num)
    norm = lambda v: to_scalar(xp.linalg.norm(v.reshape(-1)))  # noqa: E731
    eps = float(np.finfo(np.float64).eps)
    own = norm(num - num_half) + eps / h * max(abs(f_value), 1.0) * math.sqrt(num.size)
    return norm(a - num) / own


def check_gradient(a, f, x, tol: float, what: str, freeze=None, h: float = 1e-6) -> float:
    """Assert that the gradient ``a`` of the scalar ``f()`` w.r.t. ``x`` matches central differences.

    Differences at ``h`` and ``h/2`` (:func:`numerical_gradient`), then
    :func:`error_ratio` ``< tol``.  Returns the ratio and records the largest
    per ``what`` in :data:`achieved`.

    Raises
    ------
    AssertionError
        ``"<what>: off by 4.2e+03 times the differences' own error (relative error 9.1e-07), tolerance 30"``.
    """
    if tuple(a.shape) != tuple(x.shape):
        raise AssertionError(f"{what}: gradient of shape {tuple(a.shape)} for x of shape {tuple(x.shape)}")
    num = numerical_gradient(f, x, h=h, freeze=freeze)
    num_half = numerical_gradient(f, x, h=h / 2, freeze=freeze)
    with _frozen(f, freeze):
        f_value = to_scalar(f())
    rho = error_ratio(a, num, num_half, f_value, h)
    _record(what, rho)
    if not rho < tol:  # also fails on NaN
        raise AssertionError(f"{what}: off by {rho:.1e} times the differences' own error "
                             f"(relative error {rel_error(a, num):.1e}), tolerance {tol:g}")
    return rho
