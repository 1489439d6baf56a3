"""Bad input across the linear-network API (model, init, schedules, the GD loop): one clear error
naming the argument.
"""
from __future__ import annotations

import numpy as np
import pytest

from minilplr.theory.linear import (
    AdaptiveStep,
    Armijo,
    gaussian_init,
    imbalance_init,
    LeastSquares,
    RidgeLeastSquares,
    run_gd,
    synthetic_regression,
    TwoLayerLinear,
    xu2023_step,
    Xu2023Step,
)


def test_bad_inputs_raise_clear_errors(be, dev):
    rng = np.random.default_rng(0)
    X, Y = dev(rng.standard_normal((5, 3))), dev(rng.standard_normal((5, 2)))
    with pytest.raises(ValueError, match="X: expected full column rank"):
        LeastSquares(dev(np.ones((5, 3))), Y)
    with pytest.raises(ValueError, match="Y: expected 5 rows"):
        LeastSquares(X, dev(rng.standard_normal((4, 2))))
    with pytest.raises(ValueError, match="X: expected a 2-D"):
        LeastSquares(dev(rng.standard_normal(5)), Y)
    with pytest.raises(ValueError, match="X: expected finite"):
        LeastSquares(dev(np.full((5, 3), np.nan)), Y)
    with pytest.raises(ValueError, match="lam"):
        RidgeLeastSquares(X, Y, -1.0)
    loss = LeastSquares(X, Y)
    with pytest.raises(ValueError, match="W1: expected 3 rows"):
        TwoLayerLinear(loss, dev(np.ones((2, 4))), dev(np.ones((2, 4))))
    with pytest.raises(ValueError, match="W2: expected the hidden width"):
        TwoLayerLinear(loss, dev(np.ones((3, 4))), dev(np.ones((2, 5))))
    with pytest.raises(TypeError, match="loss"):
        TwoLayerLinear("ls", dev(np.ones((3, 4))), dev(np.ones((2, 4))))
    if be.name != "numpy":
        with pytest.raises(TypeError, match="W1: expected an array on backend"):
            TwoLayerLinear(loss, np.ones((3, 4)), dev(np.ones((2, 4))))
        with pytest.raises(TypeError, match="Y: expected an array on the backend of X"):
            LeastSquares(X, np.ones((5, 2)))
    with pytest.raises(ValueError, match="p: expected 1/4 < p < 1/2"):
        gaussian_init(3, 2, 10, 0.6, rng)
    with pytest.raises(ValueError, match="h: expected a positive integer"):
        gaussian_init(3, 2, 0, 0.3, rng)
    with pytest.raises(ValueError, match="sigma"):
        imbalance_init(3, 2, 10, -1.0, rng)
    with pytest.raises(ValueError, match="N: expected at least"):
        synthetic_regression(2, 3, 1, rng)
    with pytest.raises(ValueError, match="sigma_bound"):
        AdaptiveStep(loss, sigma_bound="tight")
    with pytest.raises(ValueError, match="eta0"):
        AdaptiveStep(loss, eta0=0.0)
    with pytest.raises(TypeError, match="loss_fn"):
        Xu2023Step(object())
    with pytest.raises(ValueError, match="shrink"):
        Armijo(lambda p: 0.0, shrink=1.5)
    with pytest.raises(ValueError, match="closure"):
        Armijo()(0, params={"W1": X}, grads={"W1": X}, loss=1.0)
    with pytest.raises(ValueError, match="params"):
        AdaptiveStep(loss)(0)
    with pytest.raises(ValueError, match="coeffs"):
        xu2023_step((0.0, 1.0, 0.0, 0.0))
    net = TwoLayerLinear(loss, dev(np.ones((3, 4))), dev(np.ones((2, 4))))
    with pytest.raises(ValueError, match="steps"):
        run_gd(net, 0.1, -1)
    with pytest.raises(TypeError, match="net"):
        run_gd("net", 0.1, 1)
    with pytest.raises(ValueError, match="checkpoint_every"):
        run_gd(net, 0.1, 1, checkpoint_every=0)
    with pytest.raises(TypeError, match="callback: expected a callable"):
        run_gd(net, 0.1, 1, callback=3)
