r"""The fast kernels: every speed trick of the engine, each beside the plain expression it replaces.

The layer files of :mod:`minilplr.nn` are the textbook: each line is the
equation it computes, and on the *plain path* that line is what runs.  The
tricks that make a CPU training step fast (a workspace of reused arrays, a
product taken block by block while its factor is in cache, an input gradient
computed as a convolution with the flipped kernel, per-channel arithmetic on a
wider view of the same memory, sums by BLAS) live here instead, one function
each.  Every function

* names the plain expression it replaces, and the layer line that holds it;
* is tested equal to that expression on Hypothesis-drawn shapes
  (``tests/nn/test_fast.py``), to the rounding the docstring states;
* is chosen by default because a benchmark showed it pays
  (``benchmarks/bench_resnet.py`` prints the step on both paths; the README's
  "Speed" section has the numbers).  A trick that does not pay is deleted.

The switch
----------
A layer asks :func:`enabled` before it calls a fast kernel; when the answer is
no it runs its own plain lines.  The answer comes from, in order:

* :func:`plain` — a context manager: ``with minilplr.nn.fast.plain(): ...``
  runs the whole engine on the plain path inside the block
  (``plain("conv_forward")``: only the kernels named; :func:`path` is the
  same for either path, ``with path("fast"): ...``);
* :func:`use` — ``use("plain")`` or ``use("fast")``, for the rest of the process;
* the environment variable ``MINILPLR_KERNELS`` (``fast``, the default, or
  ``plain``), read once, at the first question.

The setting belongs to the process (one module-level value, changed under a
lock), not to a thread.  :func:`use` and :func:`path` / :func:`plain` (when
they leave every kernel on one path) also set ``MINILPLR_KERNELS``, so
worker processes started meanwhile (the sweep executors spawn fresh
interpreters with the driver's environment) run on the same path.  The two
paths differ only where a kernel's docstring says so: the same products and
sums, added in another order (float rounding).

Kernels (:data:`KERNELS`, the names :func:`enabled` and :func:`plain` take)
--------------------------------------------------------------------------
``conv_forward``
    :func:`im2col_matmul`, for :meth:`minilplr.nn.conv.Conv2D.forward`.
``conv_input_grad``
    :func:`conv_input_grad`, for :meth:`minilplr.nn.conv.Conv2D.backward`.
``batchnorm``
    :func:`batchnorm_forward` and :func:`batchnorm_backward`, for
    :class:`minilplr.nn.batchnorm.BatchNorm2D`, built from
    :func:`channel_sum` and :func:`per_channel`.

Shapes as in :mod:`minilplr.nn.conv`: images ``(N, C, H, W)`` (``H``, ``W``
the image's height and width), kernel size ``k``, stride ``s``, padding
``p``, output ``H_o × W_o``; ``M = N·H·W`` values per channel.

Imports only :mod:`minilplr.backend`: the layers import this module, never
the other way round.
"""
from __future__ import annotations

import math
import os
import threading
from contextlib import contextmanager

from ..backend import backend_of, get_array_module

__all__ = ["KERNELS", "ENV_VAR", "mode_from_env", "enabled", "use", "plain", "path", "im2col_matmul", "conv_input_grad",
           "channel_sum", "per_channel", "batchnorm_forward", "batchnorm_backward"]

KERNELS = ("conv_forward", "conv_input_grad", "batchnorm")
ENV_VAR = "MINILPLR_KERNELS"
_MODES = ("fast", "plain")

# --------------------------------------------------------------------------- the switch

_lock = threading.Lock()
_plain = None  # frozenset of the kernels on the plain path; None: not read from the environment yet


