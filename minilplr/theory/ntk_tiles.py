r"""Θ in tiles: the structured NTK at the paper's real ``n``, half the flops, bounded memory.

The structured rule of :mod:`minilplr.theory.ntk` as written holds two ``(N·K)²`` temporaries per layer
(``A Aᵀ + 1`` and ``G Gᵀ``) beside Θ: at the binary MNIST task's
``N = 12,665`` that is 3 × 1.28 GB in float64.
:func:`minilplr.theory.ntk.empirical_ntk` therefore builds a large Θ in square tiles of ``block_rows`` samples
(:func:`add_dense_share_tiled`): tile ``(I, J)`` of a dense layer's share is
``(A_I A_Jᵀ + 1) ⊙ (G_I G_Jᵀ)``, only tiles with ``I ≤ J`` are computed (Θ
is symmetric: half the flops) and the lower tiles are copied from the upper
ones once, after the last layer (:func:`_mirror_upper`).  Memory: Θ, the
forward pass's own caches in the model's dtype (every dense layer keeps its
input ``A``: ``N·(D + 4H)`` floats for the paper's MLP, 0.46 GB in float32),
one layer's ``A`` and ``G`` cast to Θ's dtype at a time (``N·(D + K·H)``),
and three tiles.  Tiles are chosen so that the tile temporaries stay under
``max_bytes`` (:func:`tile_rows`); a Θ whose untiled temporaries already fit takes the untiled
path (one tile), unchanged.  Tiling changes the order of nothing inside a
dot product: each entry is the same ``D``-term sum, so the tiled Θ equals
the untiled one to the rounding of that sum (bitwise on data whose sums are
exact; ``tests/theory/test_ntk_tiles.py``).

Imports the engine's layers (:mod:`minilplr.nn.layers`); never the training loops or the experiments.
"""
from __future__ import annotations

import math

from ..nn.layers import Dense, Sequential, add_symmetric_blocks

__all__ = ["tile_rows", "is_chain", "ntk_backward_tiled", "add_dense_share_tiled", "MIRROR_TILE"]


