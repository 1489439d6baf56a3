"""``run_all.py --workers`` and ``--cluster``: one line for every bad value, and Ctrl-C with workers is one line too.

The Ctrl-C tests run ``run_all.py`` in a process group of its own, with an
experiment whose grid is 4 cells of 60 s, and press Ctrl-C (``SIGINT`` to
the whole group, as a terminal does) once the workers compute: exit status
130, one line on stderr, no traceback from the driver or any worker, and no
worker left behind.
"""
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minilplr import backend as B
from minilplr import sweep
from minilplr.sweep import executors

from ..helpers import one_line

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "run_all.py"


def _main():
    spec = importlib.util.spec_from_file_location("run_all_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


@pytest.mark.parametrize("args, shown", [
    (["--workers", "0"], "run_all.py: argument --workers: expected a positive integer, got '0' (see --help)"),
    (["--workers", "1.5"], "run_all.py: argument --workers: expected a positive integer, got '1.5' (see --help)"),
    (["--workers", "1000"], f"run_all.py: argument --workers: expected at most {sweep.cores()} (the cores this "
                            "process may use; more workers only share them and multiply the memory), got 1000 "
                            "(see --help)"),
    (["--cluster", ""], "run_all.py: argument --cluster: expected 'local' or a Dask scheduler address such as "
                        "tcp://host:8786, got '' (see --help)"),
    (["--cluster", "not an address"], "run_all.py: argument --cluster: expected 'local' or a Dask scheduler "
                                      "address such as tcp://host:8786 ([tcp|tls|ucx|ws|wss://]host:port, the port "
                                      "a number from 1 to 65535), got 'not an address' (see --help)"),
    (["--cluster", "tcp://127.0.0.1:notaport"], "run_all.py: argument --cluster: expected 'local' or a Dask "
                                                "scheduler address such as tcp://host:8786 ([tcp|tls|ucx|ws|wss://]"
                                                "host:port, the port a number from 1 to 65535), got "
                                                "'tcp://127.0.0.1:notaport' (see --help)"),
    (["--cluster", "tcp://10.0.0.1:8786", "--workers", "2"],
     "run_all.py: argument --workers: only with --cluster local (a running cluster's workers are chosen where it "
     "is started) (see --help)"),
])
def test_bad_workers_or_cluster_is_a_one_line_usage_error(tmp_path, capsys, args, shown):
    if "--cluster" in args:
        pytest.importorskip("distributed")
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


def test_a_cluster_nobody_answers_is_one_line_before_anything_runs(tmp_path, capsys, monkeypatch):
    """Even when no chosen experiment has a grid: exit 2, not a silent 0."""
    pytest.importorskip("distributed")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    main = _main()
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 2)
    assert main(["--only", "linear_init", "--out", str(tmp_path), "--cluster", f"tcp://127.0.0.1:{port}"]) == 2
    assert one_line(capsys.readouterr().err) == (f"run_all.py: --cluster tcp://127.0.0.1:{port}: no Dask scheduler "
                                                  "answered there within 2 s (OSError); start one (dask scheduler) "
                                                  "or use --cluster local")
    assert not (tmp_path / "linear_init").exists()


def test_workers_reach_the_experiments(tmp_path, monkeypatch):
    """``--workers 2``: inside an experiment, run_cells' default executor is 2 local processes (none started)."""
    from minilplr.experiments.runner import load_experiment

    seen = []

    def run(cfg, out_dir, backend=None, progress=True):
        ex = sweep.current_executor()
        seen.append((type(ex).__name__, getattr(ex, "workers", None), sweep.current_usage() is not None))
        raise ValueError("x: expected a recorded executor")

    monkeypatch.setattr(load_experiment("linear_init"), "run", run)
    main = _main()
    before = B.get_backend().name
    try:
        assert main(["--backend", before, "--no-progress", "--only", "linear_init", "--out", str(tmp_path),
                     "--workers", str(min(2, sweep.cores()))]) == 1
    finally:
        B.set_backend(before)
    assert seen == [("Processes", min(2, sweep.cores()), True)]
    assert isinstance(sweep.current_executor(), sweep.InProcess)  # the run's pool was shut down with it


# --- Ctrl-C, for real ----------------------------------------------------------------------------------------------

