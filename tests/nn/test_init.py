"""Initialisers (minilplr.nn.init): their variances, and the same parameters on every backend."""
import numpy as np
import pytest

from minilplr import backend as B
from minilplr.nn import init, models

pytestmark = pytest.mark.kernel_free  # tests/nn/conftest.py: no fast kernel here, one run


def test_initialisers_have_their_variance():
    rng = np.random.default_rng(0)
    W = init.he_normal(400, 500, rng)
    assert abs(W.var() / (2 / 400) - 1) < 0.02  # He: Var = 2/D
    We = init.enhanced_he_normal(400, 500, np.random.default_rng(0), depth=5)
    assert np.allclose(We, W * np.sqrt(1 / 5))  # enhanced: He × c(L), c = 1/L by default
    We2 = init.enhanced_he_normal(400, 500, np.random.default_rng(0), depth=5, factor=0.5)
    assert np.allclose(We2, W * np.sqrt(0.5))
    G = init.gaussian_power(300, 400, np.random.default_rng(1), h=400, p=0.375)
    assert abs(G.var() / 400 ** (-0.75) - 1) < 0.02  # N(0, h^{-2p})
    with pytest.raises(ValueError, match="factor: expected a positive"):
        init.enhanced_he_normal(2, 2, rng, depth=3, factor=0.0)


@pytest.mark.parametrize("name", ["he", "enhanced_he", "gaussian"])
def test_same_seed_same_parameters_on_every_backend(be, name):
    kw = dict(init=name, seed=3, dtype="float64", p=0.375 if name == "gaussian" else None)
    a = models.mlp(4, 5, 3, 2, backend="numpy", **kw)
    b = models.mlp(4, 5, 3, 2, backend=be, **kw)
    for k in a.params:
        assert np.array_equal(a.params[k], B.to_host(b.params[k]))
