"""Runs that survive: results are verified units, damaged state is recomputed, one bad folder spoils nothing else.

The runner is driven with small stand-in experiments (:func:`fake_experiments`)
so each test takes well under a second; the MNIST run cache (``gd_run``) is
checked on a tiny MLP.
"""
import os
import shutil
import stat
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minilplr.experiments import runner
from minilplr.experiments.io import load_results, save_results


def _fake(name, calls):
    """An experiment module in miniature: its results are a curve filled with its seed."""

    def run(cfg, folder, backend=None, progress=True):
        calls.append(name)
        return {"data": f"synthetic, seed {cfg['seed']}", "curve": np.full(cfg["n"], float(cfg["seed"]))}

    def plot(res, folder):
        from minilplr.experiments.plotting import figure, save

        fig, ax = figure(width=1, height=1)
        ax.plot(res["curve"])
        return [save(fig, Path(folder) / "curve.png")]

    def report(res):
        seed = int(res["curve"][0])
        return {"figures": [["curve.png", f"{name}: the curve of seed {seed}"]],
                "claims": [{"claim": f"{name} ran", "measured": f"seed {seed}", "holds": True}]}

    return types.SimpleNamespace(NAME=name, TITLE=f"stand-in {name}", PRESETS={"quick": {"seed": 0, "n": 4}},
                                 run=run, plot=plot, report=report)


@pytest.fixture
def fake_experiments(monkeypatch):
    """The runner sees stand-in experiments ``a``, ``b``, ``c`` (``.mods``); ``.calls`` lists each run."""
    calls = []
    mods = {n: _fake(n, calls) for n in ("a", "b", "c")}
    monkeypatch.setattr(runner, "load_experiment", lambda name: mods[name])
    return types.SimpleNamespace(calls=calls, mods=mods)


def _run(out, names=("a",), seed=None, lines=None):
    log = (lines.append if lines is not None else lambda *_: None)
    return runner.run_experiments(list(names), out=out, overrides={"seed": seed}, progress=False, log=log)


def test_results_are_a_unit_with_compressed_arrays(tmp_path):
    res = {"status": "finished", "curve": np.linspace(0, 1, 1000), "nested": {"k": [np.arange(3), 1.5]}}
    save_results(tmp_path, res)
    back = load_results(tmp_path)
    assert np.array_equal(back["curve"], res["curve"]) and np.array_equal(back["nested"]["k"][0], np.arange(3))
    assert '"sha256"' in (tmp_path / "results.json").read_text()  # the JSON names the arrays it belongs to
    with zipfile.ZipFile(tmp_path / "results.npz") as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}


def test_only_store_implements_splitting_hashing_and_atomic_writes():
    """One implementation of each: io.py names the results files, store.py does the work."""
    import minilplr.experiments.io as io_mod
    import minilplr.store as store

    for dup in ("_split", "_join", "atomic_write_bytes", "to_jsonable"):
        assert not hasattr(io_mod, dup), dup
    assert io_mod.config_hash is store.config_hash


def test_a_json_beside_another_runs_arrays_is_recomputed_not_reported(tmp_path, fake_experiments):
    """The seed-1 curves under a seed-0 caption: killed between the two renames, or two runs in one folder."""
    _run(tmp_path / "seed0", seed=0)
    _run(tmp_path / "seed1", seed=1)
    shutil.copy(tmp_path / "seed1" / "a" / "results.npz", tmp_path / "seed0" / "a" / "results.npz")
    lines = []
    status = _run(tmp_path / "seed0", seed=0, lines=lines)
    assert status == {"a": "finished"} and fake_experiments.calls == ["a", "a", "a"]  # recomputed
    damaged = [ln for ln in lines if ": damaged (" in ln]
    assert len(damaged) == 1 and "results.npz" in damaged[0] and "moved aside" in damaged[0], lines
    assert list((tmp_path / "seed0" / "a").glob("results.npz.damaged-*"))
    assert np.array_equal(load_results(tmp_path / "seed0" / "a")["curve"], np.zeros(4))
    assert "the curve of seed 0" in (tmp_path / "seed0" / "report.md").read_text()


