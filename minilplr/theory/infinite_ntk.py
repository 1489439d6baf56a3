r"""The infinite-width NTK ``Θ_∞`` of minilplr's ReLU MLP, and what a finite network's Θ converges to.

The analytic kernel of Jacot, Gabriel & Hongler (2018), in the arc-cosine
form of Arora et al. (2019, Thm 3.1; the expectations are Cho & Saul's 2009
arc-cosine kernels), written for the network :func:`minilplr.nn.models.mlp`
builds.  Float64, all ``N`` inputs at once (``(N, N)`` matrices, no loop over
samples).

The network, in minilplr's own (standard) parameterisation
----------------------------------------------------------
``depth`` dense layers of widths ``H_0 = D``, ``H_1 = … = H_{depth−1} = H``,
``H_depth = K`` (fan-in of layer ``l``: ``H_{l−1}``; docs/notation.md); ``a^{(0)} = x``, ``φ = ReLU``:

.. math:: z^{(l)} = a^{(l-1)} W^{(l)} + b^{(l)}, \qquad a^{(l)} = \varphi(z^{(l)}), \qquad f = z^{(\mathrm{depth})},

He initialisation ``W^{(l)}_{ij} ~ N(0, σ²/H_{l−1})`` with ``σ² = 2``
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
[[Σ_xx, Σ_xx'], [Σ_xx', Σ_x'x']])`` with ``cos ϑ = Σ_xx'/√(Σ_xx Σ_x'x')``:

.. math::

   \Sigma^{(1)}(x,x') &= \tfrac{\sigma^2}{D}\, x\cdot x'
        &&\text{(R1, } \texttt{input\_kernel}\text{)}\\
   \Sigma^{(l+1)}(x,x') &= \sigma^2\,\mathbb E[\varphi(u)\varphi(v)]
        = \tfrac{\sigma^2}{2\pi}\sqrt{\Sigma_{xx}\Sigma_{x'x'}}\,\big(\sin\vartheta + (\pi-\vartheta)\cos\vartheta\big)
        &&\text{(R2, } \texttt{relu\_nngp\_step}\text{)}\\
   \dot\Sigma^{(l)}(x,x') &= \sigma^2\,\mathbb E[\varphi'(u)\varphi'(v)] = \tfrac{\sigma^2}{2\pi}(\pi-\vartheta)
        &&\text{(R3, } \texttt{relu\_derivative\_step}\text{)}\\
   \Theta^{(1)} &= \Sigma^{(1)} + 1, \quad
   \Theta^{(l+1)} = \Theta^{(l)}\odot\dot\Sigma^{(l)} + \Sigma^{(l+1)} + 1, \quad \Theta_\infty = \Theta^{(\mathrm{depth})}
        &&\text{(R4, } \texttt{ntk\_step}\text{)}

Unrolled, R4 is a sum of one share per layer (:func:`infinite_ntk_shares`):

.. math:: \Theta_\infty = \sum_{l=1}^{\mathrm{depth}} \big(S_l + \Pi_l\big), \qquad
          S_l = \Sigma^{(l)} \odot \Pi_l \ \text{(weights)}, \qquad
          \Pi_l = \textstyle\prod_{m=l}^{\mathrm{depth}-1} \dot\Sigma^{(m)} \ \text{(bias; } \Pi_{\mathrm{depth}} = 1\text{)}.

With He's ``σ² = 2`` the diagonal is preserved, ``Σ⁽ˡ⁾(x, x) = 2‖x‖²/D`` and
``Σ̇⁽ˡ⁾(x, x) = 1`` at every layer.  ``K > 1`` outputs: the output columns are
independent, so the limit is ``Θ_∞ ⊗ I_K`` (``kron(Θ_∞, I_K)`` in
:mod:`.ntk`'s row order ``i·K + k``; ``d_out=K`` of :func:`infinite_ntk`).

What converges to it
--------------------
A finite network's empirical Θ, each layer's weight share rescaled by its
own fan-in, ``Θ̃(H) = Σ_l ((σ²/H_{l−1}) Θ_W^{(l)} + Θ_b^{(l)})``, tends to
``Θ_∞`` at rate ``O(1/√H)``; minilplr's own (standard-parameterisation)
kernel grows like ``H``.  The derivation, the per-layer shares and the
rescaled kernel are in :mod:`minilplr.theory.ntk_shares`.

Imports the backend and :mod:`minilplr.validate` only; never the engine, the
training loops or the experiments.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module
from ..validate import check_int, check_positive, check_real_array, check_values

__all__ = [
    "input_kernel",
    "relu_nngp_step",
    "relu_derivative_step",
    "ntk_step",
    "infinite_ntk_shares",
    "infinite_ntk",
    "check_scaling",
    "SCALINGS",
    "HE_WEIGHT_VAR",
]

SCALINGS = ("ntk", "standard")
"""The two ways to compare a finite network's kernel with the limit: ``"ntk"`` (each layer's weight share
rescaled by its fan-in, tending to Θ_∞) and ``"standard"`` (minilplr's own kernel, growing like ``H``)."""
HE_WEIGHT_VAR = 2.0
"""He's ``σ²``: ``W ~ N(0, 2/fan_in)``."""


# --------------------------------------------------------------------------- inputs


def _check_X(X):
    check_real_array("X", X)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X: expected a 2-D array (N, D) with N, D >= 1, got shape {tuple(X.shape)}")
    # finite, and small enough that X Xᵀ (sums of D squares) does not overflow float64: one transfer
    check_values("X", X, np.float64, terms=X.shape[1])
    return X.astype(np.float64, copy=False)


def _check_sigma(name, S):
    if not hasattr(S, "ndim") or S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"{name}: expected a square (N, N) covariance matrix, got {getattr(S, 'shape', type(S).__name__)}")
    return S.astype(np.float64, copy=False)


