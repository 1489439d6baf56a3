r"""Convolutional layers with hand-written forward and backward passes.

The layers of the ResNet in :mod:`minilplr.nn.resnet`: a 2-D convolution
(:class:`Conv2D`), batch normalisation (:class:`BatchNorm2D`), global average
pooling (:class:`GlobalAvgPool`), flattening (:class:`Flatten`) and the
residual block (:class:`ResidualBlock`).  They follow the protocol of
:mod:`minilplr.nn.layers`: ``params`` / ``grads`` mappings, ``forward(x)``,
``backward(dout, need_dx=True) -> dx`` which overwrites ``grads``.
:func:`recalibrate_batchnorm` re-estimates batch norm's running statistics
on a data set (for a reading of a trained network in evaluation mode).

Shapes
------
Image tensors are ``(N, C, H, W)``: ``N`` samples, ``C`` channels, height
``H`` and width ``W`` (in this module ``H`` and ``W`` are the image's height
and width, not the hidden width of :mod:`minilplr`).  ``k`` is the kernel
size, ``s`` the stride, ``p`` the padding, ``C_in`` / ``C_out`` the channels
of a convolution's input and output, and

.. math:: H_o = \lfloor (H + 2p - k)/s \rfloor + 1, \qquad
          W_o = \lfloor (W + 2p - k)/s \rfloor + 1 .

One idea carries the whole module: **a convolution is a dense layer applied
to image patches.**  :func:`im2col` copies every ``k × k × C_in`` patch into
one row of a matrix ``X_col`` of shape ``(N·H_o·W_o, k·k·C_in)``; then the
convolution is ``X_col @ W_col`` with the weights reshaped to the
``(D, H) = (k·k·C_in, C_out)`` of a :class:`~minilplr.nn.layers.Dense` layer,
and its backward pass is the dense layer's, followed by :func:`col2im`, the
adjoint of :func:`im2col`, which adds each patch gradient back to the pixels
it was copied from.

Memory layout ("channels last")
-------------------------------
Arrays are *indexed* ``(N, C, H, W)`` but the layers here *store* them
channels-last, ``(N, H, W, C)`` in memory, and hand out ``transpose`` views.
The product ``X_col @ W_col`` comes out as ``(N·H_o·W_o, C_out)``, which is
``(N, H_o, W_o, C_out)`` in memory: presenting it as ``(N, C_out, H_o, W_o)``
is a view, not a copy, and batch norm sees each channel as one column of a
``(N·H·W, C)`` matrix (:func:`_rows`), again a view.  PyTorch calls this the
``channels_last`` memory format.  Nothing depends on it for correctness:
any ``(N, C, H, W)`` array is accepted and copied where a view is impossible.

No Python loop runs over samples or pixels: :func:`im2col` is one strided
view (``as_strided``) and one copy; :func:`col2im` loops over the ``k²``
kernel offsets only, each iteration one vectorised strided add.

The Jacobian and the NTK
------------------------
Each layer with parameters also implements the per-sample protocol of
:mod:`minilplr.theory.ntk` (``per_sample_backward``; ``ntk_backward`` is the
generic rule of :class:`~minilplr.nn.layers.Layer`, since a convolution's
Jacobian block has no cheap Kronecker form).  Batch norm offers it in
evaluation mode only: with batch statistics every output depends on every
sample, and "sample ``n``'s gradient" is not defined.
"""
from __future__ import annotations

import math
from collections import OrderedDict

from ..backend import get_array_module
from .layers import Layer, ReLU, Sequential, iter_layers

__all__ = [
    "conv_output_size",
    "im2col",
    "col2im",
    "Conv2D",
    "BatchNorm2D",
    "recalibrate_batchnorm",
    "GlobalAvgPool",
    "Flatten",
    "ResidualBlock",
    "named_buffers",
]


# --------------------------------------------------------------------------- helpers


def _check_image(name, x, channels=None):
    """Raise ``ValueError`` unless ``x`` is a 4-D ``(N, C, H, W)`` array (with ``C = channels``)."""
    if not hasattr(x, "ndim") or x.ndim != 4:
        got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        want = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise ValueError(f"{name}: expected a 4-D {want} image array, got shape {got}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name}: expected {channels} channels, shape (N, {channels}, H, W), got {tuple(x.shape)}"
        )


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return v


