"""A model's state beyond its parameters: walking its layers, its buffers, frozen masks, leaving it untouched.

* :func:`iter_layers` — every layer inside a model, depth first;
* :func:`named_buffers` — the non-parameter state (batch norm's running
  statistics), named like the parameters;
* :func:`frozen_activations` — every ReLU's mask frozen at its last forward
  pass, so finite differences see one linear piece of the network;
* :func:`untouched` / :func:`leaves_untouched` — run a diagnostic and give
  the model back exactly as it was (parameters, buffers, mode, gradients,
  what forward kept for backward);
* :func:`float64_copy` — a float64 twin of a model (parameters and buffers
  cast), for checks that need float64 arithmetic on a float32 model.

Imports only :mod:`minilplr.backend` and the layers of :mod:`.layers`.
"""
from __future__ import annotations

import copy
import functools
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from ..backend import is_array
from .layers import Layer, ReLU

__all__ = ["iter_layers", "named_buffers", "frozen_activations", "untouched", "leaves_untouched", "float64_copy"]


def iter_layers(layer):
    """``layer`` and every layer inside it, depth first (Sequential and residual containers)."""
    yield layer
    seen = {id(layer)}
    children = list(getattr(layer, "layers", {}).values()) if isinstance(getattr(layer, "layers", None), dict) else []
    children += [v for k, v in vars(layer).items() if isinstance(v, Layer) and k != "layers"]
    for child in children:
        if id(child) not in seen:
            seen.add(id(child))
            yield from iter_layers(child)


def named_buffers(layer, prefix: str = "") -> "OrderedDict[str, object]":
    """All non-parameter state of ``layer`` and its sub-layers: every layer's ``buffers`` (batch norm's running statistics).

    Names follow the parameter names: ``"stage2.block1.bn1.running_mean"``.
    The arrays are the layers' own (write into them with ``b[...] = v``).
    """
    out = OrderedDict()
    own = vars(layer).get("buffers", OrderedDict())  # a layer's own state (not a container's view)
    for name, buf in own.items():
        out[prefix + name] = buf
    for name, sub in getattr(layer, "layers", OrderedDict()).items():
        out.update(named_buffers(sub, f"{prefix}{name}."))
    return out


@contextmanager
def frozen_activations(model):
    """Freeze every ReLU's mask at its last forward pass, inside the ``with`` block.

    A ReLU network is smooth in ``θ`` only between kinks.  Frozen, each ReLU
    multiplies by the mask of the point where it was last evaluated, so the
    network is the polynomial (in ``θ``) that it equals on that linear piece,
    and finite differences of its gradient give that piece's Hessian (what
    autograd reports), whatever the step: no jump across a kink is seen.
    """
    relus = [l for l in iter_layers(model) if isinstance(l, ReLU)]
    for r in relus:
        r.frozen = True
    try:
        yield model
    finally:
        for r in relus:
            r.frozen = False


def _snapshot(v):
    """``(v, saved)``: arrays copied, dicts and lists entry by entry, anything else kept by reference."""
    if is_array(v):
        return v, v.copy()
    if isinstance(v, dict):
        return v, [(k, _snapshot(x)) for k, x in v.items()]
    if isinstance(v, list):
        return v, [_snapshot(x) for x in v]
    return v, None


def _restore(snap):
    """The object that was snapshot, with its saved content written back into it (in place)."""
    v, saved = snap
    if is_array(v):
        if getattr(getattr(v, "flags", None), "writeable", True):  # a read-only array cannot have changed
            v[...] = saved
    elif isinstance(v, dict):
        v.clear()
        v.update((k, _restore(s)) for k, s in saved)
    elif isinstance(v, list):
        v[:] = [_restore(s) for s in saved]
    return v


@contextmanager
def untouched(model):
    """Run a diagnostic on ``model`` and give it back exactly as it was, inside the ``with`` block.

    A diagnostic (a gradient, a Hessian–vector product, the NTK) runs forward
    and backward passes on the caller's model, and each pass writes state:
    the parameters (moved to ``θ ± hv``), ``grads``, what ``forward`` keeps for
    ``backward`` (a dense layer's input, a ReLU's mask, batch norm's ``x̂``),
    batch norm's running statistics (a training-mode forward moves them) and
    the train/eval mode.  On entry every attribute of every layer
    (:func:`iter_layers`) is recorded, arrays copied; on exit, also after an
    exception, every attribute is bound again to the object it held and each
    array gets its recorded values back *in place*, so references held
    outside (an optimiser's, the caller's ``model.params["fc1.W"]``) still
    see the model's arrays.  Attributes the block added are removed.

    Cost: one copy of the model's state (parameters, gradients, cached
    activations) in and one out; nothing per forward pass.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"model: expected a minilplr Model, Sequential or Layer, got {type(model).__name__}")
    layers = list(iter_layers(model))
    saved = [(layer, {name: _snapshot(v) for name, v in vars(layer).items()}) for layer in layers]
    try:
        yield model
    finally:
        for layer, state in saved:
            for name in [n for n in vars(layer) if n not in state]:  # added inside the block
                delattr(layer, name)
            for name, snap in state.items():
                setattr(layer, name, _restore(snap))


def leaves_untouched(fn):
    """Decorator: ``fn(model, ...)`` runs inside :func:`untouched` ``(model)``."""

    @functools.wraps(fn)
    def wrapped(model, *args, **kwargs):
        with untouched(model):
            return fn(model, *args, **kwargs)

    return wrapped


# --------------------------------------------------------------------------- a float64 twin


def _cast_floating(obj, dtype):
    """Arrays of a floating dtype (also inside dicts) cast to ``dtype``; others unchanged."""
    if hasattr(obj, "dtype") and hasattr(obj, "astype") and getattr(obj.dtype, "kind", "") == "f":
        return obj.astype(dtype)
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _cast_floating(obj[k], dtype)
    return obj


def float64_copy(model):
    """A float64 copy of ``model`` (same backend, same weights up to the cast).

    For checks that need float64 arithmetic on a model trained in float32:
    finite-difference Hessian-vector products (:mod:`minilplr.theory.smoothness`), or an NTK
    whose factors are float64 too.  Every floating array held by a layer
    (parameters, buffers such as batch norm's running statistics) is cast.
    """
    if not hasattr(model, "params"):
        raise TypeError(f"model: expected a minilplr Model or Sequential, got {type(model).__name__}")
    memo = {}
    if hasattr(model, "backend"):
        memo[id(model.backend)] = model.backend  # modules do not deep-copy
    twin = copy.deepcopy(model, memo)

    def visit(layer):
        for name, value in list(vars(layer).items()):
            if name == "layers" or name == "backend":
                continue
            setattr(layer, name, _cast_floating(value, np.float64))
        for sub in getattr(layer, "layers", {}).values():
            visit(sub)

    visit(twin)
    if hasattr(twin, "dtype"):
        twin.dtype = np.dtype(np.float64)
    return twin
