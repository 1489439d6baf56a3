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

It also fails where CuPy *lacks* something.  NumPy has names CuPy does not
(``geomspace``, ``errstate``, ``insert``, ``linalg.svdvals``,
``linalg.multi_dot``, ``ndarray.resize`` …): ``xp.<name>``, ``xp.linalg.<name>``,
``x.<name>`` and ``np.<name>(x)`` on a stand-in array raise for every name that
is not in CuPy's own list, ``cupy_names.json`` beside this file (written from
CuPy itself by ``scripts/cupy_names.py``; regenerate it when CuPy changes).
Host SciPy handed a stand-in array raises too, naming
:func:`minilplr.backend.sparse_linalg`, the door to ``cupyx.scipy`` on the GPU.

And it counts the crossings back to the host, which on a GPU are
synchronisations: ``x.get()`` (so :func:`~minilplr.backend.to_host` and
:func:`~minilplr.backend.to_scalar`), ``x.item()``, ``float(x)``, ``int(x)``,
``bool(x)``, ``repr(x)``, and the operations whose output size depends on the
data (``nonzero``, ``unique``, boolean-mask indexing …).  :func:`transfers`
records them, with the line that asked, so a test can pin the sync budget of
a training step.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import json
import os
import sys
import types
from pathlib import Path

import numpy as np

__all__ = ["StrictArray", "xp", "sparse_linalg", "transfers", "Transfers", "CUPY_NAMES"]

CUPY_NAMES = json.loads(Path(__file__).with_name("cupy_names.json").read_text())
"""What CuPy provides: ``{"cupy_version", "modules": {"cupy": [...], "cupy.linalg": [...], ...}, "ndarray": [...]}``
(written by ``scripts/cupy_names.py`` from the CuPy it names)."""
_MODULE_NAMES = {m: frozenset(v) for m, v in CUPY_NAMES["modules"].items()}
_NDARRAY_NAMES = frozenset(CUPY_NAMES["ndarray"])
_REGENERATE = "CuPy's names: minilplr/cupy_names.json, written by scripts/cupy_names.py"


def _missing(what: str) -> str:
    return (f"{what}: CuPy {CUPY_NAMES['cupy_version']} has no such name, so this fails on a GPU; "
            f"the strict stand-in refuses it too ({_REGENERATE})")


# --------------------------------------------------------------------------- counting transfers


class Transfers:
    """Device-to-host crossings recorded inside one :func:`transfers` block.

    Attributes
    ----------
    events : list of (kind, site)
        ``kind``: ``"to_scalar"``, ``"to_host"`` (the backend's doors),
        ``"get"``, ``"item"``, ``"tolist"``, ``"float"``, ``"int"``,
        ``"index"``, ``"bool"``, ``"repr"`` or ``"data-dependent shape"``;
        ``site``: ``"path:line (function)"`` of the first caller outside the
        backend, i.e. the line that asked for the sync.
    """

    def __init__(self):
        self.events: list[tuple[str, str]] = []

    @property
    def count(self) -> int:
        return len(self.events)

    def by_kind(self) -> dict:
        return dict(collections.Counter(k for k, _ in self.events))

    def by_site(self) -> dict:
        return dict(collections.Counter(s for _, s in self.events))

    def __str__(self):
        lines = [f"{n} x {s}" for s, n in self.by_site().items()]
        return f"{self.count} device->host transfers:" + "".join("\n  " + ln for ln in lines)


_LOGS: list[Transfers] = []
_HERE = os.path.dirname(os.path.abspath(__file__))
_DOORS = {os.path.join(_HERE, "strict.py"), os.path.join(_HERE, "backend.py")}


@contextlib.contextmanager
def transfers():
    """Record the device-to-host transfers of the block: ``with transfers() as t: ...; t.count``.

    Blocks nest (each records what happened inside it).
    """
    log = Transfers()
    _LOGS.append(log)
    try:
        yield log
    finally:
        _LOGS.remove(log)