def _rows(x):
    """``(N, C, H, W) -> (N·H·W, C)``: one row per pixel, one column per channel.

    A view when ``x`` is stored channels-last (the layers' own outputs), a copy
    otherwise.
    """
    return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def _from_rows(r, n, h, w):
    """``(N·H·W, C) -> (N, C, H, W)``, the inverse of :func:`_rows` (a view)."""
    return r.reshape(n, h, w, r.shape[1]).transpose(0, 3, 1, 2)


def _channel_sum(r):
    """``Σ_rows r``: ``(M, C) -> (C,)``, fast and accurate in float32.

    Batch norm's statistics and gradients are sums over ``M = N·H·W`` rows,
    131 072 for the first stage of the ResNet.  NumPy's ``r.sum(axis=0)``
    of a tall, narrow matrix adds row after row in the array's dtype: slow
    (a short inner loop per row) and, in float32, off by ~1e-5 relative,
    which training-mode batch norm turns into ~1e-3 relative errors of the
    gradients (its backward pass subtracts nearly equal sums).  Here the
    rows are cut into (up to 256) blocks, each block summed by BLAS as the
    product ``1ᵀ r_b``, and the blocks' sums added in float64, as PyTorch's
    CPU batch norm accumulates in double.
    """
    xp = get_array_module(r)
    m, c = r.shape
    blocks = math.gcd(m, 256)
    part = xp.ones(m // blocks, dtype=r.dtype) @ r.reshape(blocks, m // blocks, c)  # (blocks, C)
    return part.sum(axis=0, dtype=xp.float64).astype(r.dtype, copy=False)


def _per_channel(op, r, v, out=None):
    """``op(r, v, out=out)`` for rows ``r`` ``(M, C)`` and a per-channel vector ``v`` ``(C,)``.

    The same numbers as the plain broadcast ``op(r, v)``; a speed trick for
    batch norm.  NumPy broadcasts ``v`` along each row with an inner loop of
    ``C`` elements, 16 in the first stage of the ResNet, and the per-loop
    overhead dominates (measured: 1.5 ms for a ``(131072, 16)`` float32
    product on this project's 2-core CPU).  C-contiguous rows are the same
    memory as a ``(M/t, t·C)`` matrix (``t = gcd(M, 64)`` pixels per row, a
    view), and ``v`` repeated ``t`` times is the matching row vector, so the
    inner loop runs over ``t·C`` elements (0.7 ms).  Non-contiguous arrays
    fall back to the plain broadcast.
    """
    xp = get_array_module(r)
    m, c = r.shape
    t = math.gcd(m, 64)
    if t == 1 or not r.flags.c_contiguous or (out is not None and not out.flags.c_contiguous):
        return op(r, v, out=out)
    wide = (m // t, t * c)
    res = op(r.reshape(wide), xp.tile(v, t), out=None if out is None else out.reshape(wide))
    return res.reshape(m, c)


def conv_output_size(size: int, k: int, stride: int, pad: int) -> int:
    r"""Output length :math:`\lfloor (\text{size} + 2p - k)/s \rfloor + 1` of a convolution."""
    return (size + 2 * pad - k) // stride + 1


# --------------------------------------------------------------------------- im2col / col2im


def im2col(x, k: int, stride: int = 1, pad: int = 0, workspace=None):
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
    one copy.

    ``workspace`` (optional, a dict the caller keeps between calls) lets
    the padded image and ``X_col`` be written into the arrays of the previous
    call of the same shape instead of fresh ones.  This is a speed trick, not
    maths: ``X_col`` is large (75 MB for the first stage of the ResNet at
    ``N = 128``), and a fresh array that large is new memory from the
    operating system, whose first write faults in every 4 KiB page (measured
    at that size on a 2-core CPU: 12.7 ms for a fresh ``X_col``, 6.2 ms
    reused; the ResNet step is ~9 % faster).  The returned ``cols`` is then the
    workspace's array, overwritten by the next call.  The padded image's
    border is written (zeros) only when it is first allocated.

    Returns
    -------
    cols : array (N·H_o·W_o, k·k·C)
    out_hw : (H_o, W_o)
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, k, stride, pad), conv_output_size(w, k, stride, pad)
    x_nhwc = x.transpose(0, 2, 3, 1)
    if pad:
        xpad = _scratch(workspace, "xpad", (n, h + 2 * pad, w + 2 * pad, c), x)  # zero border
        xpad[:, pad:pad + h, pad:pad + w, :] = x_nhwc
    else:
        xpad = xp.ascontiguousarray(x_nhwc)  # free if x is already channels-last
    if k == 1 and stride == 1:  # a 1×1 convolution's patches are the pixels: a view
        return xpad.reshape(n * ho * wo, c), (ho, wo)
    sn, sh, sw, sc = xpad.strides
    patches = xp.lib.stride_tricks.as_strided(
        xpad, shape=(n, ho, wo, k, k, c), strides=(sn, sh * stride, sw * stride, sh, sw, sc)
    )
    if workspace is None:
        return patches.reshape(n * ho * wo, k * k * c), (ho, wo)
    cols = _scratch(workspace, "cols", (n * ho * wo, k * k * c), x)
    xp.copyto(cols.reshape(n, ho, wo, k, k, c), patches)  # the one copy, into the workspace
    return cols, (ho, wo)


def _scratch(workspace, name, shape, like):
    """``workspace[name]`` if it is an array of ``shape`` and ``like``'s dtype and kind, else a new
    zero array stored there (returned without storing when ``workspace`` is ``None``)."""
    xp = get_array_module(like)
    buf = None if workspace is None else workspace.get(name)
    if (buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != like.dtype
            or get_array_module(buf) is not xp):
        buf = xp.zeros(shape, dtype=like.dtype)
        if workspace is not None:
            workspace[name] = buf
    return buf


def col2im(dcols, x_shape, k: int, stride: int = 1, pad: int = 0):
    r"""The adjoint of :func:`im2col`: patch gradients ``(N·H_o·W_o, k·k·C)`` -> image gradient ``(N, C, H, W)``.

    A pixel appears in every patch that covers it, so its gradient is the sum
    of the patch entries it was copied to:

    .. math:: \frac{\partial L}{\partial \tilde x[n, c, y, x]} =
              \sum_{(i, a):\ s i + a = y}\ \sum_{(j, b):\ s j + b = x}
              \frac{\partial L}{\partial X_{col}[(n,i,j),(a,b,c)]},

    and the padding's rows and columns are cut off (padding is a constant).
    See :func:`_scatter_patches` for how; :class:`Conv2D` uses that directly,
    without forming ``dcols``.

    Returns an ``(N, C, H, W)`` view of channels-last memory.
    """
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, k, stride, pad), conv_output_size(w, k, stride, pad)
    d6 = dcols.reshape(n, ho, wo, k, k, c)
    return _scatter_patches(lambda a, b: d6[:, :, :, a, b, :], x_shape, k, stride, pad, dcols)


