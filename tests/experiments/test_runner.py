"""Runs that survive (:mod:`minilplr.experiments.runner`): results are verified units, damaged state is
recomputed, one bad folder spoils nothing else.

The runner is driven with small stand-in experiments (:func:`fake_experiments`)
so each test takes well under a second.
"""
import os
import shutil
import stat
import types
from pathlib import Path

import numpy as np
import pytest

from minilplr.experiments import runner
from minilplr.experiments.io import load_results


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
