r"""Each layer's share of a finite network's empirical NTK, and the rescaled kernel that tends to ``Θ_∞``.

The finite-width side of :mod:`minilplr.theory.infinite_ntk`: that module
computes the limit ``Θ_∞`` of the ReLU MLP by the arc-cosine recursion
(R1–R4, its shares ``S_l``, ``Π_l``, the weight variance ``σ²``); this one
splits the empirical Θ of a network :func:`minilplr.nn.models.mlp` builds
into its layers' weight and bias shares (:func:`empirical_ntk_shares`), and
rescales them so that they can be set beside the limit
(:func:`scaled_empirical_ntk`, :func:`combine_shares`).

What converges, and to what (derivation)
----------------------------------------
The empirical Θ (:func:`minilplr.theory.ntk.empirical_ntk`) is exactly a sum
of per-layer shares.  With ``g^{(l)} = ∂f/∂z^{(l)}`` (``K = 1``):

.. math:: \Theta = \sum_l \Theta_W^{(l)} + \Theta_b^{(l)}, \qquad
          \Theta_W^{(l)} = (a^{(l-1)}\!\cdot a'^{(l-1)})\,(g^{(l)}\!\cdot g'^{(l)}), \qquad
          \Theta_b^{(l)} = g^{(l)}\!\cdot g'^{(l)}.

As ``H → ∞`` (layer by layer, Jacot et al. Thm 1), with fluctuations of
relative size ``O(1/√H)``:

* ``(σ²/H_{l−1}) a^{(l−1)}·a'^{(l−1)} → Σ⁽ˡ⁾`` (a mean of ``H_{l−1}``
  i.i.d. terms ``σ² φ(z)φ(z')``; exact for ``l = 1``, where it is R1);
* ``g^{(l)}·g'^{(l)} → Π_l`` (``g^{(l)} = (g^{(l+1)} W^{(l+1)ᵀ}) ⊙ φ'(z^{(l)})``,
  a mean of ``H`` terms ``σ² φ'φ' · (g^{(l+1)}·g'^{(l+1)})``; exact (``= 1``)
  for ``l = depth``).

So ``Θ_W^{(l)} → (H_{l−1}/σ²) S_l`` and ``Θ_b^{(l)} → Π_l``, and minilplr's
kernel, in standard parameterisation, is

.. math:: \Theta_{SP}(H) = \frac{H}{\sigma^2}\sum_{l=2}^{\mathrm{depth}} S_l
          \;+\; \underbrace{\tfrac{D}{\sigma^2} S_1}_{\text{first layer: } (XX^\top)\odot \Pi_1}
          \;+\; \underbrace{\textstyle\sum_{l} \Pi_l}_{\text{biases}} \;+\; O_P(\sqrt H).

It **grows like H**.  What converges in SP is ``Θ_SP/H → (1/σ²) Σ_{l≥2} S_l``,
a kernel without the first layer's and the biases' shares: those are
``O(1/H)`` relative (the first layer's is ``O(D/H)``, not small on MNIST,
``D = 784``, at the widths one trains), and this SP limit is not Θ_∞.

The like-for-like comparison rescales each layer's weight share by its own
fan-in (:func:`scaled_empirical_ntk`, ``scaling="ntk"``):

.. math:: \tilde\Theta(H) = \sum_{l=1}^{\mathrm{depth}} \Big(\frac{\sigma^2}{H_{l-1}}\,\Theta_W^{(l)} + \Theta_b^{(l)}\Big)
          \;\xrightarrow[H\to\infty]{}\; \Theta_\infty,
          \qquad \frac{\lVert\tilde\Theta(H) - \Theta_\infty\rVert_F}{\lVert\Theta_\infty\rVert_F} = O_P(H^{-1/2}).

``Θ̃`` is exactly the empirical NTK of the *same function* written in NTK
parameterisation, ``W^{(l)} = (σ/√H_{l−1}) W̃^{(l)}``, ``W̃ ~ N(0, 1)``,
biases unchanged (``∂f/∂W̃ = (σ/√H_{l−1}) ∂f/∂W``), so it is the kernel the
theorems are about; every one of its shares is ``O(1)``, the first layer's
weight share is exact at every width, and a depth-1 (linear) model has
``Θ̃ = Θ_∞ = (σ²/D) XXᵀ + 1`` exactly.  The fluctuation is ``O(1/√H)``; the
mean of ``Θ̃`` differs from ``Θ_∞`` by ``O(1/H)`` more, so the measured log–log
slope of the error against ``H`` is about ``−1/2``
(``tests/theory/test_ntk_shares.py``).  The other scaling, ``"standard"``, keeps
minilplr's Θ as it is and compares it with its own leading part at width
``H``, ``Σ_l ((H_{l−1}/σ²) S_l + Π_l)`` (:func:`~minilplr.theory.infinite_ntk.infinite_ntk` with
``scaling="standard", width=H``); divided by ``H`` both tend to the SP limit
above.  Ratios such as the drift ``‖Θ_T − Θ_0‖/‖Θ_0‖`` do not change under a
global scale; ``λ_min`` scales with it.

Imports the backend, :mod:`minilplr.validate`, :func:`minilplr.nn.state.untouched`,
the layer protocol's entry points of :mod:`.ntk` (:func:`~.ntk.prepare_input`,
:func:`~.ntk.forward_outputs`, :func:`~.ntk.output_seed`) and :mod:`.infinite_ntk`'s
scalings; never the training loops or the experiments.
"""
from __future__ import annotations

