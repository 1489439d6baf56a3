r"""The overparametrised two-layer linear network ``W = W₁W₂ᵀ`` over a loss ``ℓ(W)``.

THEORY.md §2 (Xu, Min, Tarmoun, Mallada, Vidal, arXiv 2505.11664).  A loss
``ℓ(W)`` of a matrix ``W ∈ ℝ^{D×K}`` that is μ_ℓ-strongly convex and β_ℓ-smooth is
*overparametrised* by writing ``W`` as a product:

.. math:: L(W_1, W_2) = \ell(W_1 W_2^\top), \qquad
          W_1 \in \mathbb R^{D\times H},\ W_2 \in \mathbb R^{K\times H}.

``L`` is not convex, not globally PL and not globally smooth, yet gradient
descent on it converges linearly; :mod:`minilplr.theory.linear.constants` has the
local constants that explain why.

Letters in this subpackage
--------------------------
The docstrings write the course's letters (docs/notation.md, chapter 7's
table): ``D`` rows of ``W`` (input features), ``K`` columns (outputs), ``H``
the hidden width, ``N`` samples; ``μ_ℓ``, ``β_ℓ`` the strong-convexity and
smoothness constants of ``ℓ``; ``β_t``, ``β̄_t`` the local smoothness of ``L``
and its bound; ``𝒯`` the operator, ``𝒟`` the imbalance, ``W_⋆`` the planted
solution.  The code's names keep the paper's letters: arguments and
attributes ``n`` (= ``D``), ``m`` (= ``K``), ``h`` (= ``H``), ``mu``
(= ``μ_ℓ``), ``K`` (= ``β_ℓ``, not an output count), ``K_t`` (= ``β_t``),
and ``*_T`` / ``imbalance`` for ``𝒯`` / ``𝒟``.

The losses here implement a small interface, :class:`ConvexLoss`; any loss
with ``value``, ``grad``, ``mu``, ``K`` and ``min_value`` plugs into
:class:`TwoLayerLinear`, the schedules and the constants.
"""
from __future__ import annotations

from collections import OrderedDict

from ...backend import backend_of, get_array_module, to_scalar
from ...validate import check_finite, check_positive

__all__ = [
    "ConvexLoss",
    "LeastSquares",
    "RidgeLeastSquares",
    "TwoLayerLinear",
    "product_forward",
    "product_backward",
]


# ---------------------------------------------------------------------------
# The non-overparametrised losses ℓ(W).
# ---------------------------------------------------------------------------


class ConvexLoss:
    r"""Interface of a μ_ℓ-strongly convex, β_ℓ-smooth loss ``ℓ(W)``, ``W (D, K)``.

    .. math:: \mu_\ell I \preceq \nabla^2 \ell(W) \preceq \beta_\ell I \quad\text{for all } W

    A subclass sets ``n`` (= ``D``), ``m`` (= ``K``), ``mu``, ``K`` (= ``β_ℓ``) and ``min_value`` (``ℓ* = min ℓ``)
    and implements :meth:`value` and :meth:`grad`.  Everything in
    :mod:`minilplr.theory.linear` uses only these.
    """

    n: int
    m: int
    mu: float
    K: float
    min_value: float

    def value(self, W):  # pragma: no cover - abstract
        """``ℓ(W)`` as a 0-d array of ``W``'s backend."""
        raise NotImplementedError

    def grad(self, W):  # pragma: no cover - abstract
        """``∇ℓ(W)``, shape ``(D, K)``."""
        raise NotImplementedError

    def value_and_grad(self, W):
        """``(ℓ(W), ∇ℓ(W))``; subclasses may share work between the two."""
        return self.value(W), self.grad(W)

    def check_W(self, W, name: str = "W"):
        """Raise a clear error unless ``W`` has shape ``(D, K)`` on this loss's backend."""
        if not hasattr(W, "shape"):
            raise TypeError(f"{name}: expected an array of shape ({self.n}, {self.m}), got {type(W).__name__}")
        if tuple(W.shape) != (self.n, self.m):
            raise ValueError(f"{name}: expected shape ({self.n}, {self.m}), got {tuple(W.shape)}")
        be = backend_of(W)
        if be.name != self.backend.name:
            raise TypeError(
                f"{name}: expected an array on backend {self.backend.name!r} (where the loss's data "
                f"live), got one on {be.name!r}"
            )


