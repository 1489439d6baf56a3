"""The backend switch: one code path for NumPy (CPU) and CuPy (GPU).

Every numerical function in minilplr is written once against an array module
``xp`` (``numpy`` or ``cupy``), in the style of CuPy's guide to CPU/GPU
agnostic code.  The rules, which the rest of the package follows:

* The array module of data comes from the data: ``xp = get_array_module(x)``.
* Arrays cross between host and device only through :func:`to_device` and
  :func:`to_host`.  Random numbers, file input/output and plotting happen on
  the host.
* Training runs in ``float32`` by default; checks (finite differences, NTK
  spectra) in ``float64``.  :func:`resolve_dtype` is the one place that turns a
  user's dtype argument into a NumPy dtype.

Three backends exist:

``numpy``
    The CPU reference.
``cupy``
    The GPU.  Asking for it where CuPy is not installed, or no GPU is visible,
    raises :class:`BackendUnavailable` with a one-line reason.
``strict``
    A stand-in for CuPy that runs on the CPU and fails where CuPy fails
    (implicit host conversions, NumPy arrays mixed with device arrays).  It is
    a testing tool and lives in :mod:`minilplr.testing.strict`, imported only when this
    backend is asked for; the test suite runs under it (``tests/conftest.py``)
    so that a host/device mix-up fails in CI, where there is no GPU.

Which backend an array lives on is read from the array's type
(:func:`backend_of`), as CuPy's ``get_array_module`` does: nothing here
imports CuPy or the stand-in until that backend is asked for.

The default backend is read from the environment variable
``MINILPLR_BACKEND`` (``numpy`` if unset) and can be changed with
:func:`set_backend`.
"""
from __future__ import annotations

import numbers
import os
import sys

import numpy as np

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "Backend",
    "get_backend",
    "set_backend",
    "get_array_module",
    "backend_of",
    "is_array",
    "to_device",
    "to_host",
    "to_scalar",
    "sparse_linalg",
    "resolve_dtype",
    "DEFAULT_TRAIN_DTYPE",
    "DEFAULT_CHECK_DTYPE",
]

