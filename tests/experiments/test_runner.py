"""Runs that survive (:mod:`minilplr.experiments.runner`, :mod:`minilplr.experiments.output`): results are
verified units, damaged state is recomputed, one bad folder spoils nothing else, another configuration's results
are kept, the report never shrinks, and only our own files are touched.

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

from minilplr.experiments import output, runner
from minilplr.experiments.io import load_results
from minilplr.experiments.output import OutputLocked, OutputRefused, lock_output
from minilplr.theory.verdicts import TABLE_HEADER, compare, identity, render_row


def _fake(name, calls):
    """An experiment module in miniature: its results are a curve filled with its seed."""

    def run(cfg, folder, backend=None, progress=True):
        calls.append(name)
        return {"data": f"synthetic, seed {cfg['seed']}", "curve": np.full(cfg["n"], float(cfg["seed"])),
                "rate": 0.25 + cfg["seed"]}

    def plot(res, folder):
        from minilplr.experiments.plotting import figure, save

        fig, ax = figure(width=1, height=1)
        ax.plot(res["curve"])
        return [save(fig, Path(folder) / "curve.png")]

    def report(res):
        seed = int(res["curve"][0])
        return {"figures": [["curve.png", f"{name}: the curve of seed {seed}"]],
                "claims": [compare(f"{name} ran", seed, 0, "≥", quantity="seed", scale=1, rests_on=f"seed {seed}"),
                           compare(f"{name} rate", res["rate"], 10.0, "≤", quantity="rate",
                                   rests_on=f"rate {res['rate']}")]}

    return types.SimpleNamespace(NAME=name, TITLE=f"stand-in {name}", PRESETS={"quick": {"seed": 0, "n": 4}},
                                 run=run, plot=plot, report=report)


@pytest.fixture
def fake_experiments(monkeypatch):
    """The runner sees stand-in experiments ``a``, ``b``, ``c`` (``.mods``); ``.calls`` lists each run."""
    calls = []
    mods = {n: _fake(n, calls) for n in ("a", "b", "c")}
    monkeypatch.setattr(runner, "load_experiment", lambda name: mods[name])
    monkeypatch.setattr(runner, "EXPERIMENTS", list(mods))
    return types.SimpleNamespace(calls=calls, mods=mods)


def _run(out, names=("a",), seed=None, lines=None, plot_only=False):
    log = (lines.append if lines is not None else lambda *_: None)
    return runner.run_experiments(list(names), out=out, overrides={"seed": seed}, progress=False, log=log,
                                  plot_only=plot_only)


def _q(out):
    """The configuration folder of the default options: ``out/quick``."""
    return Path(out) / "quick"


def test_a_json_beside_another_runs_arrays_is_recomputed_not_reported(tmp_path, fake_experiments):
    """The seed-1 curves under a seed-0 caption: killed between the two renames, or two runs in one folder."""
    _run(tmp_path / "seed0", seed=0)
    _run(tmp_path / "seed1", seed=1)
    shutil.copy(tmp_path / "seed1" / "quick-seed1" / "a" / "results.npz", _q(tmp_path / "seed0") / "a" / "results.npz")
    lines = []
    status = _run(tmp_path / "seed0", seed=0, lines=lines)
    assert status == {"a": "finished"} and fake_experiments.calls == ["a", "a", "a"]  # recomputed
    damaged = [ln for ln in lines if ": damaged (" in ln]
    assert len(damaged) == 1 and "results.npz" in damaged[0] and "moved aside" in damaged[0], lines
    assert list((_q(tmp_path / "seed0") / "a").glob("results.npz.damaged-*"))
    assert np.array_equal(load_results(_q(tmp_path / "seed0") / "a")["curve"], np.zeros(4))
    assert "the curve of seed 0" in (_q(tmp_path / "seed0") / "report.md").read_text()


@pytest.mark.parametrize("damage", ["truncated results.json", "garbled results.npz", "missing results.npz"])
def test_damaged_results_are_moved_aside_and_recomputed(tmp_path, fake_experiments, damage):
    _run(tmp_path)
    js, npz = _q(tmp_path) / "a" / "results.json", _q(tmp_path) / "a" / "results.npz"
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
    assert np.array_equal(load_results(_q(tmp_path) / "a")["curve"], np.zeros(4))


def test_files_we_write_are_readable_by_others(tmp_path, fake_experiments):
    old = os.umask(0o077)  # a user whose umask hides files: results folders still get shared
    try:
        _run(tmp_path)
    finally:
        os.umask(old)
    for f in ("a/results.json", "a/results.npz", "a/curve.png", "report.md", "configuration.json"):
        assert stat.S_IMODE((_q(tmp_path) / f).stat().st_mode) == 0o644, f


def test_only_our_temporaries_in_our_folders_are_swept(tmp_path, fake_experiments):
    """Issue 21, item 3: a run removes the store's leftovers (``.<name>.<random>.minilplr-tmp``) in configuration
    folders, and nothing else: a user's ``.draft.v2.tmp`` beside the results, or our naming outside our folders."""
    _run(tmp_path)
    q = _q(tmp_path)
    stale = [q / "a" / ".results.npz.k3j2h1ab.minilplr-tmp",
             q / "runs" / "he-0" / ".checkpoint.npz.x1y2z3ab.minilplr-tmp"]
    keep = [q / "a" / "notes.tmp", q / "a" / "results.tmp.txt", q / "a" / ".results.npz.k3j2h1.tmp",
            tmp_path / "myproject" / "src" / ".draft.v2.tmp", tmp_path / ".env.local.tmp",
            tmp_path / "otherapp" / ".session.1234.tmp",
            tmp_path / "otherapp" / ".notes.abcdefgh.minilplr-tmp"]  # our naming, but not in a folder of ours
    for p in stale + keep:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half")
        os.utime(p, (1e9, 1e9))
    lines = []
    _run(tmp_path, lines=lines)
    assert [p for p in stale if p.exists()] == [] and [p for p in keep if not p.exists()] == []
    assert any("removed 2 temporary file(s)" in ln for ln in lines), lines


