r"""Layers with hand-written forward and backward passes, backward beside forward; the layer protocol.

Shape letters (see :mod:`minilplr`): ``N`` samples, ``K`` outputs of the
network, ``D`` input features, ``H`` output features, ``P`` parameters.  All
arithmetic is written against ``xp``, the array module of the data, so one
code path runs on NumPy, CuPy and the strict stand-in.

The layer protocol (what a new layer type implements)
-----------------------------------------------------
Every layer of :mod:`minilplr.nn` (:class:`Dense`, :class:`ReLU` and
:class:`Sequential` here; :class:`~minilplr.nn.conv.Conv2D`,
:class:`~minilplr.nn.batchnorm.BatchNorm2D`,
:class:`~minilplr.nn.batchnorm.BatchNorm1D`,
:class:`~minilplr.nn.residual.ResidualBlock`,
:class:`~minilplr.nn.residual.DenseResidualBlock`,
:class:`~minilplr.nn.residual.GlobalAvgPool`,
:class:`~minilplr.nn.residual.Flatten`) is a small object with:

``params`` / ``grads``
    Ordered ``name -> array`` mappings with the same keys (empty for a layer
    without parameters).  The order is the flat order of ``θ``
    (:mod:`minilplr.nn.params`): the Jacobian's columns.
``buffers`` (optional)
    State that is not a parameter (batch norm's running statistics): no
    gradient, not touched by an optimiser, saved in checkpoints and restored
    by :mod:`minilplr.nn.state`.
``forward(x) -> out``
    Keeps in ``self`` what the backward passes need (a dense layer its
    input ``x``, a convolution its patch matrix, a ReLU its mask).
``backward(dout, need_dx=True) -> dx``
    For the upstream gradient ``dout = ∂L/∂out``, *overwrites* ``grads``
    with ``∂L/∂θ`` and returns ``∂L/∂x`` (``None`` when ``need_dx`` is
    false: see :class:`Layer`).
``train(mode=True)`` / ``eval()``
    Only layers whose forward pass differs between the two modes read it
    (batch norm).

For the Jacobian ``J`` and the empirical NTK ``Θ = J Jᵀ``
(:mod:`minilplr.theory.ntk`) a layer also offers two methods, both called
after ``forward`` and both leaving ``grads`` untouched.  A *seed* ``dout``
has the shape of the layer's output, one row per sample; the seed of output
``k`` at the network's output is the ``(N, K)`` array with ones in column ``k``.

``per_sample_backward(dout, need_dx=True) -> (dx, psg)``
    ``dx``: as ``backward`` (``None`` if not ``need_dx``).  ``psg``: an
    ``OrderedDict`` with the keys of ``params``, in the same order, each
    array of shape ``(N, *param.shape)``: entry ``n`` is the gradient of
    sample ``n``'s seeded output ``⟨dout_n, out_n⟩`` with respect to the
    parameter, **not summed over samples** (summing over ``n`` gives what
    ``backward`` writes into ``grads``).  Computed batched over samples (no
    Python loop over ``n``).  For a dense layer ``x_n ⊗ δ_n``; for a
    convolution the dense rule on the sample's patches summed over
    positions; for batch norm in evaluation mode ``Σ_pixels dout·x̂`` and
    ``Σ_pixels dout`` per sample.
``ntk_backward(douts, theta, need_dx=True) -> dxs`` (the layer's share of Θ)
    ``douts``: a list of ``K`` seeds (one per network output).  Adds this
    layer's block into the accumulator ``theta`` of shape ``(N, K, N, K)``:
    ``theta[i, k, j, k'] += Σ_{θ ∈ layer} ∂f_k(x_i)/∂θ · ∂f_k'(x_j)/∂θ``;
    returns the list of ``K`` seeds at the layer's input (``None`` if not
    ``need_dx``).  Arithmetic in ``theta.dtype``.  The ``(k, k')`` blocks
    are added by :func:`add_symmetric_blocks`, each pair once.

Defaults, in :class:`Layer`: a layer without parameters passes seeds
through its ``backward`` (nothing to add); a layer with parameters must
write ``per_sample_backward``, and then inherits a generic ``ntk_backward``
that forms ``F_k = psg`` flattened ``(N, P_layer)`` and adds ``F_k F_k'ᵀ``;
it may override that with a structured rule (as :class:`Dense` does:
``(A Aᵀ + 1) ⊙ (G_k G_k'ᵀ)``).  :class:`Sequential` composes both methods
like ``backward``; a container that is not a chain
(:class:`~minilplr.nn.residual.ResidualBlock`,
:class:`~minilplr.nn.residual.DenseResidualBlock`) overrides both, sending the
seeds down every branch and adding the branches' ``dx`` (the block's
``psg`` keys in its ``params`` order).  The per-sample view needs samples
that do not interact in the forward pass: batch norm in *training* mode
mixes the batch and must refuse.
"""
from __future__ import annotations

