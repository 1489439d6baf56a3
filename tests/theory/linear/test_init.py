"""Initialisations of the linear network (:mod:`minilplr.theory.linear.init`)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minilplr.theory.linear import gaussian_init, imbalance_init, imbalance_ratio

from ...strategies import seeds


def test_gaussian_init_variance():
    W1, W2 = gaussian_init(20, 10, 4000, 0.3, np.random.default_rng(0))
    assert W1.shape == (20, 4000) and W2.shape == (10, 4000)
    assert W1.std() == pytest.approx(4000 ** -0.3, rel=0.02)


@given(seeds, st.floats(0.0, 50.0), st.floats(0.0, 50.0))
@settings(max_examples=10)
def test_imbalance_init_changes_only_the_imbalance(seed, s1, s2):
    r = imbalance_ratio(s1)
    assert r * r - 1 / (r * r) == pytest.approx(s1, abs=1e-9 * (1 + s1))
    A1, A2 = imbalance_init(3, 2, 7, s1, np.random.default_rng(seed), scale=0.5)
    B1, B2 = imbalance_init(3, 2, 7, s2, np.random.default_rng(seed), scale=0.5)
    np.testing.assert_allclose(A1 @ A2.T, B1 @ B2.T, rtol=1e-10, atol=1e-12)
