"""One resumable loop: what identifies a run, what it saves, how it comes back, and when it saves.

Every training loop of the package resumes through one :class:`Resumable`: the
GD and SGD loops of :mod:`minilplr.train.loops` on the networks of
:mod:`minilplr.nn`, and :func:`minilplr.theory.linear.trajectory.run_gd` on the
two-layer linear network.  It has four pieces:

* the **fingerprint**: what decides the run's numbers (shapes, the data's hash,
  the optimiser's and schedule's :func:`signature`, step counts, seeds), a
  dict the loop builds; a checkpoint of any other run is refused in one line
  (:class:`~minilplr.train.checkpoint.CheckpointMismatch`);
* the **state**: the run's *parts*, each an object with ``state_dict()``
  (host arrays and plain values, storable as JSON + ``.npz``) and
  ``load_state_dict(state)``: the optimiser
  (:class:`~minilplr.train.optim.SGD`, its schedule's state inside), the model
  (:class:`ModelState`), named arrays such as ``θ_0`` (:class:`Arrays`), the
  loop's records;
* **restore**: each part loads its own state back (:meth:`Resumable.restore`);
* the **cadence**: a checkpoint every ``every`` steps and wherever the loop
  asks (:meth:`Resumable.due`, :meth:`Resumable.save`), written atomically by
  :mod:`minilplr.train.checkpoint` (a :mod:`minilplr.store` unit).

A loop reads (as :func:`minilplr.train.loops.train_gd` does)::

    history = History()                   # the loop's records, a part: it has state_dict/load_state_dict
    theta0 = {k: p.copy() for k, p in model.params.items()}
    ck = Resumable(path, fingerprint, {"model": ModelState(model), "optimiser": opt,
                                       "theta0": Arrays(theta0), "history": history}, every=25)
    ck.restore()                          # False: a fresh start
    for t in range(len(history["step"]), steps):
        ...                               # one step, recorded in history
        if ck.due(t + 1, last=steps):     # every 25 steps, and after the final one
            ck.save()

``history`` is :class:`minilplr.train.loops.History` (per-step records that
save and load themselves); a plain ``dict`` has no ``state_dict`` and is
refused (with a path).  Without ``last=`` the final step is saved only when ``every``
divides ``steps``.

Without a path (``Resumable(None, ...)``) nothing is restored or saved, and
the loop reads the same.
"""
from __future__ import annotations

import inspect

from ..backend import backend_of, to_device, to_host
from .checkpoint import load_checkpoint, load_model_state, model_state, save_checkpoint
from ..validate import check_int

__all__ = ["Resumable", "Arrays", "ModelState", "signature"]

_PLAIN = (bool, int, float, str)


def signature(obj) -> dict:
    """What identifies an optimiser or a schedule in a run's fingerprint.

    ``{"class", "repr", "settings", <name>: ...}``: the settings are the
    attributes that are plain values (``None``, numbers, strings) and not part
    of the state (``state_dict``'s keys: a step counter, momentum buffers); an
    attribute that is callable (an optimiser's schedule, a line search's loss
    closure) adds its own signature under its name.
    ``repr`` rounds (``Constant(0.0123457)``); the settings keep every bit.
    A function is named by its module and qualified name (its ``repr`` holds an
    address, different in every process).
    """
    if inspect.isroutine(obj):
        return {"function": f"{obj.__module__}.{obj.__qualname__}"}
    state = obj.state_dict() if callable(getattr(obj, "state_dict", None)) else {}
    out = {"class": type(obj).__name__}
    if type(obj).__repr__ is not object.__repr__:
        out["repr"] = repr(obj)
    out["settings"] = {}
    for k, v in sorted(getattr(obj, "__dict__", {}).items()):
        if callable(v) and not isinstance(v, type):  # a schedule, a function: what it is, not its address
            out[k] = signature(v)
        elif k not in state and (v is None or isinstance(v, _PLAIN)):
            out["settings"][k] = v
    return out


class Arrays:
    """Named arrays as a part of a run's state (``θ_0``; the linear network's ``W₁``, ``W₂``), restored in place.

    ``state_dict()``: host arrays (on NumPy the arrays themselves: save them at
    once).  ``load_state_dict(state)`` writes the stored values into the arrays
    it holds, on their backend and in their dtype, so whoever holds those
    arrays (the model, the loop) sees the restored values.
    """

    def __init__(self, arrays: dict):
        self.arrays = arrays

    def state_dict(self) -> dict:
        return {k: to_host(a) for k, a in self.arrays.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, a in self.arrays.items():
            a[...] = to_device(state[k], backend_of(a), a.dtype)


class ModelState:
    """A :mod:`minilplr.nn` model as a part: its parameters, buffers (batch norm's running statistics) and mode.

    :func:`~minilplr.train.checkpoint.model_state` and
    :func:`~minilplr.train.checkpoint.load_model_state` under the part protocol.
    """

    def __init__(self, model):
        self.model = model

    def state_dict(self) -> dict:
        return model_state(self.model)

    def load_state_dict(self, state: dict) -> None:
        load_model_state(self.model, state)


class Resumable:
    """A run's checkpoint: its path, its fingerprint, its parts, and how often it is saved.

    Parameters
    ----------
    path : path or None
        ``path.json`` + ``path.npz``; ``None``: nothing is restored or saved.
    fingerprint : dict
        What the run is (see the module docstring); compared on :meth:`restore`.
    parts : dict name -> object with ``state_dict()`` and ``load_state_dict(state)``
        Everything the run needs to continue bit for bit; a checkpoint stores
        ``{name: part.state_dict()}``.
    every : int
        Steps between checkpoints (:meth:`due`).
    """

    def __init__(self, path, fingerprint: dict | None, parts: dict, *, every: int, log=print):
        for name, part in parts.items() if path is not None else ():
            if not (callable(getattr(part, "state_dict", None)) and callable(getattr(part, "load_state_dict", None))):
                raise TypeError(f"{name}: expected an object with state_dict() and load_state_dict(state) to "
                                f"checkpoint, got {type(part).__name__}")
        self.path, self.fingerprint, self.parts = path, fingerprint, parts
        self.every = check_int("checkpoint_every", every, 1)
        self.log = log

    def restore(self) -> bool:
        """Load this run's checkpoint into its parts; ``False`` (parts untouched) if there is none to resume.

        A damaged checkpoint is moved aside with one line and the run starts
        over (``False``).

        Raises
        ------
        CheckpointMismatch
            The checkpoint belongs to another run, or to an older layout; nothing changes on disk.
        """
        if self.path is None:
            return False
        state = load_checkpoint(self.path, self.fingerprint, log=self.log)
        if state is None:
            return False
        for name, part in self.parts.items():
            part.load_state_dict(state[name])
        return True

    def due(self, done: int, last: int | None = None) -> bool:
        """Whether to save after ``done`` steps: every ``every`` steps, and at ``last`` (the run's final step)."""
        return self.path is not None and (done % self.every == 0 or done == last)

    def save(self) -> None:
        """Write ``{name: part.state_dict()}`` with the fingerprint, atomically (no-op without a path)."""
        if self.path is not None:
            save_checkpoint(self.path, {name: part.state_dict() for name, part in self.parts.items()},
                            self.fingerprint)
