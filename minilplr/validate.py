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
import os

import numpy as np

from .backend import get_array_module, to_host

__all__ = ["check_finite", "check_positive", "check_int", "check_real", "check_real_array", "check_magnitude",
           "check_values", "check_model_input", "check_fits", "max_bytes_from_env", "free_bytes", "format_bytes",
           "MAX_BYTES_VAR",
           "check_image", "one_line"]

#: An environment variable that caps what :func:`check_fits` lets an entry point allocate (bytes), below free memory.
MAX_BYTES_VAR = "MINILPLR_MAX_BYTES"


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


def check_bool(name: str, value) -> bool:
    """``value`` as a ``bool``, or ``ValueError`` naming ``name``.

    Only ``True`` and ``False`` (Python or NumPy): a string such as
    ``"no"`` is truthy and would switch an option on, and ``1``, ``0`` or
    ``None`` say nothing a reader can check.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


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


def _magnitude_limit(dtype, terms: int) -> float:
    """``√(max/terms)`` of ``dtype``: below it, a sum of ``terms`` squares does not overflow."""
    return math.sqrt(float(np.finfo(np.dtype(dtype)).max) / max(1, int(terms)))


def _too_large(name: str, big: float, dtype, terms: int) -> None:
    limit = _magnitude_limit(dtype, terms)
    if big >= limit:
        why = ("the loss or its gradient is not finite from step 0 (squares overflow" if terms <= 1 else
               f"its kernel is not finite (sums of {terms} squares overflow")
        raise ValueError(f"{name}: values up to {big:.3g} are too large for {np.dtype(dtype)}: {why} unless "
                         f"|{name}| < {limit:.3g}); rescale the data")


def check_magnitude(name: str, x, dtype, *, terms: int = 1) -> None:
    """``ValueError`` naming ``name`` if ``|x|`` reaches ``√(max/terms)`` of ``dtype``.

    Squares of such values (the squared loss, ``‖∇L‖²``) overflow to ``inf``
    at the very first step, which would otherwise read as a training run that
    diverged; ``terms``: how many squares a sum adds (``D`` for ``X Xᵀ``).
    Two reductions, their two scalars back to the host in one transfer.
    """
    if x.size == 0:
        return
    lo, hi = to_host(get_array_module(x).stack([x.min(), x.max()])).tolist()  # one sync for both ends
    _too_large(name, max(abs(lo), abs(hi)), dtype, terms)


def check_values(name: str, x, dtype=None, *, terms: int = 1) -> None:
    """:func:`check_finite` and (with ``dtype``) :func:`check_magnitude` in one transfer.

    ``x.min()`` and ``x.max()`` come to the host together: a NaN propagates
    into both, an ``inf`` is one of them, so a finite pair means finite
    entries; only a failing array pays a second pass, to count its bad entries
    for the message.  What every entry point with data runs once per call (the
    training loops, the NTK, the PL diagnostics).
    """
    if x.size == 0:
        return
    lo, hi = to_host(get_array_module(x).stack([x.min(), x.max()])).tolist()  # one sync for both checks
    if not (math.isfinite(lo) and math.isfinite(hi)):
        check_finite(name, x)  # raises, with the count and the first index
    if dtype is not None:
        _too_large(name, max(abs(lo), abs(hi)), dtype, terms)


def check_model_input(model, X, name: str = "X"):
    """``X`` checked for ``model`` and cast to its dtype: the one check of a network's input data.

    The training loops (:func:`minilplr.train.loops.train_gd`, ``train_sgd``)
    and the kernels' entry points (:func:`minilplr.theory.ntk.prepare_input`:
    ``jacobian``, ``empirical_ntk``, the NTK shares; ``pl_diagnostics``) all
    call it, so a bad ``X`` gets the same line everywhere: real entries (a
    complex ``X`` would lose its imaginary part in the cast), the model's
    backend and shape (:meth:`~minilplr.nn.models.Model.check_input`), at
    least one sample, finite, and small enough to square in the model's dtype
    (:func:`check_values`, one transfer).
    """
    if not callable(getattr(model, "check_input", None)):
        raise TypeError(f"model: expected a minilplr Model (minilplr.nn.models.mlp, minilplr.nn.resnet.resnet), "
                        f"got {type(model).__name__}")
    if hasattr(X, "dtype"):
        check_real_array(name, X)  # before check_input's cast drops an imaginary part
    X_in, X = X, model.check_input(X)
    if X.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one sample, got shape {tuple(X.shape)}")
    check_values(name, X_in, model.dtype)
    return X


def format_bytes(n: float) -> str:
    """``"1.76 GB"``: a size in bytes, decimal units."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def free_bytes(backend: str = "numpy"):
    """Memory free for a new array on ``backend``, in bytes, or ``None`` where it cannot be told.

    Host (``numpy``, ``strict``): ``MemAvailable`` of ``/proc/meminfo`` (Linux),
    else the free physical pages.  ``cupy``: the device's free memory.
    """
    if backend == "cupy":
        try:
            import cupy
            return int(cupy.cuda.runtime.memGetInfo()[0])
        except Exception:
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def max_bytes_from_env() -> int | None:
    """``$MINILPLR_MAX_BYTES`` as a number of bytes (``None`` when unset); ``ValueError`` naming it otherwise.

    The command line calls it before anything runs, so a bad value is one line at the start.
    """
    env = os.environ.get(MAX_BYTES_VAR)
    if not env:
        return None
    try:
        cap = int(float(env))
    except (ValueError, OverflowError):
        raise ValueError(f"{MAX_BYTES_VAR}: expected a number of bytes, got {env!r}") from None
    if cap < 0:
        raise ValueError(f"{MAX_BYTES_VAR}: expected a number of bytes >= 0, got {env!r}")
    return cap


def check_fits(name: str, nbytes: int, what: str, *, backend: str = "numpy", limit: int | None = None) -> int:
    """``ValueError`` naming ``name`` if allocating ``nbytes`` for ``what`` would exceed the limit; ``nbytes``.

    The limit: ``limit`` if given, else the smaller of the memory free on
    ``backend`` (:func:`free_bytes`) and ``$MINILPLR_MAX_BYTES`` if set.  Called
    before a large allocation (a model's parameters, a kernel, a Jacobian) so
    that a size the machine cannot hold is one line with its size, not a
    swapping machine or a ``MemoryError`` deep inside NumPy.
    """
    nbytes = int(nbytes)
    where = "on the GPU" if backend == "cupy" else "on this machine"
    if limit is None:
        limit = free_bytes(backend)
        cap = max_bytes_from_env()
        if cap is not None:
            if limit is None or cap < limit:
                limit, where = cap, f"allowed by {MAX_BYTES_VAR}"
        else:
            where = f"free {where}"
    else:
        where = "allowed"
    if limit is not None and nbytes > limit:
        raise ValueError(f"{name}: expected {what} to fit in memory: it needs {format_bytes(nbytes)}, more than the "
                         f"{format_bytes(limit)} {where}")
    return nbytes


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
