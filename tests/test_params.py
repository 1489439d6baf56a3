"""Parameters as one flat vector (minilplr.nn.params): the Jacobian's column order."""
import numpy as np
import pytest
from hypothesis import given

from minilplr import backend as B
from minilplr.nn import gradcheck, models
from minilplr.nn import params as P

from .strategies import mlp_configs, mlp_problem


@given(cfg=mlp_configs())
def test_flatten_unflatten_round_trip(be, dev, cfg):
    m, _, _ = mlp_problem(cfg, be, dev)
    theta = P.flatten(m.params)
    assert theta.shape == (P.num_params(m.params),)
    back = P.unflatten(theta, m.params)
    for k, p in m.params.items():
        assert B.to_host(back[k] == p).all()
    P.load_flat(m, theta * 2)
    assert gradcheck.rel_error(P.flatten(m.params), theta * 2) == 0.0


def test_unflatten_bad_length(be):
    m = models.mlp(2, 3, 2, 1, backend=be)
    with pytest.raises(ValueError, match=r"vec: expected shape \(13,\)"):
        P.unflatten(B.to_device(np.zeros(12), be), m.params)
