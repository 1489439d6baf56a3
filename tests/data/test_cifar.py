"""Tests of minilplr.data.cifar: the batch format, the extraction record on use, the 5-class task.

Every download is served by a :class:`~tests.http_fixtures.FileServer` on
127.0.0.1, in the real file formats; the fixtures of
:mod:`tests.http_fixtures` (imported below) keep every test off the internet.
"""
from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time

import numpy as np
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from minilplr import data as D
from minilplr.data import archive as A
from minilplr.data import cache as CA
from minilplr.data import cifar as C
from minilplr.data import download as DL

from .http_fixtures import cache, local_only, server  # noqa: F401 (pytest fixtures, found by name)
from .http_fixtures import (cifar_records, closed_port_url, data_lines, fake_cifar, listing, run_in_two_threads,
                            serve_cifar, sha256)
from ..strategies import seeds


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
    CA.forget_verified()
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
    CA.forget_verified()  # a new process
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
    CA.forget_verified()  # the next run: no report, no traceback
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
    CA.forget_verified()
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
    real, barrier = C.safe_extract, threading.Barrier(2, timeout=10)

    def extract_together(*args, **kwargs):
        barrier.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(C, "safe_extract", extract_together)
    results = run_in_two_threads(
        lambda: C.load_cifar10(root=cache, mirrors=[server.url("/kriz/")], archive=archive)[0])
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
