"""The MLP's architecture options (issue 24): batch norm for features and the residual dense block.

* :class:`~minilplr.nn.batchnorm.BatchNorm1D`: its backward pass in training
  and evaluation mode against float64 central differences; its statistics and
  running update against their equations; it *is* :class:`BatchNorm2D` on
  ``(N, H, 1, 1)`` (outputs, gradients and buffers agree); the per-sample view
  refused in training mode, and summing to ``backward``'s in evaluation mode.
* :class:`~minilplr.nn.residual.DenseResidualBlock`: ``dx`` and every
  parameter's gradient against central differences, with and without batch
  norm, in either mode.
* ``mlp(..., residual=, batchnorm=)``: the whole network's gradients; the
  per-sample gradients sum to ``backward``'s; the NTK by the structured rule
  (dense layers) and by the generic rule (``J Jᵀ`` from per-sample gradients)
  equal the product of the *explicit* Jacobian (central differences of the
  outputs) with its transpose; the defaults build today's network bit for
  bit; a run with batch norm resumes bit for bit, running statistics included.

Planted bugs, each watched failing (see the report of issue 24): the skip term
dropped from the block's ``backward`` (``dx = (∂F/∂x)ᵀ δ``) fails the block's
``dx`` check, the model's gradient check and the per-sample/NTK checks; the
batch-norm mean gradient dropped (``− ∂L/∂β / N`` missing from the training-mode
``dx``) fails the training-mode check and the BN2D agreement.
"""
import numpy as np
import pytest
from hypothesis import given

from minilplr import backend as B
from minilplr.nn import gradcheck, init, losses, models
from minilplr.nn.batchnorm import BatchNorm1D, BatchNorm2D, recalibrate_batchnorm
from minilplr.nn.layers import Dense
from minilplr.nn.residual import DenseResidualBlock
from minilplr.nn.state import named_buffers
from minilplr.theory import ntk
from minilplr.train import optim
from minilplr.train.loops import train_sgd

from ..helpers import Killed
from ..strategies import bn1d_configs, gaussian, inner, residual_mlp_configs

# Tolerances, each 10-25x above the largest error reached over 250 Hypothesis examples per test (the
# "thorough" profile, plain path).  Gradient checks bound the error ratio ρ (gradcheck.check_gradient; why a
# ratio: the note in tests/nn/test_conv.py).
TOL_BN = 30  # ρ reached 0.54 / 1.2 (dx train / eval), 0.81 / 0.77 (γ), 0.68 / 1.06 (β)
TOL_BLOCK = 20  # ρ reached 0.88 (dx), 1.5 (parameters)
TOL_MODEL = 30  # ρ reached 3.0 (a residual block's fc1.W), 1.6 (the others)
# Θ against the explicit Jacobian J_fd J_fdᵀ: J_fd is a central difference; largest relative error of Θ
# seen 1.3e-10; a bug of the composition (the skip term) is O(1).
TOL_NTK_FD = 3e-9
TOL_NTK_RULES = 1e-12  # structured against generic rule: float64 sums of the same products (2.3e-16 seen)
TOL_SUM = 1e-12  # Σ_n of the per-sample gradients against backward's grads (1.6e-16 seen)


def _bn1d(dev, h, seed, eps=1e-5):
    return BatchNorm1D(dev(1.0 + 0.5 * gaussian(seed, h)), dev(gaussian(seed + 1, h)), eps=eps)


# --------------------------------------------------------------------------- BatchNorm1D


@pytest.mark.kernel_free
@given(cfg=bn1d_configs())
def test_batchnorm1d_matches_finite_differences(dev, cfg):
    """dx, dγ, dβ of ⟨bn(x), w⟩ in either mode; in training mode every input of the batch is perturbed."""
    h, seed = cfg["h"], cfg["seed"]
    bn = _bn1d(dev, h, seed, cfg["eps"])
    if not cfg["train"]:
        bn.buffers["running_mean"][...] = dev(gaussian(seed + 4, h))
        bn.buffers["running_var"][...] = dev(np.exp(gaussian(seed + 5, h)))
        bn.eval()
    x = dev(gaussian(seed + 2, cfg["n"], h, scale=2.0) + 1.0)
    w = dev(gaussian(seed + 3, cfg["n"], h))
    bn.forward(x)
    dx = bn.backward(w)
    f = lambda: inner(bn.forward(x), w)  # noqa: E731
    mode = "train" if cfg["train"] else "eval"
    gradcheck.check_gradient(dx, f, x, TOL_BN, f"bn1d {mode} dx")
    for k in ("gamma", "beta"):
        gradcheck.check_gradient(bn.grads[k], f, bn.params[k], TOL_BN, f"bn1d {mode} {k}")


