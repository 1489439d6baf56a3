"""The small ResNet of Fig. 3 (:mod:`minilplr.nn.resnet`): gradients, architecture, dtype, Jacobian and NTK.

The gradient of every parameter array against float64 central differences
of the loss; the explicit Jacobian of a drawn ResNet against finite
differences, and its NTK for symmetry, positive semi-definiteness and
``Θ = J Jᵀ``.
"""
import numpy as np
import pytest
from hypothesis import given, settings

from minilplr import backend as B
from minilplr.nn import gradcheck, losses
from minilplr.nn import params as P
from minilplr.nn.batchnorm import BatchNorm2D
from minilplr.nn.state import named_buffers
from minilplr.nn.resnet import ImageModel, resnet
from minilplr.theory import ntk
from minilplr.train import optim

from ..helpers import drawn_resnet, resnet_images, scaled_examples
from ..strategies import assert_grads_close, gaussian, resnet_configs

# The parameters of a residual block and of the ResNet are checked by a plain relative error
# (gradcheck.assert_rel_error): the ratio's second difference would double the two slowest tests.
TOL_RESNET = 3e-5  # reached 1.2e-6 (a γ of a block of stage 1) per parameter array, 7.7e-7 for all of θ
TOL_JACOBIAN = 1e-8  # reached 3.8e-10: evaluation mode, no ReLU near a kink (frozen), smooth logits


# --------------------------------------------------------------------------- the ResNet


def _tiny(be, seed, blocks=1, c=2, k=3, size=8):
    """A fixed small ResNet (widths 2-3-4, ``c`` channels, ``k`` classes, ``size``² images), training mode."""
    return drawn_resnet(be, dict(in_channels=c, num_classes=k, widths=(2, 3, 4), blocks_per_stage=blocks,
                            image_size=size, n=4, train=True, seed=seed))


#: entries of each parameter array the ResNet checks difference (all of them for smaller arrays)
PICKS = 4


# 40 examples, not the profile's 100: the slowest test of the suite (two ResNet passes per differenced entry).
# Its power is per structural case: batch norm in training or evaluation mode × 1-3 stages (a projection
# shortcut at each stage boundary) × 1-2 blocks per stage, each drawn several times; a wrong rule or wiring is an
# O(1) error on every draw of its case.  (HYPOTHESIS_PROFILE=thorough: 100.)
@pytest.mark.textbook_only  # plain path; fast == plain: tests/nn/test_fast.py::test_resnet_fast_path_equals_plain
@settings(max_examples=scaled_examples(40))
@given(cfg=resnet_configs())
def test_resnet_gradient_of_every_parameter(be, cfg):
    """∇_θ L of softmax cross-entropy against central differences of the loss in the flat θ, for a
    ResNet of drawn stages, widths, blocks, channels, classes, image size and batch, with batch norm
    in training or evaluation mode.

    Every parameter array is checked, on up to ``PICKS`` of its entries drawn at random (all of
    them for smaller arrays): a wrong formula shows in any handful of them, and differencing all of
    θ (up to ~1500 entries, two forward passes each) would make each example seconds long.
    """
    seed = cfg["seed"]
    m = drawn_resnet(be, cfg)
    X = resnet_images(be, cfg, seed + 1)
    y = B.to_device(np.random.default_rng(seed).integers(0, cfg["num_classes"], cfg["n"]), be)
    _, d = losses.softmax_cross_entropy(m.forward(X), y)
    m.backward(d)
    assert list(m.grads) == list(m.params)
    g = B.to_host(P.flatten(m.grads))
    theta = P.flatten(m.params)

    def loss_at():
        P.load_flat(m, theta)
        return losses.softmax_cross_entropy(m.forward(X), y)[0]

    rng = np.random.default_rng(seed)
    picks = {k: np.sort(rng.permutation(np.arange(s.start, s.stop))[:PICKS])
             for k, s in P.param_slices(m.params).items()}
    idx = np.concatenate(list(picks.values()))
    num = gradcheck.numerical_gradient_at(loss_at, theta, idx, freeze=m)
    gradcheck.assert_rel_error(g[idx], num, TOL_RESNET, "resnet θ")
    at = np.cumsum([0] + [len(v) for v in picks.values()])
    assert_grads_close({k: g[v] for k, v in picks.items()},
                        {k: num[at[i]:at[i + 1]] for i, k in enumerate(picks)}, TOL_RESNET, "resnet")


