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

It also fails where CuPy *lacks* something: ``xp.<name>``, ``xp.linalg.<name>``,
``x.<name>`` and ``np.<name>(x)`` on a stand-in array raise for every name that
is not in CuPy's own list (:mod:`minilplr.testing.names`).  Host SciPy handed a
stand-in array raises too, naming :func:`minilplr.backend.sparse_linalg`, the
door to ``cupyx.scipy`` on the GPU (emulated in :mod:`minilplr.testing.cupyx`).

Every crossing back to the host is counted (:mod:`minilplr.testing.transfers`).
"""
from __future__ import annotations

import functools
import sys
import types

import numpy as np

from .names import MODULE_NAMES, NDARRAY_NAMES, missing
from .transfers import count

__all__ = ["StrictArray", "xp", "wrap", "unwrap", "strict_call"]


# CuPy syncs for these: the size of the result depends on the data.
_DATA_DEPENDENT = frozenset({"nonzero", "argwhere", "flatnonzero", "unique", "extract", "compress"})

_IMPLICIT = (
    "Implicit conversion of a strict-backend (CuPy stand-in) array to a NumPy "
    "array is not allowed; use minilplr.backend.to_host(x) explicitly."
)


def unwrap(obj, *, where: str):
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
        return type(obj)(unwrap(o, where=where) for o in obj)
    if isinstance(obj, dict):
        return {k: unwrap(v, where=where) for k, v in obj.items()}
    return obj


def wrap(obj):
    """ndarray -> StrictArray (NumPy scalars stay scalars, as in CuPy they are 0-d)."""
    if isinstance(obj, np.ndarray):
        return StrictArray(obj)
    if isinstance(obj, np.generic):
        return StrictArray(np.asarray(obj))
    if isinstance(obj, tuple):
        return tuple(wrap(o) for o in obj)
    if isinstance(obj, list):
        return [wrap(o) for o in obj]
    return obj


def strict_call(fn, name):
    """``fn`` behind the wall: device arguments unwrapped (NumPy arrays refused), results wrapped.

    ``name`` (``"xp.nonzero"``, ``"cupyx.scipy.sparse.linalg.cg"``) names it in
    errors; a function whose output size depends on the data counts a transfer.
    """
    data_dependent = name.rsplit(".", 1)[-1] in _DATA_DEPENDENT or name == "xp.where"

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if data_dependent and (name != "xp.where" or len(args) + len(kwargs) == 1):
            count("data-dependent shape")
        a = unwrap(args, where=name)
        k = unwrap(kwargs, where=name)
        return wrap(fn(*a, **k))

    return call


def _binary(op_name):
    def method(self, other):
        other_u = unwrap(other, where=f"StrictArray.{op_name}")
        return wrap(getattr(self._a, op_name)(other_u))

    method.__name__ = op_name
    return method


def _unary(op_name):
    def method(self):
        return wrap(getattr(self._a, op_name)())

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
        f, scipy_entry = sys._getframe(1), None
        for _ in range(12):  # who asked: host SciPy (its outermost function) gets its own message
            if f is None:
                break
            mod = f.f_globals.get("__name__", "")
            if mod.startswith("scipy"):
                scipy_entry = f"{mod}.{f.f_code.co_name}"
            f = f.f_back
        if scipy_entry is not None:
            raise TypeError(
                f"host SciPy ({scipy_entry}) was handed a strict-backend (device) array, which fails on a GPU "
                "too: use minilplr.backend.sparse_linalg(backend) (cupyx.scipy.sparse.linalg on the GPU), or "
                "cross explicitly with minilplr.backend.to_host")
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # np.exp(x) on a CuPy array dispatches to CuPy; so here, but any plain
        # NumPy array among the inputs is an error, as in CuPy.
        if ufunc.__name__ not in MODULE_NAMES["cupy"]:
            raise TypeError(missing(f"numpy.{ufunc.__name__} on a device array (cupy.{ufunc.__name__})"))
        inputs = unwrap(inputs, where=f"numpy.{ufunc.__name__}")
        kwargs = unwrap(kwargs, where=f"numpy.{ufunc.__name__}")
        return wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        if func in _HOST_ONLY_FUNCTIONS:
            raise TypeError(_IMPLICIT + f" (numpy.{func.__name__})")
        # CuPy's __array_function__ looks the function up by module and name in cupy, else NotImplemented
        where = "cupy" + func.__module__[len("numpy"):]
        if func.__name__ not in MODULE_NAMES.get(where, ()):
            raise TypeError(missing(f"{func.__module__}.{func.__name__} on a device array ({where}.{func.__name__})"))
        if func.__name__ in _DATA_DEPENDENT:
            count("data-dependent shape")
        args = unwrap(args, where=f"numpy.{func.__name__}")
        kwargs = unwrap(kwargs, where=f"numpy.{func.__name__}")
        return wrap(func(*args, **kwargs))

    def __float__(self):
        if self._a.ndim != 0:
            raise TypeError(
                f"float() of a strict-backend array of shape {self._a.shape}: only "
                "0-d arrays convert to Python scalars"
            )
        count("float")
        return float(self._a)

    def __int__(self):
        if self._a.ndim != 0:
            raise TypeError(f"int() of a strict-backend array of shape {self._a.shape}")
        count("int")
        return int(self._a)

    def __index__(self):
        if self._a.ndim != 0:
            raise TypeError(f"index of a strict-backend array of shape {self._a.shape}")
        count("index")
        return self._a.__index__()

    def __bool__(self):
        count("bool")
        return bool(self._a)

    def __iter__(self):
        # CuPy iterates over the first axis, yielding device arrays.
        for i in range(len(self._a)):
            yield StrictArray(self._a[i])

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        count("repr")
        return "strict:" + repr(self._a)

    # -- explicit transfer, as CuPy spells it ----------------------------
    def get(self) -> np.ndarray:
        """Copy to the host (CuPy's ``ndarray.get``)."""
        count("get")
        return self._a.copy()

    def item(self):
        count("item")
        return self._a.item()

    def tolist(self):
        count("tolist")
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
        return None if self._a.base is None else wrap(self._a.base)

    def __getattr__(self, name):
        # Methods (sum, reshape, astype, ...) run on the wrapped array and
        # their results come back wrapped.  Dunder protocols (__array_interface__,
        # __array_struct__, buffer ...) are not forwarded: they are the doors
        # through which NumPy would copy the data implicitly.
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in NDARRAY_NAMES:
            raise AttributeError(missing(f"ndarray.{name}"))
        attr = getattr(self._a, name)
        if callable(attr):
            return strict_call(attr, f"StrictArray.{name}")
        return wrap(attr)

    def __getitem__(self, key):
        key = unwrap(key, where="StrictArray.__getitem__")
        if any(getattr(k, "dtype", None) == np.bool_ and getattr(k, "ndim", 0) > 0
               for k in (key if isinstance(key, tuple) else (key,))):
            count("data-dependent shape")  # x[mask]: CuPy must learn the size of the result
        return wrap(self._a[key])

    def __setitem__(self, key, value):
        self._a[unwrap(key, where="StrictArray.__setitem__")] = unwrap(
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
    """``xp`` for the strict backend: NumPy's functions, wrapped at the wall, under CuPy's names only.

    ``cupy_name`` is the CuPy module this namespace stands for (``"cupy"``,
    ``"cupy.linalg"`` …); a name missing from its list raises ``AttributeError``.
    """

    def __init__(self, module, prefix, cupy_name):
        super().__init__()
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_cupy", cupy_name)
        object.__setattr__(self, "_names", MODULE_NAMES[cupy_name])

    def __dir__(self):
        return sorted(n for n in self._names if hasattr(self._module, n))

    def __getattr__(self, name):
        if name not in self._names:
            raise AttributeError(missing(f"{self._prefix}.{name} ({self._cupy}.{name})"))
        try:
            attr = getattr(self._module, name)
        except AttributeError:
            raise AttributeError(f"{self._prefix}.{name}: a CuPy-only name ({self._cupy}.{name}) that the "
                                 "strict stand-in does not emulate") from None
        if isinstance(attr, types.ModuleType):
            sub = f"{self._cupy}.{name}"
            if sub not in MODULE_NAMES:
                raise AttributeError(f"{self._prefix}.{name}: the strict stand-in has no list of {sub}'s names; "
                                     f"add {sub!r} to MODULES in scripts/cupy_names.py and run it")
            ns = _StrictNamespace(attr, f"{self._prefix}.{name}", sub)
            object.__setattr__(self, name, ns)  # found directly from now on
            return ns
        if isinstance(attr, type) or not callable(attr):
            return attr  # dtypes, constants (xp.float32, xp.pi, xp.newaxis)
        if name in ("asarray", "array", "asanyarray", "ascontiguousarray"):
            return _strict_asarray(attr)
        return strict_call(attr, f"{self._prefix}.{name}")


def _strict_asarray(fn):
    # xp.asarray(numpy_array) is the host->device transfer in CuPy: allowed.
    def asarray(obj, *args, **kwargs):
        if isinstance(obj, StrictArray):
            obj = obj._a
        return StrictArray(fn(obj, *args, **kwargs))

    return asarray


#: The strict backend's ``xp``; ``minilplr.backend.get_backend("strict").xp`` is this object.
xp = _StrictNamespace(np, "xp", "cupy")
# CuPy's explicit device->host copy lives on the module too.
object.__setattr__(xp, "asnumpy", lambda x: x.get() if isinstance(x, StrictArray) else np.asarray(x))

_HOST_ONLY_FUNCTIONS = {np.save, np.savez, np.savez_compressed, np.savetxt}
