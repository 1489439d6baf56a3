# %% [markdown]
# # Worked solutions to assignment 6
#
# Each cell replaces the TODO cell of the same name in
# [06_conv_batchnorm](../06_conv_batchnorm.py). Try the assignment first.

# %% TODO conv
def conv_forward(x, Wk, b, stride, pad):
    """x (N, C, H, W), Wk (k, k, C, C_out), b (C_out,) -> (z (N, C_out, H_o, W_o), cache)."""
    k, C_out = Wk.shape[0], Wk.shape[3]
    X_col, (H_o, W_o) = im2col(x, k, stride, pad)  # (N·H_o·W_o, k·k·C)
    rows, dense_cache = dense_forward(X_col, Wk.reshape(-1, C_out), b)  # a dense layer on patches
    z = rows.reshape(x.shape[0], H_o, W_o, C_out).transpose(0, 3, 1, 2)
    cache = (x, Wk, stride, pad, dense_cache)
    return z, cache


def conv_backward(dz, cache):
    """dz (N, C_out, H_o, W_o) -> (dx (N, C, H, W), dWk like Wk, db (C_out,))."""
    x, Wk, stride, pad, dense_cache = cache
    C_out = Wk.shape[3]
    drows = dz.transpose(0, 2, 3, 1).reshape(-1, C_out)  # back to one row per (n, i, j)
    dX_col, dW_col, db = dense_backward(drows, dense_cache)
    dx = col2im(dX_col, x.shape, Wk.shape[0], stride, pad)  # each pixel sums the patches it is in
    return dx, dW_col.reshape(Wk.shape), db


# %% TODO batchnorm
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training mode.  x (N, C, H, W), gamma, beta (C,) -> (y (N, C, H, W), cache)."""
    axes = (0, 2, 3)  # the M = N·H·W values of each channel
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)  # biased: divided by M
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv_std
    y = gamma.reshape(1, -1, 1, 1) * xhat + beta.reshape(1, -1, 1, 1)
    cache = (xhat, gamma, inv_std)
    return y, cache


def batchnorm_backward(dout, cache):
    """dout = δ (N, C, H, W) -> (dx (N, C, H, W), dgamma (C,), dbeta (C,))."""
    xhat, gamma, inv_std = cache
    axes = (0, 2, 3)
    M = dout.size // dout.shape[1]
    dgamma = (dout * xhat).sum(axis=axes)  # ∂L/∂γ = Σ δ x̂
    dbeta = dout.sum(axis=axes)  # ∂L/∂β = Σ δ
    c = lambda v: v.reshape(1, -1, 1, 1)  # (C,) -> broadcast over (N, C, H, W)
    dx = c(gamma) * inv_std * (dout - c(dbeta) / M - xhat * c(dgamma) / M)  # the mean's and the variance's terms
    return dx, dgamma, dbeta
