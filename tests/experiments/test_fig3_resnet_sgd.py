"""Fig. 3 (:mod:`minilplr.experiments.fig3_resnet_sgd`): its NTK readings, and a killed run rerun.

* Fig. 3's reading (:func:`minilplr.experiments.fig3_resnet_sgd.ntk_reading`)
  is a diagnostic: a run with readings and one without end with identical
  parameters and buffers, bit for bit.
* Fig. 3 killed during training, or after training but during its final
  write, reruns to the same numbers, bit for bit.
"""
import numpy as np
import pytest

from minilplr import backend as B
from minilplr.experiments import fig3_resnet_sgd as fig3
from minilplr.nn.batchnorm import recalibrate_batchnorm
from minilplr.nn.state import named_buffers
from minilplr.nn.resnet import resnet
from minilplr.train.loops import train_sgd
from minilplr.train.optim import SGD, Cosine

from ..helpers import Killed

# --------------------------------------------------------------------------- Fig. 3's readings


def _state(model):
    return ({k: B.to_host(p).copy() for k, p in model.params.items()},
            {k: B.to_host(b).copy() for k, b in named_buffers(model).items()})


def test_fig3_readings_leave_training_bit_identical(be):
    """A run with NTK readings and one without end with the same parameters and buffers, bit for bit.

    Planted bug: the reading taken on the trained model itself (``twin =
    model`` in ``ntk_reading``): its recalibrated statistics replace the
    running ones and training diverges from the run without readings.
    """
    arch = dict(in_channels=1, num_classes=3, widths=(2, 4), blocks_per_stage=1, image_size=8, seed=5,
                dtype="float32", backend=be)
    rng = np.random.default_rng(6)
    X = B.to_device(rng.standard_normal((24, 1, 8, 8)), be, np.float32)
    y = B.to_device(rng.integers(0, 3, 24).astype(np.int64), be)
    ends, readings = [], []
    for with_readings in (False, True):
        model, twin = resnet(**arch), resnet(**arch)
        opt = SGD(Cosine(0.05, 9, 0.0), momentum=0.9, weight_decay=5e-4)
        diag = (lambda m, t: fig3.ntk_reading(m, twin, X, X[:4], 10)) if with_readings else None
        h = train_sgd(model, X, y, opt, epochs=3, batch_size=10, seed=1, diagnostics=diag, diag_every=4)
        ends.append((_state(model), h["loss"]))
        readings.append(h["diag"])
    (p0, b0), loss0 = ends[0]
    (p1, b1), loss1 = ends[1]
    assert loss0 == loss1
    for k in p0:
        assert np.array_equal(p0[k], p1[k]), k
    for k in b0:
        assert np.array_equal(b0[k], b1[k]), k
    assert [d["step"] for d in readings[1]] == [0, 4, 8, 9]
    assert all(d["resolved"] and d["lam_min"] > 0 for d in readings[1])


def test_fig3_first_reading_uses_recalibrated_not_untouched_statistics(be):
    """At step 0 the reading's statistics are the training set's, not the untouched 0 and 1."""
    arch = dict(in_channels=1, num_classes=3, widths=(2, 4), blocks_per_stage=1, image_size=8, seed=5,
                dtype="float64", backend=be)
    X = B.to_device(np.random.default_rng(7).standard_normal((12, 1, 8, 8)) * 3.0 + 1.0, be)
    model, twin, ref = resnet(**arch), resnet(**arch), resnet(**arch)
    got = fig3.ntk_reading(model, twin, X, X[:3], 4)
    stale = fig3.ntk_reading(model, ref, X, X[:3], 4, bn_stats="running")
    recalibrate_batchnorm(ref, X, 4)
    for k, b in named_buffers(ref).items():
        assert np.array_equal(B.to_host(b), B.to_host(named_buffers(twin)[k])), k
    assert np.all(B.to_host(named_buffers(model)["stem.bn.running_var"]) == 1.0)  # the model's: untouched
    assert got["lam_min"] != stale["lam_min"]
    with pytest.raises(ValueError, match="bn_stats"):
        fig3.ntk_reading(model, twin, X, X[:3], 4, bn_stats="batch")


# --------------------------------------------------------------------------- Fig. 3 killed and rerun


_TINY_FIG3 = dict(fig3.PRESETS["quick"], n_train=20, widths=[2, 4], epochs=3, batch_size=8, probe=3,
                  ntk_checkpoints=3, data_source="offline", seeds=[0])


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            _same(a[k], b[k])
        elif isinstance(a[k], np.ndarray):
            assert np.array_equal(a[k], b[k], equal_nan=True), k
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("kill", ["second reading", "final write"])
def test_fig3_seed_killed_reruns_to_the_same_numbers(tmp_path, monkeypatch, kill):
    """Killed during training (at its second NTK reading, after a checkpoint) or during the final write.

    The rerun resumes from the checkpoint (parameters, batch norm's running
    statistics, optimiser) and reports what the uninterrupted run reports,
    bit for bit: the loss records, the NTK readings, the final full-set loss
    and accuracy (which read the running statistics).  Planted bug: a
    checkpoint without buffers (``load_model_state`` skipping them) changes
    the final loss and accuracy after the "final write" kill.
    """
    cfg = _TINY_FIG3
    clean = fig3._seed_run(cfg, 0, tmp_path / "clean", None, False)
    assert clean["status"] == "finished"
    assert not (tmp_path / "clean" / "checkpoint.json").exists()  # finished: the results replace it
    folder = tmp_path / "killed"
    if kill == "final write":
        def boom(*a, **k):
            raise Killed
        with monkeypatch.context() as mp:
            mp.setattr(fig3, "save_results", boom)
            with pytest.raises(Killed):
                fig3._seed_run(cfg, 0, folder, None, False)
    else:
        calls, reading = [], fig3.ntk_reading

        def dies_second(*a, **k):
            calls.append(1)
            if len(calls) == 2:
                raise Killed
            return reading(*a, **k)
        with monkeypatch.context() as mp:
            mp.setattr(fig3, "ntk_reading", dies_second)
            with pytest.raises(Killed):
                fig3._seed_run(cfg, 0, folder, None, False)
    assert (folder / "checkpoint.json").exists() and not (folder / "results.json").exists()
    rerun = fig3._seed_run(cfg, 0, folder, None, False)
    assert not (folder / "checkpoint.json").exists()
    _same(rerun, clean)


def test_a_checkpoint_left_beside_finished_results_is_removed(tmp_path):
    """Killed between saving a seed's results and removing its checkpoint: the rerun tidies up."""
    from minilplr.experiments.io import save_results
    from minilplr.store import save_unit

    save_results(tmp_path, {"status": "finished", "loss": np.ones(3)})
    save_unit(tmp_path, "checkpoint", {"state": {}, "fingerprint": {}})
    done = fig3._seed_run(fig3.PRESETS["quick"], 0, tmp_path, None, False)
    assert done["status"] == "finished" and np.array_equal(done["loss"], np.ones(3))
    assert not (tmp_path / "checkpoint.json").exists() and not (tmp_path / "checkpoint.npz").exists()
