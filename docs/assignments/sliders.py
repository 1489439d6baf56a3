"""What the course's sliders compute and draw (``interactive_figures.ipynb``), testable without Jupyter.

Two figures where moving a number teaches something:

* :func:`envelope_curves` — chapter 5's picture (``docs/img/envelope_vs_kernel.png``) for
  any width ``H`` and step ``η``: the measured GD loss, the kernel regime of
  ``Θ_0`` and Theorem 5.4's envelope ``(1 − ημ)^t L_0``. As ``H`` grows the
  measured curve falls onto the kernel regime (the NTK moves less); as ``η``
  grows every curve steepens, and the envelope stays above the measured loss.
* :func:`pl_plot_data` — chapter 8's picture (``docs/img/pl_lstar.png``) for
  any assumed ``L*``: the log–log plot of ``‖∇L‖²`` against ``L − L*`` of one
  loss that satisfies the PL inequality with equality. Only the true ``L*``
  gives the straight line of slope 1.

The ``plot_*`` functions draw on a Matplotlib axis; the ``*_widget``
functions wire them to ipywidgets sliders (``pip install -e ".[notebooks]"``).
Everything runs on the host with minilplr's NumPy backend.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from minilplr.backend import to_host
from minilplr.experiments.fits import fit_loglog_slope, resolvable_mask
from minilplr.nn.losses import mse
from minilplr.nn.models import mlp
from minilplr.nn.params import flatten, load_flat
from minilplr.theory import ntk, spectrum
from minilplr.theory.dynamics import kernel_regime_loss, pl_envelope

# --------------------------------------------------------------------------- chapter 5: the envelope


@lru_cache(maxsize=64)
def envelope_curves(width: int, eta_scale: float, N: int = 10, D: int = 5, depth: int = 3, steps: int = 300,
                    seed: int = 0) -> dict:
    """GD on a ``depth``-layer ReLU MLP of width ``width`` with ``η = eta_scale · N/λ_max(Θ_0)``.

    Parameters
    ----------
    width : int, the hidden width ``H``
    eta_scale : float in (0, 1], the step as a fraction of ``1/β_GN`` (``β_GN = λ_max(Θ_0)/N``)
    N, D : samples and input features of the random regression problem (seeded)

    Returns
    -------
    dict with ``t (steps,)``, ``measured``, ``kernel``, ``envelope`` (each ``(steps,)``, the loss
    ``L_t`` with ``L* = 0``), and the numbers ``eta``, ``mu`` (``λ_min(Θ_0)/N``), ``lam_max``.
    """
    if not (0 < eta_scale <= 1):
        raise ValueError(f"eta_scale: expected a fraction of 1/β_GN in (0, 1], got {eta_scale!r}")
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((N, D)), rng.standard_normal((N, 1))
    model = mlp(D, int(width), depth, 1, seed=seed, dtype="float64", backend="numpy")
    theta0 = ntk.empirical_ntk(model, X)  # (N, N)
    spec = spectrum.ntk_spectrum(theta0)
    eta = eta_scale * N / spec.lam_max
    mu = (spec.lam_min or 0.0) / N  # an unresolved λ_min promises nothing: μ = 0
    measured = np.empty(steps)
    for t in range(steps):
        loss, dpred = mse(model.forward(X), y)
        measured[t] = float(loss)
        model.backward(dpred, need_dx=False)
        load_flat(model, flatten(model.params) - eta * flatten(model.grads))  # θ ← θ − η∇L
    r0 = to_host(mlp(D, int(width), depth, 1, seed=seed, dtype="float64", backend="numpy").forward(X)) - y
    t = np.arange(steps)
    return dict(t=t, measured=measured, kernel=kernel_regime_loss(theta0, r0, eta, N, steps),
                envelope=pl_envelope(t, eta, mu, measured[0]), eta=float(eta), mu=float(mu),
                lam_max=float(spec.lam_max), width=int(width))


def plot_envelope(ax, curves: dict) -> None:
    """Chapter 5's three curves on a semi-log axis."""
    ax.clear()
    t = curves["t"]
    ax.semilogy(t, curves["measured"], color="C0", lw=2, label="measured $L_t$ ($L^* = 0$)")
    ax.semilogy(t, curves["kernel"], "--", color="C1", label=r"kernel regime of $\Theta_0$")
    ax.semilogy(t, curves["envelope"], ":", color="C3", lw=1.5,
                label=r"envelope $(1-\eta\mu)^t L_0$, $\mu = \lambda_{\min}/N$")
    ax.set_title(f"H = {curves['width']}: η = {curves['eta']:.3g}, μ = {curves['mu']:.3g}", fontsize=10)
    ax.set_xlabel("step t")
    ax.set_ylabel("loss $L_t$")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower left")


