r"""The Jacobian ``J = ∂r/∂θ`` and the empirical NTK ``Θ = J Jᵀ``; its spectrum is in :mod:`.spectrum`.

THEORY.md §1: for ``N`` samples with ``K`` outputs each, the residual
``r = f(X; θ) − y`` has ``N·K`` entries, ``J = ∂r/∂θ = ∂f/∂θ`` is
``(N·K, P)`` and the empirical neural tangent kernel is ``Θ = J Jᵀ``,
``(N·K, N·K)``.  Its smallest eigenvalue gives the PL constant
``μ = λ_min(Θ)/n`` of Theorem 5.1 (:mod:`minilplr.theory.pl`).

Orders
------
* Rows: sample ``i``, output ``k`` -> row ``i·K + k`` (``f(X).reshape(-1)``
  of the ``(N, K)`` output, C order).
* Columns: :func:`minilplr.nn.params.flatten` order, i.e. the order of
  ``model.params`` (layers first to last, ``W`` before ``b``, C order).

Two ways to Θ, one function (:func:`empirical_ntk`)
----------------------------------------------------
``method="jacobian"``
    The textbook way: build ``J`` (:func:`jacobian`), return ``J Jᵀ``.
    Memory ``N·K·P`` numbers: for the paper's MLP (``P ≈ 14.2 M``) at
    ``N = 1000`` that is 57 GB in float32, so this is for teaching and
    checking on small networks.
``method="structured"``
    Never forms ``J``.  A dense layer's per-sample Jacobian block is an outer
    product ``a_i g_{ik}ᵀ`` of its input ``a_i`` and the sensitivity
    ``g_{ik} = ∂f_k(x_i)/∂z`` at its output, so its share of Θ is

    .. math:: \Theta^{(l)} = (A A^\top + 1) \odot (G G^\top)

    (``A (N, D)`` the inputs, ``G`` the sensitivities, one row per sample
    and output; ``+1`` is the bias).  Θ is the sum of the layers' shares,
    gathered in one backward sweep of ``K`` seeds: cost two ``N × N`` Gram
    matrices per layer, memory ``O(N²K²)``.

Θ in tiles: the paper's real ``n``
-----------------------------------
The structured rule as written holds two ``(N·K)²`` temporaries per layer
(``A Aᵀ + 1`` and ``G Gᵀ``) beside Θ: at the binary MNIST task's
``N = 12,665`` that is 3 × 1.28 GB in float64.  :func:`empirical_ntk`
therefore builds a large Θ in square tiles of ``block_rows`` samples
(:func:`add_dense_share_tiled`): tile ``(I, J)`` of a dense layer's share is
``(A_I A_Jᵀ + 1) ⊙ (G_I G_Jᵀ)``, only tiles with ``I ≤ J`` are computed (Θ
is symmetric: half the flops) and the lower tiles are copied from the upper
ones once, after the last layer (:func:`_mirror_upper`).  Memory: Θ, the
forward pass's own caches in the model's dtype (every dense layer keeps its
input ``A``: ``N·(D + 4H)`` floats for the paper's MLP, 0.46 GB in float32),
one layer's ``A`` and ``G`` cast to Θ's dtype at a time (``N·(D + K·H)``),
and three tiles.  Tiles are chosen so that the tile temporaries stay under
``max_bytes``; a Θ whose untiled temporaries already fit takes the untiled
path (one tile), unchanged.  Tiling changes the order of nothing inside a
dot product: each entry is the same ``D``-term sum, so the tiled Θ equals
the untiled one to the rounding of that sum (bitwise on data whose sums are
exact; ``tests/theory/test_ntk.py``).

The layer protocol
------------------
What a layer implements so that the Jacobian and Θ can be built from it
(``per_sample_backward``, ``ntk_backward``: its share of Θ, ``need_dx``,
state buffers) is documented beside the layers that implement it, in the
module docstring of :mod:`minilplr.nn.layers`.  :func:`jacobian` sweeps the
seeds through ``per_sample_backward``; the structured :func:`empirical_ntk`
through ``ntk_backward``.

Precision
---------
Θ is assembled in ``dtype`` (default: the model's, :func:`minilplr.nn.params.params_dtype`;
else :func:`minilplr.backend.resolve_dtype`).  ``dtype="float64"`` on a
float32 model gives the exact (to float64) kernel of the float32-rounded
factors; why that matters for ``λ_min`` is in :mod:`minilplr.theory.spectrum`
("an honest ``λ_min``").  :func:`float64_copy` makes a float64 twin of a
model, for checks that need float64 factors too.

Imports the engine (:mod:`minilplr.nn`) and the backend; never the training
loops or the experiments.
"""
from __future__ import annotations

