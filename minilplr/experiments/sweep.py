"""Sweeps: a grid of independent runs, in this process, on local workers, or on a Dask cluster.

A grid (widths × step sizes × seeds, …) is a set of *cells*, each a small
JSON configuration, and one top-level function ``fn(cell) -> dict`` that
runs a cell and returns its results as host data.  :func:`run_cells` runs
the cells through an *executor* (the interface of
:mod:`concurrent.futures`) and keeps the bookkeeping in one place:

* every result comes back to this process (the *driver*), which writes it
  atomically as the :mod:`minilplr.store` unit ``<out_dir>/cells/<key>``;
  workers never write files, so a cluster needs no shared file system;
* a cell already saved there is loaded, not run again: a sweep that was
  killed resumes with only its missing cells; a damaged cell file is moved
  aside (one line) and the cell is run again;
* a cell that raises is that cell's failure, one line, and the others are
  still run and saved; at the end :class:`CellsFailed` names the failures
  (run the sweep again to redo only those).

Writing a grid
--------------
::

    import numpy as np

    from minilplr.backend import get_backend, to_device, to_host
    from minilplr.experiments import sweep
    from minilplr.nn.models import mlp
    from minilplr.train.loops import train_gd
    from minilplr.train.optim import GD

    def gd_cell(cell):                                 # top level: workers import it by name
        rng = np.random.default_rng(cell["data_seed"])  # host data, built in the worker from the cell
        X, y = rng.standard_normal((64, cell["D"])), rng.standard_normal((64, 1))
        model = mlp(cell["D"], cell["width"], 3, 1, seed=cell["seed"], dtype="float64",
                    backend=cell["backend"])           # the backend travels in the cell
        be = model.backend
        hist = train_gd(model, to_device(X, be), to_device(y, be), GD(cell["lr"]), cell["steps"])
        return {"loss": hist.arrays()["loss"],        # NumPy arrays and plain numbers only
                "W1": to_host(model.params["fc1.W"]),
                "final_drift": hist["final_param_drift"]}

    def run(config, out_dir, backend=None, progress=True):
        cells = [{"D": 20, "width": h, "lr": lr, "seed": s, "data_seed": 0, "steps": config["steps"],
                  "backend": get_backend(backend).name}
                 for h in config["widths"] for lr in config["lrs"] for s in config["seeds"]]
        results = sweep.run_cells(gd_cell, cells, out_dir, progress=progress)
        # results: {config_hash(cell): gd_cell(cell)}, in the order of ``cells``
        ...

A line per finished cell (``cell 3/12 done in 1.2 s on host/pid: <key> {...}``)
goes to the ``minilplr.experiments`` logger (``run_all.py --verbose``) or
to ``log=``; failures are warnings.  ``allow_failures=True`` returns the
cells that finished, ``.failed`` naming the others, instead of raising.

``cells`` may also be a dict ``{name: cell}`` with readable names
(``{"h64-lr0.1": {...}}``); the results then come back under those names.
A list's cells are named by :func:`minilplr.store.config_hash`, so changing
any value of a cell gives it a new name and a fresh run.  A named cell whose
saved configuration differs from the asked one is run again.

Rules for ``fn``, so that the same grid runs on any executor:

* it is a function at the top level of an importable module (checked at
  once, even in this process: a grid that runs here runs on workers too);
* everything it needs is in the cell: workers do not see the driver's
  :func:`~minilplr.backend.set_backend`, global state or open files, so put
  the backend's name (``get_backend(backend).name``) and the seeds in the
  cell, and build data and models inside ``fn``;
* it returns a dict of host data (dicts, lists, numbers, strings, NumPy
  arrays): device arrays come back through :func:`~minilplr.backend.to_host`
  (checked in the worker, so no device array is ever pickled).

Choosing where the cells run
----------------------------
Experiments do not take an executor: :func:`run_cells` uses
:func:`current_executor`, which the command line chooses for the whole run
with :func:`use`::

    with sweep.use(workers=4):            # run_all.py --workers 4
        run_experiments(...)              # every run_cells in here uses 4 local worker processes
    with sweep.use(cluster="tcp://scheduler:8786"):   # run_all.py --cluster tcp://scheduler:8786
        ...

The executors:

:class:`InProcess` (the default)
    Runs each cell at once, in this process, one after another.
:func:`processes` ``(n)``
    ``n`` local worker processes (:class:`concurrent.futures.ProcessPoolExecutor`),
    each limited to ``max(1, cores // n)`` BLAS/OpenMP threads with
    ``threadpoolctl``, so ``n`` workers do not fight over the cores.
:func:`dask` ``(address)``
    A Dask distributed cluster: the scheduler's address, or ``"local"`` for
    a ``LocalCluster`` on this machine (one thread per worker process).
    Needs the optional extra: ``pip install -e ".[cluster]"``.  Every worker
    needs minilplr installed (it imports ``fn`` by name); with one GPU per
    worker (e.g. ``dask-cuda``'s ``LocalCUDACluster``) put ``"backend": "cupy"``
    in the cells.  Dask's workers set their own BLAS threads (one, by default).

Any other :class:`concurrent.futures.Executor` may be passed as
``run_cells(..., executor=...)``.

Local workers are *spawned* (fresh interpreters, see :class:`Processes`), so
a script of your own that runs a sweep on them keeps its top-level code under
``if __name__ == "__main__":`` (each worker imports the main module;
``scripts/run_all.py`` does this), and its ``fn`` lives in an importable module.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import multiprocessing
import os
import pickle
import re
import socket
import time
import traceback
from pathlib import Path

import numpy as np

from ..store import config_hash, load_or_discard, save_unit, to_jsonable
from ..validate import check_int

__all__ = ["run_cells", "Results", "CellsFailed", "ClusterUnavailable", "InProcess", "processes", "dask",
           "use", "current_executor", "check_cluster", "blas_threads_per_worker"]

_LOG = logging.getLogger("minilplr.experiments")
#: Readable cell names: they become file names.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.,=+-]*")


class CellsFailed(RuntimeError):
    """Some cells raised; ``.failed`` maps each one's key to its one-line error, ``.results`` holds the others."""

    def __init__(self, failed: dict, results: dict, where: Path):
        self.failed, self.results, self.where = dict(failed), results, Path(where)
        shown = "; ".join(f"{k}: {v}" for k, v in list(self.failed.items())[:3])
        more = f"; and {len(self.failed) - 3} more" if len(self.failed) > 3 else ""
        super().__init__(f"{len(self.failed)} of {len(self.failed) + len(results)} cells failed ({shown}{more}); "
                         f"the others are saved in {self.where}: run again to redo only the failed cells")


