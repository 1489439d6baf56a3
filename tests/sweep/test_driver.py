"""The sweep's driver (minilplr.sweep.driver): cells saved as they finish, resumed, failures one line, pins kept apart.

The grid: 4 cells (:data:`tests.sweep.cells.CELLS`) run in this process.
Resuming (a killed sweep, a damaged cell file, a result saved under another
thread pin) runs only the cells it must, counted by the calls; a failing
cell is one line and the others are saved.  That the executors give the same
bits is ``test_bits.py``.
"""
import numpy as np
import pytest

from minilplr import backend as B
from minilplr import sweep
from minilplr.store import config_hash, load_unit, save_unit, unit_exists

from .cells import CALLS, CELLS, counting, gd_and_spectrum, killed_at_third


class Odd(Exception):
    """An exception that does not pickle back (its __init__ needs two arguments): must still be one line."""

    def __init__(self, what, step):
        super().__init__(f"{what} at step {step}")


def sometimes_fails(cell):
    if cell.get("fail") == "odd":
        raise Odd("loss blew up", 3)
    if cell.get("fail") == "device":
        return {"x": B.to_device(np.ones(2), "strict")}
    return gd_and_spectrum(cell)


def _quiet(*_):
    pass


def _same(a: dict, b: dict):
    assert list(a) == list(b)
    for k in a:
        assert set(a[k]) == set(b[k])
        for f in a[k]:
            x, y = a[k][f], b[k][f]
            if isinstance(x, np.ndarray):
                assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), (k, f)  # bit for bit
            else:
                assert x == y and type(x) is type(y), (k, f, x, y)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return sweep.run_cells(gd_and_spectrum, CELLS, tmp_path_factory.mktemp("ref"), progress=False, log=_quiet)


def test_results_are_saved_keyed_by_hash_with_the_pin(reference, tmp_path):
    assert list(reference) == [config_hash(c) for c in CELLS]
    assert reference.failed == {}
    r = reference[config_hash(CELLS[0])]
    assert r["loss"].shape == (4,) and r["loss"][-1] < r["loss"][0]
    assert r["shape"] == [128, 64]  # as stored: a tuple reads back as a list, fresh or loaded alike
    lines = []
    again = sweep.run_cells(gd_and_spectrum, CELLS, tmp_path, progress=False, log=lines.append)
    assert lines[0] == f"4 cell(s) in {tmp_path / 'cells'}: 0 saved, 4 to run on this process, 1 BLAS thread(s) per cell"
    _same(again, reference)
    for key in again:
        unit = load_unit(tmp_path / "cells", key)
        assert unit["blas_threads"] == 1 and unit["blas"] and unit["cell_hash"] == key


def test_a_killed_sweep_resumes_with_only_the_missing_cells(reference, tmp_path):
    CALLS.clear()
    with pytest.raises(KeyboardInterrupt):
        sweep.run_cells(killed_at_third, CELLS, tmp_path, progress=False, log=_quiet)
    first = [config_hash(c) for c in CELLS[:2]]
    assert CALLS == first and all(unit_exists(tmp_path / "cells", k) for k in first)  # saved as they finished
    CALLS.clear()
    res = sweep.run_cells(counting, CELLS, tmp_path, progress=False, log=_quiet)
    assert CALLS == [config_hash(c) for c in CELLS[2:]]
    _same(res, reference)


def test_a_damaged_cell_file_is_moved_aside_and_run_again(reference, tmp_path):
    sweep.run_cells(gd_and_spectrum, CELLS, tmp_path, progress=False, log=_quiet)
    key = config_hash(CELLS[1])
    npz = tmp_path / "cells" / f"{key}.npz"
    npz.write_bytes(npz.read_bytes()[:-10])
    CALLS.clear()
    lines = []
    res = sweep.run_cells(counting, CELLS, tmp_path, progress=False, log=lines.append)
    assert CALLS == [key]
    assert any("damaged" in ln and "moved aside" in ln for ln in lines), lines
    _same(res, reference)


def test_a_result_saved_under_another_pin_is_run_again_not_mixed(tmp_path):
    """Two cells saved with 1 thread; asked with 2: both rerun.  A cell saved before pins existed: rerun too."""
    cells = {"a": CELLS[0], "b": CELLS[1]}
    sweep.run_cells(gd_and_spectrum, cells, tmp_path, progress=False, log=_quiet)
    CALLS.clear()
    lines = []
    sweep.run_cells(counting, cells, tmp_path, progress=False, log=lines.append, threads=2)
    assert CALLS == [config_hash(CELLS[0]), config_hash(CELLS[1])]
    assert sum("computed with 1 BLAS thread(s), this sweep pins 2: running it again" in ln for ln in lines) == 2
    assert load_unit(tmp_path / "cells", "a")["blas_threads"] == 2
    old = load_unit(tmp_path / "cells", "b")
    del old["blas_threads"]
    save_unit(tmp_path / "cells", "b", old)  # as a version without pins saved it
    CALLS.clear()
    lines.clear()
    sweep.run_cells(counting, cells, tmp_path, progress=False, log=lines.append, threads=2)
    assert CALLS == [config_hash(CELLS[1])]
    assert any("computed with no thread pin (older)" in ln for ln in lines), lines
    CALLS.clear()
    with sweep.use(threads=2):  # the run's choice is the default
        sweep.run_cells(counting, cells, tmp_path, progress=False, log=_quiet)
    assert CALLS == []


def test_a_failing_cell_is_one_line_and_the_others_are_saved(reference, tmp_path):
    cells = {"a": CELLS[0], "odd": dict(CELLS[1], fail="odd"), "device": dict(CELLS[2], fail="device"),
             "d": CELLS[3]}
    lines = []
    with pytest.raises(sweep.CellsFailed) as info:
        sweep.run_cells(sometimes_fails, cells, tmp_path, executor=sweep.InProcess(), progress=False,
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
    assert unit_exists(tmp_path / "cells", "a")
    assert not unit_exists(tmp_path / "cells", "odd")
    allowed = sweep.run_cells(sometimes_fails, cells, tmp_path, progress=False, log=_quiet, allow_failures=True)
    assert list(allowed) == ["a", "d"] and list(allowed.failed) == ["odd", "device"]


def test_a_renamed_configuration_is_run_again(tmp_path):
    CALLS.clear()
    sweep.run_cells(counting, {"c": CELLS[0]}, tmp_path, progress=False, log=_quiet)
    lines = []
    sweep.run_cells(counting, {"c": CELLS[1]}, tmp_path, progress=False, log=lines.append)
    assert CALLS == [config_hash(CELLS[0]), config_hash(CELLS[1])]
    assert any("of another configuration" in ln for ln in lines)


def test_bad_grids_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(TypeError, match="fn: expected a function defined at the top level of a module"):
        sweep.run_cells(lambda c: {}, CELLS, tmp_path)
    with pytest.raises(ValueError, match="cells: expected names of letters"):
        sweep.run_cells(gd_and_spectrum, {"a/b": CELLS[0]}, tmp_path)
    with pytest.raises(ValueError, match="is listed twice"):
        sweep.run_cells(gd_and_spectrum, [CELLS[0], dict(CELLS[0])], tmp_path)
    with pytest.raises(ValueError, match=r"cells\[0\]: expected a JSON configuration"):
        sweep.run_cells(gd_and_spectrum, [{"x": object()}], tmp_path)
    with pytest.raises(ValueError, match="threads: expected a positive integer, got 0"):
        sweep.run_cells(gd_and_spectrum, CELLS, tmp_path, threads=0)
    assert not (tmp_path / "cells").exists()
