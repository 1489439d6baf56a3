# %% [markdown]
# # Worked solutions to assignment 5
#
# Each cell replaces the TODO cell of the same name in
# [05_rate](../05_rate.py). Try the assignment first.

# %% TODO envelope
def envelope(t, eta, mu, gap0):
    """(1 − ημ)^t (L_0 − L*) for an integer array t -> float array like t."""
    env = gap0 * (1.0 - eta * mu) ** np.asarray(t, dtype=float)
    return env


# %% TODO kernel_regime
def kernel_regime_loss(theta0, r0, eta, N, steps):
    """Θ_0 (N, N), r_0 (N,) -> the losses L_0 ... L_{steps−1} (steps,) of GD on the linearised network."""
    lam, U = np.linalg.eigh(theta0)
    c2 = (U.T @ r0) ** 2  # the residual's weight on each eigen-direction
    q2 = (1.0 - eta * np.clip(lam, 0, None) / N) ** 2  # each direction shrinks by (1 − ηλ_i/N) per step
    t = np.arange(steps)
    losses = (c2[:, None] * q2[:, None] ** t[None, :]).sum(axis=0) / (2 * N)
    return losses


# %% TODO gd
def gd_losses(model, X, y, eta, steps):
    """Full-batch GD in place on model.params; -> the losses L_0 ... L_{steps−1} (steps,)."""
    losses = np.zeros(steps)
    for t in range(steps):
        loss, dpred = mse(model.forward(X), y)
        losses[t] = loss
        model.backward(dpred, need_dx=False)
        for name in model.params:
            model.params[name] -= eta * model.grads[name]  # θ ← θ − η ∇L
    return losses
