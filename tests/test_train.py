"""Training loops: descent, records, divergence, bad data, checkpoint and resume."""
import math

import numpy as np
import pytest

from minilplr import backend as B
from minilplr import models, optim
from minilplr.train import Diverged, train_gd, train_sgd

from .strategies import gaussian


def _problem(be, n=12, d=3, seed=0):
    m = models.mlp(d, 16, 3, 1, seed=seed, dtype="float64", backend=be)
    X = B.to_device(gaussian(seed + 1, n, d), be)
    y = B.to_device(np.sign(gaussian(seed + 2, n)), be)
    return m, X, y


def test_gd_decreases_the_loss_and_records_every_step(be):
    m, X, y = _problem(be)
    h = train_gd(m, X, y, optim.GD(0.05), steps=30)
    assert h["status"] == "finished"
    assert len(h["loss"]) == len(h["grad_norm_sq"]) == len(h["lr"]) == len(h["param_drift"]) == 30
    assert h["param_drift"][0] == 0.0 and h["final_param_drift"] > h["param_drift"][-1] > 0
    assert all(b < a for a, b in zip(h["loss"], h["loss"][1:]))  # small step: monotone descent
    assert h["lr"] == [0.05] * 30


def test_gd_step_is_theta_minus_eta_grad(be):
    m, X, y = _problem(be)
    m2, _, _ = _problem(be)
    train_gd(m, X, y, optim.GD(0.1), steps=1)
    from minilplr import losses

    m2.backward(losses.mse(m2.forward(X), y)[1])
    for k, p in m2.params.items():
        assert np.allclose(B.to_host(m.params[k]), B.to_host(p - 0.1 * m2.grads[k]), rtol=1e-13, atol=1e-15)


def test_diagnostics_hook_runs_on_schedule(be):
    m, X, y = _problem(be)
    seen = []
    h = train_gd(m, X, y, optim.GD(0.05), steps=10, diagnostics=lambda model, t: seen.append(t) or {"t2": t * 2},
                 diag_every=4)
    assert seen == [0, 4, 8, 10]
    assert [d["t2"] for d in h["diag"]] == [0, 8, 16, 20]


def test_divergence_stops_with_the_history_and_a_clear_message(be):
    m, X, y = _problem(be)
    with pytest.raises(Diverged, match=r"training diverged at step \d+: loss .* η = 50.*stability limit 2/β.*η ≤ 1/β") as info:
        train_gd(m, X, y, optim.GD(50.0), steps=200)
    err = info.value
    assert err.history["status"] == "diverged"
    assert len(err.history["loss"]) == err.step >= 1
    assert all(math.isfinite(v) for v in err.history["loss"])


def test_non_finite_data_is_refused(be):
    m, X, y = _problem(be)
    Xh = B.to_host(X)
    Xh[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"X: expected finite values, got 1 NaN/inf entries"):
        train_gd(m, B.to_device(Xh, be), y, optim.GD(0.1), steps=2)
    yh = B.to_host(y)
    yh[0] = np.inf
    with pytest.raises(ValueError, match="y: expected finite values"):
        train_gd(m, X, B.to_device(yh, be), optim.GD(0.1), steps=2)
    with pytest.raises(ValueError, match=r"y: expected 12 targets"):
        train_gd(m, X, y[:5], optim.GD(0.1), steps=2)
    with pytest.raises(ValueError, match="steps: expected a positive integer"):
        train_gd(m, X, y, optim.GD(0.1), steps=0)


def test_gd_resume_equals_an_uninterrupted_run(be, tmp_path):
    m, X, y = _problem(be)
    full = train_gd(m, X, y, optim.GD(0.05), steps=20)
    ref = {k: B.to_host(v) for k, v in m.params.items()}

    ck = tmp_path / "ck.pkl"
    m1, _, _ = _problem(be)
    train_gd(m1, X, y, optim.GD(0.05), steps=8, checkpoint=ck, checkpoint_every=4)  # "interrupted" at 8
    m2, _, _ = _problem(be)  # a fresh process would build the model from its seed again
    resumed = train_gd(m2, X, y, optim.GD(0.05), steps=20, checkpoint=ck, checkpoint_every=4)
    assert resumed["loss"] == full["loss"]
    assert resumed["param_drift"] == pytest.approx(full["param_drift"], rel=1e-12)
    for k, v in m2.params.items():
        assert np.array_equal(B.to_host(v), ref[k])


def test_sgd_visits_every_sample_each_epoch_and_resumes(be, tmp_path):
    n, k = 10, 3
    m = models.mlp(4, 8, 2, k, seed=0, dtype="float64", backend=be)
    X = B.to_device(gaussian(1, n, 4), be)
    y = B.to_device(np.arange(n) % k, be)
    h = train_sgd(m, X, y, optim.SGD(0.1, momentum=0.9), epochs=3, batch_size=4, seed=5)
    assert h["steps_per_epoch"] == 3 and len(h["loss"]) == 9
    ref = {kk: B.to_host(v) for kk, v in m.params.items()}

    ck = tmp_path / "sgd.pkl"
    m1 = models.mlp(4, 8, 2, k, seed=0, dtype="float64", backend=be)
    o1 = optim.SGD(0.1, momentum=0.9)
    train_sgd(m1, X, y, o1, epochs=1, batch_size=4, seed=5, checkpoint=ck, checkpoint_every=2)
    m2 = models.mlp(4, 8, 2, k, seed=0, dtype="float64", backend=be)
    h2 = train_sgd(m2, X, y, optim.SGD(0.1, momentum=0.9), epochs=3, batch_size=4, seed=5, checkpoint=ck)
    assert h2["loss"] == pytest.approx(h["loss"], rel=1e-12)
    for kk, v in m2.params.items():
        assert np.allclose(B.to_host(v), ref[kk], rtol=1e-12, atol=1e-14)
