"""Batch norm recalibration and Fig. 3's NTK readings.

* :func:`minilplr.nn.conv.recalibrate_batchnorm` against its equation: every
  batch-norm layer ends with the size-weighted average over the batches of
  the batch statistics its input has in a training step (recorded here by
  wrapping each layer's ``forward``), to float64 rounding; with one batch
  covering the data these are the data's own statistics, and the eval-mode
  network then computes what the training-mode one computes on that batch.
* Fig. 3's reading (:func:`minilplr.experiments.fig3_resnet_sgd.ntk_reading`)
  is a diagnostic: a run with readings and one without end with identical
  parameters and buffers, bit for bit.
* Fig. 3 killed during training, or after training but during its final
  write, reruns to the same numbers, bit for bit.
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minilplr import backend as B
from minilplr.nn.conv import BatchNorm2D, named_buffers, recalibrate_batchnorm
from minilplr.experiments import fig3_resnet_sgd as fig3
from minilplr.nn.layers import iter_layers
from minilplr.train.optim import SGD, Cosine
from minilplr.nn.resnet import resnet
from minilplr.train.loops import train_sgd

from .strategies import gaussian, seeds

# The recalibrated statistics are the reference's float64 sums taken in another order.  Errors of a
# mean are measured in units of its channel's root mean square (a mean near 0 has no relative
# precision), of a variance relative to it.  Largest errors seen over 2 x 300 Hypothesis draws of
# each test: means 7e-16 of the RMS, variances 1.2e-15, the eval-mode against the training-mode
# output 3.7e-14 relative (batch norm divides by small σ's on the way).  The tolerances sit 15-30x
# above; the planted bugs err by 1e-2 (equal batch weights) to 1e-1 (momentum 0.1).
TOL_MEAN = 1e-14
TOL_VAR = 2e-14
TOL_EVAL_TRAIN = 1e-12


def _bns(model):
    return [layer for layer in iter_layers(model) if isinstance(layer, BatchNorm2D)]


def _tiny(cfg, be, seed_shift=0):
    """A float64 ResNet from a ``resnet_configs`` draw, with γ, β and stale running statistics made non-trivial."""
    m = resnet(in_channels=cfg["in_channels"], num_classes=cfg["num_classes"], widths=cfg["widths"],
               blocks_per_stage=cfg["blocks_per_stage"], image_size=cfg["image_size"], seed=cfg["seed"],
               dtype="float64", backend=be)
    for i, bn in enumerate(_bns(m)):
        c = bn.channels
        r = gaussian(cfg["seed"] + 97 * i + seed_shift, 4, c)
        bn.params["gamma"][...] = B.to_device(1.0 + 0.3 * r[0], be)
        bn.params["beta"][...] = B.to_device(0.3 * r[1], be)
        bn.buffers["running_mean"][...] = B.to_device(r[2], be)  # stale: recalibration must discard them
        bn.buffers["running_var"][...] = B.to_device(np.exp(r[3]), be)
    return m


def _batch_statistics(model, X, batch_size):
    """Per layer, per batch: ``(M_b, μ_b, unbiased σ²_b)`` of its input in a training-mode forward pass, float64 host.

    Each layer's ``forward`` is wrapped to record its input; the model's
    running statistics move (the caller recalibrates afterwards).
    """
    bns = _bns(model)
    got = {id(bn): [] for bn in bns}

    def recorder(bn):
        inner = bn.forward

        def forward(x):
            h = B.to_host(x).astype(np.float64)
            m = h.shape[0] * h.shape[2] * h.shape[3]
            got[id(bn)].append((m, h.mean(axis=(0, 2, 3)), h.var(axis=(0, 2, 3)) * m / (m - 1)))
            return inner(x)

        return forward

    for bn in bns:
        bn.forward = recorder(bn)
    try:
        model.train()
        for s in range(0, X.shape[0], batch_size):
            model.forward(X[s:s + batch_size])
    finally:
        for bn in bns:
            del bn.forward  # back to the class's method
    return [got[id(bn)] for bn in bns]


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _mean_err(got, mean, var):
    """``max_c |μ̄_c − μ_c| / (σ_c² + μ_c²)^½``: a mean's error in units of its channel's root mean square."""
    return float((np.abs(np.asarray(got, float) - mean) / np.maximum(np.sqrt(var + mean**2), 1e-300)).max())


@st.composite
def tiny_resnets(draw, max_n=7):
    """``resnet`` arguments (1-3 stages of widths 1-3, 1-2 blocks each, images 2-8 pixels wide) and ``n``."""
    return dict(in_channels=draw(st.integers(1, 2)), num_classes=draw(st.integers(2, 3)),
                widths=tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))),
                blocks_per_stage=draw(st.integers(1, 2)), image_size=draw(st.integers(2, 8)),
                n=draw(st.integers(1, max_n)), seed=draw(seeds))


def _last_pixels(model):
    """``H·W`` of the last stage, where batch norm sees the fewest values per channel."""
    model.eval()
    c, h, w = model.input_shape
    model.forward(B.to_device(np.zeros((1, c, h, w)), model.backend))
    return model.layers["pool"].x_shape[2] * model.layers["pool"].x_shape[3]


@st.composite
def recalibration_cases(draw):
    cfg = draw(tiny_resnets())
    return cfg, draw(st.integers(1, cfg["n"]))


@given(recalibration_cases())
def test_recalibrated_statistics_are_the_size_weighted_average_of_batch_statistics(be, case):
    r"""``μ̄ = Σ_b (M_b/M) μ_b``, ``σ̄² = Σ_b (M_b/M) M_b/(M_b−1) σ²_b`` per layer, to float64 rounding.

    Planted bugs watched failing: momentum 0.1 instead of the cumulative share
    (off by 0.13 of the RMS), equal weights per batch ``1/b`` (PyTorch's
    ``momentum=None``; off by 0.016 when the last batch is smaller).
    """
    cfg, batch_size = case
    model = _tiny(cfg, be)
    X = B.to_device(gaussian(cfg["seed"] + 1, cfg["n"], cfg["in_channels"], cfg["image_size"], cfg["image_size"]),
                    be)
    smallest = cfg["n"] - (cfg["n"] - 1) // batch_size * batch_size
    assume(smallest * _last_pixels(model) >= 2)  # training mode needs > 1 value per channel
    params = {k: B.to_host(p).copy() for k, p in model.params.items()}
    momenta = [bn.momentum for bn in _bns(model)]
    stats = _batch_statistics(model, X, batch_size)
    model.eval()
    assert recalibrate_batchnorm(model, X, batch_size) is model
    for bn, per_batch in zip(_bns(model), stats):
        ms = np.array([m for m, _, _ in per_batch], float)[:, None]
        mean = (ms * np.array([mu for _, mu, _ in per_batch])).sum(0) / ms.sum()
        var = (ms * np.array([v for _, _, v in per_batch])).sum(0) / ms.sum()
        assert _mean_err(B.to_host(bn.buffers["running_mean"]), mean, var) < TOL_MEAN
        assert _rel(B.to_host(bn.buffers["running_var"]), var) < TOL_VAR
    # nothing else of the model changed: parameters, momenta, the (eval) mode
    for k, p in model.params.items():
        assert np.array_equal(B.to_host(p), params[k])
    assert [bn.momentum for bn in _bns(model)] == momenta
    assert not model.training and not any(bn.training for bn in _bns(model))


@given(tiny_resnets(max_n=6))
def test_one_batch_covering_the_data_gives_its_statistics_and_eval_equals_train(be, cfg):
    """One batch: the data's per-channel mean and unbiased variance after the preceding layers.

    Then, with ``σ̄²`` scaled back to the biased variance, the eval-mode
    network computes on ``X`` exactly what the training-mode network computes
    with ``X`` as its batch: the population statistics are the batch's.
    Planted bug watched failing: momentum 0.1 (the means are off by 90 %).
    """
    model = _tiny(cfg, be)
    n = cfg["n"]
    # M = 2 values per channel is degenerate (the output is ±γ + β, and rounding upstream comes out
    # multiplied by 1/σ at every such layer: 1.4e-11 seen); 3 is the smallest real batch
    assume(n * _last_pixels(model) >= 3)
    model.train()
    X = B.to_device(gaussian(cfg["seed"] + 2, n, cfg["in_channels"], cfg["image_size"], cfg["image_size"]), be)
    stats = _batch_statistics(model, X, n)
    y_train = B.to_host(model.train().forward(X)).copy()  # X as one batch, batch statistics throughout
    recalibrate_batchnorm(model, X, batch_size=n + 3)  # one batch however large batch_size is
    assert model.training  # the mode it found
    for bn, [(m, mu, var)] in zip(_bns(model), stats):
        assert _mean_err(B.to_host(bn.buffers["running_mean"]), mu, var) < TOL_MEAN
        assert _rel(B.to_host(bn.buffers["running_var"]), var) < TOL_VAR
        bn.buffers["running_var"] *= (m - 1) / m  # unbiased -> biased, what training mode divides by
    y_eval = B.to_host(model.eval().forward(X))
    assert _rel(y_eval, y_train) < TOL_EVAL_TRAIN


def test_recalibration_discards_non_finite_statistics_and_checks_its_input(be):
    """Stale NaN / inf statistics (a diverged run's) do not survive: ``(1 − m_1)·NaN`` is NaN even for ``m_1 = 1``.

    Planted bug watched failing: no reset to 0 and 1 before the first batch.
    """
    cfg = dict(in_channels=1, num_classes=2, widths=(2, 3), blocks_per_stage=1, image_size=6, seed=3, n=5)
    model = _tiny(cfg, be)
    for bn in _bns(model):
        bn.buffers["running_mean"][...] = np.nan
        bn.buffers["running_var"][...] = np.inf
    X = B.to_device(gaussian(4, 5, 1, 6, 6), be)
    recalibrate_batchnorm(model, X, 2)
    for b in named_buffers(model).values():
        assert np.all(np.isfinite(B.to_host(b)))
    with pytest.raises(ValueError, match="batch_size"):
        recalibrate_batchnorm(model, X, 0)
    with pytest.raises(ValueError, match="X: expected images"):
        recalibrate_batchnorm(model, X[:0], 2)


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


class _Killed(Exception):
    """Stands for the process being killed."""


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
            raise _Killed
        with monkeypatch.context() as mp:
            mp.setattr(fig3, "save_results", boom)
            with pytest.raises(_Killed):
                fig3._seed_run(cfg, 0, folder, None, False)
    else:
        calls, reading = [], fig3.ntk_reading

        def dies_second(*a, **k):
            calls.append(1)
            if len(calls) == 2:
                raise _Killed
            return reading(*a, **k)
        with monkeypatch.context() as mp:
            mp.setattr(fig3, "ntk_reading", dies_second)
            with pytest.raises(_Killed):
                fig3._seed_run(cfg, 0, folder, None, False)
    assert (folder / "checkpoint.json").exists() and not (folder / "results.json").exists()
    rerun = fig3._seed_run(cfg, 0, folder, None, False)
    assert not (folder / "checkpoint.json").exists()
    _same(rerun, clean)