def tile_rows(n: int, K: int, itemsize: int, max_bytes: int, block_rows) -> int:
    """Tile side in samples: ``block_rows``, else ``N`` if the untiled temporaries fit, else three tiles in ``max_bytes``.

    ``n`` samples, ``K`` outputs, ``itemsize`` bytes per number of Θ.  The untiled rule holds two
    ``(N·K)²`` temporaries (``A Aᵀ + 1`` and ``G Gᵀ``); a tiled sweep holds three ``(rows·K)²`` tiles.
    """
    if block_rows is not None:
        return min(int(block_rows), n)
    if 2 * (n * K) ** 2 * itemsize <= max_bytes:  # A Aᵀ + 1 and G Gᵀ, (N·K)² each
        return n
    return max(1, int(math.isqrt(int(max_bytes) // (3 * K * K * itemsize))))


def is_chain(model) -> bool:
    """A plain chain (:class:`~minilplr.nn.layers.Sequential` whose ``ntk_backward`` is the chain rule): the tiled sweep can walk it."""
    return isinstance(model, Sequential) and type(model).ntk_backward is Sequential.ntk_backward \
        and type(model).backward is Sequential.backward


def ntk_backward_tiled(model, douts, theta, rows: int) -> None:
    """:meth:`~minilplr.nn.layers.Sequential.ntk_backward`'s sweep, each dense layer's share added in tiles.

    Last layer to first, as the chain rule: a :class:`Dense` layer adds its
    share with :func:`add_dense_share_tiled` (upper tiles only) and hands on
    its seeds ``G_k Wᵀ`` (``ntk_backward(douts, None)``); any other layer
    adds its block through the protocol (whole, both triangles).  Then
    :func:`_mirror_upper` makes Θ symmetric: every share is, so its upper
    tiles determine it.

    ``model`` a chain (:func:`is_chain`) after its forward pass; ``douts`` the ``K`` seeds ``(N, K)`` at its
    output; ``theta (N, K, N, K)`` the accumulator; ``rows`` the tile side in samples (:func:`tile_rows`).
    """
    layers = list(model.layers.values())
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if isinstance(layer, Dense) and type(layer).ntk_backward is Dense.ntk_backward:
            add_dense_share_tiled(theta, layer.x, douts, rows)
            douts = layer.ntk_backward(douts, None, need_dx=i > 0)  # ∂f_k/∂x = G_k Wᵀ
        else:
            douts = layer.ntk_backward(douts, theta, need_dx=i > 0)
    _mirror_upper(theta, rows)


def add_dense_share_tiled(theta, A, douts, rows: int) -> None:
    r"""Add a dense layer's share of Θ, upper tiles only: the speed trick for a large ``N``.

    The plain expression (:meth:`minilplr.nn.layers.Dense.ntk_backward`):

    .. math:: \Theta \mathrel{+}= (A A^\top + 1) \odot (G_k G_{k'}^\top)

    here tile by tile, for sample blocks ``I ≤ J`` of ``rows`` samples (the
    last one ragged):
    ``Θ[I, k, J, k'] += (A_I A_Jᵀ + 1) ⊙ (G_{k,I} G_{k',J}ᵀ)``.  Diagonal
    tiles are whole (``A_I A_Iᵀ`` is one symmetric product, BLAS ``syrk``);
    the tiles below them are left for :func:`_mirror_upper`.

    Parameters
    ----------
    theta : array (N, K, N, K), the accumulator; arithmetic in its dtype
    A : array (N, D), the layer's input (cast to ``theta.dtype`` here, once)
    douts : list of K arrays (N, H), the seeds ``G_k`` at the layer's output
    rows : int, the tile side in samples
    """
    n = theta.shape[0]
    A = A.astype(theta.dtype, copy=False)
    Gs = [d.astype(theta.dtype, copy=False) for d in douts]
    for i0 in range(0, n, rows):
        I = slice(i0, min(n, i0 + rows))
        for j0 in range(i0, n, rows):
            J = slice(j0, min(n, j0 + rows))
            diag = j0 == i0
            AA1 = A[I] @ A[I].T if diag else A[I] @ A[J].T  # a_i · a_j  (|I|, |J|)
            AA1 += 1  # + 1: the bias's share

            def block(k, k2, I=I, J=J, AA1=AA1):
                GG = Gs[k][I] @ Gs[k2][J].T  # g_ik · g_jk'  (|I|, |J|)
                GG *= AA1  # (A_I A_Jᵀ + 1) ⊙ (G_k,I G_k',Jᵀ)
                return GG

            add_symmetric_blocks(theta, block, I, None if diag else J)  # a diagonal tile: k ≤ k' only


MIRROR_TILE = 256
"""Side of the square pieces :func:`_mirror_upper` copies (transposed copies stay in cache)."""


def _mirror_upper(theta, rows: int) -> None:
    """``Θ[J, :, I, :] = Θ[I, :, J, :]ᵀ`` for sample blocks ``I < J``: the lower tiles from the upper ones.

    ``theta (N, K, N, K)``, in place.  Copied in ``MIRROR_TILE``-sided
    pieces of the flat ``(N·K, N·K)`` view: a transposed copy of a whole
    tile runs through memory by columns and is several times slower.
    """
    n, K = theta.shape[0], theta.shape[1]
    flat = theta.reshape(n * K, n * K)  # a view
    nk, s = n * K, MIRROR_TILE
    for i0 in range(0, n, rows):
        r0, r1 = i0 * K, min(n, i0 + rows) * K  # flat rows of block I; columns ≥ r1 belong to blocks J > I
        for a in range(r0, r1, s):
            for b in range(r1, nk, s):
                flat[b:b + s, a:min(r1, a + s)] = flat[a:min(r1, a + s), b:b + s].T
