"""Training loops (minilplr.train.loops): descent, records, divergence, bad data, mini-batch order."""
import math

import numpy as np
import pytest

from minilplr import backend as B
from minilplr.nn import losses, models
from minilplr.train import optim
from minilplr.nn.params import param_drift, sq_norm
from minilplr.train.loops import Diverged, step_records, train_gd, train_sgd

from ..helpers import gd_problem
from ..strategies import gaussian


def test_gd_decreases_the_loss_and_records_every_step(be):
    m, X, y = gd_problem(be)
    h = train_gd(m, X, y, optim.GD(0.05), steps=30)
    assert h["status"] == "finished"
    assert len(h["loss"]) == len(h["grad_norm_sq"]) == len(h["lr"]) == len(h["param_drift"]) == 30
    assert h["param_drift"][0] == 0.0 and h["final_param_drift"] > h["param_drift"][-1] > 0
    assert all(b < a for a, b in zip(h["loss"], h["loss"][1:]))  # small step: monotone descent
    assert h["lr"] == [0.05] * 30


def test_gd_step_is_theta_minus_eta_grad(be):
    m, X, y = gd_problem(be)
    m2, _, _ = gd_problem(be)
    train_gd(m, X, y, optim.GD(0.1), steps=1)
    m2.backward(losses.mse(m2.forward(X), y)[1])
    for k, p in m2.params.items():
        assert np.allclose(B.to_host(m.params[k]), B.to_host(p - 0.1 * m2.grads[k]), rtol=1e-13, atol=1e-15)


def test_diagnostics_hook_runs_on_schedule(be):
    m, X, y = gd_problem(be)
    seen = []
    h = train_gd(m, X, y, optim.GD(0.05), steps=10, diagnostics=lambda model, t: seen.append(t) or {"t2": t * 2},
                 diag_every=4)
    assert seen == [0, 4, 8, 10]
    assert [d["t2"] for d in h["diag"]] == [0, 8, 16, 20]


def test_divergence_stops_with_the_history_and_a_clear_message(be):
    m, X, y = gd_problem(be)
    with pytest.raises(Diverged, match=r"training diverged at step \d+: loss .* η = 50.*stability limit 2/β.*η ≤ 1/β") as info:
        train_gd(m, X, y, optim.GD(50.0), steps=200)
    err = info.value
    assert err.history["status"] == "diverged"
    assert len(err.history["loss"]) == err.step >= 1
    assert all(math.isfinite(v) for v in err.history["loss"])


def test_non_finite_data_is_refused(be):
    m, X, y = gd_problem(be)
    Xh = B.to_host(X).copy()  # on NumPy to_host is X itself
    Xh[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"X: expected finite values, got 1 NaN/inf entries"):
        train_gd(m, B.to_device(Xh, be), y, optim.GD(0.1), steps=2)
    yh = B.to_host(y).copy()
    yh[0] = np.inf
    with pytest.raises(ValueError, match="y: expected finite values"):
        train_gd(m, X, B.to_device(yh, be), optim.GD(0.1), steps=2)
    with pytest.raises(ValueError, match=r"y: expected 12 targets"):
        train_gd(m, X, y[:5], optim.GD(0.1), steps=2)
    with pytest.raises(ValueError, match="steps: expected a positive integer"):
        train_gd(m, X, y, optim.GD(0.1), steps=0)


def test_sgd_visits_every_sample_once_each_epoch_in_a_fresh_order(be):
    """Each epoch's mini-batches partition the data set; the order changes from epoch to epoch."""
    n, batch = 10, 4
    m = models.mlp(2, 8, 2, 1, seed=0, dtype="float64", backend=be)
    X = B.to_device(gaussian(1, n, 2), be)
    ids = B.to_device(np.arange(n, dtype=np.float64).reshape(n, 1), be)  # the target of sample i is i
    seen = []

    def mse_recording_ids(pred, yb):
        seen.append(B.to_host(yb).ravel().astype(int).tolist())
        return losses.mse(pred, yb)

    h = train_sgd(m, X, ids, optim.SGD(1e-3), epochs=3, batch_size=batch, seed=5, loss=mse_recording_ids)
    assert h["steps_per_epoch"] == 3 and len(h["loss"]) == len(seen) == 9
    epochs = [sum(seen[e * 3:(e + 1) * 3], []) for e in range(3)]
    for e, order in enumerate(epochs):
        assert sorted(order) == list(range(n)), f"epoch {e} did not visit every sample exactly once"
        assert [len(b) for b in seen[e * 3:(e + 1) * 3]] == [4, 4, 2]
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled each epoch
    assert epochs[0] != list(range(n))


def test_step_records_are_the_three_plain_records_bit_for_bit(be):
    """``step_records`` (one transfer) gives exactly ``to_scalar(L)``, ``sq_norm(∇L)``, ``param_drift`` (three)."""
    for dtype in ("float32", "float64"):
        m = models.mlp(3, 16, 3, 2, seed=0, dtype=dtype, backend=be)
        X = B.to_device(gaussian(1, 12, 3), be)
        theta0 = {k: v.copy() for k, v in m.params.items()}
        for _ in range(2):  # the second step: θ_t ≠ θ_0
            L, d = losses.mse(m.forward(X), B.to_device(gaussian(2, 12, 2), be))
            m.backward(d, need_dx=False)
            got = step_records(L, m.grads, m.params, theta0)
            assert got == (B.to_scalar(L), sq_norm(m.grads), param_drift(m.params, theta0)), dtype
            optim.GD(0.1).step(m.params, m.grads)
        assert got[2] > 0


def test_sgd_checks_the_labels_once_and_names_y(be):
    """An out-of-range label anywhere in ``y`` stops the run before any update, with an error naming ``y``.

    The range is checked once on the whole label array, not per mini-batch;
    a negative label would otherwise index from the end silently.
    """
    X = B.to_device(gaussian(1, 10, 2), be)
    for bad, got in ((-1, r"\[-1, 2\]"), (3, r"\[0, 3\]")):
        labels = np.arange(10) % 3
        labels[7] = bad
        m = models.mlp(2, 8, 2, 3, seed=0, dtype="float64", backend=be)
        theta0 = {k: B.to_host(v) for k, v in m.params.items()}
        with pytest.raises(ValueError, match=r"y: expected class indices in \[0, 3\) for the model's 3 outputs, "
                                             r"got values in " + got):
            train_sgd(m, X, B.to_device(labels, be), optim.SGD(0.1), epochs=2, batch_size=4)
        assert all((B.to_host(v) == theta0[k]).all() for k, v in m.params.items())


def test_a_blow_up_that_overflows_the_gradient_squares_is_diverged_not_a_warning(be):
    """The records (``‖∇L‖²`` among them) are computed before the divergence test reads ``L``.

    On the step that blew up, float32 gradients past ``1.8e19`` overflow when
    squared; the run must still stop with :class:`Diverged` (the suite turns
    NumPy's RuntimeWarnings into errors).
    """
    rng = np.random.default_rng(0)
    X, y = B.to_device(rng.standard_normal((40, 6)), be), B.to_device(rng.standard_normal((40, 2)), be)
    m = models.mlp(6, 32, 3, 2, seed=0, dtype="float32", backend=be)
    with pytest.raises(Diverged) as info:
        train_gd(m, X, y, optim.GD(20.0), steps=100)
    assert all(math.isfinite(v) for v in info.value.history["grad_norm_sq"])
