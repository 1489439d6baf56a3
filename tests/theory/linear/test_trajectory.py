"""The GD loop of the linear network (:mod:`minilplr.theory.linear.trajectory`): linear convergence,
resuming a killed run bit for bit under every schedule, drift tracking.
"""
from __future__ import annotations

import numpy as np
import pytest

from minilplr import backend as B
from minilplr.theory.linear import (
    SCHEDULES,
    AdaptiveStep,
    gaussian_init,
    make_network,
    observed_rate,
    run_gd,
    sigma2_T,
    synthetic_regression,
)
from minilplr.train.checkpoint import CheckpointMismatch

from ...helpers import Killed, TINY_LINEAR_DATA, assert_same_records, linear_net, linear_schedule


def _host(x):
    return B.to_host(x)


def test_run_gd_on_the_paper_data_converges_linearly(be):
    X, Y = synthetic_regression(12, 6, 5, np.random.default_rng(0))
    W1, W2 = gaussian_init(6, 5, 200, 0.375, np.random.default_rng(1))
    net = make_network(X, Y, W1, W2, backend=be)
    assert net.loss_fn.mu == pytest.approx(1.0) and net.loss_fn.K == pytest.approx(1.0)
    assert net.loss_fn.min_value < 1e-20  # Y = XΘ is fitted exactly
    res = run_gd(net, AdaptiveStep(net.loss_fn), 200)
    assert res["stopped"] == "tol"
    rho = observed_rate(res["gap"])
    assert 0 < rho < 1 - 0.5 * res["mu_t"].min() / np.nanmax(res["K_t"])  # faster than half the local rate
    assert np.all(np.nan_to_num(res["drift"]) <= res["drift_bound"] + 1e-12)


def _resumable_run(be, name, *, steps=40, tol=0.0, data=TINY_LINEAR_DATA, init_seed=0, checkpoint=None,
                   kill_at=None, seen=None):
    """A fresh net and schedule (as a new process would build them), then :func:`run_gd` with a hook."""
    net = linear_net(be, data, h=20, init_seed=init_seed)
    sched = linear_schedule(name, net)

    def hook(t):
        if seen is not None:
            seen.append(t)
        if t == kill_at:
            raise Killed(t)

    res = run_gd(net, sched, steps, tol=tol, track_drift=True, checkpoint=checkpoint, checkpoint_every=5,
                 callback=hook)
    return net, sched, res


@pytest.mark.parametrize("name", SCHEDULES)
def test_a_killed_linear_run_resumes_bit_identical_under_every_schedule(name, be, tmp_path):
    """Killed at iterate 23 (last checkpoint after step 20), resumed: W₁, W₂, every record, the schedule's state,
    ``steps`` and ``stopped`` equal the uninterrupted run's exactly.

    ``tol`` is set so that the reference stops by tolerance at iterate 31, after
    the resume: the stopping test reads the restored ``L(0) − L*``.
    """
    _, _, pilot = _resumable_run(be, name)
    tol = pilot["gap"][31] / pilot["gap"][0]
    assert np.all(np.diff(pilot["gap"][:32]) < 0)  # so iterate 31 is the first at or below tol
    net_ref, sched_ref, ref = _resumable_run(be, name, tol=tol)
    assert (ref["steps"], ref["stopped"]) == (31, "tol")
    ck = tmp_path / "ck"
    with pytest.raises(Killed):
        _resumable_run(be, name, tol=tol, checkpoint=ck, kill_at=23)
    assert (tmp_path / "ck.json").exists() and (tmp_path / "ck.npz").exists()
    seen = []
    net, sched, res = _resumable_run(be, name, tol=tol, checkpoint=ck, seen=seen)
    assert seen[0] == 20  # it did resume (a rerun from 0 would also be identical, and prove nothing)
    for k in ("W1", "W2"):
        assert np.array_equal(_host(net.params[k]), _host(net_ref.params[k])), k
    assert_same_records(ref, res)  # every record bit for bit (NaNs equal), steps, stopped
    assert sched.state_dict() == sched_ref.state_dict()
    if name == "armijo":  # the counters drive the ``evals`` record: they must have been restored, not restarted
        assert sched.function_evals > sched.steps == 31
    if name == "adaptive":
        assert sched.alpha2 == sigma2_T(*gaussian_init(4, 3, 20, 0.375, np.random.default_rng(0)))[1]


@pytest.mark.parametrize("change", ["data", "init", "schedule", "steps", "tol"])
def test_a_linear_checkpoint_refuses_another_run(change, be, tmp_path):
    ck = tmp_path / "ck"
    with pytest.raises(Killed):
        _resumable_run(be, "armijo", checkpoint=ck, kill_at=12)
    other = dict(name="adaptive" if change == "schedule" else "armijo", steps=50 if change == "steps" else 40,
                 tol=1e-9 if change == "tol" else 0.0, init_seed=1 if change == "init" else 0,
                 data={**TINY_LINEAR_DATA, "seed": 1} if change == "data" else TINY_LINEAR_DATA)
    with pytest.raises(CheckpointMismatch, match=rf"ck\.json belongs to another run \(.*{change}.*delete"):
        _resumable_run(be, other.pop("name"), checkpoint=ck, **other)
    assert (tmp_path / "ck.json").exists()  # refused, not deleted


def test_the_imbalance_step_is_computed_only_when_drift_is_tracked(be):
    """``‖D(t+1) − D(t)‖_F`` costs a QR of (h, 2(n+m)) per step: only linear_imbalance (track_drift) reads it."""
    runs = {}
    for track in (False, True):
        net = linear_net(be, {"N": 8, "n": 4, "m": 3, "seed": 1, "x_cond": 1.0}, h=20, init_seed=1)
        runs[track] = run_gd(net, linear_schedule("constant", net), 6, tol=0.0, track_drift=track)
    off, on = runs[False], runs[True]
    assert np.all(np.isnan(off["drift_step"])) and np.all(np.isnan(off["drift"]))
    assert np.all(np.isfinite(on["drift_step"][:-1])) and np.all(on["drift_step"][:-1] > 0)
    for k in off:  # nothing else changes: the same run, bit for bit
        if k not in ("drift", "drift_step"):
            assert np.array_equal(off[k], on[k], equal_nan=True) if isinstance(off[k], np.ndarray) else off[k] == on[k], k
