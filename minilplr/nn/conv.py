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
``(D, H) = (k·k·C_in, C_out)`` weight of a :class:`~minilplr.nn.layers.Dense`
layer, and its backward pass is the dense layer's, followed by
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
offsets only, each iteration one vectorised strided add.  The one loop over
samples is a cache trick, :func:`_im2col_matmul` (``X_col @ Wk_col`` taken
a block of a few samples at a time, while the block is in cache), which also
computes a stride-1 layer's input gradient as a convolution of ``δ`` with the
flipped kernel (:meth:`Conv2D._input_grad`).

The Jacobian and the NTK
------------------------
:class:`Conv2D` also implements the per-sample protocol of
:mod:`minilplr.theory.ntk` (``per_sample_backward``; ``ntk_backward`` is the
generic rule of :class:`~minilplr.nn.layers.Layer`, since a convolution's
Jacobian block has no cheap Kronecker form).
"""
from __future__ import annotations

from collections import OrderedDict

from ..backend import backend_of, get_array_module
from ..validate import check_image, check_int
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

    ``workspace`` (optional, a dict the caller keeps between calls): write
    ``x̃`` and ``X_col`` into the arrays of the previous call of the same shape
    (:func:`_scratch`) instead of fresh ones; the returned ``cols`` is then
    the workspace's array, overwritten by the next call.

    Returns
    -------
    cols : array (N·H_o·W_o, k·k·C)
    out_hw : (H_o, W_o)
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    xpad, patches = _patch_view(x, k, stride, pad, workspace)
    ho, wo = patches.shape[1:3]
    if k == 1 and stride == 1:  # a 1×1 convolution's patches are the pixels: a view
        return xpad.reshape(n * ho * wo, c), (ho, wo)
    if workspace is None:
        return patches.reshape(n * ho * wo, k * k * c), (ho, wo)  # the one copy
    cols = _scratch(workspace, "cols", (n * ho * wo, k * k * c), x)
    xp.copyto(cols.reshape(patches.shape), patches)  # the one copy, into the reused array
    return cols, (ho, wo)


def _patch_view(x, k, stride, pad, workspace=None):
    r"""``x (N, C, H, W)`` -> ``(x̃, patches)``: the padded image ``(N, H+2p, W+2p, C)`` and its patch tensor.

    ``x̃`` is ``x`` zero-padded by ``p``, stored channels-last (in
    ``workspace['xpad']`` when a workspace is given, see :func:`_scratch`);
    ``patches`` ``(N, H_o, W_o, k, k, C)`` is a strided view of it, entry
    ``[n, i, j, a, b, c] = x̃[n, s i + a, s j + b, c]``: moving one output
    pixel moves ``s`` input pixels, moving one kernel offset moves one input
    pixel.  Reshaped to ``(N·H_o·W_o, k·k·C)`` (a copy) it is ``X_col``.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, k, stride, pad), conv_output_size(w, k, stride, pad)
    x_nhwc = x.transpose(0, 2, 3, 1)
    if pad:
        xpad = _scratch(workspace, "xpad", (n, h + 2 * pad, w + 2 * pad, c), x)  # x̃: a zero border of width p
        xpad[:, pad:pad + h, pad:pad + w, :] = x_nhwc
    else:
        xpad = xp.ascontiguousarray(x_nhwc)  # free if x is already channels-last
    sn, sh, sw, sc = xpad.strides
    patches = xp.lib.stride_tricks.as_strided(
        xpad, shape=(n, ho, wo, k, k, c), strides=(sn, sh * stride, sw * stride, sh, sw, sc)
    )
    return xpad, patches


BLOCK_ROWS = 2048  # rows of X_col per block in _im2col_matmul: 2048 · 9 · 16 float32 = 1.2 MB, about one core's L2


