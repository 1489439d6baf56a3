"""Convolution, batch norm, pooling, residual blocks and the small ResNet.

Every backward pass is checked against float64 central differences
(:mod:`minilplr.nn.gradcheck`) over Hypothesis-drawn channels, kernel sizes,
strides, paddings and image sizes; the convolution's forward pass against a
direct loop over every index; the explicit Jacobian of the ResNet against
finite differences and its NTK for symmetry and positive semi-definiteness.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minilplr import backend as B
from minilplr.nn import gradcheck, losses
from minilplr.theory import ntk
from minilplr.train import optim
from minilplr.nn import params as P
from minilplr.nn.conv import (BatchNorm2D, Conv2D, Flatten, GlobalAvgPool, ResidualBlock, col2im, im2col,
                           named_buffers)
from minilplr.nn.resnet import ImageModel, resnet

from .strategies import bn_configs, conv_configs, gaussian, residual_block_configs, resnet_configs, seeds

# Tolerances of the gradient checks, one per check, each set 10-30x above the largest error the
# check reached over 300 Hypothesis examples (gradcheck.achieved; the worst of two runs with
# different seeds for the ratios, of three for the relative errors):
# loose enough for float64 rounding, tight enough that a wrong formula of the checked layer fails.
#
# Layer checks (gradcheck.check_gradient) bound the error *ratio* ρ: how many times the central
# difference's own error (truncation + rounding, see gradcheck.error_ratio) the backward pass is off.
# A plain relative error cannot separate a small bug from an ill-conditioned draw: its largest value
# over 300 examples moved between 3e-9 and 1.3e-6 from run to run for the convolution's dx (a
# near-zero weight makes dx tiny next to the loss), while batch norm with its ε dropped from the
# backward scale is off by only ~1e-6 relative (the old TOL = 1e-6 let it through two draws in
# three).  In ρ that bug is ~1e4 and a correct gradient never above 3.2.
TOL_CONV = 30  # ρ reached 0.53 (dx), 2.4 (W), 1.5 (b)
TOL_BN = 30  # ρ reached 0.67 / 0.47 (dx train / eval), 1.6 / 3.1 (γ), 1.9 / 1.7 (β)
TOL_POOL = 10  # ρ reached 0.34 (GlobalAvgPool), 0.41 (Flatten)
TOL_BLOCK_DX = 10  # ρ reached 0.57
# The parameters of a residual block and of the ResNet are checked by a plain relative error
# (gradcheck.assert_rel_error): the ratio's second difference would double the two slowest tests.
TOL_BLOCK = 3e-6  # relative error reached 1.0e-7 (conv2.W); a bug of the composition is O(1)
TOL_RESNET = 3e-5  # reached 1.2e-6 (a γ of a block of stage 1) per parameter array, 7.7e-7 for all of θ
TOL_JACOBIAN = 1e-8  # reached 3.8e-10: evaluation mode, no ReLU near a kink (frozen), smooth logits


def _loss_of(out, w):
    """A scalar test loss ⟨out, w⟩ whose gradient w.r.t. out is w."""
    return (out * w).sum()


def _conv(dev, cfg):
    c = cfg
    W = dev(gaussian(c["seed"], c["k"], c["k"], c["c_in"], c["c_out"]))
    b = dev(gaussian(c["seed"] + 1, c["c_out"])) if c["bias"] else None
    return Conv2D(W, b, stride=c["stride"], padding=c["pad"])


def _conv_by_loops(x, W, b, stride, pad):
    """The definition, one output entry at a time (host NumPy, float64):
    z[n, o, i, j] = b[o] + Σ_{c, a, b'} W[a, b', c, o] · x̃[n, c, s·i + a, s·j + b']."""
    n, c_in, h, w = x.shape
    k, _, _, c_out = W.shape
    xp_ = np.zeros((n, c_in, h + 2 * pad, w + 2 * pad))
    xp_[:, :, pad:pad + h, pad:pad + w] = x
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    z = np.zeros((n, c_out, ho, wo))
    for s in range(n):
        for o in range(c_out):
            for i in range(ho):
                for j in range(wo):
                    acc = 0.0 if b is None else b[o]
                    for c in range(c_in):
                        for a in range(k):
                            for bb in range(k):
                                acc += W[a, bb, c, o] * xp_[s, c, stride * i + a, stride * j + bb]
                    z[s, o, i, j] = acc
    return z


def _assert_grads_close(grads, nums, tol, what):
    """Each parameter's gradient against its central differences, relative error < ``tol``.

    The relative error of a parameter whose gradient is tiny next to the
    others' is taken against 1 % of the whole gradient's norm instead of its
    own: batch norm in training mode makes the weights before it
    scale-invariant, and a convolution with a single weight (``1×1``, one
    channel in and out) then has a gradient of order ``ε`` (batch norm's
    epsilon), below the resolution of a central difference.
    """
    total = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
    for k in grads:
        assert grads[k].shape == nums[k].shape, k
        gradcheck.assert_rel_error(grads[k], nums[k], tol, f"{what} {k}", floor=max(1e-2 * total, 1e-8))


# --------------------------------------------------------------------------- convolution


@given(cfg=conv_configs())
def test_conv_forward_matches_direct_loops(dev, cfg):
    layer = _conv(dev, cfg)
    xh = gaussian(cfg["seed"] + 2, cfg["n"], cfg["c_in"], cfg["h"], cfg["w"])
    z = B.to_host(layer.forward(dev(xh)))
    ref = _conv_by_loops(xh, B.to_host(layer.params["W"]),
                         B.to_host(layer.params["b"]) if cfg["bias"] else None, cfg["stride"], cfg["pad"])
    assert z.shape == ref.shape
    assert np.allclose(z, ref, rtol=1e-12, atol=1e-12)


@given(cfg=conv_configs())
def test_conv_backward_matches_finite_differences(dev, cfg):
    """Input, weight and bias gradients of a convolution with drawn channels, k, stride, padding, size."""
    layer = _conv(dev, cfg)
    x = dev(gaussian(cfg["seed"] + 2, cfg["n"], cfg["c_in"], cfg["h"], cfg["w"]))
    out = layer.forward(x)
    w = dev(gaussian(cfg["seed"] + 3, *out.shape))  # upstream gradient ∂L/∂out
    dx = layer.backward(w)
    assert dx.shape == x.shape
    f = lambda: _loss_of(layer.forward(x), w)  # noqa: E731
    gradcheck.check_gradient(dx, f, x, TOL_CONV, "conv dx")
    assert list(layer.params) == (["W", "b"] if cfg["bias"] else ["W"])
    for k in layer.params:
        gradcheck.check_gradient(layer.grads[k], f, layer.params[k], TOL_CONV, f"conv {k}")


@given(cfg=conv_configs())
def test_col2im_is_the_adjoint_of_im2col(dev, cfg):
    """⟨im2col(x), Y⟩ = ⟨x, col2im(Y)⟩: col2im is the transpose of the linear map im2col."""
    x = dev(gaussian(cfg["seed"], cfg["n"], cfg["c_in"], cfg["h"], cfg["w"]))
    cols, _ = im2col(x, cfg["k"], cfg["stride"], cfg["pad"])
    Y = dev(gaussian(cfg["seed"] + 1, *cols.shape))
    back = col2im(Y, tuple(x.shape), cfg["k"], cfg["stride"], cfg["pad"])
    lhs, rhs = float((cols * Y).sum()), float((x * back).sum())
    assert math.isclose(lhs, rhs, rel_tol=1e-10, abs_tol=1e-10)


@given(cfg=conv_configs())
def test_im2col_workspace_gives_the_same_patches(dev, cfg):
    """im2col writing into a reused workspace (Conv2D's speed path) equals the plain im2col, call after
    call: new values, a different image size in between (the workspace is replaced), then the first
    size again (the padded image's zero border must still be zero)."""
    k, s, p = cfg["k"], cfg["stride"], cfg["pad"]
    ws = {}
    sizes = [(cfg["h"], cfg["w"]), (cfg["h"] + 1, cfg["w"] + 2), (cfg["h"], cfg["w"])]
    for i, (h, w) in enumerate(sizes):
        xh = gaussian(cfg["seed"] + i, cfg["n"], cfg["c_in"], h, w)
        got, (ho, wo) = im2col(dev(xh), k, s, p, ws)
        # the definition X_col[(n,i,j),(a,b,c)] = x̃[n, c, s i + a, s j + b], on the host
        xt = np.pad(xh, ((0, 0), (0, 0), (p, p), (p, p))).transpose(0, 2, 3, 1)
        want = np.stack([xt[:, a:a + s * ho:s, b:b + s * wo:s, :][:, :ho, :wo]
                         for a in range(k) for b in range(k)], axis=3)
        assert np.array_equal(B.to_host(got), want.reshape(cfg["n"] * ho * wo, -1))
        assert np.array_equal(B.to_host(got), B.to_host(im2col(dev(xh), k, s, p)[0]))


@given(m=st.integers(1, 300), c=st.integers(1, 5), seed=seeds, transposed=st.booleans(),
       op=st.sampled_from(["add", "subtract", "multiply"]))
def test_per_channel_equals_the_plain_broadcast(dev, m, c, seed, transposed, op):
    """Batch norm's fast per-channel op (rows seen as a wide matrix, the vector tiled) gives exactly
    the broadcast op(r, v), for any number of rows, contiguous or not, with and without out=."""
    from minilplr.nn.conv import _per_channel
    rh = gaussian(seed, c, m).T if transposed else gaussian(seed, m, c)
    vh = gaussian(seed + 1, c)
    want = getattr(np, op)(rh, vh)
    r, v = dev(rh), dev(vh)
    xp = B.get_array_module(r)
    assert np.array_equal(B.to_host(_per_channel(getattr(xp, op), r, v)), want)
    out = dev(np.zeros((m, c)))
    res = _per_channel(getattr(xp, op), r, v, out=out)
    assert np.array_equal(B.to_host(out), want) and np.array_equal(B.to_host(res), want)


def test_conv_accepts_any_memory_layout(dev):
    """An (N, C, H, W) input stored channels-first or channels-last gives the same output."""
    xh = gaussian(0, 2, 3, 5, 5)
    layer = Conv2D(dev(gaussian(1, 3, 3, 3, 4)), dev(gaussian(2, 4)), stride=2, padding=1)
    a = layer.forward(dev(xh))
    b = layer.forward(dev(np.ascontiguousarray(xh.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2))
    assert np.array_equal(B.to_host(a), B.to_host(b))


def test_conv_bad_input(dev):
    layer = Conv2D(dev(np.ones((3, 3, 2, 4))), padding=1)
    with pytest.raises(ValueError, match=r"x: expected 2 channels, shape \(N, 2, H, W\), got \(1, 3, 5, 5\)"):
        layer.forward(dev(np.ones((1, 3, 5, 5))))
    with pytest.raises(ValueError, match=r"x: expected a 4-D \(N, 2, H, W\) image array, got shape \(2, 5, 5\)"):
        layer.forward(dev(np.ones((2, 5, 5))))
    with pytest.raises(ValueError, match="smaller than the 3×3 kernel"):
        Conv2D(dev(np.ones((3, 3, 2, 4)))).forward(dev(np.ones((1, 2, 2, 5))))
    with pytest.raises(ValueError, match=r"W: expected a \(k, k, C_in, C_out\) kernel"):
        Conv2D(dev(np.ones((3, 2, 2, 4))))
    with pytest.raises(ValueError, match=r"b: expected shape \(4,\)"):
        Conv2D(dev(np.ones((3, 3, 2, 4))), dev(np.ones(3)))
    with pytest.raises(ValueError, match="stride: expected an integer >= 1"):
        Conv2D(dev(np.ones((3, 3, 2, 4))), stride=0)
    with pytest.raises(ValueError, match="padding: expected an integer >= 0"):
        Conv2D(dev(np.ones((3, 3, 2, 4))), padding=1.5)


# --------------------------------------------------------------------------- batch norm


def _bn(dev, c, seed, eps=1e-5):
    return BatchNorm2D(dev(1.0 + 0.5 * gaussian(seed, c)), dev(gaussian(seed + 1, c)), eps=eps)


@given(cfg=bn_configs(train=True))
def test_batchnorm_training_mode_matches_finite_differences(dev, cfg):
    """Training mode: the batch statistics couple all samples, so the check perturbs every input
    of the batch and differentiates the full batch loss (N·H·W >= 3 values per channel: with two,
    x̂ = ±σ/√(σ² + ε) ≈ ±1 whatever x is, and ∂L/∂x is O(ε), below what differences resolve)."""
    bn = _bn(dev, cfg["c"], cfg["seed"], cfg["eps"])
    x = dev(gaussian(cfg["seed"] + 2, cfg["n"], cfg["c"], cfg["h"], cfg["w"], scale=2.0) + 1.0)
    _check_bn_gradients(dev, bn, x, cfg["seed"], "bn train")


def _check_bn_gradients(dev, bn, x, seed, what):
    """dx, dγ, dβ of ⟨bn(x), w⟩ against central differences (in the layer's current mode)."""
    out = bn.forward(x)
    w_ = dev(gaussian(seed + 3, *out.shape))
    dx = bn.backward(w_)
    f = lambda: _loss_of(bn.forward(x), w_)  # noqa: E731
    gradcheck.check_gradient(dx, f, x, TOL_BN, f"{what} dx")
    for k in ("gamma", "beta"):
        gradcheck.check_gradient(bn.grads[k], f, bn.params[k], TOL_BN, f"{what} {k}")


@given(cfg=bn_configs(train=False))
def test_batchnorm_eval_mode_matches_finite_differences(dev, cfg):
    c, seed = cfg["c"], cfg["seed"]
    bn = _bn(dev, c, seed, cfg["eps"])
    bn.buffers["running_mean"][...] = dev(gaussian(seed + 4, c))
    bn.buffers["running_var"][...] = dev(np.exp(gaussian(seed + 5, c)))
    bn.eval()
    x = dev(gaussian(seed + 2, cfg["n"], c, cfg["h"], cfg["w"]))
    _check_bn_gradients(dev, bn, x, seed, "bn eval")


@given(n=st.integers(2, 4), c=st.integers(1, 3), hw=st.integers(1, 3), seed=seeds)
def test_batchnorm_statistics_and_running_update(dev, n, c, hw, seed):
    """Training mode normalises each channel to mean β, std γ (up to ε) and moves the running
    statistics by the momentum rule; evaluation mode is then the affine map they define."""
    bn = BatchNorm2D(dev(1.0 + gaussian(seed, c) ** 2), dev(gaussian(seed + 1, c)), momentum=0.25)
    xh = gaussian(seed + 2, n, c, hw, hw, scale=3.0) + 2.0
    y = B.to_host(bn.forward(dev(xh)))
    g, b = B.to_host(bn.params["gamma"]), B.to_host(bn.params["beta"])
    mu, var = xh.mean(axis=(0, 2, 3)), xh.var(axis=(0, 2, 3))
    assert np.allclose(y.mean(axis=(0, 2, 3)), b, atol=1e-10)
    assert np.allclose(y.std(axis=(0, 2, 3)), g * np.sqrt(var / (var + bn.eps)), rtol=1e-10)
    m = n * hw * hw
    rm, rv = 0.25 * mu, 0.75 * 1.0 + 0.25 * var * m / (m - 1)  # from (0, 1), unbiased variance
    assert np.allclose(B.to_host(bn.buffers["running_mean"]), rm, rtol=1e-12)
    assert np.allclose(B.to_host(bn.buffers["running_var"]), rv, rtol=1e-12)
    bn.eval()
    ye = B.to_host(bn.forward(dev(xh)))
    ref = g[None, :, None, None] * (xh - rm[None, :, None, None]) / np.sqrt(rv + bn.eps)[None, :, None, None]
    assert np.allclose(ye, ref + b[None, :, None, None], rtol=1e-12, atol=1e-12)


def test_batchnorm_eval_mode_treats_samples_independently(dev):
    bn = _bn(dev, 3, 0)
    X = gaussian(1, 4, 3, 2, 2)
    bn.eval()
    alone = B.to_host(bn.forward(dev(X[:1])))
    together = B.to_host(bn.forward(dev(X)))[:1]
    assert np.allclose(alone, together, rtol=1e-14)
    bn.train()
    assert not np.allclose(B.to_host(bn.forward(dev(X)))[:1], B.to_host(bn.forward(dev(X[:2])))[:1])


def test_batchnorm_bad_input(dev):
    bn = _bn(dev, 3, 0)
    with pytest.raises(ValueError, match=r"x: expected 3 channels"):
        bn.forward(dev(np.ones((2, 2, 4, 4))))
    with pytest.raises(ValueError, match=r"x: expected a 4-D"):
        bn.forward(dev(np.ones((2, 3))))
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn.forward(dev(np.ones((1, 3, 1, 1))))
    bn.eval().forward(dev(np.ones((1, 3, 1, 1))))  # evaluation mode: fine
    with pytest.raises(ValueError, match=r"beta: expected shape \(3,\)"):
        BatchNorm2D(dev(np.ones(3)), dev(np.zeros(2)))
    with pytest.raises(ValueError, match=r"momentum: expected a number in \(0, 1\]"):
        BatchNorm2D(dev(np.ones(3)), dev(np.zeros(3)), momentum=0.0)


# --------------------------------------------------------------------------- pooling, flatten


@given(cfg=bn_configs())
def test_pool_and_flatten_match_finite_differences(dev, cfg):
    n, c, h, w, seed = cfg["n"], cfg["c"], cfg["h"], cfg["w"], cfg["seed"]
    x = dev(gaussian(seed, n, c, h, w))
    for layer, out_shape in ((GlobalAvgPool(), (n, c)), (Flatten(), (n, c * h * w))):
        out = layer.forward(x)
        assert out.shape == out_shape
        w_ = dev(gaussian(seed + 1, *out_shape))
        dx = layer.backward(w_)
        f = lambda: _loss_of(layer.forward(x), w_)  # noqa: B023, E731
        gradcheck.check_gradient(dx, f, x, TOL_POOL, f"{type(layer).__name__} dx")


# --------------------------------------------------------------------------- residual block


def _block(dev, c_in, c_out, stride, seed, projection, k1=3, k2=3, k_short=1):
    """A residual block with He-initialised "same" convolutions (padding (k − 1)/2) and random γ, β."""
    def conv(ci, co, k, s, sd):
        return Conv2D(dev(gaussian(sd, k, k, ci, co, scale=(2 / (k * k * ci)) ** 0.5)), None, stride=s,
                      padding=(k - 1) // 2)
    short = (conv(c_in, c_out, k_short, stride, seed + 5), _bn(dev, c_out, seed + 6)) if projection else None
    return ResidualBlock(conv(c_in, c_out, k1, stride, seed), _bn(dev, c_out, seed + 1),
                         conv(c_out, c_out, k2, 1, seed + 2), _bn(dev, c_out, seed + 3), short)


@given(cfg=residual_block_configs())
def test_residual_block_matches_finite_differences(dev, cfg):
    """dx and every parameter's gradient of a block with drawn channels, kernel sizes, stride, image
    size and batch, identity or projection shortcut, batch norm in training or evaluation mode."""
    c, seed = cfg, cfg["seed"]
    blk = _block(dev, c["c_in"], c["c_out"], c["stride"], seed, c["projection"], c["k1"], c["k2"],
                 c["k_short"] or 1)
    assert blk.projection == c["projection"]
    blk.train(c["train"])
    x = dev(gaussian(seed + 7, c["n"], c["c_in"], c["h"], c["w"]))
    out = blk.forward(x)
    assert out.shape == (c["n"], c["c_out"], (c["h"] - 1) // c["stride"] + 1, (c["w"] - 1) // c["stride"] + 1)
    w = dev(gaussian(seed + 8, *out.shape))
    dx = blk.backward(w)
    f = lambda: _loss_of(blk.forward(x), w)  # noqa: E731
    # freeze=blk: difference on the linear piece at x (a pre-activation can sit within h of a kink)
    gradcheck.check_gradient(dx, f, x, TOL_BLOCK_DX, "block dx", freeze=blk)
    grads = blk.grads
    names = ["conv1.W", "bn1.gamma", "bn1.beta", "conv2.W", "bn2.gamma", "bn2.beta"]
    if c["projection"]:
        names += ["shortcut.conv.W", "shortcut.bn.gamma", "shortcut.bn.beta"]
    assert list(blk.params) == names
    _assert_grads_close(grads, {k: gradcheck.numerical_gradient(f, p, freeze=blk) for k, p in blk.params.items()},
                        TOL_BLOCK, "block")


def test_residual_block_bad_shortcut(dev):
    with pytest.raises(ValueError, match="shortcut: an identity shortcut needs stride 1 and C_in = C_out"):
        _block(dev, 2, 3, 1, 0, projection=False)
    with pytest.raises(ValueError, match="shortcut: an identity shortcut needs stride 1"):
        _block(dev, 2, 2, 2, 0, projection=False)


# --------------------------------------------------------------------------- the ResNet


def _resnet(be, cfg, dtype="float64"):
    """The ResNet of a :func:`~tests.strategies.resnet_configs` draw, with β ≠ 0, γ ≠ 1 and a head bias
    ≠ 0 (every parameter matters), in the drawn mode; in evaluation mode after two training-mode
    passes have moved the running statistics away from (0, 1)."""
    seed = cfg["seed"]
    m = resnet(cfg["in_channels"], cfg["num_classes"], cfg["widths"], cfg["blocks_per_stage"], cfg["image_size"],
               seed=seed, dtype=dtype, backend=be)
    for name, p in m.params.items():
        if name.endswith((".beta", ".b")):
            p[...] = B.to_device(gaussian(seed + 7, *p.shape, scale=0.3), be)
        if name.endswith(".gamma"):
            p[...] = B.to_device(1.0 + 0.3 * gaussian(seed + 8, *p.shape), be)
    if not cfg["train"]:
        for i in range(2):
            m.forward(_images(be, cfg, seed + 2 + i, n=4))
        m.eval()
    return m


def _images(be, cfg, seed, n=None, dtype=np.float64):
    """Gaussian images ``(N, C, H, H)`` for the ResNet of ``cfg``."""
    s = cfg["image_size"]
    return B.to_device(gaussian(seed, cfg["n"] if n is None else n, cfg["in_channels"], s, s), be, dtype)


def _tiny(be, seed, blocks=1, c=2, k=3, size=8):
    """A fixed small ResNet (widths 2-3-4, ``c`` channels, ``k`` classes, ``size``² images), training mode."""
    return _resnet(be, dict(in_channels=c, num_classes=k, widths=(2, 3, 4), blocks_per_stage=blocks,
                            image_size=size, n=4, train=True, seed=seed))


#: entries of each parameter array the ResNet checks difference (all of them for smaller arrays)
PICKS = 4


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
    m = _resnet(be, cfg)
    X = _images(be, cfg, seed + 1)
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
    _assert_grads_close({k: g[v] for k, v in picks.items()},
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


@settings(max_examples=50)
@given(cfg=resnet_configs(train=False))
def test_resnet_jacobian_matches_finite_differences(be, cfg):
    """The explicit per-sample Jacobian ∂f(X)/∂θ (N·K, P) of a drawn ResNet in evaluation mode,
    against central differences of the logits, on ``PICKS`` columns of every parameter array."""
    m = _resnet(be, cfg)
    X = _images(be, cfg, cfg["seed"] + 1)
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


@given(cfg=resnet_configs(train=False))
def test_resnet_ntk_is_symmetric_psd_and_equals_jjt(be, cfg):
    m = _resnet(be, cfg)
    X = _images(be, cfg, cfg["seed"] + 1)
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
