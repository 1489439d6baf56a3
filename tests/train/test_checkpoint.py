"""Checkpoints: a resumed run equals the uninterrupted one bit for bit, and a checkpoint serves only its own run.

"Interrupted" here means what a kill means: the loop stops with an exception
at some step (raised from the diagnostics hook) after its last checkpoint,
the model and optimiser are rebuilt from scratch as a new process would
build them, and the same call is made again.
"""
import os

import numpy as np
import pytest

from minilplr import backend as B
from minilplr.nn import models
from minilplr.train import optim
from minilplr.train.checkpoint import CheckpointMismatch
from minilplr.nn.state import named_buffers
from minilplr.nn.resnet import resnet
from minilplr.train.loops import train_gd, train_sgd

from ..helpers import Killed, gd_problem
from ..strategies import gaussian


def _diag_then_kill(at):
    """A diagnostics hook (every step) that records something and 'kills' the run at step ``at``."""

    def hook(model, t):
        if at is not None and t == at:
            raise Killed(t)
        return {"first_param_sum": float(B.to_scalar(next(iter(model.params.values())).sum()))}

    return hook


def _state(model, opt, history):
    """Everything that must match bit for bit, on the host."""
    return {
        "params": {k: B.to_host(v) for k, v in model.params.items()},
        "buffers": {k: B.to_host(v) for k, v in named_buffers(model).items()},
        "training": model.training,
        "t": opt.t,
        "velocity": {k: B.to_host(v) for k, v in opt.velocity.items()},
        "schedule": opt.schedule.state_dict(),
        "history": {k: v for k, v in history.items()},
    }


def _assert_identical(a, b):
    assert a["params"].keys() == b["params"].keys() and a["buffers"].keys() == b["buffers"].keys()
    for part in ("params", "buffers", "velocity"):
        for k in a[part]:
            assert np.array_equal(a[part][k], b[part][k]), f"{part}[{k}] differs"
    assert (a["training"], a["t"], a["schedule"]) == (b["training"], b["t"], b["schedule"])
    assert a["history"] == b["history"]  # every per-step float, diagnostics and status, exactly


def _run_gd(be, X, y, ck, kill_at):
    m, _, _ = gd_problem(be)  # a fresh model, as a new process would build it
    opt = optim.GD(0.05)
    h = train_gd(m, X, y, opt, steps=20, checkpoint=ck, checkpoint_every=3, diagnostics=_diag_then_kill(kill_at),
                 diag_every=1)
    return m, opt, h


def test_mlp_gd_resume_is_bit_identical(be, tmp_path):
    _, X, y = gd_problem(be)
    ref = _state(*_run_gd(be, X, y, None, None))
    ck = tmp_path / "ck"
    with pytest.raises(Killed):
        _run_gd(be, X, y, ck, kill_at=13)  # last checkpoint after step 11: steps 12–13 are done again
    assert (tmp_path / "ck.json").exists() and (tmp_path / "ck.npz").exists()
    _assert_identical(_state(*_run_gd(be, X, y, ck, None)), ref)


def _resnet_run(be, X, y, ck, kill_at):
    m = resnet(in_channels=1, num_classes=3, widths=(4, 8), image_size=8, seed=3, dtype="float64", backend=be)
    opt = optim.SGD(optim.Cosine(0.1, 3 * 4, 0.001), momentum=0.9, weight_decay=5e-4)
    h = train_sgd(m, X, y, opt, epochs=3, batch_size=4, seed=7, loss="cross_entropy", checkpoint=ck,
                  checkpoint_every=4, diagnostics=_diag_then_kill(kill_at), diag_every=1)
    return m, opt, h


