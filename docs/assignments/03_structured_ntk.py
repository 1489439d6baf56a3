# %% [markdown]
# # Assignment 3: the Jacobian and the structured NTK
#
# Read first: [chapter 3, the Jacobian and the empirical NTK](../03-jacobian-and-ntk.md).
# You build the Jacobian $J = \partial r/\partial\theta$ of a ReLU network
# from **your** assignment-1 layers, then the NTK $\Theta = J J^\top$ twice:
# from $J$, and layer by layer without ever forming $J$, the structured rule
#
# $$
# \Theta = \sum_{\text{dense layers } l} \big(A_l A_l^\top + 1\big) \odot \big(G_l G_l^\top\big),
# $$
#
# where $A_l$ of shape $(N, D_l)$ is the input of dense layer $l$ and $G_l$
# of shape $(N, H_l)$ the sensitivity $\partial f/\partial z_l$ of the output
# to that layer's output, one row per sample. One output ($K = 1$, the LPLR
# paper's regression), so $J$ is $(N, P)$ and $\Theta$ is $(N, N)$.
#
# The checks compare with `minilplr.theory.ntk.jacobian` and
# `minilplr.theory.ntk.empirical_ntk` to within $10^{-12}$: the same
# products, summed perhaps in another order.

# %%
import numpy as np

from course import check_close, load
from minilplr.nn.models import mlp
from minilplr.theory import ntk

dense_forward, dense_backward, relu_forward, relu_backward = load(
    "01_dense_backward", "dense_forward", "dense_backward", "relu_forward", "relu_backward")

rng = np.random.default_rng(3)

# %% [markdown]
# ## 1. The sensitivities, per sample
#
# Run the network forward with your layers, keeping each dense layer's input
# $A_l$. Then go backward from the seed $\partial f/\partial f = 1$ (an
# $(N, 1)$ array of ones), as a loss gradient would, but **keep the rows
# apart**: the $\delta$ arriving at dense layer $l$'s output is $G_l$, and
# row $i$ of it belongs to sample $i$ alone. (Your `dense_backward` already
# returns $\partial/\partial x = \delta W^\top$ row by row; only its `dW`
# and `db` sum over samples, and you do not need them here.)
#
# `params` holds `"fc1.W"`, `"fc1.b"`, ..., `"fc{depth}.b"`, as
# `minilplr.nn.models.mlp` names them; a ReLU follows every dense layer but
# the last.

# %% TODO sensitivities
def sensitivities(params, X, depth):
    """-> (A, G): lists over the dense layers fc1..fc{depth}; A[l] (N, D_l) its input, G[l] (N, H_l) ∂f/∂z_l."""
    N = X.shape[0]
    A = [np.zeros((N, params[f"fc{l}.W"].shape[0])) for l in range(1, depth + 1)]
    G = [np.zeros((N, params[f"fc{l}.W"].shape[1])) for l in range(1, depth + 1)]
    # TODO: forward with your layers, keeping each dense input; backward from ones((N, 1))
    return A, G


# %% [markdown]
# ## 2. The Jacobian from the sensitivities
#
# Sample $i$'s gradient with respect to $W_l$ is the outer product
# $a_i \otimes g_i = a_i^\top g_i$ of shape $(D_l, H_l)$ (chapter 1's
# $x^\top\delta$ without the sum over samples), and with respect to $b_l$ it
# is $g_i$. Row $i$ of $J$ is all of them, flattened in the order of
# `model.params` (`fc1.W` row-major, `fc1.b`, `fc2.W`, ...).

# %% TODO jacobian
def jacobian_from_sensitivities(A, G):
    """A, G from sensitivities -> J (N, P), columns in the order fc1.W, fc1.b, fc2.W, ..."""
    N = A[0].shape[0]
    P = sum(a.shape[1] * g.shape[1] + g.shape[1] for a, g in zip(A, G))
    J = np.zeros((N, P))
    # TODO: one block of columns per parameter array
    return J


# %% [markdown]
# ## 3. The structured NTK
#
# $\Theta_{ij} = \sum_l \langle a_i \otimes g_i,\ a_j \otimes g_j\rangle + \langle g_i, g_j\rangle
# = \sum_l (a_i\cdot a_j + 1)(g_i \cdot g_j)$: two $N\times N$ Gram matrices
# per layer, never the $N \times P$ Jacobian.

# %% TODO structured_ntk
def structured_ntk(A, G):
    """Θ (N, N) = Σ_l (A_l A_lᵀ + 1) ⊙ (G_l G_lᵀ)."""
    N = A[0].shape[0]
    theta = np.zeros((N, N))
    # TODO
    return theta


# %%
depth = 3
model = mlp(d_in=4, width=16, depth=depth, d_out=1, seed=0, dtype="float64")
X = rng.standard_normal((6, 4))
params = {k: v.copy() for k, v in model.params.items()}

A, G = sensitivities(params, X, depth)
J = jacobian_from_sensitivities(A, G)
J_ref = ntk.jacobian(model, X)
check_close("your Jacobian", J, J_ref, 1e-12)
check_close("your structured NTK against minilplr's", structured_ntk(A, G), ntk.empirical_ntk(model, X), 1e-12)
check_close("your structured NTK against J Jᵀ (the reference J)", structured_ntk(A, G), J_ref @ J_ref.T, 1e-12)
