"""Draw the course's pictures (``docs/img/*.png``) from the engine itself.

Every picture is computed by minilplr, not drawn by hand: the Jacobian is
:func:`minilplr.theory.ntk.jacobian` of a real network, the im2col matrix is
:func:`minilplr.nn.conv.im2col` of a real image, the spectrum comes from
:func:`minilplr.theory.spectrum.ntk_spectrum`, the loss curves from real
gradient-descent runs.  Small (100 dpi, a few tens of KB each) and
deterministic (fixed seeds, no timestamps in the PNGs), so rerunning the
script reproduces them; ``tests/test_docs_hygiene.py`` checks that every image
a chapter links exists.

    python scripts/make_pictures.py              # all of them, into docs/img/
    python scripts/make_pictures.py j_layout     # one (names: see PICTURES)

Runs on the host (NumPy backend).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("MINILPLR_BACKEND", "numpy")
os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402

from minilplr.backend import to_device, to_host  # noqa: E402
from minilplr.experiments.fits import fit_loglog_slope, resolvable_mask  # noqa: E402
from minilplr.nn.conv import im2col  # noqa: E402
from minilplr.nn.layers import Dense, ReLU, Sequential  # noqa: E402
from minilplr.nn.losses import mse  # noqa: E402
from minilplr.nn.models import mlp  # noqa: E402
from minilplr.nn.params import flatten, load_flat, param_slices  # noqa: E402
from minilplr.nn.resnet import resnet  # noqa: E402
from minilplr.theory import ntk, spectrum  # noqa: E402
from minilplr.theory.dynamics import kernel_regime_loss, pl_envelope  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "img"
DPI = 100
plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "figure.dpi": DPI})


def _save(fig, name: str) -> Path:
    """``docs/img/<name>.png`` at 100 dpi, without the metadata that would change between runs."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return path


def _dev(a):
    return to_device(np.asarray(a, dtype=float), dtype="float64")


# --------------------------------------------------------------------------- chapter 1