import copy
import math

import numpy as np

from ..backend import get_array_module, resolve_dtype
from ..nn.state import leaves_untouched
from ..nn.layers import Dense, Sequential, add_symmetric_blocks
from ..nn.params import num_params, param_slices, params_dtype

__all__ = [
    "jacobian",
    "empirical_ntk",
    "traced_ntk",
    "add_dense_share_tiled",
    "float64_copy",
    "METHODS",
]

METHODS = ("structured", "jacobian")
DEFAULT_MAX_BYTES = 256 * 2**20
"""Default bound on the transient memory of :func:`jacobian` (per-sample gradients of one chunk)."""


# --------------------------------------------------------------------------- inputs


def _check_model(model):
    if not hasattr(model, "forward") or not hasattr(model, "params") or not hasattr(model, "ntk_backward"):
        raise TypeError(f"model: expected a minilplr Model or Sequential, got {type(model).__name__}")


def _prepare(model, X):
    """``X`` checked (and cast) by the model when it can, else checked for a shape."""
    _check_model(model)
    if hasattr(model, "check_input"):
        return model.check_input(X)
    if not hasattr(X, "shape") or X.ndim < 2:
        raise ValueError(f"X: expected an array of shape (N, ...), got {getattr(X, 'shape', type(X).__name__)}")
    return X


def _outputs(model, X):
    """Forward ``X`` and check the output is ``(N, K)``."""
    out = model.forward(X)
    if out.ndim != 2:
        raise ValueError(f"model: expected outputs of shape (N, K), got {tuple(out.shape)}")
    return out


def _seed(out, k: int):
    """The seed of output ``k``: ``(N, K)``, ones in column ``k``, zeros elsewhere."""
    xp = get_array_module(out)
    s = xp.zeros(out.shape, dtype=out.dtype)
    s[:, k] = 1
    return s


# --------------------------------------------------------------------------- the Jacobian


