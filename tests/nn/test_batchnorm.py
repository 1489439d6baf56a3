"""Batch norm (:mod:`minilplr.nn.batchnorm`): the layer in both modes, and its recalibration.

* :class:`~minilplr.nn.batchnorm.BatchNorm2D`: the backward pass in training
  and evaluation mode against float64 central differences; the statistics,
  the running update and evaluation mode against their equations (the
  fast kernels against the plain lines: ``tests/nn/test_fast.py``).
* :func:`~minilplr.nn.batchnorm.recalibrate_batchnorm` against its equation:
  every batch-norm layer ends with the size-weighted average over the
  batches of the batch statistics its input has in a training step
  (recorded here by wrapping each layer's ``forward``), to float64 rounding;
  with one batch covering the data these are the data's own statistics, and
  the eval-mode network then computes what the training-mode one computes on
  that batch.
"""
import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from minilplr import backend as B
from minilplr.nn import gradcheck
from minilplr.nn.batchnorm import BatchNorm2D, recalibrate_batchnorm
from minilplr.nn.state import iter_layers, named_buffers
from minilplr.nn.resnet import resnet

from ..strategies import batchnorm_layer, bn_configs, gaussian, inner, seeds

# Tolerances of the gradient checks, each set 10-30x above the largest error the check reached over
# 300 Hypothesis examples.  Layer checks bound the error *ratio* ρ of gradcheck.check_gradient (why a
# ratio and not a relative error: the note in tests/nn/test_conv.py).
TOL_BN = 30  # ρ reached 0.67 / 0.47 (dx train / eval), 1.6 / 3.1 (γ), 1.9 / 1.7 (β)

# The recalibrated statistics are the reference's float64 sums taken in another order.  Errors of a
# mean are measured in units of its channel's root mean square (a mean near 0 has no relative
# precision), of a variance relative to it.  Largest errors seen over 2 x 300 Hypothesis draws of
# each test: means 7e-16 of the RMS, variances 1.2e-15, the eval-mode against the training-mode
# output 3.7e-14 relative (batch norm divides by small σ's on the way).  The tolerances sit 15-30x
# above; the planted bugs err by 1e-2 (equal batch weights) to 1e-1 (momentum 0.1).
TOL_MEAN = 1e-14
TOL_VAR = 2e-14
#: eval against train on one batch: ``8 ε S`` (:func:`_eval_train_tolerance`, the error analysis there)
EVAL_TRAIN_FACTOR = 8.0


# --------------------------------------------------------------------------- batch norm


@given(cfg=bn_configs(train=True))
def test_batchnorm_training_mode_matches_finite_differences(dev, cfg):
    """Training mode: the batch statistics couple all samples, so the check perturbs every input
    of the batch and differentiates the full batch loss (N·H·W >= 3 values per channel: with two,
    x̂ = ±σ/√(σ² + ε) ≈ ±1 whatever x is, and ∂L/∂x is O(ε), below what differences resolve)."""
    bn = batchnorm_layer(dev, cfg["c"], cfg["seed"], cfg["eps"])
    x = dev(gaussian(cfg["seed"] + 2, cfg["n"], cfg["c"], cfg["h"], cfg["w"], scale=2.0) + 1.0)
    _check_bn_gradients(dev, bn, x, cfg["seed"], "bn train")


def _check_bn_gradients(dev, bn, x, seed, what):
    """dx, dγ, dβ of ⟨bn(x), w⟩ against central differences (in the layer's current mode)."""
    out = bn.forward(x)
    w_ = dev(gaussian(seed + 3, *out.shape))
    dx = bn.backward(w_)
    f = lambda: inner(bn.forward(x), w_)  # noqa: E731
    gradcheck.check_gradient(dx, f, x, TOL_BN, f"{what} dx")
    for k in ("gamma", "beta"):
        gradcheck.check_gradient(bn.grads[k], f, bn.params[k], TOL_BN, f"{what} {k}")


@given(cfg=bn_configs(train=False))
def test_batchnorm_eval_mode_matches_finite_differences(dev, cfg):
    c, seed = cfg["c"], cfg["seed"]
    bn = batchnorm_layer(dev, c, seed, cfg["eps"])
    bn.buffers["running_mean"][...] = dev(gaussian(seed + 4, c))
    bn.buffers["running_var"][...] = dev(np.exp(gaussian(seed + 5, c)))
    bn.eval()
    x = dev(gaussian(seed + 2, cfg["n"], c, cfg["h"], cfg["w"]))
    _check_bn_gradients(dev, bn, x, seed, "bn eval")


