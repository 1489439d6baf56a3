"""Layers (minilplr.nn.layers): dense and ReLU backward passes against float64 central differences.

Every backward pass is checked against float64 central differences
(``minilplr.nn.gradcheck``) over Hypothesis-drawn shapes.
"""
import numpy as np
import pytest
from hypothesis import given

from minilplr import backend as B
from minilplr.nn import gradcheck
from minilplr.nn.layers import Dense, ReLU, Sequential

from ..strategies import batch_sizes, features, gaussian, seeds, widths

pytestmark = pytest.mark.kernel_free  # tests/nn/conftest.py: no fast kernel here, one run

# Tolerances of the gradient checks, each 10-30x above the largest error *ratio* ρ the check
# reached over 300 Hypothesis examples (gradcheck.achieved, the worst of two runs with different
# seeds): how many times the central difference's own error (truncation + rounding,
# gradcheck.error_ratio) the backward pass is off.  A plain relative error reached 1.4e-7 (dense W),
# 3.8e-7 (MLP W) and 3.8e-6 (softmax cross-entropy at scale 4) on draws whose gradient is tiny next
# to the loss, the size of real bugs (batch norm's ε dropped: 1e-6); in ρ a correct gradient stays
# below 2.5 and a bug of 1e-6 relative is ~1e4.
TOL_DENSE = 30  # ρ reached 1.5 (dx), 0.80 (W), 2.4 (b)
TOL_RELU = 10  # ρ reached 0.48


def _loss_of(out, w):
    """A scalar test loss ⟨out, w⟩ whose gradient w.r.t. out is w."""
    return (out * w).sum()


@given(n=batch_sizes, d=features, h=widths, seed=seeds)
def test_dense_backward_matches_finite_differences(dev, n, d, h, seed):
    x = dev(gaussian(seed, n, d))
    layer = Dense(dev(gaussian(seed + 1, d, h)), dev(gaussian(seed + 2, h)))
    w = dev(gaussian(seed + 3, n, h))  # upstream gradient ∂L/∂out
    layer.forward(x)
    dx = layer.backward(w)
    f = lambda: _loss_of(layer.forward(x), w)  # noqa: E731
    gradcheck.check_gradient(dx, f, x, TOL_DENSE, "dense dx")
    for k in ("W", "b"):
        gradcheck.check_gradient(layer.grads[k], f, layer.params[k], TOL_DENSE, f"dense {k}")


@given(n=batch_sizes, h=widths, seed=seeds)
def test_relu_backward_matches_finite_differences(dev, n, h, seed):
    x = dev(gaussian(seed, n, h))  # general position: no entry within h of the kink
    w = dev(gaussian(seed + 1, n, h))
    relu = ReLU()
    relu.forward(x)
    dx = relu.backward(w)
    gradcheck.check_gradient(dx, lambda: _loss_of(relu.forward(x), w), x, TOL_RELU, "relu dx")


def test_relu_forward_values(dev):
    x = dev([[-1.0, 0.0, 2.0]])
    assert B.to_host(ReLU().forward(x)).tolist() == [[0.0, 0.0, 2.0]]


def test_dense_rejects_mismatched_shapes(dev):
    with pytest.raises(ValueError, match="b: expected shape \\(3,\\)"):
        Dense(dev(np.ones((2, 3))), dev(np.ones(4)))
    layer = Dense(dev(np.ones((2, 3))), dev(np.zeros(3)))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 2\)"):
        layer.forward(dev(np.ones((5, 4))))


def test_sequential_rejects_inconsistent_layers(dev):
    net = Sequential([("a", Dense(dev(np.ones((2, 3))), dev(np.zeros(3)))),
                      ("b", Dense(dev(np.ones((4, 1))), dev(np.zeros(1))))])
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 4\).*got \(5, 3\)"):
        net.forward(dev(np.ones((5, 2))))
    with pytest.raises(ValueError, match="duplicate layer name"):
        Sequential([("a", ReLU()), ("a", ReLU())])