def backprop_graph():
    """Chapter 1's worked example, unit by unit: forward values and the gradients the backward pass delivers."""
    net = Sequential([("fc1", Dense(_dev([[1.0, -1.0], [0.5, 2.0]]), _dev([0.0, -5.0]))), ("relu1", ReLU()),
                      ("fc2", Dense(_dev([[3.0], [1.0]]), _dev([0.5])))])
    x = np.array([[1.0, 2.0]])
    z1 = to_host(net.layers["fc1"].forward(_dev(x)))[0]
    net.forward(_dev(x))
    f = to_host(net.forward(_dev(x)))[0, 0]
    loss, dpred = mse(net.forward(_dev(x)), _dev([[4.5]]))
    dx = to_host(net.backward(dpred))[0]
    g = {k: to_host(v) for k, v in net.grads.items()}
    W1, W2 = to_host(net.params["fc1.W"]), to_host(net.params["fc2.W"])
    h = np.maximum(z1, 0)
    dz1 = g["fc1.b"]                      # ∂L/∂z₁ = the bias gradient of fc1 (one sample)
    dh = to_host(dpred)[0, 0] * W2[:, 0]  # ∂L/∂h = δ_f W₂ᵀ
    fig, ax = plt.subplots(figsize=(8.6, 3.9))
    pos = {"x0": (0.0, 2.0), "x1": (0.0, 0.0), "u0": (3.6, 2.0), "u1": (3.6, 0.0), "f": (6.8, 1.0), "L": (9.0, 1.0)}
    off = "0.55"

    def node(key, top, bottom, on=True, w=1.55, hgt=1.05):
        cx, cy = pos[key]
        ax.add_patch(Rectangle((cx - w / 2, cy - hgt / 2), w, hgt, fc="#dbe9f6" if on else "0.92",
                               ec="0.3" if on else off, lw=1.0))
        ax.text(cx, cy + 0.2, top, ha="center", va="center", fontsize=10, color="k" if on else off)
        ax.text(cx, cy - 0.24, bottom, ha="center", va="center", fontsize=10, color="C3" if on else off)

    def edge(a, b, label, on=True, frac=0.5, dy=0.0):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        x0, x1 = x0 + 0.8, x1 - 0.8
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=10,
                                     color="0.25" if on else off, lw=1.0))
        mx, my = x0 + frac * (x1 - x0), y0 + frac * (y1 - y0) + dy
        ax.text(mx, my, label, ha="center", va="center", fontsize=9, color="k" if on else off,
                bbox=dict(fc="white", ec="none", pad=0.5))

    for d in range(2):
        node(f"x{d}", f"x{d} = {x[0, d]:g}", f"∂L/∂x = {dx[d]:g}")
    for u in range(2):
        on = bool(z1[u] > 0)
        node(f"u{u}", f"z = {z1[u]:g}, h = {h[u]:g}", f"∂L/∂h = {dh[u]:g}\n∂L/∂z = {dz1[u]:g}" if on
             else f"∂L/∂z = {dz1[u]:g} (off)", on=on, hgt=1.25)
        ax.text(pos[f"u{u}"][0], pos[f"u{u}"][1] + 0.82, f"b = {to_host(net.params['fc1.b'])[u]:g},"
                f" ∂L/∂b = {g['fc1.b'][u]:g}", ha="center", fontsize=8.5, color="k" if on else off)
    for d in range(2):
        for u in range(2):
            on = bool(z1[u] > 0)
            edge(f"x{d}", f"u{u}", f"W={W1[d, u]:g} | {g['fc1.W'][d, u]:g}", on=on,
                 frac=0.5 if d == u else 0.2, dy=0.0)
    node("f", f"f = {f:g}", f"∂L/∂f = r/N = {to_host(dpred)[0, 0]:g}")
    ax.text(pos["f"][0], pos["f"][1] + 0.82, f"b = {to_host(net.params['fc2.b'])[0]:g}, ∂L/∂b = {g['fc2.b'][0]:g}",
            ha="center", fontsize=8.5)
    for u in range(2):
        edge(f"u{u}", "f", f"W={W2[u, 0]:g} | {g['fc2.W'][u, 0]:g}", on=bool(z1[u] > 0))
    node("L", f"L = {float(loss):g}", "y = 4.5, r = 2")
    ax.add_patch(FancyArrowPatch((pos["f"][0] + 0.8, 1.0), (pos["L"][0] - 0.8, 1.0), arrowstyle="-|>",
                                 mutation_scale=10, color="0.25"))
    ax.text(4.4, 3.05, "black: forward value    red: gradient from the backward pass    edge label: weight | ∂L/∂weight",
            ha="center", fontsize=9, color="0.2")
    ax.set_xlim(-0.9, 9.9)
    ax.set_ylim(-0.8, 3.3)
    ax.axis("off")
    fig.tight_layout()
    return _save(fig, "backprop_graph")


# --------------------------------------------------------------------------- chapter 2


def fd_tradeoff():
    """Central differences of x³ at x = 1: measured relative error against h, float64 and float32, with the model."""
    cube = lambda v: v * v * v  # noqa: E731
    fig, ax = plt.subplots(figsize=(6.4, 3.9))
    for dtype, color, hs in ((np.float64, "C0", np.logspace(-1, -12, 45)), (np.float32, "C3", np.logspace(-0.5, -7, 27))):
        one = dtype(1)
        err = [abs(float((cube(one + dtype(h)) - cube(one - dtype(h))) / (dtype(2) * dtype(h))) - 3) / 3 for h in hs]
        err = np.maximum(err, 1e-17)
        eps = float(np.finfo(dtype).eps)
        name = "float64" if dtype is np.float64 else "float32"
        ax.loglog(hs, err, "o", ms=3.5, color=color, label=f"{name}, measured")
        ax.loglog(hs, hs ** 2 / 3 + eps / (3 * hs), "-", color=color, lw=1, alpha=0.7,
                  label=f"{name}: h²/3 + ε/(3h), ε = {eps:.1e}")
        hbest = (eps / 2) ** (1 / 3)  # where h²/3 + ε/(3h) is smallest
        ax.axvline(hbest, color=color, ls=":", lw=1)
        f64 = dtype is np.float64
        ax.text(hbest, 1e-16 if f64 else 1e-8, f" best h = (ε/2)^(1/3) ≈ {hbest:.0e} " if f64 else
                f"best h ≈ {hbest:.0e} ", color=color, fontsize=8.5, ha="left" if f64 else "right")
    ax.set_xlabel("step h")
    ax.set_ylabel("relative error of f'(1)")
    ax.set_ylim(1e-17, 10)
    ax.invert_xaxis()
    ax.set_title("Central differences of f(x) = x³ at x = 1: truncation h²/3 falls, rounding ε/(3h) grows",
                 fontsize=9.5)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return _save(fig, "fd_tradeoff")


