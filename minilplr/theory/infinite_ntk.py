r"""The infinite-width NTK ``Θ_∞`` of minilplr's ReLU MLP, and what a finite network's Θ converges to.

The analytic kernel of Jacot, Gabriel & Hongler (2018), in the arc-cosine
form of Arora et al. (2019, Thm 3.1; the expectations are Cho & Saul's 2009
arc-cosine kernels), written for the network :func:`minilplr.nn.models.mlp`
builds.  Float64, all ``N`` inputs at once (``(N, N)`` matrices, no loop over
samples).

The network, in minilplr's own (standard) parameterisation
----------------------------------------------------------
``L`` dense layers of widths ``n_0 = D``, ``n_1 = … = n_{L−1} = H``,
``n_L = K``; ``a^{(0)} = x``, ``φ = ReLU``:

.. math:: z^{(l)} = a^{(l-1)} W^{(l)} + b^{(l)}, \qquad a^{(l)} = \varphi(z^{(l)}), \qquad f = z^{(L)},

He initialisation ``W^{(l)}_{ij} ~ N(0, σ²/n_{l−1})`` with ``σ² = 2``
(:func:`minilplr.nn.init.he_normal`; ``enhanced_he`` is ``σ² = 2c``), and the
bias convention of :class:`minilplr.nn.layers.Dense`: ``b^{(l)}`` is a plain
parameter (multiplier 1), **zero at initialisation** and trained.  Two
consequences: the biases add nothing to the forward kernel at ``θ_0`` (no
``σ_b²`` in Σ), and each layer's bias gradient adds its own share to Θ (the
``+1`` below).

The recursion (one function per line)
-------------------------------------
Σ⁽ˡ⁾ is the covariance of the pre-activations ``z^{(l)}`` over the random
initialisation, Σ̇⁽ˡ⁾ that of ``σ φ'(z^{(l)})``; for a pair ``(u, v) ~ N(0,
[[Σ_xx, Σ_xx'], [Σ_xx', Σ_x'x']])`` with ``cos θ = Σ_xx'/√(Σ_xx Σ_x'x')``:

.. math::

   \Sigma^{(1)}(x,x') &= \tfrac{\sigma^2}{D}\, x\cdot x'
        &&\text{(R1, } \texttt{input\_kernel}\text{)}\\
   \Sigma^{(l+1)}(x,x') &= \sigma^2\,\mathbb E[\varphi(u)\varphi(v)]
        = \tfrac{\sigma^2}{2\pi}\sqrt{\Sigma_{xx}\Sigma_{x'x'}}\,\big(\sin\theta + (\pi-\theta)\cos\theta\big)
        &&\text{(R2, } \texttt{relu\_nngp\_step}\text{)}\\
   \dot\Sigma^{(l)}(x,x') &= \sigma^2\,\mathbb E[\varphi'(u)\varphi'(v)] = \tfrac{\sigma^2}{2\pi}(\pi-\theta)
        &&\text{(R3, } \texttt{relu\_derivative\_step}\text{)}\\
   \Theta^{(1)} &= \Sigma^{(1)} + 1, \quad
   \Theta^{(l+1)} = \Theta^{(l)}\odot\dot\Sigma^{(l)} + \Sigma^{(l+1)} + 1, \quad \Theta_\infty = \Theta^{(L)}
        &&\text{(R4, } \texttt{ntk\_step}\text{)}

Unrolled, R4 is a sum of one share per layer (:func:`infinite_ntk_shares`):

.. math:: \Theta_\infty = \sum_{l=1}^{L} \big(S_l + P_l\big), \qquad
          S_l = \Sigma^{(l)} \odot P_l \ \text{(weights)}, \qquad
          P_l = \textstyle\prod_{m=l}^{L-1} \dot\Sigma^{(m)} \ \text{(bias; } P_L = 1\text{)}.

With He's ``σ² = 2`` the diagonal is preserved, ``Σ⁽ˡ⁾(x, x) = 2‖x‖²/D`` and
``Σ̇⁽ˡ⁾(x, x) = 1`` at every layer.  ``K > 1`` outputs: the output columns are
independent, so the limit is ``Θ_∞ ⊗ I_K`` (``kron(Θ_∞, I_K)`` in
:mod:`.ntk`'s row order ``i·K + k``; ``d_out=K`` of :func:`infinite_ntk`).

What converges, and to what (derivation)
----------------------------------------
The empirical Θ (:func:`minilplr.theory.ntk.empirical_ntk`) is exactly a sum
of per-layer shares.  With ``g^{(l)} = ∂f/∂z^{(l)}`` (``K = 1``):

.. math:: \Theta = \sum_l \Theta_W^{(l)} + \Theta_b^{(l)}, \qquad
          \Theta_W^{(l)} = (a^{(l-1)}\!\cdot a'^{(l-1)})\,(g^{(l)}\!\cdot g'^{(l)}), \qquad
          \Theta_b^{(l)} = g^{(l)}\!\cdot g'^{(l)}.

As ``H → ∞`` (layer by layer, Jacot et al. Thm 1), with fluctuations of
relative size ``O(1/√H)``:

* ``(σ²/n_{l−1}) a^{(l−1)}·a'^{(l−1)} → Σ⁽ˡ⁾`` (a mean of ``n_{l−1}``
  i.i.d. terms ``σ² φ(z)φ(z')``; exact for ``l = 1``, where it is R1);
* ``g^{(l)}·g'^{(l)} → P_l`` (``g^{(l)} = (g^{(l+1)} W^{(l+1)ᵀ}) ⊙ φ'(z^{(l)})``,
  a mean of ``H`` terms ``σ² φ'φ' · (g^{(l+1)}·g'^{(l+1)})``; exact (``= 1``)
  for ``l = L``).

So ``Θ_W^{(l)} → (n_{l−1}/σ²) S_l`` and ``Θ_b^{(l)} → P_l``, and minilplr's
kernel, in standard parameterisation, is

.. math:: \Theta_{SP}(H) = \frac{H}{\sigma^2}\sum_{l=2}^{L} S_l
          \;+\; \underbrace{\tfrac{D}{\sigma^2} S_1}_{\text{first layer: } (XX^\top)\odot P_1}
          \;+\; \underbrace{\textstyle\sum_{l} P_l}_{\text{biases}} \;+\; O_P(\sqrt H).

It **grows like H**.  What converges in SP is ``Θ_SP/H → (1/σ²) Σ_{l≥2} S_l``,
a kernel without the first layer's and the biases' shares: those are
``O(1/H)`` relative (the first layer's is ``O(D/H)``, not small on MNIST,
``D = 784``, at the widths one trains), and this SP limit is not Θ_∞.

The like-for-like comparison rescales each layer's weight share by its own
fan-in (:func:`scaled_empirical_ntk`, ``scaling="ntk"``):

.. math:: \tilde\Theta(H) = \sum_{l=1}^{L} \Big(\frac{\sigma^2}{n_{l-1}}\,\Theta_W^{(l)} + \Theta_b^{(l)}\Big)
          \;\xrightarrow[H\to\infty]{}\; \Theta_\infty,
          \qquad \frac{\lVert\tilde\Theta(H) - \Theta_\infty\rVert_F}{\lVert\Theta_\infty\rVert_F} = O_P(H^{-1/2}).

``Θ̃`` is exactly the empirical NTK of the *same function* written in NTK
parameterisation, ``W^{(l)} = (σ/√n_{l−1}) W̃^{(l)}``, ``W̃ ~ N(0, 1)``,
biases unchanged (``∂f/∂W̃ = (σ/√n) ∂f/∂W``), so it is the kernel the
theorems are about; every one of its shares is ``O(1)``, the first layer's
weight share is exact at every width, and a depth-1 (linear) model has
``Θ̃ = Θ_∞ = (σ²/D) XXᵀ + 1`` exactly.  The fluctuation is ``O(1/√H)``; the
mean of ``Θ̃`` differs from ``Θ_∞`` by ``O(1/H)`` more, so the measured log–log
slope of the error against ``H`` is about ``−1/2``
(``tests/theory/test_infinite_ntk.py``).  The other scaling, ``"standard"``, keeps
minilplr's Θ as it is and compares it with its own leading part at width
``H``, ``Σ_l ((n_{l−1}/σ²) S_l + P_l)`` (:func:`infinite_ntk` with
``scaling="standard", width=H``); divided by ``H`` both tend to the SP limit
above.  Ratios such as the drift ``‖Θ_T − Θ_0‖/‖Θ_0‖`` do not change under a
global scale; ``λ_min`` scales with it.

Imports the backend and :mod:`minilplr.validate`; the empirical side also the
layer protocol of :mod:`.ntk` and :func:`minilplr.nn.state.untouched`.  Never
the training loops or the experiments.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module, resolve_dtype, to_scalar
from ..nn.state import untouched
from ..validate import check_finite, check_int, check_positive, check_real_array
from .ntk import _outputs, _prepare, _seed  # the layer protocol's helpers: forward, checked input, output seeds

__all__ = [
    "input_kernel",
    "relu_nngp_step",
    "relu_derivative_step",
    "ntk_step",
    "infinite_ntk_shares",
    "infinite_ntk",
    "empirical_ntk_shares",
    "scaled_empirical_ntk",
    "combine_shares",
    "model_weight_var",
    "relative_error",
    "SCALINGS",
    "HE_WEIGHT_VAR",
]

SCALINGS = ("ntk", "standard")
HE_WEIGHT_VAR = 2.0
"""He's ``σ²``: ``W ~ N(0, 2/fan_in)``."""