def mode_from_env() -> str:
    """``$MINILPLR_KERNELS`` read and checked: ``"fast"`` (also when unset) or ``"plain"``; ``ValueError`` naming it.

    Called by the command line before anything runs, so that a misspelt value
    is one line at the start, not a failure deep inside the first conv layer.
    """
    mode = os.environ.get(ENV_VAR, "fast").strip().lower() or "fast"
    if mode not in _MODES:
        raise ValueError(f"{ENV_VAR}: expected 'fast' or 'plain', got {os.environ[ENV_VAR]!r}")
    return mode


def _from_env() -> frozenset:
    return frozenset(KERNELS) if mode_from_env() == "plain" else frozenset()


def enabled(kernel: str) -> bool:
    """Whether ``kernel`` (one of :data:`KERNELS`) runs fast; ``False``: the layer runs its plain lines."""
    global _plain
    if _plain is None:
        with _lock:
            if _plain is None:
                _plain = _from_env()
    return kernel not in _plain


def _check_names(names) -> frozenset:
    bad = [n for n in names if n not in KERNELS]
    if bad:
        raise ValueError(f"kernels: expected names from {', '.join(KERNELS)}, got {', '.join(map(repr, bad))}")
    return frozenset(names or KERNELS)


def use(mode: str) -> None:
    """``"fast"`` (every kernel) or ``"plain"`` (none) for the rest of this process and the workers it starts."""
    global _plain
    if mode not in _MODES:
        raise ValueError(f"mode: expected 'fast' or 'plain', got {mode!r}")
    with _lock:
        _plain = frozenset(KERNELS) if mode == "plain" else frozenset()
        os.environ[ENV_VAR] = mode


def path(mode: str, *kernels: str):
    """Inside the block, ``kernels`` (default: all of :data:`KERNELS`) run on the ``mode`` path; then as before.

    ``mode`` is ``"plain"`` or ``"fast"``; the kernels not named keep their
    setting.  When the block leaves every kernel on one path, the
    environment variable says so too, for worker processes started inside it.
    Bad names are refused here, before the block.
    """
    if mode not in _MODES:
        raise ValueError(f"mode: expected 'fast' or 'plain', got {mode!r}")
    return _path(mode, _check_names(kernels))


@contextmanager
def _path(mode, names):
    global _plain
    enabled(KERNELS[0])  # read the environment first, so that leaving the block restores it
    with _lock:
        before, env_before = _plain, os.environ.get(ENV_VAR)
        _plain = before | names if mode == "plain" else before - names
        if _plain in (frozenset(), frozenset(KERNELS)):
            os.environ[ENV_VAR] = "plain" if _plain else "fast"
    try:
        yield
    finally:
        with _lock:
            _plain = before
            if env_before is None:
                os.environ.pop(ENV_VAR, None)
            else:
                os.environ[ENV_VAR] = env_before


def plain(*kernels: str):
    """``with plain(): ...`` runs the whole engine on the plain path inside the block (``plain(name, ...)``: those kernels only)."""
    return path("plain", *kernels)


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


# --------------------------------------------------------------------------- batch norm