class ClusterUnavailable(RuntimeError):
    """``--cluster`` was asked for but Dask distributed is not installed."""


class Results(dict):
    """``{key: result}`` of the cells that finished, in the order of the grid; ``.failed``: ``{key: error line}``."""

    failed: dict


# --- executors ---------------------------------------------------------------------------------------------------

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


def _cores() -> int:
    """The cores this process may run on (the affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def blas_threads_per_worker(workers: int) -> int:
    """``max(1, cores // workers)``: the BLAS/OpenMP threads each of ``workers`` local processes gets."""
    return max(1, _cores() // check_int("workers", workers, 1))


#: Kept alive in each worker: the thread limits last as long as this object.
_LIMITS = None


def _start_worker(threads: int) -> None:
    """Worker initializer: limit every BLAS/OpenMP pool here to ``threads`` threads; exit when the driver dies.

    A pool's workers wait for work forever, so a driver killed outright
    (``kill -9``, out of memory) would leave them behind: a daemon thread
    waits on the parent's sentinel and ends this process when it goes.
    """
    global _LIMITS
    import threading
    from multiprocessing.connection import wait
    from threadpoolctl import threadpool_limits

    _LIMITS = threadpool_limits(limits=threads)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (wait([parent.sentinel]), os._exit(1)), daemon=True).start()


class Processes(concurrent.futures.ProcessPoolExecutor):
    """``workers`` local processes, each limited to ``threads`` BLAS/OpenMP threads (see :func:`processes`)."""

    def __init__(self, workers: int, threads: int):
        # spawn: each worker is a fresh interpreter with the driver's current environment and sys.path.  fork
        # would copy a process whose BLAS, CUDA or Dask threads may hold locks (children can deadlock, and
        # CUDA cannot be used in a forked child); forkserver forks from a server started once, which keeps the
        # environment of that moment (a CUDA_VISIBLE_DEVICES or thread setting made later would be ignored).
        # The cost, an interpreter and numpy started per worker, is paid once per pool.
        super().__init__(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                         initializer=_start_worker, initargs=(threads,))
        self.workers, self.threads = workers, threads
        self.description = f"{workers} local worker process(es), {threads} BLAS thread(s) each"


def processes(workers: int, threads: int | None = None) -> Processes:
    """``workers`` local processes with ``threads`` BLAS threads each (default ``max(1, cores // workers)``).

    The processes start when the first cell is submitted; shut the executor
    down (``with processes(2) as ex: …``) to stop them.
    """
    workers = check_int("workers", workers, 1)
    threads = blas_threads_per_worker(workers) if threads is None else check_int("threads", threads, 1)
    return Processes(workers, threads)


def check_cluster(address) -> str:
    """``address`` if it names a Dask scheduler (``tcp://host:8786``) or ``"local"`` and Dask is installed.

    Raises
    ------
    ValueError
        ``cluster: expected …`` for an empty or non-string address.
    ClusterUnavailable
        Dask distributed is not installed (names ``--cluster`` and the ``.[cluster]`` extra).
    """
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"cluster: expected a Dask scheduler address such as tcp://host:8786, or 'local', "
                         f"got {address!r}")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ClusterUnavailable("--cluster needs Dask distributed, which is not installed: "
                                 "pip install -e '.[cluster]'") from None
    return address.strip()


