# %% [markdown]
# # Assignment 4: the PL inequality from the NTK, step by step
#
# Read first: [chapter 4, the PL inequality from the NTK](../04-pl-from-the-ntk.md).
# With the residual $r = f(X) - y$ (length $N$ here, $K = 1$), the loss
# $L = \lVert r\rVert^2/(2N)$ and your NTK $\Theta = J J^\top$ from
# assignment 3, the proof of the LPLR paper's Theorem 5.1 is four steps:
#
# $$
# \nabla L = \tfrac1N J^\top r, \qquad \lVert\nabla L\rVert^2 = \frac{r^\top\Theta r}{N^2},
# $$
#
# $$
# r^\top\Theta r \ge \lambda_{\min}\lVert r\rVert^2 \ \ (6), \qquad
# \lVert\nabla L\rVert^2 \ge \frac{\lambda_{\min}}{N^2}\lVert r\rVert^2 \ \ (7), \qquad
# \lVert\nabla L\rVert^2 \ge \frac{2\lambda_{\min}}{N} L \ \ (8), \qquad
# \tfrac12\lVert\nabla L\rVert^2 \ge \mu\,(L - L^*) \ \ (9),
# $$
#
# with $\mu = \lambda_{\min}(\Theta)/N$. You compute both sides of each step
# on a real network; the checks compare them with `minilplr.theory.pl`'s
# functions (within $10^{-12}$: the same sums) and the gradient with the
# engine's backward pass.

# %%
import numpy as np

from course import check_close, load
from minilplr.nn.losses import mse
from minilplr.nn.models import mlp
from minilplr.nn.params import flatten
from minilplr.theory import pl, spectrum

sensitivities, jacobian_from_sensitivities, structured_ntk = load(
    "03_structured_ntk", "sensitivities", "jacobian_from_sensitivities", "structured_ntk")

rng = np.random.default_rng(4)
depth, N = 3, 8
model = mlp(d_in=3, width=64, depth=depth, d_out=1, seed=2, dtype="float64")
X, y = rng.standard_normal((N, 3)), rng.standard_normal((N, 1))
params = {k: v.copy() for k, v in model.params.items()}
A, G = sensitivities(params, X, depth)  # your assignment 3
J, theta = jacobian_from_sensitivities(A, G), structured_ntk(A, G)

f = model.forward(X)
loss, dpred = mse(f, y)
model.backward(dpred, need_dx=False)
grad_backward = flatten(model.grads)  # ∇L from the hand-written backward pass, (P,)
r = (f - y).reshape(-1)

# %% [markdown]
# ## 1. The gradient from the Jacobian
#
# $\nabla L = \frac1N J^\top r$, a vector of length $P$. It must equal what
# the backward pass computes without ever forming $J$.

# %% TODO gradient
def gradient_from_jacobian(J, r, N):
    """J (N, P), r (N,), N samples -> ∇L (P,)."""
    grad = np.zeros(J.shape[1])
    # TODO
    return grad


# %%
grad = gradient_from_jacobian(J, r, N)
check_close("(1/N) Jᵀ r against the backward pass", grad, grad_backward, 1e-12)

# %% [markdown]
# ## 2. $\lambda_{\min}$, $\mu$ and the PL ratio
#
# $\lambda_{\min}$ is the smallest eigenvalue of the symmetric $\Theta$
# (`np.linalg.eigvalsh` sorts them in ascending order), $\mu = \lambda_{\min}/N$,
# and the PL ratio $\lVert\nabla L\rVert^2 / (2(L - L^*))$, which step (8)
# says is at least $\mu$ when $L^* = 0$. The check compares
# $\lambda_{\min}$ with `minilplr.theory.spectrum.ntk_spectrum` within
# $10^{-10}$ (this $\Theta$'s condition number is in the hundreds, so
# rounding moves its smallest eigenvalue by about $10^{-13}$ relative).

# %% TODO constants
def pl_constants(theta, grad, loss, N, loss_star=0.0):
    """-> (λ_min, μ, PL ratio) of Θ (N, N), ∇L (P,), the loss L and L*."""
    lam_min, mu, ratio = 0.0, 0.0, 0.0
    # TODO
    return lam_min, mu, ratio


# %%
lam_min, mu, ratio = pl_constants(theta, grad_backward, loss, N)
spec = spectrum.ntk_spectrum(theta)
check_close("λ_min", lam_min, spec.lam_min, 1e-10)
check_close("μ = λ_min/N", mu, pl.pl_constant(spec.lam_min, N), 1e-10)
check_close("PL ratio ‖∇L‖²/(2(L − L*))", ratio, pl.pl_ratio(grad_backward, loss), 1e-12)
print(f"PL ratio {ratio:.4g} ≥ μ = {mu:.4g}: {ratio >= mu}")

# %% [markdown]
# ## 3. Both sides of steps (6) to (9)
#
# Return the pairs $(\text{left side}, \text{right side})$ of each inequality,
# in the order of the formulas above.

# %% TODO steps
def pl_steps(theta, r, grad, loss, lam_min, N, loss_star=0.0):
    """-> {"6": (lhs, rhs), "7": ..., "8": ..., "9": ...}, floats."""
    steps = {"6": (0.0, 0.0), "7": (0.0, 0.0), "8": (0.0, 0.0), "9": (0.0, 0.0)}
    # TODO
    return steps


# %%
lam = spec.lam_min
steps = pl_steps(theta, r, grad_backward, loss, lam, N)
reference = {"6": pl.pl_step6_rayleigh(theta, r, lam), "7": pl.pl_step7_gradient_bound(grad_backward, r, lam, N),
             "8": pl.pl_step8_loss_bound(grad_backward, loss, lam, N),
             "9": pl.pl_step9_pl_inequality(grad_backward, loss, lam, N)}
for k, ref in reference.items():
    check_close(f"step ({k}) both sides", steps[k], (ref.lhs, ref.rhs), 1e-12)
    print(f"   step ({k}): {steps[k][0]:.6g} ≥ {steps[k][1]:.6g}")