# --------------------------------------------------------------------------- chapter 3


def j_layout():
    """The Jacobian of a 3 → 4 → 2 ReLU network on N = 3 samples: rows i·K + k, column blocks per parameter."""
    N, D, H, K = 3, 3, 4, 2
    model = mlp(D, H, 2, K, seed=2, dtype="float64")
    X = _dev(np.random.default_rng(0).standard_normal((N, D)))
    J = to_host(ntk.jacobian(model, X))  # (N·K, P)
    cols = param_slices(model.params)
    fig, ax = plt.subplots(figsize=(8.4, 3.2))
    lim = np.abs(J).max()
    im = ax.imshow(J, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02)
    bar.set_label("∂f_k(x_i)/∂θ_p  (zero: white)")
    for name, sl in cols.items():
        ax.axvline(sl.start - 0.5, color="k", lw=1.2)
        ax.text((sl.start + sl.stop - 1) / 2, -0.85, f"{name}\n({sl.stop - sl.start})", ha="center", va="bottom",
                fontsize=8)
    for i in range(1, N):
        ax.axhline(i * K - 0.5, color="k", lw=0.8, ls=":")
    ax.set_yticks(range(N * K), [f"{i * K + k}: i={i}, k={k}" for i in range(N) for k in range(K)], fontsize=8)
    ax.set_ylabel("row i·K + k\n(sample i, output k)")
    ax.set_xlabel(f"column p: parameter θ_p (P = {J.shape[1]}, in the order of model.params)")
    ax.set_ylim(N * K - 0.5, -2.3)
    ax.set_title(f"J = ∂f/∂θ, shape (N·K, P) = {J.shape}; colour = value of ∂f_k(x_i)/∂θ_p", pad=4)
    fig.tight_layout()
    return _save(fig, "j_layout")