# --------------------------------------------------------------------------- inputs


def _check_X(X):
    check_real_array("X", X)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X: expected a 2-D array (N, D) with N, D >= 1, got shape {tuple(X.shape)}")
    check_finite("X", X)
    return X.astype(np.float64, copy=False)


def _check_sigma(name, S):
    if not hasattr(S, "ndim") or S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"{name}: expected a square (N, N) covariance matrix, got {getattr(S, 'shape', type(S).__name__)}")
    return S.astype(np.float64, copy=False)


def _check_scaling(scaling):
    if scaling not in SCALINGS:
        raise ValueError(f"scaling: expected one of {', '.join(repr(s) for s in SCALINGS)}, got {scaling!r}")


# --------------------------------------------------------------------------- the recursion, one equation each


def input_kernel(X, weight_var: float = HE_WEIGHT_VAR):
    r"""R1: the first layer's pre-activation covariance, ``(N, N)`` float64.

    .. math:: \Sigma^{(1)}(x, x') = \frac{\sigma^2}{D}\, x\cdot x' \tag{R1}

    ``z^{(1)} = x W^{(1)} + b^{(1)}`` with ``W ~ N(0, σ²/D)`` and ``b = 0`` at
    initialisation (minilplr's bias convention: no ``σ_b²`` term).

    Parameters
    ----------
    X : array (N, D), any backend; cast to float64
    weight_var : float, ``σ²`` (He: 2)
    """
    X = _check_X(X)
    weight_var = check_positive("weight_var", weight_var)
    return (weight_var / X.shape[1]) * (X @ X.T)


