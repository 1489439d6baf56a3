r"""The Jacobian ``J = ∂r/∂θ`` and the empirical NTK ``Θ = J Jᵀ``, and Θ's spectrum.

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

The layer protocol (what a new layer type implements)
-----------------------------------------------------
Every layer already has ``forward(x)`` (keeping what backward needs) and
``backward(dout, need_dx) -> dx``.  For the Jacobian and the NTK it also
offers two methods, both called after ``forward`` and both leaving ``grads``
untouched.  A *seed* ``dout`` has the shape of the layer's output, one row per
sample; the seed of output ``k`` at the network's output is the ``(N, K)``
array with ones in column ``k``.

``per_sample_backward(dout, need_dx=True) -> (dx, psg)``
    ``dx``: as ``backward`` (``None`` if not ``need_dx``).  ``psg``: an
    ``OrderedDict`` with the keys of ``params``, in the same order, each
    array of shape ``(N, *param.shape)``: entry ``n`` is the gradient of
    sample ``n``'s seeded output ``⟨dout_n, out_n⟩`` with respect to the
    parameter, **not summed over samples** (summing over ``n`` gives what
    ``backward`` writes into ``grads``).  Computed batched over samples (no
    Python loop over ``n``).  For a convolution this is the dense rule on
    patches summed over positions; for batch norm in evaluation mode it is
    ``Σ_pixels dout·x̂`` and ``Σ_pixels dout`` per sample.

``ntk_backward(douts, theta, need_dx=True) -> dxs``
    ``douts``: a list of ``K`` seeds (one per network output).  Adds this
    layer's block into the accumulator ``theta`` of shape ``(N, K, N, K)``:
    ``theta[i, k, j, k'] += Σ_{θ ∈ layer} ∂f_k(x_i)/∂θ · ∂f_k'(x_j)/∂θ``;
    returns the list of ``K`` seeds at the layer's input (``None`` if not
    ``need_dx``).  Arithmetic in ``theta.dtype``.

Defaults, in :class:`minilplr.nn.layers.Layer`: a layer without parameters
passes seeds through its ``backward`` (nothing to add); a layer with
parameters must write ``per_sample_backward``, and then inherits a generic
``ntk_backward`` that forms ``F_k = psg`` flattened ``(N, P_layer)`` and adds
``F_k F_k'ᵀ``; it may override that with a structured rule (as
:class:`~minilplr.nn.layers.Dense` does).  :class:`~minilplr.nn.layers.Sequential`
composes both methods like ``backward``; a container that is not a chain
(a residual block) overrides both, sending the seeds down every branch and
adding the branches' ``dx`` (the block's ``psg`` keys in its ``params``
order).  The per-sample view needs samples that do not interact in the
forward pass: batch norm in *training* mode mixes the batch and must refuse.

Precision, and an honest ``λ_min``
----------------------------------
Θ is assembled in ``dtype`` (default: the model's).  Its spectrum is always
computed in float64 (:func:`ntk_spectrum`), but an eigenvalue of a matrix
known to ``ε`` relative can only be told from zero above a floor
``ε · (N·K) · λ_max`` (Weyl: an entrywise perturbation of relative size
``ε`` moves eigenvalues by up to ``ε · N · max|Θ_ij| ≤ ε · N · λ_max``).
A ``λ_min`` under the floor is reported *unresolved*, with the bound
``λ_min ≤ floor + computed``, never as a number.

The floor is a worst case.  For the paper's MLP at ``N = 1000`` a float32 Θ
has floor ``≈ 200`` against ``λ_min ≈ 275``, yet agrees with the float64 Θ
to six digits; ``empirical_ntk(..., dtype="float64")`` on the float32 model
costs a little more (float64 Gram products) and lowers the floor to
``≈ 4·10⁻⁷``.  Its factors ``A``, ``G`` are still float32: the result is the
exact kernel of a Jacobian within ``≈ ε₃₂`` (relative) of the float32
model's, so ``√λ_min`` is known to about ``ε₃₂ √λ_max``; pass
``eps=np.finfo(np.float32).eps`` to :func:`ntk_spectrum` for the
conservative floor.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from ..backend import backend_of, get_array_module, to_device, to_host, to_scalar
from ..nn.layers import leaves_untouched
from ..nn.params import num_params, param_slices

__all__ = [
    "jacobian",
    "empirical_ntk",
    "traced_ntk",
    "Spectrum",
    "ntk_spectrum",
    "symmetric_norm",
    "float64_copy",
    "METHODS",
]

METHODS = ("structured", "jacobian")
DEFAULT_MAX_BYTES = 256 * 2**20
"""Default bound on the transient memory of :func:`jacobian` (per-sample gradients of one chunk)."""
DENSE_MAX = 16384
"""``solver="auto"`` uses the dense eigen-solver up to this side length, Lanczos above.