def _count(kind: str) -> None:
    """Record one transfer in every open :func:`transfers` block (nothing to do when none is open)."""
    if not _LOGS:
        return
    f = sys._getframe(1)
    while f is not None and os.path.abspath(f.f_code.co_filename) in _DOORS:
        if f.f_code.co_name in ("to_scalar", "to_host"):
            kind = f.f_code.co_name  # the outermost backend door names the transfer
        f = f.f_back
    if f is None:
        site = "?"
    else:
        path = f.f_code.co_filename
        short = os.path.relpath(path, os.path.dirname(_HERE)) if path.startswith(os.path.dirname(_HERE)) else path
        site = f"{short}:{f.f_lineno} ({f.f_code.co_name})"
    for log in _LOGS:
        log.events.append((kind, site))


# CuPy syncs for these: the size of the result depends on the data.
_DATA_DEPENDENT = frozenset({"nonzero", "argwhere", "flatnonzero", "unique", "extract", "compress"})

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
    data_dependent = name.rsplit(".", 1)[-1] in _DATA_DEPENDENT or name == "xp.where"

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if data_dependent and (name != "xp.where" or len(args) + len(kwargs) == 1):
            _count("data-dependent shape")
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
        if ufunc.__name__ not in _MODULE_NAMES["cupy"]:
            raise TypeError(_missing(f"numpy.{ufunc.__name__} on a device array (cupy.{ufunc.__name__})"))
        inputs = _unwrap(inputs, where=f"numpy.{ufunc.__name__}")
        kwargs = _unwrap(kwargs, where=f"numpy.{ufunc.__name__}")
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        if func in _HOST_ONLY_FUNCTIONS:
            raise TypeError(_IMPLICIT + f" (numpy.{func.__name__})")
        # CuPy's __array_function__ looks the function up by module and name in cupy, else NotImplemented
        where = "cupy" + func.__module__[len("numpy"):]
        if func.__name__ not in _MODULE_NAMES.get(where, ()):
            raise TypeError(_missing(f"{func.__module__}.{func.__name__} on a device array ({where}.{func.__name__})"))
        if func.__name__ in _DATA_DEPENDENT:
            _count("data-dependent shape")
        args = _unwrap(args, where=f"numpy.{func.__name__}")
        kwargs = _unwrap(kwargs, where=f"numpy.{func.__name__}")
        return _wrap(func(*args, **kwargs))

    def __float__(self):
        if self._a.ndim != 0:
            raise TypeError(
                f"float() of a strict-backend array of shape {self._a.shape}: only "
                "0-d arrays convert to Python scalars"
            )
        _count("float")
        return float(self._a)

    def __int__(self):
        if self._a.ndim != 0:
            raise TypeError(f"int() of a strict-backend array of shape {self._a.shape}")
        _count("int")
        return int(self._a)

    def __index__(self):
        if self._a.ndim != 0:
            raise TypeError(f"index of a strict-backend array of shape {self._a.shape}")
        _count("index")
        return self._a.__index__()

    def __bool__(self):
        _count("bool")
        return bool(self._a)

    def __iter__(self):
        # CuPy iterates over the first axis, yielding device arrays.
        for i in range(len(self._a)):
            yield StrictArray(self._a[i])

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        _count("repr")
        return "strict:" + repr(self._a)

    # -- explicit transfer, as CuPy spells it ----------------------------
    def get(self) -> np.ndarray:
        """Copy to the host (CuPy's ``ndarray.get``)."""
        _count("get")
        return self._a.copy()

    def item(self):
        _count("item")
        return self._a.item()

    def tolist(self):
        _count("tolist")
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
        if name not in _NDARRAY_NAMES:
            raise AttributeError(_missing(f"ndarray.{name}"))
        attr = getattr(self._a, name)
        if callable(attr):
            return _strict_call(attr, f"StrictArray.{name}")
        return _wrap(attr)

    def __getitem__(self, key):
        key = _unwrap(key, where="StrictArray.__getitem__")
        if any(getattr(k, "dtype", None) == np.bool_ and getattr(k, "ndim", 0) > 0
               for k in (key if isinstance(key, tuple) else (key,))):
            _count("data-dependent shape")  # x[mask]: CuPy must learn the size of the result
        return _wrap(self._a[key])

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
    """``xp`` for the strict backend: NumPy's functions, wrapped at the wall, under CuPy's names only.

    ``cupy_name`` is the CuPy module this namespace stands for (``"cupy"``,
    ``"cupy.linalg"`` …); a name missing from its list raises ``AttributeError``.
    """

    def __init__(self, module, prefix, cupy_name):
        super().__init__()
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_cupy", cupy_name)
        object.__setattr__(self, "_names", _MODULE_NAMES[cupy_name])

    def __dir__(self):
        return sorted(n for n in self._names if hasattr(self._module, n))

    def __getattr__(self, name):
        if name not in self._names:
            raise AttributeError(_missing(f"{self._prefix}.{name} ({self._cupy}.{name})"))
        try:
            attr = getattr(self._module, name)
        except AttributeError:
            raise AttributeError(f"{self._prefix}.{name}: a CuPy-only name ({self._cupy}.{name}) that the "
                                 "strict stand-in does not emulate") from None
        if isinstance(attr, types.ModuleType):
            sub = f"{self._cupy}.{name}"
            if sub not in _MODULE_NAMES:
                raise AttributeError(f"{self._prefix}.{name}: the strict stand-in has no list of {sub}'s names; "
                                     f"add {sub!r} to MODULES in scripts/cupy_names.py and run it")
            ns = _StrictNamespace(attr, f"{self._prefix}.{name}", sub)
            object.__setattr__(self, name, ns)  # found directly from now on
            return ns
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
xp = _StrictNamespace(np, "xp", "cupy")
# CuPy's explicit device->host copy lives on the module too.
object.__setattr__(xp, "asnumpy", lambda x: x.get() if isinstance(x, StrictArray) else np.asarray(x))

