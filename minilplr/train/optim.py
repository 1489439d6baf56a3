"""Optimisers and step-size schedules: one interface for GD, SGD and adaptive steps.

An optimiser updates ``params`` in place from ``grads`` (both ``name -> array``
mappings with the same keys, as ``model.params`` / ``model.grads``)::

    lr = opt.step(params, grads)          # returns the step size it used

A schedule is a callable ``schedule(t, **info) -> η_t``; ``info`` carries what
an adaptive rule may need (the loss, the parameters).  Schedules that need
more than ``t`` say so in their docstring; :class:`SGD` passes
``loss=...`` and ``params=...`` through from ``step``.

Full-batch gradient descent is :class:`SGD` fed the whole data set; the
training loops in :mod:`minilplr.train.loops` decide what a step sees.

Optimisers and schedules carry their own state (a step counter, momentum
buffers, a line search's counters) and hand it over as data::

    state = opt.state_dict()              # host arrays and plain values: JSON + .npz, no pickles
    fresh.load_state_dict(state)          # fresh continues exactly as opt would, bit for bit

which is how a checkpoint stores them (:mod:`minilplr.train.resumable`).
"""
from __future__ import annotations

import inspect
import math

import numpy as np

from ..backend import backend_of, get_array_module, to_device, to_host
from ..validate import check_positive

__all__ = ["Schedule", "Constant", "Cosine", "as_schedule", "SGD", "GD"]


class Schedule:
    """Base class of step-size schedules: ``__call__(t, **info) -> float``."""

    def __call__(self, t: int, **info) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        """What a resumed run needs to continue the schedule, as plain values (a stateless one: nothing).

        A schedule with state (a counter, a value fixed at its first call)
        overrides this and :meth:`load_state_dict`; its :meth:`__call__`
        must depend on nothing else that changes.
        """
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict` (a stateless schedule has nothing to load)."""


class Constant(Schedule):
    """``η_t = η`` (the paper's fixed-step GD)."""

    def __init__(self, lr: float):
        self.lr = check_positive("lr", lr)

    def __call__(self, t, **info):
        return self.lr

    def __repr__(self):
        return f"Constant({self.lr:g})"


class Cosine(Schedule):
    r"""Cosine annealing (Loshchilov & Hutter, 2017), as in the paper's CNN run.

    .. math:: \eta_t = \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})
              \big(1 + \cos(\pi\, t / T)\big), \qquad 0 \le t \le T

    and ``η_min`` after ``T`` steps.
    """

    def __init__(self, lr: float, total_steps: int, lr_min: float = 0.0):
        self.lr = check_positive("lr", lr)
        self.lr_min = check_positive("lr_min", lr_min, allow_zero=True)
        if int(total_steps) < 1:
            raise ValueError(f"total_steps: expected a positive integer, got {total_steps!r}")
        self.total_steps = int(total_steps)

    def __call__(self, t, **info):
        frac = min(max(t, 0), self.total_steps) / self.total_steps
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + math.cos(math.pi * frac))

    def __repr__(self):
        return f"Cosine({self.lr:g}, T={self.total_steps}, min={self.lr_min:g})"


def as_schedule(lr) -> Schedule:
    """A number becomes :class:`Constant`; a :class:`Schedule` or callable passes through."""
    if isinstance(lr, Schedule) or callable(lr):
        return lr
    return Constant(lr)


class SGD:
    r"""(Stochastic) gradient descent with optional heavy-ball momentum and weight decay.

    .. math:: g_t = \nabla L(\theta_t) + \lambda\theta_t,\quad
              v_{t+1} = m\, v_t + g_t,\quad
              \theta_{t+1} = \theta_t - \eta_t v_{t+1}

    With ``momentum=0`` and ``weight_decay=0`` this is plain GD,
    :math:`\theta_{t+1} = \theta_t - \eta_t \nabla L(\theta_t)`, the update
    of Theorem 5.4.  (PyTorch's ``torch.optim.SGD`` uses the same convention.)

    Parameters
    ----------
    lr : float or Schedule
        Step size ``η_t``.
    momentum : float in [0, 1)
    weight_decay : float >= 0
    """

    def __init__(self, lr, momentum: float = 0.0, weight_decay: float = 0.0):
        self.schedule = as_schedule(lr)
        if not (0.0 <= momentum < 1.0):
            raise ValueError(f"momentum: expected a number in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        self.t = 0
        self.velocity = {}

    def step(self, params, grads, **info) -> float:
        """Update ``params`` in place; returns the step size ``η_t`` used.

        ``info`` (e.g. ``loss=``) is handed to the schedule.
        """
        lr = float(self.schedule(self.t, params=params, grads=grads, **info))
        if not (lr >= 0.0) or math.isinf(lr):
            raise ValueError(f"lr: the schedule returned an invalid step size {lr!r} at step {self.t}")
        for k, p in params.items():
            g = grads[k]
            if g is None:
                raise ValueError(f"grads[{k!r}]: no gradient; call model.backward before step")
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                xp = get_array_module(g)
                v = self.velocity.get(k)
                if v is None:  # v_0 = 0
                    v = self.velocity[k] = xp.zeros_like(g)
                elif get_array_module(v) is not xp:  # a host copy from load_state_dict: onto g's device, once
                    v = self.velocity[k] = to_device(v, backend_of(g), g.dtype)
                v *= self.momentum
                v += g
                g = v
            p -= lr * g  # θ ← θ − η g, in place
        self.t += 1
        return lr

    def state_dict(self) -> dict:
        """Everything :meth:`step` reads besides its arguments, as a snapshot of storable data.

        ``t`` the step counter (the schedule's ``t``), ``velocity`` the momentum
        buffers ``v_t`` (host copies: later steps do not change them), and
        ``schedule`` the schedule's own :meth:`Schedule.state_dict` (``{}``
        for a plain function).
        """
        return {"t": self.t, "velocity": {k: np.array(to_host(v)) for k, v in self.velocity.items()},
                "schedule": self.schedule.state_dict() if hasattr(self.schedule, "state_dict") else {}}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict`: the next :meth:`step` is the one the saved optimiser would take.

        The momentum buffers are copied and stay on the host until that step,
        which moves each to its gradient's device (the optimiser does not know
        the device before it sees the gradients).
        """
        self.t = int(state["t"])
        self.velocity = {k: np.array(to_host(v)) for k, v in state["velocity"].items()}
        if hasattr(self.schedule, "load_state_dict"):
            self.schedule.load_state_dict(state["schedule"])

    def __repr__(self):
        s = self.schedule  # a function or an object without a repr of its own: a name (their repr has an address)
        name = (s.__qualname__ if inspect.isroutine(s) else repr(s) if type(s).__repr__ is not object.__repr__
                else type(s).__name__)
        return f"SGD({name}, momentum={self.momentum:g}, weight_decay={self.weight_decay:g})"


def GD(lr) -> SGD:
    """Plain gradient descent, ``θ ← θ − η_t ∇L(θ)`` (full batch when fed all data)."""
    return SGD(lr)
