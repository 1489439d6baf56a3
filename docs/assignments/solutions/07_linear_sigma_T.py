# %% [markdown]
# # Worked solutions to assignment 7
#
# Each cell replaces the TODO cell of the same name in
# [07_linear_sigma_T](../07_linear_sigma_T.py). Try the assignment first.

# %% TODO operator
def apply_T(G, W1, W2):
    """T(G) = (G W₂, Gᵀ W₁): G (n, m) -> ((n, h), (m, h))."""
    A, B = G @ W2, G.T @ W1  # the two layers' gradients when G = ∇ℓ(W₁W₂ᵀ)
    return A, B


def T_matrix(W1, W2):
    """T as a matrix (n·h + m·h, n·m), built column by column with apply_T."""
    n, m = W1.shape[0], W2.shape[0]
    cols = []
    for i in range(n):
        for j in range(m):  # column i·m + j: the image of E_ij
            E = np.zeros((n, m))
            E[i, j] = 1.0
            A, B = apply_T(E, W1, W2)
            cols.append(np.concatenate([A.reshape(-1), B.reshape(-1)]))
    T = np.stack(cols, axis=1)
    return T


# %% TODO sigma2
def sigma2_T(W1, W2):
    """-> (σ²_min(T), σ²_max(T)) from the eigenvalues of W₁W₁ᵀ (n, n) and W₂W₂ᵀ (m, m)."""
    e1 = np.linalg.eigvalsh(W1 @ W1.T)  # ascending
    e2 = np.linalg.eigvalsh(W2 @ W2.T)
    s2min, s2max = float(e1[0] + e2[0]), float(e1[-1] + e2[-1])  # T*T has eigenvalues λ_i + λ'_j
    return s2min, s2max


def imbalance(W1, W2):
    """D = W₁ᵀW₁ − W₂ᵀW₂ (h, h)."""
    D = W1.T @ W1 - W2.T @ W2
    return D
