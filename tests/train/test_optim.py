"""Optimisers and schedules (minilplr.train.optim)."""
import numpy as np
import pytest

from minilplr import backend as B
from minilplr.train import optim


def test_sgd_is_gradient_descent_and_momentum(be):
    p = {"w": B.to_device(np.array([1.0, 2.0]), be)}
    g = {"w": B.to_device(np.array([0.5, -1.0]), be)}
    opt = optim.GD(0.1)
    assert opt.step(p, g) == 0.1
    assert np.allclose(B.to_host(p["w"]), [0.95, 2.1])  # θ − η g
    opt = optim.SGD(0.1, momentum=0.9, weight_decay=0.01)
    p = {"w": B.to_device(np.array([1.0]), be)}
    g = {"w": B.to_device(np.array([1.0]), be)}
    opt.step(p, g)  # v = g + λθ = 1.01; θ = 1 − 0.101
    opt.step(p, g)  # v = 0.9·1.01 + 1 + 0.01·0.899
    v2 = 0.9 * 1.01 + 1 + 0.01 * 0.899
    assert np.allclose(B.to_host(p["w"]), [0.899 - 0.1 * v2])


def test_cosine_schedule():
    s = optim.Cosine(0.1, total_steps=100, lr_min=0.001)
    assert s(0) == pytest.approx(0.1)
    assert s(50) == pytest.approx(0.001 + 0.5 * 0.099)
    assert s(100) == pytest.approx(0.001) and s(1000) == pytest.approx(0.001)


def test_optimiser_bad_input(be):
    with pytest.raises(ValueError, match="lr: expected a positive"):
        optim.GD(-1.0)
    with pytest.raises(ValueError, match="momentum: expected a number in"):
        optim.SGD(0.1, momentum=1.5)
    with pytest.raises(ValueError, match="total_steps"):
        optim.Cosine(0.1, 0)
    with pytest.raises(ValueError, match=r"grads\['w'\]: no gradient"):
        optim.GD(0.1).step({"w": B.to_device(np.ones(2), be)}, {"w": None})
