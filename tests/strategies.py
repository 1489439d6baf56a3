"""Hypothesis strategies shared by every property test.

Data are drawn from seeded Gaussian generators rather than from Hypothesis
float arrays: gradient checks need inputs in general position (a ReLU
pre-activation exactly at 0 is a kink where no derivative exists), and
seeds shrink well.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

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