@leaves_untouched  # forward passes on the caller's model: it gets it back as it was
def jacobian(model, X, max_bytes: int = DEFAULT_MAX_BYTES):
    r"""The explicit Jacobian ``J = ∂f(X; θ)/∂θ = ∂r/∂θ``, shape ``(N·K, P)``.

    .. math:: J_{iK+k,\ p} = \frac{\partial f_k(x_i; \theta)}{\partial \theta_p}

    Built from the hand-written backward pass: for each output ``k`` one
    backward sweep of the seed ``e_k`` through
    :meth:`~minilplr.nn.layers.Sequential.per_sample_backward` gives the rows
    ``i·K + k`` of every sample of a chunk at once (no loop over samples).

    Parameters
    ----------
    model : Model or Sequential
    X : array (N, D), on the model's backend
    max_bytes : int
        Bound on the memory used besides ``J`` itself: samples are processed
        in chunks of ``max(1, max_bytes // (P · itemsize))``.  ``J`` is
        ``N·K·P·itemsize`` bytes on its own.

    Returns
    -------
    J : array (N·K, P), the model's dtype and backend; columns in
        ``model.params`` (flat) order.
    """
    X = _prepare(model, X)
    if not (isinstance(max_bytes, (int, np.integer)) and max_bytes > 0):
        raise ValueError(f"max_bytes: expected a positive integer, got {max_bytes!r}")
    xp = get_array_module(X)
    params = model.params
    n, P = X.shape[0], num_params(params)
    slices = param_slices(params)
    dtype = next(iter(params.values())).dtype
    chunk = max(1, int(max_bytes) // (P * dtype.itemsize))
    J = None
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        out = _outputs(model, X[s:e])  # (c, K); caches for the backward sweeps
        K = out.shape[1]
        if J is None:
            J = xp.empty((n * K, P), dtype=out.dtype)
        for k in range(K):
            _, psg = model.per_sample_backward(_seed(out, k), need_dx=False)
            if list(psg) != list(slices):
                raise RuntimeError(
                    f"model: per_sample_backward returned keys {list(psg)}, expected {list(slices)}"
                )
            rows = slice(s * K + k, e * K, K)  # rows i·K + k for i in [s, e)
            for name, cols in slices.items():
                J[rows, cols] = psg[name].reshape(e - s, -1)  # ∂f_k(x_i)/∂θ, one row per sample
    return J


# --------------------------------------------------------------------------- the empirical NTK


@leaves_untouched  # forward passes on the caller's model: it gets it back as it was
def empirical_ntk(model, X, method: str = "structured", dtype=None, max_bytes: int = DEFAULT_MAX_BYTES,
                  block_rows: int | None = None):
    r"""The empirical neural tangent kernel ``Θ = J Jᵀ``, shape ``(N·K, N·K)``.

    .. math:: \Theta_{iK+k,\ jK+k'} = \sum_p \frac{\partial f_k(x_i)}{\partial\theta_p}
              \frac{\partial f_{k'}(x_j)}{\partial\theta_p}

    (THEORY.md §1, "the empirical NTK is defined as Θ = J Jᵀ", proof of
    Theorem 5.1.)

    Parameters
    ----------
    model : Model or Sequential
    X : array (N, D), on the model's backend
    method : {"structured", "jacobian"}
        ``"structured"``: each layer adds its own block (a dense layer
        ``(A Aᵀ + 1) ⊙ (G Gᵀ)``), ``J`` is never formed.  ``"jacobian"``:
        ``J Jᵀ`` from :func:`jacobian` (memory ``N·K·P``).
    dtype : None, "float32" or "float64"
        Where Θ is accumulated, and the dtype of the result.  ``None``: the
        model's dtype.  The forward and backward passes always run in the
        model's dtype; ``"float64"`` on a float32 model gives the exact
        (to float64) kernel of the float32-rounded factors.
    max_bytes : int
        ``"jacobian"``: passed to :func:`jacobian`.  ``"structured"``: bound
        on the ``N × N``-sized temporaries beside Θ.  When the untiled rule's
        two ``(N·K)²`` temporaries exceed it, dense layers of a chain add
        their share in tiles of ``block_rows`` samples, three tiles of
        ``(block_rows·K)²`` numbers under ``max_bytes`` (module docstring,
        "Θ in tiles").
    block_rows : int, optional
        ``"structured"`` only: the tile side in samples, overriding the
        choice from ``max_bytes`` (``≥ N``: untiled).

    Returns
    -------
    theta : array (N·K, N·K), ``dtype``, on the model's backend; row/column
        ``i·K + k`` is sample ``i``, output ``k``.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(repr(m) for m in METHODS)}, got {method!r}")
    _check_model(model)
    dt = params_dtype(model) if dtype is None else resolve_dtype(dtype)
    if not (isinstance(max_bytes, (int, np.integer)) and max_bytes > 0):
        raise ValueError(f"max_bytes: expected a positive integer, got {max_bytes!r}")
    if block_rows is not None and not (isinstance(block_rows, (int, np.integer)) and block_rows > 0):
        raise ValueError(f"block_rows: expected a positive integer or None, got {block_rows!r}")
    if method == "jacobian":
        J = jacobian(model, X, max_bytes=max_bytes).astype(dt, copy=False)
        return J @ J.T  # Θ = J Jᵀ
    X = _prepare(model, X)
    xp = get_array_module(X)
    out = _outputs(model, X)  # (N, K); every layer keeps its A
    n, K = out.shape
    rows = _tile_rows(n, K, dt.itemsize, max_bytes, block_rows)
    theta = xp.zeros((n, K, n, K), dtype=dt)
    seeds = [_seed(out, k) for k in range(K)]
    if rows >= n or not _is_chain(model):
        model.ntk_backward(seeds, theta, need_dx=False)  # the layer protocol, untiled
    else:
        _structured_tiled(model, seeds, theta, rows)
    return theta.reshape(n * K, n * K)


def _tile_rows(n: int, K: int, itemsize: int, max_bytes: int, block_rows) -> int:
    """Tile side in samples: ``block_rows``, else ``N`` if the untiled temporaries fit, else three tiles in ``max_bytes``."""
    if block_rows is not None:
        return min(int(block_rows), n)
    if 2 * (n * K) ** 2 * itemsize <= max_bytes:  # A Aᵀ + 1 and G Gᵀ, (N·K)² each
        return n
    return max(1, int(math.isqrt(int(max_bytes) // (3 * K * K * itemsize))))


def _is_chain(model) -> bool:
    """A plain chain (:class:`Sequential` whose ``ntk_backward`` is the chain rule): the tiled sweep can walk it."""
    return isinstance(model, Sequential) and type(model).ntk_backward is Sequential.ntk_backward \
        and type(model).backward is Sequential.backward


def _structured_tiled(model, douts, theta, rows: int) -> None:
    """:meth:`Sequential.ntk_backward`'s sweep, each dense layer's share added in tiles.

    Last layer to first, as the chain rule: a :class:`Dense` layer adds its
    share with :func:`add_dense_share_tiled` (upper tiles only) and hands on
    its seeds ``G_k Wᵀ`` (``ntk_backward(douts, None)``); any other layer
    adds its block through the protocol (whole, both triangles).  Then
    :func:`_mirror_upper` makes Θ symmetric: every share is, so its upper
    tiles determine it.
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


def traced_ntk(theta, K: int):
    r"""The output-traced kernel ``Θ̄_ij = Σ_k Θ_{iK+k, jK+k}``, shape ``(N, N)``.

    The ``N × N`` kernel often plotted for multi-output networks (for
    ``K = 1`` it is Θ itself).  Not the kernel of the PL bound: that needs the
    full ``(N·K, N·K)`` Θ.
    """
    if not (isinstance(K, (int, np.integer)) and K >= 1):
        raise ValueError(f"K: expected a positive integer, got {K!r}")
    if theta.ndim != 2 or theta.shape[0] != theta.shape[1] or theta.shape[0] % K:
        raise ValueError(f"theta: expected a square (N·K, N·K) array with K = {K}, got {tuple(theta.shape)}")
    n = theta.shape[0] // K
    return theta.reshape(n, K, n, K).trace(axis1=1, axis2=3)

# --------------------------------------------------------------------------- a float64 twin


def _cast_floating(obj, dtype):
    """Arrays of a floating dtype (also inside dicts) cast to ``dtype``; others unchanged."""
    if hasattr(obj, "dtype") and hasattr(obj, "astype") and getattr(obj.dtype, "kind", "") == "f":
        return obj.astype(dtype)
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _cast_floating(obj[k], dtype)
    return obj


def float64_copy(model):
    """A float64 copy of ``model`` (same backend, same weights up to the cast).

    For checks that need float64 arithmetic on a model trained in float32:
    finite-difference Hessian-vector products (:mod:`minilplr.theory.smoothness`), or an NTK
    whose factors are float64 too.  Every floating array held by a layer
    (parameters, buffers such as batch norm's running statistics) is cast.
    """
    if not hasattr(model, "params"):
        raise TypeError(f"model: expected a minilplr Model or Sequential, got {type(model).__name__}")
    memo = {}
    if hasattr(model, "backend"):
        memo[id(model.backend)] = model.backend  # modules do not deep-copy
    twin = copy.deepcopy(model, memo)

    def visit(layer):
        for name, value in list(vars(layer).items()):
            if name == "layers" or name == "backend":
                continue
            setattr(layer, name, _cast_floating(value, np.float64))
        for sub in getattr(layer, "layers", {}).values():
            visit(sub)

    visit(twin)
    if hasattr(twin, "dtype"):
        twin.dtype = np.dtype(np.float64)
    return twin
