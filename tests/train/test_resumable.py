"""The one resumable loop (:mod:`minilplr.train.resumable`): signatures, cadence, restore, the checkpoint layout.

The kill-and-resume tests of the loops that use it live beside those loops:
``tests/train/test_checkpoint.py`` (GD, SGD with momentum, cosine step and
batch norm) and ``tests/theory/linear/test_trajectory.py`` (every linear
schedule).
"""
import json

import numpy as np
import pytest

from minilplr import backend as B
from minilplr.store import load_unit, save_unit
from minilplr.train import optim
from minilplr.train.checkpoint import LAYOUT, CheckpointMismatch
from minilplr.train.loops import train_gd
from minilplr.train.resumable import Arrays, Resumable, signature

from ..helpers import gd_problem


def test_a_signature_keeps_every_bit_of_the_settings_and_none_of_the_state(be):
    """Two constant steps one ulp apart print alike but are other runs; a step taken changes no signature."""
    lr = 0.1
    a, b = optim.Constant(lr), optim.Constant(float(np.nextafter(lr, 1.0)))
    assert repr(a) == repr(b) and signature(a) != signature(b)
    opt = optim.SGD(optim.Cosine(0.1, 10, 0.001), momentum=0.9, weight_decay=1e-4)
    before = signature(opt)
    assert before["settings"] == {"momentum": 0.9, "weight_decay": 1e-4}
    assert before["schedule"]["settings"] == {"lr": 0.1, "lr_min": 0.001, "total_steps": 10}
    p, g = {"w": B.to_device(np.ones(3), be)}, {"w": B.to_device(np.full(3, 0.5), be)}
    opt.step(p, g)
    assert opt.t == 1 and opt.velocity and signature(opt) == before  # t and the momentum are state


def _halving(t, **info):
    return 0.1 * 0.5 ** t


def test_a_function_schedule_is_named_not_addressed():
    """A function's repr holds its address, different in every process: a signature names the function instead."""
    sig = signature(optim.SGD(_halving))
    assert sig["schedule"] == {"function": f"{__name__}._halving"}
    assert "0x" not in json.dumps(sig) and sig == signature(optim.SGD(_halving))


def test_the_cadence_is_every_k_steps_and_the_last(tmp_path):
    ck = Resumable(tmp_path / "ck", {}, {}, every=3)
    assert [d for d in range(1, 11) if ck.due(d, last=10)] == [3, 6, 9, 10]
    assert [d for d in range(1, 11) if ck.due(d)] == [3, 6, 9]
    assert not any(Resumable(None, None, {}, every=3).due(d, last=10) for d in range(1, 11))  # no path: never


def test_restore_puts_every_part_back_and_leaves_them_alone_without_a_checkpoint(be, tmp_path):
    x = B.to_device(np.arange(4.0), be)
    opt = optim.SGD(0.1, momentum=0.5)
    parts = {"x": Arrays({"x": x}), "optimiser": opt}
    ck = Resumable(tmp_path / "ck", {"run": 1}, parts, every=1)
    assert ck.restore() is False and np.array_equal(B.to_host(x), np.arange(4.0))  # nothing saved yet
    opt.step({"x": x}, {"x": B.to_device(np.ones(4), be)})
    ck.save()
    saved = B.to_host(x).copy()
    opt.step({"x": x}, {"x": B.to_device(np.ones(4), be)})
    assert ck.restore() is True
    assert np.array_equal(B.to_host(x), saved) and opt.t == 1  # in place, where the caller's arrays are
    assert Resumable(None, None, parts, every=1).restore() is False


def test_a_part_without_state_dict_is_refused_by_name(be, tmp_path):
    with pytest.raises(TypeError, match=r"history: expected an object with state_dict\(\) and load_state_dict"):
        Resumable(tmp_path / "ck", {}, {"history": []}, every=1)
    m, X, y = gd_problem(be)

    class NoState:
        schedule = optim.Constant(0.1)

        def step(self, params, grads, **info):
            return 0.1

    with pytest.raises(TypeError, match=r"opt: expected an optimiser with \.state_dict\(\) and \.load_state_dict"):
        train_gd(m, X, y, NoState(), steps=2, checkpoint=tmp_path / "ck")
    assert train_gd(m, X, y, NoState(), steps=2)["status"] == "finished"  # without a checkpoint it needs neither


def test_a_checkpoint_of_the_older_layout_is_refused_in_one_line_never_misread(be, tmp_path):
    """The same run's checkpoint without ``layout`` (written before the loops shared ``Resumable``) is refused."""
    _, X, y = gd_problem(be)
    ck = tmp_path / "ck"
    m, _, _ = gd_problem(be)
    train_gd(m, X, y, optim.GD(0.05), steps=4, checkpoint=ck, checkpoint_every=2)
    unit = load_unit(tmp_path, "ck")
    assert unit.pop("layout") == LAYOUT == 2
    save_unit(tmp_path, "ck", unit)  # the fingerprint matches: only the layout tells the two apart
    m, _, _ = gd_problem(be)
    with pytest.raises(CheckpointMismatch) as info:
        train_gd(m, X, y, optim.GD(0.05), steps=4, checkpoint=ck, checkpoint_every=2)
    msg = str(info.value)
    assert "\n" not in msg and "ck.json has layout 1" in msg and "reads layout 2" in msg and "delete" in msg
    assert (tmp_path / "ck.json").exists()  # refused, not deleted


def test_the_loops_hand_the_optimiser_over_through_its_own_state_dict(be, tmp_path):
    """The loop saves ``opt.state_dict()`` and resumes through ``opt.load_state_dict``: nothing else touches it."""
    calls = []

    class Spy(optim.SGD):
        def state_dict(self):
            calls.append("state_dict")
            return super().state_dict()

        def load_state_dict(self, state):
            calls.append(("load_state_dict", state["t"]))
            super().load_state_dict(state)

    _, X, y = gd_problem(be)
    m, _, _ = gd_problem(be)
    train_gd(m, X, y, Spy(0.05, momentum=0.5), steps=5, checkpoint=tmp_path / "ck", checkpoint_every=2)
    saves = calls.count("state_dict")
    assert saves >= 4  # steps 2, 4, 5 (the last), finished; the fingerprint's signature may read it too
    calls.clear()
    m, _, _ = gd_problem(be)
    train_gd(m, X, y, Spy(0.05, momentum=0.5), steps=5, checkpoint=tmp_path / "ck", checkpoint_every=2)
    assert ("load_state_dict", 5) in calls
