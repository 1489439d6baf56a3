"""A user's own data for a study: an ``.npz`` with ``X (N, D)`` and ``y (N,)`` or ``(N, K)``, checked in one line."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["check_npz", "load_npz"]


class _Raise:
    """A checker without a file name in front (the cell's own error)."""

    def fail(self, key, expected, got):
        raise ValueError(f"{key}: expected {expected}, got {got}")


def load_npz(path, chk=None, key: str = "data"):
    """``(X (N, D), y (N, K))`` float64 host arrays from the ``.npz`` at ``path``, or one line naming ``key``.

    Checked: the file is a zip archive (what ``numpy.savez`` writes; anything
    else is refused before :func:`numpy.load`, which is called with
    ``allow_pickle=False``), holds ``X`` and ``y``, both real numbers, ``X``
    two-dimensional, ``y`` one- or two-dimensional with as many rows as ``X``,
    no dimension of size zero, every value finite, and at least ``N = 2`` samples.  ``y (N,)`` becomes ``(N, 1)``.
    """
    chk = chk or _Raise()
    p = Path(path)
    if not p.is_file():
        chk.fail(key, "an .npz file (numpy.savez)", f"{p} ({'a folder' if p.exists() else 'no such file'})")
    if not zipfile.is_zipfile(p):  # an .npz is a zip archive; np.load would try a pickle on anything else
        chk.fail(key, "an .npz file (numpy.savez: a zip archive of .npy arrays)", f"{p}, which is not one")
    try:
        with np.load(p, allow_pickle=False) as z:
            names = sorted(z.files)
            arrays = {nm: z[nm] for nm in ("X", "y") if nm in names}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "pickle" in reason.lower():  # an object array: say what it is, never how to load it unsafely
            reason = "it holds an array of Python objects"
        chk.fail(key, "an .npz of numeric arrays X and y (numpy.savez)", f"{p} ({reason})")
    missing = [nm for nm in ("X", "y") if nm not in arrays]
    if missing:
        chk.fail(key, "an .npz holding arrays named X and y", f"{p} without {' and '.join(missing)} (it holds "
                 f"{', '.join(names) or 'no arrays'})")
    X, y = arrays["X"], arrays["y"]
    for nm, a in (("X", X), ("y", y)):
        if a.dtype.kind not in "biuf":
            chk.fail(f"{key}.{nm}", "real numbers (an integer or float dtype)", f"dtype {a.dtype}")
    if X.ndim != 2:
        chk.fail(f"{key}.X", "shape (N, D)", f"shape {X.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        chk.fail(f"{key}.y", f"shape ({X.shape[0]},) or ({X.shape[0]}, K), one row per row of X", f"shape {y.shape}")
    if X.shape[0] < 2:
        chk.fail(f"{key}.X", "at least N = 2 samples", f"shape {X.shape}")
    if X.shape[1] < 1:
        chk.fail(f"{key}.X", "shape (N, D) with at least D = 1 feature", f"shape {X.shape}")
    if y.ndim == 2 and y.shape[1] < 1:
        chk.fail(f"{key}.y", "shape (N,) or (N, K) with at least K = 1 output", f"shape {y.shape}")
    for nm, a in (("X", X), ("y", y)):
        if not np.all(np.isfinite(a)):
            chk.fail(f"{key}.{nm}", "finite values", f"{int((~np.isfinite(a)).sum())} NaN/inf entries")
    return X.astype(np.float64), y.reshape(y.shape[0], -1).astype(np.float64)


def check_npz(path, chk, key: str = "data") -> None:
    """:func:`load_npz`'s checks, for the spec (before anything runs)."""
    load_npz(path, chk, key)


def file_sha256(path) -> str:
    """The SHA-256 of the file at ``path`` (hex): a user's data enters every cell's configuration by its content,
    so a changed file is a new configuration (recomputed), never mixed with the cells of the old one."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
