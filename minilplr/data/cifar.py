"""CIFAR-10 (binary version): download, safe extraction, NumPy parsing, the 5-class task.

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

Safe extraction (:func:`safe_extract`)
---------------------------------------
A tarball can name members ``/etc/x``, ``../../x``, or links pointing
anywhere.  Every member of the archive is checked, in one streaming pass,
before anything is used: an absolute path, a ``..`` component, or a symbolic
or hard link whose target lies outside the extraction folder makes the whole
archive refused with :class:`UnsafeArchiveError`.  Only the six ``.bin``
members are written, by this code (never by ``tarfile.extract``), under
names it chooses, each bounded to 10,000 records, into a temporary folder
that is renamed into place when complete (the same atomic rule as the
downloads).  A file ``EXTRACTED_FROM`` in the folder records the checksum
of the archive it came from; the extraction is reused only if it matches.

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

import gzip
import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np

from .dataset import Dataset, balanced_indices, check_source, with_fallback
from .download import DEFAULT_TIMEOUT, RemoteFile, cache_dir, fetch
from .offline import OFFLINE_SHORT, load_offline_mnist, offline_description

__all__ = [
    "CIFAR_MIRRORS",
    "CIFAR_ARCHIVE",
    "CIFAR_FOLDER",
    "CIFAR_MEMBERS",
    "CIFAR_CLASSES",
    "RECORD_BYTES",
    "MAX_RECORDS",
    "UnsafeArchiveError",
    "CIFARFormatError",
    "safe_extract",
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
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
RECORD_BYTES = 1 + 3 * 32 * 32
MAX_RECORDS = 10_000  # per member: a member claiming more is refused (bounded extraction)
_SIDECAR = "EXTRACTED_FROM"


class UnsafeArchiveError(ValueError):
    """A tar member whose path (or link target) escapes the extraction folder."""


class CIFARFormatError(ValueError):
    """A CIFAR-10 binary batch (or archive) that is not in the expected format."""


def _inside(path: str) -> bool:
    """True if the relative POSIX ``path`` stays inside its base folder after normalising."""
    norm = posixpath.normpath(path)
    return not (norm == ".." or norm.startswith("../") or posixpath.isabs(norm))


def _check_member(member: tarfile.TarInfo, archive) -> None:
    """Raise :class:`UnsafeArchiveError` if ``member`` could write or point outside the folder."""
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if posixpath.isabs(name) or name.startswith("\\") or (len(name) > 1 and name[1] == ":") or ".." in parts \
            or not _inside(name):
        raise UnsafeArchiveError(
            f"{archive}: refusing member {name!r}: its path escapes the extraction folder "
            f"(absolute path or '..' component)"
        )
    if member.issym():
        target = member.linkname
        if posixpath.isabs(target) or not _inside(posixpath.join(posixpath.dirname(name), target)):
            raise UnsafeArchiveError(
                f"{archive}: refusing symbolic link {name!r} -> {target!r}: it points outside the extraction folder"
            )
    if member.islnk():
        target = member.linkname
        if posixpath.isabs(target) or not _inside(target):
            raise UnsafeArchiveError(
                f"{archive}: refusing hard link {name!r} -> {target!r}: it points outside the extraction folder"
            )
    if member.ischr() or member.isblk():
        raise UnsafeArchiveError(f"{archive}: refusing device file member {name!r}")


def safe_extract(archive, dest, wanted) -> Path:
    """Extract the members ``wanted`` of the ``.tar.gz`` ``archive`` into ``dest``, safely.

    Parameters
    ----------
    archive : path
        A gzip-compressed tarball.
    dest : path
        Folder to create; it must not exist (it is renamed into place whole).
    wanted : mapping ``member name -> file name``
        Members to write (each a regular file of at most
        ``MAX_RECORDS * RECORD_BYTES`` bytes) and the plain name each gets in
        ``dest``.

    Every member of the archive is checked (see the module docstring); one
    unsafe member refuses the archive and nothing is left behind.

    Raises
    ------
    UnsafeArchiveError, CIFARFormatError
    """
    archive, dest = Path(archive), Path(dest)
    wanted = {posixpath.normpath(k): v for k, v in dict(wanted).items()}
    for out_name in wanted.values():
        if "/" in out_name or "\\" in out_name or out_name in ("", ".", ".."):
            raise ValueError(f"wanted: output names must be plain file names, got {out_name!r}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    try:
        found = set()
        try:
            with tarfile.open(archive, mode="r|gz") as tar:  # streaming: one pass, members in order
                for member in tar:
                    _check_member(member, archive)
                    key = posixpath.normpath(member.name)
                    if key not in wanted:
                        continue
                    if not member.isfile():
                        raise CIFARFormatError(f"{archive}: member {member.name!r} is not a regular file")
                    if member.size > MAX_RECORDS * RECORD_BYTES:
                        raise CIFARFormatError(
                            f"{archive}: member {member.name!r} has {member.size} bytes, more than "
                            f"{MAX_RECORDS} records of {RECORD_BYTES} bytes"
                        )
                    source = tar.extractfile(member)
                    with open(tmp / wanted[key], "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                    found.add(key)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise CIFARFormatError(f"{archive}: unreadable tar.gz archive ({type(exc).__name__}: {exc})") from None
        missing = sorted(set(wanted) - found)
        if missing:
            raise CIFARFormatError(f"{archive}: members missing from the archive: {missing}")
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing left after a successful rename
    return dest


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


def _extracted(root: Path, archive: RemoteFile, mirrors, timeout, progress) -> Path:
    """The folder of the six extracted ``.bin`` files, downloading and extracting if needed."""
    folder = root / CIFAR_FOLDER
    stamp = f"{archive.name} {archive.checksum[0]} {archive.checksum[1]}\n"
    names = [n for split in CIFAR_MEMBERS.values() for n in split]
    try:
        ok = (folder / _SIDECAR).read_text() == stamp and all((folder / n).is_file() for n in names)
    except OSError:
        ok = False
    if ok:
        return folder
    path = fetch(archive, mirrors, root=root, timeout=timeout, progress=progress)
    if folder.exists():  # an extraction of another archive, or an incomplete one: replace it
        shutil.rmtree(folder)
    wanted = {f"{CIFAR_FOLDER}/{n}": n for n in names}
    safe_extract(path, folder, wanted)
    (folder / _SIDECAR).write_text(stamp)
    return folder


def load_cifar10(split: str = "train", *, root=None, mirrors=None, archive=None,
                 timeout=DEFAULT_TIMEOUT, progress=None):
    """The full CIFAR-10 ``split``, downloaded (or from the cache); no fallback.

    Parameters
    ----------
    split : {"train", "test"}
    root : path or None
        Cache folder (see :func:`minilplr.data.download.cache_dir`).
    mirrors : sequence of str or None
        Base URLs (default :data:`CIFAR_MIRRORS`).
    archive : RemoteFile or None
        Name, size, checksum of the tarball (default :data:`CIFAR_ARCHIVE`);
        tests inject a small one.

    Returns
    -------
    images : uint8 array (N, 3, 32, 32)
    labels : uint8 array (N,), values 0-9

    Raises
    ------
    minilplr.data.download.NetworkUnavailable, DownloadError, UnsafeArchiveError, CIFARFormatError
    """
    if split not in CIFAR_MEMBERS:
        raise ValueError(f"split: expected one of {tuple(CIFAR_MEMBERS)}, got {split!r}")
    root = cache_dir(root)
    archive = CIFAR_ARCHIVE if archive is None else archive
    mirrors = CIFAR_MIRRORS if mirrors is None else mirrors
    folder = _extracted(root, archive, mirrors, timeout, progress)
    parts = [parse_cifar_batch((folder / n).read_bytes(), where=str(folder / n)) for n in CIFAR_MEMBERS[split]]
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


def _check_classes(classes, name: str) -> tuple:
    try:
        classes = tuple(int(c) for c in classes)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected 5 distinct class indices 0-9, got {classes!r}") from None
    if len(classes) != 5 or len(set(classes)) != 5 or not all(0 <= c <= 9 for c in classes):
        raise ValueError(f"{name}: expected 5 distinct class indices 0-9, got {classes!r}")
    return classes


def cifar5(classes=(0, 1, 2, 3, 4), n_train=2500, seed: int = 0, source: str = "auto", *,
           dtype=np.float32, offline_digits=(0, 1, 2, 3, 4), split: str = "train", **download_kw) -> Dataset:
    """The 5-class CIFAR-10 task of the LPLR paper's Fig. 3 (choices in the module docstring).

    Parameters
    ----------
    classes : 5 ints
        CIFAR-10 label indices; ``classes[k]`` gets label ``k``.  Default:
        airplane, automobile, bird, cat, deer.
    n_train : int or None
        Samples ``N``, a multiple of 5, ``N/5`` per class, drawn without
        replacement (``None``: all of the rarest class's count per class).
        The offline fallback has at most 500 per digit.
    seed : int
        Seed of the draw and of the sample order.
    source : {"auto", "download", "offline"}
        As in :func:`minilplr.data.binary_mnist`.
    dtype : float dtype
        Of ``X``.
    offline_digits : 5 ints
        MNIST digits standing in for the classes without network.
    **download_kw
        ``root``, ``mirrors``, ``archive``, ``timeout``, ``progress`` of
        :func:`load_cifar10`.

    Returns
    -------
    Dataset
        ``X`` ``(N, C, H, W)``: ``(N, 3, 32, 32)`` for CIFAR-10,
        ``(N, 1, 32, 32)`` for the MNIST fallback; ``y`` int64 ``(N,)`` in
        ``0..4``; host NumPy arrays; ``description`` names the data used.
    """
    classes = _check_classes(classes, "classes")
    offline_digits = _check_classes(offline_digits, "offline_digits")
    check_source(source)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype: expected a floating dtype, got {dtype}")
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
    idx = balanced_indices(labels, pool_classes, n_train, seed)
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
            f"CIFAR-10 {split} set ({labels.size:,} images, binary version checked against its pinned checksum); "
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