@given(n=st.integers(2, 4), c=st.integers(1, 3), hw=st.integers(1, 3), seed=seeds)
def test_batchnorm_statistics_and_running_update(dev, n, c, hw, seed):
    """Training mode normalises each channel to mean β, std γ (up to ε) and moves the running
    statistics by the momentum rule; evaluation mode is then the affine map they define."""
    bn = BatchNorm2D(dev(1.0 + gaussian(seed, c) ** 2), dev(gaussian(seed + 1, c)), momentum=0.25)
    xh = gaussian(seed + 2, n, c, hw, hw, scale=3.0) + 2.0
    y = B.to_host(bn.forward(dev(xh)))
    g, b = B.to_host(bn.params["gamma"]), B.to_host(bn.params["beta"])
    mu, var = xh.mean(axis=(0, 2, 3)), xh.var(axis=(0, 2, 3))
    assert np.allclose(y.mean(axis=(0, 2, 3)), b, atol=1e-10)
    assert np.allclose(y.std(axis=(0, 2, 3)), g * np.sqrt(var / (var + bn.eps)), rtol=1e-10)
    m = n * hw * hw
    rm, rv = 0.25 * mu, 0.75 * 1.0 + 0.25 * var * m / (m - 1)  # from (0, 1), unbiased variance
    assert np.allclose(B.to_host(bn.buffers["running_mean"]), rm, rtol=1e-12)
    assert np.allclose(B.to_host(bn.buffers["running_var"]), rv, rtol=1e-12)
    bn.eval()
    ye = B.to_host(bn.forward(dev(xh)))
    ref = g[None, :, None, None] * (xh - rm[None, :, None, None]) / np.sqrt(rv + bn.eps)[None, :, None, None]
    assert np.allclose(ye, ref + b[None, :, None, None], rtol=1e-12, atol=1e-12)


def test_batchnorm_eval_mode_treats_samples_independently(dev):
    bn = batchnorm_layer(dev, 3, 0)
    X = gaussian(1, 4, 3, 2, 2)
    bn.eval()
    alone = B.to_host(bn.forward(dev(X[:1])))
    together = B.to_host(bn.forward(dev(X)))[:1]
    assert np.allclose(alone, together, rtol=1e-14)
    bn.train()
    assert not np.allclose(B.to_host(bn.forward(dev(X)))[:1], B.to_host(bn.forward(dev(X[:2])))[:1])


def test_batchnorm_bad_input(dev):
    bn = batchnorm_layer(dev, 3, 0)
    with pytest.raises(ValueError, match=r"x: expected 3 channels"):
        bn.forward(dev(np.ones((2, 2, 4, 4))))
    with pytest.raises(ValueError, match=r"x: expected a 4-D"):
        bn.forward(dev(np.ones((2, 3))))
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn.forward(dev(np.ones((1, 3, 1, 1))))
    bn.eval().forward(dev(np.ones((1, 3, 1, 1))))  # evaluation mode: fine
    with pytest.raises(ValueError, match=r"beta: expected shape \(3,\)"):
        BatchNorm2D(dev(np.ones(3)), dev(np.zeros(2)))
    with pytest.raises(ValueError, match=r"momentum: expected a number in \(0, 1\]"):
        BatchNorm2D(dev(np.ones(3)), dev(np.zeros(3)), momentum=0.0)


# --------------------------------------------------------------------------- recalibration

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


def _eval_train_tolerance(stats, bn_eps):
    r"""The tolerance of eval against train on one batch, from the case's own statistics: ``8 ε S``.

    Both modes normalise the same inputs by the same statistics, computed
    once by the batch and once by the recalibration: they differ by rounding,
    a few ``ε`` of the channel's scale in ``μ`` and ``σ²``.  Batch norm divides
    by ``σ_c``, so a layer whose input has scale ``max_c (σ_c² + μ_c²)^{1/2}``
    (the ``max |x|`` the relative error is measured against) and a channel of
    small ``σ_c`` (few values per channel, ``M = 3`` in the issue's case)
    amplifies an error relative to its input by

    .. math:: a_l = \frac{\max_c (\sigma_c^2 + \mu_c^2)^{1/2}}{\min_c (\sigma_c^2 + \epsilon_{bn})^{1/2}}

    Layer ``l``'s own rounding, ``≈ ε a_l`` at its output, is amplified again
    by every later layer, so the output's relative error is about

    .. math:: \varepsilon\, S, \qquad S = \sum_l \prod_{l' \ge l} a_{l'}

    (the residual branches add errors, the product bounds each path).
    Measured: at most ``0.65 ε S`` over 520 random tiny ResNets (numpy, strict
    and the plain path; the issue's case, widths (1, 1, 3), 2 × 2 images,
    ``n = 3``, seed 2: error 1.0e-11, where ``S ≈ 1e5``); the factor 8 leaves
    a margin of 12.  ``S ≥ 1`` (a layer of zeros has ``a = 0``).
    """
    amps = [float(np.sqrt(np.max(var + mu**2)) / np.sqrt(np.min(var) + bn_eps)) for (_m, mu, var) in stats]
    S = sum(float(np.prod(amps[l:])) for l in range(len(amps)))
    return EVAL_TRAIN_FACTOR * np.finfo(np.float64).eps * max(1.0, S)


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
@example(dict(in_channels=2, num_classes=2, widths=(1, 1, 3), blocks_per_stage=2, image_size=2, n=3, seed=2))
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
    # multiplied by 1/σ at every such layer: 1.4e-11 seen); 3 is the smallest real batch.  With few values
    # per channel σ can still be small: the tolerance follows the case (_eval_train_tolerance)
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
    assert _rel(y_eval, y_train) < _eval_train_tolerance([s for [s] in stats], _bns(model)[0].eps)


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