_DRIVER = """
import runpy, sys
from minilplr import sweep
from minilplr.experiments.runner import load_experiment
from tests.sweep.cells import sleepy

def run(cfg, out_dir, backend=None, progress=True):
    cells = {{f"c{{i}}": {{"marker": {marker!r}, "seconds": 60, "i": i}} for i in range(4)}}
    sweep.run_cells(sleepy, cells, out_dir, progress=False)
    if {slow_close}:  # the run ends; its cluster closes slowly, and Ctrl-C comes then
        close = sweep.DaskExecutor.shutdown
        def slow(self, *a, **k):
            open({marker!r} + "/closing", "w").close()
            import time; time.sleep(3)
            close(self, *a, **k)
        sweep.DaskExecutor.shutdown = slow
    return {{}}

experiment = load_experiment("linear_init")
experiment.run, experiment.plot, experiment.report = run, lambda res, folder: [], lambda res: {{}}
sys.argv = [{script!r}, "--backend", "numpy", "--no-progress", "--only", "linear_init", "--out", {out!r}] + sys.argv[1:]
runpy.run_path({script!r}, run_name="__main__")  # the script itself, as the command line runs it
"""


def _press_ctrl_c(tmp_path, args, presses, seconds=60, wait_for=None):
    """Run the driver, press Ctrl-C ``presses`` times once 2 workers compute (or ``wait_for`` appears)."""
    marker = tmp_path / "marker"
    marker.mkdir()
    code = _DRIVER.format(script=str(SCRIPT), marker=str(marker), out=str(tmp_path / "out"),
                          slow_close=wait_for is not None).replace('"seconds": 60', f'"seconds": {seconds}')
    env = dict(os.environ, PYTHONPATH=str(ROOT), MINILPLR_BACKEND="numpy")
    p = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and p.poll() is None:
            names = [f.name for f in marker.iterdir()]
            if (wait_for in names) if wait_for else sum(n.isdigit() for n in names) >= 2:
                break
            time.sleep(0.2)
        assert p.poll() is None, p.communicate()
        for _ in range(presses):
            os.killpg(p.pid, signal.SIGINT)
            time.sleep(0.3)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    workers = [int(f.name) for f in marker.iterdir() if f.name.isdigit()]
    return p.returncode, out, err, workers


def _no_worker_left(workers):
    for _ in range(100):
        if not any(Path(f"/proc/{pid}").exists() for pid in workers):
            return True
        time.sleep(0.1)
    return False


pytestmark_proc = pytest.mark.skipif(not Path("/proc/self").exists() or sweep.cores() < 2,
                                     reason="reads /proc; needs 2 cores for 2 workers")


@pytestmark_proc
@pytest.mark.slow
def test_three_ctrl_c_with_workers_is_one_line_and_exit_130(tmp_path):
    rc, out, err, workers = _press_ctrl_c(tmp_path, ["--workers", "2"], presses=3)
    assert rc == 130, (out, err)
    assert "Traceback" not in out + err, err
    assert one_line(err).startswith("run_all.py: interrupted during linear_init: ")
    assert len(workers) == 2 and _no_worker_left(workers), "a worker outlived the interrupted run"


@pytestmark_proc
@pytest.mark.slow
def test_ctrl_c_with_a_local_dask_cluster_is_one_line_and_exit_130(tmp_path):
    pytest.importorskip("distributed")
    rc, out, err, workers = _press_ctrl_c(tmp_path, ["--cluster", "local", "--workers", "2"], presses=2)
    assert rc == 130, (out, err)
    assert "Traceback" not in out + err, err
    assert one_line(err).startswith("run_all.py: interrupted during linear_init: ")
    assert len(workers) == 2 and _no_worker_left(workers), "a Dask worker outlived the interrupted run"


@pytestmark_proc
@pytest.mark.slow
def test_ctrl_c_while_the_dask_cluster_closes_is_one_line_and_exit_130(tmp_path):
    pytest.importorskip("distributed")
    rc, out, err, workers = _press_ctrl_c(tmp_path, ["--cluster", "local", "--workers", "2"], presses=2, seconds=0,
                                          wait_for="closing")
    assert rc == 130, (out, err)
    assert "Traceback" not in out + err, err
    assert one_line(err).startswith("run_all.py: interrupted")
    assert _no_worker_left(workers)