from collections import OrderedDict

from ..backend import get_array_module

__all__ = ["Layer", "Dense", "ReLU", "Sequential", "add_symmetric_blocks", "check_dout"]


def add_symmetric_blocks(theta, block, I=slice(None), J=None) -> None:
    r"""``theta[I, k, J, k'] += block(k, k')`` for every pair of outputs, each pair computed once where Θ's symmetry allows.

    ``theta (N, K, N, K)`` is the NTK accumulator of the layer protocol;
    ``block(k, k2)`` returns the ``(|I|, |J|)`` block
    :math:`\sum_\theta \partial f_k(x_i)/\partial\theta \cdot \partial f_{k_2}(x_j)/\partial\theta`
    of a layer's share for samples ``i ∈ I``, ``j ∈ J`` (slices).  Θ is
    symmetric, so on a diagonal tile (``J`` omitted: ``J = I``, the whole of
    Θ by default) the block of ``(k2, k)`` is the transpose of the block of
    ``(k, k2)``: only ``k ≤ k2`` are computed, and each transpose is added
    too.  Off the diagonal (``J`` given) every pair is computed.
    """
    K = theta.shape[1]
    diag = J is None
    J = I if diag else J
    for k in range(K):
        for k2 in range(k if diag else 0, K):
            blk = block(k, k2)
            theta[I, k, J, k2] += blk
            if diag and k2 != k:
                theta[I, k2, I, k] += blk.T  # the (k2, k) block: Θ is symmetric


def check_dout(layer, dout, shape) -> None:
    """A backward pass's entry check: ``layer`` ran forward (``shape`` is its output's, ``None`` if not), ``dout`` fits.

    Shapes only, no pass over the values.  ``RuntimeError`` for a backward
    before any forward (nothing kept to differentiate), ``ValueError`` naming
    ``dout`` for a gradient of another shape than the forward's output.
    """
    name = type(layer).__name__
    if shape is None:
        raise RuntimeError(f"{name}.backward: called before forward; run forward(x) first (backward needs what "
                           "the forward pass keeps)")
    if not hasattr(dout, "shape") or tuple(dout.shape) != tuple(shape):
        got = tuple(dout.shape) if hasattr(dout, "shape") else type(dout).__name__
        raise ValueError(f"dout: expected shape {tuple(shape)}, the shape of {name}'s last forward output, got {got}")


