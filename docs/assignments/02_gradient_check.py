# %% [markdown]
# # Assignment 2: checking a gradient
#
# Read first: [chapter 2, checking a gradient](../02-gradient-check.md). You
# write the central difference and the relative error, then use them to
# check **your own** backward passes from assignment 1 (this notebook loads
# them from `01_dense_backward.ipynb`: save that notebook first).
#
# The central difference of a scalar function $f$ in coordinate $i$:
#
# $$
# \frac{\partial f}{\partial x_i} \approx \frac{f(x + h e_i) - f(x - h e_i)}{2h},
# $$
#
# with truncation error $O(h^2)$ and rounding error $O(\varepsilon/h)$,
# $\varepsilon = 2^{-52} \approx 2.2\times 10^{-16}$ in float64. At
# $h = 10^{-6}$ the two balance near $10^{-10}$ relative, for a well-scaled
# function: that is why every check here runs in float64.

# %%
import numpy as np

from course import check_close, load
from minilplr.nn import gradcheck

dense_forward, dense_backward, relu_forward, relu_backward, mse_loss = load(
    "01_dense_backward", "dense_forward", "dense_backward", "relu_forward", "relu_backward", "mse_loss")

rng = np.random.default_rng(1)

# %% [markdown]
# ## 1. The relative error
#
# $$
# \mathrm{rel\_error}(a, b) = \frac{\lVert a - b\rVert}{\max(\lVert a\rVert + \lVert b\rVert,\ 10^{-8})},
# $$
#
# Frobenius norms of the whole arrays. The floor $10^{-8}$ keeps two zero
# gradients from dividing by zero. The check compares yours with
# `minilplr.nn.gradcheck.rel_error` on pairs of every scale, zeros included,
# to within $10^{-12}$ (rounding only).

# %% TODO relative_error
def relative_error(a, b):
    """‖a − b‖ / max(‖a‖ + ‖b‖, 1e-8), Frobenius norms; a, b arrays of one shape -> float."""
    err = 0.0
    # TODO
    return err


# %%
pairs = [(rng.standard_normal((3, 4)), rng.standard_normal((3, 4))),
         (np.ones(5), np.ones(5) + 1e-9),
         (np.zeros((2, 2)), np.zeros((2, 2))),
         (1e-12 * np.ones(3), np.zeros(3)),
         (1e6 * rng.standard_normal(7), 1e6 * rng.standard_normal(7))]
mine = [relative_error(a, b) for a, b in pairs]
ref = [gradcheck.rel_error(a, b) for a, b in pairs]
check_close("relative_error on five pairs", mine, ref, 1e-12)

# %% [markdown]
# ## 2. The central difference
#
# `numerical_gradient(f, x, h)` takes a function `f()` of **no** argument
# that reads the array `x` (a closure over a network's weights, say), and
# perturbs `x` **in place**, one entry at a time, restoring each entry
# before the next. It returns an array of `x`'s shape.
#
# Two checks: against `minilplr.nn.gradcheck.numerical_gradient` (the same
# formula at the same $h$: within $10^{-9}$; a one-sided difference is off
# by about $h$ and fails), and against the exact gradient of
# $f(x) = \sum \sin(x) x^2$ (within $10^{-8}$, the method's own accuracy).

# %% TODO numerical_gradient
def numerical_gradient(f, x, h=1e-6):
    """Central differences of the scalar f() with respect to x, perturbing x in place; -> array like x."""
    grad = np.zeros_like(x)
    # TODO: loop over the entries of x (np.nditer or x.reshape(-1), a view)
    return grad


# %%
x = rng.standard_normal((3, 4))


def f():
    return float((np.sin(x) * x**2).sum())


exact = np.cos(x) * x**2 + 2 * x * np.sin(x)
g = numerical_gradient(f, x)
ref = gradcheck.numerical_gradient(f, x)  # at the x yours left behind: an x not restored fails here
check_close("numerical_gradient against minilplr's", g, ref, 1e-9)
check_close("numerical_gradient against the exact gradient", g, exact, 1e-8)

# %% [markdown]
# ## 3. Check your backward pass from assignment 1
#
# A small network `dense → relu → dense` with the squared loss, built from
# your assignment-1 functions. Its analytic gradients (your backward pass)
# must match your central differences. Threshold $10^{-6}$: a relative
# error near $10^{-10}$ is what a correct backward pass reaches here, a
# wrong one gives $10^{-2}$ to $1$, and a ReLU input within $h$ of the kink
# could cost up to about $10^{-7}$ (chapter 2, "what a ReLU kink does").


# %%
def two_layer_loss(params, X, y):
    h, c1 = dense_forward(X, params["W1"], params["b1"])
    a, c2 = relu_forward(h)
    f, c3 = dense_forward(a, params["W2"], params["b2"])
    loss, df = mse_loss(f, y)
    da, dW2, db2 = dense_backward(df, c3)
    dW1_in = relu_backward(da, c2)
    _, dW1, db1 = dense_backward(dW1_in, c1)
    return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


X, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
params = {"W1": rng.standard_normal((4, 6)), "b1": 0.1 * rng.standard_normal(6),
          "W2": rng.standard_normal((6, 2)), "b2": 0.1 * rng.standard_normal(2)}
_, analytic = two_layer_loss(params, X, y)
for name, p in params.items():
    num = numerical_gradient(lambda: two_layer_loss(params, X, y)[0], p)
    check_close(f"your backward ∂L/∂{name} against your central differences", analytic[name], num, 1e-6)