class DaskExecutor(concurrent.futures.Executor):
    """A Dask distributed client seen as a :mod:`concurrent.futures` executor (see :func:`dask`)."""

    def __init__(self, address: str, workers: int | None = None):
        import distributed

        self._cluster = None
        if address == "local":
            self._cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                     dashboard_address=None)
            self._client = distributed.Client(self._cluster)
        else:
            self._client = distributed.Client(address)
        self._pool = self._client.get_executor(pure=False)  # its futures are concurrent.futures.Future
        n = len(self._client.scheduler_info().get("workers", {}))
        self.description = f"the Dask cluster at {self._client.scheduler.address} ({n} worker(s) now)"

    def submit(self, fn, /, *args, **kwargs):
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, *, cancel_futures=False):
        with contextlib.suppress(Exception):
            self._pool.shutdown(wait=wait and not cancel_futures)
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def dask(address: str, workers: int | None = None) -> DaskExecutor:
    """An executor on the Dask cluster at ``address``; ``"local"`` starts a ``LocalCluster`` of ``workers`` processes.

    Needs ``pip install -e ".[cluster]"`` (:class:`ClusterUnavailable` otherwise).
    """
    workers, address = _check_choice(workers, address)
    return DaskExecutor(address, workers)


# --- choosing the executor for a whole run ----------------------------------------------------------------------

_CHOICE: dict | None = None  # {"workers", "cluster", "executor", "error"} inside use(), else None


def _check_choice(workers, cluster):
    """``(workers, cluster)`` checked: a positive integer, an address with Dask installed, workers only locally."""
    if workers is not None:
        workers = check_int("workers", workers, 1)
    if cluster is not None:
        cluster = check_cluster(cluster)
        if workers is not None and cluster != "local":
            raise ValueError(f"workers: only with cluster='local' (a running cluster's workers are chosen where it "
                             f"is started), got workers={workers} with cluster={cluster!r}")
    return workers, cluster


