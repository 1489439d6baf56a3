"""Fits used by the figures recover known rates and slopes."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minilplr.experiments.fits import ema, fit_linear_rate, fit_loglog_slope, resolvable_mask


@given(q=st.floats(0.5, 0.999), c=st.floats(0.1, 10.0), l_true=st.floats(0.0, 1.0), T=st.integers(50, 400))
def test_linear_rate_recovered_even_with_the_min_seen_proxy(q, c, l_true, T):
    t = np.arange(T)
    loss = l_true + c * q**t
    exact = fit_linear_rate(loss, l_true)
    assert exact["rate"] == pytest.approx(q, rel=1e-6) and exact["r2"] > 1 - 1e-9
    proxy = fit_linear_rate(loss, loss.min(), star_is_min_seen=True)
    if proxy["n"] >= 3:
        # the bent tail is excluded, so the proxy's rate stays close to the truth
        assert abs(np.log(proxy["rate"]) / np.log(q) - 1) < 0.05


def test_sublinear_decay_is_not_a_straight_line():
    t = np.arange(1, 300)
    fit = fit_linear_rate(1.0 / t, 0.0)  # L_t = 1/t: sublinear
    assert fit["r2"] < 0.9


def test_loglog_slope_and_resolvable_floor():
    x = np.logspace(-6, 0, 50)
    f = fit_loglog_slope(x, 3 * x**0.8)
    assert f["slope"] == pytest.approx(0.8) and f["r2"] == pytest.approx(1.0)
    loss = np.array([1.0, 0.5, 0.1 + 1e-9, 0.1])
    assert resolvable_mask(loss, 0.1).tolist() == [True, True, False, False]


def test_ema_of_a_constant_is_the_constant():
    assert np.allclose(ema(np.full(10, 3.0)), 3.0)
