"""Sweeps: a grid of independent runs, in this process, on local workers, or on a Dask cluster, with the same bits.

A grid (widths × step sizes × seeds, …) is a set of *cells*, each a small
JSON configuration, and one top-level function ``fn(cell) -> dict`` that
runs a cell and returns its results as host data.  The package, one topic a
module:

:mod:`~minilplr.sweep.driver`
    :func:`run_cells`: runs the cells not saved yet and saves each result as
    it comes back; a killed sweep resumes with its missing cells.
:mod:`~minilplr.sweep.cell`
    :func:`~minilplr.sweep.cell.run_cell`, what runs where the executor puts
    it: the cell with its BLAS threads pinned, its result checked, its error
    made one line.
:mod:`~minilplr.sweep.executors`
    Where cells run: :class:`InProcess`, :func:`processes`, :func:`dask`.
:mod:`~minilplr.sweep.choice`
    :func:`use`: the command line chooses the executor for a whole run.

Writing a grid
--------------
::

    import numpy as np

    from minilplr import sweep
    from minilplr.backend import get_backend, to_device, to_host
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

``allow_failures=True`` returns the cells that finished, ``.failed`` naming
the others, instead of raising :class:`CellsFailed`.  ``cells`` may also be a
dict ``{name: cell}`` with readable names (``{"h64-lr0.1": {...}}``); the
results then come back under those names.  A list's cells are named by
:func:`minilplr.store.config_hash`, so changing any value of a cell gives it
a new name and a fresh run.  A named cell whose saved configuration differs
from the asked one is run again.

Rules for ``fn``, so that the same grid runs on any executor:

* it is a function at the top level of an importable module (checked at
  once, even in this process: a grid that runs here runs on workers too);
* everything it needs is in the cell: workers do not see the driver's
  :func:`~minilplr.backend.set_backend`, global state or open files, so put
  the backend's name (``get_backend(backend).name``) and the seeds in the
  cell, and build data and models inside ``fn``;
* it returns a dict of host data (dicts, lists, numbers, strings, NumPy
  arrays): device arrays come back through :func:`~minilplr.backend.to_host`
  (checked in the worker, so no device array is ever pickled);
* it leaves the BLAS threads alone (a cell that ends on another count fails).

Choosing where the cells run
----------------------------
Experiments do not take an executor: :func:`run_cells` uses
:func:`current_executor`, which the command line chooses for the whole run
with :func:`use` (``run_all.py --workers 4``: ``use(workers=4)``;
``--cluster tcp://scheduler:8786``: ``use(cluster=...)``).  Any other
:class:`concurrent.futures.Executor` may be passed as ``run_cells(..., executor=...)``.

Local workers are *spawned* (fresh interpreters, see :class:`Processes`), so
a script of your own that runs a sweep on them keeps its top-level code under
``if __name__ == "__main__":`` (each worker imports the main module;
``scripts/run_all.py`` does this), and its ``fn`` lives in an importable module.

The same bits on every executor
-------------------------------
A cell's result does not depend on where it ran: every cell computes with
its BLAS threads pinned to the same count (one by default), in this process
as on a worker, and that count is saved with the result, so a sweep killed in
one process resumes on workers (or the other way round) with the same bits.
What a pin cannot promise: another CPU architecture picks other BLAS kernels
(a Dask cluster of mixed machines), and CuPy's results depend on the GPU
model; each saved cell records its worker and its BLAS.
"""
from .cell import DEFAULT_THREADS, blas_libraries, pinned, run_cell
from .choice import current_executor, current_threads, current_usage, use
from .driver import CellsFailed, Results, run_cells
from .executors import (ClusterUnavailable, DaskExecutor, InProcess, Processes, check_cluster, check_workers,
                        cores, dask, processes)

__all__ = ["run_cells", "Results", "CellsFailed", "run_cell", "pinned", "blas_libraries", "DEFAULT_THREADS",
           "use", "current_executor", "current_threads", "current_usage", "InProcess", "Processes", "processes",
           "DaskExecutor", "dask", "ClusterUnavailable", "check_cluster", "check_workers", "cores"]
