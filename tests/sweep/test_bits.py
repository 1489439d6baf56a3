"""One grid, the same bits in this process, on local worker processes and on a Dask cluster (issue 21).

Each executor is given an ambient BLAS thread count on purpose: the
reference runs in this process with 1 thread (``threadpool_limits`` around
the sweep), then the grid runs again in this process with 2, on local
workers started with 2 (their environment), on Dask's workers started with
2 (Dask's pre-spawn environment).  Only the sweep's pin
(:mod:`minilplr.sweep.cell`, one thread for every library, SciPy's own
BLAS included) can make them agree.  The grid's cell gives other bits with 1 and 2
threads (checked first: where it does not, the comparison could not fail,
and the tests say so by skipping).  Every stored value of every cell is
compared, byte for byte.
"""
import struct

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from minilplr import sweep
from minilplr.store import config_hash, load_unit

from .cells import CALLS, CELLS, blas_threads, gd_and_spectrum, killed_at_third

REFERENCE, AMBIENT = 1, 2  # the ambient BLAS threads of the reference, and of every other run
_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _quiet(*_):
    pass


def stored(out) -> dict:
    """Every cell unit under ``out/cells``: ``{key: unit}``, without its timing and worker name."""
    units = {}
    for js in sorted((out / "cells").glob("*.json")):
        unit = load_unit(out / "cells", js.stem)
        unit.pop("seconds"), unit.pop("worker")
        units[js.stem] = unit
    return units


def assert_same_bits(a, b, where="cells"):
    """``a`` and ``b`` hold the same values bit for bit: arrays by dtype, shape and bytes, floats by their bytes."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b), (where, list(a), list(b))
        for k in a:
            assert_same_bits(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_bits(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        differ = int(np.sum(a.view(np.uint8).reshape(a.size, -1) != b.view(np.uint8).reshape(b.size, -1)))
        assert a.tobytes() == b.tobytes(), f"{where}: {differ} byte(s) differ"
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), (where, a, b)
    else:
        assert a == b, (where, a, b)


@pytest.fixture(scope="module")
def sensitive():
    """The arrays of one cell that differ between 1 and 2 BLAS threads here; skips if none (the tests would be vacuous)."""
    with threadpool_limits(1):
        one = gd_and_spectrum(CELLS[0])
    with threadpool_limits(2):
        two = gd_and_spectrum(CELLS[0])
    differ = [k for k in one if np.asarray(one[k]).tobytes() != np.asarray(two[k]).tobytes()]
    if not differ:
        pytest.skip("vacuous here: this BLAS gives the same bits with 1 and 2 threads, so no executor could differ")
    return differ


@pytest.fixture(scope="module")
def in_process(tmp_path_factory, sensitive):
    """The grid in this process with 1 ambient BLAS thread: the reference."""
    out = tmp_path_factory.mktemp("in-process")
    with threadpool_limits(REFERENCE):
        sweep.run_cells(gd_and_spectrum, CELLS, out, executor=sweep.InProcess(), progress=False, log=_quiet)
    return out


@pytest.fixture
def ambient(monkeypatch):
    """Worker processes started from here start with 2 BLAS threads (Dask keeps a variable already set)."""
    for var in _ENV:
        monkeypatch.setenv(var, str(AMBIENT))


def test_the_cell_depends_on_the_blas_threads(sensitive):
    """What makes the comparisons below able to fail: every array of the cell moves with the thread count."""
    assert {"W1", "lam", "scipy_eig", "dot"} <= set(sensitive), sensitive


def test_every_cell_is_saved_with_its_pin(in_process):
    units = stored(in_process)
    assert sorted(units) == sorted(config_hash(c) for c in CELLS)
    for unit in units.values():
        assert unit["blas_threads"] == 1 and all(b["threads"] == 1 for b in unit["blas"])


def test_this_process_with_more_threads_gives_the_same_bits(in_process, tmp_path):
    with threadpool_limits(AMBIENT):
        assert set(blas_threads({})["threads"]) == {AMBIENT}
        sweep.run_cells(gd_and_spectrum, CELLS, tmp_path, executor=sweep.InProcess(), progress=False, log=_quiet)
        assert set(blas_threads({})["threads"]) == {AMBIENT}  # the pin was undone after each cell
    assert_same_bits(stored(tmp_path), stored(in_process))


def test_local_processes_give_the_in_process_bits(in_process, ambient, tmp_path):
    with sweep.processes(2) as ex:
        assert set(ex.submit(blas_threads, {}).result()["threads"]) == {AMBIENT}
        sweep.run_cells(gd_and_spectrum, CELLS, tmp_path, executor=ex, progress=False, log=_quiet)
        assert set(ex.submit(blas_threads, {}).result()["threads"]) == {AMBIENT}  # SciPy's BLAS loaded too now
    assert_same_bits(stored(tmp_path), stored(in_process))


def test_a_dask_cluster_gives_the_in_process_bits(in_process, ambient, tmp_path):
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.nanny.pre-spawn-environ": {var: AMBIENT for var in _ENV}}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as lc, sweep.dask(lc.scheduler_address) as ex:
            assert set(ex.submit(blas_threads, {}).result()["threads"]) == {AMBIENT}
            sweep.run_cells(gd_and_spectrum, CELLS, tmp_path, executor=ex, progress=False, log=_quiet)
    assert_same_bits(stored(tmp_path), stored(in_process))


def test_a_sweep_killed_in_this_process_resumes_on_workers_with_the_same_bits(in_process, ambient, tmp_path):
    CALLS.clear()
    with threadpool_limits(AMBIENT), pytest.raises(KeyboardInterrupt):
        sweep.run_cells(killed_at_third, CELLS, tmp_path, executor=sweep.InProcess(), progress=False, log=_quiet)
    assert len(stored(tmp_path)) == 2
    lines = []
    with sweep.processes(2) as ex:
        sweep.run_cells(gd_and_spectrum, CELLS, tmp_path, executor=ex, progress=False, log=lines.append)
    assert lines[0].startswith(f"4 cell(s) in {tmp_path / 'cells'}: 2 saved, 2 to run on 2 local worker process")
    assert_same_bits(stored(tmp_path), stored(in_process))