@contextlib.contextmanager
def use(*, workers: int | None = None, cluster: str | None = None):
    """Within the block, :func:`current_executor` (and so every :func:`run_cells`) uses the chosen executor.

    ``workers=N``: :func:`processes` ``(N)``; ``cluster=ADDRESS``: :func:`dask`
    ``(ADDRESS)`` (with ``cluster="local"``, ``workers`` sets the number of
    local Dask workers); neither: :class:`InProcess`.  The arguments are
    checked at once; the executor starts when a sweep first asks for it (a run
    without grids starts nothing) and is shut down when the block ends.
    """
    global _CHOICE
    workers, cluster = _check_choice(workers, cluster)
    before, _CHOICE = _CHOICE, {"workers": workers, "cluster": cluster, "executor": None, "error": None}
    mine = _CHOICE
    clean = False
    try:
        yield
        clean = True
    finally:
        _CHOICE = before
        if mine["executor"] is not None:
            mine["executor"].shutdown(wait=clean, cancel_futures=not clean)


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


def _describe(executor) -> str:
    return getattr(executor, "description", type(executor).__name__)


# --- in the worker --------------------------------------------------------------------------------------------

def _one_line(exc) -> str:
    """``"Type: message"``, a multi-line message folded onto one line."""
    text = "; ".join(p.strip() for p in str(exc).splitlines() if p.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_host(obj, where: str = "result") -> None:
    """``TypeError`` naming the place unless ``obj`` is host data (dicts, lists, numbers, strings, NumPy arrays)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: expected string keys, got {k!r}")
            _check_host(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_host(v, f"{where}[{i}]")
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"{where}: expected a numeric NumPy array, got one of dtype object")
    elif not isinstance(obj, (str, int, float, bool, np.generic)) and obj is not None:
        raise TypeError(f"{where}: expected host data (dicts, lists, numbers, strings, NumPy arrays), got "
                        f"{type(obj).__module__}.{type(obj).__name__} (device arrays: minilplr.backend.to_host)")


def _call(fn, cell) -> dict:
    """Run one cell where the executor puts it; an ``Exception`` comes back as text (any exception pickles so)."""
    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}/{os.getpid()}"
    try:
        result = fn(cell)
        if not isinstance(result, dict):
            raise TypeError(f"result: expected a dict, got {type(result).__name__}")
        _check_host(result)
    except Exception as exc:
        return {"error": _one_line(exc), "traceback": traceback.format_exc(), "worker": worker,
                "seconds": time.perf_counter() - t0}
    return {"result": result, "worker": worker, "seconds": time.perf_counter() - t0}


# --- the driver ---------------------------------------------------------------------------------------------------

def _keyed(cells) -> dict:
    """``{key: cell}``: a dict's own names, or each listed cell's config_hash."""
    if isinstance(cells, dict):
        for name in cells:
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise ValueError(f"cells: expected names of letters, digits and _.,=+- (file names), got {name!r}")
        items = list(cells.items())
    else:
        items = []
        for i, cell in enumerate(cells):
            try:
                items.append((config_hash(cell), cell))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"cells[{i}]: expected a JSON configuration, got {cell!r} ({exc})") from None
    keyed = {}
    for key, cell in items:
        if not isinstance(cell, dict):
            raise ValueError(f"cells[{key!r}]: expected a dict configuration, got {type(cell).__name__}")
        if key in keyed:
            raise ValueError(f"cells: the cell {json.dumps(to_jsonable(cell), sort_keys=True)} is listed twice")
        keyed[key] = cell
    return keyed


def _check_fn(fn) -> None:
    """``fn`` must pickle by name, as every worker executor needs; checked here so a grid fails the same everywhere."""
    if not callable(fn):
        raise TypeError(f"fn: expected a function, got {type(fn).__name__}")
    try:
        pickle.dumps(fn)
    except Exception:
        raise TypeError(f"fn: expected a function defined at the top level of a module (workers import it by "
                        f"name), got {getattr(fn, '__qualname__', fn)!r}") from None


def _load_cell(where: Path, key: str, cell: dict, log):
    """The saved result of ``cell``, or ``None`` (absent; damaged: moved aside; saved for another configuration)."""
    saved = load_or_discard(where, key, log=log)
    if saved is None:
        return None
    if saved.get("cell_hash") != config_hash(cell):
        log(f"cell {key}: the result saved in {where} is of another configuration; running it again")
        return None
    return saved["result"]


def _short(cell: dict, width: int = 90) -> str:
    text = json.dumps(to_jsonable(cell), sort_keys=True)
    return text if len(text) <= width else text[:width - 1] + "…"


def run_cells(fn, cells, out_dir, *, executor=None, folder: str = "cells", progress: bool = True,
              allow_failures: bool = False, log=None) -> Results:
    """Run ``fn`` on every cell not yet saved in ``out_dir/folder``; returns every cell's result.

    Parameters
    ----------
    fn : callable (cell: dict) -> dict
        Top-level function; returns host data (see the module docstring).
    cells : list of dict, or dict name -> dict
        JSON configurations.  Listed cells are keyed by
        :func:`minilplr.store.config_hash`; a dict's names are its keys.
    out_dir : path
        The experiment's folder; cell ``key`` is the unit ``out_dir/folder/key``.
    executor : concurrent.futures.Executor, optional
        Default :func:`current_executor` (what :func:`use` chose, else in-process).
        Not shut down here.
    progress : bool
        A progress bar over the cells (on a terminal only) and a line per finished cell.
    allow_failures : bool
        ``False`` (default): raise :class:`CellsFailed` at the end if a cell
        failed.  ``True``: return the others; ``Results.failed`` names the failures.
    log : callable(str), optional
        Where the lines go; default the ``minilplr.experiments`` logger
        (per-cell lines at INFO, i.e. ``run_all.py --verbose``; failures as warnings).

    Returns
    -------
    Results
        ``{key: result}`` in the order of ``cells``, as stored (tuples read
        as lists, NumPy scalars as Python numbers, arrays as arrays), whether
        loaded or just run.
    """
    info = log or _LOG.info
    warn = log or _LOG.warning
    _check_fn(fn)
    keyed = _keyed(cells)
    where = Path(out_dir) / folder
    results, todo = {}, []
    for key, cell in keyed.items():
        saved = _load_cell(where, key, cell, warn)
        if saved is None:
            todo.append(key)
        else:
            results[key] = saved
    ex = executor if executor is not None else (current_executor() if todo else None)
    total, done, failed, pending = len(keyed), len(results), {}, {}
    info(f"{total} cell(s) in {where}: {len(results)} saved, {len(todo)} to run"
         + (f" on {_describe(ex)}" if todo else ""))
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=done, desc="cells", leave=False, dynamic_ncols=True, disable=None)

    def collect(future):
        nonlocal done
        key = pending.pop(future)
        done += 1
        try:
            out = future.result()
        except Exception as exc:  # the executor's own failure (a worker died, a lost connection)
            out = {"error": _one_line(exc), "traceback": traceback.format_exc(), "worker": "?", "seconds": 0.0}
        if "error" in out:
            failed[key] = out["error"]
            warn(f"cell {done}/{total} FAILED: {key}: {out['error']}")
            _LOG.info("cell %s, %s: %s", key, _short(keyed[key]), out["traceback"])  # the traceback: --verbose
        else:
            save_unit(where, key, {"cell": keyed[key], "cell_hash": config_hash(keyed[key]),
                                   "result": out["result"], "seconds": out["seconds"], "worker": out["worker"]})
            results[key] = to_jsonable(out["result"])  # what a later run loads: lists for tuples, numbers for scalars
            if progress:
                info(f"cell {done}/{total} done in {out['seconds']:.1f} s on {out['worker']}: {key} "
                     f"{_short(keyed[key])}")
        if bar is not None:
            bar.update(1)

    try:
        for key in todo:
            pending[ex.submit(_call, fn, keyed[key])] = key
            for future in [f for f in pending if f.done()]:  # in this process: saved before the next cell runs
                collect(future)
        for future in concurrent.futures.as_completed(list(pending)):
            collect(future)
    except BaseException:  # Ctrl-C or a failed write: cells not started are cancelled, those saved stay saved
        for future in pending:
            future.cancel()
        raise
    finally:
        if bar is not None:
            bar.close()
    out = Results((k, results[k]) for k in keyed if k in results)
    out.failed = {k: failed[k] for k in keyed if k in failed}  # in the grid's order, not the order they finished
    if out.failed and not allow_failures:
        raise CellsFailed(out.failed, out, where)
    return out
