"""Losses (minilplr.nn.losses): values against a direct formula, gradients against central differences."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minilplr import backend as B
from minilplr.nn import gradcheck, losses

from ..strategies import batch_sizes, gaussian, outputs, seeds

pytestmark = pytest.mark.kernel_free  # tests/nn/conftest.py: no fast kernel here, one run

# Tolerances in error ratios ρ (gradcheck.error_ratio), 10x above the largest ρ reached over 300
# Hypothesis examples; why ρ and not a relative error: tests/nn/test_layers.py.
TOL_MSE = 10  # ρ reached 0.76
TOL_CE = 10  # ρ reached 0.69


@given(n=batch_sizes, k=outputs, seed=seeds)
def test_mse_value_and_gradient(dev, n, k, seed):
    f, y = gaussian(seed, n, k), gaussian(seed + 1, n, k)
    pred = dev(f)
    loss, dpred = losses.mse(pred, dev(y))
    assert math.isclose(float(loss), ((f - y) ** 2).sum() / (2 * n), rel_tol=1e-12)  # L = ‖f−y‖²/(2n)
    gradcheck.check_gradient(dpred, lambda: losses.mse(pred, dev(y))[0], pred, TOL_MSE, "mse dpred")


@given(n=batch_sizes, k=st.integers(2, 6), seed=seeds, scale=st.sampled_from([1.0, 4.0]))
def test_softmax_cross_entropy_value_and_gradient(dev, n, k, seed, scale):
    z = gaussian(seed, n, k, scale=scale)
    labels = np.random.default_rng(seed).integers(0, k, n)
    logits = dev(z)
    lab = B.to_device(labels, B.get_backend())
    loss, dz = losses.softmax_cross_entropy(logits, lab)
    ref = np.mean(np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1) - z[np.arange(n), labels])
    assert math.isclose(float(loss), ref, rel_tol=1e-10, abs_tol=1e-12)
    gradcheck.check_gradient(dz, lambda: losses.softmax_cross_entropy(logits, lab)[0], logits, TOL_CE,
                             "softmax CE dlogits")


def test_softmax_cross_entropy_is_stable_for_huge_logits(dev):
    logits = dev([[1000.0, -1000.0, 0.0], [-5e3, 5e3, 1.0]])
    labels = B.to_device(np.array([0, 0]), B.get_backend())
    loss, dz = losses.softmax_cross_entropy(logits, labels)
    assert math.isclose(float(loss), (0.0 + 1e4) / 2, rel_tol=1e-12)
    # softmax rows are (1, 0, 0) and (0, 1, 0) to double precision: dz = (softmax − onehot)/N
    expected = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]) - np.array([[1.0, 0, 0], [1.0, 0, 0]])
    assert np.allclose(B.to_host(dz), expected / 2, atol=1e-300)


def test_loss_bad_input(dev):
    with pytest.raises(ValueError, match=r"y: expected targets of shape \(3, 1\)"):
        losses.mse(dev(np.zeros((3, 1))), dev(np.zeros(4)))
    with pytest.raises(ValueError, match="pred: expected a 2-D"):
        losses.mse(dev(np.zeros(3)), dev(np.zeros(3)))
    be = B.get_backend()
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 3\)"):
        losses.softmax_cross_entropy(dev(np.zeros((2, 3))), B.to_device(np.array([0, 3]), be))
    with pytest.raises(ValueError, match="labels: expected integer"):
        losses.softmax_cross_entropy(dev(np.zeros((2, 3))), dev(np.zeros(2)))
