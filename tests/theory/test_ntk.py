"""The Jacobian and the empirical NTK, both methods (minilplr.theory.ntk).

Properties, in float64 on the backend under test (strict by default):

* ``J`` equals central differences of the forward pass, column by column;
* the per-sample gradients of the layer protocol sum to ``backward``'s;
* ``structured`` equals ``J Jᵀ`` to 1e-10 relative, for any ``K``;
* Θ is symmetric positive semi-definite.

Θ's spectrum (an honest ``λ_min``) is tested in test_spectrum.py; Θ in tiles in test_ntk_tiles.py.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minilplr.nn import models
from minilplr.theory import ntk, spectrum
from minilplr.backend import to_host
from minilplr.nn.gradcheck import numerical_jvp_columns, rel_error
from minilplr.nn.layers import Dense, Layer, Sequential
from minilplr.nn.state import float64_copy

from ..strategies import gaussian, mlp_configs


def _model_and_data(cfg, be, dev, dtype="float64"):
    """A small MLP with non-zero biases (a dead unit then gives no exact 0 pre-activation: no kink) and data."""
    m = models.mlp(cfg["d_in"], cfg["width"], cfg["depth"], cfg["d_out"], seed=cfg["seed"], dtype=dtype, backend=be)
    for k, p in m.params.items():
        if k.endswith(".b"):
            p[...] = dev(gaussian(cfg["seed"] + 7, *p.shape, scale=0.1), p.dtype)
    X = dev(gaussian(cfg["seed"] + 1, cfg["n"], cfg["d_in"]), np.dtype(dtype))
    return m, X


@given(cfg=mlp_configs(max_depth=3, max_width=6, max_n=5, max_d=4, max_k=3), chunk=st.integers(1, 5))
def test_jacobian_matches_central_differences(cfg, chunk, be, dev):
    m, X = _model_and_data(cfg, be, dev)
    P = sum(int(p.size) for p in m.params.values())
    J = ntk.jacobian(m, X, max_bytes=chunk * P * 8)  # chunks of `chunk` samples
    assert J.shape == (cfg["n"] * cfg["d_out"], P) and J.dtype == np.float64
    cols = [numerical_jvp_columns(lambda: m.forward(X), p, freeze=m) for p in m.params.values()]
    J_fd = be.xp.concatenate(cols, axis=1)  # columns in model.params order, rows i·K + k
    assert rel_error(J, J_fd) < 1e-7


@given(cfg=mlp_configs(max_depth=4, max_width=7, max_n=6, max_d=5, max_k=3))
def test_per_sample_grads_sum_to_backward(cfg, be, dev):
    m, X = _model_and_data(cfg, be, dev)
    out = m.forward(X)
    seed = dev(gaussian(cfg["seed"] + 2, *out.shape))
    _, psg = m.per_sample_backward(seed)
    assert list(psg) == list(m.params)
    m.backward(seed)
    for name, g in m.grads.items():
        assert psg[name].shape == (cfg["n"],) + tuple(m.params[name].shape)
        assert rel_error(psg[name].sum(axis=0), g) < 1e-12


@given(cfg=mlp_configs(max_depth=4, max_width=8, max_n=6, max_d=5, max_k=3))
def test_structured_equals_jacobian_and_is_symmetric_psd(cfg, be, dev):
    m, X = _model_and_data(cfg, be, dev)
    T_jac = ntk.empirical_ntk(m, X, method="jacobian")
    T_str = ntk.empirical_ntk(m, X, method="structured")
    nk = cfg["n"] * cfg["d_out"]
    assert T_str.shape == (nk, nk) and T_str.dtype == np.float64
    assert rel_error(T_str, T_jac) < 1e-10
    assert rel_error(T_str, T_str.T) < 1e-14
    spec = spectrum.ntk_spectrum(T_str)
    assert spec.lam_min_computed >= -spec.floor  # PSD up to rounding
    assert spec.lam_max >= 0
    ev = spec.eigenvalues
    assert np.all(np.diff(ev) >= 0) and ev.shape == (nk,)


@given(cfg=mlp_configs(max_depth=3, max_width=6, max_n=5, max_d=4, max_k=3))
def test_traced_ntk_sums_output_diagonal_blocks(cfg, be, dev):
    m, X = _model_and_data(cfg, be, dev)
    T = to_host(ntk.empirical_ntk(m, X))
    K, n = cfg["d_out"], cfg["n"]
    expected = sum(T[k::K, k::K] for k in range(K))  # Θ restricted to output k, summed
    got = to_host(ntk.traced_ntk(ntk.empirical_ntk(m, X), K))
    assert got.shape == (n, n)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0)


def test_float32_model_stays_float32_unless_asked(be, dev):
    m = models.mlp(4, 6, 3, 2, seed=0, backend=be)  # float32 default
    X = dev(gaussian(1, 5, 4), np.float32)
    assert ntk.jacobian(m, X).dtype == np.float32
    assert ntk.empirical_ntk(m, X).dtype == np.float32
    T64 = ntk.empirical_ntk(m, X, dtype="float64")
    assert T64.dtype == np.float64
    m64 = float64_copy(m)
    assert m.params["fc1.W"].dtype == np.float32  # original untouched
    assert all(p.dtype == np.float64 for p in m64.params.values()) and m64.dtype == np.float64
    assert rel_error(ntk.empirical_ntk(m64, X.astype(np.float64)), T64) < 1e-5  # float32 factors


# --------------------------------------------------------------------------- the protocol and bad input


def test_bad_arguments_raise_clear_errors(be, dev):
    m = models.mlp(3, 4, 2, 1, seed=0, dtype="float64", backend=be)
    X = dev(gaussian(0, 4, 3))
    with pytest.raises(ValueError, match="method"):
        ntk.empirical_ntk(m, X, method="autograd")
    with pytest.raises(ValueError, match="dtype"):
        ntk.empirical_ntk(m, X, dtype="int8")
    with pytest.raises(ValueError, match="max_bytes"):
        ntk.jacobian(m, X, max_bytes=0)
    with pytest.raises(ValueError, match="X"):
        ntk.jacobian(m, dev(gaussian(0, 4, 5)))
    with pytest.raises(TypeError, match="model"):
        ntk.empirical_ntk("not a model", X)
    with pytest.raises(ValueError, match="K"):
        ntk.traced_ntk(dev(np.eye(4)), 3)


class _Scale(Layer):
    """A layer with a parameter but no per-sample rule: the protocol must refuse it."""

    def __init__(self, s):
        super().__init__()
        self.params["s"] = s
        self.grads["s"] = None

    def forward(self, x):
        self.x = x
        return x * self.params["s"]

    def backward(self, dout, need_dx=True):
        self.grads["s"] = (dout * self.x).sum(axis=0)
        return dout * self.params["s"]


class _Twice(Sequential):
    """Not a chain: backward overridden, per-sample methods not."""

    def forward(self, x):
        return super().forward(x) * 2

    def backward(self, dout, need_dx=False):
        return super().backward(dout * 2, need_dx)


def test_layers_without_a_per_sample_rule_are_refused(be, dev):
    X = dev(gaussian(0, 3, 2))
    seq = Sequential([("fc", Dense(dev(gaussian(1, 2, 2)), dev(np.zeros(2)))), ("s", _Scale(dev(np.ones(2))))])
    with pytest.raises(NotImplementedError, match="_Scale.*per_sample_backward"):
        ntk.jacobian(seq, X)
    twice = _Twice([("fc", Dense(dev(gaussian(1, 2, 1)), dev(np.zeros(1))))])
    with pytest.raises(NotImplementedError, match="_Twice.*ntk_backward"):
        ntk.empirical_ntk(twice, X)


def test_generic_rule_equals_dense_rule(be, dev):
    """A layer with only per_sample_backward gets the generic F Fᵀ rule; it matches Dense's structured one."""

    class PlainDense(Dense):
        ntk_backward = Layer.ntk_backward  # fall back to the generic rule

    W1, W2 = dev(gaussian(1, 3, 5)), dev(gaussian(2, 5, 2))
    b1, b2 = dev(gaussian(3, 5)), dev(gaussian(4, 2))
    from minilplr.nn.layers import ReLU

    X = dev(gaussian(0, 4, 3))
    fast = Sequential([("a", Dense(W1, b1)), ("r", ReLU()), ("b", Dense(W2, b2))])
    slow = Sequential([("a", PlainDense(W1, b1)), ("r", ReLU()), ("b", PlainDense(W2, b2))])
    T_fast = ntk.empirical_ntk(fast, X, dtype="float64")
    T_slow = ntk.empirical_ntk(slow, X, dtype="float64")
    assert rel_error(T_fast, T_slow) < 1e-13
    assert rel_error(T_fast, ntk.empirical_ntk(fast, X, method="jacobian")) < 1e-13
