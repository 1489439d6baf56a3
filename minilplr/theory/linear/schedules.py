r"""Step-size schedules for GD on ``L(W₁, W₂) = ℓ(W₁W₂ᵀ)``, in the common optimiser interface.

Each schedule is a :class:`minilplr.train.optim.Schedule`: ``schedule(t, **info) -> η_t``,
and :class:`minilplr.train.optim.SGD` calls it with ``params=``, ``grads=`` and
whatever ``info`` its ``step`` received (``loss=`` the current ``L``)::

    opt = SGD(AdaptiveStep(net.loss_fn))
    L = net.backward()
    lr = opt.step(net.params, net.grads, loss=L)

* :class:`~minilplr.train.optim.Constant` — fixed ``η`` (:func:`initial_safe_lr` is
  the largest step the local smoothness certifies at initialisation);
* :class:`AdaptiveStep` — the paper's eq. 19,
  ``η_t = min((1 + η₀²)^t / (2η₀), 1/β̄_t)``;
* :class:`Xu2023Step` — the 2023 baseline: ``η_t`` minimises the rate
  polynomial ``f(η) = 1 − a₁η + a₂η² + a₃η³ + a₄η⁴``;
* :class:`Armijo` — backtracking line search; it evaluates the loss at trial
  points through a closure and counts those evaluations.

The per-step quantities (``σ²(𝒯)``, the loss) are host scalars: one
device sync per step, negligible next to the matrix products.

A schedule with state (:class:`AdaptiveStep`'s ``α₂``, :class:`Armijo`'s
counters and last step) hands it over with ``state_dict()`` /
``load_state_dict(state)``, as :class:`~minilplr.train.optim.SGD` does its
own, so a resumed run continues bit for bit; ``last`` (the last call's
diagnostics) is rewritten by every call and is not state.
"""
from __future__ import annotations

import math

from ...backend import get_array_module, to_scalar
from ...nn.params import sq_norm
from ...train.optim import Constant, Schedule
from ...validate import check_positive
from .constants import gradient_norm_bound, lr_for_smoothness, positive_root
from .model import ConvexLoss, product_forward
from .operator import sigma2_T

__all__ = [
    "Constant",
    "AdaptiveStep",
    "Xu2023Step",
    "Armijo",
    "initial_safe_lr",
    "xu2023_coefficients",
    "xu2023_rate",
    "xu2023_step",
    "SCHEDULES",
]

SCHEDULES = ("constant", "adaptive", "xu2023", "armijo")


def _weights(params, who: str):
    if params is None or "W1" not in params or "W2" not in params:
        raise ValueError(f"params: {who} needs the weights; call it as schedule(t, params={{'W1': ..., 'W2': ...}}, loss=L)")
    return params["W1"], params["W2"]


def _gap(loss_fn: ConvexLoss, W1, W2, loss) -> float:
    """``L − L*`` as a host float, from ``info['loss']`` if given (else one evaluation)."""
    L = to_scalar(loss) if loss is not None else to_scalar(loss_fn.value(product_forward(W1, W2)))
    return max(L - loss_fn.min_value, 0.0)


def _check_loss(loss_fn):
    if not isinstance(loss_fn, ConvexLoss):
        raise TypeError(f"loss_fn: expected a minilplr.theory.linear.ConvexLoss, got {type(loss_fn).__name__}")
    return loss_fn


def initial_safe_lr(loss_fn: ConvexLoss, W1, W2, second_order: bool = True) -> float:
    r"""``η = 1/K_0``: the fixed point of ``η K_0(η) = 1`` at the initial weights.

    With ``σ² = σ²_max(𝒯₀)`` and ``g = ‖∇ℓ(W₀)‖_F`` in
    :func:`~minilplr.theory.linear.constants.local_smoothness`.  Held fixed, this is
    our "constant" baseline (our choice: the paper does not say which constant
    step it compares against).
    """
    _check_loss(loss_fn)
    s2max = sigma2_T(W1, W2)[1]
    xp = get_array_module(W1)
    g = to_scalar(xp.linalg.norm(loss_fn.grad(product_forward(W1, W2)).reshape(-1)))
    return lr_for_smoothness(loss_fn.K, s2max, g, second_order)


