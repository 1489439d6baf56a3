"""Checkpoints: everything a run needs to continue bit for bit, stored as data, tied to its run.

A checkpoint is a :mod:`minilplr.store` unit (``<stem>.json`` + ``<stem>.npz``,
no pickles, written atomically, verified by hash on reading) holding

* ``state``: what the run needs to continue — for the training loops the
  ``state_dict()`` of each part of the run (:mod:`minilplr.train.resumable`):
  the parameters, the buffers (batch norm's running statistics), the train/eval
  mode, the optimiser's step counter and momentum, the schedule's state
  (e.g. Armijo's counters), ``θ_0`` and the history so far;
* ``fingerprint``: what the run *is* — the configuration that decides its
  numbers (shapes, dtype, optimiser and schedule, step counts, seeds) and a
  hash of its data;
* ``layout``: :data:`LAYOUT`, the version of how ``state`` is laid out.

:func:`load_checkpoint` gives the state back only to the run it belongs to:
another configuration or other data is refused in one line
(:class:`CheckpointMismatch`) naming what differs, and so is a checkpoint of
another layout (one written before the loops shared
:mod:`~minilplr.train.resumable` has none: layout 1); a damaged checkpoint is
moved aside with one line and the run starts over.
"""
from __future__ import annotations

from pathlib import Path

from ..backend import to_device, to_host
from ..nn.state import named_buffers
from ..store import load_or_discard, save_unit, to_jsonable

__all__ = ["LAYOUT", "CheckpointMismatch", "checkpoint_stem", "save_checkpoint", "load_checkpoint",
           "remove_checkpoint", "model_state", "load_model_state", "model_signature"]


#: How a checkpoint's ``state`` is laid out: 2, one entry per part of the run (``{name: part.state_dict()}``).
#: Checkpoints without the field were written by the loops' own code before (layout 1) and are refused.
LAYOUT = 2


class CheckpointMismatch(ValueError):
    """A checkpoint that belongs to another run (configuration, data or shapes differ)."""


def checkpoint_stem(path) -> Path:
    """``folder/name`` without a suffix: ``ck``, ``ck.json`` and ``ck.pkl`` all name ``ck.json`` + ``ck.npz``."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".json", ".npz", ".pkl", ".ckpt") else path


def save_checkpoint(path, state: dict, fingerprint: dict) -> Path:
    """Store ``state`` (host arrays and plain values) with the ``fingerprint`` of its run; atomic."""
    stem = checkpoint_stem(path)
    return save_unit(stem.parent, stem.name, {"layout": LAYOUT, "fingerprint": to_jsonable(fingerprint),
                                              "state": state})


def _differences(saved, now, prefix=""):
    """Human-readable ``key: saved … now …`` for every leaf where two fingerprints differ."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out = []
        for k in sorted(set(saved) | set(now)):
            out += _differences(saved.get(k, "(absent)"), now.get(k, "(absent)"), f"{prefix}{k}.")
        return out
    return [] if saved == now else [f"{prefix[:-1]}: saved {saved!r}, now {now!r}"]


def load_checkpoint(path, fingerprint: dict, log=print):
    """The state saved for this run, or ``None`` (no checkpoint, or a damaged one, moved aside).

    Raises
    ------
    CheckpointMismatch
        The checkpoint belongs to another run, or has another :data:`LAYOUT`; nothing is changed on disk.
    """
    stem = checkpoint_stem(path)
    unit = load_or_discard(stem.parent, stem.name, log=log)
    if unit is None:
        return None
    layout = unit.get("layout", 1)
    if layout != LAYOUT:
        raise CheckpointMismatch(
            f"checkpoint {stem}.json has layout {layout!r} (written by another version of minilplr), this version "
            f"reads layout {LAYOUT}: delete {stem}.json and {stem}.npz to start this run over, or write to another "
            "folder")
    diff = _differences(unit.get("fingerprint"), to_jsonable(fingerprint))
    if diff:
        shown = "; ".join(d if len(d) < 120 else d[:117] + "..." for d in diff[:3])
        more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
        raise CheckpointMismatch(
            f"checkpoint {stem}.json belongs to another run ({shown}{more}): delete {stem}.json and {stem}.npz "
            "to start this run over, or write to another folder")
    return unit["state"]


def remove_checkpoint(path) -> None:
    """Delete a finished run's checkpoint (both files; missing ones are fine)."""
    stem = checkpoint_stem(path)
    for suffix in (".json", ".npz"):
        stem.with_name(stem.name + suffix).unlink(missing_ok=True)


# --------------------------------------------------------------------------- a model's state


def model_signature(model) -> dict:
    """What a checkpoint of ``model`` must match: parameter and buffer names, shapes and dtypes."""
    return {
        "params": {k: [list(p.shape), str(p.dtype)] for k, p in model.params.items()},
        "buffers": {k: [list(b.shape), str(b.dtype)] for k, b in named_buffers(model).items()},
    }


def model_state(model) -> dict:
    """Host copies of the parameters and buffers, and the train/eval mode."""
    return {
        "params": {k: to_host(p) for k, p in model.params.items()},
        "buffers": {k: to_host(b) for k, b in named_buffers(model).items()},
        "training": bool(getattr(model, "training", True)),
    }


def load_model_state(model, state: dict) -> None:
    """Write a :func:`model_state` back into ``model`` in place (same backend and dtypes)."""
    be = model.backend
    for k, p in model.params.items():
        p[...] = to_device(state["params"][k], be, p.dtype)
    for k, b in named_buffers(model).items():
        b[...] = to_device(state["buffers"][k], be, b.dtype)
    if hasattr(model, "train"):
        model.train(bool(state.get("training", True)))