class Layer:
    """Base class: a layer without parameters passes gradients through.

    ``need_dx``, the last argument of ``backward``, ``per_sample_backward``
    and ``ntk_backward``, defaults to ``True`` for every layer and container:
    a call that names nothing gets ``∂L/∂x``, which is right for every caller.
    Skipping it is an optimisation the caller asks for: a training step on
    data, which nobody differentiates, calls ``model.backward(dout,
    need_dx=False)`` and saves the first layer's ``δ Wᵀ`` product; a container
    passes ``need_dx or i > 0`` to its layer ``i``, since every layer but the
    first feeds its input gradient to the layer before it.
    """

    def __init__(self):
        self.params: "OrderedDict[str, object]" = OrderedDict()
        self.grads: "OrderedDict[str, object]" = OrderedDict()

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dout, need_dx: bool = True):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    #: Training mode (True) or evaluation mode (False).  Only layers whose
    #: forward pass differs between the two read it (batch norm, in
    #: :mod:`minilplr.nn.batchnorm`); for the others ``train()`` / ``eval()`` are no-ops.
    training = True

    def train(self, mode: bool = True):
        """Switch to training mode (``mode=True``) or evaluation mode; returns ``self``."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Switch to evaluation mode (batch norm uses its running statistics); returns ``self``."""
        return self.train(False)

    # -- the Jacobian / NTK rules of the layer protocol (module docstring) ---------
    def per_sample_backward(self, dout, need_dx: bool = True):
        """``dout (N, *out) -> (dx (N, *in) or None, {name: (N, *param.shape)})``.

        The per-sample gradients: row ``n`` of each array is the gradient of
        sample ``n``'s seeded output, ``∂⟨dout_n, out_n⟩/∂θ``, not summed over
        ``n``; ``grads`` is left untouched.  A layer without parameters only
        passes ``dout`` through ``backward``; a layer with parameters must
        override this (the layer protocol: this module's docstring).
        """
        if self.params:
            raise NotImplementedError(
                f"{type(self).__name__} has parameters {list(self.params)} but no "
                "per_sample_backward: implement it to use the Jacobian / NTK "
                "(the layer protocol: minilplr.nn.layers module docstring)"
            )
        return (self.backward(dout, need_dx=True) if need_dx else None), OrderedDict()

    def ntk_backward(self, douts, theta, need_dx: bool = True):
        r"""Add this layer's block of ``Θ`` into ``theta``; return the seeds at its input.

        Parameters
        ----------
        douts : list of K arrays (N, *out)
            ``douts[k]`` is the sensitivity ``∂f_k/∂out`` of output ``k`` of the
            network to this layer's output, for every sample.
        theta : array (N, K, N, K)
            The accumulator; ``theta[i, k, j, k']`` receives
            :math:`\sum_{\theta\in\text{layer}} \partial f_k(x_i)/\partial\theta \cdot \partial f_{k'}(x_j)/\partial\theta`.
        need_dx : bool

        Returns
        -------
        list of K arrays (N, *in), or None when ``need_dx`` is false

        This generic rule forms each output's per-sample gradients
        ``F_k (N, P_layer)`` with :meth:`per_sample_backward` and adds
        ``F_k F_k'ᵀ``; layers with a cheaper structured rule (``Dense``)
        override it.
        """
        dxs, feats = [], []
        for d in douts:
            dx, g = self.per_sample_backward(d, need_dx=need_dx)
            dxs.append(dx)
            if g:
                n = d.shape[0]
                xp = get_array_module(d)
                feats.append(xp.concatenate([a.reshape(n, -1) for a in g.values()], axis=1).astype(theta.dtype, copy=False))
        if feats:
            add_symmetric_blocks(theta, lambda k, k2: feats[k] @ feats[k2].T)  # F_k F_k'ᵀ
        return dxs if need_dx else None


