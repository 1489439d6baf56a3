"""Parameters as one flat vector ``θ`` of length ``P``, and back; norms and distances of parameter sets.

The flat order is the order of ``model.params`` (layers first to last, ``W``
before ``b`` within a layer, each array in C order).  The columns of the
Jacobian ``J = ∂r/∂θ`` in :mod:`minilplr.theory.ntk` follow the same order.

The squared norm ``‖∇L‖²`` (:func:`sq_norm`) and the drift ``‖θ_t − θ_0‖``
(:func:`param_drift`) live here, in float64, because both the training loops
(:mod:`minilplr.train.loops`, which record them every step) and the theory
(:mod:`minilplr.theory.pl`, :mod:`minilplr.theory.dynamics`) measure them.
Each returns a Python float (one transfer to the host); the ``*_on_device``
versions leave the float64 sum on the device, for a caller that brings several
numbers over at once (the loops: one transfer per step).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ..backend import get_array_module, to_scalar

__all__ = ["num_params", "flatten", "unflatten", "load_params", "load_flat", "param_slices", "params_dtype",
           "as_flat", "sq_norm", "sq_norm_on_device", "param_drift", "drift_sq_on_device"]


def num_params(params) -> int:
    """``P``: the total number of scalars in a ``name -> array`` mapping."""
    return sum(int(p.size) for p in params.values())


def param_slices(params) -> "OrderedDict[str, slice]":
    """``name -> slice`` of each array inside the flat vector."""
    out, start = OrderedDict(), 0
    for k, p in params.items():
        out[k] = slice(start, start + int(p.size))
        start += int(p.size)
    return out


def flatten(params):
    """``name -> array`` -> one vector ``θ`` of shape ``(P,)`` (a copy)."""
    arrays = list(params.values())
    if not arrays:
        raise ValueError("params: expected at least one array, got an empty mapping")
    xp = get_array_module(arrays[0])
    return xp.concatenate([a.reshape(-1) for a in arrays])


def unflatten(vec, like):
    """Vector ``θ (P,)`` -> ``OrderedDict`` with the keys and shapes of ``like`` (views of ``vec``)."""
    n = num_params(like)
    if vec.ndim != 1 or vec.shape[0] != n:
        raise ValueError(f"vec: expected shape ({n},) for these parameters, got {tuple(vec.shape)}")
    return OrderedDict((k, vec[s].reshape(like[k].shape)) for k, s in param_slices(like).items())


def load_params(model, new_params) -> None:
    """Copy ``new_params`` into ``model.params`` in place (same keys, shapes, backend)."""
    cur = model.params
    if list(new_params.keys()) != list(cur.keys()):
        raise ValueError(f"new_params: expected keys {list(cur.keys())}, got {list(new_params.keys())}")
    for k, p in cur.items():
        v = new_params[k]
        if tuple(v.shape) != tuple(p.shape):
            raise ValueError(f"new_params[{k!r}]: expected shape {tuple(p.shape)}, got {tuple(v.shape)}")
        p[...] = v


def load_flat(model, vec) -> None:
    """Write the flat vector ``θ (P,)`` into ``model.params`` in place."""
    load_params(model, unflatten(vec, model.params))


def params_dtype(model) -> np.dtype:
    """The dtype a model computes in: ``model.dtype`` where it has one, else its first parameter's."""
    dt = getattr(model, "dtype", None)  # np.dtype is falsy: no ``or`` here
    return np.dtype(dt) if dt is not None else np.dtype(next(iter(model.params.values())).dtype)


def as_flat(v, name: str = "v"):
    """A flat ``(P,)`` array from an array, a ``name -> array`` mapping (``model.params``, ``model.grads``), a model."""
    if hasattr(v, "params") and not isinstance(v, Mapping):
        v = v.params
    if isinstance(v, Mapping):
        v = flatten(v)
    if not hasattr(v, "shape"):
        raise TypeError(f"{name}: expected an array, a name -> array mapping or a model, got {type(v).__name__}")
    return v.reshape(-1)


