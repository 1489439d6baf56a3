r"""Convolution by im2col/col2im, with hand-written forward and backward passes.

:class:`Conv2D`, the 2-D convolution of the ResNet in :mod:`minilplr.nn.resnet`,
and the two maps it is built from: :func:`im2col` (image -> patch matrix) and
its adjoint :func:`col2im`.  The layer follows the protocol of
:mod:`minilplr.nn.layers`: ``params`` / ``grads`` mappings, ``forward(x)``,
``backward(dout, need_dx=True) -> dx`` which overwrites ``grads``.  Batch
normalisation is in :mod:`minilplr.nn.batchnorm`; residual blocks, pooling
and flattening in :mod:`minilplr.nn.residual`.

Shapes
------
Image tensors are ``(N, C, H, W)``: ``N`` samples, ``C`` channels, height
``H`` and width ``W`` (in this module ``H`` and ``W`` are the image's height
and width, not the hidden width of :mod:`minilplr`; the kernel is ``Wk``,
kept as the parameter ``'W'``).  ``k`` is the kernel size, ``s`` the stride, ``p`` the
padding, ``C_in`` / ``C_out`` the channels of a convolution's input and
output, and

.. math:: H_o = \lfloor (H + 2p - k)/s \rfloor + 1, \qquad
          W_o = \lfloor (W + 2p - k)/s \rfloor + 1 .

One idea carries the whole module: **a convolution is a dense layer applied
to image patches.**  :func:`im2col` copies every ``k × k × C_in`` patch into
one row of a matrix ``X_col`` of shape ``(N·H_o·W_o, k·k·C_in)``; then the
convolution is ``X_col @ Wk_col`` with the kernel reshaped to the
``(fan_in, fan_out) = (k·k·C_in, C_out)`` weight of a :class:`~minilplr.nn.layers.Dense`
layer (its ``(D, H)`` in the dense layer's letters; here ``H`` stays the image height), and its backward pass is the dense layer's, followed by
:func:`col2im`, the adjoint of :func:`im2col`, which adds each patch
gradient back to the pixels it was copied from.

Memory layout ("channels last")
-------------------------------
Arrays are *indexed* ``(N, C, H, W)`` but a convolution *stores* its output
channels-last, ``(N, H, W, C)`` in memory, and hands out a ``transpose``
view: the product ``X_col @ Wk_col`` comes out as ``(N·H_o·W_o, C_out)``,
which is ``(N, H_o, W_o, C_out)`` in memory, and presenting it as
``(N, C_out, H_o, W_o)`` is a view, not a copy (:func:`_from_rows`).
PyTorch calls this the ``channels_last`` memory format.  Nothing depends on
it for correctness: any ``(N, C, H, W)`` array is accepted and copied where
a view is impossible.

No Python loop runs over pixels: :func:`im2col` is one strided view
(``as_strided``) and one copy; :func:`col2im` loops over the ``k²`` kernel
offsets only, each iteration one vectorised strided add.

The fast path
-------------
:class:`Conv2D`'s methods hold the plain lines, and on the plain path they
are what runs.  By default two of them are replaced by kernels of :mod:`minilplr.nn.fast` that compute the same
thing faster on a CPU (see there, and the switch that turns them off):
``X_col @ Wk_col`` taken block by block while ``X_col`` is in cache
(:func:`~minilplr.nn.fast.im2col_matmul`), and ``col2im(δ Wk_colᵀ)`` without
forming ``δ Wk_colᵀ`` (:func:`~minilplr.nn.fast.conv_input_grad`).

The Jacobian and the NTK
------------------------
:class:`Conv2D` also implements the per-sample rule of the layer protocol
(:mod:`minilplr.nn.layers`): ``per_sample_backward``; its ``ntk_backward`` is
the generic rule of :class:`~minilplr.nn.layers.Layer`, since a
convolution's Jacobian block has no cheap Kronecker form.
"""
from __future__ import annotations

from collections import OrderedDict

from ..backend import get_array_module
from ..validate import check_image, check_int
from . import fast
from .layers import Layer

__all__ = ["conv_output_size", "im2col", "col2im", "Conv2D"]


