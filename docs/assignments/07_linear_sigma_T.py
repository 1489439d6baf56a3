# %% [markdown]
# # Assignment 7: the operator $\mathcal T$ of a two-layer linear network and its singular values
#
# Read first: [chapter 7, the overparametrised linear network](../07-overparametrised-linear-network.md).
# Letters follow that chapter (and the second paper): $W_1$ of shape
# $(n, h)$, $W_2$ of shape $(m, h)$, the end-to-end matrix
# $W = W_1 W_2^\top$ of shape $(n, m)$. With $G = \nabla\ell(W)$ the gradient
# of the two-layer loss is $\mathcal T(G) = (G W_2,\ G^\top W_1)$, and
#
# $$
# \sigma^2_{\min}(\mathcal T) = \lambda_{\min}(W_1W_1^\top) + \lambda_{\min}(W_2W_2^\top), \qquad
# \sigma^2_{\max}(\mathcal T) = \lambda_{\max}(W_1W_1^\top) + \lambda_{\max}(W_2W_2^\top),
# $$
#
# because $\mathcal T^*\mathcal T(G) = W_1W_1^\top G + G\,W_2W_2^\top$ has the
# eigenvalues $\lambda_i(W_1W_1^\top) + \lambda_j(W_2W_2^\top)$. The local PL
# constant is $\mu\,\sigma^2_{\min}(\mathcal T)$.
#
# You build $\mathcal T$ as an explicit matrix, then its extreme singular
# values from the closed form, and check one against the other and both
# against `minilplr.theory.linear`. Thresholds: $10^{-12}$ where the
# arithmetic is the same; $10^{-10}$ between the closed form and the SVD of
# the explicit matrix (two eigen-solvers, each accurate to about
# $10^{-15}$ relative to $\sigma^2_{\max}$).

# %%
import numpy as np

from course import check_close
from minilplr.theory import linear
from minilplr.theory.linear import constants, operator

rng = np.random.default_rng(7)
n, m, h = 3, 2, 12
W1, W2 = rng.standard_normal((n, h)) / np.sqrt(h), rng.standard_normal((m, h)) / np.sqrt(h)

# %% [markdown]
# ## 1. $\mathcal T$, applied and as a matrix
#
# `T_matrix(W1, W2)` has one column per entry $(i, j)$ of $G$, in C order
# (column $i m + j$): the image $\mathcal T(E_{ij})$ of the matrix with a
# single 1 at $(i, j)$, its two blocks flattened in C order and stacked
# ($E_{ij}W_2$ first, then $E_{ij}^\top W_1$). Its shape is
# $(n h + m h,\ n m)$, so `T_matrix(W1, W2) @ G.reshape(-1)` is the
# concatenation of the two blocks of $\mathcal T(G)$.

# %% TODO operator
def apply_T(G, W1, W2):
    """T(G) = (G W₂, Gᵀ W₁): G (n, m) -> ((n, h), (m, h))."""
    A, B = np.zeros((W1.shape[0], W1.shape[1])), np.zeros((W2.shape[0], W2.shape[1]))
    # TODO
    return A, B


def T_matrix(W1, W2):
    """T as a matrix (n·h + m·h, n·m), built column by column with apply_T."""
    n, m, h = W1.shape[0], W2.shape[0], W1.shape[1]
    T = np.zeros((n * h + m * h, n * m))
    # TODO
    return T


# %%
G = rng.standard_normal((n, m))
A, B = apply_T(G, W1, W2)
A_ref, B_ref = operator.apply_T(G, W1, W2)
check_close("apply_T: G W₂", A, A_ref, 1e-12)
check_close("apply_T: Gᵀ W₁", B, B_ref, 1e-12)
check_close("T_matrix", T_matrix(W1, W2), operator.T_matrix(W1, W2), 1e-12)

# %% [markdown]
# ## 2. The closed form
#
# `sigma2_T(W1, W2)` returns $(\sigma^2_{\min}, \sigma^2_{\max})$ from the two
# Gram matrices, which are only $n\times n$ and $m\times m$ (never the big
# matrix). `imbalance(W1, W2)` is $D = W_1^\top W_1 - W_2^\top W_2$, $h\times h$.

# %% TODO sigma2
def sigma2_T(W1, W2):
    """-> (σ²_min(T), σ²_max(T)) from the eigenvalues of W₁W₁ᵀ (n, n) and W₂W₂ᵀ (m, m)."""
    s2min, s2max = 0.0, 0.0
    # TODO
    return s2min, s2max


def imbalance(W1, W2):
    """D = W₁ᵀW₁ − W₂ᵀW₂ (h, h)."""
    D = np.zeros((W1.shape[1], W1.shape[1]))
    # TODO
    return D


# %%
s2 = sigma2_T(W1, W2)
check_close("σ²_min, σ²_max against minilplr's", s2, operator.sigma2_T(W1, W2), 1e-12)
sv2 = np.linalg.svd(operator.T_matrix(W1, W2), compute_uv=False) ** 2  # the explicit matrix's, squared
check_close("σ²_min, σ²_max against the SVD of T", s2, (sv2.min(), sv2.max()), 1e-10)
check_close("imbalance D", imbalance(W1, W2), constants.imbalance(W1, W2), 1e-12)

# %% [markdown]
# ## 3. The local PL constant along gradient descent
#
# Least squares with an orthonormal $X$ has $\mu = K = 1$, so the local PL
# constant is just $\sigma^2_{\min}(\mathcal T_t)$. This cell runs GD with
# minilplr and prints your $\sigma^2_{\min}$ at a few steps against the
# engine's record: wide networks keep it away from zero while the imbalance
# hardly moves (chapter 7).

# %%
rng2 = np.random.default_rng(0)
X, Y = linear.synthetic_regression(20, n, m, rng2)
W1_0, W2_0 = linear.gaussian_init(n, m, 64, 0.3, rng2)
net = linear.make_network(X, Y, W1_0, W2_0)
record = linear.run_gd(net, linear.initial_safe_lr(net.loss_fn, net.W1, net.W2), 40)
mine = sigma2_T(W1_0, W2_0)[0]
check_close("your σ²_min(T_0) against the run's first record", mine, record["sigma2_min"][0], 1e-10)
s2_run = np.asarray(record["sigma2_min"])
print(f"σ²_min(T_t) from t = 0 to the last of {record['steps']} steps (GD stops at a relative gap 1e-12): "
      f"{s2_run.min():.4f} to {s2_run.max():.4f}")