Dense is the better choice wherever Θ fits twice in memory: Lanczos finds
``λ_max`` in a few dozen products but ``λ_min`` of an ill-conditioned Θ only
slowly (measured on a shared 2-core CPU, a ``5000 × 5000`` NTK with
``κ ≈ 7·10⁴``: ``eigvalsh`` 7.7 s, ARPACK ``"SA"`` 47 s with 64 Lanczos
vectors, 337 s with ARPACK's default 20)."""
LANCZOS_NCV = 64
LANCZOS_MAXITER = 5000


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


def _ntk_dtype(model, dtype):
    if dtype is None:  # the model's (np.dtype is falsy: no ``or`` here)
        dt = getattr(model, "dtype", None)
        return np.dtype(dt) if dt is not None else np.dtype(next(iter(model.params.values())).dtype)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
    return dt


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
def empirical_ntk(model, X, method: str = "structured", dtype=None, max_bytes: int = DEFAULT_MAX_BYTES):
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
        ``"jacobian"`` only: passed to :func:`jacobian`.

    Returns
    -------
    theta : array (N·K, N·K), ``dtype``, on the model's backend; row/column
        ``i·K + k`` is sample ``i``, output ``k``.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(repr(m) for m in METHODS)}, got {method!r}")
    _check_model(model)
    dt = _ntk_dtype(model, dtype)
    if method == "jacobian":
        J = jacobian(model, X, max_bytes=max_bytes).astype(dt, copy=False)
        return J @ J.T  # Θ = J Jᵀ
    X = _prepare(model, X)
    xp = get_array_module(X)
    out = _outputs(model, X)  # (N, K); every layer keeps its A
    n, K = out.shape
    theta = xp.zeros((n, K, n, K), dtype=dt)
    model.ntk_backward([_seed(out, k) for k in range(K)], theta, need_dx=False)
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


