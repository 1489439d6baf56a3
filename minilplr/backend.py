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
    A stand-in for CuPy that runs on the CPU and fails where CuPy fails:
    converting one of its arrays to NumPy implicitly (``np.asarray``,
    ``np.save``, matplotlib, ``float()`` of a non-scalar) raises ``TypeError``,
    and so does mixing its arrays with NumPy arrays in one operation.  The test
    suite runs under it (see ``tests/conftest.py``) so that a host/device
    mix-up fails in CI, where there is no GPU.

The default backend is read from the environment variable
``MINILPLR_BACKEND`` (``numpy`` if unset) and can be changed with
:func:`set_backend`.
"""
from __future__ import annotations

import functools
import numbers
import os
import types

import numpy as np

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "Backend",
    "StrictArray",
    "get_backend",
    "set_backend",
    "get_array_module",
    "to_device",
    "to_host",
    "to_scalar",
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


# ---------------------------------------------------------------------------
# The strict stand-in: a NumPy array behind a wall that only explicit
# transfers pass, exactly where CuPy has its wall.
# ---------------------------------------------------------------------------

_IMPLICIT = (
    "Implicit conversion of a strict-backend (CuPy stand-in) array to a NumPy "
    "array is not allowed; use minilplr.backend.to_host(x) explicitly."
)


def _unwrap(obj, *, where: str):
    """StrictArray -> ndarray; refuse NumPy arrays (CuPy refuses them too)."""
    if isinstance(obj, StrictArray):
        return obj._a
    if isinstance(obj, np.ndarray):
        if obj.ndim == 0:
            return obj
        raise TypeError(
            f"{where}: a NumPy array of shape {obj.shape} was mixed with strict-backend "
            "(device) arrays; move it with minilplr.backend.to_device first "
            "(CuPy raises 'Unsupported type <class numpy.ndarray>' here)."
        )
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o, where=where) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v, where=where) for k, v in obj.items()}
    return obj


def _wrap(obj):
    """ndarray -> StrictArray (NumPy scalars stay scalars, as in CuPy they are 0-d)."""
    if isinstance(obj, np.ndarray):
        return StrictArray(obj)
    if isinstance(obj, np.generic):
        return StrictArray(np.asarray(obj))
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


def _strict_call(fn, name):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        a = _unwrap(args, where=name)
        k = _unwrap(kwargs, where=name)
        return _wrap(fn(*a, **k))

    return call


def _binary(op_name):
    def method(self, other):
        other_u = _unwrap(other, where=f"StrictArray.{op_name}")
        return _wrap(getattr(self._a, op_name)(other_u))

    method.__name__ = op_name
    return method


def _unary(op_name):
    def method(self):
        return _wrap(getattr(self._a, op_name)())

    method.__name__ = op_name
    return method


class StrictArray:
    """A device-array stand-in: a NumPy array that refuses implicit host use.

    Arithmetic, indexing, reductions and the array methods work and return
    ``StrictArray``; ``x.get()`` (as in CuPy) or :func:`to_host` returns the
    NumPy array explicitly.
    """

    __slots__ = ("_a",)
    __array_priority__ = 1000

    def __init__(self, a: np.ndarray):
        self._a = a

    # -- the wall -------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # np.exp(x) on a CuPy array dispatches to CuPy; so here, but any plain
        # NumPy array among the inputs is an error, as in CuPy.
        inputs = _unwrap(inputs, where=f"numpy.{ufunc.__name__}")
        kwargs = _unwrap(kwargs, where=f"numpy.{ufunc.__name__}")
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        if func in _HOST_ONLY_FUNCTIONS:
            raise TypeError(_IMPLICIT + f" (numpy.{func.__name__})")
        args = _unwrap(args, where=f"numpy.{func.__name__}")
        kwargs = _unwrap(kwargs, where=f"numpy.{func.__name__}")
        return _wrap(func(*args, **kwargs))

    def __float__(self):
        if self._a.ndim != 0:
            raise TypeError(
                f"float() of a strict-backend array of shape {self._a.shape}: only "
                "0-d arrays convert to Python scalars"
            )
        return float(self._a)

    def __int__(self):
        if self._a.ndim != 0:
            raise TypeError(f"int() of a strict-backend array of shape {self._a.shape}")
        return int(self._a)

    def __index__(self):
        if self._a.ndim != 0:
            raise TypeError(f"index of a strict-backend array of shape {self._a.shape}")
        return self._a.__index__()

    def __bool__(self):
        return bool(self._a)

    def __iter__(self):
        # CuPy iterates over the first axis, yielding device arrays.
        for i in range(len(self._a)):
            yield StrictArray(self._a[i])

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return "strict:" + repr(self._a)

    # -- explicit transfer, as CuPy spells it ----------------------------
    def get(self) -> np.ndarray:
        """Copy to the host (CuPy's ``ndarray.get``)."""
        return self._a.copy()

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    # -- attributes ---------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    T = property(lambda self: StrictArray(self._a.T))
    flags = property(lambda self: self._a.flags)

    @property
    def base(self):
        return None if self._a.base is None else _wrap(self._a.base)

    def __getattr__(self, name):
        # Methods (sum, reshape, astype, ...) run on the wrapped array and
        # their results come back wrapped.  Dunder protocols (__array_interface__,
        # __array_struct__, buffer ...) are not forwarded: they are the doors
        # through which NumPy would copy the data implicitly.
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            return _strict_call(attr, f"StrictArray.{name}")
        return _wrap(attr)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, where="StrictArray.__getitem__")])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, where="StrictArray.__setitem__")] = _unwrap(
            value, where="StrictArray.__setitem__"
        )


