"""``scripts/upgrade_results.py``: results of an older minilplr verified, re-sealed and moved, nothing lost.

A tiny synthetic older layout (one folder per experiment under ``out``, units
``minilplr-unit/1`` whose hash covers only the ``.npz``): a verified unit
ends up in the configuration folder, readable by the current store with the
same tree and the same arrays bytes; a damaged one stays where it was, named
in one line; a mixed folder does both.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minilplr.experiments.output import claim_configuration, read_configuration
from minilplr.store import Damaged, load_unit, save_unit

from .helpers import assert_same_tree

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "upgrade_results.py"
_spec = importlib.util.spec_from_file_location("upgrade_results", SCRIPT)
upgrade_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(upgrade_results)


def _old_unit(folder: Path, name: str, tree: dict):
    """Write ``tree`` as an older ``minilplr-unit/1`` unit: the JSON records the arrays' hash, not its own."""
    js = save_unit(folder, name, tree, compress=True)
    head = json.loads(js.read_text())
    js.write_text(json.dumps({"format": "minilplr-unit/1", "arrays": head["arrays"], "data": head["data"]}, indent=1))
    return js


def _tree(i):
    return {"name": f"e{i}", "loss": np.linspace(1.0, 0.1, 5) * (i + 1), "iters_to_tol": 15.0 + i,
            "runs": [{"mu": 0.25 * i, "w": np.arange(6.0).reshape(2, 3) + i}]}


def _older_layout(out: Path):
    """``out/linear_init/results`` and ``out/runs/he-1/results`` (units), a figure: the older layout."""
    _old_unit(out / "linear_init", "results", _tree(0))
    _old_unit(out / "runs" / "he-1", "results", _tree(1))
    (out / "linear_init" / "init.png").write_bytes(b"\x89PNG not really")
    return out


def _run(out):
    """Upgrade ``out`` for the quick preset: the counts and the lines it logged."""
    lines = []
    counts = upgrade_results.upgrade(out, upgrade_results.configuration("quick", {}), log=lines.append)
    return counts, lines


def test_verified_units_are_resealed_and_moved_with_their_bytes(tmp_path):
    out = _older_layout(tmp_path / "out")
    npz_before = (out / "linear_init" / "results.npz").read_bytes()
    counts, lines = _run(out)
    target = out / "quick"
    assert (counts["units"], counts["files"], counts["left"]) == (2, 1, 0)
    assert read_configuration(target)["preset"] == "quick"
    assert_same_tree(load_unit(target / "linear_init", "results"), _tree(0))
    assert_same_tree(load_unit(target / "runs" / "he-1", "results"), _tree(1))
    assert (target / "linear_init" / "results.npz").read_bytes() == npz_before  # the same arrays file
    assert (target / "linear_init" / "init.png").exists()
    assert not (out / "linear_init").exists() and not (out / "runs").exists()  # emptied folders only
    assert sum("could not be verified" in ln for ln in lines) == 1  # said once
    # the re-sealed JSON is tied whole: an edited number is now detected
    js = target / "linear_init" / "results.json"
    js.write_text(js.read_text().replace('"iters_to_tol": 15.0', '"iters_to_tol": 95.0'))
    with pytest.raises(Damaged):
        load_unit(target / "linear_init", "results")


def test_a_damaged_unit_stays_where_it_is_and_is_named(tmp_path):
    out = tmp_path / "out"
    _old_unit(out / "linear_init", "results", _tree(0))
    npz = out / "linear_init" / "results.npz"
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte: the recorded SHA-256 no longer matches
    npz.write_bytes(bytes(blob))
    counts, lines = _run(out)
    assert (counts["units"], counts["left"]) == (0, 1)
    assert (out / "linear_init" / "results.json").exists() and npz.read_bytes() == bytes(blob)
    assert not (out / "quick" / "linear_init" / "results.json").exists()
    named = [ln for ln in lines if "not verified" in ln]
    assert len(named) == 1 and "linear_init/results.json" in named[0] and "SHA-256" in named[0]