# --------------------------------------------------------------------------- the spectrum


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Extreme eigenvalues of Θ (float64), with the floor below which ``λ_min`` is not resolved.

    Attributes
    ----------
    lam_min_computed : float
        What the solver returned.  Meaningful only when :attr:`resolved`;
        read :attr:`lam_min` (``None`` when unresolved) instead.
    lam_max : float
    floor : float
        ``ε · size · λ_max`` (dense) or ``max(ε · size, tol) · λ_max``
        (Lanczos): eigenvalues within ``floor`` of each other, or of zero,
        cannot be told apart in the dtype Θ was assembled in.
    size : int
        ``N·K``, Θ's side.
    eps : float
        Unit roundoff used for the floor.
    solver : str
        ``"dense"`` or ``"lanczos"``.
    eigenvalues : numpy array or None
        All eigenvalues, ascending, on the host (dense solver only).
    converged : bool
        ``False`` when Lanczos stopped before converging for ``λ_min``: then
        ``lam_min_computed`` is its smallest Ritz value, which is an upper
        bound of ``λ_min`` (Ritz values lie inside the spectrum), and
        ``λ_min`` is reported unresolved.
    """

    lam_min_computed: float
    lam_max: float
    floor: float
    size: int
    eps: float
    solver: str
    eigenvalues: np.ndarray | None = field(default=None, repr=False)
    converged: bool = True

    @property
    def resolved(self) -> bool:
        """``λ_min`` is above the floor: a positive number we can trust to ``± floor``."""
        return self.converged and self.lam_min_computed > self.floor

    @property
    def lam_min(self):
        """``λ_min(Θ)`` as a float if resolved, else ``None`` (use :attr:`lam_min_upper`)."""
        return self.lam_min_computed if self.resolved else None

    @property
    def lam_min_lower(self) -> float:
        """A lower bound ``max(λ_computed − floor, 0)`` (Θ is PSD): 0 when unresolved."""
        return max(self.lam_min_computed - self.floor, 0.0) if self.resolved else 0.0

    @property
    def lam_min_upper(self) -> float:
        """An upper bound ``max(λ_computed, 0) + floor``; what to report when unresolved."""
        return max(self.lam_min_computed, 0.0) + self.floor

    @property
    def cond(self) -> float:
        """Condition number ``λ_max/λ_min``; ``inf`` when ``λ_min`` is unresolved."""
        return self.lam_max / self.lam_min_computed if self.resolved else math.inf

    def __str__(self):
        if self.resolved:
            lo = f"λ_min = {self.lam_min_computed:.6g} (± floor {self.floor:.3g})"
        elif not self.converged:
            lo = f"λ_min ≤ {self.lam_min_upper:.3g} (unresolved: Lanczos did not converge; try solver='dense')"
        else:
            lo = f"λ_min ≤ {self.lam_min_upper:.3g} (unresolved: below the floor ε·N·λ_max = {self.floor:.3g}, ε = {self.eps:.3g})"
        return f"{lo}, λ_max = {self.lam_max:.6g}, cond = {self.cond:.4g} [{self.solver}, {self.size}×{self.size}]"


def _check_square(name, theta):
    if not hasattr(theta, "ndim") or theta.ndim != 2 or theta.shape[0] != theta.shape[1] or theta.shape[0] < 1:
        raise ValueError(f"{name}: expected a square (N·K, N·K) array, got {getattr(theta, 'shape', type(theta).__name__)}")
    if theta.dtype.kind != "f":
        raise ValueError(f"{name}: expected a floating array, got dtype {theta.dtype}")


def _lanczos(sym64, which: str, tol: float):
    """One extreme eigenvalue of a symmetric float64 device matrix by ARPACK (scipy).

    ARPACK runs on the host; the matrix stays where it is and each
    matrix-vector product crosses explicitly (``to_device`` / ``to_host``), so
    CuPy (and the strict stand-in) never meets SciPy implicitly.

    Returns ``(value, converged)``; when ARPACK gives up, ``value`` is its
    best Ritz value (``nan`` if it has none).
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    be = backend_of(sym64)
    n = sym64.shape[0]

    def matvec(v):
        return to_host(sym64 @ to_device(np.ravel(v), be, np.float64))

    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)  # deterministic start
    try:
        w = eigsh(op, k=1, which=which, tol=tol, v0=v0, ncv=min(n - 1, LANCZOS_NCV), maxiter=LANCZOS_MAXITER,
                  return_eigenvectors=False)
        return float(w[0]), True
    except ArpackNoConvergence as exc:
        return (float(exc.eigenvalues[0]) if len(exc.eigenvalues) else math.nan), False