for _op in (
    "__add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ "
    "__floordiv__ __rfloordiv__ __pow__ __rpow__ __matmul__ __rmatmul__ __mod__ "
    "__lt__ __le__ __gt__ __ge__ __eq__ __ne__ __and__ __rand__ __or__ __ror__ "
    "__xor__ __iadd__ __isub__ __imul__ __itruediv__ __ipow__ __imatmul__ __iand__ __ior__"
).split():
    setattr(StrictArray, _op, _binary(_op))
for _op in "__neg__ __pos__ __abs__ __invert__".split():
    setattr(StrictArray, _op, _unary(_op))
StrictArray.__hash__ = None  # arrays are unhashable


class _StrictNamespace(types.SimpleNamespace):
    """``xp`` for the strict backend: NumPy's functions, wrapped at the wall."""

    def __init__(self, module, prefix):
        super().__init__()
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if isinstance(attr, types.ModuleType):
            return _StrictNamespace(attr, f"{self._prefix}.{name}")
        if isinstance(attr, type) or not callable(attr):
            return attr  # dtypes, constants (xp.float32, xp.pi, xp.newaxis)
        if name in ("asarray", "array", "asanyarray", "ascontiguousarray"):
            return _strict_asarray(attr)
        return _strict_call(attr, f"{self._prefix}.{name}")


def _strict_asarray(fn):
    # xp.asarray(numpy_array) is the host->device transfer in CuPy: allowed.
    def asarray(obj, *args, **kwargs):
        if isinstance(obj, StrictArray):
            obj = obj._a
        return StrictArray(fn(obj, *args, **kwargs))

    return asarray


strict_xp = _StrictNamespace(np, "xp")
# CuPy's explicit device->host copy lives on the module too.
object.__setattr__(strict_xp, "asnumpy", lambda x: x.get() if isinstance(x, StrictArray) else np.asarray(x))

_HOST_ONLY_FUNCTIONS = {np.save, np.savez, np.savez_compressed, np.savetxt}


# ---------------------------------------------------------------------------
# The switch.
# ---------------------------------------------------------------------------


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

    def asarray(self, x, dtype=None):
        """Host (or same-backend) data -> this backend's array, optionally cast."""
        return to_device(x, backend=self, dtype=dtype)

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
        be = Backend("strict", strict_xp)
    elif name == "cupy":
        try:
            import cupy  # noqa: F401
        except ImportError:
            raise BackendUnavailable(
                "backend 'cupy': CuPy is not installed (pip install -e '.[cupy]' on a "
                "machine with an NVIDIA GPU and CUDA 12)"
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


def get_array_module(*arrays):
    """``numpy``, ``cupy`` or the strict namespace, from the arrays themselves."""
    for a in arrays:
        if isinstance(a, StrictArray):
            return strict_xp
        mod = type(a).__module__
        if mod.startswith("cupy"):
            import cupy

            return cupy
    return np


def backend_of(x) -> Backend:
    """The :class:`Backend` an array lives on."""
    if isinstance(x, StrictArray):
        return _load("strict")
    if type(x).__module__.startswith("cupy"):
        return _load("cupy")
    return _load("numpy")


def to_device(x, backend=None, dtype=None):
    """Host data -> an array of ``backend`` (default: the current backend).

    This is the one host-to-device door.  ``dtype`` casts on the way (no copy
    when the dtype already matches).
    """
    be = get_backend(backend)
    if isinstance(x, StrictArray) and be.name != "strict":
        x = x.get()
    if be.name == "cupy" or be.name == "strict":
        arr = be.xp.asarray(x) if dtype is None else be.xp.asarray(x, dtype=np.dtype(dtype))
        return arr
    if dtype is None:
        return np.asarray(x) if not type(x).__module__.startswith("cupy") else x.get()
    if type(x).__module__.startswith("cupy"):
        x = x.get()
    return np.asarray(x, dtype=np.dtype(dtype))


def to_host(x) -> np.ndarray:
    """Any backend's array -> a NumPy array (the one device-to-host door)."""
    if isinstance(x, StrictArray):
        return x.get()
    if type(x).__module__.startswith("cupy"):
        return x.get()
    return np.asarray(x)


def to_scalar(x) -> float:
    """A 0-d (or size-1) array of any backend -> a Python float (syncs a GPU)."""
    if isinstance(x, numbers.Number):
        return float(x)
    h = to_host(x)
    if h.size != 1:
        raise ValueError(f"to_scalar: expected a single value, got shape {h.shape}")
    return float(h.reshape(()))
