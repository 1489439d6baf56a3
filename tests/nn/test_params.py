"""Parameters as one flat vector (minilplr.nn.params): the Jacobian's column order."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minilplr import backend as B
from minilplr.nn import gradcheck, models
from minilplr.nn import params as P

from ..strategies import gaussian, mlp_configs, mlp_problem, seeds

pytestmark = pytest.mark.kernel_free  # tests/nn/conftest.py: no fast kernel here, one run


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


@given(seed=seeds, n=st.integers(1, 20_000))
def test_sum_sq_diff_is_the_plain_expression_bit_for_bit(be, dev, seed, n):
    """``_sum_sq_diff(p, q)`` (squared in place) is ``((p − q)²).sum(dtype=float64)``, bits and all; p, q untouched."""
    p, q = dev(gaussian(seed, n), np.float32), dev(gaussian(seed + 1, n), np.float32)
    p_host, q_host = B.to_host(p), B.to_host(q)
    got = P._sum_sq_diff(p, q)
    d = p - q
    assert got.dtype == np.float64 and got.shape == ()
    assert B.to_scalar(got) == B.to_scalar((d * d).sum(dtype=np.float64))
    assert (B.to_host(p) == p_host).all() and (B.to_host(q) == q_host).all()


@pytest.mark.parametrize("dtype, rel", [("float32", 1.5 * 2.0**-24), ("float64", 1e-14)])
def test_param_drift_is_the_euclidean_distance(be, dev, dtype, rel):
    r"""``‖θ_t − θ_0‖ = (Σ_p ‖θ_{t,p} − θ_{0,p}‖²)^{1/2}`` against the float64 distance on the host.

    In float32 each term ``(θ_t − θ_0)²`` rounds at most three times (the
    difference, the square, the cast is exact), ``≤ 3u`` relative with
    ``u = 2⁻²⁴``, and the float64 sum adds ~1e-16: the drift, a square
    root, is within ``1.5u`` of the exact distance.
    """
    m = models.mlp(5, 64, 3, 2, seed=3, dtype=dtype, backend=be)
    theta0 = {k: v.copy() for k, v in m.params.items()}
    for i, p in enumerate(m.params.values()):
        p += dev(gaussian(10 + i, *p.shape, scale=1e-2), dtype)
    want = math.sqrt(sum(float(((B.to_host(m.params[k]).astype(np.float64) - B.to_host(theta0[k])) ** 2).sum())
                         for k in theta0))
    got = P.param_drift(m.params, theta0)
    assert abs(got - want) <= rel * want, (got, want)
    assert math.sqrt(B.to_scalar(P.drift_sq_on_device(m, theta0))) == got  # a model works too; one sync less