@pytest.mark.parametrize("damage", ["truncated results.json", "garbled results.npz", "missing results.npz"])
def test_damaged_results_are_moved_aside_and_recomputed(tmp_path, fake_experiments, damage):
    _run(tmp_path)
    js, npz = tmp_path / "a" / "results.json", tmp_path / "a" / "results.npz"
    if damage == "truncated results.json":
        js.write_bytes(js.read_bytes()[: len(js.read_bytes()) // 2])
    elif damage == "garbled results.npz":
        b = bytearray(npz.read_bytes())
        b[40:60] = b"\x00" * 20
        npz.write_bytes(bytes(b))
    else:
        npz.unlink()
    for rerun in range(2):  # recomputed once, then reused
        lines = []
        assert _run(tmp_path, lines=lines) == {"a": "finished"}, lines
        assert sum(": damaged (" in ln for ln in lines) == (1 - rerun), lines
    assert fake_experiments.calls == ["a", "a"]
    assert np.array_equal(load_results(tmp_path / "a")["curve"], np.zeros(4))


def test_files_we_write_are_readable_by_others(tmp_path, fake_experiments):
    old = os.umask(0o077)  # a user whose umask hides files: results folders still get shared
    try:
        _run(tmp_path)
    finally:
        os.umask(old)
    for f in ("a/results.json", "a/results.npz", "a/report.json", "a/curve.png", "report.md"):
        assert stat.S_IMODE((tmp_path / f).stat().st_mode) == 0o644, f


def test_stale_temporaries_are_swept_and_counted(tmp_path, fake_experiments):
    _run(tmp_path)
    stale = [tmp_path / "a" / ".results.npz.k3j2h1.tmp", tmp_path / "runs" / "he-0" / ".checkpoint.npz.x1.tmp"]
    keep = [tmp_path / "a" / "notes.tmp", tmp_path / "a" / "results.tmp.txt"]  # not our naming
    for p in stale + keep:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half")
        os.utime(p, (1e9, 1e9))
    lines = []
    _run(tmp_path, lines=lines)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    assert any("removed 2 temporary file(s)" in ln for ln in lines), lines


def test_a_damaged_experiment_gets_a_note_and_the_report_keeps_the_others(tmp_path, fake_experiments):
    _run(tmp_path, names=("a", "b", "c"))
    (tmp_path / "b" / "report.json").write_text('{"figures": [')  # truncated
    (tmp_path / "c" / "results.json").write_text("{")  # truncated
    path = runner.write_report(tmp_path, ["a", "b", "c"])
    text = path.read_text()
    assert "the curve of seed 0" in text and "| a | a ran | seed 0 | yes |" in text
    b_section = text.split("## b")[1].split("## c")[0]
    assert "report.json is damaged" in b_section and b_section.count("\n_") == 1
    c_section = text.split("## c")[1].split("## Claims")[0]
    assert "No results" in c_section and "| c |" not in text


def test_a_broken_section_does_not_stop_the_run_or_the_report(tmp_path, fake_experiments, monkeypatch):
    """A report() returning something unusable: its section says so; the run reports the others."""
    monkeypatch.setattr(fake_experiments.mods["a"], "report", lambda res: {"figures": [], "claims": [{"x": 1}]})
    lines = []
    status = _run(tmp_path, names=("a", "b"), lines=lines)
    assert status == {"a": "finished", "b": "finished"}
    text = (tmp_path / "report.md").read_text()
    assert "_Not reported: KeyError" in text.split("## a")[1].split("## b")[0]
    assert "the curve of seed 0" in text.split("## b")[1] and "| b | b ran | seed 0 | yes |" in text


# --------------------------------------------------------------------------- the MNIST run cache


def assert_same_tree(a, b, where="results"):
    """Two results trees equal bit for bit: same keys, arrays with the same dtype, shape and bytes (NaN = NaN)."""
    if isinstance(a, dict):
        assert isinstance(b, dict), (where, b)
        assert sorted(a) == sorted(b), (where, sorted(a), sorted(b))
        for k in a:
            assert_same_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{where}.{i}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes() or np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), where
    elif isinstance(a, float) and isinstance(b, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, (where, a, b)


TINY = dict(digits=[0, 1], n=16, data_source="offline", preprocess="unit", width=8, depth=2, init="he",
            init_factor=None, lr=1e-2, epochs=6, seed=0, dtype="float64", diag_every=2, hessian_iters=3)


class Killed(Exception):
    """Stands in for the process dying."""


def _killed_gd_run(runs, monkeypatch, at_call=3):
    """``gd_run(TINY)`` stopped inside its ``at_call``-th NTK diagnostic (after the step-4 checkpoint)."""
    from minilplr.experiments import mnist_gd

    spectrum, n = mnist_gd._spectrum.ntk_spectrum, [0]

    def dying(K, *a, **kw):
        n[0] += 1
        if n[0] == at_call:
            raise Killed
        return spectrum(K, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(mnist_gd._spectrum, "ntk_spectrum", dying)
        with pytest.raises(Killed):
            mnist_gd.gd_run(TINY, runs, progress=False)
    (folder,) = runs.iterdir()
    return folder


@pytest.mark.parametrize("unit", ["ntk0", "hessian0", "r0", "checkpoint"])
def test_a_damaged_run_file_is_moved_aside_and_the_run_ends_bit_identical(tmp_path, monkeypatch, caplog, capsys,
                                                                          unit):
    """A truncated ntk0, hessian0, r0 or checkpoint made every rerun fail; now: one line, moved aside, recomputed."""
    from minilplr.experiments.mnist_gd import gd_run

    ref = gd_run(TINY, tmp_path / "ref", progress=False)
    folder = _killed_gd_run(tmp_path / "killed", monkeypatch)
    files = sorted(folder.glob(f"{unit}.*"))
    assert files, sorted(f.name for f in folder.iterdir())
    for f in files:  # the arrays file, or the only file there is
        if f.suffix != ".json" or len(files) == 1:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with caplog.at_level("WARNING", logger="minilplr"):
        res = gd_run(TINY, tmp_path / "killed", progress=False)
    said = [r.getMessage() for r in caplog.records] + capsys.readouterr().out.splitlines()  # checkpoints print
    lines = [ln for ln in said if ": damaged (" in ln]
    assert len(lines) == 1 and "moved aside" in lines[0] and "\n" not in lines[0], lines
    assert list(folder.glob(f"{unit}.*.damaged-*"))
    assert_same_tree(res, ref)
    assert not list(folder.glob("checkpoint.*[!0-9]")), sorted(f.name for f in folder.iterdir())  # finished
    assert_same_tree(load_results(folder), ref)


def test_a_checkpoint_left_beside_finished_results_is_removed(tmp_path):
    """Killed between saving the results and removing the checkpoint: the next run removes the orphan."""
    from minilplr.train.checkpoint import save_checkpoint
    from minilplr.experiments.mnist_gd import gd_run

    ref = gd_run(TINY, tmp_path, progress=False)
    (folder,) = (tmp_path).iterdir()
    assert not list(folder.glob("checkpoint*"))
    save_checkpoint(folder / "checkpoint", {"x": np.zeros(2)}, {"run": "orphan"})
    assert_same_tree(gd_run(TINY, tmp_path, progress=False), ref)
    assert not list(folder.glob("checkpoint*"))