from ..backend import get_array_module, resolve_dtype, to_scalar
from ..nn.state import untouched
from ..validate import check_positive
from .infinite_ntk import HE_WEIGHT_VAR, check_scaling
from .ntk import forward_outputs, output_seed, prepare_input

__all__ = ["empirical_ntk_shares", "scaled_empirical_ntk", "combine_shares", "model_weight_var", "relative_error"]


def model_weight_var(model, weight_var=None) -> float:
    """``σ²`` given, or read from the model's config (``he``: 2; ``enhanced_he``: 2·c(depth))."""
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
    fan_in : list of ``depth`` ints, ``H_{l−1}``
    weight, bias : arrays (depth, N·K, N·K), ``dtype``, layers first to last
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
        X = prepare_input(model, X)
        xp = get_array_module(X)
        out = forward_outputs(model, X)  # (N, K); every layer keeps its input
        n, K = out.shape
        douts = [output_seed(out, k) for k in range(K)]
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
    r"""The finite-width kernel to set beside :func:`~minilplr.theory.infinite_ntk.infinite_ntk` with the same ``scaling``.

    .. math:: \tilde\Theta(H) = \sum_{l=1}^{\mathrm{depth}}\Big(\frac{\sigma^2}{H_{l-1}}\Theta_W^{(l)} + \Theta_b^{(l)}\Big)
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
        (``he``: 2, ``enhanced_he``: ``2 c(depth)``)
    dtype : accumulation dtype (default float64)

    Returns
    -------
    theta : (N·K, N·K), ``dtype``, on the model's backend
    """
    check_scaling(scaling)
    fan_in, W, b = empirical_ntk_shares(model, X, dtype)
    return combine_shares(fan_in, W, b, scaling, None if scaling == "standard" else model_weight_var(model, weight_var))


def combine_shares(fan_in, weight, bias, scaling: str = "ntk", weight_var: float | None = HE_WEIGHT_VAR):
    r"""The kernel of :func:`scaled_empirical_ntk` from the shares of :func:`empirical_ntk_shares`.

    .. math:: \tilde\Theta = \sum_l \Big(\frac{\sigma^2}{H_{l-1}}\Theta_W^{(l)} + \Theta_b^{(l)}\Big)
              \quad(\texttt{"ntk"}), \qquad \Theta_{SP} = \sum_l \Theta_W^{(l)} + \Theta_b^{(l)}
              \quad(\texttt{"standard"}; \texttt{weight\_var} unused)

    For a caller that wants both scalings (or the shares) from one sweep.
    ``weight, bias``: ``(depth, N·K, N·K)``; ``fan_in``: ``depth`` ints.
    """
    check_scaling(scaling)
    if len(fan_in) != weight.shape[0] or weight.shape != bias.shape:
        raise ValueError(f"fan_in, weight, bias: expected L fan-ins and two (L, N·K, N·K) arrays, got "
                         f"{len(fan_in)}, {tuple(weight.shape)}, {tuple(bias.shape)}")
    if scaling == "standard":
        return weight.sum(axis=0) + bias.sum(axis=0)
    s2 = check_positive("weight_var", weight_var)
    return sum((s2 / fan_in[l]) * weight[l] + bias[l] for l in range(len(fan_in)))


def relative_error(A, B):
    r"""``‖A − B‖_F / ‖B‖_F`` as a Python float (``B`` the reference, e.g. Θ_∞); ``A``, ``B`` one shape, one backend."""
    xp = get_array_module(A, B)
    if A.shape != B.shape:
        raise ValueError(f"A, B: expected one shape, got {tuple(A.shape)} and {tuple(B.shape)}")
    return to_scalar(xp.linalg.norm(A - B)) / to_scalar(xp.linalg.norm(B))