def theta_spectrum():
    """Θ's eigenvalues against the rounding floor: a resolved λ_min, and a singular Θ (N·K > P)."""
    rng = np.random.default_rng(0)
    X = _dev(rng.standard_normal((4, 3)))
    model = mlp(3, 5, 3, 2, seed=2, dtype="float64")
    tiny = mlp(2, 2, 2, 1, seed=0, dtype="float64")
    cases = [(spectrum.ntk_spectrum(ntk.empirical_ntk(model, X)), "3 → 5 → 5 → 2, N = 4: N·K = 8 < P = 62"),
             (spectrum.ntk_spectrum(ntk.empirical_ntk(tiny, _dev(rng.standard_normal((12, 2))))),
              "2 → 2 → 1, N = 12: N·K = 12 > P = 9")]
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.2), sharey=True)
    for ax, (s, title) in zip(axes, cases):
        ev = np.asarray(s.eigenvalues)
        idx = np.arange(ev.size)
        above = ev > s.floor
        ax.semilogy(idx[above], ev[above], "o", color="C0", label="eigenvalue above the floor")
        ax.semilogy(idx[~above], np.maximum(np.abs(ev[~above]), 1e-18), "x", color="C3",
                    label="|eigenvalue| below the floor: noise")
        ax.axhline(s.floor, color="0.3", ls="--", lw=1, label=f"floor {s.floor:.1e}")
        verdict = f"λ_min = {s.lam_min:.3g} (resolved)" if s.resolved else "λ_min unresolved (≤ floor)"
        ax.set_title(f"{title}\n{verdict}", fontsize=9)
        ax.set_xlabel("index j (ascending)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("eigenvalue λ_j of Θ")
    axes[1].legend(fontsize=7, loc="center right")
    fig.tight_layout()
    return _save(fig, "theta_spectrum")


# --------------------------------------------------------------------------- chapter 4


def pl_ratio():
    """Chapter 4's network: the PL ratio is a Rayleigh quotient of Θ over N, tight only along the bottom eigenvector."""
    from minilplr.theory import pl
    rng = np.random.default_rng(0)
    X = _dev(rng.standard_normal((10, 3)))
    y = _dev(rng.choice([-1.0, 1.0], (10, 1)))
    model = mlp(3, 16, 3, 1, seed=0, dtype="float64")
    theta = to_host(ntk.empirical_ntk(model, X))
    evals, evecs = np.linalg.eigh(theta)
    N = 10
    f0 = to_host(model.forward(X))

    def ratio(r):
        lg = pl.loss_and_gradient(model, X, _dev(f0 - r.reshape(N, 1)))
        return pl.pl_ratio(lg.grad, lg.loss)

    pick = np.random.default_rng(1)
    shares, ratios = [], []
    v0 = evecs[:, 0]
    for rest in np.logspace(-6, 0, 120):
        s = 1 - rest
        u = pick.standard_normal(N)
        u -= (u @ v0) * v0
        u /= np.linalg.norm(u)
        r = 0.5 * (np.sqrt(s) * v0 + np.sqrt(1 - s) * u)
        shares.append(1 - float((v0 @ r) ** 2 / (r @ r)))
        ratios.append(ratio(r))
    chapter = to_host(model.forward(X) - y).reshape(-1)
    fig, ax = plt.subplots(figsize=(6.6, 3.9))
    for j, lam in enumerate(evals):
        ax.axhline(lam / N, color="0.75", lw=0.8, zorder=0)
    ax.axhline(evals[0] / N, color="C3", lw=1.6, label=f"μ = λ_min/N = {evals[0] / N:.4f}: the PL bound")
    ax.axhline(evals[-1] / N, color="C0", lw=1.2, ls="--", label=f"λ_max/N = {evals[-1] / N:.2f}")
    ax.semilogy(shares, ratios, ".", color="k", ms=4, label="PL ratio ‖∇L‖²/(2L) of a residual r")
    ax.semilogy([1 - (v0 @ chapter) ** 2 / (chapter @ chapter)], [ratio(chapter)], "*", color="C1", ms=13,
                label=f"the chapter's ±1 labels: {ratio(chapter):.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("share of ‖r‖² off the bottom eigenvector v_0 of Θ,  1 − (v_0ᵀr)²/‖r‖²")
    ax.set_ylabel("PL ratio (L* = 0)")
    ax.set_title("3 → 16 → 16 → 1 ReLU MLP, N = 10: grey lines λ_j/N; the ratio is rᵀΘr/(N‖r‖²)",
                 fontsize=9.5)
    ax.legend(fontsize=8, loc="center left")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return _save(fig, "pl_ratio")


# --------------------------------------------------------------------------- chapter 4 / 8


def pl_lstar():
    """The PL log–log plot of one loss (PL with equality, true L* = 0.01) under three choices of L*."""
    t = np.arange(250)
    loss = 0.01 + 0.5 * 0.97 ** t  # chapter 8's loss: L_t − L* = 0.5·0.97^t with L* = 0.01
    g2 = 2 * 0.02 * (loss - 0.01)  # ‖∇L‖² = 2μ(L − L*), μ = 0.02: PL holds with equality
    choices = [("true L* = 0.01", loss - 0.01, None, "C0"),
               ("L* = 0", loss, None, "C3"),
               ("L* = min seen (resolvable steps)", loss - loss.min(), resolvable_mask(loss, loss.min()), "C2")]
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for label, gap, mask, color in choices:
        m = np.ones_like(gap, bool) if mask is None else mask
        fit = fit_loglog_slope(gap, g2, mask)
        ax.loglog(gap[m], g2[m], ".", ms=3, color=color, label=f"{label}: slope {fit['slope']:.2f}")
    x = np.array([1e-5, 0.6])
    ax.loglog(x, 2 * 0.02 * x, "k:", lw=1, label="½‖∇L‖² = μ(L − L*), slope 1")
    ax.set_xlabel("L_t − L*  (the assumed L*)")
    ax.set_ylabel("‖∇L_t‖²")
    ax.set_title("One perfectly PL loss, three guesses of L*", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", alpha=0.25)
    fig.tight_layout()
    return _save(fig, "pl_lstar")


# --------------------------------------------------------------------------- chapter 5


def _gd_losses(model, X, y, eta: float, steps: int) -> np.ndarray:
    losses = []
    for _ in range(steps):
        loss, dpred = mse(model.forward(X), y)
        losses.append(float(loss))
        model.backward(dpred, need_dx=False)
        load_flat(model, flatten(model.params) - eta * flatten(model.grads))
    return np.array(losses)


def envelope_vs_kernel():
    """Measured GD loss against the kernel regime of Θ_0 and Theorem 5.4's envelope, narrow and wide."""
    N, D, steps = 10, 5, 300
    rng = np.random.default_rng(0)
    X = _dev(rng.standard_normal((N, D)))
    y = _dev(rng.standard_normal((N, 1)))
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4), sharey=True)
    t = np.arange(steps)
    for ax, H in zip(axes, (16, 1024)):
        model = mlp(D, H, 3, 1, seed=0, dtype="float64")
        theta0 = ntk.empirical_ntk(model, X)
        s = spectrum.ntk_spectrum(theta0)
        eta = 0.5 * N / s.lam_max  # half of 1/β_GN, β_GN = λ_max/N
        r0 = to_host(model.forward(X) - y)
        measured = _gd_losses(model, X, y, eta, steps)
        kernel = kernel_regime_loss(theta0, r0, eta, N, steps)
        mu = s.lam_min / N
        ax.semilogy(t, measured, color="C0", lw=2, label="measured L_t (L* = 0)")
        ax.semilogy(t, kernel, "--", color="C1", label="kernel regime of Θ_0")
        ax.semilogy(t, pl_envelope(t, eta, mu, measured[0]), ":", color="C3", lw=1.5,
                    label="envelope (1 − ημ)^t L_0, μ = λ_min/N")
        ax.set_title(f"H = {H}: η = N/(2λ_max(Θ_0)) = {eta:.2g}", fontsize=9)
        ax.set_xlabel("step t")
        ax.grid(True, which="both", alpha=0.25)
    axes[0].set_ylabel("loss L_t")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"3-layer ReLU MLP, N = {N}, D = {D}, full-batch GD", fontsize=10)
    fig.tight_layout()
    return _save(fig, "envelope_vs_kernel")


