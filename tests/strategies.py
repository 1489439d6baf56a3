"""Hypothesis strategies shared by every property test.

Data are drawn from seeded Gaussian generators rather than from Hypothesis
float arrays: gradient checks need inputs in general position (a ReLU
pre-activation exactly at 0 is a kink where no derivative exists), and
seeds shrink well.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from minilplr.nn.conv import conv_output_size

seeds = st.integers(min_value=0, max_value=2**31 - 1)
batch_sizes = st.integers(min_value=1, max_value=6)
features = st.integers(min_value=1, max_value=6)
widths = st.integers(min_value=1, max_value=8)
depths = st.integers(min_value=1, max_value=4)
outputs = st.integers(min_value=1, max_value=3)


@st.composite
def mlp_configs(draw, max_depth=4, max_width=8, max_n=6, max_d=6, max_k=3):
    """A dict ``d_in, width, depth, d_out, n, seed`` for a small MLP and batch."""
    return dict(
        d_in=draw(st.integers(1, max_d)),
        width=draw(st.integers(1, max_width)),
        depth=draw(st.integers(1, max_depth)),
        d_out=draw(st.integers(1, max_k)),
        n=draw(st.integers(1, max_n)),
        seed=draw(seeds),
    )


def gaussian(seed: int, *shape, scale: float = 1.0) -> np.ndarray:
    """Host float64 Gaussian data of ``shape`` from ``seed``."""
    return np.random.default_rng(seed).standard_normal(shape) * scale


def inner(out, w):
    """The scalar test loss ``⟨out, w⟩``, whose gradient with respect to ``out`` is ``w``."""
    return (out * w).sum()


def batchnorm_layer(dev, c: int, seed: int, eps: float = 1e-5):
    """A :class:`~minilplr.nn.batchnorm.BatchNorm2D` of ``c`` channels with ``γ = 1 + 0.5·g``, ``β = g'`` (Gaussian)."""
    from minilplr.nn.batchnorm import BatchNorm2D

    return BatchNorm2D(dev(1.0 + 0.5 * gaussian(seed, c)), dev(gaussian(seed + 1, c)), eps=eps)


def assert_grads_close(grads, nums, tol, what):
    """Each parameter's gradient against its central differences, relative error < ``tol``.

    The relative error of a parameter whose gradient is tiny next to the
    others' is taken against 1 % of the whole gradient's norm instead of its
    own: batch norm in training mode makes the weights before it
    scale-invariant, and a convolution with a single weight (``1×1``, one
    channel in and out) then has a gradient of order ``ε`` (batch norm's
    epsilon), below the resolution of a central difference.
    """
    import math

    from minilplr.nn import gradcheck

    total = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
    for k in grads:
        assert grads[k].shape == nums[k].shape, k
        gradcheck.assert_rel_error(grads[k], nums[k], tol, f"{what} {k}", floor=max(1e-2 * total, 1e-8))


kernel_sizes = st.integers(min_value=1, max_value=3)
strides = st.integers(min_value=1, max_value=3)
paddings = st.integers(min_value=0, max_value=2)


@st.composite
def conv_configs(draw, max_n=3, max_c=3, max_size=7):
    """A dict ``n, c_in, c_out, k, stride, pad, h, w, bias, seed`` for a small 2-D convolution.

    ``h`` and ``w`` are drawn so the padded image holds at least one kernel
    window (``h + 2·pad >= k``).
    """
    k, pad = draw(kernel_sizes), draw(paddings)
    lo = max(1, k - 2 * pad)
    return dict(
        n=draw(st.integers(1, max_n)),
        c_in=draw(st.integers(1, max_c)),
        c_out=draw(st.integers(1, max_c)),
        k=k,
        stride=draw(strides),
        pad=pad,
        h=draw(st.integers(lo, max(lo, max_size))),
        w=draw(st.integers(lo, max(lo, max_size))),
        bias=draw(st.booleans()),
        seed=draw(seeds),
    )