class Dense(Layer):
    r"""Affine layer ``out = x W + b``.

    Parameters
    ----------
    W : array (D, H)
        Weights, stored ``(fan_in, fan_out)`` so the forward pass is ``x @ W``.
    b : array (H,)
        Bias.

    Forward
        ``x (N, D) -> out (N, H)``: :math:`z = xW + b`.
    Backward (chain rule, :math:`\delta = \partial L/\partial z`, shape ``(N, H)``)
        :math:`\partial L/\partial W = x^\top \delta` ``(D, H)``,
        :math:`\partial L/\partial b = \sum_n \delta_n` ``(H,)``,
        :math:`\partial L/\partial x = \delta W^\top` ``(N, D)``.

    The forward pass keeps ``x``: it is the ``A`` of the structured NTK rule,
    :meth:`ntk_backward` (a dense layer's Jacobian block is an outer product of
    its input and the sensitivity at its output).
    """

    def __init__(self, W, b):
        super().__init__()
        if W.ndim != 2:
            raise ValueError(f"W: expected a 2-D (fan_in, fan_out) array, got shape {W.shape}")
        if b.shape != (W.shape[1],):
            raise ValueError(f"b: expected shape ({W.shape[1]},) to match W {W.shape}, got {b.shape}")
        self.params["W"] = W
        self.params["b"] = b
        self.grads["W"] = None
        self.grads["b"] = None
        self.x = None

    @property
    def fan_in(self) -> int:
        return self.params["W"].shape[0]

    @property
    def fan_out(self) -> int:
        return self.params["W"].shape[1]

    def forward(self, x):
        """``x (N, D) -> x @ W + b (N, H)``."""
        W, b = self.params["W"], self.params["b"]
        if x.ndim != 2 or x.shape[1] != W.shape[0]:
            raise ValueError(
                f"x: expected shape (N, {W.shape[0]}) for a Dense layer with fan_in "
                f"{W.shape[0]}, got {tuple(x.shape)}"
            )
        self.x = x
        z = x @ W  # x W  (N, H)
        z += b  # z = x W + b (added into the fresh product: no second (N, H) array)
        return z

    def backward(self, dout, need_dx: bool = True):
        """``dout (N, H) -> dx (N, D)``; fills ``grads['W'] (D, H)``, ``grads['b'] (H,)``."""
        W = self.params["W"]
        check_dout(self, dout, None if self.x is None else (self.x.shape[0], W.shape[1]))
        self.grads["W"] = self.x.T @ dout  # ∂L/∂W = xᵀ δ
        self.grads["b"] = dout.sum(axis=0)  # ∂L/∂b = Σ_n δ_n
        return dout @ W.T if need_dx else None  # ∂L/∂x = δ Wᵀ

    def per_sample_backward(self, dout, need_dx: bool = True):
        """``dout (N, H) -> (dx (N, D), {'W': (N, D, H), 'b': (N, H)})``: ``backward`` without the sum over samples.

        Sample ``n``'s gradient is one outer product, ``∂/∂W = x_nᵀ δ_n``,
        and ``∂/∂b = δ_n``; summing over ``n`` gives ``grads`` of :meth:`backward`.
        """
        gW = self.x[:, :, None] * dout[:, None, :]  # ∂/∂W for sample n: x_n ⊗ δ_n
        gb = dout.copy()  # ∂/∂b for sample n: δ_n
        dx = dout @ self.params["W"].T if need_dx else None  # ∂/∂x = δ Wᵀ
        return dx, OrderedDict(W=gW, b=gb)

    def ntk_backward(self, douts, theta, need_dx: bool = True):
        r"""The structured NTK rule of a dense layer: add ``(A Aᵀ + 1) ⊙ (G_k G_k'ᵀ)``.

        With ``A = x (N, D)`` the layer's input and ``G_k = douts[k] (N, H)``
        the sensitivities of output ``k`` at its output, sample ``i``'s
        Jacobian block is the outer product ``a_i g_{ik}ᵀ`` (and ``g_{ik}``
        for the bias), so

        .. math:: \langle \partial f_k(x_i)/\partial(W, b),\ \partial f_{k'}(x_j)/\partial(W, b)\rangle
                  = (a_i \cdot a_j + 1)\,(g_{ik} \cdot g_{jk'}),

        two ``N × N`` Gram matrices instead of the ``N × (D+1)H`` Jacobian
        block.  ``theta (N, K, N, K)`` is added to in its own dtype (``A`` and
        ``G`` are cast to it); returns ``[G_k Wᵀ] (N, D)`` if ``need_dx``.
        ``theta=None`` adds nothing and only returns the seeds (for a caller
        that adds the share itself, in tiles: :mod:`minilplr.theory.ntk`).
        """
        if theta is not None:
            A = self.x.astype(theta.dtype, copy=False)
            AA1 = A @ A.T  # a_i · a_j  (N, N)
            AA1 += 1  # + 1: the bias's share (in place, as below: N × N arrays are Θ's size)
            Gs = [d.astype(theta.dtype, copy=False) for d in douts]

            def block(k, k2):
                GG = Gs[k] @ Gs[k2].T  # g_ik · g_jk'  (N, N)
                GG *= AA1  # (A Aᵀ + 1) ⊙ (G_k G_k'ᵀ)
                return GG

            add_symmetric_blocks(theta, block)
        if not need_dx:
            return None
        W = self.params["W"]
        return [d @ W.T for d in douts]  # ∂f_k/∂x = G_k Wᵀ


class ReLU(Layer):
    r"""Rectified linear unit ``out = max(x, 0)``, elementwise.

    Forward ``x -> out`` of the same shape: ``(N, H)`` after a dense layer,
    ``(N, C, H, W)`` images in the ResNet (there ``H`` the image height); backward
    :math:`\partial L/\partial x = \partial L/\partial out \odot 1[x > 0]`
    (the sub-gradient at 0 is taken as 0, like PyTorch).
    """

    def __init__(self):
        super().__init__()
        self.mask = None
        self.frozen = False

    def forward(self, x):
        if self.frozen and self.mask is not None and self.mask.shape == x.shape:
            # frozen (see minilplr.nn.state.frozen_activations): the linear piece of the last forward pass
            return x * self.mask
        xp = get_array_module(x)
        self.mask = x > 0
        return xp.maximum(x, 0)

    def backward(self, dout, need_dx: bool = True):
        check_dout(self, dout, None if self.mask is None else self.mask.shape)
        return dout * self.mask if need_dx else None  # ∂L/∂x = ∂L/∂out ⊙ 1[x > 0]