def test_a_run_inside_or_around_a_live_run_is_refused_and_writes_nothing(tmp_path, fake_experiments):
    """Issue 21, item 3: ``--out out/x`` while a run holds ``out`` (and the other way round) is one line."""
    out = tmp_path / "out"
    _run(out)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with lock_output(out):  # flock conflicts between two opens of the file, in one process too
        for inner in (_q(out) / "a", out / "new" / "sub"):
            with pytest.raises(OutputLocked, match=f"--out {inner}: inside {out}, which another run "
                                                   rf"\(PID {os.getpid()}\) is using"):
                _run(inner)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # not even the new folder
    with lock_output(_q(out) / "a"):
        with pytest.raises(OutputLocked, match=f"--out {out}: around {_q(out) / 'a'}, which another run"):
            _run(out)
        with pytest.raises(OutputLocked, match=f"--out {tmp_path}: around {_q(out) / 'a'}"):
            _run(tmp_path)
    assert fake_experiments.calls == ["a"]
    _run(_q(out) / "a")  # released: a nested folder is fine when nobody is in it
    with lock_output(_q(out) / "a" / "quick"):
        pass


def test_a_run_around_a_live_nested_run_finds_it_after_taking_its_lock(tmp_path, fake_experiments):
    """Both orders: the run below started before ``out`` had a lock file, or after: found by the walk below
    ``out``, after taking ``out``'s lock."""
    out = tmp_path / "out"
    for inner in (out / "x" / "y", out / "z"):  # the first creates out's lock file, the second finds it
        with lock_output(inner):
            for _ in range(2):
                with pytest.raises(OutputLocked, match=f"--out {out}: around {inner}, which another run"):
                    with lock_output(out):
                        pass
    with lock_output(out):  # both ended: out is free
        pass


def test_of_two_nested_runs_started_at_once_one_is_refused(tmp_path, monkeypatch):
    """The race: the inner run looks above before the outer holds its lock, and the outer looks below before
    the inner's lock exists. The inner's second look, once it holds its own lock, refuses it."""
    import contextlib

    outer, inner = tmp_path / "out", tmp_path / "out" / "quick" / "a"
    real_holder_of, stack, busy = output.holder_of, contextlib.ExitStack(), []

    def holder_of(lock):
        seen = real_holder_of(lock)
        if not busy and lock.parent == lock.parent.parent:  # the end of the inner run's first look (at /):
            busy.append(1)  # now the outer run starts and takes out's lock; its look below finds no lock yet
            stack.enter_context(lock_output(outer))
        return seen

    monkeypatch.setattr(output, "holder_of", holder_of)
    with stack:
        with pytest.raises(OutputLocked, match=f"--out {inner}: inside {outer}, which another run"):
            with lock_output(inner):
                pass
        assert busy  # the outer run was started in between, and holds out


