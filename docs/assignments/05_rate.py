# %% [markdown]
# # Assignment 5: the linear rate, predicted and measured
#
# Read first: [chapter 5, linear convergence](../05-linear-convergence.md).
# Gradient descent $\theta_{t+1} = \theta_t - \eta\nabla L(\theta_t)$ with
# $\eta \le 1/\beta$ and the PL inequality with constant $\mu$ give Theorem
# 5.4's envelope
#
# $$
# L_t - L^* \le (1 - \eta\mu)^t\,(L_0 - L^*),
# $$
#
# and if the NTK stayed at $\Theta_0$ (the kernel regime), the residual would
# move as $r_{t+1} = (I - \eta\Theta_0/N)\,r_t$, so that, with
# $\Theta_0 = \sum_i \lambda_i u_i u_i^\top$,
#
# $$
# L_t = \frac{1}{2N}\sum_i (u_i^\top r_0)^2\Big(1 - \frac{\eta\lambda_i}{N}\Big)^{2t}.
# $$
#
# You write the envelope, the kernel-regime curve and the GD loop, and set
# them against each other on a wide network, with $\Theta_0$ and $\mu$ from
# your assignments 3 and 4.

# %%
import numpy as np

from course import check, check_close, load
from minilplr.nn.losses import mse
from minilplr.nn.models import mlp
from minilplr.theory import dynamics
from minilplr.train.loops import train_gd
from minilplr.train.optim import GD

sensitivities, structured_ntk = load("03_structured_ntk", "sensitivities", "structured_ntk")
pl_constants = load("04_pl_steps", "pl_constants")

rng = np.random.default_rng(5)
N, D, H, depth, steps = 10, 5, 512, 3, 200
X, y = rng.standard_normal((N, D)), rng.standard_normal((N, 1))
model = mlp(D, H, depth, 1, seed=0, dtype="float64")
A, G = sensitivities({k: v.copy() for k, v in model.params.items()}, X, depth)
theta0 = structured_ntk(A, G)  # your Θ_0
r0 = (model.forward(X) - y).reshape(-1)
L0, _ = mse(model.forward(X), y)
eta = 0.5 * N / np.linalg.eigvalsh(theta0)[-1]  # half of 1/β_GN, β_GN = λ_max(Θ_0)/N
lam_min, mu, _ = pl_constants(theta0, np.ones(1), 1.0, N)  # your μ = λ_min/N (the ratio is not used)
print(f"N = {N}, H = {H}: η = {eta:.4g}, μ = {mu:.4g}, ημ = {eta * mu:.3g}")

# %% [markdown]
# ## 1. The envelope
#
# `envelope(t, eta, mu, gap0)` for an integer array `t` of steps returns
# $(1-\eta\mu)^t \cdot$ `gap0`, an array like `t`. Checked against
# `minilplr.theory.dynamics.pl_envelope` within $10^{-12}$.

# %% TODO envelope
def envelope(t, eta, mu, gap0):
    """(1 − ημ)^t (L_0 − L*) for an integer array t -> float array like t."""
    env = np.zeros(np.shape(t))
    # TODO
    return env


# %%
t = np.arange(steps)
check_close("envelope", envelope(t, eta, mu, L0), dynamics.pl_envelope(t, eta, mu, L0), 1e-12)

# %% [markdown]
# ## 2. The kernel regime of $\Theta_0$
#
# Either iterate $r \leftarrow (I - \eta\Theta_0/N)\,r$ and record
# $\lVert r\rVert^2/(2N)$ before each step, or use the eigen-decomposition
# above. Checked against `minilplr.theory.dynamics.kernel_regime_loss`
# within $10^{-9}$ (the two ways round differently over 200 steps, by
# about $10^{-13}$).

# %% TODO kernel_regime
def kernel_regime_loss(theta0, r0, eta, N, steps):
    """Θ_0 (N, N), r_0 (N,) -> the losses L_0 ... L_{steps−1} (steps,) of GD on the linearised network."""
    losses = np.zeros(steps)
    # TODO
    return losses


# %%
kernel = kernel_regime_loss(theta0, r0, eta, N, steps)
check_close("kernel-regime loss curve", kernel, dynamics.kernel_regime_loss(theta0, r0, eta, N, steps), 1e-9)

# %% [markdown]
# ## 3. Gradient descent, measured
#
# `gd_losses(model, X, y, eta, steps)`: full-batch GD on the squared loss
# with minilplr's forward and backward passes (`model.forward`,
# `minilplr.nn.losses.mse`, `model.backward`, then every array of
# `model.params` moves by $-\eta$ times its `model.grads`), recording the
# loss before each step. Checked against `minilplr.train.loops.train_gd`
# with `minilplr.train.optim.GD` on an identical copy of the network, within
# $10^{-10}$.

# %% TODO gd
def gd_losses(model, X, y, eta, steps):
    """Full-batch GD in place on model.params; -> the losses L_0 ... L_{steps−1} (steps,)."""
    losses = np.zeros(steps)
    # TODO
    return losses


# %%
measured = gd_losses(model, X, y, eta, steps)
reference = np.asarray(train_gd(mlp(D, H, depth, 1, seed=0, dtype="float64"), X, y, GD(eta), steps)["loss"])
check_close("GD losses against train_gd", measured, reference, 1e-10)

# %% [markdown]
# ## 4. What the three curves say
#
# With $L^* = 0$ (this wide network can fit 10 points), Theorem 5.4 says
# the measured loss stays under the envelope; the kernel regime of
# $\Theta_0$ would be exact if the NTK did not move. The last check asks for
# the measured loss to start at $L_0$ and stay below the envelope at every
# step (a relative excess under $10^{-12}$); the printout shows how far the
# kernel regime is from the measured curve (the NTK moved: chapter 5 and
# the interactive figures show how that shrinks with the width).

# %%
env = envelope(t, eta, mu, L0)
with np.errstate(divide="ignore", invalid="ignore"):  # a starter's zeros must fail the check, not warn
    excess = max(float(np.max((measured - env) / env)), abs(measured[0] - L0) / L0)  # and start at L_0
    gap = float(np.max(np.abs(np.log(kernel[1:] / measured[1:]))))
check("measured L_t from L_0, below the envelope at every step", excess if np.isfinite(excess) else np.inf,
      1e-12, "largest relative excess")
print(f"after {steps} steps: measured {measured[-1]:.3e}, kernel regime {kernel[-1]:.3e}, "
      f"envelope {env[-1]:.3e}; kernel regime within a factor {np.exp(gap):.3f} of measured at every step")
