"""One cell, where the executor puts it: the BLAS threads pinned, the result checked, an error made one line.

The driver (:mod:`minilplr.sweep.driver`) submits :func:`run_cell` to the
executor; it runs in this process, in a local worker or on a Dask worker, and
returns an *envelope*, a dict that always pickles back: the result (or the
error as one line and its traceback), where and how long it ran, the BLAS it
ran on, and what the cell used (its timing phases and its process's peak
memory) when the driver asks for it.

Why the BLAS threads are pinned
-------------------------------
A multithreaded BLAS splits a product's sums over its threads, so the same
product in float arithmetic gives different last bits with 1 thread and with
2 (the sums are added in another order).  Through a GD run, an NTK and its
eigenvalues, those last bits grow: a cell of the LPLR map computed with 2
threads and with 1 differs in nearly every loss value and every ``λ_min``,
enough to move a printed R².  Left to the
executors, the thread count was the machine's (2 here) in this process, one
per worker in local workers, and one for NumPy but two for SciPy's own BLAS
in local workers (the limit was set before SciPy was loaded), one for both on
Dask: three executors, three results.

So the count is no longer the executor's: :func:`pinned` sets it around
every cell call, the same number (``threads``, default 1) wherever the cell
runs, and the driver saves it with the cell's result; a result saved under
another pin is computed again, never mixed with these.  Each saved cell also
records its worker and its BLAS (:func:`blas_libraries`), for what a pin
cannot make equal: another CPU architecture picks other BLAS kernels (a Dask
cluster of mixed machines), and CuPy's results depend on the GPU model.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import traceback

import numpy as np

from ..validate import check_int, one_line

__all__ = ["run_cell", "pinned", "blas_libraries", "check_host_data", "DEFAULT_THREADS"]

#: The BLAS threads of a cell unless the sweep asks otherwise: one, so that local workers share the cores.
DEFAULT_THREADS = 1
#: Read by BLAS and OpenMP libraries when they are loaded: set inside the pin, so a library loaded then obeys it.
_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: The pin of this process: ``threads``, how many cells hold it, the limits and the environment to restore.
_PIN = {"threads": None, "holders": 0, "limits": None, "env": None}
_PIN_LOCK = threading.Lock()


def _load_blas() -> None:
    """Load every BLAS the engine computes with (NumPy's, SciPy's own), so that the pin reaches each of them.

    A thread limit applies to the libraries loaded when it is set; SciPy
    brings its own OpenBLAS, loaded with ``scipy.linalg``.
    """
    import scipy.linalg  # noqa: F401
    import scipy.sparse.linalg  # noqa: F401


def _blas_control() -> None:
    """Let this thread set OpenBLAS's threads now.

    OpenBLAS's thread count is one for the whole process; ``threadpoolctl``
    lets only one thread at a time change it and silently ignores the others
    (a Dask worker runs cells on its own threads).  The pin holds its own
    lock, so it takes that role for the moment it sets or restores the count.
    """
    import threadpoolctl

    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None), "clear_controlling_thread", None)
    if clear is not None:  # a threadpoolctl with a controlling thread (3.8 has one); before, any thread could set it
        clear(force=True)


def blas_libraries() -> list:
    """``[{"library", "version", "architecture", "threads"}]``: the thread pools loaded in this process, sorted.

    Sorted, so that the record does not depend on the order a process happened to load them in.
    """
    from threadpoolctl import threadpool_info

    pools = [{"library": f"{i.get('internal_api')} {i.get('prefix')}", "version": str(i.get("version")),
              "architecture": str(i.get("architecture")), "threads": int(i.get("num_threads"))}
             for i in threadpool_info()]
    return sorted(pools, key=lambda b: (b["library"], b["version"], b["architecture"]))


@contextlib.contextmanager
def pinned(threads: int = DEFAULT_THREADS):
    """Every BLAS/OpenMP pool of this process runs ``threads`` threads inside the block; restored after it.

    Yields the record of the libraries (:func:`blas_libraries`).  Cells that
    run at the same time in one process (a Dask worker with several threads)
    share the pin: the first sets it, the last restores it; they must all ask
    for the same count.

    Raises
    ------
    RuntimeError
        Another cell of this process holds a different pin, or a library ends
        the block on another thread count (the cell changed it, or loaded a
        library that ignores the environment): its result could depend on
        the executor, so it is not returned as if it did not.
    """
    threads = check_int("threads", threads, 1)
    from threadpoolctl import threadpool_limits

    with _PIN_LOCK:
        if _PIN["holders"] == 0:
            _load_blas()
            env = {v: os.environ.get(v) for v in _ENV}
            os.environ.update({v: str(threads) for v in _ENV})
            _blas_control()
            _PIN.update(threads=threads, env=env, limits=threadpool_limits(limits=threads))
        elif _PIN["threads"] != threads:
            raise RuntimeError(f"threads: expected every cell of this process to pin {_PIN['threads']} BLAS "
                               f"thread(s), got {threads} while one runs")
        _PIN["holders"] += 1
    try:
        yield blas_libraries()
        off = [f"{b['library']} ({b['threads']})" for b in blas_libraries() if b["threads"] != threads]
        if off:
            raise RuntimeError(f"threads: the cell ended with {', '.join(off)} thread(s), pinned to {threads}: "
                               "a cell must not change its BLAS threads, or the executor would change its bits")
    finally:
        with _PIN_LOCK:
            _PIN["holders"] -= 1
            if _PIN["holders"] == 0:
                _blas_control()
                _PIN["limits"].restore_original_limits()
                _blas_control()  # no thread keeps the role
                for v, old in _PIN["env"].items():
                    if old is None:
                        os.environ.pop(v, None)
                    else:
                        os.environ[v] = old
                _PIN.update(threads=None, env=None, limits=None)


def check_host_data(obj, where: str = "result") -> None:
    """``TypeError`` naming the place unless ``obj`` is host data (dicts, lists, numbers, strings, NumPy arrays)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: expected string keys, got {k!r}")
            check_host_data(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_host_data(v, f"{where}[{i}]")
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"{where}: expected a numeric NumPy array, got one of dtype object")
    elif not isinstance(obj, (str, int, float, bool, np.generic)) and obj is not None:
        raise TypeError(f"{where}: expected host data (dicts, lists, numbers, strings, NumPy arrays), got "
                        f"{type(obj).__module__}.{type(obj).__name__} (device arrays: minilplr.backend.to_host)")