def _angle(S):
    r"""``(√det, θ, zero)`` of a covariance matrix ``S (N, N)``, each ``(N, N)``: the pair geometry of R2 and R3.

    The plain expressions are ``cos θ = Σ_xx'/√(Σ_xx Σ_x'x')`` and
    ``θ = arccos(cos θ)``.  Written so, the diagonal loses half the digits:
    ``cos θ`` rounds to ``1 − ε`` and ``arccos`` turns that into
    ``θ ≈ √(2ε) ≈ 2·10⁻⁸`` (seen: ``Σ̇(x, x) = 1 − 7·10⁻⁹``).  Here instead
    ``θ = atan2(√det, Σ_xx')`` with ``det = Σ_xx Σ_x'x' − Σ_xx'²``
    ``= (Σ_xx Σ_x'x') sin²θ``, which is exactly 0 on the diagonal; R2 then
    needs no division (``√(Σ_xx Σ_x'x')·sin θ = √det``,
    ``√(Σ_xx Σ_x'x')·cos θ = Σ_xx'``).  ``zero`` marks pairs with a zero
    variance (a zero input: its pre-activations are identically 0).
    """
    xp = get_array_module(S)
    d = S.diagonal()  # Σ_xx  (N,)
    det = xp.maximum(d[:, None] * d[None, :] - S * S, 0.0)  # Σ_xx Σ_x'x' − Σ_xx'²  (rounding can dip below 0)
    root = xp.sqrt(det)
    zero = (d[:, None] <= 0) | (d[None, :] <= 0)
    return root, xp.arctan2(root, S), zero