def _check_data(X, Y):
    """Validate the design ``X (N, D)`` and targets ``Y (N, K)``: rank, rows, backend, finite."""
    for name, A in (("X", X), ("Y", Y)):
        if not hasattr(A, "shape"):
            raise TypeError(f"{name}: expected a 2-D array, got {type(A).__name__}")
        if A.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D array, got shape {tuple(A.shape)}")
        if A.dtype.kind != "f":
            raise ValueError(f"{name}: expected a floating dtype (float32 or float64), got {A.dtype}")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"Y: expected {X.shape[0]} rows to match X {tuple(X.shape)}, got {tuple(Y.shape)}")
    if backend_of(X).name != backend_of(Y).name:
        raise TypeError(
            f"Y: expected an array on the backend of X ({backend_of(X).name!r}), got {backend_of(Y).name!r}"
        )
    if X.dtype != Y.dtype:
        raise ValueError(f"Y: expected dtype {X.dtype} to match X, got {Y.dtype}")
    check_finite("X", X)
    check_finite("Y", Y)


class LeastSquares(ConvexLoss):
    r"""The least-squares loss of THEORY.md §2.

    .. math:: \ell(W) = \tfrac12 \lVert Y - XW\rVert_F^2, \qquad
              \nabla\ell(W) = X^\top (XW - Y), \qquad
              \mu_\ell = \sigma_{\min}(X)^2,\quad \beta_\ell = \lVert X\rVert_2^2

    (the Hessian is ``XᵀX ⊗ I_m``, whose extreme eigenvalues are those of
    ``XᵀX``).  Not normalised by ``N``: this is the paper's (and the 2023
    code's) loss.

    Parameters
    ----------
    X : array (N, D), full column rank (``N ≥ D``), else ``ℓ`` is not strongly convex
    Y : array (N, K), same backend and dtype
    """

    def __init__(self, X, Y):
        _check_data(X, Y)
        self.X, self.Y = X, Y
        self.backend = backend_of(X)
        self.N, self.n = (int(s) for s in X.shape)
        self.m = int(Y.shape[1])
        xp = get_array_module(X)
        self._gram = X.T @ X  # XᵀX, (n, n)
        eig = xp.linalg.eigvalsh(self._gram)  # ascending
        self.mu = max(to_scalar(eig[0]), 0.0) + self._ridge()
        self.K = to_scalar(eig[-1]) + self._ridge()
        if not (self.K > 0):
            raise ValueError("X: expected a non-zero design matrix, got ‖X‖ = 0")
        if self.mu <= 1e-12 * self.K:
            raise ValueError(
                f"X: expected full column rank (σ_min(X) > 0) so that ℓ is strongly convex; got "
                f"σ_min(X)² = {self.mu:.3g} for X of shape {tuple(X.shape)} (use RidgeLeastSquares)"
            )
        # The minimiser W* = (XᵀX + λI)⁻¹ XᵀY and ℓ* = ℓ(W*).
        A = self._gram + self._ridge() * xp.eye(self.n, dtype=X.dtype)
        self.minimiser = xp.linalg.solve(A, X.T @ Y)
        self.min_value = max(to_scalar(self.value(self.minimiser)), 0.0)

    def _ridge(self) -> float:
        return 0.0

    def value(self, W):
        """``ℓ(W) = ½‖Y − XW‖²_F`` as a 0-d array."""
        r = self.X @ W - self.Y  # residual (N, m)
        return 0.5 * (r * r).sum()

    def grad(self, W):
        """``∇ℓ(W) = Xᵀ(XW − Y)``, shape ``(D, K)``."""
        return self.X.T @ (self.X @ W - self.Y)

    def value_and_grad(self, W):
        r = self.X @ W - self.Y
        return 0.5 * (r * r).sum(), self.X.T @ r

    @property
    def sigma_min_X(self) -> float:
        """``s = σ_min(X)``, the 2023 paper's notation (``μ_ℓ = s²``)."""
        return self.mu ** 0.5

    def __repr__(self):
        return f"LeastSquares(N={self.N}, n={self.n}, m={self.m}, μ={self.mu:.4g}, K={self.K:.4g})"


class RidgeLeastSquares(LeastSquares):
    r"""Least squares plus a ridge: a second loss through the same interface.

    .. math:: \ell(W) = \tfrac12 \lVert Y - XW\rVert_F^2 + \tfrac\lambda2 \lVert W\rVert_F^2,
              \qquad \mu_\ell = \lambda_{\min}(X^\top X) + \lambda,\quad \beta_\ell = \lVert X\rVert^2 + \lambda

    Strongly convex for any ``X`` (also ``N < D``) once ``λ > 0``.
    """

    def __init__(self, X, Y, lam: float):
        self.lam = check_positive("lam", lam)
        super().__init__(X, Y)

    def _ridge(self) -> float:
        return self.lam

    def value(self, W):
        return super().value(W) + 0.5 * self.lam * (W * W).sum()

    def grad(self, W):
        return super().grad(W) + self.lam * W

    def value_and_grad(self, W):
        v, g = super().value_and_grad(W)
        return v + 0.5 * self.lam * (W * W).sum(), g + self.lam * W

    def __repr__(self):
        return f"RidgeLeastSquares(N={self.N}, n={self.n}, m={self.m}, λ={self.lam:g}, μ={self.mu:.4g}, K={self.K:.4g})"


