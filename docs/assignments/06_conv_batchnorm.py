# %% [markdown]
# # Assignment 6: convolution as a dense layer, and the batch-norm backward pass
#
# Read first: [chapter 6, convolution, batch norm and the residual block](../06-convolution-batchnorm-residual.md).
#
# **Convolution** is your assignment-1 dense layer applied to patches:
# `minilplr.nn.conv.im2col` turns an image $x$ of shape $(N, C, H, W)$
# into the patch matrix $X_{col}$ of shape $(N H_o W_o,\ k k C)$, the
# kernel $W_k$ of shape $(k, k, C, C_{out})$ reshapes to
# $W_{col}$ of shape $(k k C,\ C_{out})$, and $z = X_{col} W_{col} + b$. Backward,
# your `dense_backward` gives $\partial L/\partial X_{col}$, and
# `minilplr.nn.conv.col2im` (the adjoint of `im2col`) adds each patch
# entry's gradient back onto its pixel.
#
# **Batch norm** in training mode normalises each channel over its
# $M = N H W$ values, $\hat x = (x - \mu)/\sqrt{\sigma^2 + \epsilon}$ and
# $y = \gamma\hat x + \beta$, with $\mu$ and $\sigma^2$ (biased) the batch's
# own mean and variance. Because $\mu$ and $\sigma^2$ depend on every value,
# the backward pass has two extra terms:
#
# $$
# \frac{\partial L}{\partial x_m} = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}
# \Big(\delta_m - \frac1M\frac{\partial L}{\partial\beta} - \frac{\hat x_m}{M}\frac{\partial L}{\partial\gamma}\Big),
# \qquad \frac{\partial L}{\partial\gamma} = \sum \delta\odot\hat x, \qquad \frac{\partial L}{\partial\beta} = \sum \delta,
# $$
#
# sums over the $M$ values of a channel, $\delta = \partial L/\partial y$.
# The checks compare with `minilplr.nn.conv.Conv2D` and
# `minilplr.nn.batchnorm.BatchNorm2D` (within $10^{-10}$: the same
# formulas, summed in other orders), and your batch-norm backward with
# **your** central differences from assignment 2 (within $10^{-6}$).

# %%
import numpy as np

from course import check_close, load
from minilplr.nn.batchnorm import BatchNorm2D
from minilplr.nn.conv import Conv2D, col2im, im2col

dense_forward, dense_backward = load("01_dense_backward", "dense_forward", "dense_backward")
numerical_gradient = load("02_gradient_check", "numerical_gradient")

rng = np.random.default_rng(6)

# %% [markdown]
# ## 1. Convolution from `im2col` and your dense layer
#
# `im2col(x, k, stride, pad)` returns `(X_col, (H_o, W_o))`; the rows of
# `X_col` run over $(n, i, j)$ in C order, so $z$ reshapes to
# $(N, H_o, W_o, C_{out})$ and then transposes to $(N, C_{out}, H_o, W_o)$.
# `col2im(dX_col, x.shape, k, stride, pad)` goes back.

# %% TODO conv
def conv_forward(x, Wk, b, stride, pad):
    """x (N, C, H, W), Wk (k, k, C, C_out), b (C_out,) -> (z (N, C_out, H_o, W_o), cache)."""
    k, C_out = Wk.shape[0], Wk.shape[3]
    z = np.zeros((x.shape[0], C_out, 1, 1))
    # TODO: im2col, your dense_forward, reshape
    cache = (x, Wk, stride, pad)
    return z, cache


def conv_backward(dz, cache):
    """dz (N, C_out, H_o, W_o) -> (dx (N, C, H, W), dWk like Wk, db (C_out,))."""
    x, Wk, stride, pad = cache
    dx, dWk, db = np.zeros_like(x), np.zeros_like(Wk), np.zeros(Wk.shape[3])
    # TODO: rows again, your dense_backward, col2im
    return dx, dWk, db


# %%
x = rng.standard_normal((2, 3, 6, 5))
Wk, b = rng.standard_normal((3, 3, 3, 4)), rng.standard_normal(4)
conv = Conv2D(Wk.copy(), b.copy(), stride=2, padding=1)
z_ref = conv.forward(x.copy())
dz = rng.standard_normal(z_ref.shape)
dx_ref = conv.backward(dz)
z, cache = conv_forward(x, Wk, b, stride=2, pad=1)
dx, dWk, db = conv_backward(dz, cache)
check_close("conv_forward z", z, z_ref, 1e-10)
check_close("conv_backward dx", dx, dx_ref, 1e-10)
check_close("conv_backward dWk", dWk, conv.grads["W"], 1e-10)
check_close("conv_backward db", db, conv.grads["b"], 1e-10)

# %% [markdown]
# ## 2. Batch norm in training mode

# %% TODO batchnorm
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training mode.  x (N, C, H, W), gamma, beta (C,) -> (y (N, C, H, W), cache)."""
    y = np.zeros_like(x)
    # TODO: per-channel mean and biased variance over (N, H, W), x̂, y
    cache = (x, gamma, eps)
    return y, cache


def batchnorm_backward(dout, cache):
    """dout = δ (N, C, H, W) -> (dx (N, C, H, W), dgamma (C,), dbeta (C,))."""
    x, gamma, eps = cache
    dx, dgamma, dbeta = np.zeros_like(x), np.zeros_like(gamma), np.zeros_like(gamma)
    # TODO: the formula above
    return dx, dgamma, dbeta


# %%
x = 2 + 3 * rng.standard_normal((4, 3, 5, 5))
gamma, beta = 1 + rng.standard_normal(3), rng.standard_normal(3)
bn = BatchNorm2D(gamma.copy(), beta.copy())  # training mode: batch statistics
y_ref = bn.forward(x.copy())
dout = rng.standard_normal(x.shape)
dx_ref = bn.backward(dout)
y, cache = batchnorm_forward(x, gamma, beta)
dx, dgamma, dbeta = batchnorm_backward(dout, cache)
check_close("batchnorm_forward y", y, y_ref, 1e-10)
check_close("batchnorm_backward dx", dx, dx_ref, 1e-10)
check_close("batchnorm_backward dgamma", dgamma, bn.grads["gamma"], 1e-10)
check_close("batchnorm_backward dbeta", dbeta, bn.grads["beta"], 1e-10)

# %% [markdown]
# And against your own central differences (assignment 2) of the scalar
# $\sum y \odot \delta$ computed by minilplr's batch norm, whose gradient
# with respect to $x$ is exactly $\partial L/\partial x$ for
# $\delta = $ `dout`, on a smaller batch.

# %%
xs, douts = rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((2, 2, 3, 3))
gs, bs = 1 + rng.standard_normal(2), rng.standard_normal(2)
num = numerical_gradient(lambda: float((BatchNorm2D(gs.copy(), bs.copy()).forward(xs) * douts).sum()), xs)
_, c = batchnorm_forward(xs, gs, bs)
check_close("batchnorm_backward dx against your central differences", batchnorm_backward(douts, c)[0], num, 1e-6)
