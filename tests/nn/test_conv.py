"""Convolution (:mod:`minilplr.nn.conv`): im2col, col2im and Conv2D.

The forward pass against a direct loop over every index, ``im2col`` against
its definition, ``col2im`` as its adjoint, and the backward pass against
float64 central differences (:mod:`minilplr.nn.gradcheck`) over
Hypothesis-drawn channels, kernel sizes, strides, paddings and image sizes.
"""
import math

import numpy as np
import pytest
from hypothesis import given

from minilplr import backend as B
from minilplr.nn import gradcheck
from minilplr.nn.conv import Conv2D, _im2col_matmul, col2im, im2col

from ..strategies import conv_configs, gaussian, inner

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
    f = lambda: inner(layer.forward(x), w)  # noqa: E731
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
def test_im2col_matches_its_definition(dev, cfg):
    """X_col[(n,i,j),(a,b,c)] = x̃[n, c, s i + a, s j + b] for the drawn image, then a different image size,
    then the first size again, without and with a workspace kept between the calls (the reused arrays of
    ``_scratch`` must carry nothing from one call to the next: not the old image, not a dirty border)."""
    k, s, p = cfg["k"], cfg["stride"], cfg["pad"]
    sizes = [(cfg["h"], cfg["w"]), (cfg["h"] + 1, cfg["w"] + 2), (cfg["h"], cfg["w"])]
    workspace = {}
    for i, ((h, w), ws) in enumerate([(hw, ws) for ws in (None, workspace) for hw in sizes]):
        xh = gaussian(cfg["seed"] + i, cfg["n"], cfg["c_in"], h, w)
        got, (ho, wo) = im2col(dev(xh), k, s, p, ws)
        # the definition X_col[(n,i,j),(a,b,c)] = x̃[n, c, s i + a, s j + b], on the host
        xt = np.pad(xh, ((0, 0), (0, 0), (p, p), (p, p))).transpose(0, 2, 3, 1)
        want = np.stack([xt[:, a:a + s * ho:s, b:b + s * wo:s, :][:, :ho, :wo]
                         for a in range(k) for b in range(k)], axis=3)
        assert np.array_equal(B.to_host(got), want.reshape(cfg["n"] * ho * wo, -1))


@given(cfg=conv_configs(max_n=5))
def test_im2col_matmul_equals_the_plain_product(dev, cfg):
    """The speed trick ``_im2col_matmul`` (X_col written and multiplied a few samples at a time) returns
    exactly ``cols = im2col(x)`` (or, with ``keep=False``, nothing) and ``cols @ Wcol`` for block sizes that cut the batch evenly, unevenly
    (a short last block), into single samples, and not at all (every row of every block lands once)."""
    k, s, p = cfg["k"], cfg["stride"], cfg["pad"]
    x = dev(gaussian(cfg["seed"], cfg["n"], cfg["c_in"], cfg["h"], cfg["w"]))
    Wcol = dev(gaussian(cfg["seed"] + 1, k * k * cfg["c_in"], cfg["c_out"]))
    cols_ref, out_hw = im2col(x, k, s, p)
    z_ref = B.to_host(cols_ref @ Wcol)
    m = out_hw[0] * out_hw[1]  # rows of X_col per sample
    workspace = {}
    for rows in (1, m, 2 * m, 2 * m + 1, 3 * m - 1, cfg["n"] * m + 7):
        for ws, keep in ((None, True), (workspace, True), (None, False), (workspace, False)):
            cols, z, hw = _im2col_matmul(x, k, s, p, Wcol, ws, keep=keep, block_rows=rows)
            assert hw == out_hw
            if keep:
                assert np.array_equal(B.to_host(cols), B.to_host(cols_ref))
            else:
                assert cols is None
            # a block's product is the same dot products as the whole one's rows: equal to rounding (reached 4e-16)
            assert np.allclose(B.to_host(z), z_ref, rtol=1e-13, atol=1e-13 * np.abs(z_ref).max())


@given(cfg=conv_configs(max_n=5))
def test_input_grad_equals_the_plain_expression(dev, cfg):
    """``Conv2D._input_grad`` (stride 1: a convolution of δ with the flipped kernel; else one scatter per
    kernel offset) equals the plain ``col2im(δ Wk_colᵀ)``, for the drawn configuration and for the same
    one with stride 1, so both branches are checked on every draw."""
    for stride in sorted({cfg["stride"], 1}):
        layer = _conv(dev, dict(cfg, stride=stride))
        x = dev(gaussian(cfg["seed"] + 2, cfg["n"], cfg["c_in"], cfg["h"], cfg["w"]))
        out = layer.forward(x)
        delta = dev(gaussian(cfg["seed"] + 3, *out.shape)).transpose(0, 2, 3, 1).reshape(-1, cfg["c_out"])
        Wk_col = layer.params["W"].reshape(-1, cfg["c_out"])
        want = B.to_host(col2im(delta @ Wk_col.T, x.shape, cfg["k"], stride, cfg["pad"]))
        got = B.to_host(layer._input_grad(delta, out.shape))
        assert got.shape == want.shape
        # the same products summed in another order: equal to float64 rounding (reached 6e-16 relative)
        assert np.allclose(got, want, rtol=1e-13, atol=1e-13 * np.abs(want).max())


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
    with pytest.raises(ValueError, match=r"weight: expected a \(k, k, C_in, C_out\) kernel"):
        Conv2D(dev(np.ones((3, 2, 2, 4))))
    with pytest.raises(ValueError, match=r"b: expected shape \(4,\)"):
        Conv2D(dev(np.ones((3, 3, 2, 4))), dev(np.ones(3)))
    with pytest.raises(ValueError, match="stride: expected a positive integer"):
        Conv2D(dev(np.ones((3, 3, 2, 4))), stride=0)
    with pytest.raises(ValueError, match="padding: expected a non-negative integer"):
        Conv2D(dev(np.ones((3, 3, 2, 4))), padding=1.5)