@given(cfg=bn1d_configs())
def test_batchnorm1d_is_batchnorm2d_on_one_pixel(dev, cfg):
    """On ``(N, H, 1, 1)`` BatchNorm2D computes what BatchNorm1D computes on ``(N, H)``: outputs, all three
    gradients and the running statistics after two steps, in either mode (both paths of BatchNorm2D)."""
    h, n, seed = cfg["h"], cfg["n"], cfg["seed"]
    b1 = _bn1d(dev, h, seed, cfg["eps"])
    b2 = BatchNorm2D(dev(1.0 + 0.5 * gaussian(seed, h)), dev(gaussian(seed + 1, h)), eps=cfg["eps"])
    b1.train(cfg["train"]), b2.train(cfg["train"])
    for step in range(2):
        x = gaussian(seed + 2 + step, n, h, scale=2.0) + 1.0
        w = gaussian(seed + 9 + step, n, h)
        y1, y2 = b1.forward(dev(x)), b2.forward(dev(x.reshape(n, h, 1, 1)))
        d1, d2 = b1.backward(dev(w)), b2.backward(dev(w.reshape(n, h, 1, 1)))
        assert gradcheck.rel_error(y1, y2.reshape(n, h)) < 1e-14
        assert gradcheck.rel_error(d1, d2.reshape(n, h)) < 1e-13
        for k in ("gamma", "beta"):
            assert gradcheck.rel_error(b1.grads[k], b2.grads[k]) < 1e-13
    for k in ("running_mean", "running_var"):
        assert gradcheck.rel_error(b1.buffers[k], b2.buffers[k]) < 1e-14


@pytest.mark.kernel_free
def test_batchnorm1d_statistics_running_update_and_eval(dev):
    """Training mode: each feature has mean β and std γ·σ/√(σ²+ε) over the batch; the running statistics move by
    the momentum rule (unbiased variance); evaluation mode is the affine map they define, sample by sample."""
    n, h = 5, 3
    bn = BatchNorm1D(dev(1.0 + gaussian(0, h) ** 2), dev(gaussian(1, h)), momentum=0.25)
    x = gaussian(2, n, h, scale=3.0) + 2.0
    y = B.to_host(bn.forward(dev(x)))
    g, b = B.to_host(bn.params["gamma"]), B.to_host(bn.params["beta"])
    mu, var = x.mean(axis=0), x.var(axis=0)
    np.testing.assert_allclose(y.mean(axis=0), b, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=0), g * np.sqrt(var / (var + bn.eps)), rtol=1e-12)
    rm, rv = 0.25 * mu, 0.75 + 0.25 * var * n / (n - 1)
    np.testing.assert_allclose(B.to_host(bn.buffers["running_mean"]), rm, rtol=1e-14)
    np.testing.assert_allclose(B.to_host(bn.buffers["running_var"]), rv, rtol=1e-14)
    bn.eval()
    ye = B.to_host(bn.forward(dev(x)))
    np.testing.assert_allclose(ye, g * (x - rm) / np.sqrt(rv + bn.eps) + b, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(B.to_host(bn.forward(dev(x[:1]))), ye[:1])  # one sample alone: the same row


@pytest.mark.kernel_free
def test_batchnorm1d_per_sample_view_refused_in_training_mode_and_summing_in_eval(dev):
    bn = _bn1d(dev, 4, 0)
    x, w = dev(gaussian(2, 6, 4)), dev(gaussian(3, 6, 4))
    bn.forward(x)
    with pytest.raises(ValueError, match="need batch norm in evaluation mode"):
        bn.per_sample_backward(w)
    bn.eval().forward(x)
    dx, psg = bn.per_sample_backward(w)
    assert list(psg) == ["gamma", "beta"] and psg["gamma"].shape == (6, 4)
    dx_ref = bn.backward(w)
    for k in psg:
        assert gradcheck.rel_error(psg[k].sum(axis=0), bn.grads[k]) < TOL_SUM
    assert gradcheck.rel_error(dx, dx_ref) == 0.0


@pytest.mark.kernel_free
def test_batchnorm1d_bad_input(dev):
    bn = _bn1d(dev, 3, 0)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3\)"):
        bn.forward(dev(np.ones((4, 2))))
    with pytest.raises(ValueError, match="more than one sample"):
        bn.forward(dev(np.ones((1, 3))))
    bn.eval().forward(dev(np.ones((1, 3))))  # evaluation mode: fine
    with pytest.raises(ValueError, match=r"beta: expected shape \(3,\)"):
        BatchNorm1D(dev(np.ones(3)), dev(np.zeros(2)))
    with pytest.raises(ValueError, match=r"momentum: expected a number in \(0, 1\]"):
        BatchNorm1D(dev(np.ones(3)), dev(np.zeros(3)), momentum=1.5)