# --------------------------------------------------------------------------- chapter 8: the PL plot and L*


def pl_example(steps: int = 250, l_true: float = 0.01, mu: float = 0.02, q: float = 0.97, c: float = 0.5):
    """Chapter 8's loss: ``L_t = L_true + c q^t`` with ``‖∇L_t‖² = 2μ(L_t − L_true)`` (PL with equality)."""
    t = np.arange(steps)
    loss = l_true + c * q**t
    return loss, 2 * mu * (loss - l_true)


def pl_plot_data(loss, grad_sq, loss_star: float) -> dict:
    """The PL log–log plot for an assumed ``L*``: ``gap = L − L*``, ``‖∇L‖²``, the resolvable steps and the fit.

    Returns dict with ``gap``, ``grad_sq``, ``mask`` (steps whose gap is positive and above the loss's rounding),
    ``slope`` and ``r2`` of ``log ‖∇L‖²`` against ``log(L − L*)`` on those steps (``nan`` when fewer than two).
    """
    loss, grad_sq = np.asarray(loss, float), np.asarray(grad_sq, float)
    gap = loss - float(loss_star)
    mask = resolvable_mask(loss, float(loss_star))  # positive and above the rounding of L itself
    fit = fit_loglog_slope(gap, grad_sq, mask) if mask.sum() >= 2 else dict(slope=np.nan, r2=np.nan)
    return dict(gap=gap, grad_sq=grad_sq, mask=mask, slope=float(fit["slope"]), r2=float(fit["r2"]),
                loss_star=float(loss_star))


def plot_pl(ax, data: dict, mu: float = 0.02) -> None:
    """The log–log PL plot of :func:`pl_plot_data`, with the line of slope 1 that PL with equality gives."""
    ax.clear()
    m = data["mask"]
    ax.loglog(data["gap"][m], data["grad_sq"][m], ".", ms=3, color="C0",
              label=f"L* = {data['loss_star']:.4g}: slope {data['slope']:.2f}")
    x = np.array([1e-5, 0.6])
    ax.loglog(x, 2 * mu * x, "k:", lw=1, label=r"$\frac12\|\nabla L\|^2 = \mu(L - L^*)$, slope 1")
    ax.set_xlabel("$L_t - L^*$ (the assumed $L^*$)")
    ax.set_ylabel(r"$\|\nabla L_t\|^2$")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right")


# --------------------------------------------------------------------------- the widgets


def _widgets():
    try:
        import ipywidgets
    except ImportError:
        raise ImportError('ipywidgets: not installed; pip install -e ".[notebooks]" for the sliders '
                          "(the static pictures are docs/img/envelope_vs_kernel.png and pl_lstar.png)") from None
    return ipywidgets


def envelope_widget():
    """Sliders for the width (16 … 2048) and ``η`` as a fraction of ``1/β_GN``, redrawing chapter 5's figure."""
    w = _widgets()
    import matplotlib.pyplot as plt

    def draw(width, eta_scale):
        fig, ax = plt.subplots(figsize=(7, 4))
        plot_envelope(ax, envelope_curves(int(width), float(eta_scale)))
        plt.show()

    return w.interactive(draw, width=w.SelectionSlider(options=[16, 32, 64, 128, 256, 512, 1024, 2048], value=64,
                                                        description="width H"),
                         eta_scale=w.FloatSlider(value=0.5, min=0.05, max=1.0, step=0.05,
                                                 description="η · β_GN"))


def pl_widget():
    """A slider for the assumed ``L*`` (0 … 0.02; the true value is 0.01), redrawing chapter 8's PL plot."""
    w = _widgets()
    import matplotlib.pyplot as plt

    loss, grad_sq = pl_example()

    def draw(loss_star):
        fig, ax = plt.subplots(figsize=(6, 4))
        plot_pl(ax, pl_plot_data(loss, grad_sq, loss_star))
        plt.show()

    return w.interactive(draw, loss_star=w.FloatSlider(value=0.0, min=0.0, max=0.0105, step=0.0005,
                                                       readout_format=".4f", description="L*"))
