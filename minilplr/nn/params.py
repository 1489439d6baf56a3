"""Parameters as one flat vector ``θ`` of length ``P``, and back.

The flat order is the order of ``model.params`` (layers first to last, ``W``
before ``b`` within a layer, each array in C order).  The columns of the
Jacobian ``J = ∂r/∂θ`` in :mod:`minilplr.theory.ntk` follow the same order.
"""
from __future__ import annotations

from collections import OrderedDict

from ..backend import get_array_module

__all__ = ["num_params", "flatten", "unflatten", "load_params", "load_flat", "param_slices"]


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
