# %% [markdown]
# # Worked solutions to assignment 4
#
# Each cell replaces the TODO cell of the same name in
# [04_pl_steps](../04_pl_steps.py). Try the assignment first.

# %% TODO gradient
def gradient_from_jacobian(J, r, N):
    """J (N, P), r (N,), N samples -> ∇L (P,)."""
    grad = J.T @ r / N  # each parameter's gradient: the residual-weighted sum of its column of J
    return grad


# %% TODO constants
def pl_constants(theta, grad, loss, N, loss_star=0.0):
    """-> (λ_min, μ, PL ratio) of Θ (N, N), ∇L (P,), the loss L and L*."""
    lam_min = float(np.linalg.eigvalsh(theta)[0])  # ascending: the first is the smallest
    mu = lam_min / N
    ratio = float(grad @ grad) / (2 * (loss - loss_star))
    return lam_min, mu, ratio


# %% TODO steps
def pl_steps(theta, r, grad, loss, lam_min, N, loss_star=0.0):
    """-> {"6": (lhs, rhs), "7": ..., "8": ..., "9": ...}, floats."""
    g2, r2 = float(grad @ grad), float(r @ r)
    mu = lam_min / N
    steps = {"6": (float(r @ theta @ r), lam_min * r2),  # Rayleigh quotient ≥ the smallest eigenvalue
             "7": (g2, lam_min * r2 / N**2),  # ‖∇L‖² = rᵀΘr/N²
             "8": (g2, 2 * lam_min * loss / N),  # ‖r‖² = 2NL
             "9": (0.5 * g2, mu * (loss - loss_star))}  # halve (8); L* ≥ 0 only lowers the right side
    return steps