# --------------------------------------------------------------------------- chapter 6


def im2col_picture():
    """A 1-channel 4 × 4 image, a 3 × 3 kernel: the patch matrix X_col (N·H_o·W_o, k·k·C) row by row."""
    x = np.arange(1, 17, dtype=float).reshape(1, 1, 4, 4)
    cols, (ho, wo) = im2col(_dev(x), 3)
    cols = to_host(cols)
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(9.6, 3.6), gridspec_kw={"width_ratios": [1, 2.5]})
    colors = ["C0", "C1", "C2", "C3"]
    a0.imshow(np.zeros((4, 4)), cmap="Greys", vmin=0, vmax=1)
    for (r, c), v in np.ndenumerate(x[0, 0]):
        a0.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=12)
    for row, (i, j) in enumerate(np.ndindex(ho, wo)):
        off = 0.08 * row - 0.12
        a0.add_patch(Rectangle((j - 0.5 + off, i - 0.5 + off), 3 - 0.04, 3 - 0.04, fill=False,
                               ec=colors[row], lw=1.8))
    a0.set_title("image x (N = C = 1, 4 × 4);\npatch (i, j) under a 3 × 3 kernel", fontsize=11)
    a0.set_xticks([]), a0.set_yticks([])
    a1.imshow(np.zeros_like(cols), cmap="Greys", vmin=0, vmax=1, aspect="auto")
    for (r, c), v in np.ndenumerate(cols):
        a1.text(c, r, f"{v:.0f}", ha="center", va="center", color=colors[r], fontsize=12)
    a1.set_yticks(range(ho * wo), [f"patch (i, j) = {ij}" for ij in np.ndindex(ho, wo)], fontsize=10)
    a1.set_xticks(range(9), [f"({a},{b},0)" for a in range(3) for b in range(3)], fontsize=9.5)
    a1.set_xlabel("column (u, v, c): kernel row u, kernel column v, channel c", fontsize=10.5)
    a1.set_title(f"X_col = im2col(x, 3), shape {cols.shape} = (N·H_o·W_o, k·k·C)\n"
                 "conv(x) = X_col @ W.reshape(k·k·C, C_out): a dense layer on patches", fontsize=11)
    fig.tight_layout()
    return _save(fig, "im2col")