def relu_nngp_step(S, weight_var: float = HE_WEIGHT_VAR):
    r"""R2: the next layer's pre-activation covariance through a ReLU, ``(N, N)``.

    .. math:: \Sigma^{(l+1)}(x,x') = \sigma^2\, \mathbb E_{(u,v)\sim N(0,\Lambda)}[\varphi(u)\varphi(v)]
              = \frac{\sigma^2}{2\pi}\sqrt{\Sigma_{xx}\Sigma_{x'x'}}\,
                \big(\sin\theta + (\pi - \theta)\cos\theta\big) \tag{R2}

    ``Λ = [[Σ_xx, Σ_xx'], [Σ_xx', Σ_x'x']]`` from ``S = Σ⁽ˡ⁾``,
    ``cos θ = Σ_xx'/√(Σ_xx Σ_x'x')`` (the degree-1 arc-cosine kernel of
    Cho & Saul 2009).  ``z^{(l+1)} = φ(z^{(l)}) W + b``, ``W ~ N(0, σ²/H)``,
    ``b = 0`` at init, so the covariance is ``σ²`` times the mean of
    ``φ(u)φ(v)`` over the ``H`` units.
    """
    S = _check_sigma("S", S)
    weight_var = check_positive("weight_var", weight_var)
    root, theta, _ = _angle(S)  # √(Σ_xxΣ_x'x')·sin θ = root,  √(Σ_xxΣ_x'x')·cos θ = Σ_xx'
    return (weight_var / (2 * math.pi)) * (root + (math.pi - theta) * S)


def relu_derivative_step(S, weight_var: float = HE_WEIGHT_VAR):
    r"""R3: the covariance of the ReLU's derivative, ``(N, N)``.

    .. math:: \dot\Sigma^{(l)}(x,x') = \sigma^2\, \mathbb E_{(u,v)\sim N(0,\Lambda)}[\varphi'(u)\varphi'(v)]
              = \frac{\sigma^2}{2\pi}\,(\pi - \theta) \tag{R3}

    (``P(u > 0, v > 0) = (π − θ)/(2π)``, the degree-0 arc-cosine kernel).  It
    is the factor by which ``g·g'`` (the back-propagated sensitivities) shrinks
    through one ReLU layer and the ``σ²/H`` weights above it.  A zero input
    gets ``0`` (its pre-activations are 0, and ``φ'(0) = 0`` in minilplr).
    """
    S = _check_sigma("S", S)
    weight_var = check_positive("weight_var", weight_var)
    xp = get_array_module(S)
    _, theta, zero = _angle(S)
    return xp.where(zero, 0.0, (weight_var / (2 * math.pi)) * (math.pi - theta))


def ntk_step(theta_l, sigma_dot_l, sigma_next):
    r"""R4: one layer of the NTK recursion, ``(N, N)``.

    .. math:: \Theta^{(l+1)} = \Theta^{(l)} \odot \dot\Sigma^{(l)} + \Sigma^{(l+1)} + 1 \tag{R4}

    ``Θ^{(l)} ⊙ Σ̇^{(l)}``: the layers below, seen through one more ReLU
    layer; ``Σ^{(l+1)}``: the new layer's weights (fan-in-rescaled); ``+1``:
    its bias (a trained parameter, multiplier 1).  The start is
    ``Θ^{(1)} = Σ^{(1)} + 1`` (:func:`infinite_ntk`).
    """
    for name, a in (("theta_l", theta_l), ("sigma_dot_l", sigma_dot_l), ("sigma_next", sigma_next)):
        _check_sigma(name, a)
    if not (theta_l.shape == sigma_dot_l.shape == sigma_next.shape):
        raise ValueError(f"theta_l, sigma_dot_l, sigma_next: expected one shape, got {tuple(theta_l.shape)}, "
                         f"{tuple(sigma_dot_l.shape)}, {tuple(sigma_next.shape)}")
    return theta_l * sigma_dot_l + sigma_next + 1.0