def sq_norm_on_device(x):
    r"""``‖x‖² = Σ_i x_i²`` summed in float64, as a 0-d float64 array on ``x``'s device (no sync).

    ``x``: an array of any shape, or a ``name -> array`` mapping, summed over
    its arrays: for ``model.grads`` that is ``‖∇L‖² = Σ_p ‖∂L/∂θ_p‖²``.  The
    squares are taken in the array's dtype and accumulated in float64: as
    accurate as casting first (2e-12 relative on the paper's MLP, ``P`` = 13M)
    without a float64 copy of every gradient at every training step
    (``benchmarks/bench_step_records.py`` times it).  The
    training loops bring it to the host together with the step's other
    records, in one transfer.
    """
    total = None
    for a in (x.values() if isinstance(x, Mapping) else (x,)):
        s = (a * a).sum(dtype=np.float64)  # ‖a‖², on the device
        total = s if total is None else total + s
    if total is None:
        raise ValueError("x: expected at least one array, got an empty mapping")
    return total


def sq_norm(x) -> float:
    r"""``‖x‖² = Σ_i x_i²`` summed in float64, as a Python float (one number crosses to the host).

    ``x``: an array or a ``name -> array`` mapping; see :func:`sq_norm_on_device`.
    """
    return to_scalar(sq_norm_on_device(x))


def _sum_sq_diff(p, q):
    r"""``Σ_i (p_i − q_i)²`` accumulated in float64: the plain expression ``((p − q)**2).sum(dtype=float64)``.

    ``p``, ``q``: flat ``(P_p,)`` arrays of one dtype; a 0-d float64 array
    back, on their device.  The speed trick: the difference is squared in
    place, one temporary of ``p``'s size and dtype instead of two (``p − q``
    and its square).  The same operations on the same values, so the same
    bits, with one pass over memory fewer (``benchmarks/bench_step_records.py``
    times it).  The float64 sum of float32 squares is most of what is left;
    BLAS ``vdot(d, d)`` is faster still but sums in float32 (2e-5 relative on
    the paper's MLP), and chunks small enough for the cache would save a
    little more but not the bits.
    ``θ_t − θ_0`` itself is exact in float32 while ``θ_t`` stays within a
    factor 2 of ``θ_0`` (Sterbenz); each square rounds once (2e-9 relative in
    the sum against a float64 evaluation there), and the float64 sum adds
    nothing visible.
    """
    xp = get_array_module(p)
    d = p - q  # θ_t − θ_0, in the parameters' dtype (no float64 copy per step)
    xp.multiply(d, d, out=d)  # (θ_t − θ_0)², in place
    return d.sum(dtype=np.float64)


def drift_sq_on_device(params_t, params_0):
    r"""``‖θ_t − θ_0‖² = Σ_p ‖θ_{t,p} − θ_{0,p}‖²`` summed in float64, a 0-d float64 array on the device (no sync).

    Arguments as in :func:`param_drift`; the training loops bring it to the
    host together with the step's other records, in one transfer.
    """
    a = params_t.params if hasattr(params_t, "params") and not isinstance(params_t, Mapping) else params_t
    b = params_0.params if hasattr(params_0, "params") and not isinstance(params_0, Mapping) else params_0
    if isinstance(a, Mapping) and isinstance(b, Mapping) and set(a) == set(b):
        pairs = [(a[k], b[k], f"params_t[{k!r}]") for k in a]
    else:
        pairs = [(as_flat(a, "params_t"), as_flat(b, "params_0"), "params_t")]
    total = None
    for p, q, name in pairs:
        if p.size != q.size:
            raise ValueError(f"{name}: expected {q.size} parameters to match params_0, got {p.size}")
        s = _sum_sq_diff(p.reshape(-1), q.reshape(-1))
        total = s if total is None else total + s
    return total


def param_drift(params_t, params_0) -> float:
    r"""Parameter drift ``‖θ_t − θ_0‖ = (Σ_p ‖θ_{t,p} − θ_{0,p}‖²)^{1/2}`` (Euclidean, summed in float64).

    How far training went from initialisation (THEORY.md §1, arXiv v3
    diagnostics): the local regime of Theorem 5.1 is a ball ``‖θ − θ_0‖ ≤ R``.
    Each argument: a flat ``(P,)`` array, a ``name -> array`` mapping or a
    model.  Two mappings with the same names are compared name by name (no
    flat copy of ``θ``); anything else is flattened first.  One sync.
    """
    return math.sqrt(to_scalar(drift_sq_on_device(params_t, params_0)))