# --------------------------------------------------------------------------- the residual dense block


@pytest.mark.kernel_free
@given(cfg=bn1d_configs())
def test_dense_residual_block_matches_finite_differences(dev, cfg):
    """dx and every parameter of ``x + F(x)``, drawn width and batch, with batch norm (in the drawn mode) when
    the draw's ``ε`` is the default one, without it otherwise."""
    h, n, seed = cfg["h"], cfg["n"], cfg["seed"]
    with_bn = cfg["eps"] == 1e-5

    def fc(s):
        return Dense(dev(gaussian(s, h, h, scale=(2 / h) ** 0.5)), dev(gaussian(s + 1, h, scale=0.1)))

    blk = DenseResidualBlock(fc(seed), fc(seed + 2), *((_bn1d(dev, h, seed + 4), _bn1d(dev, h, seed + 6))
                                                       if with_bn else ()))
    blk.train(cfg["train"])
    for bn in [l for l in blk.layers.values() if isinstance(l, BatchNorm1D)]:
        bn.buffers["running_mean"][...] = dev(gaussian(seed + 8, h, scale=0.3))
        bn.buffers["running_var"][...] = dev(np.exp(gaussian(seed + 9, h, scale=0.3)))
    x = dev(gaussian(seed + 10, n, h))
    out = blk.forward(x)
    assert out.shape == (n, h)
    w = dev(gaussian(seed + 11, n, h))
    dx = blk.backward(w)
    f = lambda: inner(blk.forward(x), w)  # noqa: E731
    gradcheck.check_gradient(dx, f, x, TOL_BLOCK, "dense block dx", freeze=blk)
    names = ["fc1.W", "fc1.b"] + (["bn1.gamma", "bn1.beta"] if with_bn else []) + ["fc2.W", "fc2.b"]
    names += ["bn2.gamma", "bn2.beta"] if with_bn else []
    assert list(blk.params) == names and list(blk.grads) == names
    for k, p in blk.params.items():
        gradcheck.check_gradient(blk.grads[k], f, p, TOL_BLOCK, f"dense block {k}", freeze=blk)


@pytest.mark.kernel_free
def test_dense_residual_block_needs_square_layers_of_one_width(dev):
    sq = Dense(dev(np.ones((3, 3))), dev(np.zeros(3)))
    with pytest.raises(ValueError, match="fc2: a residual block needs square dense layers"):
        DenseResidualBlock(sq, Dense(dev(np.ones((3, 4))), dev(np.zeros(4))))
    with pytest.raises(ValueError, match="fc2: a residual block needs square dense layers"):
        DenseResidualBlock(sq, Dense(dev(np.ones((4, 4))), dev(np.zeros(4))))


# --------------------------------------------------------------------------- whole MLPs with the options