def test_resnet_architecture_names_and_shapes(be):
    m = resnet(backend=be)  # defaults: 3×32×32 -> 5, widths 16-32-64, one block per stage
    assert isinstance(m, ImageModel) and m.input_shape == (3, 32, 32) and m.d_out == 5
    assert P.num_params(m.params) == 77717  # the number in resnet.py's docstring
    assert P.num_params(resnet(blocks_per_stage=2, backend=be).params) == 174933
    names = list(m.params)
    assert names[:3] == ["stem.conv.W", "stem.bn.gamma", "stem.bn.beta"]
    assert "stage2.block1.bn1.gamma" in names and "stage2.block1.shortcut.conv.W" in names
    assert "stage1.block1.shortcut.conv.W" not in names  # stage 1 keeps the shape: identity
    assert names[-2:] == ["head.W", "head.b"]
    shapes = {k: tuple(p.shape) for k, p in m.params.items()}
    assert shapes["stem.conv.W"] == (3, 3, 3, 16)
    assert shapes["stage3.block1.conv1.W"] == (3, 3, 32, 64)
    assert shapes["stage3.block1.shortcut.conv.W"] == (1, 1, 32, 64)
    assert shapes["head.W"] == (64, 5)
    x = B.to_device(gaussian(0, 2, 3, 32, 32), be)
    sizes = []
    h = m.check_input(x)
    for name, layer in m.layers.items():
        h = layer.forward(h)
        sizes.append((name, tuple(h.shape)))
    assert sizes == [("stem", (2, 16, 32, 32)), ("stage1", (2, 16, 32, 32)), ("stage2", (2, 32, 16, 16)),
                     ("stage3", (2, 64, 8, 8)), ("pool", (2, 64)), ("head", (2, 5))]
    assert list(m.buffers)[:2] == ["stem.bn.running_mean", "stem.bn.running_var"]
    assert len(m.buffers) == 2 * sum(k.endswith(".gamma") for k in names)


def test_resnet_float32_throughout(be):
    """A float32 model stays float32: logits, every gradient, the running statistics."""
    m = resnet(1, 3, (2, 3, 4), 1, 8, seed=0, backend=be)
    X = B.to_device(gaussian(0, 4, 1, 8, 8), be)  # float64 data is cast by the model
    out = m.forward(X)
    assert out.dtype == np.float32
    _, d = losses.softmax_cross_entropy(out, B.to_device(np.array([0, 1, 2, 0]), be))
    m.backward(d)
    assert {str(g.dtype) for g in m.grads.values()} == {"float32"}
    assert {str(b.dtype) for b in m.buffers.values()} == {"float32"}


def test_resnet_train_eval_switch_and_sgd(be):
    m = _tiny(be, 0)
    bns = [l for l in _all_layers(m) if isinstance(l, BatchNorm2D)]
    assert bns and all(b.training for b in bns)
    assert m.eval() is m and not any(b.training for b in bns)
    X = B.to_device(gaussian(1, 3, 2, 8, 8), be)
    alone = B.to_host(m.forward(X[:1]))
    assert np.allclose(alone, B.to_host(m.forward(X))[:1], rtol=1e-12)  # eval: per-sample
    m.train()
    assert all(b.training for b in bns)
    # one SGD step through the optimiser interface: same keys, in-place update θ ← θ − η g
    y = B.to_device(np.array([0, 1, 2]), be)
    loss0, d = losses.softmax_cross_entropy(m.forward(X), y)
    m.backward(d)
    before, g = P.flatten(m.params), P.flatten(m.grads)
    optim.SGD(1e-3).step(m.params, m.grads)
    assert gradcheck.rel_error(P.flatten(m.params), before - 1e-3 * g) < 1e-14
    loss1, _ = losses.softmax_cross_entropy(m.forward(X), y)
    assert float(loss1) < float(loss0)  # a small step down the gradient lowers the loss


def _all_layers(layer):
    yield layer
    for sub in getattr(layer, "layers", {}).values():
        yield from _all_layers(sub)


def test_named_buffers_are_the_layers_own(be):
    m = _tiny(be, 0)
    bufs = named_buffers(m)
    assert list(bufs) == list(m.buffers)
    bufs["stage2.block1.shortcut.bn.running_mean"][...] = 5.0
    bn = m.layers["stage2"].layers["block1"].layers["shortcut.bn"]
    assert float(bn.buffers["running_mean"][0]) == 5.0