BACKENDS = ("numpy", "cupy", "strict")
ENV_VAR = "MINILPLR_BACKEND"
DEFAULT_TRAIN_DTYPE = np.dtype(np.float32)
DEFAULT_CHECK_DTYPE = np.dtype(np.float64)


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this machine (e.g. no CuPy, no GPU)."""


def resolve_dtype(dtype) -> np.dtype:
    """Turn ``None``, ``"float32"``, ``"float64"``, ``np.float32`` … into a dtype.

    ``None`` means the training default, float32.  Only floating dtypes of
    32 or 64 bits are accepted: the engine's arithmetic is written for them.
    """
    if dtype is None:
        return DEFAULT_TRAIN_DTYPE
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}") from exc
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dt}")
    return dt


class Backend:
    """A named array module plus its transfer helpers.

    Attributes
    ----------
    name : str
        ``"numpy"``, ``"cupy"`` or ``"strict"``.
    xp : module
        The array module: ``numpy``, ``cupy`` or the strict namespace.
    """

    def __init__(self, name: str, xp):
        self.name = name
        self.xp = xp

    def __repr__(self):
        return f"Backend({self.name!r})"

    def synchronize(self):
        """Wait for queued device work (a no-op on the CPU); use before timing."""
        if self.name == "cupy":
            self.xp.cuda.Device().synchronize()


_CACHE: dict[str, Backend] = {}
_current: Backend | None = None


def _load(name: str) -> Backend:
    if name in _CACHE:
        return _CACHE[name]
    if name == "numpy":
        be = Backend("numpy", np)
    elif name == "strict":
        from .testing import strict  # the testing tool: loaded only when asked for

        be = Backend("strict", strict.xp)
    elif name == "cupy":
        try:
            import cupy  # noqa: F401
        except ImportError:
            raise BackendUnavailable(
                "backend 'cupy': CuPy is not installed (on a machine with an NVIDIA GPU: "
                "pip install -e '.[cuda12]' or '.[cuda13]', matching the \"CUDA Version\" nvidia-smi shows)"
            ) from None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDA driver missing, etc.
            raise BackendUnavailable(
                f"backend 'cupy': CuPy is installed but no GPU is usable ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})"
            ) from None
        if count < 1:
            raise BackendUnavailable("backend 'cupy': CuPy is installed but no GPU is visible")
        be = Backend("cupy", cupy)
    else:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {name!r}")
    _CACHE[name] = be
    return be


def get_backend(name: str | Backend | None = None) -> Backend:
    """The backend called ``name``, or the current default if ``name`` is None.

    The default comes from :func:`set_backend`, else from the environment
    variable ``MINILPLR_BACKEND``, else ``"numpy"``.
    """
    global _current
    if isinstance(name, Backend):
        return name
    if name is not None:
        return _load(str(name).lower())
    if _current is None:
        _current = _load(os.environ.get(ENV_VAR, "numpy").strip().lower() or "numpy")
    return _current


def set_backend(name: str) -> Backend:
    """Make ``name`` the default backend for everything created afterwards."""
    global _current
    _current = _load(str(name).lower())
    return _current


def _where(x) -> str:
    """``"cupy"``, ``"strict"`` or ``"numpy"``: where ``x`` lives, read from its type.

    Imports nothing: a CuPy array's type comes from the ``cupy`` package, and a
    strict array can exist only once :mod:`minilplr.testing.strict` has been loaded.
    """
    if type(x).__module__.startswith("cupy"):
        return "cupy"
    strict = sys.modules.get("minilplr.testing.strict")
    if strict is not None and isinstance(x, strict.StrictArray):
        return "strict"
    return "numpy"


def is_array(x) -> bool:
    """Whether ``x`` is an array of some backend (NumPy, CuPy or the strict stand-in)."""
    return isinstance(x, np.ndarray) or _where(x) != "numpy"


def get_array_module(*arrays):
    """``numpy``, ``cupy`` or the strict namespace, from the arrays themselves."""
    for a in arrays:
        where = _where(a)
        if where != "numpy":
            return _load(where).xp
    return np


def backend_of(x) -> Backend:
    """The :class:`Backend` an array lives on."""
    return _load(_where(x))


def to_device(x, backend=None, dtype=None):
    """Host data -> an array of ``backend`` (default: the current backend).

    This is the one host-to-device door.  ``dtype`` casts on the way (no copy
    when the dtype already matches).
    """
    be = get_backend(backend)
    where = _where(x)
    if where not in ("numpy", be.name):
        x = x.get()  # another backend's device array: through the host
    if be.name != "numpy":
        return be.xp.asarray(x) if dtype is None else be.xp.asarray(x, dtype=np.dtype(dtype))
    return np.asarray(x) if dtype is None else np.asarray(x, dtype=np.dtype(dtype))


def to_host(x) -> np.ndarray:
    """Any backend's array -> a NumPy array (the one device-to-host door)."""
    if _where(x) != "numpy":
        return x.get()  # CuPy's explicit copy, which the stand-in copies
    return np.asarray(x)


def to_scalar(x) -> float:
    """A 0-d (or size-1) array of any backend -> a Python float (syncs a GPU)."""
    if isinstance(x, numbers.Number):
        return float(x)
    h = to_host(x)
    if h.size != 1:
        raise ValueError(f"to_scalar: expected a single value, got shape {h.shape}")
    return float(h.reshape(()))


def sparse_linalg(backend=None):
    """SciPy's sparse linear algebra for ``backend``'s arrays: the door from device arrays to SciPy.

    ``numpy``: ``scipy.sparse.linalg``.  ``cupy``: ``cupyx.scipy.sparse.linalg``
    (eigensolvers on the GPU; its ``LinearOperator`` products take and return
    CuPy arrays, and its ``eigsh`` has no convergence signal).  ``strict``:
    the stand-in's copy of the cupyx module (:data:`minilplr.testing.cupyx.sparse_linalg`),
    CuPy's names only, device arrays in and out, ARPACK underneath.  Host
    SciPy handed a device array fails on a GPU; the stand-in makes it fail in CI.
    """
    be = get_backend(backend)
    if be.name == "cupy":
        import cupyx.scipy.sparse.linalg as spla
    elif be.name == "strict":
        from .testing.cupyx import sparse_linalg as spla
    else:
        import scipy.sparse.linalg as spla
    return spla