def check_scaling(scaling) -> None:
    """``ValueError`` naming ``scaling`` unless it is one of :data:`SCALINGS` (here and in :mod:`.ntk_shares`)."""
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
    r"""``(√det, ϑ, zero)`` of a covariance matrix ``S (N, N)``, each ``(N, N)``: the pair geometry of R2 and R3.

    The plain expressions are ``cos ϑ = Σ_xx'/√(Σ_xx Σ_x'x')`` and
    ``ϑ = arccos(cos ϑ)``.  Written so, the diagonal loses half the digits:
    ``cos ϑ`` rounds to ``1 − ε`` and ``arccos`` turns that into
    ``ϑ ≈ √(2ε) ≈ 2·10⁻⁸`` (seen: ``Σ̇(x, x) = 1 − 7·10⁻⁹``).  Here instead
    ``ϑ = atan2(√det, Σ_xx')`` with ``det = Σ_xx Σ_x'x' − Σ_xx'²``
    ``= (Σ_xx Σ_x'x') sin²ϑ``, which is exactly 0 on the diagonal; R2 then
    needs no division (``√(Σ_xx Σ_x'x')·sin ϑ = √det``,
    ``√(Σ_xx Σ_x'x')·cos ϑ = Σ_xx'``).  ``zero`` marks pairs with a zero
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
                \big(\sin\vartheta + (\pi - \vartheta)\cos\vartheta\big) \tag{R2}

    ``Λ = [[Σ_xx, Σ_xx'], [Σ_xx', Σ_x'x']]`` from ``S = Σ⁽ˡ⁾``,
    ``cos ϑ = Σ_xx'/√(Σ_xx Σ_x'x')`` (the degree-1 arc-cosine kernel of
    Cho & Saul 2009).  ``z^{(l+1)} = φ(z^{(l)}) W + b``, ``W ~ N(0, σ²/H)``,
    ``b = 0`` at init, so the covariance is ``σ²`` times the mean of
    ``φ(u)φ(v)`` over the ``H`` units.
    """
    S = _check_sigma("S", S)
    weight_var = check_positive("weight_var", weight_var)
    root, theta, _ = _angle(S)  # √(Σ_xxΣ_x'x')·sin ϑ = root,  √(Σ_xxΣ_x'x')·cos ϑ = Σ_xx'
    return (weight_var / (2 * math.pi)) * (root + (math.pi - theta) * S)


def relu_derivative_step(S, weight_var: float = HE_WEIGHT_VAR):
    r"""R3: the covariance of the ReLU's derivative, ``(N, N)``.

    .. math:: \dot\Sigma^{(l)}(x,x') = \sigma^2\, \mathbb E_{(u,v)\sim N(0,\Lambda)}[\varphi'(u)\varphi'(v)]
              = \frac{\sigma^2}{2\pi}\,(\pi - \vartheta) \tag{R3}

    (``P(u > 0, v > 0) = (π − ϑ)/(2π)``, the degree-0 arc-cosine kernel).  It
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
    r"""Every layer's share of Θ_∞: ``(S, P)``, each ``(depth, N, N)`` float64.

    .. math:: S_l = \Sigma^{(l)} \odot \Pi_l, \qquad \Pi_l = \prod_{m=l}^{\mathrm{depth}-1}\dot\Sigma^{(m)},
              \qquad \Theta_\infty = \sum_{l=1}^{\mathrm{depth}} (S_l + \Pi_l)

    ``S[l-1]`` is the limit of layer ``l``'s weight share rescaled by
    ``σ²/H_{l−1}``, ``P[l-1]`` that of its bias share (module docstring).
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

    .. math:: \Theta_\infty = \Theta^{(\mathrm{depth})}, \qquad \Theta^{(1)} = \Sigma^{(1)} + 1, \qquad
              \Theta^{(l+1)} = \Theta^{(l)}\odot\dot\Sigma^{(l)} + \Sigma^{(l+1)} + 1

    (R1–R4 of the module docstring).

    Parameters
    ----------
    X : array (N, D), any backend (the result lives there too)
    depth : int, the number of dense layers (as :func:`minilplr.nn.models.mlp` counts them)
    weight_var : float, ``σ²`` of the weights times fan-in (He: 2)
    scaling : {"ntk", "standard"}
        ``"ntk"``: ``Θ_∞``, the limit of the layer-wise rescaled empirical kernel
        ``Θ̃(H)`` (:func:`minilplr.theory.ntk_shares.scaled_empirical_ntk`).  ``"standard"``: the leading
        part of minilplr's own (unscaled) kernel at width ``width``,
        ``Σ_l ((H_{l−1}/σ²) S_l + Π_l)``, which grows like ``H``.
    width : int, ``H``; required for ``"standard"``, unused for ``"ntk"``
    d_out : int, ``K``; the result is ``kron(Θ, I_K)`` (outputs independent)

    Returns
    -------
    theta : (N·K, N·K) float64; row ``i·K + k`` is sample ``i``, output ``k``
    """
    check_scaling(scaling)
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
