"""Residual blocks, global average pooling and flatten (:mod:`minilplr.nn.residual`).

Every backward pass against float64 central differences
(:mod:`minilplr.nn.gradcheck`): pooling and flattening over drawn image
shapes, the two-branch residual block over drawn channels, kernel sizes,
strides, image sizes and batches, with an identity or a projection shortcut
and batch norm in either mode.
"""
import pytest
from hypothesis import given, settings

from minilplr.nn import gradcheck
from minilplr.nn.conv import Conv2D
from minilplr.nn.residual import Flatten, GlobalAvgPool, ResidualBlock

from ..helpers import scaled_examples
from ..strategies import assert_grads_close, batchnorm_layer, bn_configs, gaussian, inner, residual_block_configs

# Tolerances of the gradient checks, each set 10-30x above the largest error the check reached over
# 300 Hypothesis examples.  Layer checks bound the error *ratio* ρ of gradcheck.check_gradient (why a
# ratio and not a relative error: the note in tests/nn/test_conv.py).
TOL_POOL = 10  # ρ reached 0.34 (GlobalAvgPool), 0.41 (Flatten)
TOL_BLOCK_DX = 10  # ρ reached 0.57
# The parameters of a residual block and of the ResNet are checked by a plain relative error
# (gradcheck.assert_rel_error): the ratio's second difference would double the two slowest tests.
TOL_BLOCK = 3e-6  # relative error reached 1.0e-7 (conv2.W); a bug of the composition is O(1)


# --------------------------------------------------------------------------- pooling, flatten


@pytest.mark.kernel_free
@given(cfg=bn_configs())
def test_pool_and_flatten_match_finite_differences(dev, cfg):
    n, c, h, w, seed = cfg["n"], cfg["c"], cfg["h"], cfg["w"], cfg["seed"]
    x = dev(gaussian(seed, n, c, h, w))
    for layer, out_shape in ((GlobalAvgPool(), (n, c)), (Flatten(), (n, c * h * w))):
        out = layer.forward(x)
        assert out.shape == out_shape
        w_ = dev(gaussian(seed + 1, *out_shape))
        dx = layer.backward(w_)
        f = lambda: inner(layer.forward(x), w_)  # noqa: B023, E731
        gradcheck.check_gradient(dx, f, x, TOL_POOL, f"{type(layer).__name__} dx")


# --------------------------------------------------------------------------- residual block


def _block(dev, c_in, c_out, stride, seed, projection, k1=3, k2=3, k_short=1):
    """A residual block with He-initialised "same" convolutions (padding (k − 1)/2) and random γ, β."""
    def conv(ci, co, k, s, sd):
        return Conv2D(dev(gaussian(sd, k, k, ci, co, scale=(2 / (k * k * ci)) ** 0.5)), None, stride=s,
                      padding=(k - 1) // 2)
    short = ((conv(c_in, c_out, k_short, stride, seed + 5), batchnorm_layer(dev, c_out, seed + 6))
             if projection else None)
    return ResidualBlock(conv(c_in, c_out, k1, stride, seed), batchnorm_layer(dev, c_out, seed + 1),
                         conv(c_out, c_out, k2, 1, seed + 2), batchnorm_layer(dev, c_out, seed + 3), short)


# 40 examples, not the profile's 100: the check differences every entry of x and θ (up to ~2 000 entries, two
# or four block passes each), the slowest test of the suite.  Its power is per structural case, not per draw:
# identity or projection shortcut × batch norm in training or evaluation mode, each drawn ~10 times with
# strides 1-3 and kernels 1, 3, 5; a wrong composition (a sign, a missing branch, a mode's rule) is an O(1)
# error on every draw of its case.  (HYPOTHESIS_PROFILE=thorough: 100.)
@pytest.mark.textbook_only  # plain path; fast == plain: tests/nn/test_fast.py::test_resnet_fast_path_equals_plain
@settings(max_examples=scaled_examples(40))
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
    f = lambda: inner(blk.forward(x), w)  # noqa: E731
    # freeze=blk: difference on the linear piece at x (a pre-activation can sit within h of a kink)
    gradcheck.check_gradient(dx, f, x, TOL_BLOCK_DX, "block dx", freeze=blk)
    grads = blk.grads
    names = ["conv1.W", "bn1.gamma", "bn1.beta", "conv2.W", "bn2.gamma", "bn2.beta"]
    if c["projection"]:
        names += ["shortcut.conv.W", "shortcut.bn.gamma", "shortcut.bn.beta"]
    assert list(blk.params) == names
    assert_grads_close(grads, {k: gradcheck.numerical_gradient(f, p, freeze=blk) for k, p in blk.params.items()},
                        TOL_BLOCK, "block")


@pytest.mark.kernel_free
def test_residual_block_bad_shortcut(dev):
    with pytest.raises(ValueError, match="shortcut: an identity shortcut needs stride 1 and C_in = C_out"):
        _block(dev, 2, 3, 1, 0, projection=False)
    with pytest.raises(ValueError, match="shortcut: an identity shortcut needs stride 1"):
        _block(dev, 2, 2, 2, 0, projection=False)