_HOST_ONLY_FUNCTIONS = {np.save, np.savez, np.savez_compressed, np.savetxt}


# --------------------------------------------------------------------------- SciPy on the device


class _DeviceOperator:
    """The stand-in's ``cupyx.scipy.sparse.linalg.LinearOperator``: products take and return device arrays.

    It holds a host SciPy operator whose products wrap the host vector, call
    the user's function on the "device" and insist on a device array back (a
    NumPy array there would fail in the next CuPy operation).
    """

    def __init__(self, shape, matvec, rmatvec=None, matmat=None, dtype=None, rmatmat=None):
        from scipy.sparse.linalg import LinearOperator

        def on_device(fn, name):
            if fn is None:
                return None

            def host(v):
                out = fn(StrictArray(np.asarray(v)))
                if not isinstance(out, StrictArray):
                    raise TypeError(f"LinearOperator {name}: expected a device array back, got "
                                    f"{type(out).__name__} (cupyx needs cupy arrays)")
                return out._a

            return host

        self._op = LinearOperator(shape, matvec=on_device(matvec, "matvec"), rmatvec=on_device(rmatvec, "rmatvec"),
                                  matmat=on_device(matmat, "matmat"), dtype=dtype,
                                  rmatmat=on_device(rmatmat, "rmatmat"))
        self.shape, self.dtype, self.ndim = self._op.shape, self._op.dtype, 2

    def matvec(self, x):
        return StrictArray(self._op.matvec(_unwrap(x, where="LinearOperator.matvec")))

    def __matmul__(self, x):
        return self.matvec(x)