def _scatter_patches(block, x_shape, k, stride, pad, like):
    r"""Add patch gradients back onto the (padded) image, one kernel offset at a time.

    ``block(a, b)`` returns the ``(N, H_o, W_o, C)`` gradients of the patch
    entries at kernel offset ``(a, b)``, i.e. the columns ``(a, b, :)`` of
    ``∂L/∂X_col``.  For a fixed offset, output pixel ``(i, j)`` reads input
    pixel ``(s i + a, s j + b)``: the offset's gradients land on the strided
    slice ``[a::s, b::s]`` of the padded image, one vectorised add, and two
    output pixels never hit the same input pixel (so ``+=`` on the slice is
    exact).  The loop runs over the ``k²`` offsets, never over pixels or
    samples.  Returns ``∂L/∂x`` ``(N, C, H, W)`` (a view of channels-last
    memory, the padding cut off).
    """
    xp = get_array_module(like)
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, k, stride, pad), conv_output_size(w, k, stride, pad)
    if k == 1 and pad == 0 and stride == 1:  # a 1×1 convolution's patches are the pixels
        return block(0, 0).transpose(0, 3, 1, 2)
    dpad = xp.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=like.dtype)
    for a in range(k):
        for b in range(k):
            dpad[:, a:a + stride * ho:stride, b:b + stride * wo:stride, :] += block(a, b)
    return dpad[:, pad:pad + h, pad:pad + w, :].transpose(0, 3, 1, 2)