class Sequential(Layer):
    """Layers applied in order; parameters named ``"<layer>.<param>"``.

    ``forward`` runs the layers first to last, ``backward`` last to first: the
    chain rule ``∂L/∂x_l = (∂x_{l+1}/∂x_l)ᵀ ∂L/∂x_{l+1}``, one layer at a time.

    Parameters
    ----------
    layers : list of (name, Layer)
        The names prefix the parameter names, e.g. ``"fc1.W"``.
    """

    def __init__(self, layers):
        super().__init__()
        self.layers = OrderedDict()
        for name, layer in layers:
            if name in self.layers:
                raise ValueError(f"layers: duplicate layer name {name!r}")
            self.layers[name] = layer

    @property
    def params(self):
        """``OrderedDict`` ``"layer.param" -> array``, in forward order (the flat order)."""
        return OrderedDict(
            (f"{ln}.{pn}", p) for ln, layer in self.layers.items() for pn, p in layer.params.items()
        )

    @params.setter
    def params(self, value):  # Layer.__init__ assigns an empty dict; ignore it
        if value:
            raise AttributeError("assign parameters with minilplr.nn.params.load_params")

    @property
    def grads(self):
        """``OrderedDict`` with the keys and shapes of :attr:`params` (after backward)."""
        return OrderedDict(
            (f"{ln}.{gn}", g) for ln, layer in self.layers.items() for gn, g in layer.grads.items()
        )

    @grads.setter
    def grads(self, value):
        if value:
            raise AttributeError("grads are written by backward")

    def train(self, mode: bool = True):
        """Set training (``True``) or evaluation mode on this layer and every sub-layer."""
        self.training = bool(mode)
        for layer in self.layers.values():
            layer.train(mode)
        return self

    def forward(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        self.out_shape = tuple(x.shape)  # what backward's dout must be
        return x

    def backward(self, dout, need_dx: bool = True):
        """Backpropagate ``dout = ∂L/∂out``; returns ``∂L/∂x``, or ``None`` if not ``need_dx``.

        With ``need_dx=False`` the first layer's input gradient is skipped: for
        a network fed with data nobody needs ``∂L/∂X``, and for the paper's
        MLP it saves one ``(N, H) x (H, D)`` product per step.
        """
        check_dout(self, dout, getattr(self, "out_shape", None))
        layers = list(self.layers.values())
        for i in range(len(layers) - 1, -1, -1):
            dout = layers[i].backward(dout, need_dx=need_dx or i > 0)
        return dout

    def _check_chain(self, method: str):
        """The chain composition below is right only for a chain; a subclass with its own graph must override."""
        if type(self).backward is not Sequential.backward and getattr(type(self), method) is getattr(Sequential, method):
            raise NotImplementedError(
                f"{type(self).__name__} overrides backward (it is not a plain chain) but not {method}: "
                "implement it for its own graph (the layer protocol: minilplr.nn.layers module docstring)"
            )

    def per_sample_backward(self, dout, need_dx: bool = True):
        """Per-sample gradients of every layer, keys and order of :attr:`params`, each ``(N, *shape)``.

        The chain rule of :meth:`backward`, last layer to first, with each
        layer's :meth:`Layer.per_sample_backward` in place of its ``backward``.
        """
        self._check_chain("per_sample_backward")
        items = list(self.layers.items())
        collected = []
        for i in range(len(items) - 1, -1, -1):
            name, layer = items[i]
            dout, g = layer.per_sample_backward(dout, need_dx=need_dx or i > 0)
            collected.append((name, g))
        psg = OrderedDict()
        for name, g in reversed(collected):  # forward order, as params
            for pn, a in g.items():
                psg[f"{name}.{pn}"] = a
        return dout, psg

    def ntk_backward(self, douts, theta, need_dx: bool = True):
        """Every layer adds its block of ``Θ`` into ``theta (N, K, N, K)``, last layer to first.

        ``douts``: list of ``K`` seeds at the output; the seeds each layer
        returns are the next one's (the chain rule of :meth:`backward`).
        """
        self._check_chain("ntk_backward")
        layers = list(self.layers.values())
        for i in range(len(layers) - 1, -1, -1):
            douts = layers[i].ntk_backward(douts, theta, need_dx=need_dx or i > 0)
        return douts
