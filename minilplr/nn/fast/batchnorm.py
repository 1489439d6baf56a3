r"""Batch norm's fast kernels: sums by BLAS, per-channel arithmetic on a wider view, in place where they can be."""
from __future__ import annotations

import math

from ...backend import get_array_module

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
