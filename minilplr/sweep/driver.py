"""The sweep's driver: run every cell of a grid not saved yet, wherever the executor puts it, and save each result.

:func:`run_cells` keeps the bookkeeping in one place:

* every result comes back to this process (the *driver*), which writes it
  atomically as the :mod:`minilplr.store` unit ``<out_dir>/cells/<key>``;
  workers never write files, so a cluster needs no shared file system;
* a cell already saved there is loaded, not run again: a sweep that was
  killed resumes with only its missing cells, on any executor; a damaged
  cell file is moved aside (one line) and the cell is run again;
* every cell runs with its BLAS threads pinned (:mod:`minilplr.sweep.cell`),
  the same count on every executor, saved with the result: a result saved
  under another pin (or before pins existed) is run again, never mixed;
* a cell that raises is that cell's failure, one line, and the others are
  still run and saved; at the end :class:`CellsFailed` names the failures
  (run the sweep again to redo only those).

A line per finished cell (``cell 3/12 done in 1.2 s on host/pid: <key> {...}``)
goes to the ``minilplr.experiments`` logger (``run_all.py --verbose``) or to
``log=``; failures are warnings.
"""
from __future__ import annotations

import concurrent.futures
import json
import logging
import pickle
import re
import time
import traceback
from pathlib import Path

from ..store import config_hash, load_or_discard, save_unit, to_jsonable
from ..validate import check_int, one_line
from .cell import run_cell
from .choice import current_executor, current_threads, current_usage
from .executors import InProcess

__all__ = ["run_cells", "Results", "CellsFailed"]

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


class Results(dict):
    """``{key: result}`` of the cells that finished, in the order of the grid; ``.failed``: ``{key: error line}``."""

    failed: dict


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


def _load_cell(where: Path, key: str, cell: dict, threads: int, log):
    """The saved result of ``cell``, or ``None``: absent, damaged (moved aside), another configuration or pin."""
    saved = load_or_discard(where, key, log=log)
    if saved is None:
        return None
    if saved.get("cell_hash") != config_hash(cell):
        log(f"cell {key}: the result saved in {where} is of another configuration; running it again")
        return None
    if saved.get("blas_threads") != threads:
        was = f"{saved['blas_threads']} BLAS thread(s)" if "blas_threads" in saved else "no thread pin (older)"
        log(f"cell {key}: the result saved in {where} was computed with {was}, this sweep pins {threads}: "
            "running it again, so that no grid mixes the two")
        return None
    return saved["result"]


def _short(cell: dict, width: int = 90) -> str:
    text = json.dumps(to_jsonable(cell), sort_keys=True)
    return text if len(text) <= width else text[:width - 1] + "…"


def _describe(executor) -> str:
    return getattr(executor, "description", type(executor).__name__)


def run_cells(fn, cells, out_dir, *, executor=None, folder: str = "cells", progress: bool = True,
              allow_failures: bool = False, log=None, threads: int | None = None) -> Results:
    """Run ``fn`` on every cell not yet saved in ``out_dir/folder``; returns every cell's result.

    Parameters
    ----------
    fn : callable (cell: dict) -> dict
        Top-level function; returns host data (see :mod:`minilplr.sweep`).
    cells : list of dict, or dict name -> dict
        JSON configurations.  Listed cells are keyed by
        :func:`minilplr.store.config_hash`; a dict's names are its keys.
    out_dir : path
        The experiment's folder; cell ``key`` is the unit ``out_dir/folder/key``.
    executor : concurrent.futures.Executor, optional
        Default :func:`~minilplr.sweep.choice.current_executor` (what
        :func:`~minilplr.sweep.choice.use` chose, else in-process).  Not shut down here.
    progress : bool
        A progress bar over the cells (on a terminal only) and a line per finished cell.
    allow_failures : bool
        ``False`` (default): raise :class:`CellsFailed` at the end if a cell
        failed.  ``True``: return the others; ``Results.failed`` names the failures.
    log : callable(str), optional
        Where the lines go; default the ``minilplr.experiments`` logger
        (per-cell lines at INFO, i.e. ``run_all.py --verbose``; failures as warnings).
    threads : int, optional
        The BLAS threads every cell is pinned to; default what
        :func:`~minilplr.sweep.choice.use` says (1).

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
    threads = current_threads() if threads is None else check_int("threads", threads, 1)
    keyed = _keyed(cells)
    where = Path(out_dir) / folder
    results, todo = {}, []
    for key, cell in keyed.items():
        saved = _load_cell(where, key, cell, threads, warn)
        if saved is None:
            todo.append(key)
        else:
            results[key] = saved
    ex = executor if executor is not None else (current_executor() if todo else None)
    usage = None if isinstance(ex, InProcess) else current_usage()  # in this process, phases are charged directly
    total, done, failed, pending, used = len(keyed), len(results), {}, {}, []
    info(f"{total} cell(s) in {where}: {len(results)} saved, {len(todo)} to run"
         + (f" on {_describe(ex)}, {threads} BLAS thread(s) per cell" if todo else ""))
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
            out = {"error": one_line(exc), "traceback": traceback.format_exc(), "worker": "?", "seconds": 0.0}
        if "error" in out:
            failed[key] = out["error"]
            warn(f"cell {done}/{total} FAILED: {key}: {out['error']}")
            _LOG.info("cell %s, %s: %s", key, _short(keyed[key]), out["traceback"])  # the traceback: --verbose
        else:
            save_unit(where, key, {"cell": keyed[key], "cell_hash": config_hash(keyed[key]), "blas_threads": threads,
                                   "result": out["result"], "seconds": out["seconds"], "worker": out["worker"],
                                   "blas": out["blas"]})
            results[key] = to_jsonable(out["result"])  # what a later run loads: lists for tuples, numbers for scalars
            if out.get("usage"):
                used.append(dict(out["usage"], worker=out["worker"]))
            if progress:
                info(f"cell {done}/{total} done in {out['seconds']:.1f} s on {out['worker']}: {key} "
                     f"{_short(keyed[key])}")
        if bar is not None:
            bar.update(1)

    t0 = time.perf_counter()
    try:
        for key in todo:
            pending[ex.submit(run_cell, fn, keyed[key], threads, usage)] = key
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
        if usage is not None and used:  # the workers' phases and memory, charged to this experiment's timing
            usage.charge(used, time.perf_counter() - t0)
    out = Results((k, results[k]) for k in keyed if k in results)
    out.failed = {k: failed[k] for k in keyed if k in failed}  # in the grid's order, not the order they finished
    if out.failed and not allow_failures:
        raise CellsFailed(out.failed, out, where)
    return out
