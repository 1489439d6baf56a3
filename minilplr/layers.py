"""Layers with hand-written forward and backward passes, backward beside forward.

Each layer is a small object with

* ``params`` / ``grads``: ordered ``name -> array`` mappings (empty for ReLU);
* ``forward(x) -> out``, which keeps in ``self`` what backward needs;
* ``backward(dout) -> dx``, which *overwrites* ``grads`` with ``∂L/∂θ`` for
  the upstream gradient ``dout = ∂L/∂out`` and returns ``∂L/∂x``.

Shape letters (see :mod:`minilplr`): ``N`` samples, ``D`` input features,
``H`` output features.  All arithmetic is written against ``xp``, the array
module of the data, so one code path runs on NumPy, CuPy and the strict
stand-in.
"""
from __future__ import annotations

from collections import OrderedDict

from .backend import get_array_module

__all__ = ["Layer", "Dense", "ReLU", "Sequential"]


class Layer:
    """Base class: a layer without parameters passes gradients through."""

    def __init__(self):
        self.params: "OrderedDict[str, object]" = OrderedDict()
        self.grads: "OrderedDict[str, object]" = OrderedDict()

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dout, need_dx: bool = True):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)


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

    The forward pass keeps ``x``: it is the ``A`` of the structured NTK rule in
    :mod:`minilplr.ntk` (a dense layer's Jacobian block is an outer product of
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
        z = x @ W
        z += b  # in place: no second (N, H) temporary
        return z

    def backward(self, dout, need_dx: bool = True):
        """``dout (N, H) -> dx (N, D)``; fills ``grads['W'] (D, H)``, ``grads['b'] (H,)``."""
        W = self.params["W"]
        self.grads["W"] = self.x.T @ dout  # ∂L/∂W = xᵀ δ
        self.grads["b"] = dout.sum(axis=0)  # ∂L/∂b = Σ_n δ_n
        return dout @ W.T if need_dx else None  # ∂L/∂x = δ Wᵀ


class ReLU(Layer):
    r"""Rectified linear unit ``out = max(x, 0)``, elementwise.

    Forward ``x (N, H) -> out (N, H)``; backward
    :math:`\partial L/\partial x = \partial L/\partial out \odot 1[x > 0]`
    (the sub-gradient at 0 is taken as 0, like PyTorch).
    """

    def __init__(self):
        super().__init__()
        self.mask = None

    def forward(self, x):
        xp = get_array_module(x)
        self.mask = x > 0
        return xp.maximum(x, 0)

    def backward(self, dout, need_dx: bool = True):
        return dout * self.mask  # ∂L/∂x = ∂L/∂out ⊙ 1[x > 0]


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
            raise AttributeError("assign parameters with minilplr.params.load_params")

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

    def forward(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def backward(self, dout, need_dx: bool = False):
        """Backpropagate ``dout = ∂L/∂out``; returns ``∂L/∂x`` only if ``need_dx``.

        The first layer's input gradient is skipped by default: for a network
        fed with data nobody needs ``∂L/∂X``, and for the paper's MLP it saves
        one ``(N, H) x (H, D)`` product per step.
        """
        layers = list(self.layers.values())
        for i in range(len(layers) - 1, -1, -1):
            dout = layers[i].backward(dout, need_dx=need_dx or i > 0)
        return dout
