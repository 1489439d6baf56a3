# %% [markdown]
# # Worked solutions to assignment 3
#
# Each cell replaces the TODO cell of the same name in
# [03_structured_ntk](../03_structured_ntk.py). Try the assignment first.

# %% TODO sensitivities
def sensitivities(params, X, depth):
    """-> (A, G): lists over the dense layers fc1..fc{depth}; A[l] (N, D_l) its input, G[l] (N, H_l) ∂f/∂z_l."""
    A, caches, h = [], [], X
    for l in range(1, depth + 1):
        A.append(h)  # the input of dense layer l
        h, c = dense_forward(h, params[f"fc{l}.W"], params[f"fc{l}.b"])
        caches.append(c)
        if l < depth:
            h, c = relu_forward(h)
            caches.append(c)
    G = [None] * depth
    delta = np.ones((X.shape[0], 1))  # ∂f/∂f = 1 for every sample
    for l in range(depth, 0, -1):
        if l < depth:
            delta = relu_backward(delta, caches.pop())  # through the ReLU after layer l
        G[l - 1] = delta  # ∂f/∂z_l, row i = sample i
        delta, _, _ = dense_backward(delta, caches.pop())  # δ Wᵀ, still row by row
    return A, G


# %% TODO jacobian
def jacobian_from_sensitivities(A, G):
    """A, G from sensitivities -> J (N, P), columns in the order fc1.W, fc1.b, fc2.W, ..."""
    N = A[0].shape[0]
    blocks = []
    for a, g in zip(A, G):
        blocks.append((a[:, :, None] * g[:, None, :]).reshape(N, -1))  # a_i ⊗ g_i, flattened row-major
        blocks.append(g)  # ∂f(x_i)/∂b = g_i
    J = np.concatenate(blocks, axis=1)
    return J


# %% TODO structured_ntk
def structured_ntk(A, G):
    """Θ (N, N) = Σ_l (A_l A_lᵀ + 1) ⊙ (G_l G_lᵀ)."""
    theta = sum((a @ a.T + 1.0) * (g @ g.T) for a, g in zip(A, G))
    return theta