def _problem(cfg, be, dev, eval_mode=False):
    """A float64 MLP with the drawn options, non-zero biases, non-trivial γ, β and running statistics; ``X``."""
    m = models.mlp(cfg["d_in"], cfg["width"], cfg["depth"], cfg["d_out"], seed=cfg["seed"], dtype="float64",
                   backend=be, residual=cfg["residual"], batchnorm=cfg["batchnorm"])
    for i, (k, p) in enumerate(m.params.items()):
        if k.endswith(".b") or k.endswith(".beta"):
            p[...] = dev(gaussian(cfg["seed"] + 7 + i, *p.shape, scale=0.1))
        elif k.endswith(".gamma"):
            p[...] = dev(1.0 + 0.3 * gaussian(cfg["seed"] + 7 + i, *p.shape))
    for i, (k, b) in enumerate(named_buffers(m).items()):
        r = gaussian(cfg["seed"] + 50 + i, *b.shape, scale=0.3)
        b[...] = dev(np.exp(r) if k.endswith("var") else r)
    m.train(not eval_mode)
    return m, dev(gaussian(cfg["seed"] + 1, cfg["n"], cfg["d_in"]))


@pytest.mark.kernel_free
@given(cfg=residual_mlp_configs())
def test_mlp_with_options_gradients_match_finite_differences(be, dev, cfg):
    """Every parameter's gradient of the squared loss, batch norm in training mode (the loss of the batch)."""
    m, X = _problem(cfg, be, dev)
    y = dev(gaussian(cfg["seed"] + 2, cfg["n"], cfg["d_out"]))
    m.backward(losses.mse(m.forward(X), y)[1])
    f = lambda: losses.mse(m.forward(X), y)[0]  # noqa: E731
    assert list(m.grads) == list(m.params)
    for k, p in m.params.items():
        gradcheck.check_gradient(m.grads[k], f, p, TOL_MODEL, f"mlp {k}", freeze=m)


@pytest.mark.kernel_free
@given(cfg=residual_mlp_configs())
def test_mlp_with_options_per_sample_gradients_sum_to_backward(be, dev, cfg):
    m, X = _problem(cfg, be, dev, eval_mode=True)
    out = m.forward(X)
    seed = dev(gaussian(cfg["seed"] + 2, *out.shape))
    dx, psg = m.per_sample_backward(seed)
    assert list(psg) == list(m.params)
    dx_ref = m.backward(seed)
    assert gradcheck.rel_error(dx, dx_ref) < TOL_SUM
    for k, g in m.grads.items():
        assert psg[k].shape == (cfg["n"],) + tuple(m.params[k].shape)
        assert gradcheck.rel_error(psg[k].sum(axis=0), g) < TOL_SUM, k


@pytest.mark.kernel_free
@given(cfg=residual_mlp_configs(max_blocks=2, max_width=5, max_n=5))
def test_residual_mlp_ntk_equals_the_explicit_jacobian_product(be, dev, cfg):
    """Θ by the structured sweep (dense layers' ``(A Aᵀ + 1) ⊙ G Gᵀ``, batch norm's generic rule) and by the
    Jacobian method equal ``J_fd J_fdᵀ``, the explicit Jacobian by central differences of the outputs.
    Batch norm in evaluation mode (the per-sample view)."""
    m, X = _problem(cfg, be, dev, eval_mode=True)
    T_str = ntk.empirical_ntk(m, X, method="structured")
    T_jac = ntk.empirical_ntk(m, X, method="jacobian")
    cols = [gradcheck.numerical_jvp_columns(lambda: m.forward(X), p, freeze=m) for p in m.params.values()]
    J_fd = be.xp.concatenate(cols, axis=1)  # (N·K, P), rows i·K + k, columns in params order
    assert gradcheck.rel_error(T_str, J_fd @ J_fd.T) < TOL_NTK_FD
    assert gradcheck.rel_error(T_str, T_jac) < TOL_NTK_RULES
    assert gradcheck.rel_error(T_str, T_str.T) < 1e-14


@pytest.mark.kernel_free
def test_ntk_of_a_batchnorm_mlp_in_training_mode_is_refused(be, dev):
    cfg = dict(d_in=3, width=4, depth=4, d_out=1, n=5, residual=True, batchnorm=True, seed=0)
    m, X = _problem(cfg, be, dev)
    with pytest.raises(ValueError, match="need batch norm in evaluation mode"):
        ntk.empirical_ntk(m, X)


