"""Training loops: full-batch GD and mini-batch SGD, recording every step.

Both loops share one step: forward, loss, backward, ``‖∇L‖²``, update.  They
record per step the loss, ``‖∇L‖²``, the step size and the parameter drift
``‖θ_t − θ_0‖``; every ``diag_every`` steps they call ``diagnostics(model,
step)`` (the NTK diagnostics of :mod:`minilplr.theory` in
the experiments) and store what it returns.  A step waits for the device
once: its three measured records cross to the host together
(:func:`step_records`), and the data are checked once per run, the class
labels' range included (``tests/test_sync_budget.py`` pins these counts).

A run that diverges (a non-finite loss, or a loss that grows by
``divergence_factor`` over its start) stops with :class:`Diverged`, which
carries the history so far and a message naming the step, the loss and the
step-size condition ``η ≤ 1/β`` of Theorem 5.4.

With ``checkpoint=path``, the loop saves what it needs to continue bit for
bit — the model (parameters, batch norm's running statistics, mode), the
optimiser's ``state_dict`` (counter, momentum, schedule state), ``θ_0`` and
the history — every ``checkpoint_every`` steps, at its last step and once
finished, as ``path.json`` + ``path.npz`` (no pickles, atomic, verified on
reading), and, started again with the same path, resumes from there.  The
checkpoint records its run (shapes, data hash, optimiser, step counts, seed)
and refuses to resume any other.  Both loops resume through
:class:`minilplr.train.resumable.Resumable`, as the linear network's GD does.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..nn import losses as _losses
from ..nn.params import drift_sq_on_device, param_drift, sq_norm_on_device
from ..backend import backend_of, get_array_module, to_device, to_host
from .checkpoint import model_signature
from .resumable import Arrays, ModelState, Resumable, signature
from ..store import fingerprint
from ..validate import check_int, check_model_input, check_real, check_real_array, check_values

__all__ = ["Diverged", "History", "step_records", "train_gd", "train_sgd"]


class Diverged(RuntimeError):
    """Training stopped because the loss blew up; ``.history`` holds every step so far."""

    def __init__(self, message, history, step, loss, lr):
        super().__init__(message)
        self.history, self.step, self.loss, self.lr = history, step, loss, lr


class History(dict):
    """Per-step records: ``history["loss"][t]`` etc., plus ``history["diag"]`` (a list of dicts)."""

    KEYS = ("step", "loss", "grad_norm_sq", "lr", "param_drift")

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        for k in self.KEYS:
            self.setdefault(k, [])
        self.setdefault("diag", [])
        self.setdefault("status", "running")

    def arrays(self) -> dict:
        """The per-step records as NumPy arrays (for saving and plotting)."""
        return {k: np.asarray(self[k], dtype=float) for k in self.KEYS}

    def state_dict(self) -> dict:
        """A storable copy: the per-step records as arrays (``step`` int64, the rest float64), the rest as is."""
        tree = {k: v for k, v in self.items() if k not in self.KEYS}
        tree["records"] = {k: np.asarray(self[k], dtype=np.int64 if k == "step" else np.float64) for k in self.KEYS}
        return tree

    def load_state_dict(self, tree: dict) -> None:
        """Become the history :meth:`state_dict` saved (Python ints and floats again, every bit kept)."""
        self.clear()
        self.update((k, v) for k, v in tree.items() if k != "records")
        for k, a in tree["records"].items():
            self[k] = a.tolist()


def step_records(L, grads, params, theta0) -> tuple:
    r"""The step's records ``(L(θ_t), ‖∇L(θ_t)‖², ‖θ_t − θ_0‖)`` as Python floats, in ONE device→host transfer.

    The plain version is three transfers, each a synchronisation on a GPU::

        to_scalar(L), sq_norm(grads), param_drift(params, theta0)

    Here the three are stacked on the device as float64, ``[L, ‖∇L‖²,
    ‖θ_t − θ_0‖²]``, and cross together; the square root is taken on the
    host.  The values are bit for bit those of the plain version: ``L`` in
    the model's dtype is exact in float64, the two sums are the same float64
    reductions (:func:`~minilplr.nn.params.sq_norm_on_device`,
    :func:`~minilplr.nn.params.drift_sq_on_device`), and ``math.sqrt`` is
    the one :func:`~minilplr.nn.params.param_drift` takes.  The divergence
    test reads the same ``L``: no sync of its own.

    So the test comes after the backward pass and these sums, and on the
    step that blew up the float32 squares of ``∇L`` can overflow to ``inf``
    (gradients past ``1.8e19``): that is the blow-up :class:`Diverged`
    reports, not a warning of its own, so NumPy's overflow warning is off
    here (a GPU raises none anyway).
    """
    xp = get_array_module(theta0[next(iter(theta0))])
    with np.errstate(over="ignore"):
        v = to_host(xp.stack([xp.asarray(L, dtype=xp.float64), sq_norm_on_device(grads),
                              drift_sq_on_device(params, theta0)]))
    return float(v[0]), float(v[1]), math.sqrt(float(v[2]))


def _cross_entropy_labels_checked_once(y):
    """Softmax cross-entropy whose labels' range check runs once, on all of ``y (N,)``, not once per step.

    :func:`~minilplr.nn.losses.softmax_cross_entropy` checks that its labels
    lie in ``[0, K)``, one device→host transfer per call: one per step.  The
    labels are fixed data, so here the first call checks the whole label
    array ``y`` against the logits' ``K`` (an error names ``y``, the training
    function's argument) and every call passes ``check_range=False``.
    """
    checked = False

    def softmax_cross_entropy(logits, labels):
        nonlocal checked
        if not checked and logits.ndim == 2 and y.dtype.kind in "iu":  # else the loss names what is wrong
            k = logits.shape[1]
            lo, hi = get_array_module(y).stack([y.min(), y.max()]).tolist()  # one sync, once per run
            if lo < 0 or hi >= k:
                raise ValueError(f"y: expected class indices in [0, {k}) for the model's {k} outputs, "
                                 f"got values in [{lo}, {hi}]")
            checked = True
        return _losses.softmax_cross_entropy(logits, labels, check_range=False)

    return softmax_cross_entropy


def _loss_fn(name, y):
    """The loss callable for ``name``; ``y``: all the targets (cross-entropy checks their range once)."""
    if name == "mse":
        return _losses.mse
    if name in ("ce", "cross_entropy", "softmax_cross_entropy"):
        return _cross_entropy_labels_checked_once(y)
    if callable(name):
        return name
    raise ValueError(f"loss: expected 'mse', 'cross_entropy' or a callable, got {name!r}")


def _fingerprint(model, X, y, opt, loss, **run) -> dict:
    """What a checkpoint of this run must match: the model's shapes, the data's hash, the optimiser, the run."""
    return {"model": model_signature(model), "data": fingerprint(to_host(X), to_host(y)), "optimiser":
            signature(opt), "loss": loss if isinstance(loss, str) else getattr(loss, "__name__", repr(loss)),
            **run}


def _check_data(model, X, y):
    """``X`` checked and cast to the model dtype; ``y`` checked.  Raises naming ``X`` or ``y``.

    Real entries only (a complex ``X`` would lose its imaginary part in the
    cast), at least one sample, finite, and small enough that their squares do
    not overflow (else the loss is ``inf`` at step 0, which is bad data, not a
    step size that diverged).
    """
    X = check_model_input(model, X)  # the same check as the NTK's and forward's entry points
    check_real_array("y", y)
    if backend_of(y).name != model.backend.name:
        raise TypeError(f"y: expected an array on backend {model.backend.name!r} (where the model lives), "
                        f"got one on {backend_of(y).name!r}")
    if y.ndim < 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y: expected {X.shape[0]} targets to match X {tuple(X.shape)}, got shape {tuple(y.shape)}")
    if y.dtype.kind == "f":
        check_values("y", y, model.dtype)  # finite and small enough to square: one transfer
    return X


def _check_loop(checkpoint_every, diag_every, divergence_factor, *, opt=None, diagnostics=None, checkpoint=None):
    """The loop options shared by :func:`train_gd` and :func:`train_sgd`, checked."""
    if not callable(getattr(opt, "step", None)) or not hasattr(opt, "schedule"):
        raise TypeError(f"opt: expected an optimiser with .step(params, grads) and .schedule "
                        f"(minilplr.train.optim.GD, minilplr.train.optim.SGD), got {type(opt).__name__}")
    has_state = callable(getattr(opt, "state_dict", None)) and callable(getattr(opt, "load_state_dict", None))
    if checkpoint and not has_state:
        raise TypeError(f"opt: expected an optimiser with .state_dict() and .load_state_dict(state) to checkpoint "
                        f"(minilplr.train.optim.SGD), got {type(opt).__name__}")
    if diagnostics is not None and not callable(diagnostics):
        raise TypeError(f"diagnostics: expected a callable (model, step) -> dict, got {type(diagnostics).__name__}")
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, 1)
    diag_every = None if diag_every is None else check_int("diag_every", diag_every, 0)  # 0: no diagnostics
    # inf switches the growth test off; NaN would do so silently, so it is refused
    divergence_factor = check_real("divergence_factor", divergence_factor, above=1, allow_inf=True)
    return checkpoint_every, diag_every, divergence_factor


def _run(model, batches, y, loss, opt, *, steps, diagnostics, diag_every, checkpoint, checkpoint_every,
         divergence_factor, progress, desc, fingerprint):
    """The shared loop.  ``batches(step) -> (Xb, yb)`` from all the targets ``y``; resumes from ``checkpoint``
    if it belongs to this run."""
    loss_fn = _loss_fn(loss, y)
    history, theta0 = History(), {k: v.copy() for k, v in model.params.items()}
    ck = Resumable(checkpoint, fingerprint, {"model": ModelState(model), "optimiser": opt, "theta0": Arrays(theta0),
                                             "history": history}, every=checkpoint_every)
    ck.restore()  # a resumed run: the model, opt, θ_0 and history as saved
    start = len(history["step"])
    bar = None
    if progress:
        from tqdm.auto import tqdm

        # disable=None: no bar when the output is not a terminal (log files, CI)
        bar = tqdm(total=steps, initial=start, desc=desc, leave=False, dynamic_ncols=True, disable=None)
    loss0 = history["loss"][0] if history["loss"] else None
    try:
        for t in range(start, steps):
            if diagnostics is not None and diag_every and t % diag_every == 0:
                history["diag"].append(dict(step=t, **diagnostics(model, t)))
            Xb, yb = batches(t)
            out = model.forward(Xb)
            L, dout = loss_fn(out, yb)
            model.backward(dout, need_dx=False)  # nobody differentiates the data
            # L(θ_t), ‖∇L(θ_t)‖² (float64) and ‖θ_t − θ_0‖ (recorded beside L(θ_t)): the step's one sync
            Lf, g2, drift = step_records(L, model.grads, model.params, theta0)
            if loss0 is None:
                loss0 = Lf
            if not math.isfinite(Lf) or Lf > divergence_factor * max(loss0, 1e-300):
                lr_now = opt.schedule(t, params=model.params, grads=model.grads, loss=L)
                history["status"] = "diverged"
                raise Diverged(
                    f"training diverged at step {t}: loss {Lf:.4g} (started at {loss0:.4g}) with step size "
                    f"η = {float(lr_now):.4g}; a blow-up means η passed the stability limit 2/β of the local "
                    f"smoothness β, while Theorem 5.4 assumes η ≤ 1/β: try a smaller learning rate",
                    history, t, Lf, float(lr_now),
                )
            lr = opt.step(model.params, model.grads, loss=L)
            history["step"].append(t)
            history["loss"].append(Lf)
            history["grad_norm_sq"].append(g2)
            history["lr"].append(lr)
            history["param_drift"].append(drift)
            if bar is not None:
                bar.update(1)
                if t % 10 == 0:
                    bar.set_postfix(loss=f"{Lf:.3e}")
            if ck.due(t + 1, last=steps):
                ck.save()
        if diagnostics is not None and diag_every and (not history["diag"] or history["diag"][-1]["step"] != steps):
            history["diag"].append(dict(step=steps, **diagnostics(model, steps)))
        history["status"] = "finished"
        history["final_param_drift"] = param_drift(model.params, theta0)
        ck.save()  # finished: a rerun restores the trained model (batch norm's statistics too) without training
    finally:
        if bar is not None:
            bar.close()
    return history


def train_gd(model, X, y, opt, steps: int, *, loss="mse", diagnostics=None, diag_every: int | None = None,
             checkpoint=None, checkpoint_every: int = 25, divergence_factor: float = 1e6,
             progress: bool = False, desc: str = "GD") -> History:
    r"""Full-batch gradient descent, ``θ_{t+1} = θ_t − η_t ∇L(θ_t)`` on all of ``(X, y)``.

    Parameters
    ----------
    model : Model
    X : array (N, D) on the model's backend
    y : array (N, K) or (N,) targets (float for ``mse``, int labels for cross-entropy)
    opt : optimiser with ``step(params, grads, **info) -> lr`` (:mod:`minilplr.train.optim`)
    steps : int
        Number of updates (for full-batch GD an epoch is one step).
    loss : "mse" | "cross_entropy" | callable (pred, y) -> (loss, dpred)
    diagnostics : callable (model, step) -> dict, optional
        Called before the update of every ``diag_every``-th step and at the end.
    checkpoint : path, optional
        Save/resume file (see module docstring).

    Returns
    -------
    History
        ``loss[t] = L(θ_t)``, ``grad_norm_sq[t] = ‖∇L(θ_t)‖²``, ``lr[t] = η_t``,
        ``param_drift[t] = ‖θ_t − θ_0‖``, ``diag`` (list), ``status``.

    Raises
    ------
    Diverged
        With the history so far.
    """
    steps = check_int("steps", steps, 1)
    checkpoint_every, diag_every, divergence_factor = _check_loop(checkpoint_every, diag_every, divergence_factor,
                                                                  opt=opt, diagnostics=diagnostics,
                                                                  checkpoint=checkpoint)
    X = _check_data(model, X, y)
    fp = _fingerprint(model, X, y, opt, loss, kind="gd", steps=int(steps)) if checkpoint else None
    return _run(model, lambda t: (X, y), y, loss, opt, steps=int(steps), diagnostics=diagnostics,
                diag_every=diag_every, checkpoint=Path(checkpoint) if checkpoint else None,
                checkpoint_every=checkpoint_every, divergence_factor=divergence_factor,
                progress=progress, desc=desc, fingerprint=fp)


def train_sgd(model, X, y, opt, epochs: int, batch_size: int = 128, *, seed: int = 0, loss="cross_entropy",
              drop_last: bool = False, diagnostics=None, diag_every: int | None = None, checkpoint=None,
              checkpoint_every: int = 50, divergence_factor: float = 1e6, progress: bool = False,
              desc: str = "SGD") -> History:
    """Mini-batch SGD: each epoch visits a fresh seeded permutation of the samples.

    The permutation of epoch ``e`` is drawn on the host from
    ``default_rng([seed, e])``, so a resumed run sees exactly the batches the
    uninterrupted run would have.  Per-step records as in :func:`train_gd`
    (the loss and gradient are the mini-batch's).

    Parameters
    ----------
    X : array (N, ...) on the model's backend; y : array (N,) or (N, K)
    epochs, batch_size : int
    """
    batch_size = check_int("batch_size", batch_size, 1)
    epochs = check_int("epochs", epochs, 1)
    seed = check_int("seed", seed, 0)
    checkpoint_every, diag_every, divergence_factor = _check_loop(checkpoint_every, diag_every, divergence_factor,
                                                                  opt=opt, diagnostics=diagnostics,
                                                                  checkpoint=checkpoint)
    X = _check_data(model, X, y)
    n = X.shape[0]
    per_epoch = n // batch_size if drop_last else math.ceil(n / batch_size)
    if per_epoch < 1:
        raise ValueError(f"batch_size: {batch_size} is larger than the {n} samples with drop_last=True")
    steps = per_epoch * int(epochs)
    cache = {}

    def batches(t):
        e, b = divmod(t, per_epoch)
        if cache.get("epoch") != e:
            cache["epoch"] = e
            cache["perm"] = to_device(np.random.default_rng([seed, e]).permutation(n), model.backend)
        idx = cache["perm"][b * batch_size:(b + 1) * batch_size]
        return X[idx], y[idx]

    fp = (_fingerprint(model, X, y, opt, loss, kind="sgd", epochs=int(epochs), batch_size=int(batch_size),
                       seed=int(seed), drop_last=bool(drop_last)) if checkpoint else None)
    h = _run(model, batches, y, loss, opt, steps=steps, diagnostics=diagnostics, diag_every=diag_every,
             checkpoint=Path(checkpoint) if checkpoint else None, checkpoint_every=checkpoint_every,
             divergence_factor=divergence_factor, progress=progress, desc=desc, fingerprint=fp)
    h["steps_per_epoch"] = per_epoch
    return h