def test_a_lock_that_is_a_folder_is_one_line(tmp_path, fake_experiments):
    (tmp_path / output.LOCK_NAME).mkdir()
    with pytest.raises(OutputRefused, match=rf"--out {tmp_path}: cannot use {tmp_path / output.LOCK_NAME} as the "
                                            "run lock .*expected a file there"):
        _run(tmp_path)


def test_a_folder_of_someone_else_named_like_a_configuration_is_not_written(tmp_path, fake_experiments):
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "thesis.tex").write_text("mine")
    with pytest.raises(OutputRefused, match="quick exists and was not made by run_all.py"):
        _run(tmp_path)
    assert sorted(p.name for p in (tmp_path / "quick").iterdir()) == ["thesis.tex"]


def test_a_configuration_switch_keeps_the_other_configurations_results(tmp_path, fake_experiments):
    """Issue 21, item 5: seed 1, then the default, then seed 1 again: two computations, nothing overwritten."""
    lines = []
    _run(tmp_path, names=("a", "b"), seed=1)
    _run(tmp_path, names=("a", "b"))
    _run(tmp_path, names=("a", "b"), seed=1, lines=lines)
    _run(tmp_path, names=("a", "b"), seed=0, lines=lines)  # the presets' own seed: the default's folder
    assert fake_experiments.calls == ["a", "b", "a", "b"], fake_experiments.calls
    assert sum("reusing finished results" in ln for ln in lines) == 4, lines
    assert load_results(tmp_path / "quick-seed1" / "a")["rate"] == 1.25
    assert load_results(tmp_path / "quick" / "a")["rate"] == 0.25
    assert "rate 1.25" in (tmp_path / "quick-seed1" / "report.md").read_text()
    assert "rate 0.25" in (tmp_path / "quick" / "report.md").read_text()
    assert output.saved_configurations(tmp_path) == ["quick", "quick-seed1"]


def test_the_report_keeps_every_saved_experiment_whatever_only_asks(tmp_path, fake_experiments):
    """Issue 21, item 4: ``--only a`` and refused ``--plot-only`` runs never shrink report.md."""
    _run(tmp_path, names=("a", "b", "c"))
    report = _q(tmp_path) / "report.md"
    full = report.read_text()
    assert [ln for ln in full.splitlines() if ln.startswith("## ")] == ["## a", "## b", "## c",
                                                                       "## Claims against measurements"]
    _run(tmp_path, names=("a",))
    assert report.read_text() == full  # rebuilt from all three
    for seed, names in ((5, ("a",)), (None, ("a", "b"))):
        if seed is None:
            shutil.rmtree(_q(tmp_path) / "a")  # a refused --plot-only of the same configuration
            shutil.rmtree(_q(tmp_path) / "b")
            full = report.read_text()
        status = _run(tmp_path, names=names, seed=seed, plot_only=True)
        assert set(status.values()) == {"missing"}
        assert report.read_text() == full, seed
    assert not (tmp_path / "quick-seed5").exists()  # a refused --plot-only creates nothing
    _run(tmp_path, names=("a",))  # a recomputes; b is gone: listed, not a section
    text = report.read_text()
    assert "Not run for this configuration yet: b." in text and "## b" not in text and "## c" in text


def test_plot_only_of_an_unknown_configuration_names_the_saved_ones(tmp_path, fake_experiments):
    _run(tmp_path)
    _run(tmp_path, seed=2)
    lines = []
    assert _run(tmp_path, seed=3, plot_only=True, lines=lines) == {"a": "missing"}
    assert lines == [f"[a] no saved results of the configuration quick-seed3 in {tmp_path}: run without --plot-only "
                     "first (saved there: quick, quick-seed2)"], lines