def block_graph():
    """The computational graph of a projection residual block, with each node's output shape (forward run)."""
    model = resnet(in_channels=1, num_classes=2, widths=(4, 8), image_size=8, seed=0, dtype="float64")
    block = model.layers["stage2"].layers["block1"] if "block1" in model.layers["stage2"].layers else \
        next(iter(model.layers["stage2"].layers.values()))
    x = _dev(np.random.default_rng(0).standard_normal((2, 4, 8, 8)))
    shapes, f = {}, x
    for name, layer in zip(("conv1", "bn1", "relu1", "conv2", "bn2"), block.main):
        f = layer.forward(f)
        shapes[name] = f.shape
    s = x
    for name, layer in zip(("shortcut.conv", "shortcut.bn"), block.shortcut):
        s = layer.forward(s)
        shapes[name] = s.shape
    shapes["add"] = shapes["relu_out"] = f.shape
    conv1, conv2, sconv = block.main[0], block.main[3], block.shortcut[0]
    labels = {
        "conv1": f"conv1 {conv1.k}×{conv1.k}, s={conv1.stride}\n{conv1.c_in} → {conv1.c_out} ch",
        "bn1": "bn1 (γ, β)", "relu1": "relu1",
        "conv2": f"conv2 {conv2.k}×{conv2.k}, s={conv2.stride}\n{conv2.c_in} → {conv2.c_out} ch",
        "bn2": "bn2 (γ, β)",
        "shortcut.conv": f"shortcut.conv\n{sconv.k}×{sconv.k}, s={sconv.stride}, {sconv.c_in}→{sconv.c_out}",
        "shortcut.bn": "shortcut.bn\n(γ, β)", "add": "F(x) + S(x)", "relu_out": "relu_out",
    }
    main = ["conv1", "bn1", "relu1", "conv2", "bn2"]
    pos = {name: (1.7 + 1.9 * i, 1.55) for i, name in enumerate(main)}
    pos.update({"shortcut.conv": (4.0, 0.2), "shortcut.bn": (7.0, 0.2), "add": (11.7, 0.9),
                "relu_out": (13.6, 0.9), "x": (0.0, 0.9), "out": (15.1, 0.9)})
    fig, ax = plt.subplots(figsize=(11.6, 4.0))
    w, h = 1.6, 0.95

    def box(name, text, color):
        cx, cy = pos[name]
        ax.add_patch(Rectangle((cx - w / 2, cy - h / 2), w, h, fc=color, ec="0.3", lw=0.8))
        ax.text(cx, cy + 0.12, text, ha="center", va="center", fontsize=9.5)
        if name in shapes:
            ax.text(cx, cy - h / 2 + 0.05, str(tuple(shapes[name])), ha="center", va="bottom", fontsize=8.5,
                    color="0.3")

    def arrow(a, b):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.add_patch(FancyArrowPatch((x0 + (w / 2 if a not in ("x",) else 0.3), y0),
                                     (x1 - (w / 2 if b != "out" else 0.3), y1), arrowstyle="-|>",
                                     mutation_scale=9, color="0.2", lw=0.9, connectionstyle="arc3,rad=0"))

    for name in main:
        box(name, labels[name], "#dbe9f6")
    for name in ("shortcut.conv", "shortcut.bn"):
        box(name, labels[name], "#fde3c8")
    box("add", labels["add"], "#e2f0d9")
    box("relu_out", labels["relu_out"], "#e2f0d9")
    ax.text(*pos["x"], f"x\n{tuple(x.shape)}", ha="center", va="center", fontsize=9.5)
    ax.text(*pos["out"], "out", ha="center", va="center", fontsize=10)
    chain = ["x"] + main + ["add", "relu_out", "out"]
    for a, b in zip(chain, chain[1:]):
        arrow(a, b)
    for a, b in (("x", "shortcut.conv"), ("shortcut.conv", "shortcut.bn"), ("shortcut.bn", "add")):
        arrow(a, b)
    ax.text(5.5, 2.15, "main branch F(x)", ha="center", fontsize=10.5, color="C0")
    ax.text(5.5, -0.47, "shortcut S(x) (projection; the identity when stride 1 and C_in = C_out)", ha="center",
            fontsize=10, color="C1")
    ax.text(7.2, 2.85, "backward: both branches receive δ = ∂L/∂out ⊙ 1[F + S > 0];\n"
            "∂L/∂x = the sum of their input gradients.  Shapes (N, C, H, W) from a forward run.", ha="center",
            fontsize=10, color="0.25")
    ax.set_xlim(-0.6, 15.6)
    ax.set_ylim(-0.65, 3.2)
    ax.axis("off")
    fig.tight_layout()
    return _save(fig, "block_graph")


