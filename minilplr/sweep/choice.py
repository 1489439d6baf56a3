"""Where every grid of a whole run goes: the command line chooses once, the experiments never take an executor.

::

    with sweep.use(workers=4):            # run_all.py --workers 4
        run_experiments(...)              # every run_cells in here uses 4 local worker processes
    with sweep.use(cluster="tcp://scheduler:8786"):   # run_all.py --cluster tcp://scheduler:8786
        ...

:func:`run_cells <minilplr.sweep.driver.run_cells>` asks :func:`current_executor`
for its executor, and reads :func:`current_threads` and :func:`current_usage`.
The choice is checked when the block opens, and a remote cluster is reached
then (no scheduler there: :class:`~minilplr.sweep.executors.ClusterUnavailable`
before anything runs); local workers and a local cluster start when a grid
first asks for them (a run without grids starts nothing).  The executor stops
when the block ends, Ctrl-C included (its workers are ended, not waited for).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import threading

from ..validate import check_int
from .cell import DEFAULT_THREADS
from .executors import InProcess, check_cluster, check_workers, dask, processes

__all__ = ["use", "current_executor", "current_threads", "current_usage"]

#: ``{"workers", "cluster", "threads", "usage", "executor", "error"}`` inside :func:`use`, else ``None``.
_CHOICE: dict | None = None


def _check(workers, cluster, threads):
    """``(workers, cluster, threads)`` checked: workers up to the cores, an address with Dask, workers only locally."""
    if workers is not None:
        workers = check_workers(workers)
    if cluster is not None:
        cluster = check_cluster(cluster)
        if workers is not None and cluster != "local":
            raise ValueError(f"workers: only with cluster='local' (a running cluster's workers are chosen where it "
                             f"is started), got workers={workers} with cluster={cluster!r}")
    return workers, cluster, check_int("threads", threads, 1)


@contextlib.contextmanager
def _ctrl_c_held(raise_after: bool):
    """Ctrl-C inside the block waits for its end (main thread only); then ``KeyboardInterrupt`` if ``raise_after``.

    Stopping workers takes a moment; a Ctrl-C pressed meanwhile would
    otherwise break the shutdown half-way and print tracebacks.  When the
    run is already stopping (an error, an earlier Ctrl-C), a press here
    changes nothing: that exception, with its message, goes on.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed = []
    before = signal.signal(signal.SIGINT, lambda *_: pressed.append(1))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
    if pressed and raise_after:
        raise KeyboardInterrupt("interrupted while the grid's workers were stopping; every result is saved")


@contextlib.contextmanager
def use(*, workers: int | None = None, cluster: str | None = None, threads: int = DEFAULT_THREADS, usage=None):
    """Within the block, every :func:`~minilplr.sweep.driver.run_cells` uses the chosen executor.

    Parameters
    ----------
    workers : int, optional
        :func:`~minilplr.sweep.executors.processes` ``(workers)``, at most one
        per core; with ``cluster="local"``, the number of local Dask workers.
    cluster : str, optional
        :func:`~minilplr.sweep.executors.dask` ``(cluster)``: a scheduler's
        address, or ``"local"``.  Neither: :class:`~minilplr.sweep.executors.InProcess`.
    threads : int
        The BLAS threads every cell is pinned to, whatever the executor
        (:mod:`minilplr.sweep.cell`); default 1.
    usage : optional
        What records a cell's phases and memory where it runs away from the
        driver (:class:`minilplr.experiments.timing.CellUsage`); ``None``: nothing.
    """
    global _CHOICE
    workers, cluster, threads = _check(workers, cluster, threads)
    mine = {"workers": workers, "cluster": cluster, "threads": threads, "usage": usage, "executor": None,
            "error": None}
    if cluster is not None and cluster != "local":
        mine["executor"] = dask(cluster)  # reached now: a wrong address fails before any experiment runs
    before, _CHOICE = _CHOICE, mine
    clean = False
    try:
        yield
        clean = True
    finally:
        _CHOICE = before
        if mine["executor"] is not None:
            with _ctrl_c_held(raise_after=clean):
                mine["executor"].shutdown(wait=clean, cancel_futures=not clean)


def current_threads() -> int:
    """The BLAS threads :func:`use` pins every cell to (:data:`~minilplr.sweep.cell.DEFAULT_THREADS` outside it)."""
    return DEFAULT_THREADS if _CHOICE is None else _CHOICE["threads"]


def current_usage():
    """The usage recorder :func:`use` was given, or ``None``."""
    return None if _CHOICE is None else _CHOICE["usage"]


def current_executor() -> concurrent.futures.Executor:
    """The executor :func:`use` chose (started on first call), or a new :class:`InProcess` outside it."""
    if _CHOICE is None or (_CHOICE["workers"] is None and _CHOICE["cluster"] is None):
        return InProcess()
    if _CHOICE["error"] is not None:  # a cluster that could not be reached: fail each sweep at once, not after a wait
        raise _CHOICE["error"]
    if getattr(_CHOICE["executor"], "_broken", False):  # a worker died (out of memory?): a new pool for the next grid
        _CHOICE["executor"].shutdown(wait=False, cancel_futures=True)
        _CHOICE["executor"] = None
    if _CHOICE["executor"] is None:
        try:
            if _CHOICE["cluster"] is not None:
                _CHOICE["executor"] = dask(_CHOICE["cluster"], _CHOICE["workers"])
            else:
                _CHOICE["executor"] = processes(_CHOICE["workers"])
        except Exception as exc:
            _CHOICE["error"] = exc
            raise
    return _CHOICE["executor"]