def test_an_edited_number_never_reaches_the_report(tmp_path, fake_experiments):
    """Issue 21, item 1: a number that lives only in results.json, edited: plot-only refuses, a run recomputes."""
    _run(tmp_path, names=("a", "b"))
    js = _q(tmp_path) / "a" / "results.json"
    js.write_text(js.read_text().replace('"rate": 0.25', '"rate": 0.95'))
    lines = []
    assert _run(tmp_path, names=("a",), plot_only=True, lines=lines) == {"a": "damaged"}
    assert any("results.json: damaged (its content differs" in ln and "not plotted; run without --plot-only to "
               "recompute it" in ln for ln in lines), lines
    assert not any("recomputing" in ln or "moved aside" in ln for ln in lines), lines
    assert js.exists()  # plot-only moves nothing
    text = (_q(tmp_path) / "report.md").read_text()
    assert "rate 0.95" not in text and "rate 0.25" in text  # the report written before: unchanged
    runner.write_report(_q(tmp_path))  # rebuilt now: a note, not the edited number
    text = (_q(tmp_path) / "report.md").read_text()
    assert "rate 0.95" not in text and "damaged (its content differs" in text.split("## a")[1].split("## b")[0]
    lines = []
    assert _run(tmp_path, names=("a",), lines=lines) == {"a": "finished"}
    assert fake_experiments.calls == ["a", "b", "a"] and any("moved aside" in ln for ln in lines), lines
    assert "rate 0.25" in (_q(tmp_path) / "report.md").read_text()


def test_a_damaged_experiment_gets_a_note_and_the_report_keeps_the_others(tmp_path, fake_experiments):
    _run(tmp_path, names=("a", "b", "c"))
    q = _q(tmp_path)
    (q / "b" / "curve.png").unlink()  # results saved, figure gone
    (q / "c" / "results.json").write_text("{")  # truncated
    path = runner.write_report(q, ["a", "b", "c"])
    text = path.read_text()
    assert "the curve of seed 0" in text and "| a | a ran | seed = 0; seed 0 | ≥ 0 | +0 % (marginal) | holds |" in text
    b_section = text.split("## b")[1].split("## c")[0]
    assert "Figure b/curve.png not drawn yet" in b_section and "| b | b ran | seed = 0; seed 0 |" in text
    c_section = text.split("## c")[1].split("## Claims")[0]
    assert "results.json: damaged (not valid JSON" in c_section and "| c |" not in text
    assert (q / "c" / "results.json").exists()  # the report moves nothing


def test_a_broken_section_does_not_stop_the_run_or_the_report(tmp_path, fake_experiments, monkeypatch):
    """A report() returning something unusable: its section says so; the run reports the others."""
    monkeypatch.setattr(fake_experiments.mods["a"], "report", lambda res: {"figures": [], "claims": [{"x": 1}]})
    lines = []
    status = _run(tmp_path, names=("a", "b"), lines=lines)
    assert status == {"a": "finished", "b": "finished"}
    text = (_q(tmp_path) / "report.md").read_text()
    assert "_Not reported: TypeError: claims: expected a minilplr.theory.verdicts.Verdict, got dict" in \
        text.split("## a")[1].split("## b")[0]
    assert "the curve of seed 0" in text.split("## b")[1] and "| b | b ran | seed = 0; seed 0 |" in text


def test_the_claims_contract_renders_verdicts_in_one_table_and_identities_apart(tmp_path, fake_experiments,
                                                                                  monkeypatch):
    """Issue 20: report() returns Verdicts; the runner renders every row with render_row (threshold, margin, word),
    counts the statuses, keeps identities in their own table, and an old-format dict is refused, never a "yes"."""
    def report(res):
        return {"figures": [], "claims": [compare("rate small", 0.5, 1.0, "≤", quantity="q"),
                                          compare("rate large", 0.95, 1.0, "≥", quantity="q")],
                "checks": [identity("Rayleigh", 1e-9, 1e-6)]}

    monkeypatch.setattr(fake_experiments.mods["a"], "report", report)
    _run(tmp_path, names=("a",))
    text = (_q(tmp_path) / "report.md").read_text()
    claims = text.split("## Claims against measurements")[1].split("## Solver checks")[0]
    checks = text.split("## Solver checks (identities)")[1]
    assert TABLE_HEADER in claims and TABLE_HEADER in checks
    assert render_row(compare("rate small", 0.5, 1.0, "≤", quantity="q"), experiment="a") in claims
    assert "| a | rate large | q = 0.95 | ≥ 1 | -5 % (marginal) | **fails** |" in claims
    assert "Rows: 1 holds, 1 fails; 1 marginal" in claims
    assert "| a | Rayleigh |" in checks and "identity" in checks and "Rayleigh" not in claims
    assert "| yes |" not in text
    with pytest.raises(TypeError, match="claims: expected a minilplr.theory.verdicts.Verdict"):
        runner.claim_verdict({"claim": "old style", "measured": "q = 3", "holds": True})  # no threshold, no margin
