# %% [markdown]
# # Assignment 1: the backward pass of a dense layer, a ReLU and the two losses
#
# Read first: [chapter 1, backpropagation](../01-backprop.md). You write the
# forward and backward passes the chapter derives, as plain NumPy functions in
# the style of cs231n (`layer_forward(...) -> (out, cache)`,
# `layer_backward(dout, cache) -> gradients`), and each check compares your
# answer with minilplr's own layer on random inputs.
#
# Shapes: $N$ samples, $D$ input features, $H$ output features (the width),
# $K$ outputs. Every check prints `rel_error` $= \lVert a-b\rVert / \max(\lVert a\rVert+\lVert b\rVert, 10^{-8})$
# against a threshold. Your code and minilplr's do the same float64
# arithmetic, perhaps summed in another order, which changes the result by
# about $10^{-16}$; a wrong formula gives an error near $1$. So the threshold
# is $10^{-12}$ throughout.
#
# Write your code between the `# TODO` lines of the cells marked TODO, run
# every cell, and read the PASS/FAIL lines. Later assignments load your
# functions from this notebook (save it), so they must keep their names.

# %%
import numpy as np

from course import check_close
from minilplr.nn.layers import Dense, ReLU
from minilplr.nn.losses import mse, softmax_cross_entropy
from minilplr.nn.models import mlp

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The dense layer
#
# $z = xW + b$ with $x$ of shape $(N, D)$, $W$ of shape $(D, H)$ and $b$ of
# length $H$ (added to every row). With $\delta = \partial L/\partial z$ of
# shape $(N, H)$, chapter 1 derives
#
# $$
# \frac{\partial L}{\partial W} = x^\top \delta, \qquad
# \frac{\partial L}{\partial b} = \sum_i \delta_i, \qquad
# \frac{\partial L}{\partial x} = \delta W^\top .
# $$

# %% TODO dense
def dense_forward(x, W, b):
    """z = x W + b.  x (N, D), W (D, H), b (H,) -> (out (N, H), cache)."""
    out = np.zeros((x.shape[0], W.shape[1]))
    # TODO: the affine map, one row per sample
    cache = (x, W, b)
    return out, cache


def dense_backward(dout, cache):
    """dout = δ = ∂L/∂z (N, H) -> (dx (N, D), dW (D, H), db (H,))."""
    x, W, b = cache
    dx, dW, db = np.zeros_like(x), np.zeros_like(W), np.zeros_like(b)
    # TODO: the three gradients of chapter 1, each one line
    return dx, dW, db


# %%
N, D, H = 4, 5, 3
x, W, b = rng.standard_normal((N, D)), rng.standard_normal((D, H)), rng.standard_normal(H)
dout = rng.standard_normal((N, H))

layer = Dense(W.copy(), b.copy())  # minilplr's dense layer, on copies of the same numbers
z_ref = layer.forward(x.copy())
dx_ref = layer.backward(dout)

out, cache = dense_forward(x, W, b)
dx, dW, db = dense_backward(dout, cache)
check_close("dense_forward z", out, z_ref, 1e-12)
check_close("dense_backward dx", dx, dx_ref, 1e-12)
check_close("dense_backward dW", dW, layer.grads["W"], 1e-12)
check_close("dense_backward db", db, layer.grads["b"], 1e-12)

# %% [markdown]
# ## 2. The ReLU
#
# $\mathrm{relu}(x) = \max(x, 0)$ elementwise, and
# $\partial L/\partial x = \partial L/\partial\,\mathrm{out} \odot \mathbb{1}[x > 0]$: the derivative
# at exactly $0$ is taken as $0$, as minilplr and PyTorch do. The check below
# puts two inputs exactly on the kink.

# %% TODO relu
def relu_forward(x):
    """max(x, 0).  x (N, H) -> (out (N, H), cache)."""
    out = np.zeros_like(x)
    # TODO: the forward pass, and what the backward pass must remember
    cache = x
    return out, cache


def relu_backward(dout, cache):
    """dout (N, H) -> dx (N, H)."""
    dx = np.zeros_like(dout)
    # TODO: pass the gradient where the input was positive
    return dx


# %%
x = rng.standard_normal((N, H))
x[0, :2] = 0.0  # exactly on the kink
dout = rng.standard_normal((N, H))
relu = ReLU()
out_ref = relu.forward(x.copy())
dx_ref = relu.backward(dout)

