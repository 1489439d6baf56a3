"""The stand-in's ``cupyx.scipy.sparse.linalg``: CuPy's names only, device arrays in and out.

:func:`minilplr.backend.sparse_linalg` returns :data:`sparse_linalg` on the
strict backend, as it returns ``cupyx.scipy.sparse.linalg`` on the GPU.
Two names are emulated, with cupyx's checks and behaviour rather than host
SciPy's: :class:`DeviceOperator` (``LinearOperator``: products take and
return device arrays) and :func:`eigsh` (thick-restart Lanczos with no
failure signal: an unconverged answer comes back as if converged, the
Rayleigh–Ritz pairs of one Lanczos sweep when nothing converged,
:func:`krylov_ritz`).  The other names run host SciPy between an explicit
unwrap of the device arguments and a wrap of the results.
"""
from __future__ import annotations

import importlib
import types

import numpy as np

from .names import MODULE_NAMES, missing
from .strict import StrictArray, strict_call, unwrap, wrap

__all__ = ["DeviceOperator", "eigsh", "krylov_ritz", "sparse_linalg"]


class DeviceOperator:
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
        return StrictArray(self._op.matvec(unwrap(x, where="LinearOperator.matvec")))

    def __matmul__(self, x):
        return self.matvec(x)


def eigsh(a, k=6, *, which="LM", v0=None, ncv=None, maxiter=None, tol=0, return_eigenvectors=True):
    """The stand-in's ``cupyx.scipy.sparse.linalg.eigsh``: CuPy's checks and defaults, ARPACK underneath.

    Like cupyx (thick-restart Lanczos) it has no failure signal: when ARPACK
    gives up, its best Ritz pairs are returned as if converged, so the caller
    must check the residual, as it must on the GPU.  cupyx's ``maxiter`` counts
    Lanczos steps (``ncv`` for the first sweep, ``ncv − k`` per restart; default
    ``10 n``), ARPACK's counts restarts: it is converted, so a budget too small
    on the GPU is too small here.
    """
    from scipy.sparse.linalg import ArpackNoConvergence
    from scipy.sparse.linalg import eigsh as arpack_eigsh

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
    if isinstance(a, DeviceOperator):
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
        res = arpack_eigsh(op, k=k, which=which, v0=None if v0 is None else v0._a, ncv=max(ncv, k + 1),
                    maxiter=restarts, tol=tol, return_eigenvectors=return_eigenvectors)
    except ArpackNoConvergence as exc:
        if len(exc.eigenvalues):
            res = (exc.eigenvalues, exc.eigenvectors) if return_eigenvectors else exc.eigenvalues
        else:  # none converged: cupyx still returns its Ritz pairs, so return one sweep's
            w, V = krylov_ritz(op, k, which, None if v0 is None else v0._a, max(ncv, k + 1))
            res = (w, V) if return_eigenvectors else w
    return wrap(res)


def krylov_ritz(op, k, which, v0, m):
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

    ``LinearOperator`` and ``eigsh`` are emulated (:class:`DeviceOperator`,
    :func:`eigsh`); the other names run host SciPy between an explicit
    unwrap of the device arguments and a wrap of the results.
    """

    _EMULATED = {"cupyx.scipy.sparse.linalg": {"LinearOperator": DeviceOperator, "eigsh": eigsh}}

    def __init__(self, scipy_name, cupy_name):
        super().__init__()
        object.__setattr__(self, "_scipy", scipy_name)
        object.__setattr__(self, "_cupy", cupy_name)

    def __getattr__(self, name):
        if name not in MODULE_NAMES[self._cupy]:
            raise AttributeError(missing(f"{self._cupy}.{name}"))
        emulated = self._EMULATED.get(self._cupy, {}).get(name)
        if emulated is not None:
            return emulated
        return strict_call(getattr(importlib.import_module(self._scipy), name), f"{self._cupy}.{name}")


#: The stand-in's ``cupyx.scipy.sparse.linalg`` (:func:`minilplr.backend.sparse_linalg` returns it).
sparse_linalg = _StrictSciPy("scipy.sparse.linalg", "cupyx.scipy.sparse.linalg")
