r"""Residual blocks, and the layers that turn images into features: global average pooling, flatten.

:class:`ResidualBlock` is the basic block of He et al. (2016): two
convolutions with batch norm on the main branch, an identity or projection
shortcut, and their sum through a ReLU.  :class:`DenseResidualBlock` is its
MLP counterpart, ``x + W₂ φ(W₁ x + b₁) + b₂`` (optionally with batch norm
after each dense layer), which :func:`minilplr.nn.models.mlp` stacks when
``residual=True``.  :class:`GlobalAvgPool` and
:class:`Flatten` end a convolutional network, turning ``(N, C, H, W)`` images
into ``(N, D)`` features for a dense head.  All follow the protocol of
:mod:`minilplr.nn.layers`.

Shapes
------
Images are ``(N, C, H, W)``: ``N`` samples, ``C`` channels, height ``H`` and
width ``W`` (the image's, not the hidden width of :mod:`minilplr`); a block
maps ``C_in`` channels to ``C_out`` and ``H × W`` pixels to ``H_o × W_o``
(halved by a stride of 2).
"""
from __future__ import annotations

from collections import OrderedDict

from ..backend import get_array_module
from ..validate import check_image
from .layers import Layer, ReLU, Sequential

__all__ = ["ResidualBlock", "DenseResidualBlock", "GlobalAvgPool", "Flatten"]


# --------------------------------------------------------------------------- residual block