# --------------------------------------------------------------------------- convolution


class Conv2D(Layer):
    r"""2-D convolution (cross-correlation, as in every deep-learning library).

    .. math:: z[n, o, i, j] = b_o + \sum_{c, a, b} W[a, b, c, o]\;
              \tilde x[n, c,\ s i + a,\ s j + b]

    Parameters
    ----------
    W : array (k, k, C_in, C_out)
        Kernel, stored so that ``W.reshape(k·k·C_in, C_out)`` is the
        ``(D, H) = (fan_in, fan_out)`` weight of a dense layer on patches.
        (PyTorch stores ``(C_out, C_in, k, k)``: ``W_torch = W.transpose(3, 2, 0, 1)``.)
    b : array (C_out,) or None
        Bias; ``None`` for a convolution followed by batch norm, whose mean
        subtraction would cancel it.
    stride, padding : int
        ``s >= 1`` and ``p >= 0`` (zero padding on every side).

    Forward
        ``x (N, C_in, H, W) -> z (N, C_out, H_o, W_o)``:
        ``z = im2col(x) @ W_col + b`` with ``W_col = W.reshape(k·k·C_in, C_out)``.
    Backward (a dense layer on patches, then :func:`col2im`; :math:`\delta = \partial L/\partial z` as rows ``(N·H_o·W_o, C_out)``)
        :math:`\partial L/\partial W_{col} = X_{col}^\top \delta` ``(k·k·C_in, C_out)``,
        :math:`\partial L/\partial b = \sum_{\text{rows}} \delta` ``(C_out,)``,
        :math:`\partial L/\partial X_{col} = \delta W_{col}^\top`, and
        :math:`\partial L/\partial x = \mathrm{col2im}(\partial L/\partial X_{col})` ``(N, C_in, H, W)``.

    The forward pass keeps ``X_col``: it is the input ``A`` of the dense layer
    on patches, the same role ``x`` plays in :class:`~minilplr.nn.layers.Dense`.
    """

    def __init__(self, W, b=None, stride: int = 1, padding: int = 0):
        super().__init__()
        if W.ndim != 4 or W.shape[0] != W.shape[1]:
            raise ValueError(f"W: expected a (k, k, C_in, C_out) kernel with a square k × k window, got shape {tuple(W.shape)}")
        if b is not None and tuple(b.shape) != (W.shape[3],):
            raise ValueError(f"b: expected shape ({W.shape[3]},) to match W {tuple(W.shape)}, got {tuple(b.shape)}")
        self.stride = _check_int("stride", stride, 1)
        self.padding = _check_int("padding", padding, 0)
        self.params["W"] = W
        self.grads["W"] = None
        if b is not None:
            self.params["b"] = b
            self.grads["b"] = None
        self.cols = None
        self.x_shape = None
        self.workspace = {}  # im2col's reused arrays (see im2col): speed only

    k = property(lambda self: self.params["W"].shape[0])
    c_in = property(lambda self: self.params["W"].shape[2])
    c_out = property(lambda self: self.params["W"].shape[3])

    def forward(self, x):
        """``x (N, C_in, H, W) -> z (N, C_out, H_o, W_o)``."""
        _check_image("x", x, self.c_in)
        k, s, p = self.k, self.stride, self.padding
        n, _, h, w = x.shape
        if h + 2 * p < k or w + 2 * p < k:
            raise ValueError(
                f"x: image of size {h}×{w} (padding {p}) is smaller than the {k}×{k} kernel"
            )
        self.cols, (ho, wo) = im2col(x, k, s, p, self.workspace)  # X_col (N·H_o·W_o, k·k·C_in)
        self.x_shape = tuple(x.shape)
        z = self.cols @ self.params["W"].reshape(-1, self.c_out)  # X_col W_col
        if "b" in self.params:
            z += self.params["b"]
        return _from_rows(z, n, ho, wo)

    def backward(self, dout, need_dx: bool = True):
        """``dout (N, C_out, H_o, W_o) -> dx (N, C_in, H, W)``; fills ``grads['W']``, ``grads['b']``."""
        W = self.params["W"]
        delta = _rows(dout)  # δ (N·H_o·W_o, C_out)
        self.grads["W"] = (self.cols.T @ delta).reshape(W.shape)  # ∂L/∂W_col = X_colᵀ δ
        if "b" in self.params:
            self.grads["b"] = _channel_sum(delta)  # ∂L/∂b = Σ_rows δ
        return self._input_grad(delta, dout.shape) if need_dx else None

    def _input_grad(self, delta, out_shape):
        """``∂L/∂x = col2im(∂L/∂X_col)`` with ``∂L/∂X_col = δ W_colᵀ``, for ``δ`` as rows.

        The columns ``(a, b, :)`` of ``δ W_colᵀ`` are ``δ W[a, b]ᵀ``
        ``(N·H_o·W_o, C_in)``: they are formed one kernel offset at a time and
        each is added onto the image at once (no ``(N·H_o·W_o, k·k·C_in)``
        matrix, and the adds read contiguous memory).
        """
        W = self.params["W"]
        n, _, ho, wo = out_shape
        return _scatter_patches(lambda a, b: (delta @ W[a, b].T).reshape(n, ho, wo, self.c_in),
                                self.x_shape, self.k, self.stride, self.padding, delta)

    def per_sample_backward(self, dout, need_dx: bool = True):
        r"""``dout (N, C_out, H_o, W_o) -> (dx, {'W': (N, k, k, C_in, C_out), 'b': (N, C_out)})``.

        The Jacobian / NTK protocol of :mod:`minilplr.theory.ntk`: :meth:`backward`
        without the sum over samples.  Sample ``n``'s gradient is the dense
        rule on *its own* patches, summed over its ``H_o·W_o`` positions:
        :math:`\partial/\partial W_{col} = X_{col,n}^\top \delta_n`, a batched
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
        dx = self._input_grad(delta, dout.shape) if need_dx else None
        return dx, psg

    def __repr__(self):
        return (f"Conv2D({self.c_in}->{self.c_out}, k={self.k}, stride={self.stride}, "
                f"padding={self.padding}, bias={'b' in self.params})")


# --------------------------------------------------------------------------- batch norm


class BatchNorm2D(Layer):
    r"""Batch normalisation over ``(N, H, W)`` for each channel (Ioffe & Szegedy, 2015).

    .. math:: \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}},\qquad y = \gamma \hat x + \beta

    per channel, with

    * **training mode** (``self.training``): :math:`\mu, \sigma^2` the mean and
      (biased) variance of the batch over its ``M = N·H·W`` values; the running
      statistics move towards them,
      :math:`\bar\mu \leftarrow (1-m)\bar\mu + m\mu`,
      :math:`\bar\sigma^2 \leftarrow (1-m)\bar\sigma^2 + m\,\tfrac{M}{M-1}\sigma^2`
      (the unbiased variance, PyTorch's convention);
    * **evaluation mode**: :math:`\mu, \sigma^2` the running statistics
      :math:`\bar\mu, \bar\sigma^2`, constants; each sample is then normalised
      on its own, so ``y`` is an affine function of ``x`` per sample.

    Parameters
    ----------
    gamma, beta : array (C,)
        Scale and shift.
    momentum : float in (0, 1]
        ``m`` above (PyTorch's default 0.1).
    eps : float > 0

    The running statistics ``running_mean``, ``running_var`` (both ``(C,)``)
    are state, not parameters: they live in ``self.buffers``, get no gradient
    and are not touched by the optimiser.

    Backward (:math:`\delta = \partial L/\partial y`, rows ``(M, C)``; sums over the ``M`` rows)
        :math:`\partial L/\partial\gamma = \sum \delta \odot \hat x`,
        :math:`\partial L/\partial\beta = \sum \delta`, and

        * evaluation mode: :math:`\partial L/\partial x = \gamma\,\delta / \sqrt{\bar\sigma^2+\epsilon}`;
        * training mode: ``μ`` and ``σ²`` depend on every sample, so every
          output depends on every input of the batch.  With
          :math:`\partial\mu/\partial x_m = 1/M` and
          :math:`\partial\sigma^2/\partial x_m = 2(x_m-\mu)/M`,
          :math:`\partial \hat x_r/\partial x_m = \big(1[r=m] - \tfrac1M - \tfrac1M\hat x_r \hat x_m\big)/\sqrt{\sigma^2+\epsilon}`,
          and summing over ``r`` against :math:`\gamma\delta_r`:

          .. math:: \frac{\partial L}{\partial x_m} = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}
                    \Big(\delta_m - \frac1M\frac{\partial L}{\partial\beta}
                    - \frac{\hat x_m}{M}\frac{\partial L}{\partial\gamma}\Big).
    """

    def __init__(self, gamma, beta, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        if gamma.ndim != 1:
            raise ValueError(f"gamma: expected a 1-D (C,) array, got shape {tuple(gamma.shape)}")
        if tuple(beta.shape) != tuple(gamma.shape):
            raise ValueError(f"beta: expected shape {tuple(gamma.shape)} to match gamma, got {tuple(beta.shape)}")
        if not (0.0 < float(momentum) <= 1.0):
            raise ValueError(f"momentum: expected a number in (0, 1], got {momentum!r}")
        if not (float(eps) > 0.0):
            raise ValueError(f"eps: expected a positive number, got {eps!r}")
        xp = get_array_module(gamma)
        self.momentum, self.eps = float(momentum), float(eps)
        self.params["gamma"], self.params["beta"] = gamma, beta
        self.grads["gamma"], self.grads["beta"] = None, None
        self.buffers = OrderedDict(
            running_mean=xp.zeros(gamma.shape, dtype=gamma.dtype),
            running_var=xp.ones(gamma.shape, dtype=gamma.dtype),
        )
        self.xhat = self.inv_std = None
        self.used_batch_stats = None

    channels = property(lambda self: self.params["gamma"].shape[0])

    def forward(self, x):
        """``x (N, C, H, W) -> y (N, C, H, W)``, with batch (train) or running (eval) statistics."""
        _check_image("x", x, self.channels)
        xp = get_array_module(x)
        n, c, h, w = x.shape
        x2 = _rows(x)  # (M, C)
        m = x2.shape[0]
        gamma, beta = self.params["gamma"], self.params["beta"]
        if self.training:
            if m < 2:
                raise ValueError(
                    f"x: batch norm in training mode needs more than one value per channel, got "
                    f"shape {tuple(x.shape)} (N·H·W = 1); switch to eval mode with .eval()"
                )
            mu = _channel_sum(x2) / m  # μ (C,)
            xhat = _per_channel(xp.subtract, x2, mu)  # x − μ
            var = _channel_sum(xhat * xhat) / m  # σ² (biased)
            inv_std = 1.0 / (var + self.eps) ** 0.5  # 1/√(σ² + ε)
            _per_channel(xp.multiply, xhat, inv_std, out=xhat)  # x̂
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm *= 1.0 - self.momentum
            rm += self.momentum * mu  # μ̄ ← (1−m) μ̄ + m μ
            rv *= 1.0 - self.momentum
            rv += (self.momentum * m / (m - 1)) * var  # σ̄² ← (1−m) σ̄² + m σ²·M/(M−1)
        else:
            inv_std = 1.0 / (self.buffers["running_var"] + self.eps) ** 0.5
            xhat = _per_channel(xp.multiply, _per_channel(xp.subtract, x2, self.buffers["running_mean"]), inv_std)
        self.xhat, self.inv_std, self.used_batch_stats = xhat, inv_std, self.training
        y = _per_channel(xp.multiply, xhat, gamma)  # γ x̂
        _per_channel(xp.add, y, beta, out=y)  # + β
        return _from_rows(y, n, h, w)

    def backward(self, dout, need_dx: bool = True):
        """``dout (N, C, H, W) -> dx (N, C, H, W)``; fills ``grads['gamma']``, ``grads['beta']`` ``(C,)``."""
        xp = get_array_module(dout)
        n, c, h, w = dout.shape
        delta = _rows(dout)  # δ (M, C)
        m = delta.shape[0]
        dgamma = _channel_sum(delta * self.xhat)  # ∂L/∂γ = Σ δ x̂
        dbeta = _channel_sum(delta)  # ∂L/∂β = Σ δ
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        if not need_dx:
            return None
        scale = self.params["gamma"] * self.inv_std  # γ / √(σ² + ε)
        if not self.used_batch_stats:
            return _from_rows(_per_channel(xp.multiply, delta, scale), n, h, w)  # eval: ∂L/∂x = γ δ / √(σ̄² + ε)
        dx = _per_channel(xp.multiply, self.xhat, dgamma / -m)  # − x̂ ∂L/∂γ / M
        dx += delta  # + δ
        _per_channel(xp.subtract, dx, dbeta / m, out=dx)  # − ∂L/∂β / M
        _per_channel(xp.multiply, dx, scale, out=dx)  # · γ / √(σ² + ε)
        return _from_rows(dx, n, h, w)

    def per_sample_backward(self, dout, need_dx: bool = True):
        r"""``dout (N, C, H, W) -> (dx, {'gamma': (N, C), 'beta': (N, C)})``, evaluation mode only.

        The Jacobian / NTK protocol of :mod:`minilplr.theory.ntk`.  With the running
        statistics fixed, sample ``n``'s output depends on sample ``n``'s input
        only, and its gradients are the sums over its own pixels,
        :math:`\sum_{h,w} \delta_n \hat x_n` and :math:`\sum_{h,w}\delta_n`.
        In training mode the batch statistics tie every output to every
        sample: "the gradient of sample ``n``'s output" is not a per-sample
        quantity of the network any more, so this refuses.
        """
        if self.used_batch_stats:
            raise ValueError(
                "model: per-sample gradients (Jacobian, NTK) need batch norm in evaluation mode "
                "(fixed running statistics), but the last forward pass used batch statistics; "
                "call model.eval() and run forward again"
            )
        n, c, h, w = dout.shape
        delta3 = _rows(dout).reshape(n, h * w, c)  # δ_n (N, H·W, C)
        psg = OrderedDict()
        psg["gamma"] = (delta3 * self.xhat.reshape(n, h * w, c)).sum(axis=1)  # Σ_pixels δ_n x̂_n
        psg["beta"] = delta3.sum(axis=1)  # Σ_pixels δ_n
        if not need_dx:
            return None, psg
        scale = self.params["gamma"] * self.inv_std
        return _from_rows(_rows(dout) * scale, n, h, w), psg  # γ δ / √(σ̄² + ε)

    def __repr__(self):
        return f"BatchNorm2D({self.channels}, momentum={self.momentum}, eps={self.eps}, training={self.training})"


def recalibrate_batchnorm(model, X, batch_size: int):
    r"""Re-estimate every batch norm layer's running statistics on ``X``, as a practitioner recalibrates.

    Training-mode forward passes over ``X (N, C, H, W)`` in consecutive
    batches ``B_1, …, B_T`` of ``batch_size`` samples (the last may be
    smaller), in the order given, with each layer's momentum set to the
    cumulative share ``m_b = M_b/(M_1 + … + M_b)`` (``M_b = N_b·H·W`` values
    per channel in batch ``b``).  The running update of :class:`BatchNorm2D`
    then leaves every layer with the **size-weighted average over the batches
    of its batch statistics**:

    .. math:: \bar\mu = \sum_{b=1}^{T}\frac{M_b}{M}\,\mu_b, \qquad
              \bar\sigma^2 = \sum_{b=1}^{T}\frac{M_b}{M}\,\frac{M_b}{M_b-1}\,\sigma_b^2, \qquad M = \sum_b M_b,

    where ``μ_b``, ``σ²_b`` are the mean and biased variance of the layer's
    input on batch ``b``, that input computed as in a training step (every
    earlier batch norm normalising with batch ``b``'s own statistics).  The
    previous statistics are discarded (``m_1 = 1``; they are also reset to
    0 and 1 first, so non-finite ones go too).  This is Ioffe & Szegedy's
    inference statistics (2015, Alg. 2: ``E[x] = E_B[μ_B]``,
    ``Var[x] = m/(m−1)·E_B[σ²_B]``) and PyTorch's
    ``torch.optim.swa_utils.update_bn`` (``momentum=None``, which weights the
    batches equally: the same when all batches are full).

    These are exact population statistics only when one batch covers ``X``
    (``batch_size >= N``): then ``μ̄`` is the per-channel mean of the layer's
    input over the whole set, ``σ̄²`` its unbiased variance, and the eval-mode
    network computes on ``X`` what the training-mode one computes with ``X``
    as its batch (up to the factor ``M/(M−1)`` in ``σ̄²``).  With smaller
    batches ``σ̄²`` misses the spread of the batch means, and deeper layers
    see inputs normalised by batch, not population, statistics.  That is the
    point: the statistics are those of the batch-``batch_size`` network that
    SGD trains, and they are a function of the parameters, ``X`` and the
    batching alone, not of the training history.  (Exact population
    statistics at any batch size take one pass over ``X`` per batch-norm
    layer, each layer's inputs computed with the layers before it fixed; for
    the ResNet of Fig. 3 that is 9 passes instead of 1.)

    Parameters
    ----------
    model : Model or Layer
        Changed in place: the ``running_mean`` / ``running_var`` buffers of
        its :class:`BatchNorm2D` layers, and the caches a forward pass
        leaves.  Parameters, momenta and the train/eval mode are as before.
    X : array (N, C, H, W) on the model's backend
        Pass it shuffled: each batch should look like a training batch.
    batch_size : int >= 1
        The training batch size (a batch needs more than one value per
        channel).

    Returns
    -------
    model
    """
    batch_size = _check_int("batch_size", batch_size, 1)
    if not hasattr(X, "shape") or len(X.shape) < 1 or X.shape[0] < 1:
        raise ValueError(f"X: expected images (N, C, H, W) with N >= 1, got {getattr(X, 'shape', type(X).__name__)}")
    bns = [layer for layer in iter_layers(model) if isinstance(layer, BatchNorm2D)]
    momenta, was_training = [bn.momentum for bn in bns], bool(model.training)
    for bn in bns:
        bn.buffers["running_mean"][...] = 0.0
        bn.buffers["running_var"][...] = 1.0
    n, seen = int(X.shape[0]), 0
    model.train()
    try:
        for s in range(0, n, batch_size):
            n_b = min(batch_size, n - s)
            seen += n_b
            for bn in bns:
                bn.momentum = n_b / seen  # m_b = M_b / (M_1 + … + M_b): a cumulative average
            model.forward(X[s:s + n_b])  # μ̄ ← (1 − m_b) μ̄ + m_b μ_b,  σ̄² ← (1 − m_b) σ̄² + m_b σ²_b·M_b/(M_b−1)
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        model.train(was_training)
    return model


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
        _check_image("x", x)
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

    # -- the Jacobian / NTK protocol (minilplr.theory.ntk): the same two-branch graph ---------
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


# --------------------------------------------------------------------------- buffers


def named_buffers(layer, prefix: str = "") -> "OrderedDict[str, object]":
    """All non-parameter state (batch norm's running statistics) of ``layer`` and its sub-layers.

    Names follow the parameter names: ``"stage2.block1.bn1.running_mean"``.
    The arrays are the layers' own (write into them with ``b[...] = v``).
    """
    out = OrderedDict()
    own = vars(layer).get("buffers", OrderedDict())  # a layer's own state (not a container's view)
    for name, buf in own.items():
        out[prefix + name] = buf
    for name, sub in getattr(layer, "layers", OrderedDict()).items():
        out.update(named_buffers(sub, f"{prefix}{name}."))
    return out