def channel_sum(x):
    """``Σ_{n,h,w} x``: ``(N, C, H, W) -> (1, C, 1, 1)`` in ``x``'s dtype, accumulated in float64, by BLAS.

    The plain expression it replaces (:func:`minilplr.nn.batchnorm.channel_sum`)::

        x.sum(axis=(0, 2, 3), keepdims=True, dtype=xp.float64).astype(x.dtype)

    NumPy adds the tall ``(M, C)`` matrix of a channels-last ``x`` row after
    row, with a short inner loop of ``C`` elements per row, and converting
    every element to float64 on the way.  Here the ``M`` values of each
    channel are the rows of ``(M, C)`` (a view of channels-last memory, a
    copy otherwise), cut into blocks of ``b = ⌈M/256⌉`` rows (``⌊M/b⌋ ≤ 256``
    full blocks, and the ``M mod b < b`` rows left over); BLAS sums each full
    block in ``x``'s dtype as the product ``1ᵀ x_block``, and the blocks'
    sums and the left-over rows are added in float64.  The same sum in
    another order: a block's sum of ``b`` terms in the dtype errs by at most
    ``(b − 1)·ε/2`` of its ``Σ|x|`` in any order of addition (``ε`` the
    dtype's machine epsilon, ``ε/2`` the unit roundoff), so for every ``M``

        ``|fast − plain| ≤ (⌈M/256⌉ + 1)·(ε/2)·Σ|x|``  (plus float64's ``M·ε₆₄``)

    the ``+ 1`` for the two results' final rounding to the dtype.  (An
    earlier version took ``gcd(M, 256)`` blocks: one block, all ``M`` values
    summed in float32, for an odd ``M``.)  When ``256`` divides ``M`` the
    blocks are the same as that version's, and so are the bits.
    """
    xp = get_array_module(x)
    c = x.shape[1]
    rows = x.transpose(0, 2, 3, 1).reshape(-1, c)  # (M, C): one row per pixel, one column per channel
    m = rows.shape[0]
    b = -(-m // 256)  # ⌈M/256⌉ rows per block
    blocks = m // b
    part = xp.ones(b, dtype=x.dtype) @ rows[:blocks * b].reshape(blocks, b, c)  # (blocks, C), each in x's dtype
    total = part.sum(axis=0, dtype=xp.float64)
    if blocks * b < m:  # the M mod b < b rows left over, in float64 as the plain path adds them
        total = total + rows[blocks * b:].sum(axis=0, dtype=xp.float64)
    return total.astype(x.dtype).reshape(1, c, 1, 1)


def per_channel(op, x, v, out=None):
    """``op(x, v, out=out)`` for images ``x (N, C, H, W)`` and a per-channel ``v (1, C, 1, 1)``, faster.

    The plain expression it replaces is the broadcast itself, ``x - mu``,
    ``xhat * inv_std``, … (``op`` one of ``xp.add``, ``xp.subtract``,
    ``xp.multiply``).  Over channels-last memory NumPy broadcasts ``v`` with
    an inner loop of ``C`` elements per pixel (16 in the first stage of the
    ResNet), and the per-loop overhead dominates.  The same memory is a
    ``(M/t, t·C)`` matrix (``t = gcd(M, 64)`` pixels per row, a view), and
    ``v`` repeated ``t`` times is the matching row vector, so the inner loop
    runs over ``t·C`` elements.  The same operation on the same numbers:
    bit for bit the plain result.  Other layouts get the plain broadcast.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    m, t = n * h * w, math.gcd(n * h * w, 64)
    rows = x.transpose(0, 2, 3, 1)  # (N, H, W, C): C-contiguous when x is stored channels-last
    rows_out = None if out is None else out.transpose(0, 2, 3, 1)
    if t == 1 or not rows.flags.c_contiguous or (out is not None and not rows_out.flags.c_contiguous):
        return op(x, v, out=out)
    wide = (m // t, t * c)
    res = op(rows.reshape(wide), xp.tile(v.reshape(c), t), out=None if out is None else rows_out.reshape(wide))
    return res.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def batchnorm_forward(x, gamma, beta, eps, running=None):
    r"""Batch norm's forward arithmetic: ``(μ, σ², 1/√(σ² + ε), x̂, y)``, in place where it can be.

    The plain lines it replaces (:meth:`minilplr.nn.batchnorm.BatchNorm2D.forward`),
    with ``gamma``, ``beta`` ``(1, C, 1, 1)``; training mode (``running=None``)::

        mu = channel_sum(x) / m                   # μ = Σ x / M
        xc = x - mu                               # x − μ
        var = channel_sum(xc * xc) / m            # σ² = Σ (x − μ)² / M
        inv_std = 1.0 / (var + eps) ** 0.5        # 1/√(σ² + ε)
        xhat = xc * inv_std                       # x̂
        y = gamma * xhat + beta                   # y = γ x̂ + β

    and evaluation mode (``running = (μ̄, σ̄²)``, each ``(1, C, 1, 1)``): ``mu,
    var = running``, then the last three lines.  Here with :func:`channel_sum`
    and :func:`per_channel`, and ``x − μ`` scaled in place into ``x̂``: the
    same values but for :func:`channel_sum`'s order of summation.
    Returns ``mu``, ``var``, ``inv_std`` ``(1, C, 1, 1)``, ``xhat``, ``y`` ``(N, C, H, W)``.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    m = n * h * w
    if running is None:
        mu = channel_sum(x) / m  # μ = Σ x / M  (1, C, 1, 1)
        xhat = per_channel(xp.subtract, x, mu)  # x − μ
        var = channel_sum(xhat * xhat) / m  # σ² = Σ (x − μ)² / M  (biased)
        inv_std = 1.0 / (var + eps) ** 0.5  # 1/√(σ² + ε)
    else:
        mu, var = running
        inv_std = 1.0 / (var + eps) ** 0.5  # 1/√(σ̄² + ε)
        xhat = per_channel(xp.subtract, x, mu)  # x − μ̄
    per_channel(xp.multiply, xhat, inv_std, out=xhat)  # x̂ = (x − μ)/√(σ² + ε)
    y = per_channel(xp.multiply, xhat, gamma)  # γ x̂  (a new array: the layer keeps x̂)
    per_channel(xp.add, y, beta, out=y)  # y = γ x̂ + β
    return mu, var, inv_std, xhat, y


def batchnorm_backward(delta, xhat, scale, batch_stats, need_dx=True):
    r"""Batch norm's backward arithmetic: ``(∂L/∂γ, ∂L/∂β, ∂L/∂x)``, in place where it can be.

    The plain lines it replaces (:meth:`minilplr.nn.batchnorm.BatchNorm2D.backward`),
    with ``scale = γ/√(σ² + ε)`` ``(1, C, 1, 1)``::

        dgamma = channel_sum(delta * xhat)        # ∂L/∂γ = Σ δ x̂
        dbeta = channel_sum(delta)                # ∂L/∂β = Σ δ
        dx = scale * delta                                                  # evaluation mode
        dx = scale * (delta - xhat * (dgamma / m) - dbeta / m)              # training mode (batch_stats)

    Here with :func:`channel_sum`, and the training-mode ``dx`` in four
    in-place :func:`per_channel` operations on one array:
    ``x̂·(−∂L/∂γ/M)``, ``+ δ``, ``− ∂L/∂β/M``, ``· scale`` (the same roundings
    as the plain line: ``δ + x̂·(−a)`` is ``δ − x̂·a`` exactly).  The same
    values but for :func:`channel_sum`'s order of summation.  Returns
    ``dgamma``, ``dbeta`` ``(1, C, 1, 1)`` and ``dx`` ``(N, C, H, W)``
    (``None`` when not ``need_dx``).
    """
    xp = get_array_module(delta)
    n, c, h, w = delta.shape
    m = n * h * w
    dgamma = channel_sum(delta * xhat)  # ∂L/∂γ = Σ δ x̂  (1, C, 1, 1)
    dbeta = channel_sum(delta)  # ∂L/∂β = Σ δ
    if not need_dx:
        return dgamma, dbeta, None
    if not batch_stats:
        return dgamma, dbeta, per_channel(xp.multiply, delta, scale)  # eval: ∂L/∂x = γ δ / √(σ̄² + ε)
    dx = per_channel(xp.multiply, xhat, -dgamma / m)  # − x̂ ∂L/∂γ / M
    dx += delta  # + δ
    per_channel(xp.subtract, dx, dbeta / m, out=dx)  # − ∂L/∂β / M
    per_channel(xp.multiply, dx, scale, out=dx)  # ∂L/∂x = γ/√(σ² + ε) · (δ − ∂L/∂β/M − x̂ ∂L/∂γ/M)
    return dgamma, dbeta, dx