class ResidualBlock(Sequential):
    r"""The basic residual block of He et al. (2016), with an identity or a projection shortcut.

    .. math:: \text{out} = \mathrm{ReLU}\big(F(x) + S(x)\big),\qquad
              F = \mathrm{BN}_2 \circ \mathrm{conv}_2 \circ \mathrm{ReLU} \circ \mathrm{BN}_1 \circ \mathrm{conv}_1

    ``conv1`` is ``3×3`` with stride ``s`` (``s = 2`` halves the image),
    ``conv2`` is ``3×3`` with stride 1, both padded by 1 and without bias.
    The shortcut ``S`` is the identity when the shape is kept (``s = 1``,
    ``C_in = C_out``), else a projection: a ``1×1`` convolution with stride
    ``s`` followed by batch norm.

    Backward: with :math:`\delta = \partial L/\partial(F + S) = \partial L/\partial\text{out} \odot 1[F+S > 0]`,
    both branches receive ``δ`` and the input's gradient is their sum (the
    input feeds both):

    .. math:: \frac{\partial L}{\partial x} = \Big(\frac{\partial F}{\partial x}\Big)^{\!\top}\delta
              + \Big(\frac{\partial S}{\partial x}\Big)^{\!\top}\delta, \qquad
              \Big(\frac{\partial S}{\partial x}\Big)^{\!\top}\delta = \delta \text{ for the identity.}

    This subclasses :class:`~minilplr.nn.layers.Sequential` for its parameter
    bookkeeping only (names ``"conv1.W"``, ``"bn1.gamma"``, …,
    ``"shortcut.conv.W"``, ``"shortcut.bn.beta"``, and train/eval switching);
    ``forward`` and ``backward`` are the two-branch graph above, not a chain.

    Parameters
    ----------
    conv1, bn1, conv2, bn2 : Conv2D, BatchNorm2D, Conv2D, BatchNorm2D
        The main branch ``F``.
    shortcut : (Conv2D, BatchNorm2D) or None
        The projection, or ``None`` for the identity.

    Shapes: ``x (N, C_in, H, W) -> out (N, C_out, H_o, W_o)``.
    """

    def __init__(self, conv1, bn1, conv2, bn2, shortcut=None):
        main = [("conv1", conv1), ("bn1", bn1), ("relu1", ReLU()), ("conv2", conv2), ("bn2", bn2)]
        sc = [] if shortcut is None else [("shortcut.conv", shortcut[0]), ("shortcut.bn", shortcut[1])]
        super().__init__(main + sc + [("relu_out", ReLU())])
        if conv2.c_in != conv1.c_out or conv2.c_out != bn2.channels or bn1.channels != conv1.c_out:
            raise ValueError(
                f"conv1, bn1, conv2, bn2: expected matching channels, got {conv1!r}, {bn1!r}, {conv2!r}, {bn2!r}"
            )
        if shortcut is None and (conv1.stride != 1 or conv1.c_in != conv2.c_out):
            raise ValueError(
                f"shortcut: an identity shortcut needs stride 1 and C_in = C_out, got stride "
                f"{conv1.stride}, {conv1.c_in} -> {conv2.c_out}; pass a projection (Conv2D, BatchNorm2D)"
            )
        if shortcut is not None and (shortcut[0].c_in != conv1.c_in or shortcut[0].c_out != conv2.c_out
                                     or shortcut[0].stride != conv1.stride):
            raise ValueError(
                f"shortcut: expected a projection {conv1.c_in} -> {conv2.c_out} with stride "
                f"{conv1.stride}, got {shortcut[0]!r}"
            )
        self.main = [self.layers[k] for k in ("conv1", "bn1", "relu1", "conv2", "bn2")]
        self.shortcut = None if shortcut is None else [self.layers["shortcut.conv"], self.layers["shortcut.bn"]]
        self.relu_out = self.layers["relu_out"]

    @property
    def projection(self) -> bool:
        return self.shortcut is not None

    def forward(self, x):
        """``x (N, C_in, H, W) -> ReLU(F(x) + S(x)) (N, C_out, H_o, W_o)``."""
        f = x
        for layer in self.main:
            f = layer.forward(f)  # F(x)
        s = x
        for layer in self.shortcut or ():
            s = layer.forward(s)  # S(x)
        f += s  # F(x) + S(x), in place: f is batch norm's fresh output (it keeps x̂, not y)
        return self.relu_out.forward(f)

    def backward(self, dout, need_dx: bool = True):
        """``dout (N, C_out, H_o, W_o) -> dx (N, C_in, H, W)``; fills the grads of both branches."""
        delta = self.relu_out.backward(dout)  # δ = ∂L/∂(F + S)
        d_main = delta
        for i in range(len(self.main) - 1, -1, -1):
            d_main = self.main[i].backward(d_main, need_dx=need_dx or i > 0)  # (∂F/∂x)ᵀ δ
        if self.shortcut is None:
            d_short = delta  # identity: (∂S/∂x)ᵀ δ = δ
        else:
            d_short = self.shortcut[1].backward(delta)
            d_short = self.shortcut[0].backward(d_short, need_dx=need_dx)  # (∂S/∂x)ᵀ δ
        if not need_dx:
            return None
        d_main += d_short  # the input feeds both branches: gradients add
        return d_main

    # -- the Jacobian / NTK rules of the layer protocol (minilplr.nn.layers): the same two-branch graph
    def per_sample_backward(self, dout, need_dx: bool = True):
        """Per-sample gradients of both branches, keys and order of :attr:`params`; ``dx`` as :meth:`backward`."""
        delta = self.relu_out.backward(dout)  # δ = ∂/∂(F + S)
        got = OrderedDict()
        d_main = delta
        for i in range(len(self.main) - 1, -1, -1):
            d_main, got[self._name(self.main[i])] = self.main[i].per_sample_backward(
                d_main, need_dx=need_dx or i > 0)
        d_short = delta
        for i in range(len(self.shortcut or ()) - 1, -1, -1):
            d_short, got[self._name(self.shortcut[i])] = self.shortcut[i].per_sample_backward(
                d_short, need_dx=need_dx or i > 0)
        psg = OrderedDict()
        for name in self.layers:  # params order
            for pn, a in got.get(name, {}).items():
                psg[f"{name}.{pn}"] = a
        return (d_main + d_short if need_dx else None), psg

    def ntk_backward(self, douts, theta, need_dx: bool = True):
        """Each branch's layers add their blocks of ``Θ``; the seeds at the input are the branches' sum."""
        deltas = [self.relu_out.backward(d) for d in douts]  # δ_k = ∂f_k/∂(F + S)
        d_main = deltas
        for i in range(len(self.main) - 1, -1, -1):
            d_main = self.main[i].ntk_backward(d_main, theta, need_dx=need_dx or i > 0)
        d_short = deltas
        for i in range(len(self.shortcut or ()) - 1, -1, -1):
            d_short = self.shortcut[i].ntk_backward(d_short, theta, need_dx=need_dx or i > 0)
        if not need_dx:
            return None
        return [a + b for a, b in zip(d_main, d_short)]

    def _name(self, layer):
        return next(n for n, l in self.layers.items() if l is layer)

    def __repr__(self):
        c1, c2 = self.layers["conv1"], self.layers["conv2"]
        return (f"ResidualBlock({c1.c_in}->{c2.c_out}, stride={c1.stride}, "
                f"shortcut={'projection' if self.projection else 'identity'})")


# --------------------------------------------------------------------------- residual dense block