# --------------------------------------------------------------------------- chapter 7


def _gamma(W1, W2) -> float:
    """γ(𝒟) = λ_{H−D}(𝒟) − λ_{K−1}(𝒟) of the imbalance 𝒟 = W₁ᵀW₁ − W₂ᵀW₂ (eigenvalues ascending from 0)."""
    (D, H), K = W1.shape, W2.shape[0]
    Q, _ = np.linalg.qr(np.concatenate([W1, W2]).T)
    A, B = W1 @ Q, W2 @ Q
    ev = np.sort(np.concatenate([np.linalg.eigvalsh(A.T @ A - B.T @ B), np.zeros(H - Q.shape[1])]))
    return float(ev[H - D] - ev[K - 1])


def imbalance_story():
    """Chapter 7's worked network along GD: σ²(𝒯_t) between the bounds the imbalance gives, at two step sizes."""
    from minilplr.theory import linear
    rng = np.random.default_rng(0)
    X, Y = linear.synthetic_regression(6, 3, 2, rng)
    W1, W2 = linear.gaussian_init(3, 2, 8, 0.375, rng)
    gamma0 = _gamma(W1, W2)
    D0 = W1.T @ W1 - W2.T @ W2
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(9.6, 3.9))
    for eta, ls in ((0.1, "-"), (0.05, "--")):
        net = linear.make_network(X, Y, W1, W2)
        rec = {"gamma": [], "delta": [], "upper": []}

        def watch(t, net=net, rec=rec):
            V1, V2 = to_host(net.W1), to_host(net.W2)
            Dt = V1.T @ V1 - V2.T @ V2
            dn = float(np.linalg.norm(Dt, 2))
            rec["gamma"].append(_gamma(V1, V2))
            rec["delta"].append(float(np.linalg.norm(Dt - D0, 2)))
            rec["upper"].append(dn + (dn ** 2 + 4 * float(np.linalg.norm(V1 @ V2.T, 2)) ** 2) ** 0.5)

        run = linear.run_gd(net, linear.Constant(eta), steps=1000, callback=watch)
        t = np.arange(len(run["sigma2_min"]))
        a0.plot(t, run["sigma2_min"], ls, color="C0", lw=1.8, label=rf"$\sigma^2_{{\min}}(\mathcal{{T}}_t)$, η = {eta}")
        a0.plot(t, rec["gamma"], ls, color="C2", lw=1.2, label=rf"$\gamma(\mathcal{{D}}(t))$, η = {eta}")
        a0.plot(t, gamma0 - 2 * np.array(rec["delta"]), ls, color="C1", lw=1.2,
                label=rf"$\gamma(\mathcal{{D}}_0) - 2\delta_t$, η = {eta}")
        a1.plot(t, run["sigma2_max"], ls, color="C0", lw=1.8, label=rf"$\sigma^2_{{\max}}(\mathcal{{T}}_t)$, η = {eta}")
        a1.plot(t, rec["upper"], ls, color="C3", lw=1.2, label=rf"$\|\mathcal{{D}}\| + \sqrt{{\|\mathcal{{D}}\|^2 + 4\|W\|^2}}$, η = {eta}")
    a0.axhline(gamma0 / 2, color="0.4", ls=":", lw=1.2, label="γ₀/2: what the induction keeps")
    a0.set_ylim(0, None)
    a0.set_title(r"lower side: $\sigma^2_{\min}(\mathcal{T}_t) \geq \gamma(\mathcal{D}(t)) \geq \gamma(\mathcal{D}_0) - 2\delta_t$", fontsize=10)
    a1.set_title(r"upper side: $\sigma^2_{\max}(\mathcal{T}_t) \leq \|\mathcal{D}\| + \sqrt{\|\mathcal{D}\|^2 + 4\|W\|^2}$", fontsize=10)
    for ax in (a0, a1):
        ax.set_xlabel("GD step t (constant η, run to L − L* ≤ 1e-12 Δ₀)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7.5, loc="best")
    fig.suptitle("Two-layer linear network, D = 3, K = 2, H = 8, p = 0.375 (chapter 7's worked example)",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, "imbalance_story")


PICTURES = {
    "backprop_graph": backprop_graph,
    "fd_tradeoff": fd_tradeoff,
    "j_layout": j_layout,
    "theta_spectrum": theta_spectrum,
    "pl_ratio": pl_ratio,
    "pl_lstar": pl_lstar,
    "envelope_vs_kernel": envelope_vs_kernel,
    "im2col": im2col_picture,
    "block_graph": block_graph,
    "imbalance_story": imbalance_story,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"pictures to draw (default: all): {', '.join(PICTURES)}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in PICTURES]
    if unknown:
        parser.error(f"names: expected some of {', '.join(PICTURES)}, got {', '.join(unknown)}")
    problem = _unwritable(OUT)  # before drawing anything: a read-only folder is one line, not a traceback
    if problem:
        print(f"make_pictures.py: cannot write the pictures into {OUT} ({problem})", file=sys.stderr)
        return 1
    for name in args.names or PICTURES:
        try:
            path = PICTURES[name]()
        except OSError as exc:  # the disk filled, or the folder changed under us
            print(f"make_pictures.py: {name}: cannot write {OUT / (name + '.png')} ({exc.strerror or exc})",
                  file=sys.stderr)
            return 1
        print(f"{path.relative_to(OUT.parent.parent)}: {path.stat().st_size / 1024:.0f} KB")
    return 0


def _unwritable(folder: Path):
    """Why ``folder`` cannot take the pictures (it is a file, or a write fails), or ``None``; creates it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test.", suffix=".probe"):
            pass
    except FileExistsError:
        return "it is a file, not a folder"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


if __name__ == "__main__":
    sys.exit(main())