def ntk_spectrum(theta, eps: float | None = None, solver: str = "auto", dense_max: int = DENSE_MAX,
                 tol: float = 1e-10) -> Spectrum:
    r"""``λ_min``, ``λ_max`` and the condition number of Θ, in float64.

    .. math:: \lambda_{\min}(\Theta) = \min_{\lVert v\rVert = 1} v^\top \Theta v, \qquad
              \kappa = \lambda_{\max}/\lambda_{\min}

    Parameters
    ----------
    theta : array (N·K, N·K), symmetric PSD (any float dtype, any backend)
        Cast to float64 and symmetrised ``(Θ + Θᵀ)/2`` before solving.
    eps : float, optional
        Unit roundoff of the arithmetic that assembled Θ; default
        ``finfo(theta.dtype).eps``.  Sets the floor ``ε · N·K · λ_max``.
    solver : {"auto", "dense", "lanczos"}
        ``dense``: ``xp.linalg.eigvalsh`` (all eigenvalues, on the array's own
        backend); ``lanczos``: ARPACK's ``eigsh`` for the two extreme
        eigenvalues only; ``auto``: dense up to ``dense_max``, else Lanczos.
    tol : float
        Lanczos relative tolerance; the floor is at least ``tol · λ_max``.

    Returns
    -------
    Spectrum
    """
    _check_square("theta", theta)
    if solver not in ("auto", "dense", "lanczos"):
        raise ValueError(f"solver: expected 'auto', 'dense' or 'lanczos', got {solver!r}")
    if eps is None:
        eps = float(np.finfo(theta.dtype).eps)
    elif not (float(eps) > 0):
        raise ValueError(f"eps: expected a positive unit roundoff, got {eps!r}")
    if not (float(tol) > 0):
        raise ValueError(f"tol: expected a positive tolerance, got {tol!r}")
    n = theta.shape[0]
    t64 = theta.astype(np.float64)  # spectra in float64 whatever the training dtype
    t64 = (t64 + t64.T) * 0.5  # symmetric to the last bit
    if solver == "auto":
        solver = "dense" if n <= max(int(dense_max), 2) else "lanczos"
    if solver == "lanczos" and n < 3:
        solver = "dense"  # ARPACK needs k < N - 1
    if solver == "dense":
        xp = get_array_module(t64)
        ev = xp.linalg.eigvalsh(t64)  # ascending
        lam_min, lam_max = to_scalar(ev[0]), to_scalar(ev[-1])
        floor = eps * n * max(abs(lam_max), abs(lam_min))
        return Spectrum(lam_min, lam_max, floor, n, float(eps), "dense", to_host(ev))
    lam_max, ok_max = _lanczos(t64, "LA", tol)
    if not ok_max:
        raise RuntimeError(f"theta: Lanczos did not converge for λ_max in {LANCZOS_MAXITER} restarts; use solver='dense'")
    lam_min, ok_min = _lanczos(t64, "SA", tol)
    if math.isnan(lam_min):
        lam_min, ok_min = lam_max, False  # no Ritz value at all: only λ_min ≤ λ_max is known
    floor = max(eps * n, float(tol)) * max(abs(lam_max), abs(lam_min))
    return Spectrum(lam_min, lam_max, floor, n, float(eps), "lanczos", converged=ok_min)


def symmetric_norm(A, solver: str = "auto", dense_max: int = DENSE_MAX, tol: float = 1e-10) -> float:
    """Spectral norm ``‖A‖₂ = max |λ_i(A)|`` of a symmetric ``(M, M)`` array, in float64.

    Dense ``eigvalsh`` up to ``dense_max``, else Lanczos (ARPACK, ``which="LM"``).
    """
    _check_square("A", A)
    if solver not in ("auto", "dense", "lanczos"):
        raise ValueError(f"solver: expected 'auto', 'dense' or 'lanczos', got {solver!r}")
    a64 = A.astype(np.float64)
    a64 = (a64 + a64.T) * 0.5
    n = a64.shape[0]
    if solver == "auto":
        solver = "dense" if n <= max(int(dense_max), 2) else "lanczos"
    if solver == "dense" or n < 3:
        xp = get_array_module(a64)
        ev = xp.linalg.eigvalsh(a64)
        return max(abs(to_scalar(ev[0])), abs(to_scalar(ev[-1])))
    value, ok = _lanczos(a64, "LM", tol)
    if not ok:
        raise RuntimeError(f"A: Lanczos did not converge for the spectral norm in {LANCZOS_MAXITER} restarts; use solver='dense'")
    return abs(value)


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
    finite-difference Hessian-vector products (:mod:`minilplr.theory.pl`), or an NTK
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
