r"""The convolution's fast kernels: im2col by blocks into a reused workspace, the input gradient by the flipped kernel."""
from __future__ import annotations

from ...backend import backend_of, get_array_module

# --------------------------------------------------------------------------- convolution


def _scratch(workspace, name, shape, like):
    """``xp.zeros(shape, like.dtype)``, but the array of the previous call of that shape when there is one.

    The plain expression is ``xp.zeros(shape, dtype)``: a fresh array every
    call.  ``X_col`` is large (``k²`` times the image), and a fresh array
    that large is new memory from the operating system, whose first write
    faults in every page; reusing it saves that.  ``workspace[name]`` (a dict
    the layer keeps, :attr:`minilplr.nn.conv.Conv2D.workspace`) is reused
    when its shape, dtype and array module match; otherwise a new zero array
    is stored there (returned without storing when ``workspace`` is
    ``None``).  A reused padded image keeps the zero border it was created
    with: only its interior is ever written.
    """
    xp = get_array_module(like)
    buf = None if workspace is None else workspace.get(name)
    if (buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != like.dtype
            or get_array_module(buf) is not xp):
        buf = xp.zeros(shape, dtype=like.dtype)
        if workspace is not None:
            workspace[name] = buf
    return buf


def _patch_view(x, k, stride, pad, workspace=None):
    r"""``x (N, C, H, W)`` -> ``(x̃, patches)``: the padded image ``(N, H+2p, W+2p, C)`` and its patch tensor.

    :func:`minilplr.nn.conv.im2col`'s strided view, with the padded image
    ``x̃`` written into ``workspace['xpad']`` (:func:`_scratch`).
    ``patches`` ``(N, H_o, W_o, k, k, C)`` has entry
    ``[n, i, j, a, b, c] = x̃[n, s i + a, s j + b, c]``.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
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


BLOCK_ROWS = 2048  # rows of X_col per block in im2col_matmul: 2048 · 9 · 16 float32 = 1.2 MB, about one core's L2


def im2col_matmul(x, k, stride, pad, Wcol, workspace=None, keep=True, block_rows=None):
    r"""``(X_col, X_col @ Wcol, (H_o, W_o))`` for ``X_col = im2col(x, k, s, p)``, the product taken while ``X_col`` is written.

    The plain expression it replaces (:meth:`minilplr.nn.conv.Conv2D.forward`)::

        cols, (ho, wo) = im2col(x, k, stride, pad)   # X_col (N·H_o·W_o, k·k·C)
        z = cols @ Wcol                              # z = X_col Wcol, Wcol (k·k·C, F)

    ``X_col`` is ``k²`` times the image, far more than a CPU's caches, so the
    plain product reads back from memory what the copy just wrote.  Here the
    rows of ``X_col`` are written a few samples at a time (about
    ``block_rows`` rows, ~1 MB, which stay in cache) and each block's rows of
    ``X_col @ Wcol`` are computed at once, from the cache; the rows of a
    product depend only on the same rows of its left factor, so the blocks'
    products are the rows of the whole product: the same dot products, equal
    to the plain ``z`` up to the order BLAS sums each one in (float rounding).
    ``X_col`` itself is the same copy, bit for bit, and is still written whole:
    the backward pass needs it for ``X_colᵀ δ``.  ``X_col`` and the padded
    image go into ``workspace`` (:func:`_scratch`).  1×1 kernels take the
    plain expression: their patches are the (strided) pixels, no larger than
    the image.

    ``keep=False`` (when ``X_col`` is not needed afterwards, as for the input
    gradient, :func:`conv_input_grad`): the blocks are written, one after the
    other, into one block-sized array, never into a whole ``X_col``, and
    ``cols`` is returned as ``None``.

    ``block_rows``: default :data:`BLOCK_ROWS` on the host (NumPy), and one
    block of all rows on a device: a GPU gains nothing from a CPU's cache,
    and a Python loop of small products would cost a kernel launch each.

    Returns ``cols (N·H_o·W_o, k·k·C)`` (``workspace['cols']`` when given;
    ``None`` with ``keep=False``), ``z (N·H_o·W_o, F)`` and ``(H_o, W_o)``.
    """
    xp = get_array_module(x)
    n, c = x.shape[:2]
    xpad, patches = _patch_view(x, k, stride, pad, workspace)
    ho, wo = patches.shape[1:3]
    m = ho * wo  # rows of X_col per sample
    if k == 1:
        if stride == 1:  # a 1×1 convolution's patches are the pixels: a view
            cols = xpad.reshape(n * m, c)
        else:
            cols = _scratch(workspace, "cols", (n * m, c), x)
            xp.copyto(cols.reshape(patches.shape), patches)
        return (cols if keep else None), cols @ Wcol, (ho, wo)
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


def conv_input_grad(delta, Wk, x_shape, stride, pad, workspace=None):
    r"""``∂L/∂x = col2im(δ Wk_colᵀ)`` ``(N, C_in, H, W)`` for ``δ`` as rows ``(N·H_o·W_o, C_out)``, without forming ``δ Wk_colᵀ``.

    The plain expression it replaces (:meth:`minilplr.nn.conv.Conv2D.backward`)::

        dcols = delta @ Wk_col.T                      # ∂L/∂X_col = δ Wk_colᵀ  (N·H_o·W_o, k·k·C_in)
        dx = col2im(dcols, x_shape, k, stride, pad)   # ∂L/∂x = col2im(∂L/∂X_col)

    ``Wk (k, k, C_in, C_out)`` is the kernel, ``workspace`` the layer's (the
    stride-1 form keeps its arrays in ``workspace['input_grad']``).  Two forms:

    * stride 1 (and ``p <= k - 1``): the scatter is itself a convolution,
      of ``δ`` zero-padded by ``k - 1 - p`` with the kernel flipped in both
      spatial axes and its channels swapped,

      .. math:: \frac{\partial L}{\partial x}[n, c, y, x] =
                \sum_{o, a, b} Wk[k-1-a,\ k-1-b,\ c,\ o]\;
                \tilde\delta[n, o,\ y + a,\ x + b]

      (substitute ``a -> k-1-a``: pixel ``(y, x)`` receives from every
      output pixel ``(y + p - a, x + p - b)`` whose patch covers it), so it
      is ``im2col(δ, k, 1, k-1-p) @ Wk_flip`` with ``Wk_flip =
      Wk[::-1, ::-1].transpose(0, 1, 3, 2)`` as a ``(k·k·C_out, C_in)``
      matrix, taken block by block in cache by :func:`im2col_matmul` without
      keeping the patch matrix;
    * other strides: the columns ``(a, b, :)`` of ``δ Wk_colᵀ`` are
      ``δ Wk[a, b]ᵀ`` ``(N·H_o·W_o, C_in)``, so they are formed one kernel
      offset at a time and each is added onto the image at once, as
      :func:`~minilplr.nn.conv.col2im` adds the columns of its argument.  No
      ``(N·H_o·W_o, k·k·C_in)`` matrix is written, and the adds read
      contiguous memory instead of strided columns.

    Both are the plain expression's products and sums in another order:
    equal to it up to float rounding.  Returns an ``(N, C_in, H, W)`` view of
    channels-last memory.
    """
    xp = get_array_module(delta)
    n, c_in, h, w = x_shape
    k, c_out = Wk.shape[0], Wk.shape[3]
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    if stride == 1 and pad <= k - 1:
        Wk_flip = Wk[::-1, ::-1].transpose(0, 1, 3, 2).reshape(-1, c_in)  # (k·k·C_out, C_in)
        delta_img = delta.reshape(n, ho, wo, c_out).transpose(0, 3, 1, 2)  # δ as an image (N, C_out, H_o, W_o)
        ws = None if workspace is None else workspace.setdefault("input_grad", {})
        _, dx, (h1, w1) = im2col_matmul(delta_img, k, 1, k - 1 - pad, Wk_flip, ws, keep=False)
        return dx.reshape(n, h1, w1, c_in).transpose(0, 3, 1, 2)  # ∂L/∂x = im2col(δ, k, 1, k-1-p) Wk_flip
    dpad = xp.zeros((n, h + 2 * pad, w + 2 * pad, c_in), dtype=delta.dtype)
    for a in range(k):
        for b in range(k):
            dpad[:, a:a + stride * ho:stride, b:b + stride * wo:stride, :] += \
                (delta @ Wk[a, b].T).reshape(n, ho, wo, c_in)  # columns (a, b, :) of δ Wk_colᵀ, onto their pixels
    return dpad[:, pad:pad + h, pad:pad + w, :].transpose(0, 3, 1, 2)
