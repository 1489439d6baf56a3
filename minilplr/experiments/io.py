"""Results on disk: one :mod:`minilplr.store` unit per results file, verified on reading.

An experiment's results (a dict of plain JSON values and NumPy arrays) are
the unit ``results.json`` + ``results.npz``: the JSON records the SHA-256 of
the arrays file and of its own content, so a JSON beside another run's
arrays (a run killed between the two renames, two runs writing one folder),
a truncated or garbled file, or a number edited in the JSON, are all
detected when read.  A damaged unit is moved aside with one line and
read as absent, so the experiment is recomputed instead of failing on every
rerun.  Splitting, joining, hashing and atomic writing live in
:mod:`minilplr.store` only; this module names the results files.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..store import config_hash, load_or_discard, save_unit

__all__ = ["save_results", "load_results", "config_hash"]

_log = logging.getLogger("minilplr.experiments")


def save_results(folder: Path, results: dict, name: str = "results") -> Path:
    """Save ``results`` as the unit ``folder/<name>.json`` + ``folder/<name>.npz`` (compressed, atomic)."""
    return save_unit(folder, name, results, compress=True)


def load_results(folder: Path, name: str = "results", log=None):
    """The results saved by :func:`save_results`, or ``None`` if there are none or they were damaged.

    A damaged pair is moved aside (``<file>.damaged-<time>``) and reported in
    one line to ``log`` (default: a warning on the ``minilplr.experiments``
    logger), so the caller recomputes.
    """
    return load_or_discard(folder, name, log=log or _log.warning)