@pytest.mark.parametrize("damage", ["truncate", "missing", "garbled json", "no format"])
def test_mixed_folder_moves_the_verified_and_leaves_the_damaged(tmp_path, damage):
    out = _older_layout(tmp_path / "out")
    _old_unit(out / "linear_init" / "runs", "bad", _tree(2))
    bad_js, bad_npz = out / "linear_init" / "runs" / "bad.json", out / "linear_init" / "runs" / "bad.npz"
    if damage == "truncate":
        bad_npz.write_bytes(bad_npz.read_bytes()[:-10])
    elif damage == "missing":
        bad_npz.unlink()
    elif damage == "garbled json":
        bad_js.write_text(bad_js.read_text()[:40])
    else:  # an even older file, before units were tied to their arrays: nothing to verify it against
        head = json.loads(bad_js.read_text())
        bad_js.write_text(json.dumps({"data": head["data"]}))
    counts, lines = _run(out)
    assert (counts["units"], counts["left"]) == (2, 1)
    assert bad_js.exists()
    assert sum("not verified" in ln for ln in lines) == 1
    assert_same_tree(load_unit(out / "quick" / "linear_init", "results"), _tree(0))


def test_an_interrupted_upgrade_is_finished_by_running_it_again(tmp_path):
    out = _older_layout(tmp_path / "out")
    src = out / "linear_init"
    # killed after the new unit was complete, before the old names were removed
    claim_configuration(out / "quick", upgrade_results.configuration("quick", {}))
    os.makedirs(out / "quick" / "linear_init")
    os.link(src / "results.npz", out / "quick" / "linear_init" / "results.npz")
    (out / "quick" / "linear_init" / "results.json").write_bytes(upgrade_results.resealed(src / "results.json"))
    counts, lines = _run(out)
    assert (counts["units"], counts["left"]) == (2, 0)
    assert not (src / "results.json").exists()
    assert_same_tree(load_unit(out / "quick" / "linear_init", "results"), _tree(0))