# ---------------------------------------------------------------------------
# The product W = W₁W₂ᵀ: forward and backward side by side.
# ---------------------------------------------------------------------------


def product_forward(W1, W2):
    """``W = W₁ W₂ᵀ``: ``W1 (D, H)``, ``W2 (K, H)`` -> ``W (D, K)``."""
    return W1 @ W2.T


def product_backward(G, W1, W2):
    r"""Chain rule through ``W = W₁W₂ᵀ``: ``G = ∂ℓ/∂W (D, K)`` -> ``(∂L/∂W₁, ∂L/∂W₂)``.

    .. math:: \nabla_{W_1} L = \nabla\ell(W)\, W_2, \qquad
              \nabla_{W_2} L = \nabla\ell(W)^\top W_1

    i.e. ``∇L = 𝒯(∇ℓ)`` with the operator ``𝒯`` of :mod:`minilplr.theory.linear.operator`.
    Returns ``(D, H)`` and ``(K, H)``.
    """
    dW1 = G @ W2  # ∂L/∂W₁ = G W₂
    dW2 = G.T @ W1  # ∂L/∂W₂ = Gᵀ W₁
    return dW1, dW2


class TwoLayerLinear:
    r"""``L(W₁, W₂) = ℓ(W₁W₂ᵀ)``: parameters, loss, and gradients in place.

    ``params`` and ``grads`` are ordered ``{"W1": (D, H), "W2": (K, H)}``
    mappings, so the common optimisers (:class:`minilplr.train.optim.SGD`) update
    the network in place.

    Parameters
    ----------
    loss : ConvexLoss
        ``ℓ``, with ``loss.n`` (= ``D``), ``loss.m`` (= ``K``).
    W1 : array (D, H), W2 : array (K, H)
        Initial weights on the loss's backend (see :mod:`minilplr.theory.linear.init`).
    """

    def __init__(self, loss: ConvexLoss, W1, W2):
        if not isinstance(loss, ConvexLoss):
            raise TypeError(f"loss: expected a minilplr.theory.linear.ConvexLoss, got {type(loss).__name__}")
        for name, A, rows in (("W1", W1, loss.n), ("W2", W2, loss.m)):
            if not hasattr(A, "shape") or A.ndim != 2:
                raise ValueError(f"{name}: expected a 2-D array of shape ({rows}, h)")
            if A.shape[0] != rows:
                raise ValueError(f"{name}: expected {rows} rows to match the loss, got shape {tuple(A.shape)}")
            if backend_of(A).name != loss.backend.name:
                raise TypeError(
                    f"{name}: expected an array on backend {loss.backend.name!r} (where the loss's data "
                    f"live), got one on {backend_of(A).name!r}"
                )
            check_finite(name, A)
        if W1.shape[1] != W2.shape[1]:
            raise ValueError(f"W2: expected the hidden width h = {W1.shape[1]} of W1, got shape {tuple(W2.shape)}")
        if W1.dtype != W2.dtype:
            raise ValueError(f"W2: expected dtype {W1.dtype} to match W1, got {W2.dtype}")
        self.loss_fn = loss
        xp = get_array_module(W1)
        self.params = OrderedDict(W1=W1, W2=W2)
        self.grads = OrderedDict(W1=xp.zeros_like(W1), W2=xp.zeros_like(W2))
        self.grad_ell = None  # ∇ℓ(W) of the last backward, (n, m)

    @property
    def W1(self):
        return self.params["W1"]

    @property
    def W2(self):
        return self.params["W2"]

    @property
    def h(self) -> int:
        """The hidden width."""
        return int(self.W1.shape[1])

    def product(self, params=None):
        """The end-to-end matrix ``W = W₁W₂ᵀ`` (D, K), of ``params`` or the network's own."""
        p = self.params if params is None else params
        return product_forward(p["W1"], p["W2"])

    def loss(self, params=None):
        """``L(W₁, W₂) = ℓ(W₁W₂ᵀ)`` as a 0-d array (no gradient)."""
        return self.loss_fn.value(self.product(params))

    def backward(self):
        """Compute ``L`` and write ``∇L`` into ``self.grads``; returns ``L`` (0-d array)."""
        value, G = self.loss_fn.value_and_grad(self.product())
        dW1, dW2 = product_backward(G, self.W1, self.W2)
        self.grads["W1"], self.grads["W2"] = dW1, dW2
        self.grad_ell = G
        return value

    def copy_params(self):
        """A copy of ``params`` (to remember ``W₁(0), W₂(0)`` for the imbalance drift)."""
        return OrderedDict((k, v.copy()) for k, v in self.params.items())

    def __repr__(self):
        return f"TwoLayerLinear(n={self.loss_fn.n}, m={self.loss_fn.m}, h={self.h}, {self.W1.dtype}, {self.loss_fn!r})"
