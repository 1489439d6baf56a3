"""Θ in tiles (minilplr.theory.ntk_tiles): the paper's real ``n`` without three ``N × N`` temporaries.

* on data whose sums are exact, the tiled Θ is the untiled one to the bit, for any tile side;
* a float32 model's Θ accumulated in float64 in tiles equals the untiled one to ``D·ε₆₄``;
* a layer without the structured rule keeps its whole block under the mirror of the upper tiles;
* the tiled sweep's memory stays under its bound (tracemalloc), and the tile side follows ``max_bytes``.
"""
import numpy as np
import pytest

from minilplr.backend import to_host
from minilplr.nn import models
from minilplr.nn.gradcheck import rel_error
from minilplr.nn.layers import Dense, Layer, Sequential
from minilplr.theory import ntk, ntk_tiles

from ..strategies import gaussian


def _integer_mlp(be, dev, K, n=11, d=3, width=5, depth=3, seed=0):
    """An MLP whose weights, biases and inputs are small integers: every sum in Θ is exact in float64."""
    rng = np.random.default_rng(seed)
    m = models.mlp(d, width, depth, K, seed=seed, dtype="float64", backend=be)
    for p in m.params.values():
        p[...] = dev(rng.integers(-2, 3, size=p.shape).astype(np.float64))
    return m, dev(rng.integers(-2, 3, size=(n, d)).astype(np.float64))


@pytest.mark.parametrize("K", [1, 2, 3])
def test_tiled_ntk_equals_untiled_bitwise(K, be, dev):
    """Exact data: the tiled Θ (odd tiles, a ragged last one, 1-sample tiles) is the untiled one to the bit."""
    m, X = _integer_mlp(be, dev, K)
    ref = to_host(ntk.empirical_ntk(m, X))  # 11 samples, untiled (the layer protocol)
    for rows in (1, 2, 3, 4, 5, 7, 10, 11, 12):
        got = to_host(ntk.empirical_ntk(m, X, block_rows=rows))
        assert np.array_equal(got, ref), f"block_rows={rows}: max |Δ| = {np.abs(got - ref).max()}"


def test_tiled_ntk_float64_from_float32_model(be, dev):
    """Float32 model, Θ in float64: tiles change no dot product, only syrk/gemm order (≲ D·ε₆₄ relative)."""
    m = models.mlp(6, 16, 4, 2, seed=3, backend=be)  # float32
    X = dev(gaussian(4, 23, 6), np.float32)
    ref = ntk.empirical_ntk(m, X, dtype="float64")
    got = ntk.empirical_ntk(m, X, dtype="float64", block_rows=5)
    assert got.dtype == np.float64
    assert rel_error(got, ref) < 1e-14  # a float32 accumulation anywhere would give ~1e-7


def test_tiled_sweep_keeps_other_layers_blocks(be, dev):
    """A layer without the structured rule adds its whole block; the mirror of the upper tiles keeps it right."""

    class PlainDense(Dense):
        ntk_backward = Layer.ntk_backward  # the generic F Fᵀ rule

    from minilplr.nn.layers import ReLU

    net = Sequential([("a", Dense(dev(gaussian(1, 3, 5)), dev(gaussian(2, 5)))), ("r", ReLU()),
                      ("b", PlainDense(dev(gaussian(3, 5, 2)), dev(gaussian(4, 2))))])
    X = dev(gaussian(0, 9, 3))
    ref = ntk.empirical_ntk(net, X)
    assert rel_error(ntk.empirical_ntk(net, X, block_rows=4), ref) < 1e-14


def test_tiled_ntk_memory_stays_under_its_bound(be, dev):
    """tracemalloc: building Θ (N = 400) in tiles costs Θ + max_bytes + the factors, not three N×N arrays."""
    import tracemalloc

    n, d, width, depth = 400, 4, 8, 3
    m = models.mlp(d, width, depth, 1, seed=0, dtype="float64", backend=be)
    X = dev(gaussian(0, n, d))
    theta_bytes, max_bytes = n * n * 8, 100_000  # tiles of isqrt(100000 / 24) = 64 samples
    factors = 4 * n * (d + depth * width + width) * 8  # forward caches, one layer's A and G, seeds
    bound = theta_bytes + max_bytes + factors + 64 * 1024  # + 64 KiB for small arrays and wrappers
    tracemalloc.start()
    try:
        ntk.empirical_ntk(m, X, max_bytes=max_bytes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= bound, f"peak {peak} bytes > bound {bound} (Θ alone {theta_bytes})"
    assert bound < 2 * theta_bytes  # the untiled rule's (A Aᵀ + 1) and G Gᵀ would not fit


def test_tiling_arguments(be, dev):
    m = models.mlp(3, 4, 2, 1, seed=0, dtype="float64", backend=be)
    X = dev(gaussian(0, 4, 3))
    with pytest.raises(ValueError, match="block_rows"):
        ntk.empirical_ntk(m, X, block_rows=0)
    with pytest.raises(ValueError, match="max_bytes"):
        ntk.empirical_ntk(m, X, max_bytes=0)
    assert ntk_tiles.tile_rows(100, 1, 8, 2 * 100 * 100 * 8, None) == 100  # untiled temporaries fit: one tile
    assert ntk_tiles.tile_rows(100, 1, 8, 2 * 100 * 100 * 8 - 1, None) == 81  # 3·81²·8 = 157,464 ≤ 159,999 < 3·82²·8
