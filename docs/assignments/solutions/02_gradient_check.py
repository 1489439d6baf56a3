# %% [markdown]
# # Worked solutions to assignment 2
#
# Each cell replaces the TODO cell of the same name in
# [02_gradient_check](../02_gradient_check.py). Try the assignment first.

# %% TODO relative_error
def relative_error(a, b):
    """‖a − b‖ / max(‖a‖ + ‖b‖, 1e-8), Frobenius norms; a, b arrays of one shape -> float."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    err = np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-8)
    return float(err)


# %% TODO numerical_gradient
def numerical_gradient(f, x, h=1e-6):
    """Central differences of the scalar f() with respect to x, perturbing x in place; -> array like x."""
    grad = np.zeros_like(x)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)  # views: writing flat_x[i] writes x
    for i in range(x.size):
        old = flat_x[i]
        flat_x[i] = old + h
        f_plus = f()
        flat_x[i] = old - h
        f_minus = f()
        flat_x[i] = old  # restore before the next coordinate
        flat_g[i] = (f_plus - f_minus) / (2 * h)
    return grad
