"""Input validation shared by the engine: clear errors that name the argument.

Every check raises with a message that starts with the argument's name,
``"<name>: expected …, got …"``.  ``TypeError`` when the kind of thing is
wrong (not an array, complex or object entries), ``ValueError`` when its
value is (out of range, not finite, not a whole number).  The public entry
points call these before any work starts, so a bad argument costs nothing.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from .backend import get_array_module, to_host

__all__ = ["check_finite", "check_positive", "check_int", "check_real", "check_real_array", "check_magnitude",
           "check_image", "one_line"]


def check_finite(name: str, x) -> None:
    """Raise ``ValueError`` naming ``name`` if ``x`` holds NaN or ±inf.

    One reduction on the device and one scalar back to the host.
    """
    xp = get_array_module(x)
    if not bool(xp.isfinite(x).all()):
        bad = to_host(~xp.isfinite(x))
        raise ValueError(
            f"{name}: expected finite values, got {int(bad.sum())} NaN/inf entries of {bad.size} "
            f"(first at index {tuple(int(i) for i in bad.nonzero()[0][:1]) if bad.ndim == 1 else tuple(int(a[0]) for a in bad.nonzero())})"
        )


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """``value`` as a float, or ``ValueError`` naming ``name`` if not (strictly) positive."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a positive number, got {value!r}") from None
    if not (v > 0 or (allow_zero and v == 0)) or v != v or v == float("inf"):
        raise ValueError(f"{name}: expected a {'non-negative' if allow_zero else 'positive'} finite number, got {value!r}")
    return v


def _expected_int(minimum) -> str:
    return {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer >= {minimum}")


def check_int(name: str, value, minimum: int | None = None) -> int:
    """``value`` as an ``int``, or ``ValueError`` naming ``name``.

    Accepts Python and NumPy integers and whole floats (``3.0``); refuses
    ``bool`` (``True`` is not a width), fractions (``2.5`` would be silently
    truncated), strings and anything below ``minimum``.
    """
    v = None
    if not isinstance(value, (bool, np.bool_)):
        try:
            v = operator.index(value)
        except TypeError:
            if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
                v = int(value)
    if v is None or (minimum is not None and v < minimum):
        raise ValueError(f"{name}: expected {_expected_int(minimum)}, got {value!r}")
    return v


def check_real(name: str, value, *, above: float | None = None, allow_inf: bool = False) -> float:
    """``value`` as a float, or ``ValueError`` naming ``name``.

    Refuses ``bool``, complex numbers, strings and NaN; ``±inf`` unless
    ``allow_inf``; values ``<= above`` when ``above`` is given.
    """
    v = None
    if not isinstance(value, (bool, np.bool_, complex, np.complexfloating, str, bytes)):
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = None
    bad = v is None or math.isnan(v) or (math.isinf(v) and not allow_inf) or (above is not None and not v > above)
    if bad:
        what = "a real number" if allow_inf else "a finite real number"
        raise ValueError(f"{name}: expected {what}{'' if above is None else f' > {above:g}'}, got {value!r}")
    return v


def check_real_array(name: str, x) -> None:
    """``TypeError`` naming ``name`` unless ``x`` is an array of real numbers.

    Booleans, integers and floats pass.  Complex entries would lose their
    imaginary part in the cast to the model's float dtype, and object or
    string entries become NaN or fail deep inside the loss, so all are refused
    here, where the argument still has its name.
    """
    dtype = getattr(x, "dtype", None)
    if dtype is None or not hasattr(x, "shape"):
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}")
    kind = np.dtype(dtype).kind
    if kind == "c":
        raise TypeError(f"{name}: expected real numbers, got complex dtype {dtype} "
                        f"(pass {name}.real or abs({name}) explicitly)")
    if kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array (bool, int or float), got dtype {dtype}"
                        + (" (convert it with np.asarray(..., dtype=float))" if kind == "O" else ""))


def check_magnitude(name: str, x, dtype) -> None:
    """``ValueError`` naming ``name`` if ``|x|`` reaches ``√max`` of ``dtype``.

    Squares of such values (the squared loss, ``‖∇L‖²``) overflow to ``inf``
    at the very first step, which would otherwise read as a training run that
    diverged.  Two reductions, their two scalars back to the host in one transfer.
    """
    if x.size == 0:
        return
    limit = math.sqrt(float(np.finfo(np.dtype(dtype)).max))
    lo, hi = to_host(get_array_module(x).stack([x.min(), x.max()])).tolist()  # one sync for both ends
    big = max(abs(lo), abs(hi))
    if big >= limit:
        raise ValueError(f"{name}: values up to {big:.3g} are too large for {np.dtype(dtype)}: the loss or its "
                         f"gradient is not finite from step 0 (squares overflow unless |{name}| < {limit:.3g}); "
                         f"rescale the data")


def check_image(name: str, x, channels: int | None = None) -> None:
    """``ValueError`` naming ``name`` unless ``x`` is a 4-D ``(N, C, H, W)`` image array (with ``C = channels``)."""
    if not hasattr(x, "ndim") or x.ndim != 4:
        got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        want = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise ValueError(f"{name}: expected a 4-D {want} image array, got shape {got}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name}: expected {channels} channels, shape (N, {channels}, H, W), got {tuple(x.shape)}"
        )


def one_line(exc: BaseException) -> str:
    """``"Type: message"``: an exception as the one line a log or a terminal shows.

    A multi-line message is folded onto one line: a part ending in ``:`` is
    followed by a space, any other by ``"; "`` (``"no mirror could be
    reached:\n  https://…: unreachable"`` reads ``"no mirror could be reached:
    https://…: unreachable"``).  An empty message leaves the type alone.
    """
    parts = [p.strip() for p in str(exc).splitlines() if p.strip()]
    text = parts[0] if parts else ""
    for p in parts[1:]:
        text += (" " if text.endswith(":") else "; ") + p
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