out, cache = relu_forward(x)
check_close("relu_forward", out, out_ref, 1e-12)
check_close("relu_backward (two inputs at 0)", relu_backward(dout, cache), dx_ref, 1e-12)

# %% [markdown]
# ## 3. The two losses
#
# The squared loss is normalised per sample, not per entry:
#
# $$
# L = \frac{1}{2N}\lVert f - y\rVert^2, \qquad \frac{\partial L}{\partial f} = \frac{1}{N}(f - y),
# $$
#
# with $f$ and $y$ of shape $(N, K)$. Softmax cross-entropy of logits $z$ of
# shape $(N, K)$ and integer labels $y_i$:
#
# $$
# L = \frac1N\sum_i \Big(\log\sum_k e^{z_{ik}} - z_{i y_i}\Big), \qquad
# \frac{\partial L}{\partial z_{ik}} = \frac1N\big(\mathrm{softmax}(z_i)_k - \mathbb{1}[k = y_i]\big).
# $$
#
# Subtract each row's maximum before the exponential: the last check uses
# logits of $\pm 1000$, where $e^{1000}$ overflows.

# %% TODO losses
def mse_loss(f, y):
    """L = ‖f − y‖²/(2N).  f, y (N, K) -> (L float, dL/df (N, K))."""
    loss, df = 0.0, np.zeros_like(f)
    # TODO: the loss and its gradient
    return loss, df


def softmax_cross_entropy_loss(z, labels):
    """z (N, K) logits, labels (N,) integers in [0, K) -> (L float, dL/dz (N, K))."""
    loss, dz = 0.0, np.zeros_like(z)
    # TODO: the loss and its gradient, stable for large logits
    return loss, dz


# %%
K = 2
f, y = rng.standard_normal((N, K)), rng.standard_normal((N, K))
L_ref, df_ref = mse(f, y)
L, df = mse_loss(f, y)
check_close("mse_loss L (K = 2)", L, L_ref, 1e-12)
check_close("mse_loss dL/df", df, df_ref, 1e-12)

z, labels = 3 * rng.standard_normal((N, 5)), rng.integers(0, 5, N)
z[0] = [1000.0, 0.0, -1000.0, 3.0, 0.5]
L_ref, dz_ref = softmax_cross_entropy(z, labels)
L, dz = softmax_cross_entropy_loss(z, labels)
check_close("softmax_cross_entropy_loss L", L, L_ref, 1e-12)
check_close("softmax_cross_entropy_loss dL/dz", dz, dz_ref, 1e-12)

# %% [markdown]
# ## 4. A whole network, from your pieces
#
# Nothing to write here: this cell chains your four functions into the
# paper's kind of network, `dense → relu → dense → relu → dense`, runs the
# squared loss, and goes backward last layer first. Its gradients must be
# those of `minilplr.nn.models.mlp` with the same weights.

# %%
def mlp_loss_and_grads(params, X, y, depth):
    """Your layers chained: the loss and {"fc1.W": ..., "fc1.b": ...} like model.grads."""
    h, caches = X, []
    for l in range(1, depth + 1):
        h, c = dense_forward(h, params[f"fc{l}.W"], params[f"fc{l}.b"])
        caches.append(c)
        if l < depth:
            h, c = relu_forward(h)
            caches.append(c)
    loss, dh = mse_loss(h, y)
    grads = {}
    for l in range(depth, 0, -1):
        if l < depth:
            dh = relu_backward(dh, caches.pop())
        dh, grads[f"fc{l}.W"], grads[f"fc{l}.b"] = dense_backward(dh, caches.pop())
    return loss, grads


model = mlp(d_in=5, width=8, depth=3, d_out=2, seed=1, dtype="float64")
X, y = rng.standard_normal((6, 5)), rng.standard_normal((6, 2))
L_ref, dpred = mse(model.forward(X), y)
model.backward(dpred, need_dx=False)
L, grads = mlp_loss_and_grads({k: v.copy() for k, v in model.params.items()}, X, y, depth=3)
check_close("your network's loss", L, L_ref, 1e-12)
for name in model.params:
    check_close(f"your network's ∂L/∂{name}", grads[name], model.grads[name], 1e-12)