@pytest.mark.kernel_free
def test_mlp_defaults_are_todays_network_bit_for_bit(be):
    """Options off: the same layers, names, config and weights (one generator, layer order) as before issue 24."""
    m = models.mlp(5, 7, 4, 2, seed=3, backend=be, init="enhanced_he")
    assert list(m.layers) == ["fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "fc4"]
    assert "residual" not in m.config and "batchnorm" not in m.config
    rng = np.random.default_rng(3)
    for i, (fi, fo) in enumerate([(5, 7), (7, 7), (7, 7), (7, 2)]):
        W = init.enhanced_he_normal(fi, fo, rng, depth=4).astype(np.float32)
        assert np.array_equal(B.to_host(m.params[f"fc{i + 1}.W"]), W)
    r = models.mlp(5, 7, 4, 2, seed=3, backend=be, init="enhanced_he", residual=True)
    assert list(r.layers) == ["fc1", "relu1", "block1", "fc4"] and r.config["residual"] is True
    for a, b in zip(m.params.values(), r.params.values()):  # the same draws, in the same order
        assert np.array_equal(B.to_host(a), B.to_host(b))
    with pytest.raises(ValueError, match="depth: residual=True needs an even depth"):
        models.mlp(5, 7, 3, 2, residual=True)


@pytest.mark.kernel_free
def test_recalibrated_batchnorm_mlp_in_eval_mode_computes_the_training_batch(be, dev):
    """One batch covering ``X``: with ``σ̄²`` scaled back to the biased variance, the eval-mode network computes
    on ``X`` what the training-mode network computes with ``X`` as its batch (the kernel the study measures)."""
    cfg = dict(d_in=4, width=6, depth=6, d_out=2, n=9, residual=True, batchnorm=True, seed=5)
    m, X = _problem(cfg, be, dev)
    y_train = B.to_host(m.train().forward(X)).copy()
    recalibrate_batchnorm(m, X, batch_size=cfg["n"])
    for k, b in named_buffers(m).items():
        if k.endswith("running_var"):
            b *= (cfg["n"] - 1) / cfg["n"]  # unbiased -> biased: what training mode divides by
    assert gradcheck.rel_error(B.to_host(m.eval().forward(X)), y_train) < 1e-13


def _run(be, X, y, ck, kill_at):
    m = models.mlp(3, 8, 6, 1, seed=2, dtype="float64", backend=be, residual=True, batchnorm=True)
    opt = optim.SGD(0.05, momentum=0.9)

    def hook(model, t):
        if kill_at is not None and t == kill_at:
            raise Killed(t)
        return {}

    h = train_sgd(m, X, y, opt, epochs=3, batch_size=4, seed=7, loss="mse", checkpoint=ck, checkpoint_every=2,
                  diagnostics=hook, diag_every=1)
    return m, opt, h


@pytest.mark.kernel_free
def test_batchnorm_mlp_sgd_resumes_bit_for_bit_running_statistics_included(be, tmp_path):
    X = B.to_device(gaussian(4, 10, 3), be)  # 10 samples, batch 4: 3 steps an epoch, the last one short
    y = B.to_device(gaussian(5, 10, 1), be)
    m_ref, o_ref, h_ref = _run(be, X, y, None, None)
    bufs = {k: B.to_host(v) for k, v in named_buffers(m_ref).items()}
    assert len(bufs) == 2 * 5 and all(np.any(v != 0) for k, v in bufs.items() if k.endswith("mean"))
    with pytest.raises(Killed):
        _run(be, X, y, tmp_path / "ck", kill_at=5)
    m, o, h = _run(be, X, y, tmp_path / "ck", None)
    for k, v in named_buffers(m).items():
        assert np.array_equal(B.to_host(v), bufs[k]), k
    for k, v in m.params.items():
        assert np.array_equal(B.to_host(v), B.to_host(m_ref.params[k])), k
    assert {k: v for k, v in h.items()} == {k: v for k, v in h_ref.items()}
    assert m.training == m_ref.training
