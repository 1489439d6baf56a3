"""Counting the crossings from device to host, which on a GPU are synchronisations: :func:`transfers`.

The strict stand-in (:mod:`minilplr.testing.strict`) calls :func:`count` at
every crossing back to the host: ``x.get()`` (so
:func:`~minilplr.backend.to_host` and :func:`~minilplr.backend.to_scalar`),
``x.item()``, ``float(x)``, ``int(x)``, ``bool(x)``, ``repr(x)``, and the
operations whose output size depends on the data (``nonzero``, ``unique``,
boolean-mask indexing …).  :func:`transfers` records them, with the line
that asked, so a test can pin the sync budget of a training step
(``tests/test_sync_budget.py``)::

    with transfers() as t:
        train_gd(model, X, y, GD(0.1), steps=3)
    print(t)   # how many, by the line that asked
"""
from __future__ import annotations

import collections
import contextlib
import os
import sys

__all__ = ["Transfers", "transfers", "count"]


class Transfers:
    """Device-to-host crossings recorded inside one :func:`transfers` block.

    Attributes
    ----------
    events : list of (kind, site)
        ``kind``: ``"to_scalar"``, ``"to_host"`` (the backend's doors),
        ``"get"``, ``"item"``, ``"tolist"``, ``"float"``, ``"int"``,
        ``"index"``, ``"bool"``, ``"repr"`` or ``"data-dependent shape"``;
        ``site``: ``"path:line (function)"`` of the first caller outside the
        backend, i.e. the line that asked for the sync.
    """

    def __init__(self):
        self.events: list[tuple[str, str]] = []

    @property
    def count(self) -> int:
        return len(self.events)

    def by_kind(self) -> dict:
        return dict(collections.Counter(k for k, _ in self.events))

    def by_site(self) -> dict:
        return dict(collections.Counter(s for _, s in self.events))

    def __str__(self):
        lines = [f"{n} x {s}" for s, n in self.by_site().items()]
        return f"{self.count} device->host transfers:" + "".join("\n  " + ln for ln in lines)


_LOGS: list[Transfers] = []
_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGE = os.path.dirname(_HERE)  # minilplr/
#: The stand-in's files and the backend's doors: a transfer is charged to the first line outside them.
_DOORS = {os.path.join(_HERE, f) for f in ("strict.py", "cupyx.py", "transfers.py")} | {
    os.path.join(_PACKAGE, "backend.py")}


@contextlib.contextmanager
def transfers():
    """Record the device-to-host transfers of the block: ``with transfers() as t: ...; t.count``.

    Blocks nest (each records what happened inside it).
    """
    log = Transfers()
    _LOGS.append(log)
    try:
        yield log
    finally:
        _LOGS.remove(log)


def count(kind: str) -> None:
    """Record one transfer in every open :func:`transfers` block (nothing to do when none is open)."""
    if not _LOGS:
        return
    f = sys._getframe(1)
    while f is not None and os.path.abspath(f.f_code.co_filename) in _DOORS:
        if f.f_code.co_name in ("to_scalar", "to_host"):
            kind = f.f_code.co_name  # the outermost backend door names the transfer
        f = f.f_back
    if f is None:
        site = "?"
    else:
        path = f.f_code.co_filename
        short = os.path.relpath(path, os.path.dirname(_PACKAGE)) if path.startswith(os.path.dirname(_PACKAGE)) else path
        site = f"{short}:{f.f_lineno} ({f.f_code.co_name})"
    for log in _LOGS:
        log.events.append((kind, site))
