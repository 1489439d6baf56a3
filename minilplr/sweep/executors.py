"""Where a sweep's cells run: this process, local worker processes, or a Dask cluster.

Each executor has the interface of :mod:`concurrent.futures` (``submit``
returns a future, ``shutdown`` stops it) and a one-line ``description`` that
the driver prints:

:class:`InProcess` (the default)
    Runs each cell at once, in this process, one after another.
:func:`processes` ``(n)``
    ``n`` local worker processes (:class:`concurrent.futures.ProcessPoolExecutor`),
    at most one per core.
:func:`dask` ``(address)``
    A Dask distributed cluster: the scheduler's address, or ``"local"`` for
    a ``LocalCluster`` of worker processes on this machine (one task at a time
    each).  Needs the optional extra: ``pip install -e ".[cluster]"``.  Every
    worker needs minilplr installed (it imports the cell function by name); with
    one GPU per worker (e.g. ``dask-cuda``'s ``LocalCUDACluster``) put
    ``"backend": "cupy"`` in the cells.

How many BLAS threads a cell computes with is not the executor's business:
the driver pins it around every cell, wherever it runs
(:mod:`minilplr.sweep.cell`), so that every executor gives the same bits.

Ctrl-C belongs to the driver.  A terminal sends it to every process of the
foreground job, workers included; the worker processes started here ignore it
(each would otherwise print its own traceback), and the driver, interrupted,
stops them: :meth:`Processes.shutdown` with ``cancel_futures=True`` ends the
workers at once instead of waiting for the cells they are computing.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import re
import signal
import threading

from ..validate import check_int

__all__ = ["InProcess", "Processes", "processes", "DaskExecutor", "dask", "ClusterUnavailable", "check_cluster",
           "check_workers", "cores", "ignoring_ctrl_c"]


class ClusterUnavailable(RuntimeError):
    """``--cluster`` cannot be used: Dask distributed is not installed, or no scheduler answers at the address."""


def cores() -> int:
    """The cores this process may run on (the affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_workers(workers) -> int:
    """``workers`` as an int between 1 and :func:`cores`, or ``ValueError`` naming ``workers``.

    Each cell computes on one core's worth of BLAS threads (the pin), so more
    local workers than cores only share the cores and multiply the memory.
    """
    n = check_int("workers", workers, 1)
    if n > cores():
        raise ValueError(f"workers: expected at most {cores()} (the cores this process may use; more workers only "
                         f"share them and multiply the memory), got {workers!r}")
    return n


@contextlib.contextmanager
def ignoring_ctrl_c():
    """Inside the block, Ctrl-C (``SIGINT``) is ignored here, and so in every process started inside it.

    A process inherits an ignored signal across ``exec``, and Python leaves an
    ignored ``SIGINT`` ignored, so workers started in this block never raise
    ``KeyboardInterrupt``.  Outside the main thread (where signals cannot be
    set) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


class InProcess(concurrent.futures.Executor):
    """A serial executor with :mod:`concurrent.futures`' interface: ``submit`` runs the call at once, here.

    An ``Exception`` is kept in the returned future, as a pool would; Ctrl-C
    (``KeyboardInterrupt``) is not caught, so it stops the sweep at once.
    """

    description = "this process"

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


def start_worker() -> None:
    """Worker initializer: ignore Ctrl-C (the driver's to handle), and exit when the driver dies.

    A pool's workers wait for work forever, so a driver killed outright
    (``kill -9``, out of memory) would leave them behind: a daemon thread
    waits on the parent's sentinel and ends this process when it goes.
    """
    from multiprocessing.connection import wait

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (wait([parent.sentinel]), os._exit(1)), daemon=True).start()


class Processes(concurrent.futures.ProcessPoolExecutor):
    """``workers`` local processes (see :func:`processes`)."""

    def __init__(self, workers: int):
        # spawn: each worker is a fresh interpreter with the driver's current environment and sys.path.  fork
        # would copy a process whose BLAS, CUDA or Dask threads may hold locks (children can deadlock, and
        # CUDA cannot be used in a forked child); forkserver forks from a server started once, which keeps the
        # environment of that moment (a CUDA_VISIBLE_DEVICES or thread setting made later would be ignored).
        # The cost, an interpreter and numpy started per worker, is paid once per pool.
        super().__init__(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                         initializer=start_worker)
        self.workers = workers
        self.description = f"{workers} local worker process(es)"

    def submit(self, fn, /, *args, **kwargs):
        with ignoring_ctrl_c():  # the pool starts its workers inside submit: they inherit the ignored Ctrl-C
            return super().submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Stop the pool; with ``cancel_futures=True`` (Ctrl-C, an error) the workers are ended at once.

        A worker computing a cell would otherwise finish it first (minutes, for
        a large cell), and the interpreter would wait for it at exit.
        """
        if cancel_futures:
            for p in list((getattr(self, "_processes", None) or {}).values()):  # the pool's own table of workers
                with contextlib.suppress(Exception):
                    p.terminate()
        super().shutdown(wait=wait or cancel_futures, cancel_futures=cancel_futures)


def processes(workers: int) -> Processes:
    """``workers`` local processes (at most :func:`cores`); they start when the first cell is submitted.

    Shut the executor down (``with processes(2) as ex: …``) to stop them.
    """
    return Processes(check_workers(workers))


#: A Dask scheduler address: ``[scheme://]host:port`` (host a name, IPv4 or [IPv6]), the port a number.
_ADDRESS = re.compile(r"(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)"
                      r":(?P<port>[0-9]{1,5})")
_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss")


def check_cluster(address) -> str:
    """``address`` if it is ``"local"`` or a Dask scheduler's address (``tcp://host:8786``) and Dask is installed.

    Only the form is checked here; the scheduler is reached when a grid first
    needs it (:class:`DaskExecutor`).

    Raises
    ------
    ValueError
        ``cluster: expected …`` for anything else (``'not an address'``, a port that is not a number).
    ClusterUnavailable
        Dask distributed is not installed (names ``--cluster`` and the ``.[cluster]`` extra).
    """
    want = "'local' or a Dask scheduler address such as tcp://host:8786"
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"cluster: expected {want}, got {address!r}")
    text = address.strip()
    if text != "local":
        m = _ADDRESS.fullmatch(text)
        if m is None or not 0 < int(m["port"]) < 65536 or (m["scheme"] or "tcp") not in _SCHEMES:
            raise ValueError(f"cluster: expected {want} ([{'|'.join(_SCHEMES)}://]host:port, the port a number "
                             f"from 1 to 65535), got {address!r}")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ClusterUnavailable("--cluster needs Dask distributed, which is not installed: "
                                 "pip install -e '.[cluster]'") from None
    return text


#: Seconds to wait for a scheduler to answer, and for a cluster to close.
CONNECT_TIMEOUT = 10


class DaskExecutor(concurrent.futures.Executor):
    """A Dask distributed client seen as a :mod:`concurrent.futures` executor (see :func:`dask`).

    Raises :class:`ClusterUnavailable`, one line, when no scheduler answers at
    ``address`` within :data:`CONNECT_TIMEOUT` seconds.
    """

    def __init__(self, address: str, workers: int | None = None):
        import distributed

        self._cluster = None
        try:
            if address == "local":
                with ignoring_ctrl_c():  # its worker processes start here, and inherit the ignored Ctrl-C
                    self._cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                                             processes=True, dashboard_address=":0",
                                                             silence_logs=logging.ERROR)
                self._client = distributed.Client(self._cluster)
            else:
                self._client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:  # refused, unreachable, no answer in time
            if self._cluster is not None:
                self._cluster.close()
            raise ClusterUnavailable(f"--cluster {address}: no Dask scheduler answered there within "
                                     f"{CONNECT_TIMEOUT} s ({type(exc).__name__}); start one "
                                     f"(dask scheduler) or use --cluster local") from None
        self._pool = self._client.get_executor(pure=False)  # its futures are concurrent.futures.Future
        n = len(self._client.scheduler_info().get("workers", {}))
        self.description = f"the Dask cluster at {self._client.scheduler.address} ({n} worker(s) now)"

    def submit(self, fn, /, *args, **kwargs):
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Close the client (and a local cluster); ``cancel_futures=True`` (Ctrl-C, an error) stops busy workers.

        Stopping a worker in the middle of a cell makes Dask log failures
        (a lost heartbeat, a worker killed after 4 s), with tracebacks: on
        that path they are expected, and Dask's logs are kept to critical
        ones, here and on the workers, until the cluster is closed.
        """
        quiet = logging.getLogger("distributed")
        level = quiet.level
        if cancel_futures:
            with contextlib.suppress(Exception):
                self._client.run(quiet_dask_logs)  # on every worker's event loop, busy or not
            quiet.setLevel(logging.CRITICAL)
        try:
            with contextlib.suppress(Exception):
                self._pool.shutdown(wait=wait and not cancel_futures)
            with contextlib.suppress(Exception):
                self._client.close(timeout=CONNECT_TIMEOUT)
            if self._cluster is not None:
                with contextlib.suppress(Exception):
                    self._cluster.close(timeout=CONNECT_TIMEOUT)
        finally:
            quiet.setLevel(level)


def quiet_dask_logs() -> None:
    """Keep Dask's logs to critical ones in this process (run on the workers of a cluster being stopped)."""
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def dask(address: str, workers: int | None = None) -> DaskExecutor:
    """An executor on the Dask cluster at ``address``; ``"local"`` starts a ``LocalCluster`` of ``workers`` processes.

    ``workers`` only with ``"local"`` (at most :func:`cores`; default Dask's
    choice); a running cluster's workers are chosen where it is started.
    Needs ``pip install -e ".[cluster]"`` (:class:`ClusterUnavailable` otherwise).
    """
    address = check_cluster(address)
    if workers is not None:
        workers = check_workers(workers)
        if address != "local":
            raise ValueError(f"workers: only with cluster='local' (a running cluster's workers are chosen where it "
                             f"is started), got workers={workers} with cluster={address!r}")
    return DaskExecutor(address, workers)
