"""One cell where the executor puts it (minilplr.sweep.cell): the BLAS threads pinned, the envelope it returns."""
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import scipy.linalg  # noqa: F401  (SciPy's own BLAS loaded before the thread limits below, as in a run)
from threadpoolctl import threadpool_info, threadpool_limits

from minilplr.experiments.timing import CellUsage, measure, phase
from minilplr.sweep import cell as C

from .cells import CELLS, changes_threads, gd_and_spectrum

ROOT = Path(__file__).resolve().parents[2]


def _threads():
    return sorted({p["num_threads"] for p in threadpool_info()})


def test_the_pin_holds_inside_and_is_undone_after():
    with threadpool_limits(2):
        with C.pinned(1) as blas:
            assert _threads() == [1]
            assert blas and {b["threads"] for b in blas} == {1}
            assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
        assert _threads() == [2]


def test_the_pin_reaches_a_blas_loaded_inside_it():
    """SciPy's own OpenBLAS, first loaded inside the pin (a fresh interpreter), runs the pinned count too."""
    code = ("import os, sys\nos.environ['OPENBLAS_NUM_THREADS'] = '2'\nimport numpy\n"
            "from minilplr.sweep import cell\nassert 'scipy.linalg' not in sys.modules\n"
            "with cell.pinned(1):\n    import scipy.linalg\n    from threadpoolctl import threadpool_info\n"
            "    print(sorted((p['filepath'], p['num_threads']) for p in threadpool_info()))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    pools = eval(out.stdout)
    assert len(pools) >= 2 and {n for _, n in pools} == {1}, pools  # NumPy's BLAS and SciPy's


def test_a_cell_that_changes_its_threads_fails_in_one_line():
    with threadpool_limits(2):
        out = C.run_cell(changes_threads, {}, threads=1)
        assert _threads() == [2]
    assert out["error"].startswith("RuntimeError: threads: the cell ended with ") and "pinned to 1" in out["error"]
    assert "\n" not in out["error"] and "Traceback" in out["traceback"]


def test_cells_of_one_process_share_one_pin():
    with C.pinned(1):
        with C.pinned(1):  # a second cell at the same time (a Dask worker with two threads): the same pin
            assert _threads() == [1]
        assert _threads() == [1]  # the first still holds it
        with pytest.raises(RuntimeError, match="threads: expected every cell of this process to pin 1"):
            with C.pinned(2):
                pass
    with pytest.raises(ValueError, match="threads: expected a positive integer, got 0"):
        with C.pinned(0):
            pass


def test_concurrent_cells_keep_the_pin_until_the_last_ends():
    inside, release, seen = threading.Event(), threading.Event(), []

    def other():
        with C.pinned(1):
            inside.set()
            release.wait(30)

    with threadpool_limits(2):
        t = threading.Thread(target=other)
        t.start()
        inside.wait(30)
        with C.pinned(1):
            pass  # this one ends first ...
        seen.append(_threads())  # ... and the other still computes on 1 thread
        release.set()
        t.join(30)
        seen.append(_threads())
    assert seen == [[1], [2]]


def test_the_envelope_of_a_cell():
    out = C.run_cell(gd_and_spectrum, CELLS[0], threads=1)
    assert set(out) == {"result", "worker", "seconds", "blas", "usage"}
    assert out["worker"].endswith(f"/{os.getpid()}") and out["seconds"] > 0 and out["usage"] == {}
    assert {b["threads"] for b in out["blas"]} == {1}
    bad = C.run_cell(len, {"a": 1})
    assert bad["error"] == "TypeError: result: expected a dict, got int"


def timed_cell(cell):
    with phase("train"):
        sum(range(100_000))
    with phase("ntk"):
        sum(range(100_000))
    return {}


def test_a_cells_usage_is_recorded_where_it_runs_and_charged_to_the_driver(monkeypatch):
    """On a worker, the cell's phases and peak memory come back; the driver spreads its wait over those phases."""
    out = C.run_cell(timed_cell, {}, usage=CellUsage())
    used = out["usage"]
    assert {"train", "ntk"} <= set(used["phases"]) and used["peak_mib"] > 0
    clock = iter(float(t) for t in range(100))
    with measure(clock=lambda: next(clock)) as timer:
        # the driver waited 10 s (fake clock) in "other"; two workers report 6 s train and 2 s ntk each
        CellUsage().charge([{"phases": {"train": 6.0, "ntk": 2.0}, "peak_mib": 300.0, "worker": "h/1"},
                            {"phases": {"train": 6.0, "ntk": 2.0}, "peak_mib": 200.0, "worker": "h/2"}], waited=1.0)
    assert timer.seconds["train"] == pytest.approx(0.75) and timer.seconds["ntk"] == pytest.approx(0.25)
    assert sum(timer.seconds.values()) == pytest.approx(timer.total)  # the phases still add up to wall time
    assert timer.workers == {"h/1": 300.0, "h/2": 200.0}
