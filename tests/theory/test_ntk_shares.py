"""Each layer's share of the empirical NTK and the rescaled kernel (minilplr.theory.ntk_shares), in float64.

* convergence: the layer-wise rescaled empirical kernel at widths 64 … 2048
  approaches Θ_∞ with a log–log slope near −1/2; each layer's share too;
  minilplr's own (standard-parameterisation) kernel grows like ``H`` and
  matches its leading part;
* depth 1 (the linear model): ``Θ̃ = Θ_∞ = (2/D) XXᵀ + 1`` exactly, and
  ``Θ_SP = XXᵀ + 1``;
* ``σ²`` read from the model's initialiser, and bad input.
"""
import numpy as np
import pytest

from minilplr.backend import to_host
from minilplr.nn.models import mlp
from minilplr.theory import infinite_ntk as inf
from minilplr.theory import ntk_shares as shares
from minilplr.theory.ntk import empirical_ntk


# --------------------------------------------------------------------------- convergence with width

WIDTHS = [64, 128, 256, 512, 1024, 2048]
SEEDS = 12


def _errors(dev, be, N=6, D=5, L=3):
    X = np.random.default_rng(2024).standard_normal((N, D))
    Xd = dev(X)
    theta_inf = inf.infinite_ntk(Xd, L)
    errs = np.array([[shares.relative_error(shares.scaled_empirical_ntk(mlp(D, H, L, 1, seed=s, dtype="float64", backend=be), Xd),
                                         theta_inf)
                      for s in range(SEEDS)] for H in WIDTHS])
    return errs.mean(1)


def test_rescaled_empirical_ntk_converges_at_rate_one_over_sqrt_width(be, dev):
    err = _errors(dev, be)
    slope = np.polyfit(np.log(WIDTHS), np.log(err), 1)[0]
    # 20 data draws x 8 seeds, widths 64..1024: slope −0.49 ± 0.06 (range −0.63 … −0.38);
    # this draw, 12 seeds, 64..2048: errors 0.245 0.204 0.113 0.082 0.064 0.046, slope −0.503
    assert -0.68 < slope < -0.32, (slope, err)
    assert err[-1] < 0.08, err
    assert err[0] > 2.5 * err[-1], err  # it does fall: 32x the width, ~√32 ≈ 5.7x smaller error


def test_each_layer_share_converges(be, dev):
    """The split into weight and bias shares, layer by layer: S_l and P_l of the module docstring."""
    N, D, L, H = 5, 4, 3, 2048
    X = np.random.default_rng(5).standard_normal((N, D))
    S, P = (to_host(a) for a in inf.infinite_ntk_shares(dev(X), L))
    errW, errb = np.zeros(L), np.zeros(L)
    for s in range(4):
        fan_in, W, b = shares.empirical_ntk_shares(mlp(D, H, L, 1, seed=s, dtype="float64", backend=be), dev(X))
        assert fan_in == [D, H, H]
        W, b = to_host(W), to_host(b)
        for l in range(L):
            errW[l] += shares.relative_error(2 / fan_in[l] * W[l], S[l]) / 4
            errb[l] += shares.relative_error(b[l], P[l]) / 4
    assert errb[-1] == 0  # the last layer's bias share is exactly 1 (K = 1)
    assert np.all(errW < 0.2) and np.all(errb < 0.2), (errW, errb)  # 5 draws x 4 seeds at H = 2048: 0.04–0.12


def test_standard_parameterisation_grows_with_width_and_matches_its_leading_part(be, dev):
    N, D, L = 5, 4, 3
    X = dev(np.random.default_rng(6).standard_normal((N, D)))
    norms, errs = [], []
    for H in (256, 2048):
        lead = inf.infinite_ntk(X, L, scaling="standard", width=H)  # Σ_l ((n_{l-1}/2) S_l + P_l)
        e = []
        for s in range(3):
            m = mlp(D, H, L, 1, seed=s, dtype="float64", backend=be)
            sp = shares.scaled_empirical_ntk(m, X, scaling="standard")
            assert np.allclose(to_host(sp), to_host(empirical_ntk(m, X, dtype="float64")), rtol=1e-12)
            e.append(shares.relative_error(sp, lead))
        errs.append(np.mean(e))
        norms.append(float(np.linalg.norm(to_host(lead))))
    # 4 data draws x 4 seeds: per-seed errors 0.09–0.27 at H = 256, 0.02–0.09 at H = 2048
    assert errs[0] < 0.3 and errs[1] < 0.1 and errs[1] < errs[0], errs
    assert 6 < norms[1] / norms[0] < 8.5  # Θ_SP grows like H (8x the width; the O(1) terms make it a little less)


# --------------------------------------------------------------------------- depth 1, σ² from the model, bad input


@pytest.mark.parametrize("K", [1, 3])
def test_depth_one_is_exact_at_any_width(K, be, dev):
    rng = np.random.default_rng(K)
    X = rng.standard_normal((6, 3))
    Xd = dev(X)
    m = mlp(3, 17, 1, K, seed=2, dtype="float64", backend=be)
    closed = 2 / 3 * X @ X.T + 1  # Θ_∞ = Σ^(1) + 1
    want = np.kron(closed, np.eye(K))
    assert np.allclose(to_host(inf.infinite_ntk(Xd, 1, d_out=K)), want, rtol=1e-14)
    assert np.allclose(to_host(shares.scaled_empirical_ntk(m, Xd)), want, rtol=1e-13)
    assert np.allclose(to_host(shares.scaled_empirical_ntk(m, Xd, scaling="standard")), np.kron(X @ X.T + 1, np.eye(K)),
                       rtol=1e-13)


def test_weight_var_is_read_from_the_model(be, dev):
    X = dev(np.random.default_rng(9).standard_normal((3, 4)))
    m = mlp(4, 8, 1, 1, init="enhanced_he", seed=0, dtype="float64", backend=be, init_factor=0.5)
    assert np.allclose(to_host(shares.scaled_empirical_ntk(m, X)), to_host(inf.infinite_ntk(X, 1, weight_var=1.0)))
    g = mlp(4, 8, 2, 1, init="gaussian", p=0.3, seed=0, dtype="float64", backend=be)
    with pytest.raises(ValueError, match="weight_var"):
        shares.scaled_empirical_ntk(g, X)




def test_bad_arguments_raise_clear_errors(be, dev):
    X = dev(np.ones((3, 2)))
    with pytest.raises(TypeError, match="model"):
        shares.scaled_empirical_ntk(object(), X)
    with pytest.raises(ValueError, match="scaling"):
        shares.scaled_empirical_ntk(mlp(2, 4, 2, 1, backend=be), X, scaling="x")