# --------------------------------------------------------------------------- the limit


def infinite_ntk_shares(X, depth: int, weight_var: float = HE_WEIGHT_VAR):
    r"""Every layer's share of Θ_∞: ``(S, P)``, each ``(L, N, N)`` float64.

    .. math:: S_l = \Sigma^{(l)} \odot P_l, \qquad P_l = \prod_{m=l}^{L-1}\dot\Sigma^{(m)},
              \qquad \Theta_\infty = \sum_{l=1}^{L} (S_l + P_l)

    ``S[l-1]`` is the limit of layer ``l``'s weight share rescaled by
    ``σ²/n_{l−1}``, ``P[l-1]`` that of its bias share (module docstring).
    """
    X = _check_X(X)
    depth = check_int("depth", depth, 1)
    weight_var = check_positive("weight_var", weight_var)
    xp = get_array_module(X)
    sigmas, dots = [input_kernel(X, weight_var)], []  # Σ^(1..L), Σ̇^(1..L-1)
    for _ in range(depth - 1):
        dots.append(relu_derivative_step(sigmas[-1], weight_var))  # R3
        sigmas.append(relu_nngp_step(sigmas[-1], weight_var))  # R2
    n = X.shape[0]
    S, P = xp.empty((depth, n, n)), xp.empty((depth, n, n))
    prod = xp.ones((n, n))
    for l in range(depth - 1, -1, -1):  # P_L = 1; P_l = Σ̇^(l) ⊙ P_{l+1}
        P[l] = prod
        S[l] = sigmas[l] * prod
        if l > 0:
            prod = prod * dots[l - 1]
    return S, P


def infinite_ntk(X, depth: int, *, weight_var: float = HE_WEIGHT_VAR, scaling: str = "ntk", width=None,
                 d_out: int = 1):
    r"""The infinite-width NTK of ``mlp(D, H, depth, K)``, float64, ``(N·K, N·K)``.

    .. math:: \Theta_\infty = \Theta^{(L)}, \qquad \Theta^{(1)} = \Sigma^{(1)} + 1, \qquad
              \Theta^{(l+1)} = \Theta^{(l)}\odot\dot\Sigma^{(l)} + \Sigma^{(l+1)} + 1

    (R1–R4 of the module docstring).

    Parameters
    ----------
    X : array (N, D), any backend (the result lives there too)
    depth : int, ``L`` (dense layers, as :func:`minilplr.nn.models.mlp` counts them)
    weight_var : float, ``σ²`` of the weights times fan-in (He: 2)
    scaling : {"ntk", "standard"}
        ``"ntk"``: ``Θ_∞``, the limit of the layer-wise rescaled empirical kernel
        ``Θ̃(H)`` (:func:`scaled_empirical_ntk`).  ``"standard"``: the leading
        part of minilplr's own (unscaled) kernel at width ``width``,
        ``Σ_l ((n_{l−1}/σ²) S_l + P_l)``, which grows like ``H``.
    width : int, ``H``; required for ``"standard"``, unused for ``"ntk"``
    d_out : int, ``K``; the result is ``kron(Θ, I_K)`` (outputs independent)

    Returns
    -------
    theta : (N·K, N·K) float64; row ``i·K + k`` is sample ``i``, output ``k``
    """
    _check_scaling(scaling)
    depth = check_int("depth", depth, 1)
    d_out = check_int("d_out", d_out, 1)
    if scaling == "standard":
        if width is None:
            raise ValueError("width: scaling='standard' needs the hidden width H (the kernel grows with it)")
        width = check_int("width", width, 1)
    X = _check_X(X)
    weight_var = check_positive("weight_var", weight_var)
    xp = get_array_module(X)
    if scaling == "ntk":  # the recursion R4, as written
        sig = input_kernel(X, weight_var)
        theta = sig + 1.0  # Θ^(1)
        for _ in range(depth - 1):
            dot, sig = relu_derivative_step(sig, weight_var), relu_nngp_step(sig, weight_var)
            theta = ntk_step(theta, dot, sig)
    else:
        S, P = infinite_ntk_shares(X, depth, weight_var)
        fan_in = [X.shape[1]] + [width] * (depth - 1)
        theta = sum((fan_in[l] / weight_var) * S[l] + P[l] for l in range(depth))
    if d_out > 1:
        theta = xp.kron(theta, xp.eye(d_out))
    return theta