def test_a_taken_place_is_not_overwritten(tmp_path):
    out = _older_layout(tmp_path / "out")
    claim_configuration(out / "quick", upgrade_results.configuration("quick", {}))
    save_unit(out / "quick" / "linear_init", "results", {"other": 1.0})
    counts, lines = _run(out)
    assert counts["left"] == 1 and (out / "linear_init" / "results.json").exists()
    assert load_unit(out / "quick" / "linear_init", "results") == {"other": 1.0}


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_command_line_exit_status_and_one_line_errors(tmp_path):
    out = _older_layout(tmp_path / "out")
    p = _cli(str(out), "--preset", "quick", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "2 unit(s) verified" in p.stdout and "nothing deleted" in p.stdout
    again = _cli(str(out), "--preset", "quick", cwd=tmp_path)
    assert again.returncode == 0 and "already upgraded" in again.stdout
    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty").mkdir()
    for args in [("nope", "--preset", "quick"), ("afile", "--preset", "quick"), ("empty", "--preset", "quick"),
                 (str(out),), (str(out), "--preset", "huge"), (str(out), "--preset", "quick", "--seed", "-1")]:
        p = _cli(*args, cwd=tmp_path)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, (args, p.stderr)


def test_a_damaged_unit_gives_exit_1(tmp_path):
    out = tmp_path / "out"
    _old_unit(out / "linear_init", "results", _tree(0))
    (out / "linear_init" / "results.npz").write_bytes(b"nope")
    p = _cli(str(out), "--preset", "quick", cwd=tmp_path)
    assert p.returncode == 1 and "not verified" in p.stdout


def test_leftovers_and_files_set_aside_stay_where_they_are(tmp_path):
    out = _older_layout(tmp_path / "out")
    tmp = out / "linear_init" / ".results.npz.abc123.minilplr-tmp"
    aside = out / "linear_init" / "results.json.damaged-20260101-000000"
    tmp.write_bytes(b"half")
    aside.write_text("{}")
    counts, lines = _run(out)
    assert counts["units"] == 2 and tmp.exists() and aside.exists()
    assert not (out / "quick" / "linear_init" / tmp.name).exists()


def test_results_of_another_configuration_stay_where_they_are(tmp_path):
    """Paper results upgraded with --preset quick would be recomputed in place by the next quick run: refused."""
    from minilplr.experiments.runner import experiment_config, load_experiment
    from minilplr.store import config_hash
    out = tmp_path / "out"
    cfg = experiment_config(load_experiment("linear_init"), "paper", {})
    _old_unit(out / "linear_init", "results", dict(_tree(0), config=cfg, config_hash=config_hash(cfg)))
    counts, lines = _run(out)  # asks for quick
    assert (counts["units"], counts["left"]) == (0, 1)
    assert (out / "linear_init" / "results.json").exists() and not (out / "quick").exists()
    assert any("another configuration" in ln and "preset: saved 'paper', asked 'quick'" in ln for ln in lines), lines
    counts = upgrade_results.upgrade(out, upgrade_results.configuration("paper", {}), log=lambda s: None)
    assert (counts["units"], counts["left"]) == (1, 0)
    assert load_unit(out / "paper" / "linear_init", "results")["config_hash"] == config_hash(cfg)


def test_a_refused_folder_is_left_without_a_lock(tmp_path):
    """A folder with nothing to upgrade is refused (exit 2) and left as it was: no ``.minilplr.lock`` dropped in it."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.png").write_bytes(b"\x89PNG")
    (tmp_path / "empty").mkdir()
    for folder in (photos, tmp_path / "empty"):
        before = sorted(p.name for p in folder.iterdir())
        p = _cli(str(folder), "--preset", "quick", cwd=tmp_path)
        assert p.returncode == 2 and "nothing to upgrade" in p.stderr, p.stderr
        assert sorted(p.name for p in folder.iterdir()) == before, folder


def test_the_other_configuration_line_names_every_difference_whole(tmp_path):
    """sgd_noise's paper-versus-quick differences run past 300 characters: each is named whole, none cut mid-word."""
    from minilplr.experiments.runner import experiment_config, load_experiment
    from minilplr.store import config_hash
    out = tmp_path / "out"
    cfg = experiment_config(load_experiment("sgd_noise"), "paper", {})
    asked = experiment_config(load_experiment("sgd_noise"), "quick", {})
    _old_unit(out / "sgd_noise", "results", dict(_tree(0), config=cfg, config_hash=config_hash(cfg)))
    counts, lines = _run(out)
    line = next(ln for ln in lines if "another configuration" in ln)
    diffs = [f"{k}: saved {cfg.get(k)!r}, asked {asked.get(k)!r}" for k in sorted(asked) if cfg.get(k) != asked.get(k)]
    assert len("; ".join(diffs)) > 300  # long enough to have been cut
    assert all(d in line for d in diffs), line
    assert line.endswith("pass the --preset, --seed and --data they were run with"), line


def test_a_truncated_results_json_is_refused_and_nothing_moves(tmp_path):
    """F case 12: a folder whose results.json is cut short: exit 2, one line naming it, every file where it was."""
    out = tmp_path / "out"
    (out / "lplr_map").mkdir(parents=True)
    (out / "lplr_map" / "results.json").write_text('{"format": "minilplr-unit/1", "data": {"config_ha')
    (out / "lplr_map" / "map.png").write_bytes(b"\x89PNG not really")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    r = _cli(str(out), "--preset", "quick", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = r.stderr.strip()
    assert "\n" not in line and "lplr_map/results.json: expected a readable results.json" in line, line
    assert line.endswith("nothing moved"), line
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
