"""Tests of minilplr.data.mnist: the IDX format, MNIST served in it, the binary MNIST task and its arguments.

Every download is served by a :class:`~tests.http_fixtures.FileServer` on
127.0.0.1, in the real file formats; the fixtures of
:mod:`tests.http_fixtures` (imported below) keep every test off the internet.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from minilplr import data as D
from minilplr.data import cache as CA
from minilplr.data import mnist as M

from .http_fixtures import cache, local_only, server  # noqa: F401 (pytest fixtures, found by name)
from .http_fixtures import data_lines, fake_mnist, gz, idx_bytes, listing, serve_mnist
from ..strategies import seeds


idx_dtypes = st.sampled_from([np.uint8, np.int8, ">i2", ">i4", ">f4", ">f8"])


@settings(max_examples=30)
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=4), dtype=idx_dtypes, seed=seeds)
def test_idx_round_trip(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(shape) * 100).astype(dtype)
    back = M.parse_idx(idx_bytes(a))
    assert back.shape == tuple(shape) and back.dtype.isnative
    np.testing.assert_array_equal(back, a)


@pytest.mark.parametrize("mutate, match", [
    (lambda b: b"\x08\x03" + b[2:], "magic"),
    (lambda b: b[:2] + b"\x07" + b[3:], "type byte"),
    (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b[:-1], "truncated IDX payload"),
    (lambda b: b + b"\x00", "trailing bytes"),
    (lambda b: b[:3], "too short"),
])
def test_corrupt_idx_gives_clear_error(mutate, match):
    good = idx_bytes(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(M.IDXFormatError, match=match):
        M.parse_idx(mutate(good))


def test_read_idx_handles_gzip_and_corrupt_gzip(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.gz").write_bytes(gz(idx_bytes(a)))
    np.testing.assert_array_equal(M.read_idx(tmp_path / "a.gz"), a)
    (tmp_path / "raw").write_bytes(idx_bytes(a))
    np.testing.assert_array_equal(M.read_idx(tmp_path / "raw"), a)
    (tmp_path / "bad.gz").write_bytes(gz(idx_bytes(a))[:-10])
    with pytest.raises(M.IDXFormatError, match="corrupt gzip"):
        M.read_idx(tmp_path / "bad.gz")


def test_load_mnist_real_format_and_cache(server, cache):
    images, labels = fake_mnist()
    files = serve_mnist(server, images, labels)
    got_images, got_labels = M.load_mnist("train", root=cache, mirrors=[server.url("/mnist/")], files=files)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    server.stop()
    again, _ = M.load_mnist("train", root=cache, mirrors=[server.url("/mnist/")], files=files)
    np.testing.assert_array_equal(again, images)
    assert listing(cache) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


@pytest.mark.parametrize("damage", ["truncated", "garbled", "empty"])
def test_damaged_cached_idx_file_is_quarantined_and_fetched_again(server, cache, caplog, damage):
    """A damaged IDX file in the cache: one line saying where it went, the right data, no traceback on rerun."""
    caplog.set_level(logging.WARNING, logger="minilplr.data")
    images, labels = fake_mnist()
    files = serve_mnist(server, images, labels)
    kw = dict(root=cache, mirrors=[server.url("/mnist/")], files=files)
    M.load_mnist("train", **kw)
    path = cache / "train-images-idx3-ubyte.gz"
    raw = path.read_bytes()
    path.write_bytes({"truncated": raw[: len(raw) // 2], "garbled": raw[:100] + bytes(len(raw) - 100),
                      "empty": b""}[damage])
    CA.forget_verified()  # a new process
    got, _ = M.load_mnist("train", **kw)
    np.testing.assert_array_equal(got, images)
    [line] = data_lines(caplog)
    [moved] = (cache / CA.QUARANTINE).iterdir()
    assert str(path) in line and str(moved) in line
    caplog.clear()
    CA.forget_verified()
    np.testing.assert_array_equal(M.load_mnist("train", **kw)[0], images)
    assert data_lines(caplog) == [] and server.requests.count("/mnist/train-images-idx3-ubyte.gz") == 2


def test_task_builders_pass_the_deadline_to_the_download(server, cache):
    images, labels = fake_mnist(per_digit=2)
    files = serve_mnist(server, images, labels, prefix="/slow/")
    server.add("/slow/train-images-idx3-ubyte.gz", server.routes["/slow/train-images-idx3-ubyte.gz"][1],
               mode="trickle", step=100, interval=0.25)
    with pytest.raises(D.DownloadError, match="deadline of 0.5 s"):
        D.binary_mnist(n=4, source="download", root=cache, mirrors=[server.url("/slow/")], files=files,
                       timeout=(2, 5), deadline=0.5)


def test_load_mnist_rejects_wrong_shapes(server, cache):
    images, labels = fake_mnist()
    files = serve_mnist(server, images.reshape(-1, 28 * 28), labels)
    with pytest.raises(M.IDXFormatError, match=r"\(N, 28, 28\)"):
        M.load_mnist("train", root=cache, mirrors=[server.url("/mnist/")], files=files)
    with pytest.raises(ValueError, match="split"):
        M.load_mnist("validation", root=cache)


def test_binary_mnist_from_download(server, cache):
    images, labels = fake_mnist(per_digit=30)
    files = serve_mnist(server, images, labels)
    ds = D.binary_mnist(digits=(3, 7), n=40, seed=5, source="download",
                        root=cache, mirrors=[server.url("/mnist/")], files=files)
    assert ds.source == "download" and ds.n == 40 and ds.X.shape == (40, 784)
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.float32
    assert set(np.unique(ds.y)) == {-1.0, 1.0} and (ds.y == 1).sum() == 20
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0
    # digit 7 (label +1) has ink ~140/255, digit 3 (label -1) ~60/255: the labels follow the images
    ink = ds.X.mean(axis=1)
    assert (ink[ds.y == 1] > 0.45).all() and (ink[ds.y == -1] < 0.35).all()
    assert "MNIST train set (300 digits" in ds.description and "digits 3 vs 7" in ds.description
    assert "n=40" in ds.description


@settings(max_examples=15)
@given(seed=seeds)
def test_preprocess_options(seed):
    images = np.random.default_rng(seed).integers(0, 256, (7, 28, 28)).astype(np.uint8)
    unit = M.preprocess_pixels(images, "unit")
    np.testing.assert_allclose(unit, images.reshape(7, -1) / 255.0)
    np.testing.assert_allclose(M.preprocess_pixels(images, "center").mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(M.preprocess_pixels(images, "standardize"), (unit - 0.1307) / 0.3081)
    np.testing.assert_allclose(np.linalg.norm(M.preprocess_pixels(images, "sphere"), axis=1), 1.0)
    with pytest.raises(ValueError, match="preprocess"):
        M.preprocess_pixels(images, "zscore")


def test_binary_mnist_seeding():
    a = D.binary_mnist(n=100, seed=1, source="offline")
    b = D.binary_mnist(n=100, seed=1, source="offline")
    c = D.binary_mnist(n=100, seed=2, source="offline")
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)
    assert D.binary_mnist(n=10, source="offline", dtype=np.float64).X.dtype == np.float64


BAD_BINARY_MNIST = [
    (dict(n=0), "n: expected a positive int"),
    (dict(n=-2), "n: expected a positive int"),
    (dict(n=10.0), "n: expected a positive int"),
    (dict(n=2.5), "n: expected a positive int"),
    (dict(n="10"), "n: expected a positive int"),
    (dict(n=True), "n: expected a positive int"),
    (dict(n=[10]), "n: expected a positive int"),
    (dict(n=11), "n: expected a multiple of the 2 digits"),
    (dict(digits=(1, 1)), r"digits: expected 2 distinct digits 0-9, got \(1, 1\) \(1 appears twice\)"),
    (dict(digits=(0, 10)), r"digits: .*\(10 is not in 0-9\)"),
    (dict(digits=(-1, 0)), r"digits: .*\(-1 is not in 0-9\)"),
    (dict(digits=(0, 1, 2)), "digits: .*got 3 of them"),
    (dict(digits=(7,)), "digits: .*got 1 of them"),
    (dict(digits=(0.0, 1)), r"digits: .*\(0.0 is not an int\)"),
    (dict(digits=("0", "1")), r"digits: .*\('0' is not an int\)"),
    (dict(digits=(True, 0)), r"digits: .*\(True is not an int\)"),
    (dict(digits="01"), "digits: expected 2 distinct digits"),
    (dict(digits=None), "digits: expected 2 distinct digits"),
    (dict(digits=5), "digits: expected 2 distinct digits"),
    (dict(seed=-1), "seed: expected a non-negative int"),
    (dict(seed=1.5), "seed: expected a non-negative int"),
    (dict(seed="0"), "seed: expected a non-negative int"),
    (dict(seed=None), "seed: expected a non-negative int"),
    (dict(seed=True), "seed: expected a non-negative int"),
    (dict(source="web"), "source: expected one of"),
    (dict(source=None), "source: expected one of"),
    (dict(source=["auto"]), "source: expected one of"),
    (dict(preprocess="zscore"), "preprocess: expected one of"),
    (dict(preprocess=None), "preprocess: expected one of"),
    (dict(preprocess=["unit"]), "preprocess: expected one of"),
    (dict(dtype=np.int32), "dtype: expected a floating dtype"),
    (dict(dtype="floot"), "dtype: expected a floating dtype"),
    (dict(split="validation"), "split: expected one of"),
    (dict(split=None), "split: expected one of"),
]


@pytest.mark.parametrize("kwargs, match", BAD_BINARY_MNIST)
def test_binary_mnist_bad_input_is_one_line_before_any_download(kwargs, match, monkeypatch, cache):
    """Each bad argument: a one-line ValueError naming it and what was expected, raised before the network."""
    monkeypatch.setattr(requests, "get", lambda *a, **k: pytest.fail("bad input reached the network"))
    kwargs = dict(kwargs, source=kwargs.get("source", "download"))
    with pytest.raises(ValueError, match=match) as info:
        D.binary_mnist(root=cache, **kwargs)
    assert "\n" not in str(info.value)
    assert listing(cache) == []


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=1002), r"n: 501 samples per class requested but the pool has only \{0: 500, 1: 500\}"),
    (dict(split="test"), "split: the offline MNIST subset has a single pool"),
])
def test_binary_mnist_bad_input_for_the_data(kwargs, match):
    """Checks that need the data: more samples than there are; a split the offline subset lacks."""
    with pytest.raises(ValueError, match=match) as info:
        D.binary_mnist(source="offline", **kwargs)
    assert "\n" not in str(info.value)


def test_integer_like_arguments_are_accepted():
    ds = D.binary_mnist(digits=np.array([3, 5]), n=np.int64(10), seed=np.int64(2), source="offline")
    assert ds.n == 10 and ds.meta["digits"] == [3, 5] and ds.meta["seed"] == 2
    assert D.binary_mnist(n=None, source="offline").n == 1000  # None: all of the rarer digit
