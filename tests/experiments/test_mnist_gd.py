"""The MNIST GD run's cost levers (minilplr.experiments.mnist_gd) change no number that is read.

* a run made without β (``hessian_iters = 0``) trains bit-identically, has no β, and its certificate
  says R is not measured (and the NTK-stability row says so in words, not as a number);
* a run with NTK diagnostics only at ``t = 0`` and ``t = T`` has, there, the full run's values bit for bit;
* Fig. 4 and Fig. 5 ask for the shared He run with Fig. 1's config (same cache key), lean configs elsewhere;
* checkpoints every ``ceil(epochs / 5)`` steps, not a multiple of ``diag_every``: a run killed after one
  resumes bit-identical;
* the run cache: a damaged run file (``ntk0``, ``hessian0``, ``r0``, checkpoint) is one line, moved aside and
  recomputed to the same numbers; a checkpoint left beside finished results is removed.
"""
import math

import numpy as np
import pytest

from minilplr.experiments import fig4_initialisation as fig4
from minilplr.experiments import fig5_width_ablation as fig5
from minilplr.experiments import mnist_gd, ntk_stability
from minilplr.experiments.io import config_hash, load_results
from minilplr.experiments.mnist_gd import checkpoint_interval, gd_run, lean_config, run_config
from minilplr.train import resumable

from ..helpers import TINY_MNIST_GD as TINY
from ..helpers import Killed, assert_same_tree

@pytest.fixture(scope="module")
def full(tmp_path_factory):
    return gd_run(TINY, tmp_path_factory.mktemp("full"), progress=False)


def test_a_run_without_beta_trains_the_same_and_says_R_is_not_measured(full, tmp_path):
    runs = tmp_path / "runs"
    lean = gd_run(lean_config(TINY, beta=False), runs, progress=False)
    assert lean["run_config"]["hessian_iters"] == 0 and lean["hessian"] == {}
    assert not list(runs.glob("*/hessian0.*"))
    assert_same_tree(lean["history"], full["history"], "history")
    assert_same_tree(lean["diag"], full["diag"], "diag")
    c, ref = lean["certificate"], full["certificate"]
    assert math.isnan(c["beta"]) and math.isnan(c["R"]) and c["drift_within_R"] is None
    assert c["beta_source"].startswith("not measured") and ref["beta_source"].startswith("beta0")
    for k in ("lam0", "L_theta", "r", "mu_cert", "radius_max", "path_length"):
        assert c[k] == ref[k], k
    row = [r for r in ntk_stability.report(dict(status="finished", data=lean["data"], run=lean))["claims"]
           if r.claim.startswith("The drift stays")][0]
    assert "R not measured" in row.why and "nan" not in row.why and row.status == "untestable"
    with pytest.raises(ValueError, match="hessian_iters"):
        gd_run(dict(TINY, hessian_iters=-1), tmp_path / "bad", progress=False)


def test_diagnostics_at_the_ends_only_are_the_full_runs_ends(full, tmp_path):
    lean = gd_run(lean_config(TINY, beta=False, every_checkpoint=False), tmp_path, progress=False)
    assert list(lean["diag"]["step"]) == [0, TINY["epochs"]]
    assert list(full["diag"]["step"]) == [0, 2, 4, 6, 7]
    for k, v in lean["diag"].items():
        assert_same_tree(v, full["diag"][k][[0, -1]], k)
    assert_same_tree(lean["history"], full["history"], "history")
    assert lean["final_param_drift"] == full["final_param_drift"]


def test_the_shared_he_run_keeps_fig1s_cache_key(tmp_path):
    """Fig. 4's He run and Fig. 5's configured width are Fig. 1's run (one training); the rest are lean."""
    for preset in ("quick", "paper"):
        cfg1 = mnist_gd.MNIST_PRESETS[preset]
        key = config_hash(run_config(cfg1))
        cfg5 = fig5.PRESETS[preset]
        assert [config_hash(fig5.width_config(cfg5, w)) == key for w in cfg5["widths"]] == \
            [w == cfg1["width"] for w in cfg5["widths"]]
        other = fig5.width_config(cfg5, cfg5["widths"][0])
        assert other["hessian_iters"] == 0 and other["diag_every"] == cfg5["epochs"]
    cfg4 = dict(fig4.PRESETS["quick"], **{k: TINY[k] for k in mnist_gd.RUN_KEYS})
    res = fig4.run(cfg4, tmp_path / "fig4_initialisation", progress=False)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(
        [f"he-{config_hash(run_config(TINY))}", f"enhanced_he-{config_hash(lean_config(TINY, beta=False, init='enhanced_he'))}"])
    assert "beta0" in res["runs"]["he"]["hessian"] and "betaT" in res["runs"]["he"]["hessian"]
    assert res["runs"]["enhanced_he"]["hessian"] == {}
    assert list(res["runs"]["enhanced_he"]["diag"]["step"]) == [0, 2, 4, 6, 7]  # Fig. 4 plots λ_min along the run