class AdaptiveStep(Schedule):
    r"""The paper's adaptive step size, eq. 19 (THEORY.md §2).

    .. math:: \eta_t = \min\Big(\frac{(1 + \eta_0^2)^t}{2\eta_0},\; \frac{1}{\bar\beta_t}\Big)

    ``β̄_t`` is :func:`~minilplr.theory.linear.constants.local_smoothness_bound`
    (reconstruction), and "``1/β̄_t``" is the fixed point ``η β̄_t(η) = 1``
    (:func:`~minilplr.theory.linear.constants.lr_for_smoothness`), because our
    ``β̄_t`` covers the step it is used for.  The paper picks ``η₀`` by solving
    its eqs. 101–102, which our copy lacks: ``η₀`` is a parameter
    (reconstruction; default ``0.01``).

    Parameters
    ----------
    loss_fn : ConvexLoss
        ``ℓ`` (gives ``β_ℓ``, ``μ_ℓ``, ``L*``).
    eta0 : float > 0
    sigma_bound : ``"paper"`` or ``"current"``
        ``"paper"``: ``σ²_max(𝒯_t) ≤ α₂ exp(√η₀)`` with ``α₂ = σ²_max(𝒯₀)`` taken
        at the first call (a bound the paper proves for small enough ``η₀``;
        :mod:`minilplr.theory.linear.trajectory` records whether it held);
        ``"current"``: the measured ``σ²_max(𝒯_t)`` (always valid).
    grad_bound : ``"loss"`` or ``"exact"``
        ``g = √(2K(L − L*))`` (the paper's ``√(2KL)``) or the measured ``‖∇ℓ‖_F``.
    second_order : bool
        Keep the ``O(η√L)`` terms of ``β̄_t`` (reconstruction).

    Needs ``params=`` (``W1``, ``W2``) and, to save a loss evaluation, ``loss=``.
    After each call ``self.last`` holds ``cap``, ``smooth`` (= ``1/β̄_t``),
    ``sigma2_min``, ``sigma2_max`` and which of the two bounds was active.
    """

    def __init__(self, loss_fn: ConvexLoss, eta0: float = 0.01, sigma_bound: str = "paper",
                 grad_bound: str = "loss", second_order: bool = True, alpha2: float | None = None):
        self.loss_fn = _check_loss(loss_fn)
        self.eta0 = check_positive("eta0", eta0)
        if sigma_bound not in ("paper", "current"):
            raise ValueError(f"sigma_bound: expected 'paper' or 'current', got {sigma_bound!r}")
        if grad_bound not in ("loss", "exact"):
            raise ValueError(f"grad_bound: expected 'loss' or 'exact', got {grad_bound!r}")
        self.sigma_bound, self.grad_bound, self.second_order = sigma_bound, grad_bound, bool(second_order)
        self.alpha2 = None if alpha2 is None else check_positive("alpha2", alpha2)
        self.last: dict = {}

    def cap(self, t: int) -> float:
        """``(1 + η₀²)^t / (2η₀)`` (``inf`` once it overflows a float)."""
        log_cap = t * math.log1p(self.eta0 ** 2) - math.log(2.0 * self.eta0)
        return math.exp(log_cap) if log_cap < 700 else float("inf")

    def __call__(self, t, params=None, loss=None, grads=None, **info):
        W1, W2 = _weights(params, "AdaptiveStep")
        K = self.loss_fn.K
        s2min, s2max = sigma2_T(W1, W2)
        if self.alpha2 is None:
            self.alpha2 = s2max  # α₂ = σ²_max(T₀), our choice
        gap = _gap(self.loss_fn, W1, W2, loss)
        if self.grad_bound == "loss":
            g = gradient_norm_bound(K, gap)
        else:
            xp = get_array_module(W1)
            g = to_scalar(xp.linalg.norm(self.loss_fn.grad(product_forward(W1, W2)).reshape(-1)))
        sigma = self.alpha2 * math.exp(math.sqrt(self.eta0)) if self.sigma_bound == "paper" else s2max
        smooth = lr_for_smoothness(K, sigma, g, self.second_order)
        cap = self.cap(int(t))
        self.last = dict(cap=cap, smooth=smooth, sigma2_min=s2min, sigma2_max=s2max,
                         sigma_bound=sigma, active="cap" if cap < smooth else "smoothness")
        return min(cap, smooth)

    def state_dict(self) -> dict:
        """``α₂``, fixed at the first call: a resumed run must keep ``σ²_max(𝒯₀)``, not take ``σ²_max(𝒯_t)``."""
        return {"alpha2": self.alpha2}

    def load_state_dict(self, state: dict) -> None:
        self.alpha2 = None if state["alpha2"] is None else float(state["alpha2"])

    def __repr__(self):
        return f"AdaptiveStep(η₀={self.eta0:g}, σ̄={self.sigma_bound}, g={self.grad_bound})"


# ---------------------------------------------------------------------------
# The 2023 baseline.
# ---------------------------------------------------------------------------