def test_resnet_bad_input(be):
    m = resnet(3, 5, (2, 3, 4), 1, 8, backend=be)
    with pytest.raises(ValueError, match=r"X: expected images of shape \(N, 3, 8, 8\), got \(2, 1, 8, 8\)"):
        m.forward(B.to_device(np.ones((2, 1, 8, 8)), be))
    with pytest.raises(ValueError, match=r"X: expected images of shape \(N, 3, 8, 8\), got \(2, 192\)"):
        m.forward(B.to_device(np.ones((2, 192)), be))
    with pytest.raises(ValueError, match=r"X: expected images of shape \(N, 3, 8, 8\), got \(2, 3, 16, 16\)"):
        m.forward(B.to_device(np.ones((2, 3, 16, 16)), be))
    if be.name != "numpy":
        with pytest.raises(TypeError, match="X: expected an array on backend"):
            m.forward(np.ones((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="widths: expected a non-empty sequence of positive integers"):
        resnet(widths=(16, 0), backend=be)
    with pytest.raises(ValueError, match="blocks_per_stage: expected a positive integer"):
        resnet(blocks_per_stage=0, backend=be)
    with pytest.raises(ValueError, match="dtype: expected 'float32' or 'float64'"):
        resnet(dtype="float16", backend=be)


# --------------------------------------------------------------------------- Jacobian and NTK


# 25 examples (was 50): evaluation mode only, so fewer structural cases (1-3 stages × 1-2 blocks) than the
# gradient check above; a wrong Jacobian rule is an O(1) error on every draw.  (thorough: 62.)
@pytest.mark.textbook_only  # plain path; fast == plain: tests/nn/test_fast.py::test_resnet_fast_path_equals_plain
@settings(max_examples=scaled_examples(25))
@given(cfg=resnet_configs(train=False))
def test_resnet_jacobian_matches_finite_differences(be, cfg):
    """The explicit per-sample Jacobian ∂f(X)/∂θ (N·K, P) of a drawn ResNet in evaluation mode,
    against central differences of the logits, on ``PICKS`` columns of every parameter array."""
    m = drawn_resnet(be, cfg)
    X = resnet_images(be, cfg, cfg["seed"] + 1)
    J = ntk.jacobian(m, X, max_bytes=4096)  # small chunks: several samples per chunk, or one
    theta = P.flatten(m.params)
    assert J.shape == (cfg["n"] * cfg["num_classes"], theta.shape[0])

    def logits_at():
        P.load_flat(m, theta)
        return m.forward(X)

    rng = np.random.default_rng(cfg["seed"])
    idx = np.concatenate([np.sort(rng.permutation(np.arange(s.start, s.stop))[:PICKS])
                          for s in P.param_slices(m.params).values()])
    num = gradcheck.numerical_jvp_columns(logits_at, theta, freeze=m, idx=idx)
    gradcheck.assert_rel_error(J[:, B.to_device(idx, be)], num, TOL_JACOBIAN, "resnet J")


@pytest.mark.textbook_only  # plain path; fast == plain: tests/nn/test_fast.py::test_resnet_fast_path_equals_plain
@given(cfg=resnet_configs(train=False))
def test_resnet_ntk_is_symmetric_psd_and_equals_jjt(be, cfg):
    m = drawn_resnet(be, cfg)
    X = resnet_images(be, cfg, cfg["seed"] + 1)
    k, n = cfg["num_classes"], cfg["n"]
    th = ntk.empirical_ntk(m, X)  # structured sweep: conv / BN blocks from per-sample gradients
    J = ntk.jacobian(m, X)
    assert th.shape == (k * n, k * n)
    assert gradcheck.rel_error(th, J @ J.T) < 1e-12
    assert gradcheck.rel_error(th, ntk.empirical_ntk(m, X, method="jacobian")) < 1e-12
    assert gradcheck.rel_error(th, th.T) < 1e-14  # symmetric
    ev = np.linalg.eigvalsh(B.to_host(th))
    assert ev[0] >= -1e-10 * ev[-1]  # positive semi-definite up to rounding


def test_resnet_jacobian_refuses_training_mode_batch_norm(be):
    m = _tiny(be, 0)
    X = B.to_device(gaussian(1, 3, 2, 8, 8), be)
    with pytest.raises(ValueError, match="need batch norm in evaluation mode"):
        ntk.jacobian(m, X)
    with pytest.raises(ValueError, match="need batch norm in evaluation mode"):
        ntk.empirical_ntk(m, X)


def test_per_sample_gradients_sum_to_backward(be):
    """Σ_n of the per-sample gradients is what backward writes into grads (same seed)."""
    m = _tiny(be, 3, blocks=2).eval()
    X = B.to_device(gaussian(4, 3, 2, 8, 8), be)
    out = m.forward(X)
    seed = B.to_device(gaussian(5, *out.shape), be)
    _, psg = m.per_sample_backward(seed)
    m.backward(seed)
    assert list(psg) == list(m.params)
    for k, g in m.grads.items():
        assert psg[k].shape == (3,) + tuple(g.shape)
        assert gradcheck.rel_error(psg[k].sum(axis=0), g) < 1e-12, k