def _batch_for(draw, pixels: int, max_n: int, need: int):
    """A batch size ``n <= max(max_n, n_min)`` with ``n · pixels >= need``.

    Batch norm in training mode normalises over ``M = N·H·W`` values per
    channel.  ``M = 1`` is refused; with ``M = 2`` the output is ``±γ + β``
    whatever the input, so every gradient through it is ``O(ε)`` and a check
    sees nothing.  ``need = 3`` is the smallest case with a real gradient.
    """
    lo = max(1, -(-need // pixels))  # ⌈need / pixels⌉
    return draw(st.integers(lo, max(lo, max_n)))


odd_kernels = st.sampled_from([1, 3, 5])  # "same" convolutions: padding (k − 1)/2 keeps the size


#: batch norm's ε: PyTorch's default, and larger ones under which a term of ε in a formula is not
#: a 1e-6 effect (a check then sees a wrong ε term at ~1e-2, not only at the edge of rounding)
bn_eps = st.sampled_from([1e-5, 1e-3, 1e-1])


@st.composite
def bn_configs(draw, train=None, max_n=4, max_c=4, max_size=5):
    """A dict ``n, c, h, w, eps, train, seed`` for a batch norm layer and its input ``(N, C, H, W)``.

    In training mode ``N·H·W >= 3`` (see :func:`_batch_for`).
    """
    train = draw(st.booleans()) if train is None else train
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    n = _batch_for(draw, h * w, max_n, 3) if train else draw(st.integers(1, max_n))
    return dict(n=n, c=draw(st.integers(1, max_c)), h=h, w=w, eps=draw(bn_eps), train=train, seed=draw(seeds))


@st.composite
def residual_block_configs(draw, max_n=4, max_c=4, max_size=8):
    """A dict for one residual block: ``projection, c_in, c_out, stride, k1, k2, k_short, n, h, w, train, seed``.

    ``k1``, ``k2`` are the main branch's kernel sizes and ``k_short`` the
    projection's, each odd with "same" padding ``(k − 1)/2``, so the two
    branches agree in shape for any stride: ``H_o = ⌊(H − 1)/s⌋ + 1``.  An
    identity shortcut keeps the shape (``stride = 1``, ``c_out = c_in``).
    """
    projection = draw(st.booleans())
    c_in = draw(st.integers(1, max_c))
    c_out = draw(st.integers(1, max_c)) if projection else c_in
    stride = draw(st.integers(1, 3)) if projection else 1
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    train = draw(st.booleans())
    ho, wo = conv_output_size(h, 1, stride, 0), conv_output_size(w, 1, stride, 0)
    n = _batch_for(draw, ho * wo, max_n, 3) if train else draw(st.integers(1, max_n))
    return dict(projection=projection, c_in=c_in, c_out=c_out, stride=stride, k1=draw(odd_kernels),
                k2=draw(odd_kernels), k_short=draw(st.sampled_from([1, 3])) if projection else None,
                n=n, h=h, w=w, train=train, seed=draw(seeds))


@st.composite
def resnet_configs(draw, train=None, max_stages=3, max_width=4, max_blocks=2, max_size=8, max_n=4,
                   max_c=3, max_k=4):
    """A dict ``in_channels, num_classes, widths, blocks_per_stage, image_size, n, train, seed`` for
    :func:`minilplr.nn.resnet.resnet` and a batch ``(N, C, H, H)``.

    Every stage after the first halves the image (stride 2, padding 1:
    ``H ← ⌊(H − 1)/2⌋ + 1``); in training mode ``N`` is drawn so that the
    last stage's batch norm still sees ``N·H·W >= 3`` values per channel.
    """
    train = draw(st.booleans()) if train is None else train
    widths = tuple(draw(st.lists(st.integers(1, max_width), min_size=1, max_size=max_stages)))
    size = draw(st.integers(2, max_size))
    last = size
    for _ in widths[1:]:
        last = conv_output_size(last, 3, 2, 1)
    n = _batch_for(draw, last * last, max_n, 3) if train else draw(st.integers(1, max_n))
    return dict(in_channels=draw(st.integers(1, max_c)), num_classes=draw(st.integers(2, max_k)), widths=widths,
                blocks_per_stage=draw(st.integers(1, max_blocks)), image_size=size, n=n, train=train,
                seed=draw(seeds))


def mlp_problem(cfg, be, dev, depth=None, y_scale=1.0):
    """A float64 MLP with non-zero biases (no exact ReLU kinks), inputs ``X (N, D)`` and targets ``y (N, K)``.

    ``cfg`` from :func:`mlp_configs`; shared by the tests of the theory (PL steps, smoothness).
    """
    from minilplr.nn import models

    m = models.mlp(cfg["d_in"], cfg["width"], depth or cfg["depth"], cfg["d_out"], seed=cfg["seed"],
                   dtype="float64", backend=be)
    for k, p in m.params.items():
        if k.endswith(".b"):
            p[...] = dev(gaussian(cfg["seed"] + 7, *p.shape, scale=0.1))
    X = dev(gaussian(cfg["seed"] + 1, cfg["n"], cfg["d_in"]))
    y = dev(gaussian(cfg["seed"] + 2, cfg["n"], cfg["d_out"], scale=y_scale))
    return m, X, y


def linear_problem(seed, n, d, k, be, dev):
    """A float64 linear model ``f = XW + b`` (``L`` quadratic in ``θ``), ``X (N, D)``, ``y (N, K)``."""
    from minilplr.nn import models

    m = models.mlp(d, 1, 1, k, seed=seed, dtype="float64", backend=be)
    return m, dev(gaussian(seed + 1, n, d)), dev(gaussian(seed + 2, n, k))


@st.composite
def linear_problems(draw, max_n=4, max_m=4, max_h=8, ridge=None):
    """Sizes and a seed for a small least-squares (or ridge) problem and weights of a two-layer linear network.

    A dict ``n, m, h, N, seed, lam, scale`` for :func:`tests.helpers.two_layer_linear`.
    """
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(1, max_m))
    h = draw(st.integers(1, max_h))
    extra = draw(st.integers(0, 3))
    lam = draw(st.sampled_from([None, 0.3])) if ridge is None else (0.3 if ridge else None)
    return dict(n=n, m=m, h=h, N=n + extra, seed=draw(seeds), lam=lam, scale=draw(st.sampled_from([0.3, 1.0])))


@st.composite
def well_posed_linear(draw):
    """As :func:`linear_problems`, with ``h ≥ n + m`` and an exponent ``p`` in ``(1/4, 1/2)`` for Gaussian weights."""
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return dict(n=n, m=m, h=draw(st.integers(n + m, 40)), N=n + draw(st.integers(0, 3)), seed=draw(seeds),
                lam=None, p=draw(st.floats(0.26, 0.49)), scale=1.0)


@st.composite
def bn1d_configs(draw, train=None, max_n=6, max_h=6):
    """A dict ``n, h, eps, train, seed`` for a :class:`~minilplr.nn.batchnorm.BatchNorm1D` and its input ``(N, H)``.

    In training mode ``N >= 3`` (``N = 2`` gives ``x̂ = ±1`` whatever ``x`` is: see :func:`_batch_for`).
    """
    train = draw(st.booleans()) if train is None else train
    n = draw(st.integers(3 if train else 1, max_n))
    return dict(n=n, h=draw(st.integers(1, max_h)), eps=draw(bn_eps), train=train, seed=draw(seeds))


@st.composite
def residual_mlp_configs(draw, max_blocks=2, max_width=6, max_n=6, max_d=4, max_k=3, batchnorm=None):
    """``mlp`` arguments for an MLP with the options of issue 24 and a batch: ``d_in, width, depth, d_out, n,
    residual, batchnorm, seed`` (``depth`` even when ``residual``: ``2 + 2·blocks``).

    With batch norm, ``N >= 3`` (training mode needs a real batch; see :func:`bn1d_configs`).
    """
    residual = draw(st.booleans())
    bn = draw(st.booleans()) if batchnorm is None else batchnorm
    depth = 2 + 2 * draw(st.integers(0, max_blocks)) if residual else draw(st.integers(1, 2 + 2 * max_blocks))
    return dict(d_in=draw(st.integers(1, max_d)), width=draw(st.integers(1, max_width)), depth=depth,
                d_out=draw(st.integers(1, max_k)), n=draw(st.integers(3 if bn else 1, max_n)), residual=residual,
                batchnorm=bn, seed=draw(seeds))
