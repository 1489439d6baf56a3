"""Where cells run (minilplr.sweep.executors, minilplr.sweep.choice): local processes, Dask, the run's choice.

Workers ignore Ctrl-C (the driver's to handle) and end with their driver,
an interrupted pool ends its busy workers instead of waiting for them, and
bad choices are one line naming the argument.
"""
import concurrent.futures.process
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minilplr import sweep
from minilplr.sweep import executors

from .cells import CELLS, gd_and_spectrum, sleepy

ROOT = Path(__file__).resolve().parents[2]


def _quiet(*_):
    pass


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for its parent to reap it has ended)."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _wait_dead(pid: int, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")


@needs_proc
def test_workers_ignore_ctrl_c_and_an_interrupted_pool_ends_them_at_once(tmp_path):
    """Ctrl-C reaches every process of the terminal's job: a worker must not raise (one traceback each).

    The driver, interrupted, shuts the pool down with ``cancel_futures=True``:
    the worker busy with a 60 s cell is ended, not waited for.
    """
    ex = sweep.processes(1)
    future = ex.submit(sleepy, {"marker": str(tmp_path), "seconds": 60})
    for _ in range(600):
        if list(tmp_path.iterdir()):
            break
        time.sleep(0.1)
    pid = int(next(tmp_path.iterdir()).name)
    os.kill(pid, signal.SIGINT)
    time.sleep(0.5)
    assert _alive(pid) and not future.done(), "a worker stopped on Ctrl-C"
    t0 = time.monotonic()
    ex.shutdown(wait=False, cancel_futures=True)
    assert _wait_dead(pid, 10) and time.monotonic() - t0 < 10, "the busy worker was waited for"


@needs_proc
def test_workers_end_when_the_driver_is_killed():
    """``kill -9`` of the driver: its idle worker ends too, instead of waiting for work forever."""
    code = ("import os, sys, time\nfrom minilplr import sweep\nex = sweep.processes(1)\n"
            "print(ex.submit(os.getpid).result(), flush=True)\ntime.sleep(120)\n")
    driver = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    worker = None
    try:
        worker = int(driver.stdout.readline())
        assert _alive(worker)
        driver.kill()
        driver.wait(timeout=60)
        assert _wait_dead(worker, 60), "the worker outlived its killed driver"
    finally:
        driver.kill()
        if worker is not None and _alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_dask_cluster_runs_the_grid_and_failures_are_one_line(tmp_path):
    distributed = pytest.importorskip("distributed")
    from .test_driver import sometimes_fails

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        with sweep.dask(lc.scheduler_address) as ex:
            assert ex.description.startswith(f"the Dask cluster at {lc.scheduler_address}")
            res = sweep.run_cells(gd_and_spectrum, CELLS[:1], tmp_path, executor=ex, progress=False, log=_quiet)
            failing = sweep.run_cells(sometimes_fails, {"odd": {"fail": "odd"}}, tmp_path / "f", executor=ex,
                                      allow_failures=True, log=_quiet)
    assert list(res) and failing.failed == {"odd": "Odd: loss blew up at step 3"}


def test_use_chooses_the_executor_for_a_block():
    assert isinstance(sweep.current_executor(), sweep.InProcess)
    assert sweep.current_threads() == 1 and sweep.current_usage() is None
    marker = object()
    with sweep.use(workers=1, threads=2, usage=marker):
        ex = sweep.current_executor()
        assert isinstance(ex, sweep.Processes) and ex.workers == 1 and sweep.current_executor() is ex
        assert sweep.current_threads() == 2 and sweep.current_usage() is marker
    assert isinstance(sweep.current_executor(), sweep.InProcess) and sweep.current_threads() == 1
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.submit(int)


@pytest.mark.parametrize("kwargs, match", [
    (dict(workers=0), "workers: expected a positive integer, got 0"),
    (dict(workers=10_000), r"workers: expected at most \d+ \(the cores this process may use"),
    (dict(workers=1, cluster="tcp://10.0.0.1:8786"), "workers: only with cluster='local'"),
    (dict(cluster="not an address"), "cluster: expected 'local' or a Dask scheduler address"),
    (dict(threads=0), "threads: expected a positive integer, got 0"),
])
def test_a_bad_choice_is_one_line_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        with sweep.use(**kwargs):
            pass


def test_a_pool_whose_worker_died_is_replaced_for_the_next_grid():
    with sweep.use(workers=1):
        ex = sweep.current_executor()
        with pytest.raises(concurrent.futures.process.BrokenProcessPool):
            ex.submit(os._exit, 1).result()  # the worker dies, as under the out-of-memory killer
        again = sweep.current_executor()
        assert again is not ex and isinstance(again, sweep.Processes) and again.workers == 1


@pytest.mark.parametrize("address", ["not an address", "tcp://127.0.0.1:notaport", "tcp://127.0.0.1:0",
                                     "tcp://127.0.0.1:70000", "http://127.0.0.1:8786", "127.0.0.1", "tcp://:8786"])
def test_a_malformed_cluster_address_is_refused(address):
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match=r"cluster: expected 'local' or a Dask scheduler address .* got "):
        sweep.check_cluster(address)


@pytest.mark.parametrize("address", ["local", " tcp://127.0.0.1:8786 ", "scheduler:8786", "tls://[::1]:8786"])
def test_a_well_formed_cluster_address_is_accepted(address):
    pytest.importorskip("distributed")
    assert sweep.check_cluster(address) == address.strip()


def test_a_cluster_nobody_answers_is_one_line(monkeypatch):
    pytest.importorskip("distributed")
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 2)
    with pytest.raises(sweep.ClusterUnavailable, match=rf"--cluster tcp://127.0.0.1:{port}: no Dask scheduler "
                                                       r"answered there within 2 s"):
        with sweep.use(cluster=f"tcp://127.0.0.1:{port}"):  # reached when the block opens
            pass


def test_missing_dask_names_the_option_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(sweep.ClusterUnavailable,
                       match=r"--cluster needs Dask distributed.*pip install -e '\.\[cluster\]'"):
        sweep.dask("local")
    with pytest.raises(ValueError, match="cluster: expected 'local' or a Dask scheduler address"):
        sweep.check_cluster(" ")


def test_more_workers_than_cores_is_refused():
    assert sweep.check_workers(sweep.cores()) == sweep.cores()
    with pytest.raises(ValueError, match=rf"workers: expected at most {sweep.cores()} "):
        sweep.processes(sweep.cores() + 1)