def _im2col_matmul(x, k, stride, pad, Wcol, workspace=None, keep=True, block_rows=None):
    r"""``(X_col, X_col @ Wcol)`` for ``X_col = im2col(x, k, s, p)``, the product taken while ``X_col`` is written.

    The plain expression it replaces::

        cols, _ = im2col(x, k, stride, pad, workspace)
        z = cols @ Wcol                      # (N·H_o·W_o, F), Wcol (k·k·C, F)

    A speed trick, kept because it pays: ``X_col`` is ``k²`` times the image
    (75 MB in the first stage of the ResNet at ``N = 128``), far more than the
    CPU's caches, so the plain product reads back from memory what the copy
    just wrote.  Here the rows of ``X_col`` are written a few samples at a
    time (about ``block_rows`` rows, ~1 MB, which stay in cache) and each
    block's rows of ``X_col @ Wcol`` are computed at once, from the cache;
    the rows of a product depend only on the same rows of its left factor,
    so the blocks' products are exactly the rows of the whole product.
    ``X_col`` is still written whole: the backward pass needs it for
    ``X_colᵀ δ``.  Measured on this project's 2-core CPU (quiet machine,
    ``benchmarks/bench_resnet.py`` shapes, interleaved A/B in one process):
    this blocking and the stride-1 input gradient of
    :meth:`Conv2D._input_grad` together make the ResNet SGD step 1.16–1.20×
    faster on one BLAS thread (3 processes) and 1.02–1.23× on two (6
    processes, median 1.18: the spread is between processes, not within
    one); this blocking alone 0.99–1.05× on two threads, 1.10× on one; a
    16-channel ``32×32`` forward pass inside the step 12.0 -> 10.5 ms.  (Not
    keeping ``X_col`` and re-forming it block by block for ``X_colᵀ δ`` as
    well was faster on one thread but 0.8–1.0× on two: ``X_colᵀ δ`` as a sum
    of many small products parallelises badly.)  1×1 kernels take the plain
    expression: their patches are the (strided) pixels, no larger than the
    image.

    ``keep=False`` (when ``X_col`` is not needed afterwards, as for the input
    gradient, :meth:`Conv2D._input_grad`): the blocks are written, one after
    the other, into one block-sized array, never into a whole ``X_col``, and
    ``cols`` is returned as ``None``.

    ``block_rows``: default :data:`BLOCK_ROWS` on the host (NumPy), and one
    block of all rows on a device: a GPU gains nothing from a CPU's cache,
    and a Python loop of small products would cost a kernel launch each.

    Returns ``cols (N·H_o·W_o, k·k·C)`` (``workspace['cols']`` when given;
    ``None`` with ``keep=False``), ``z (N·H_o·W_o, F)`` and ``(H_o, W_o)``.
    """
    if k == 1:
        cols, out_hw = im2col(x, k, stride, pad, workspace)
        return (cols if keep else None), cols @ Wcol, out_hw
    xp = get_array_module(x)
    n, c = x.shape[:2]
    _, patches = _patch_view(x, k, stride, pad, workspace)
    ho, wo = patches.shape[1:3]
    m = ho * wo  # rows of X_col per sample
    if block_rows is None:
        block_rows = BLOCK_ROWS if backend_of(x).name == "numpy" else n * m  # a device: one block, the plain product
    per = max(1, block_rows // m)  # samples per block
    cols = _scratch(workspace, "cols" if keep else "block", ((n if keep else per) * m, k * k * c), x)
    z = xp.empty((n * m, Wcol.shape[1]), dtype=xp.result_type(cols, Wcol))
    for n0 in range(0, n, per):
        r0, r1 = n0 * m, min(n0 + per, n) * m
        block = cols[r0:r1] if keep else cols[:r1 - r0]  # where rows r0:r1 of X_col are written
        xp.copyto(block.reshape((-1,) + patches.shape[1:]), patches[n0:n0 + per])  # rows r0:r1 of X_col
        xp.matmul(block, Wcol, out=z[r0:r1])  # rows r0:r1 of X_col @ Wcol
    return (cols if keep else None), z, (ho, wo)


def _scratch(workspace, name, shape, like):
    """``xp.zeros(shape, like.dtype)``, but the array of the previous call of that shape when there is one.

    A speed trick, not maths: ``X_col`` is large (75 MB for the first stage of
    the ResNet at ``N = 128``), and a fresh array that large is new memory
    from the operating system, whose first write faults in every 4 KiB page.
    Reusing it keeps the ResNet step about 10–15 % faster on a 2-core CPU
    (``benchmarks/bench_resnet.py``, 2 threads: 156 ms against 180 ms median
    per step).  ``workspace[name]`` is reused when its shape, dtype and array
    module match; otherwise a new zero array is stored there (returned without
    storing when ``workspace`` is ``None``).  A reused padded image keeps the
    zero border it was created with: only its interior is ever written.
    """
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
    See :func:`_scatter_patches` for how.

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

    .. math:: z[n, o, i, j] = b_o + \sum_{c, a, b} Wk[a, b, c, o]\;
              \tilde x[n, c,\ s i + a,\ s j + b]

    Parameters
    ----------
    weight : array (k, k, C_in, C_out)
        The kernel ``Wk``, kept as ``params['W']`` and stored so that
        ``Wk_col = Wk.reshape(k·k·C_in, C_out)`` is the
        ``(D, H) = (fan_in, fan_out)`` weight of a dense layer on patches.
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
        self.workspace = {}  # im2col's reused arrays (see _scratch): speed only
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
        self.cols, z, (ho, wo) = _im2col_matmul(x, k, s, p, self.params["W"].reshape(-1, self.c_out), self.workspace)
        # X_col = im2col(x) (N·H_o·W_o, k·k·C_in);  z = X_col Wk_col  (N·H_o·W_o, C_out)
        if "b" in self.params:
            z += self.params["b"]  # + b
        return _from_rows(z, n, ho, wo)

    def backward(self, dout, need_dx: bool = True):
        """``dout (N, C_out, H_o, W_o) -> dx (N, C_in, H, W)``; fills ``grads['W']``, ``grads['b']``."""
        Wk = self.params["W"]
        delta = _rows(dout)  # δ (N·H_o·W_o, C_out)
        self.grads["W"] = (self.cols.T @ delta).reshape(Wk.shape)  # ∂L/∂Wk_col = X_colᵀ δ
        if "b" in self.params:
            self.grads["b"] = delta.sum(axis=0)  # ∂L/∂b = Σ_rows δ
        return self._input_grad(delta, dout.shape) if need_dx else None

    def _input_grad(self, delta, out_shape):
        r"""``∂L/∂x = col2im(δ Wk_colᵀ)`` for ``δ`` as rows ``(N·H_o·W_o, C_out)``, without forming ``δ Wk_colᵀ``.

        The plain expression is ``col2im(delta @ Wk_col.T, x_shape, k, s, p)``:
        the dense layer's ``∂L/∂X_col = δ Wk_colᵀ``, then the scatter.  A
        speed trick, kept because it pays, in two forms:

        * stride 1 (and ``p <= k - 1``): the scatter is itself a convolution,
          of ``δ`` zero-padded by ``k - 1 - p`` with the kernel flipped in
          both spatial axes and its channels swapped,

          .. math:: \frac{\partial L}{\partial x}[n, c, y, x] =
                    \sum_{o, a, b} Wk[k-1-a,\ k-1-b,\ c,\ o]\;
                    \tilde\delta[n, o,\ y + a,\ x + b]

          (substitute ``a -> k-1-a``: pixel ``(y, x)`` receives from every
          output pixel ``(y + p - a, x + p - b)`` whose patch covers it), so
          it is ``im2col(δ, k, 1, k-1-p) @ Wk_flip`` with ``Wk_flip =
          Wk[::-1, ::-1].transpose(0, 1, 3, 2)`` as a ``(k·k·C_out, C_in)``
          matrix, taken block by block in cache by :func:`_im2col_matmul`
          without keeping the patch matrix.  Measured on this project's 2-core
          CPU (quiet machine, interleaved A/B of the whole step in one
          process, ``benchmarks/bench_resnet.py`` shapes): alone, the ResNet
          SGD step 1.02–1.11× faster on 2 BLAS threads, 1.07× on one; with the
          forward blocking of :func:`_im2col_matmul`, see there.
        * other strides: the columns ``(a, b, :)`` of ``δ Wk_colᵀ`` are
          ``δ Wk[a, b]ᵀ`` ``(N·H_o·W_o, C_in)``, so they are formed one
          kernel offset at a time and each is added onto the image at once
          (:func:`_scatter_patches`).  No ``(N·H_o·W_o, k·k·C_in)`` matrix is
          written, and the adds read contiguous memory instead of strided
          columns: the plain expression makes a ResNet SGD step ~1.5x slower.
        """
        Wk = self.params["W"]
        n, _, ho, wo = out_shape
        k, p = self.k, self.padding
        if self.stride == 1 and p <= k - 1:
            Wk_flip = Wk[::-1, ::-1].transpose(0, 1, 3, 2).reshape(-1, self.c_in)  # (k·k·C_out, C_in)
            _, dx, (h, w) = _im2col_matmul(_from_rows(delta, n, ho, wo), k, 1, k - 1 - p, Wk_flip,
                                           self.workspace.setdefault("input_grad", {}), keep=False)
            return _from_rows(dx, n, h, w)  # ∂L/∂x = im2col(δ, k, 1, k-1-p) Wk_flip
        return _scatter_patches(lambda a, b: (delta @ Wk[a, b].T).reshape(n, ho, wo, self.c_in),
                                self.x_shape, self.k, self.stride, self.padding, delta)

    def per_sample_backward(self, dout, need_dx: bool = True):
        r"""``dout (N, C_out, H_o, W_o) -> (dx, {'W': (N, k, k, C_in, C_out), 'b': (N, C_out)})``.

        The Jacobian / NTK protocol of :mod:`minilplr.theory.ntk`: :meth:`backward`
        without the sum over samples.  Sample ``n``'s gradient is the dense
        rule on *its own* patches, summed over its ``H_o·W_o`` positions:
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
        dx = self._input_grad(delta, dout.shape) if need_dx else None
        return dx, psg

    def __repr__(self):
        return (f"Conv2D({self.c_in}->{self.c_out}, k={self.k}, stride={self.stride}, "
                f"padding={self.padding}, bias={'b' in self.params})")
