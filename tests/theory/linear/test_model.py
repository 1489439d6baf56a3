"""The two-layer linear network and its losses (:mod:`minilplr.theory.linear.model`): ``∇L`` and ``∇ℓ``
against central differences, float64 on the backend under test.
"""
from __future__ import annotations

from hypothesis import given

from minilplr.nn.gradcheck import numerical_gradient, rel_error

from ...helpers import two_layer_linear
from ...strategies import linear_problems


@given(linear_problems())
def test_gradient_matches_central_differences(be, dev, cfg):
    net = two_layer_linear(cfg, dev, be)
    net.backward()
    for k in ("W1", "W2"):
        num = numerical_gradient(lambda: net.loss(), net.params[k])
        assert rel_error(num, net.grads[k]) < 1e-7, k


@given(linear_problems())
def test_loss_gradient_matches_central_differences(be, dev, cfg):
    """∇ℓ(W) of the plain loss (least squares / ridge) against central differences."""
    net = two_layer_linear(cfg, dev, be)
    W = net.product().copy()
    num = numerical_gradient(lambda: net.loss_fn.value(W), W)
    assert rel_error(num, net.loss_fn.grad(W)) < 1e-7
