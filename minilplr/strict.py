"""The strict backend: a CuPy stand-in that runs on the CPU and fails where CuPy fails.

A testing tool, not part of the engine.  :mod:`minilplr.backend` (the switch)
imports this module only when the ``"strict"`` backend is asked for, which the
test suite does by default (``tests/conftest.py``), so that a host/device
mix-up fails in CI, where there is no GPU.

The wall CuPy puts between host and device, rebuilt around a NumPy array:

* :class:`StrictArray` wraps an ``ndarray``.  Arithmetic, indexing, reductions
  and the array methods work and return ``StrictArray``; converting one to
  NumPy implicitly (``np.asarray``, ``np.save``, matplotlib, ``float()`` of a
  non-scalar) raises ``TypeError``, and so does mixing one with a NumPy array
  in one operation, as CuPy does.  ``x.get()`` copies to the host, as in CuPy.
* :data:`xp` is the array module: NumPy's functions, wrapped at the wall;
  ``xp.asarray(host)`` is the host-to-device door, ``xp.asnumpy(x)`` the way back.
"""
from __future__ import annotations

import functools
import types

import numpy as np

__all__ = ["StrictArray", "xp"]

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


#: The strict backend's ``xp``; ``minilplr.backend.get_backend("strict").xp`` is this object.
xp = _StrictNamespace(np, "xp")
# CuPy's explicit device->host copy lives on the module too.
object.__setattr__(xp, "asnumpy", lambda x: x.get() if isinstance(x, StrictArray) else np.asarray(x))

_HOST_ONLY_FUNCTIONS = {np.save, np.savez, np.savez_compressed, np.savetxt}