def test_checkpoint_interval():
    assert checkpoint_interval(mnist_gd.MNIST_PRESETS["paper"]) == 50
    assert [checkpoint_interval(dict(epochs=e)) for e in (1, 5, 6, 7, 250, 251)] == [1, 1, 2, 2, 50, 51]


def test_killed_after_a_checkpoint_off_the_diagnostic_grid_resumes_bit_identical(tmp_path, monkeypatch):
    """epochs 12, diag_every 2: checkpoints after 3, 6, 9, 12 steps; killed in the step-4 diagnostic, resumed at 3."""
    cfg = dict(TINY, epochs=12)
    assert checkpoint_interval(cfg) == 3
    ref = gd_run(cfg, tmp_path / "ref", progress=False)
    saved, calls = [], [0]
    save, spectrum_ = resumable.save_checkpoint, mnist_gd._spectrum.ntk_spectrum

    def counting(path, state, fp):
        saved.append(len(state["history"]["records"]["step"]))
        return save(path, state, fp)

    def dying(K, *a, **kw):
        calls[0] += 1
        if calls[0] == 3:  # t = 0, 2, then 4
            raise Killed
        return spectrum_(K, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(resumable, "save_checkpoint", counting)
        m.setattr(mnist_gd._spectrum, "ntk_spectrum", dying)
        with pytest.raises(Killed):
            gd_run(cfg, tmp_path / "killed", progress=False)
    assert saved == [3]  # one checkpoint, after step 2: off the diag_every = 2 grid
    with monkeypatch.context() as m:
        m.setattr(resumable, "save_checkpoint", counting)
        res = gd_run(cfg, tmp_path / "killed", progress=False)
    assert saved == [3, 6, 9, 12, 12]  # resumed at step 3; the loop saves again when finished
    assert_same_tree(res, ref)


# --------------------------------------------------------------------------- the MNIST run cache

#: the run-cache tests' run: six epochs
TINY_CACHE = dict(TINY, epochs=6)


def _killed_gd_run(runs, monkeypatch, at_call=3):
    """``gd_run(TINY_CACHE)`` stopped inside its ``at_call``-th NTK diagnostic (after the step-4 checkpoint)."""
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
            mnist_gd.gd_run(TINY_CACHE, runs, progress=False)
    (folder,) = runs.iterdir()
    return folder


@pytest.mark.parametrize("unit", ["ntk0", "hessian0", "r0", "checkpoint"])
def test_a_damaged_run_file_is_moved_aside_and_the_run_ends_bit_identical(tmp_path, monkeypatch, caplog, capsys,
                                                                          unit):
    """A truncated ntk0, hessian0, r0 or checkpoint made every rerun fail; now: one line, moved aside, recomputed."""
    from minilplr.experiments.mnist_gd import gd_run

    ref = gd_run(TINY_CACHE, tmp_path / "ref", progress=False)
    folder = _killed_gd_run(tmp_path / "killed", monkeypatch)
    files = sorted(folder.glob(f"{unit}.*"))
    assert files, sorted(f.name for f in folder.iterdir())
    for f in files:  # the arrays file, or the only file there is
        if f.suffix != ".json" or len(files) == 1:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with caplog.at_level("WARNING", logger="minilplr"):
        res = gd_run(TINY_CACHE, tmp_path / "killed", progress=False)
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

    ref = gd_run(TINY_CACHE, tmp_path, progress=False)
    (folder,) = (tmp_path).iterdir()
    assert not list(folder.glob("checkpoint*"))
    save_checkpoint(folder / "checkpoint", {"x": np.zeros(2)}, {"run": "orphan"})
    assert_same_tree(gd_run(TINY_CACHE, tmp_path, progress=False), ref)
    assert not list(folder.glob("checkpoint*"))
