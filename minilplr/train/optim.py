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
"""
from __future__ import annotations

import math

from ..backend import get_array_module
from ..validate import check_positive

__all__ = ["Schedule", "Constant", "Cosine", "as_schedule", "SGD", "GD"]


class Schedule:
    """Base class of step-size schedules: ``__call__(t, **info) -> float``."""

    def __call__(self, t: int, **info) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        """What a resumed run needs to continue the schedule (stateless: nothing)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


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
                v = self.velocity.get(k)
                if v is None:
                    v = self.velocity[k] = get_array_module(g).zeros_like(g)
                v *= self.momentum
                v += g
                g = v
            p -= lr * g  # θ ← θ − η g, in place
        self.t += 1
        return lr

    def state_dict(self) -> dict:
        """Step counter, momentum buffers and schedule state, for resuming a run."""
        return {"t": self.t, "velocity": dict(self.velocity), "schedule": self.schedule.state_dict()
                if hasattr(self.schedule, "state_dict") else {}}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        self.velocity = dict(state.get("velocity", {}))
        if hasattr(self.schedule, "load_state_dict"):
            self.schedule.load_state_dict(state.get("schedule", {}))


def GD(lr) -> SGD:
    """Plain gradient descent, ``θ ← θ − η_t ∇L(θ)`` (full batch when fed all data)."""
    return SGD(lr)