def test_resnet_sgd_with_momentum_and_cosine_resumes_bit_identical_buffers_included(be, tmp_path):
    X = B.to_device(gaussian(4, 14, 1, 8, 8), be)  # 14 samples, batch 4: 4 steps an epoch, the last one short
    y = B.to_device(np.arange(14) % 3, be)
    m_ref, o_ref, h_ref = _resnet_run(be, X, y, None, None)
    ref = _state(m_ref, o_ref, h_ref)
    assert any(np.any(v != 0) for v in ref["buffers"].values())  # the running statistics did move
    ck = tmp_path / "resnet"
    with pytest.raises(Killed):
        _resnet_run(be, X, y, ck, kill_at=6)  # killed in epoch 2, after the epoch-1 checkpoint
    m, o, h = _resnet_run(be, X, y, ck, None)
    _assert_identical(_state(m, o, h), ref)
    m.eval(), m_ref.eval()
    assert np.array_equal(B.to_host(m.forward(X)), B.to_host(m_ref.forward(X)))  # eval-mode logits too


def test_a_finished_checkpoint_restores_buffers_without_training(be, tmp_path):
    """Killed after training but before the results were saved: the rerun must not lose batch norm's state."""
    X = B.to_device(gaussian(4, 8, 1, 8, 8), be)
    y = B.to_device(np.arange(8) % 3, be)
    ck = tmp_path / "done"
    m1, _, _ = _resnet_run(be, X[:8], y[:8], ck, None)
    m2, _, h2 = _resnet_run(be, X[:8], y[:8], ck, None)  # every step comes from the checkpoint
    assert h2["status"] == "finished"
    for k, v in named_buffers(m1).items():
        assert np.array_equal(B.to_host(v), B.to_host(named_buffers(m2)[k]))


@pytest.mark.parametrize("change", ["steps", "data", "width", "lr"])
def test_a_checkpoint_refuses_another_run(be, tmp_path, change):
    _, X, y = gd_problem(be)
    ck = tmp_path / "ck"
    with pytest.raises(Killed):
        _run_gd(be, X, y, ck, kill_at=7)
    m = models.mlp(3, 17 if change == "width" else 16, 3, 1, seed=0, dtype="float64", backend=be)
    X2 = X * 2 if change == "data" else X
    with pytest.raises(CheckpointMismatch, match=rf"checkpoint .*ck\.json belongs to another run \(.*"
                                                 rf"{'steps' if change == 'steps' else ''}.*delete"):
        train_gd(m, X2, y, optim.GD(0.07 if change == "lr" else 0.05), steps=50 if change == "steps" else 20,
                 checkpoint=ck)
    assert (tmp_path / "ck.json").exists()  # refused, not deleted


def _flip_bytes_inside_the_arrays(npz_path):
    blob = bytearray(npz_path.read_bytes())
    mid = len(blob) // 2
    blob[mid:mid + 64] = bytes(64)  # zeroed bytes inside the parameters
    npz_path.write_bytes(bytes(blob))


def test_a_damaged_checkpoint_is_moved_aside_and_the_run_starts_over(be, tmp_path, capsys):
    _, X, y = gd_problem(be)
    ref = _state(*_run_gd(be, X, y, None, None))
    ck = tmp_path / "ck"
    with pytest.raises(Killed):
        _run_gd(be, X, y, ck, kill_at=10)
    _flip_bytes_inside_the_arrays(tmp_path / "ck.npz")
    _assert_identical(_state(*_run_gd(be, X, y, ck, None)), ref)
    out = capsys.readouterr().out
    assert "ck.npz: damaged" in out and "moved aside" in out
    assert any(p.name.startswith("ck.npz.damaged-") for p in tmp_path.iterdir())  # kept for the user to inspect


def test_a_planted_pickle_is_never_loaded(be, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import pickle

    (tmp_path / "checkpoint.pkl").write_bytes(pickle.dumps(Evil()))
    _, X, y = gd_problem(be)
    m = models.mlp(3, 16, 3, 1, seed=0, dtype="float64", backend=be)
    h = train_gd(m, X, y, optim.GD(0.05), steps=3, checkpoint=tmp_path / "checkpoint.pkl")
    assert h["status"] == "finished" and not marker.exists()
    assert (tmp_path / "checkpoint.json").exists()