def _eigsh(a, k=6, *, which="LM", v0=None, ncv=None, maxiter=None, tol=0, return_eigenvectors=True):
    """The stand-in's ``cupyx.scipy.sparse.linalg.eigsh``: CuPy's checks and defaults, ARPACK underneath.

    Like cupyx (thick-restart Lanczos) it has no failure signal: when ARPACK
    gives up, its best Ritz pairs are returned as if converged, so the caller
    must check the residual, as it must on the GPU.  cupyx's ``maxiter`` counts
    Lanczos steps (``ncv`` for the first sweep, ``ncv − k`` per restart; default
    ``10 n``), ARPACK's counts restarts: it is converted, so a budget too small
    on the GPU is too small here.
    """
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    n = a.shape[0]
    if len(a.shape) != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected square matrix (shape: {a.shape})")
    if k <= 0:
        raise ValueError(f"k must be greater than 0 (actual: {k})")
    if k >= n:
        raise ValueError(f"k must be smaller than n (actual: {k})")
    if which not in ("LM", "LA", "SA"):
        raise ValueError(f"which must be 'LM','LA'or'SA' (actual: {which})")
    ncv = min(max(2 * k, k + 32), n - 1) if ncv is None else min(max(ncv, k + 2), n - 1)
    if isinstance(a, _DeviceOperator):
        op = a._op
    elif isinstance(a, StrictArray):
        op = a._a
    else:
        raise TypeError(f"a: expected a device array or cupyx LinearOperator, got {type(a).__name__}")
    if v0 is not None and not isinstance(v0, StrictArray):
        raise TypeError(f"v0: expected a device array, got {type(v0).__name__} (cupyx needs cupy arrays)")
    steps = 10 * n if maxiter is None else int(maxiter)  # cupyx: Lanczos steps
    restarts = 1 + max(0, -(-(steps - ncv) // max(ncv - k, 1)))  # ARPACK: restarts (first sweep included)
    try:
        res = eigsh(op, k=k, which=which, v0=None if v0 is None else v0._a, ncv=max(ncv, k + 1),
                    maxiter=restarts, tol=tol, return_eigenvectors=return_eigenvectors)
    except ArpackNoConvergence as exc:
        if len(exc.eigenvalues):
            res = (exc.eigenvalues, exc.eigenvectors) if return_eigenvectors else exc.eigenvalues
        else:  # none converged: cupyx still returns its Ritz pairs, so return one sweep's
            w, V = _krylov_ritz(op, k, which, None if v0 is None else v0._a, max(ncv, k + 1))
            res = (w, V) if return_eigenvectors else w
    return _wrap(res)


def _krylov_ritz(op, k, which, v0, m):
    """The ``k`` Ritz pairs of ``op`` on ``span{v₀, A v₀, …, A^{m−1} v₀}`` (Rayleigh–Ritz), values ascending.

    What cupyx's ``eigsh`` returns when its first Lanczos sweep of ``m = ncv``
    vectors is all it is allowed: an unconverged answer, never an error.
    """
    from scipy.sparse.linalg import aslinearoperator

    A = aslinearoperator(op)
    n = A.shape[0]
    q = np.random.default_rng(0).random(n) if v0 is None else np.asarray(v0, dtype=np.float64)
    Q = [q / np.linalg.norm(q)]
    for _ in range(1, min(m, n)):
        w = A.matvec(Q[-1])
        for _ in range(2):  # full reorthogonalisation, twice
            w = w - np.column_stack(Q) @ (np.column_stack(Q).T @ w)
        if np.linalg.norm(w) <= 1e-14 * np.linalg.norm(Q[-1]):
            break  # an invariant subspace
        Q.append(w / np.linalg.norm(w))
    Q = np.column_stack(Q)  # (n, m) orthonormal
    T = Q.T @ np.column_stack([A.matvec(Q[:, j]) for j in range(Q.shape[1])])  # QᵀAQ (m, m)
    w, S = np.linalg.eigh(0.5 * (T + T.T))
    key = {"LM": -np.abs(w), "LA": -w, "SA": w}[which]
    pick = np.sort(np.argsort(key, kind="stable")[:k])  # the wanted k, in ascending order of value
    return w[pick], Q @ S[:, pick]


class _StrictSciPy(types.SimpleNamespace):
    """``cupyx.scipy.<module>`` for the strict backend: CuPy's names only, device arrays in and out.

    ``LinearOperator`` and ``eigsh`` are emulated (:class:`_DeviceOperator`,
    :func:`_eigsh`); the other names run host SciPy between an explicit
    unwrap of the device arguments and a wrap of the results.
    """

    _EMULATED = {"cupyx.scipy.sparse.linalg": {"LinearOperator": _DeviceOperator, "eigsh": _eigsh}}

    def __init__(self, scipy_name, cupy_name):
        super().__init__()
        object.__setattr__(self, "_scipy", scipy_name)
        object.__setattr__(self, "_cupy", cupy_name)

    def __getattr__(self, name):
        if name not in _MODULE_NAMES[self._cupy]:
            raise AttributeError(_missing(f"{self._cupy}.{name}"))
        emulated = self._EMULATED.get(self._cupy, {}).get(name)
        if emulated is not None:
            return emulated
        import importlib

        return _strict_call(getattr(importlib.import_module(self._scipy), name), f"{self._cupy}.{name}")


#: The stand-in's ``cupyx.scipy.sparse.linalg`` (:func:`minilplr.backend.sparse_linalg` returns it).
sparse_linalg = _StrictSciPy("scipy.sparse.linalg", "cupyx.scipy.sparse.linalg")
