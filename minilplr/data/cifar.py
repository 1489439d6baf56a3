"""CIFAR-10 (binary version): the pinned archive, the batch format, loading, the 5-class task.

Files and pin
-------------
``cifar-10-binary.tar.gz`` from Alex Krizhevsky's page
(``https://www.cs.toronto.edu/~kriz/``), 170,052,171 bytes, SHA-256 pinned in
:data:`CIFAR_ARCHIVE` (the value published, identically, by several
independent projects, e.g. torch.rb's CIFAR-10 loader; the page itself gives
the MD5 ``c32a1d4ab5d03f1284b67883e8d87530``).  We use the
*binary* version on purpose: the "python version" is a set of pickles, and
unpickling a downloaded file can run arbitrary code.  Nothing here unpickles.

Binary format (parsed by :func:`parse_cifar_batch`)
-----------------------------------------------------
Each of ``data_batch_1.bin`` … ``data_batch_5.bin`` (training, 50,000 images)
and ``test_batch.bin`` (10,000) is 10,000 records of 3,073 bytes: one label
byte (0-9), then 1,024 red, 1,024 green and 1,024 blue bytes of a 32 x 32
image, each channel in row-major order.  So the file is a ``(M, 3073)`` byte
matrix: column 0 the labels, columns 1: reshape to ``(M, 3, 32, 32)``.

Extraction and its record (:mod:`minilplr.data.archive`)
---------------------------------------------------------
The six batches are extracted safely from the verified archive into
``cifar-10-batches-bin/`` with a JSON record ``EXTRACTED_FROM`` of each
batch's size, record count and SHA-256 (see :mod:`minilplr.data.archive`).
On use (:func:`load_cifar10`): the record must name the pinned archive, and
every batch must have the recorded size (checked on every load: a ``stat``);
each batch read is hashed and compared with the record (once per process
for each file: hashing the 180 MB of batches costs about as much as reading
and parsing them).
An extraction that fails any check -- a missing, truncated, garbled or
replaced batch, a record that is missing, unreadable or describes other
files -- is moved to ``quarantine/`` (never deleted), one log line names the
file and says so, and the batches are extracted again from the archive,
which :func:`~minilplr.data.download.fetch` verifies first (and downloads
again if it is no longer cached or is itself damaged).  An extraction of
another archive, or one recorded by an older minilplr without per-file
checksums, is replaced the same way, but deleted rather than kept.

The 5-class task (:func:`cifar5`)
---------------------------------
The paper trains on "a 5-class subset of CIFAR-10" without naming the
classes.  Our default: the first five label indices, **airplane, automobile,
bird, cat, deer** (labels 0-4) -- the choice that needs no justification
beyond "the first five", mixing two vehicle and three animal classes (among
them the often-confused bird / cat / deer).  Images are ``(N, C, H, W)`` =
``(N, 3, 32, 32)``, pixels divided by 255 then standardised per channel with
the mean and standard deviation of the returned sample itself (stored in
``meta``, so a test split can reuse them).  Without network the fallback is
real data, not CIFAR: MNIST digits 0-4 of the offline subset, zero-padded
from 28 x 28 to 32 x 32 (two pixels each side: the same spatial sizes through
the network's stride-2 stages) with one channel, ``(N, 1, 32, 32)``, and the
description says so.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .archive import (STAMP_FORMAT, ArchiveFormatError, Untrusted, read_record, read_verified, safe_extract,
                      set_aside)
from .cache import cache_dir, remove_stale
from .dataset import (Dataset, balanced_indices, check_count, check_download_kw, check_dtype, check_labels,
                      check_seed, check_source, check_split, with_fallback)
from .download import DEFAULT_TIMEOUT, RemoteFile, fetch
from .offline import OFFLINE_SHORT, load_offline_mnist, offline_description

__all__ = [
    "CIFAR_MIRRORS",
    "CIFAR_ARCHIVE",
    "CIFAR_FOLDER",
    "CIFAR_MEMBERS",
    "CIFAR_CLASSES",
    "RECORD_BYTES",
    "MAX_RECORDS",
    "CIFARFormatError",
    "parse_cifar_batch",
    "load_cifar10",
    "standardize_channels",
    "cifar5",
]

CIFAR_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
CIFAR_ARCHIVE = RemoteFile(
    "cifar-10-binary.tar.gz", 170_052_171,
    ("sha256", "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"),
)
CIFAR_FOLDER = "cifar-10-batches-bin"
CIFAR_MEMBERS = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
_ALL_MEMBERS = tuple(n for split in CIFAR_MEMBERS.values() for n in split)
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
RECORD_BYTES = 1 + 3 * 32 * 32
MAX_RECORDS = 10_000  # per member: a member claiming more is refused (bounded extraction)
DOWNLOAD_KW = ("root", "mirrors", "archive", "timeout", "deadline", "progress")  # of load_cifar10

log = logging.getLogger("minilplr.data")


class CIFARFormatError(ArchiveFormatError):
    """A CIFAR-10 binary batch (or archive) that is not in the expected format."""


def parse_cifar_batch(data: bytes, where: str = "<bytes>"):
    """Parse one CIFAR-10 binary batch: records of 1 label byte + 3,072 pixel bytes.

    Returns
    -------
    images : uint8 array (M, 3, 32, 32)
        Channels R, G, B, rows then columns.
    labels : uint8 array (M,), values 0-9
    """
    if len(data) == 0 or len(data) % RECORD_BYTES:
        raise CIFARFormatError(
            f"{where}: {len(data)} bytes is not a positive whole number of {RECORD_BYTES}-byte records"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].copy()
    if labels.max() > 9:
        raise CIFARFormatError(f"{where}: label byte {int(labels.max())} outside 0..9 (not a CIFAR-10 batch?)")
    images = records[:, 1:].reshape(-1, 3, 32, 32).copy()
    return images, labels


def _stamp_for(archive: RemoteFile) -> dict:
    """The part of the extraction record that names the archive."""
    return {"format": STAMP_FORMAT, "record_bytes": RECORD_BYTES,
            "archive": {"name": archive.name, "size": archive.size, "checksum": list(archive.checksum)}}


def _set_aside(folder: Path, problem: Untrusted, archive: RemoteFile) -> None:
    """Move a damaged extraction to quarantine (delete a merely outdated one), in one log line."""
    try:
        where = set_aside(folder, problem)
    except OSError as exc:
        raise CIFARFormatError(f"{problem}; and {folder} cannot be moved aside ({exc}); delete it by hand") from None
    if where is not None:
        log.warning("%s; %s; extracting the batches again from %s (downloaded again if it is no longer cached)",
                    problem, where, archive.name)


def _extract(root: Path, archive: RemoteFile, mirrors, timeout, deadline, progress) -> None:
    """Fetch (verified) and extract the archive into ``root/CIFAR_FOLDER`` with its record."""
    path = fetch(archive, mirrors, root=root, timeout=timeout, deadline=deadline, progress=progress)
    # temporary or set-aside extraction folders left by a killed process
    remove_stale(root, f".{CIFAR_FOLDER}.*.part", f".{CIFAR_FOLDER}.old-*")
    try:
        safe_extract(path, root / CIFAR_FOLDER, {f"{CIFAR_FOLDER}/{n}": n for n in _ALL_MEMBERS},
                     record_bytes=RECORD_BYTES, max_records=MAX_RECORDS, stamp=_stamp_for(archive))
    except FileExistsError:
        pass  # another process extracted it meanwhile: checked like any other extraction
    except ArchiveFormatError as exc:
        raise CIFARFormatError(str(exc)) from None


def load_cifar10(split: str = "train", *, root=None, mirrors=None, archive=None,
                 timeout=DEFAULT_TIMEOUT, deadline=None, progress=None):
    """The full CIFAR-10 ``split``, downloaded (or from the cache); no fallback.

    The cached extraction is used only if it passes the checks of the module
    docstring ("The extraction record"); otherwise it is set aside (one log
    line) and extracted again from the verified archive.

    Parameters
    ----------
    split : {"train", "test"}
    root : path or None
        Cache folder (see :func:`minilplr.data.cache.cache_dir`).
    mirrors : sequence of str or None
        Base URLs (default :data:`CIFAR_MIRRORS`).
    archive : RemoteFile or None
        Name, size, checksum of the tarball (default :data:`CIFAR_ARCHIVE`);
        tests inject a small one.
    timeout, deadline, progress
        Of :func:`minilplr.data.download.fetch` (``deadline``: seconds one
        download attempt may take, default proportional to the size).

    Returns
    -------
    images : uint8 array (N, 3, 32, 32)
    labels : uint8 array (N,), values 0-9

    Raises
    ------
    minilplr.data.download.NetworkUnavailable, DownloadError
    minilplr.data.archive.UnsafeArchiveError
    CIFARFormatError
    """
    if not isinstance(split, str) or split not in CIFAR_MEMBERS:
        raise ValueError(f"split: expected one of {tuple(CIFAR_MEMBERS)}, got {split!r}")
    if archive is not None and not isinstance(archive, RemoteFile):
        raise ValueError(f"archive: expected a RemoteFile or None, got {archive!r}")
    root = cache_dir(root)
    archive = CIFAR_ARCHIVE if archive is None else archive
    mirrors = CIFAR_MIRRORS if mirrors is None else mirrors
    folder = root / CIFAR_FOLDER
    for attempt in (0, 1):  # the cached extraction (or a new one); if untrusted, a fresh one
        if not folder.exists():
            _extract(root, archive, mirrors, timeout, deadline, progress)
        try:
            stamp = read_record(folder, _stamp_for(archive), _ALL_MEMBERS, max_records=MAX_RECORDS)
            data = [read_verified(folder, n, stamp["files"][n]) for n in CIFAR_MEMBERS[split]]
        except Untrusted as problem:
            if attempt:
                raise CIFARFormatError(
                    f"{problem}, even in a fresh extraction of the verified {archive.name}: "
                    f"is the disk failing? delete {folder} and run again"
                ) from None
            _set_aside(folder, problem, archive)
            continue
        parts = [parse_cifar_batch(d, where=str(folder / n)) for d, n in zip(data, CIFAR_MEMBERS[split])]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def standardize_channels(images: np.ndarray, dtype=np.float64):
    r"""Pixels/255 standardised per channel: uint8 images ``(N, C, H, W)`` -> ``dtype``.

    .. math:: x_{nchw} = \frac{u_{nchw}/255 - m_c}{s_c},\quad
              m_c = \mathrm{mean}_{n,h,w}\, u_{nchw}/255,\quad
              s_c = \mathrm{std}_{n,h,w}\, u_{nchw}/255

    The statistics come from each channel's histogram of byte values (exact
    integer sums, then float64), so the only full-size array made is the
    output: 25,000 CIFAR images in float32 take 0.3 GB, not 1.8 GB of
    float64 temporaries.

    Returns
    -------
    x : array (N, C, H, W) of ``dtype``
    mean, std : float64 arrays (C,), in units of pixels/255 (a constant
        channel gets ``std = 1``).
    """
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images: expected uint8 (N, C, H, W), got {images.dtype} {images.shape}")
    values = np.arange(256, dtype=np.float64) / 255.0
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean, std = np.empty(images.shape[1]), np.empty(images.shape[1])
    for c in range(images.shape[1]):
        hist = np.bincount(images[:, c].ravel(), minlength=256).astype(np.float64)
        mean[c] = hist @ values / count
        var = hist @ (values - mean[c]) ** 2 / count  # centred: no cancellation
        std[c] = np.sqrt(var) if var > 0 else 1.0
    x = images.astype(dtype)
    x /= np.asarray(255.0, dtype)
    x -= mean.astype(dtype)[None, :, None, None]
    x /= std.astype(dtype)[None, :, None, None]
    return x, mean, std


def cifar5(classes=(0, 1, 2, 3, 4), n_train=2500, seed: int = 0, source: str = "auto", *,
           dtype=np.float32, offline_digits=(0, 1, 2, 3, 4), split: str = "train", **download_kw) -> Dataset:
    """The 5-class CIFAR-10 task of the LPLR paper's Fig. 3 (choices in the module docstring).

    Parameters
    ----------
    classes : 5 ints
        CIFAR-10 label indices; ``classes[k]`` gets label ``k``.  Default:
        airplane, automobile, bird, cat, deer.
    n_train : int or None
        Samples ``N``, a positive multiple of 5, ``N/5`` per class, drawn
        without replacement (``None``: all of the rarest class's count per
        class).  The offline fallback has at most 500 per digit.
    seed : int
        Seed of the draw and of the sample order, non-negative.
    source : {"auto", "download", "offline"}
        As in :func:`minilplr.data.binary_mnist`.
    dtype : float dtype
        Of ``X``.
    offline_digits : 5 ints
        MNIST digits standing in for the classes without network.
    split : {"train", "test"}
        Which CIFAR-10 set (the offline fallback has only ``"train"``).
    **download_kw
        ``root``, ``mirrors``, ``archive``, ``timeout``, ``deadline``,
        ``progress`` of :func:`load_cifar10`.

    Returns
    -------
    Dataset
        ``X`` ``(N, C, H, W)``: ``(N, 3, 32, 32)`` for CIFAR-10,
        ``(N, 1, 32, 32)`` for the MNIST fallback; ``y`` int64 ``(N,)`` in
        ``0..4``; host NumPy arrays; ``description`` names the data used.

    Raises
    ------
    ValueError
        One line naming the argument, for any argument out of its range
        (checked before any download); ``n_train`` larger than the data once
        loaded.
    TypeError
        An unknown keyword in ``download_kw``.
    """
    classes = check_labels(classes, 5, "classes", kind="class indices")
    offline_digits = check_labels(offline_digits, 5, "offline_digits", kind="digits")
    n_train = check_count(n_train, "n_train")
    if n_train is not None and n_train % 5:
        raise ValueError(f"n_train: expected a multiple of the 5 classes (n_train/5 per class), got {n_train}")
    seed = check_seed(seed)
    check_source(source)
    dtype = check_dtype(dtype)
    check_split(split, tuple(CIFAR_MEMBERS))
    check_download_kw(download_kw, DOWNLOAD_KW, "cifar5")
    if source == "offline" and split != "train":
        raise ValueError(f"split: the offline fallback has a single pool of digits, use split='train', got {split!r}")

    def offline():
        if split != "train":
            raise ValueError(f"split: no network and the offline MNIST subset has no {split!r} split")
        return load_offline_mnist()

    key = ("CIFAR-10", tuple(download_kw.get("mirrors") or CIFAR_MIRRORS), str(download_kw.get("root")))
    (images, labels), used, note = with_fallback(
        source, lambda: load_cifar10(split, **download_kw), offline, "CIFAR-10",
        f"{OFFLINE_SHORT}, digits {', '.join(map(str, offline_digits))}", key,
    )
    pool_classes = classes if used == "download" else offline_digits
    idx = balanced_indices(labels, pool_classes, n_train, seed, name="n_train")
    chosen = images[idx]
    if used == "offline":
        chosen = np.pad(chosen, ((0, 0), (2, 2), (2, 2)))[:, None]  # (N, 28, 28) -> (N, 1, 32, 32), zero border
    x, mean, std = standardize_channels(chosen, dtype)
    relabel = np.zeros(10, dtype=np.int64)
    relabel[list(pool_classes)] = np.arange(5)
    y = relabel[labels[idx]]
    per = y.size // 5
    if used == "download":
        names = [CIFAR_CLASSES[c] for c in classes]
        description = (
            f"CIFAR-10 {split} set ({labels.size:,} images, binary version: archive checked against its pinned "
            f"SHA-256, each batch against the SHA-256 recorded when it was extracted); "
            f"5 classes {', '.join(names)} -> labels 0-4, n={y.size} ({per} per class, seed {seed}), "
            f"3x32x32, pixels/255 standardised per channel (mean/std of this sample)"
        )
        name = "cifar10-5class"
    else:
        names = [f"digit {d}" for d in offline_digits]
        description = (
            f"NOT CIFAR-10: MNIST digits {', '.join(map(str, offline_digits))} standing in for it, from "
            f"{offline_description()}" + (f" [{note}]" if note else "")
            + f"; labels 0-4, n={y.size} ({per} per class, seed {seed}), 28x28 zero-padded to 1x32x32, "
            "pixels/255 standardised (mean/std of this sample)"
        )
        name = "mnist-5class-offline"
    meta = {"classes": list(pool_classes), "class_names": names, "seed": seed, "per_class": per, "split": split,
            "channel_mean": mean.tolist(), "channel_std": std.tolist()}
    return Dataset(x, y, name, used, description, meta)