# --------------------------------------------------------------------------- the matching empirical kernel


def model_weight_var(model, weight_var=None) -> float:
    """``σ²`` given, or read from the model's config (``he``: 2; ``enhanced_he``: 2·c(L))."""
    if weight_var is not None:
        return check_positive("weight_var", weight_var)
    cfg = getattr(model, "config", {}) or {}
    if cfg.get("init") == "he":
        return HE_WEIGHT_VAR
    if cfg.get("init") == "enhanced_he":
        c = cfg.get("init_factor")
        return HE_WEIGHT_VAR * (1.0 / cfg["depth"] if c is None else float(c))
    raise ValueError(f"weight_var: the model's init {cfg.get('init')!r} has no fan-in variance σ²/fan_in; "
                     f"pass weight_var explicitly")


def empirical_ntk_shares(model, X, dtype="float64"):
    r"""Each dense layer's share of the empirical Θ, weights and bias apart.

    .. math:: \Theta = \sum_l \Theta_W^{(l)} + \Theta_b^{(l)}, \qquad
              \Theta_W^{(l)} = (AA^\top)\odot(GG^\top), \qquad \Theta_b^{(l)} = GG^\top

    One backward sweep of the ``K`` output seeds through the layer protocol
    of :mod:`.ntk` (``ntk_backward``): each layer adds its share
    ``(A Aᵀ + 1) ⊙ (G Gᵀ)`` into a fresh accumulator; the bias part ``G Gᵀ``
    comes from the seeds at its output, and the weight part is the rest.

    Parameters
    ----------
    model : a chain (:class:`~minilplr.nn.layers.Sequential`) of dense layers
        (params ``W (fan_in, fan_out)``, ``b``) and parameter-free layers: an MLP
    X : array (N, D) on the model's backend
    dtype : where the shares are accumulated (default float64)

    Returns
    -------
    fan_in : list of L ints, ``n_{l−1}``
    weight, bias : arrays (L, N·K, N·K), ``dtype``, layers first to last
    """
    layers = list(getattr(model, "layers", {}).values())
    if not layers or not hasattr(model, "ntk_backward"):
        raise TypeError(f"model: expected a minilplr MLP (a chain of layers), got {type(model).__name__}")
    for lay in layers:
        p = getattr(lay, "params", {})
        if p and (set(p) != {"W", "b"} or p["W"].ndim != 2):
            raise TypeError(f"model: expected dense layers (params W, b) and parameter-free layers, got "
                            f"{type(lay).__name__} with params {list(p)}")
    dt = resolve_dtype(dtype)
    with untouched(model):
        X = _prepare(model, X)
        xp = get_array_module(X)
        out = _outputs(model, X)  # (N, K); every layer keeps its input
        n, K = out.shape
        douts = [_seed(out, k) for k in range(K)]
        fan_in, weight, bias = [], [], []
        for i in range(len(layers) - 1, -1, -1):
            lay = layers[i]
            if getattr(lay, "params", {}):
                G = xp.stack([d.astype(dt, copy=False) for d in douts], axis=1)  # (N, K, H)
                b = xp.einsum("ikh,jmh->ikjm", G, G).reshape(n * K, n * K)  # g_ik · g_jk'
                acc = xp.zeros((n, K, n, K), dtype=dt)
                douts = lay.ntk_backward(douts, acc, need_dx=i > 0)  # adds (A Aᵀ + 1) ⊙ (G Gᵀ)
                fan_in.append(int(lay.params["W"].shape[0]))
                bias.append(b)
                weight.append(acc.reshape(n * K, n * K) - b)  # (A Aᵀ) ⊙ (G Gᵀ)
            else:
                douts = lay.ntk_backward(douts, None, need_dx=True) if i > 0 else None
    return fan_in[::-1], xp.stack(weight[::-1]), xp.stack(bias[::-1])


