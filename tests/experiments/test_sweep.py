"""Sweeps (minilplr.experiments.sweep): the same grid in this process, on local processes and on Dask.

The grid: 4 cells of 5 GD steps on a tiny MLP (numpy backend, float64).  Run
in this process it is the reference; on 2 local worker processes and on a
Dask LocalCluster of 2 worker processes the results must be bit-identical.
Resuming (a killed sweep, a damaged cell file) runs only the missing cells,
counted by the calls; a failing cell is one line and the others are saved.
"""
import concurrent.futures.process
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minilplr import backend as B
from minilplr.experiments import sweep
from minilplr.nn.models import mlp
from minilplr.store import config_hash, unit_exists
from minilplr.train.optim import GD
from minilplr.train.loops import train_gd

from ..helpers import one_line

ROOT = Path(__file__).resolve().parents[2]
CELLS = [{"width": w, "lr": lr, "seed": 0, "steps": 5, "backend": "numpy"} for w in (4, 8) for lr in (0.05, 0.1)]


def tiny_gd(cell):
    """One cell: GD on 8 points in R³ with a 3-layer ReLU MLP; the losses and final weights, on the host."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    model = mlp(3, cell["width"], 3, 1, seed=cell["seed"], dtype="float64", backend=cell["backend"])
    be = model.backend
    hist = train_gd(model, B.to_device(X, be), B.to_device(y, be), GD(cell["lr"]), cell["steps"])
    return {"loss": hist.arrays()["loss"], "W1": B.to_host(model.params["fc1.W"]), "final": hist["loss"][-1],
            "shape": (cell["width"], 3)}


CALLS = []  # keys of the cells run in this process (the in-process executor runs them here)


def counting_gd(cell):
    CALLS.append(config_hash(cell))
    return tiny_gd(cell)


def killed_at_third(cell):
    """Ctrl-C while the third cell runs (in this process: it reaches the driver as it would from a terminal)."""
    if len(CALLS) == 2:
        raise KeyboardInterrupt
    return counting_gd(cell)


class Odd(Exception):
    """An exception that does not pickle back (its __init__ needs two arguments): must still be one line."""

    def __init__(self, what, step):
        super().__init__(f"{what} at step {step}")


def sometimes_fails(cell):
    if cell.get("fail") == "odd":
        raise Odd("loss blew up", 3)
    if cell.get("fail") == "device":
        return {"x": B.to_device(np.ones(2), "strict")}
    return tiny_gd(cell)


def blas_threads(cell):
    """The BLAS/OpenMP thread counts and the PID of the process running this cell."""
    from threadpoolctl import threadpool_info

    return {"threads": [p["num_threads"] for p in threadpool_info()], "pid": os.getpid()}


def _quiet(*_):
    pass


def _same(a: dict, b: dict):
    assert list(a) == list(b)
    for k in a:
        assert set(a[k]) == set(b[k])
        for f in a[k]:
            x, y = a[k][f], b[k][f]
            if isinstance(x, np.ndarray):
                assert x.dtype == y.dtype and np.array_equal(x, y), (k, f)  # bit for bit: same arithmetic
            else:
                assert x == y and type(x) is type(y), (k, f, x, y)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return sweep.run_cells(tiny_gd, CELLS, tmp_path_factory.mktemp("ref"), progress=False, log=_quiet)


@pytest.fixture(scope="module")
def pool():
    """2 spawned workers, started with BLAS told to use 2 × cores threads: only the initializer limits them."""
    with pytest.MonkeyPatch.context() as mp:
        many = str(2 * (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            mp.setenv(var, many)
        with sweep.processes(2) as ex:
            ex.submit(int).result()  # start a worker while the environment says "many"
            ex.submit(int).result()
            yield ex


def test_in_process_results_are_saved_and_keyed_by_hash(reference, tmp_path):
    assert list(reference) == [config_hash(c) for c in CELLS]
    assert reference.failed == {}
    r = reference[config_hash(CELLS[0])]
    assert r["loss"].shape == (5,) and r["loss"][-1] < r["loss"][0]
    assert r["shape"] == [4, 3]  # as stored: a tuple reads back as a list, fresh or loaded alike
    again = sweep.run_cells(tiny_gd, CELLS, tmp_path, progress=False, log=_quiet)
    _same(again, reference)
    for key in again:
        assert unit_exists(tmp_path / "cells", key)


def test_local_processes_give_the_in_process_results(reference, pool, tmp_path):
    lines = []
    res = sweep.run_cells(tiny_gd, CELLS, tmp_path, executor=pool, log=lines.append)
    _same(res, reference)
    assert lines[0] == f"4 cell(s) in {tmp_path / 'cells'}: 0 saved, 4 to run on {pool.description}"
    assert sorted(int(ln.split("/")[0].split()[-1]) for ln in lines[1:]) == [1, 2, 3, 4]  # "cell i/4 done …"
    assert all(" done in " in ln for ln in lines[1:]), lines
    lines.clear()
    loaded = sweep.run_cells(tiny_gd, CELLS, tmp_path, progress=False, log=lines.append)  # written by the driver
    assert lines == [f"4 cell(s) in {tmp_path / 'cells'}: 4 saved, 0 to run"]
    _same(loaded, reference)


def test_each_worker_is_limited_to_its_share_of_the_cores(pool, tmp_path):
    want = sweep.blas_threads_per_worker(2)
    assert pool.threads == want
    cells = {f"probe{i}": {"i": i} for i in range(4)}
    res = sweep.run_cells(blas_threads, cells, tmp_path, executor=pool, progress=False, log=_quiet)
    assert all(r["pid"] != os.getpid() for r in res.values())
    assert all(r["threads"] and max(r["threads"]) == want for r in res.values()), (want, res)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for its parent to reap it has ended)."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_workers_end_when_the_driver_is_killed():
    """``kill -9`` of the driver: its idle worker ends too, instead of waiting for work forever."""
    code = ("import os, sys, time\nfrom minilplr.experiments import sweep\nex = sweep.processes(1)\n"
            "print(ex.submit(os.getpid).result(), flush=True)\ntime.sleep(120)\n")
    driver = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    worker = None
    try:
        worker = int(driver.stdout.readline())
        assert _alive(worker)
        driver.kill()
        driver.wait(timeout=60)
        for _ in range(600):  # up to 60 s for the worker to notice (it is immediate when it works)
            if not _alive(worker):
                break
            time.sleep(0.1)
        assert not _alive(worker), "the worker outlived its killed driver"
    finally:
        driver.kill()
        if worker is not None and _alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_dask_cluster_gives_the_in_process_results(reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        with sweep.dask(lc.scheduler_address) as ex:
            assert ex.description.startswith(f"the Dask cluster at {lc.scheduler_address}")
            res = sweep.run_cells(tiny_gd, CELLS, tmp_path, executor=ex, progress=False, log=_quiet)
            failing = sweep.run_cells(sometimes_fails, {"odd": {"fail": "odd"}}, tmp_path / "f", executor=ex,
                                      allow_failures=True, log=_quiet)
    _same(res, reference)
    assert failing.failed == {"odd": "Odd: loss blew up at step 3"}


def test_a_killed_sweep_resumes_with_only_the_missing_cells(reference, tmp_path):
    CALLS.clear()
    with pytest.raises(KeyboardInterrupt):
        sweep.run_cells(killed_at_third, CELLS, tmp_path, progress=False, log=_quiet)
    first = [config_hash(c) for c in CELLS[:2]]
    assert CALLS == first and all(unit_exists(tmp_path / "cells", k) for k in first)  # saved as they finished
    CALLS.clear()
    res = sweep.run_cells(counting_gd, CELLS, tmp_path, progress=False, log=_quiet)
    assert CALLS == [config_hash(c) for c in CELLS[2:]]
    _same(res, reference)


def test_a_damaged_cell_file_is_moved_aside_and_run_again(reference, tmp_path):
    sweep.run_cells(tiny_gd, CELLS, tmp_path, progress=False, log=_quiet)
    key = config_hash(CELLS[1])
    npz = tmp_path / "cells" / f"{key}.npz"
    npz.write_bytes(npz.read_bytes()[:-10])
    CALLS.clear()
    lines = []
    res = sweep.run_cells(counting_gd, CELLS, tmp_path, progress=False, log=lines.append)
    assert CALLS == [key]
    assert any("damaged" in ln and "moved aside" in ln for ln in lines), lines
    _same(res, reference)


def test_a_failing_cell_is_one_line_and_the_others_are_saved(reference, pool, tmp_path):
    cells = {"a": CELLS[0], "odd": dict(CELLS[1], fail="odd"), "device": dict(CELLS[2], fail="device"),
             "d": CELLS[3]}
    for ex in (sweep.InProcess(), pool):
        lines = []
        with pytest.raises(sweep.CellsFailed) as info:
            sweep.run_cells(sometimes_fails, cells, tmp_path / type(ex).__name__, executor=ex, progress=False,
                            log=lines.append)
        err = info.value
        assert err.failed["odd"] == "Odd: loss blew up at step 3"
        assert err.failed["device"].startswith("TypeError: result['x']: expected host data")
        assert "to_host" in err.failed["device"]
        assert str(err).startswith("2 of 4 cells failed (odd: Odd: loss blew up at step 3; device: TypeError:")
        assert "\n" not in str(err)
        assert sum("FAILED" in ln for ln in lines) == 2
        _same({k: err.results[k] for k in ("a", "d")},
              {"a": reference[config_hash(CELLS[0])], "d": reference[config_hash(CELLS[3])]})
        assert unit_exists(tmp_path / type(ex).__name__ / "cells", "a")
        assert not unit_exists(tmp_path / type(ex).__name__ / "cells", "odd")


def test_a_renamed_configuration_is_run_again(tmp_path):
    CALLS.clear()
    sweep.run_cells(counting_gd, {"c": CELLS[0]}, tmp_path, progress=False, log=_quiet)
    lines = []
    sweep.run_cells(counting_gd, {"c": CELLS[1]}, tmp_path, progress=False, log=lines.append)
    assert CALLS == [config_hash(CELLS[0]), config_hash(CELLS[1])]
    assert any("of another configuration" in ln for ln in lines)


def test_bad_grids_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(TypeError, match="fn: expected a function defined at the top level of a module"):
        sweep.run_cells(lambda c: {}, CELLS, tmp_path)
    with pytest.raises(ValueError, match="cells: expected names of letters"):
        sweep.run_cells(tiny_gd, {"a/b": CELLS[0]}, tmp_path)
    with pytest.raises(ValueError, match="is listed twice"):
        sweep.run_cells(tiny_gd, [CELLS[0], dict(CELLS[0])], tmp_path)
    with pytest.raises(ValueError, match=r"cells\[0\]: expected a JSON configuration"):
        sweep.run_cells(tiny_gd, [{"x": object()}], tmp_path)
    assert not (tmp_path / "cells").exists()


def test_use_chooses_the_executor_for_a_block():
    assert isinstance(sweep.current_executor(), sweep.InProcess)
    with sweep.use(workers=3):
        ex = sweep.current_executor()
        assert isinstance(ex, sweep.Processes) and ex.workers == 3 and sweep.current_executor() is ex
        assert ex.threads == sweep.blas_threads_per_worker(3)
    assert isinstance(sweep.current_executor(), sweep.InProcess)
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.submit(int)
    with pytest.raises(ValueError, match="workers: expected a positive integer, got 0"):
        with sweep.use(workers=0):
            pass
    with pytest.raises(ValueError, match="workers: only with cluster='local'"):
        with sweep.use(workers=2, cluster="tcp://10.0.0.1:8786"):
            pass


def test_a_pool_whose_worker_died_is_replaced_for_the_next_grid():
    with sweep.use(workers=1):
        ex = sweep.current_executor()
        with pytest.raises(concurrent.futures.process.BrokenProcessPool):
            ex.submit(os._exit, 1).result()  # the worker dies, as under the out-of-memory killer
        again = sweep.current_executor()
        assert again is not ex and isinstance(again, sweep.Processes) and again.workers == 1


def test_missing_dask_names_the_option_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(sweep.ClusterUnavailable,
                       match=r"--cluster needs Dask distributed.*pip install -e '\.\[cluster\]'"):
        sweep.dask("local")
    with pytest.raises(ValueError, match="cluster: expected a Dask scheduler address"):
        sweep.check_cluster(" ")


# --- the command line -------------------------------------------------------------------------------------------

def _main():
    spec = importlib.util.spec_from_file_location("run_all_script", ROOT / "scripts" / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


@pytest.mark.parametrize("args, shown", [
    (["--workers", "0"], "run_all.py: argument --workers: expected a positive integer, got '0' (see --help)"),
    (["--workers", "1.5"], "run_all.py: argument --workers: expected a positive integer, got '1.5' (see --help)"),
    (["--cluster", ""], "run_all.py: argument --cluster: expected a Dask scheduler address such as "
                        "tcp://host:8786, or 'local', got '' (see --help)"),
    (["--cluster", "tcp://10.0.0.1:8786", "--workers", "2"],
     "run_all.py: argument --workers: only with --cluster local (a running cluster's workers are chosen where it "
     "is started) (see --help)"),
])
def test_bad_workers_or_cluster_is_a_one_line_usage_error(tmp_path, capsys, args, shown):
    with pytest.raises(SystemExit) as info:
        _main()(["--only", "linear_init", "--out", str(tmp_path / "out"), *args])
    assert info.value.code == 2
    assert one_line(capsys.readouterr().err) == shown
    assert not (tmp_path / "out").exists()


def test_cluster_without_dask_is_a_one_line_usage_error(tmp_path, capsys, monkeypatch):
    main = _main()
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(SystemExit) as info:
        main(["--only", "linear_init", "--out", str(tmp_path), "--cluster", "local"])
    assert info.value.code == 2
    assert one_line(capsys.readouterr().err) == ("run_all.py: argument --cluster: --cluster needs Dask distributed, "
                                                  "which is not installed: pip install -e '.[cluster]' (see --help)")


def test_workers_reach_the_experiments(tmp_path, monkeypatch, capsys):
    """``--workers 2``: inside an experiment, run_cells' default executor is 2 local processes (none started)."""
    from minilplr.experiments.runner import load_experiment

    seen = []

    def run(cfg, out_dir, backend=None, progress=True):
        ex = sweep.current_executor()
        seen.append((type(ex).__name__, getattr(ex, "workers", None)))
        raise ValueError("x: expected a recorded executor")

    monkeypatch.setattr(load_experiment("linear_init"), "run", run)
    main = _main()
    before = B.get_backend().name
    try:
        assert main(["--backend", before, "--no-progress", "--only", "linear_init", "--out", str(tmp_path),
                     "--workers", "2"]) == 1
    finally:
        B.set_backend(before)
    assert seen == [("Processes", 2)]
    assert isinstance(sweep.current_executor(), sweep.InProcess)  # the run's pool was shut down with it