class DenseResidualBlock(Sequential):
    r"""The residual block of an MLP: the input plus a two-layer branch, widths equal.

    .. math:: \text{out} = x + F(x),\qquad F(x) = W_2^\top \varphi(W_1^\top x + b_1) + b_2

    (in the row convention of :class:`~minilplr.nn.layers.Dense`,
    ``F(x) = φ(x W₁ + b₁) W₂ + b₂``, ``φ`` = ReLU).  With batch norm, each
    dense layer is followed by a :class:`~minilplr.nn.batchnorm.BatchNorm1D`:
    ``F(x) = BN₂(φ(BN₁(x W₁ + b₁)) W₂ + b₂)``.  There is no activation after
    the sum: the block's output feeds the next block (or the output layer) as is.

    Backward: with :math:`\delta = \partial L/\partial\text{out}`, the branch
    receives ``δ`` and the skip passes it unchanged, so

    .. math:: \frac{\partial L}{\partial x} = \delta + \Big(\frac{\partial F}{\partial x}\Big)^{\!\top}\delta .

    The same holds for a per-sample seed and for each output's seed of the NTK
    sweep: the branch's layers add their shares of ``Θ`` (the skip has no
    parameters) and the seeds at the input are ``δ_k + (∂F/∂x)ᵀ δ_k``.

    This subclasses :class:`~minilplr.nn.layers.Sequential` for the branch:
    parameter names ``"fc1.W"``, ``"fc1.b"``, (``"bn1.gamma"``, ...),
    ``"fc2.W"``, ``"fc2.b"``, train/eval switching, and the chain rule of the
    branch (``Sequential``'s methods, called explicitly); ``forward`` and the
    three backward passes add the skip.

    Parameters
    ----------
    fc1, fc2 : Dense (H, H)
        ``W₁, b₁`` and ``W₂, b₂``.
    bn1, bn2 : BatchNorm1D or None
        Batch norm after ``fc1`` (before the ReLU) and after ``fc2``.

    Shapes: ``x (N, H) -> out (N, H)``.
    """

    def __init__(self, fc1, fc2, bn1=None, bn2=None):
        for name, fc in (("fc1", fc1), ("fc2", fc2)):
            if fc.fan_in != fc.fan_out or fc.fan_in != fc1.fan_in:
                raise ValueError(f"{name}: a residual block needs square dense layers of one width "
                                 f"{fc1.fan_in} -> {fc1.fan_in}, got {fc.fan_in} -> {fc.fan_out}")
        branch = [("fc1", fc1)] + ([("bn1", bn1)] if bn1 is not None else []) + [("relu", ReLU()), ("fc2", fc2)]
        branch += [("bn2", bn2)] if bn2 is not None else []
        super().__init__(branch)

    width = property(lambda self: self.layers["fc1"].fan_in)

    def forward(self, x):
        """``x (N, H) -> x + F(x) (N, H)``."""
        f = super().forward(x)  # F(x), the branch: a fresh array
        f += x  # x + F(x)
        return f

    def backward(self, dout, need_dx: bool = True):
        """``dout (N, H) -> dx (N, H)``; fills the grads of the branch."""
        d_branch = super().backward(dout, need_dx=need_dx)  # (∂F/∂x)ᵀ δ
        if not need_dx:
            return None
        return d_branch + dout  # ∂L/∂x = δ + (∂F/∂x)ᵀ δ: the skip passes δ

    def per_sample_backward(self, dout, need_dx: bool = True):
        """Per-sample gradients of the branch (keys and order of :attr:`params`); ``dx`` as :meth:`backward`."""
        d_branch, psg = Sequential.per_sample_backward(self, dout, need_dx=need_dx)  # the branch's chain rule
        return (d_branch + dout if need_dx else None), psg  # δ + (∂F/∂x)ᵀ δ

    def ntk_backward(self, douts, theta, need_dx: bool = True):
        """The branch's layers add their blocks of ``Θ``; the seeds at the input are ``δ_k + (∂F/∂x)ᵀ δ_k``."""
        d_branch = Sequential.ntk_backward(self, douts, theta, need_dx=need_dx)
        if not need_dx:
            return None
        return [a + d for a, d in zip(d_branch, douts)]

    def __repr__(self):
        return f"DenseResidualBlock({self.width}, batchnorm={'bn1' in self.layers})"


# --------------------------------------------------------------------------- pooling and reshaping


class GlobalAvgPool(Layer):
    r"""Mean over the spatial axes: ``x (N, C, H, W) -> out (N, C)``.

    .. math:: \text{out}[n, c] = \frac{1}{HW}\sum_{i,j} x[n, c, i, j], \qquad
              \frac{\partial L}{\partial x[n,c,i,j]} = \frac{1}{HW}\frac{\partial L}{\partial\,\text{out}[n,c]}

    The backward pass returns a broadcast (read-only) view: every pixel of a
    channel receives the same share.
    """

    def __init__(self):
        super().__init__()
        self.x_shape = None

    def forward(self, x):
        check_image("x", x)
        self.x_shape = tuple(x.shape)
        return x.mean(axis=(2, 3))

    def backward(self, dout, need_dx: bool = True):
        if not need_dx:
            return None
        xp = get_array_module(dout)
        n, c, h, w = self.x_shape
        return xp.broadcast_to((dout / (h * w))[:, :, None, None], self.x_shape)  # ∂L/∂out / (HW)


class Flatten(Layer):
    """``x (N, C, H, W) -> out (N, C·H·W)`` in C order; backward reshapes back."""

    def __init__(self):
        super().__init__()
        self.x_shape = None

    def forward(self, x):
        if not hasattr(x, "ndim") or x.ndim < 2:
            raise ValueError(f"x: expected an array of shape (N, ...), got {getattr(x, 'shape', type(x).__name__)}")
        self.x_shape = tuple(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, need_dx: bool = True):
        return dout.reshape(self.x_shape) if need_dx else None