def xu2023_coefficients(mu: float, K: float, alpha: float, beta: float, p2: float, gap: float,
                        c1: float = 1.5, c2: float = 0.5) -> tuple[float, float, float, float]:
    r"""``(a₁, a₂, a₃, a₄)`` of the 2023 rate polynomial (THEORY.md §2; Xu et al., AISTATS 2023).

    With ``s = σ_min(X)``, ``κ = (‖X‖/s)²``, ``α = σ_r(W₁)² + σ_K(W₂)²``,
    ``β = ‖W₁‖² + ‖W₂‖²``, ``p₂ = ‖W₁W₂ᵀ‖``:

    .. math::
        a_1 &= 2\alpha c_2 s^2, \\
        a_2 &= \sqrt8\, p_2 \sqrt L\, \lVert X\rVert s^2 + \kappa \beta^2 c_1^2 s^4, \\
        a_3 &= \sqrt8\, \beta p_2 c_1 \sqrt L\, \lVert X\rVert^3 s^2, \\
        a_4 &= 2\kappa^2 p_2^2 L s^6 .

    Written through ``s² = μ_ℓ``, ``‖X‖² = β_ℓ`` so that any :class:`ConvexLoss`
    plugs in: for least squares it is exactly the 2023 formula, for other
    losses it is our adaptation (reconstruction), not the 2023 paper's
    statement.  ``L`` is the gap ``L − L*`` (the 2023 data have ``L* = 0``,
    where the two agree; our choice otherwise).
    """
    s2, normX, kappa, sqL = mu, math.sqrt(K), K / mu, math.sqrt(max(gap, 0.0))
    a1 = 2.0 * alpha * c2 * s2
    a2 = math.sqrt(8.0) * p2 * sqL * normX * s2 + kappa * beta ** 2 * c1 ** 2 * s2 ** 2
    a3 = math.sqrt(8.0) * beta * p2 * c1 * sqL * normX ** 3 * s2
    a4 = 2.0 * kappa ** 2 * p2 ** 2 * max(gap, 0.0) * s2 ** 3
    return a1, a2, a3, a4


def xu2023_rate(lr: float, coeffs) -> float:
    r"""``f(η) = 1 − a₁η + a₂η² + a₃η³ + a₄η⁴``, the 2023 bound on the per-step contraction."""
    a1, a2, a3, a4 = coeffs
    return 1.0 - a1 * lr + a2 * lr ** 2 + a3 * lr ** 3 + a4 * lr ** 4


def xu2023_step(coeffs) -> float:
    r"""The positive real root of ``f′(η) = −a₁ + 2a₂η + 3a₃η² + 4a₄η³ = 0``.

    With ``a₁ > 0`` and ``a₂, a₃, a₄ ≥ 0`` (not all zero), ``f′`` increases
    on ``η > 0`` from ``−a₁``, so the root is unique and minimises ``f``.
    """
    a1, a2, a3, a4 = (float(a) for a in coeffs)
    if not (a1 > 0):
        raise ValueError(f"coeffs: expected a₁ > 0 (σ²_min(T) > 0), got a₁ = {a1!r}")
    if not (a2 >= 0 and a3 >= 0 and a4 >= 0) or a2 + a3 + a4 == 0:
        raise ValueError(f"coeffs: expected a₂, a₃, a₄ ≥ 0, not all zero; got {(a2, a3, a4)!r}")
    return positive_root(a1, (2.0 * a2, 3.0 * a3, 4.0 * a4))


class Xu2023Step(Schedule):
    r"""The 2023 schedule: ``η_t = argmin_η f_t(η)`` with the current ``α_t, β_t, p₂, L(t)`` (the 2023 paper's letters).

    See :func:`xu2023_coefficients` (``c₁ = 1.5``, ``c₂ = 0.5`` as in
    THEORY.md).  ``α_t = σ_r(W₁)² + σ_K(W₂)²`` with ``r = rank X = D`` (our
    losses are strongly convex) is ``σ²_min(𝒯_t)``; its ``β_t`` is ``σ²_max(𝒯_t)``, not
    the local smoothness ``β_t`` of :mod:`.constants` (chapter 7 writes ``σ²_max(𝒯_t)``).
    Needs ``params=`` and (optionally) ``loss=``.
    """

    def __init__(self, loss_fn: ConvexLoss, c1: float = 1.5, c2: float = 0.5):
        self.loss_fn = _check_loss(loss_fn)
        self.c1 = check_positive("c1", c1)
        self.c2 = check_positive("c2", c2)
        self.last: dict = {}

    def __call__(self, t, params=None, loss=None, grads=None, **info):
        W1, W2 = _weights(params, "Xu2023Step")
        xp = get_array_module(W1)
        alpha, beta = sigma2_T(W1, W2)
        W = product_forward(W1, W2)
        p2 = math.sqrt(max(to_scalar(xp.linalg.eigvalsh(W.T @ W)[-1]), 0.0))  # ‖W₁W₂ᵀ‖₂
        gap = _gap(self.loss_fn, W1, W2, loss)
        coeffs = xu2023_coefficients(self.loss_fn.mu, self.loss_fn.K, alpha, beta, p2, gap, self.c1, self.c2)
        lr = xu2023_step(coeffs)
        self.last = dict(coeffs=coeffs, rate=xu2023_rate(lr, coeffs), sigma2_min=alpha, sigma2_max=beta, p2=p2)
        return lr

    def __repr__(self):
        return f"Xu2023Step(c1={self.c1:g}, c2={self.c2:g})"


