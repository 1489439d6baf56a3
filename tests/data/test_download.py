"""Tests of minilplr.data.download and minilplr.data.cache: mirrors, pins, deadline, atomic cache, quarantine.

Every download is served by a :class:`~tests.http_fixtures.FileServer` on
127.0.0.1, in the real file formats; the fixtures of
:mod:`tests.http_fixtures` (imported below) keep every test off the internet.
"""
from __future__ import annotations

import logging
import os
import stat
import threading
import time

import numpy as np
import pytest

from minilplr.data import cache as CA
from minilplr.data import cifar as C
from minilplr.data import download as DL
from minilplr.data import mnist as M

from .http_fixtures import cache, local_only, server  # noqa: F401 (pytest fixtures, found by name)
from .http_fixtures import closed_port_url, data_lines, listing, remote, run_in_two_threads, sha256


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
    CA.forget_verified()  # as in a new process: the cached file is re-verified, not re-fetched
    assert DL.fetch(f, [server.url("/")], root=cache) == first
    assert server.requests == ["/a.bin"]


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
    barrier = threading.Barrier(2, timeout=10)

    def fetch_together():
        barrier.wait()
        return DL.fetch(f, [server.url("/")], root=cache, timeout=(2, 5))

    results = run_in_two_threads(fetch_together)
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
