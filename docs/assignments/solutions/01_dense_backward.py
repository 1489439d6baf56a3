# %% [markdown]
# # Worked solutions to assignment 1
#
# Each cell replaces the TODO cell of the same name in
# [01_dense_backward](../01_dense_backward.py). Try the assignment first.

# %% TODO dense
def dense_forward(x, W, b):
    """z = x W + b.  x (N, D), W (D, H), b (H,) -> (out (N, H), cache)."""
    out = x @ W + b  # b broadcasts over the N rows
    cache = (x, W, b)
    return out, cache


def dense_backward(dout, cache):
    """dout = δ = ∂L/∂z (N, H) -> (dx (N, D), dW (D, H), db (H,))."""
    x, W, b = cache
    dx = dout @ W.T  # ∂L/∂x = δ Wᵀ
    dW = x.T @ dout  # ∂L/∂W = xᵀ δ: a sum over samples of outer products x_iᵀ δ_i
    db = dout.sum(axis=0)  # ∂L/∂b = Σ_i δ_i
    return dx, dW, db


# %% TODO relu
def relu_forward(x):
    """max(x, 0).  x (N, H) -> (out (N, H), cache)."""
    out = np.maximum(x, 0.0)
    cache = x > 0  # the mask is all the backward pass needs
    return out, cache


def relu_backward(dout, cache):
    """dout (N, H) -> dx (N, H)."""
    dx = dout * cache  # derivative 1 where x > 0, 0 elsewhere (at x = 0 too)
    return dx


# %% TODO losses
def mse_loss(f, y):
    """L = ‖f − y‖²/(2N).  f, y (N, K) -> (L float, dL/df (N, K))."""
    N = f.shape[0]
    r = f - y  # the residual
    loss = float((r * r).sum()) / (2 * N)
    df = r / N  # divided by the N samples, not by the N·K entries
    return loss, df


def softmax_cross_entropy_loss(z, labels):
    """z (N, K) logits, labels (N,) integers in [0, K) -> (L float, dL/dz (N, K))."""
    N = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)  # softmax does not see a shift; no exp overflows
    log_norm = np.log(np.exp(shifted).sum(axis=1))  # log Σ_k e^{z_ik} (shifted)
    loss = float((log_norm - shifted[np.arange(N), labels]).mean())
    p = np.exp(shifted - log_norm[:, None])  # softmax(z_i)
    p[np.arange(N), labels] -= 1.0  # minus the one-hot label
    dz = p / N
    return loss, dz
