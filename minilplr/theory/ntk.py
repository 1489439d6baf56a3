r"""The Jacobian ``J = ∂r/∂θ`` and the empirical NTK ``Θ = J Jᵀ``; its spectrum is in :mod:`.spectrum`.

THEORY.md §1: for ``N`` samples with ``K`` outputs each, the residual
``r = f(X; θ) − y`` has ``N·K`` entries, ``J = ∂r/∂θ = ∂f/∂θ`` is
``(N·K, P)`` and the empirical neural tangent kernel is ``Θ = J Jᵀ``,
``(N·K, N·K)``.  Its smallest eigenvalue gives the PL constant
``μ = λ_min(Θ)/N`` of Theorem 5.1 (:mod:`minilplr.theory.pl`).

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

Θ in tiles: the paper's real ``N``
-----------------------------------
A large Θ (the binary MNIST task's ``N = 12,665``) is built in square tiles
of samples, upper tiles only, so that its temporaries stay under
``max_bytes``: :mod:`minilplr.theory.ntk_tiles` (the tiled sweep and why it
equals the untiled one); :func:`empirical_ntk` chooses it.

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
("an honest ``λ_min``").  :func:`minilplr.nn.state.float64_copy` makes a float64 twin of a
model, for checks that need float64 factors too.

Imports the engine (:mod:`minilplr.nn`) and the backend; never the training
loops or the experiments.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, resolve_dtype
from ..validate import check_fits, check_model_input, check_real_array, check_values
from ..nn.state import leaves_untouched
from ..nn.params import num_params, param_slices, params_dtype
from .ntk_tiles import is_chain, ntk_backward_tiled, tile_rows

__all__ = [
    "jacobian",
    "empirical_ntk",
    "traced_ntk",
    "prepare_input",
    "forward_outputs",
    "output_seed",
    "METHODS",
]

METHODS = ("structured", "jacobian")
DEFAULT_MAX_BYTES = 256 * 2**20
"""Default bound on the transient memory of :func:`jacobian` (per-sample gradients of one chunk)."""


# --------------------------------------------------------------------------- inputs


def _check_model(model):
    if not hasattr(model, "forward") or not hasattr(model, "params") or not hasattr(model, "ntk_backward"):
        raise TypeError(f"model: expected a minilplr Model or Sequential, got {type(model).__name__}")


def prepare_input(model, X):
    """``X (N, ...)`` checked (and cast) by the model when it can, else checked for a shape.

    The first step of every sweep of the layer protocol (here and in
    :mod:`minilplr.theory.ntk_shares`); ``model`` must offer the protocol
    (``TypeError`` otherwise).
    """
    _check_model(model)
    if hasattr(model, "check_input"):
        return check_model_input(model, X)  # the training loops' check: real, shape, finite, not too large
    if not hasattr(X, "shape") or X.ndim < 2:
        raise ValueError(f"X: expected an array of shape (N, ...), got {getattr(X, 'shape', type(X).__name__)}")
    check_real_array("X", X)
    check_values("X", X)
    return X


def check_kernel_fits(model, X, what: str, values_per_row, dtype) -> None:
    """Refuse, in one line naming ``X``, a result of ``N·K`` rows × ``values_per_row`` that would not fit in memory.

    ``K`` is ``model.d_out`` (unknown for a bare Sequential: then nothing is
    checked here).  Runs before the forward pass, so a kernel of
    ``N = 60,000`` costs one line, not a swapping machine.
    """
    k = getattr(model, "d_out", None)
    if k is None or not hasattr(X, "shape") or X.ndim < 1:
        return
    nk = int(X.shape[0]) * int(k)
    per_row = nk if values_per_row is None else int(values_per_row)
    be = getattr(getattr(model, "backend", None), "name", "numpy")
    check_fits("X", nk * per_row * np.dtype(dtype).itemsize, f"{what} of N·K = {nk:,} rows ({np.dtype(dtype)})",
               backend=be)


def forward_outputs(model, X):
    """Forward ``X`` (every layer keeps what its backward needs) and check the output is ``(N, K)``."""
    out = model.forward(X)
    if out.ndim != 2:
        raise ValueError(f"model: expected outputs of shape (N, K), got {tuple(out.shape)}")
    return out


def output_seed(out, k: int):
    """The seed of output ``k`` (module docstring): ``(N, K)``, ones in column ``k``, zeros elsewhere."""
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
    _check_model(model)
    check_kernel_fits(model, X, "the Jacobian J (N·K, P)", num_params(model.params), params_dtype(model))
    X = prepare_input(model, X)
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
        out = forward_outputs(model, X[s:e])  # (c, K); caches for the backward sweeps
        K = out.shape[1]
        if J is None:
            J = xp.empty((n * K, P), dtype=out.dtype)
        for k in range(K):
            _, psg = model.per_sample_backward(output_seed(out, k), need_dx=False)
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
    check_kernel_fits(model, X, "the NTK Θ (N·K, N·K)", None, dt)
    if method == "jacobian":
        J = jacobian(model, X, max_bytes=max_bytes).astype(dt, copy=False)
        return J @ J.T  # Θ = J Jᵀ
    X = prepare_input(model, X)
    xp = get_array_module(X)
    out = forward_outputs(model, X)  # (N, K); every layer keeps its A
    n, K = out.shape
    rows = tile_rows(n, K, dt.itemsize, max_bytes, block_rows)
    theta = xp.zeros((n, K, n, K), dtype=dt)
    seeds = [output_seed(out, k) for k in range(K)]
    if rows >= n or not is_chain(model):
        model.ntk_backward(seeds, theta, need_dx=False)  # the layer protocol, untiled
    else:
        ntk_backward_tiled(model, seeds, theta, rows)  # the same sweep, dense shares in tiles
    return theta.reshape(n * K, n * K)


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