def conv_output_size(size: int, k: int, stride: int, pad: int) -> int:
    r"""Output length :math:`\lfloor (\text{size} + 2p - k)/s \rfloor + 1` of a convolution."""
    return (size + 2 * pad - k) // stride + 1


def _rows(x):
    """``(N, C, H, W) -> (N·H·W, C)``: one row per pixel, one column per channel.

    A view when ``x`` is stored channels-last (a convolution's own output), a
    copy otherwise.
    """
    return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def _from_rows(r, n, h, w):
    """``(N·H·W, C) -> (N, C, H, W)``, the inverse of :func:`_rows` (a view)."""
    return r.reshape(n, h, w, r.shape[1]).transpose(0, 3, 1, 2)



# --------------------------------------------------------------------------- im2col / col2im


def im2col(x, k: int, stride: int = 1, pad: int = 0):
    r"""Image ``(N, C, H, W)`` -> patch matrix ``X_col`` ``(N·H_o·W_o, k·k·C)``.

    Row ``(n, i, j)`` (in C order) holds the patch under the kernel when its
    top-left corner sits at ``(s·i, s·j)`` of the zero-padded image, ordered
    ``(kernel row a, kernel column b, channel c)``:

    .. math:: X_{col}[(n,i,j),\,(a,b,c)] = \tilde x[n,\ c,\ s i + a,\ s j + b],

    where :math:`\tilde x` is ``x`` padded with ``p`` zeros on each side.

    How: the padded image is written channels-last, ``(N, H+2p, W+2p, C)``;
    a strided view of shape ``(N, H_o, W_o, k, k, C)`` then *is* the patch
    tensor (moving one output pixel moves ``s`` input pixels; moving one
    kernel offset moves one input pixel), and reshaping it to a matrix is the
    one copy (a view for a 1×1 kernel with stride 1, whose patches are the pixels).

    Returns
    -------
    cols : array (N·H_o·W_o, k·k·C)
    out_hw : (H_o, W_o)
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, k, stride, pad), conv_output_size(w, k, stride, pad)
    xpad = xp.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=x.dtype)  # x̃, channels-last: a zero border of width p
    xpad[:, pad:pad + h, pad:pad + w, :] = x.transpose(0, 2, 3, 1)
    sn, sh, sw, sc = xpad.strides
    patches = xp.lib.stride_tricks.as_strided(  # patches[n, i, j, a, b, c] = x̃[n, s i + a, s j + b, c]
        xpad, shape=(n, ho, wo, k, k, c), strides=(sn, sh * stride, sw * stride, sh, sw, sc))
    return patches.reshape(n * ho * wo, k * k * c), (ho, wo)  # X_col: the one copy


def col2im(dcols, x_shape, k: int, stride: int = 1, pad: int = 0):
    r"""The adjoint of :func:`im2col`: patch gradients ``(N·H_o·W_o, k·k·C)`` -> image gradient ``(N, C, H, W)``.

    A pixel appears in every patch that covers it, so its gradient is the sum
    of the patch entries it was copied to:

    .. math:: \frac{\partial L}{\partial \tilde x[n, c, y, x]} =
              \sum_{(i, a):\ s i + a = y}\ \sum_{(j, b):\ s j + b = x}
              \frac{\partial L}{\partial X_{col}[(n,i,j),(a,b,c)]},

    and the padding's rows and columns are cut off (padding is a constant).

    How: for a fixed kernel offset ``(a, b)``, output pixel ``(i, j)`` read
    input pixel ``(s i + a, s j + b)``, so the columns ``(a, b, :)`` land on
    the strided slice ``[a::s, b::s]`` of the padded image, one vectorised
    add, and two output pixels never hit the same input pixel (so ``+=`` on
    the slice is exact).  The loop runs over the ``k²`` offsets, never over
    pixels or samples.

    Returns an ``(N, C, H, W)`` view of channels-last memory.
    """
    xp = get_array_module(dcols)
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, k, stride, pad), conv_output_size(w, k, stride, pad)
    d6 = dcols.reshape(n, ho, wo, k, k, c)  # ∂L/∂patches[n, i, j, a, b, c]
    dpad = xp.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=dcols.dtype)  # ∂L/∂x̃, channels-last
    for a in range(k):
        for b in range(k):
            dpad[:, a:a + stride * ho:stride, b:b + stride * wo:stride, :] += d6[:, :, :, a, b, :]
    return dpad[:, pad:pad + h, pad:pad + w, :].transpose(0, 3, 1, 2)  # cut the padding off


# --------------------------------------------------------------------------- convolution


class Conv2D(Layer):
    r"""2-D convolution (cross-correlation, as in every deep-learning library).

    .. math:: z[n, o, i, j] = b_o + \sum_{c, a, b} Wk[a, b, c, o]\;
              \tilde x[n, c,\ s i + a,\ s j + b]

    Parameters
    ----------
    weight : array (k, k, C_in, C_out)
        The kernel ``Wk``, kept as ``params['W']`` and stored so that
        ``Wk_col = Wk.reshape(k·k·C_in, C_out)`` is the
        ``(fan_in, fan_out)`` weight of a dense layer on patches (the dense
        layer's ``(D, H)``; in this module ``H`` is the image height).
        (PyTorch stores ``(C_out, C_in, k, k)``: ``weight_torch = Wk.transpose(3, 2, 0, 1)``.)
    b : array (C_out,) or None
        Bias; ``None`` for a convolution followed by batch norm, whose mean
        subtraction would cancel it.
    stride, padding : int
        ``s >= 1`` and ``p >= 0`` (zero padding on every side).

    Forward
        ``x (N, C_in, H, W) -> z (N, C_out, H_o, W_o)``:
        ``z = im2col(x) @ Wk_col + b``.
    Backward (a dense layer on patches, then :func:`col2im`; :math:`\delta = \partial L/\partial z` as rows ``(N·H_o·W_o, C_out)``)
        :math:`\partial L/\partial Wk_{col} = X_{col}^\top \delta` ``(k·k·C_in, C_out)``,
        :math:`\partial L/\partial b = \sum_{\text{rows}} \delta` ``(C_out,)``,
        :math:`\partial L/\partial X_{col} = \delta\, Wk_{col}^\top`, and
        :math:`\partial L/\partial x = \mathrm{col2im}(\partial L/\partial X_{col})` ``(N, C_in, H, W)``.

    The forward pass keeps ``X_col``: it is the input ``A`` of the dense layer
    on patches, the same role ``x`` plays in :class:`~minilplr.nn.layers.Dense`.
    ``workspace`` holds the arrays the fast kernels reuse from one call to
    the next (:mod:`minilplr.nn.fast`); the plain path never touches it.
    """

    def __init__(self, weight, b=None, stride: int = 1, padding: int = 0):
        super().__init__()
        if weight.ndim != 4 or weight.shape[0] != weight.shape[1]:
            raise ValueError(f"weight: expected a (k, k, C_in, C_out) kernel with a square k × k window, "
                             f"got shape {tuple(weight.shape)}")
        if b is not None and tuple(b.shape) != (weight.shape[3],):
            raise ValueError(f"b: expected shape ({weight.shape[3]},) to match weight {tuple(weight.shape)}, "
                             f"got {tuple(b.shape)}")
        self.stride = check_int("stride", stride, 1)
        self.padding = check_int("padding", padding, 0)
        self.params["W"] = weight
        self.grads["W"] = None
        if b is not None:
            self.params["b"] = b
            self.grads["b"] = None
        self.cols = None
        self.workspace = {}  # the fast kernels' reused arrays (minilplr.nn.fast): speed only
        self.x_shape = None

    k = property(lambda self: self.params["W"].shape[0])
    c_in = property(lambda self: self.params["W"].shape[2])
    c_out = property(lambda self: self.params["W"].shape[3])

    def forward(self, x):
        """``x (N, C_in, H, W) -> z (N, C_out, H_o, W_o)``, stored channels-last."""
        check_image("x", x, self.c_in)
        k, s, p = self.k, self.stride, self.padding
        n, _, h, w = x.shape
        if h + 2 * p < k or w + 2 * p < k:
            raise ValueError(
                f"x: image of size {h}×{w} (padding {p}) is smaller than the {k}×{k} kernel"
            )
        self.x_shape = tuple(x.shape)
        Wk_col = self.params["W"].reshape(-1, self.c_out)  # (k·k·C_in, C_out)
        if fast.enabled("conv_forward"):  # the two lines below, block by block in cache
            self.cols, z, (ho, wo) = fast.im2col_matmul(x, k, s, p, Wk_col, self.workspace)
        else:
            self.cols, (ho, wo) = im2col(x, k, s, p)  # X_col = im2col(x)  (N·H_o·W_o, k·k·C_in)
            z = self.cols @ Wk_col  # z = X_col Wk_col  (N·H_o·W_o, C_out)
        if "b" in self.params:
            z = z + self.params["b"]  # + b
        return _from_rows(z, n, ho, wo)  # (N, C_out, H_o, W_o), a view of the rows

    def backward(self, dout, need_dx: bool = True):
        """``dout (N, C_out, H_o, W_o) -> dx (N, C_in, H, W)``; fills ``grads['W']``, ``grads['b']``."""
        Wk = self.params["W"]
        delta = _rows(dout)  # δ (N·H_o·W_o, C_out)
        self.grads["W"] = (self.cols.T @ delta).reshape(Wk.shape)  # ∂L/∂Wk_col = X_colᵀ δ
        if "b" in self.params:
            self.grads["b"] = delta.sum(axis=0)  # ∂L/∂b = Σ_rows δ
        return self._input_grad(delta) if need_dx else None

    def _input_grad(self, delta):
        """``∂L/∂x (N, C_in, H, W)`` from ``δ`` as rows ``(N·H_o·W_o, C_out)``: the dense rule on patches, then the scatter."""
        Wk = self.params["W"]
        if fast.enabled("conv_input_grad"):  # the two lines below, without forming δ Wk_colᵀ
            return fast.conv_input_grad(delta, Wk, self.x_shape, self.stride, self.padding, self.workspace)
        dcols = delta @ Wk.reshape(-1, self.c_out).T  # ∂L/∂X_col = δ Wk_colᵀ  (N·H_o·W_o, k·k·C_in)
        return col2im(dcols, self.x_shape, self.k, self.stride, self.padding)  # ∂L/∂x = col2im(∂L/∂X_col)

    def per_sample_backward(self, dout, need_dx: bool = True):
        r"""``dout (N, C_out, H_o, W_o) -> (dx, {'W': (N, k, k, C_in, C_out), 'b': (N, C_out)})``.

        The per-sample rule of the layer protocol (:mod:`minilplr.nn.layers`):
        :meth:`backward` without the sum over samples.  Sample ``n``'s
        gradient is the dense rule on *its own* patches, summed over its
        ``H_o·W_o`` positions:
        :math:`\partial/\partial Wk_{col} = X_{col,n}^\top \delta_n`, a batched
        product ``(N, k·k·C_in, H_o·W_o) @ (N, H_o·W_o, C_out)``;
        :math:`\partial/\partial b = \sum_{\text{positions}} \delta_n`.
        ``grads`` is left untouched.
        """
        xp = get_array_module(dout)
        n = dout.shape[0]
        delta = _rows(dout)  # δ (N·H_o·W_o, C_out)
        cols3 = self.cols.reshape(n, -1, self.cols.shape[1])  # X_col,n (N, H_o·W_o, k·k·C_in)
        delta3 = delta.reshape(n, -1, self.c_out)  # δ_n (N, H_o·W_o, C_out)
        psg = OrderedDict()
        psg["W"] = xp.matmul(cols3.transpose(0, 2, 1), delta3).reshape((n,) + tuple(self.params["W"].shape))
        if "b" in self.params:
            psg["b"] = delta3.sum(axis=1)  # Σ over positions of δ_n
        dx = self._input_grad(delta) if need_dx else None
        return dx, psg

    def __repr__(self):
        return (f"Conv2D({self.c_in}->{self.c_out}, k={self.k}, stride={self.stride}, "
                f"padding={self.padding}, bias={'b' in self.params})")