def scaled_empirical_ntk(model, X, scaling: str = "ntk", weight_var=None, dtype="float64"):
    r"""The finite-width kernel to set beside :func:`infinite_ntk` with the same ``scaling``.

    .. math:: \tilde\Theta(H) = \sum_{l=1}^{L}\Big(\frac{\sigma^2}{n_{l-1}}\Theta_W^{(l)} + \Theta_b^{(l)}\Big)
              \quad(\texttt{"ntk"}), \qquad \Theta_{SP} = \sum_l \Theta_W^{(l)} + \Theta_b^{(l)}
              \quad(\texttt{"standard"})

    ``"ntk"`` is the empirical NTK of the same function in NTK
    parameterisation and tends to ``Θ_∞`` at rate ``O(1/√H)``; ``"standard"``
    is :func:`minilplr.theory.ntk.empirical_ntk` itself.

    Parameters
    ----------
    model : an MLP (:func:`minilplr.nn.models.mlp`)
    X : array (N, D) on the model's backend
    scaling : {"ntk", "standard"}
    weight_var : float or None, ``σ²``; ``None`` reads it from ``model.config``
        (``he``: 2, ``enhanced_he``: ``2 c(L)``)
    dtype : accumulation dtype (default float64)

    Returns
    -------
    theta : (N·K, N·K), ``dtype``, on the model's backend
    """
    _check_scaling(scaling)
    fan_in, W, b = empirical_ntk_shares(model, X, dtype)
    return combine_shares(fan_in, W, b, scaling, None if scaling == "standard" else model_weight_var(model, weight_var))


def combine_shares(fan_in, weight, bias, scaling: str = "ntk", weight_var: float | None = HE_WEIGHT_VAR):
    r"""The kernel of :func:`scaled_empirical_ntk` from the shares of :func:`empirical_ntk_shares`.

    .. math:: \tilde\Theta = \sum_l \Big(\frac{\sigma^2}{n_{l-1}}\Theta_W^{(l)} + \Theta_b^{(l)}\Big)
              \quad(\texttt{"ntk"}), \qquad \Theta_{SP} = \sum_l \Theta_W^{(l)} + \Theta_b^{(l)}
              \quad(\texttt{"standard"}; \texttt{weight\_var} unused)

    For a caller that wants both scalings (or the shares) from one sweep.
    ``weight, bias``: ``(L, N·K, N·K)``; ``fan_in``: ``L`` ints.
    """
    _check_scaling(scaling)
    if len(fan_in) != weight.shape[0] or weight.shape != bias.shape:
        raise ValueError(f"fan_in, weight, bias: expected L fan-ins and two (L, N·K, N·K) arrays, got "
                         f"{len(fan_in)}, {tuple(weight.shape)}, {tuple(bias.shape)}")
    if scaling == "standard":
        return weight.sum(axis=0) + bias.sum(axis=0)
    s2 = check_positive("weight_var", weight_var)
    return sum((s2 / fan_in[l]) * weight[l] + bias[l] for l in range(len(fan_in)))


def relative_error(A, B):
    r"""``‖A − B‖_F / ‖B‖_F`` as a Python float (``B`` the reference, e.g. Θ_∞)."""
    xp = get_array_module(A, B)
    if A.shape != B.shape:
        raise ValueError(f"A, B: expected one shape, got {tuple(A.shape)} and {tuple(B.shape)}")
    return to_scalar(xp.linalg.norm(A - B)) / to_scalar(xp.linalg.norm(B))