# ---------------------------------------------------------------------------
# Backtracking.
# ---------------------------------------------------------------------------


class Armijo(Schedule):
    r"""Backtracking (Armijo) line search: the first ``η = η_init·ρ^k`` with sufficient decrease.

    .. math:: L(\theta - \eta\nabla L) \le L(\theta) - c\,\eta\,\lVert\nabla L\rVert^2

    Parameters
    ----------
    closure : callable ``params -> loss`` or None
        Evaluates ``L`` at a trial ``{"W1": ..., "W2": ...}`` (e.g.
        ``net.loss``); may instead come per call as ``closure=`` in ``info``.
    lr_init : float
        First trial step of every iteration (or, with ``grow``, ``grow × η_{t−1}``).
    shrink : float in (0, 1)
        ``ρ``.
    c : float in (0, 1)
        Sufficient-decrease constant.
    max_backtracks : int
        After this many failed trials the last (smallest) step is returned
        and ``failures`` counts it (at the floating-point floor no step
        decreases the loss measurably).
    grow : float >= 1 or None

    Counters: ``function_evals`` (trial evaluations of ``L``, plus one per step
    when ``loss=`` is not passed), ``steps``, ``failures``.  Each step also
    costs one gradient evaluation, counted by the training loop.
    """

    def __init__(self, closure=None, lr_init: float = 1.0, shrink: float = 0.5, c: float = 1e-4,
                 max_backtracks: int = 60, grow: float | None = None):
        if closure is not None and not callable(closure):
            raise TypeError(f"closure: expected a callable params -> loss, got {type(closure).__name__}")
        self.closure = closure
        self.lr_init = check_positive("lr_init", lr_init)
        if not (0.0 < shrink < 1.0):
            raise ValueError(f"shrink: expected a number in (0, 1), got {shrink!r}")
        if not (0.0 < c < 1.0):
            raise ValueError(f"c: expected a number in (0, 1), got {c!r}")
        if int(max_backtracks) < 1:
            raise ValueError(f"max_backtracks: expected a positive integer, got {max_backtracks!r}")
        if grow is not None and not (grow >= 1.0):
            raise ValueError(f"grow: expected None or a number >= 1, got {grow!r}")
        self.shrink, self.c, self.max_backtracks, self.grow = float(shrink), float(c), int(max_backtracks), grow
        self.function_evals = 0
        self.steps = 0
        self.failures = 0
        self.prev_lr: float | None = None
        self.last: dict = {}

    def __call__(self, t, params=None, grads=None, loss=None, closure=None, **info):
        f = closure if closure is not None else self.closure
        if f is None:
            raise ValueError("closure: Armijo needs a loss closure params -> L (constructor or closure= in info)")
        if params is None or grads is None:
            raise ValueError("params: Armijo needs params= and grads= (as SGD.step passes them)")
        if loss is None:
            L0 = to_scalar(f(params))
            self.function_evals += 1
        else:
            L0 = to_scalar(loss)
        gsq = sq_norm(grads)  # ‖∇L‖²
        lr = self.lr_init if (self.grow is None or self.prev_lr is None) else self.grow * self.prev_lr
        evals = 0
        ok = False
        for k in range(self.max_backtracks):
            if k:
                lr *= self.shrink  # the previous trial failed: η ← ρη
            trial = {name: p - lr * grads[name] for name, p in params.items()}
            Lt = to_scalar(f(trial))
            evals += 1
            if Lt <= L0 - self.c * lr * gsq:
                ok = True
                break
        # ``lr`` is the last step tried: accepted, or (ok False) the smallest, as the docstring promises
        self.function_evals += evals
        self.steps += 1
        self.failures += 0 if ok else 1
        self.prev_lr = lr
        self.last = dict(evals=evals, accepted=ok)
        return lr

    def state_dict(self) -> dict:
        """The counters and the last accepted step ``η_{t−1}`` (the first trial of the next step with ``grow``)."""
        return {"function_evals": self.function_evals, "steps": self.steps, "failures": self.failures,
                "prev_lr": self.prev_lr}

    def load_state_dict(self, state: dict) -> None:
        self.function_evals = int(state["function_evals"])
        self.steps = int(state["steps"])
        self.failures = int(state["failures"])
        self.prev_lr = None if state["prev_lr"] is None else float(state["prev_lr"])

    def __repr__(self):
        return f"Armijo(η_init={self.lr_init:g}, ρ={self.shrink:g}, c={self.c:g})"