def run_cell(fn, cell: dict, threads: int = DEFAULT_THREADS, usage=None) -> dict:
    """``fn(cell)`` with the BLAS threads pinned; the envelope the driver reads (an exception comes back as text).

    Parameters
    ----------
    fn : callable (cell: dict) -> dict
        The grid's top-level cell function.
    threads : int
        The BLAS threads of the pin (:func:`pinned`).
    usage : object with ``record()``, optional
        Where the cell runs away from the driver, ``usage.record()`` is a
        context manager around ``fn(cell)`` that yields a dict and fills it at
        its end (:class:`minilplr.experiments.timing.CellUsage`: the phases and
        the process's peak memory); it comes back as ``"usage"``.

    Returns
    -------
    dict
        ``result``, ``worker`` (``host/pid``), ``seconds``, ``blas``
        (:func:`blas_libraries` under the pin) and ``usage``; or ``error``
        (one line), ``traceback``, ``worker``, ``seconds``.
    """
    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}/{os.getpid()}"
    recording = usage.record() if usage is not None else contextlib.nullcontext({})
    try:
        with pinned(threads) as blas, recording as used:
            result = fn(cell)
        if not isinstance(result, dict):
            raise TypeError(f"result: expected a dict, got {type(result).__name__}")
        check_host_data(result)
    except Exception as exc:
        return {"error": one_line(exc), "traceback": traceback.format_exc(), "worker": worker,
                "seconds": time.perf_counter() - t0}
    return {"result": result, "worker": worker, "seconds": time.perf_counter() - t0, "blas": blas, "usage": used}
