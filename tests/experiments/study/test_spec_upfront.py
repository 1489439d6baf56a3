"""Bad studies refused before anything runs (helper F's not-clean cases 1-11): one line naming the key, exit 2."""
import copy
import subprocess
import sys

import numpy as np
import pytest

from minilplr.experiments.study import SpecError
from minilplr.experiments.study.spec import parse_spec

from .test_spec import ROOT

GD = {"study": {"name": "s", "kind": "gd"}, "model": {"eta": 0.1, "n": 20, "depth": 2},
      "grid": {"width": [8, 16]}, "run": {"steps": 2, "diag_every": 1}}


def _refused(raw, key, expected, where="x.toml"):
    with pytest.raises(SpecError) as e:
        parse_spec(raw, where)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{where}: {key}: expected "), msg
    assert expected in msg, msg
    return msg


# -- case 1: init's choices are the model's own list (less gaussian, which needs p no kind passes)

@pytest.mark.parametrize("kind", ["gd", "lplr_map", "sgd_noise"])
def test_an_unknown_init_is_refused(kind):
    from minilplr.nn.init import INITIALISERS

    raw = copy.deepcopy(GD)
    raw["study"]["kind"] = kind
    raw["model"]["init"] = "xavier"
    if kind == "sgd_noise":
        raw["model"].update(batch=4, record_every=1, noise_every=1)
        raw["run"] = {"steps": 2}
    msg = _refused(raw, "model.init", "one of he, enhanced_he")
    assert "gaussian" not in msg and all(i in INITIALISERS for i in ("he", "enhanced_he"))
    for good in ("he", "enhanced_he"):
        raw["model"]["init"] = good
        parse_spec(raw, "x.toml")


# -- cases 2-5: the user's .npz

def _npz_spec(tmp_path, name="d.npz"):
    raw = copy.deepcopy(GD)
    raw["study"]["data"] = str(tmp_path / name)
    return raw


@pytest.mark.parametrize("arrays,key,expected", [
    ({"X": np.zeros((20, 0)), "y": np.zeros(20)}, "study.data.X", "at least D = 1 feature"),
    ({"X": np.zeros((20, 3)), "y": np.zeros((20, 0))}, "study.data.y", "at least K = 1 output"),
    ({"X": np.zeros((20, 3))}, "study.data", "arrays named X and y"),
    ({"y": np.zeros(20)}, "study.data", "arrays named X and y"),
])
def test_bad_arrays_are_refused(tmp_path, arrays, key, expected):
    np.savez(tmp_path / "d.npz", **arrays)
    msg = _refused(_npz_spec(tmp_path), key, expected)
    if "X" not in arrays or "y" not in arrays:  # once, not wrapped inside itself
        assert msg.count("expected") == 1 and f"without {'X' if 'X' not in arrays else 'y'}" in msg, msg


@pytest.mark.parametrize("content", [b"this is not an npz\n" * 4, b"\x80\x04K\x01.", b""])
def test_a_file_that_is_not_an_npz_is_refused_without_suggesting_pickles(tmp_path, content):
    (tmp_path / "d.npz").write_bytes(content)
    msg = _refused(_npz_spec(tmp_path), "study.data", "an .npz file")
    assert "pickle" not in msg.lower() and "which is not one" in msg, msg


def test_an_object_array_is_refused_without_suggesting_pickles(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.array([object()] * 6, dtype=object).reshape(3, 2), y=np.zeros(3))
    msg = _refused(_npz_spec(tmp_path), "study.data", "numeric arrays")
    assert "allow_pickle" not in msg and "unsafe" not in msg.lower(), msg


# -- case 6: a model that cannot fit, found at spec time by the check the model makes (MINILPLR_MAX_BYTES)

def test_a_width_whose_model_cannot_fit_is_refused(monkeypatch):
    from minilplr.experiments.study.kinds import mlp_parameters
    from minilplr.nn.models import mlp
    from minilplr.nn.params import num_params

    for args in ((784, 8, 2, 1, False), (5, 7, 4, 3, True), (784, 16, 1, 1, False)):
        m = mlp(*args[:4], batchnorm=args[4], seed=0)
        assert mlp_parameters(*args) == num_params(m.params), args
    raw = copy.deepcopy(GD)
    raw["presets"] = {"paper": {"grid": {"width": [8, 300]}}}
    P = mlp_parameters(784, 300, 2, 1)
    monkeypatch.setenv("MINILPLR_MAX_BYTES", str(4 * P - 1))  # one byte short for the paper preset's largest cell
    msg = _refused(raw, "presets.paper.grid, cell width=300 (preset paper): width",
                   f"the model's P = {P:,} float32 parameters to fit in memory")
    assert "MINILPLR_MAX_BYTES" in msg, msg
    monkeypatch.setenv("MINILPLR_MAX_BYTES", str(4 * P))
    parse_spec(raw, "x.toml")


# -- cases 7-8: a claim or panel no cell of any preset can decide

def _with(kind_key, item):
    raw = copy.deepcopy(GD)
    raw["diagnostics"] = [{"name": "failure_factor"}]
    raw[kind_key] = [item]
    return raw


CLAIM = {"kind": "power_law", "x": "width", "y": "failure_factor", "below": 0.0}
PANEL = {"kind": "lines", "x": "width", "y": "failure_factor"}
HEAT = {"kind": "heatmap", "x": "width", "y": "seed", "value": "failure_factor"}


@pytest.mark.parametrize("key,item,field,expected", [
    ("claims", dict(CLAIM, x="depth"), "claims[0].x", "a setting the selected cells vary"),
    ("claims", dict(CLAIM, where={"width": 999}), "claims[0].where", "settings that match a cell"),
    ("claims", {"kind": "threshold", "y": "failure_factor", "relation": "<=", "value": 1.0, "where": {"depth": 3}},
     "claims[0].where", "settings that match a cell"),
    ("claims", dict(CLAIM, where={"width": 8}), "claims[0].x", "a setting the selected cells vary"),
    ("panels", dict(PANEL, x="depth"), "panels[0].x", "a setting the selected cells vary"),
    ("panels", dict(PANEL, where={"width": 999}), "panels[0].where", "settings that match a cell"),
    ("panels", HEAT, "panels[0].y", "a setting the selected cells vary"),
])
def test_a_claim_or_panel_no_cell_can_decide_is_refused(key, item, field, expected):
    _refused(_with(key, item), field, expected)


def test_a_claim_only_one_preset_can_decide_is_kept():
    """The quick grid varies one width only: the paper preset can decide the claim, so the spec stands."""
    raw = _with("claims", CLAIM)
    raw["presets"] = {"quick": {"grid": {"width": [8]}}}
    parse_spec(raw, "x.toml")
    raw["presets"]["paper"] = {"grid": {"width": [16]}}
    _refused(raw, "claims[0].x", "a setting the selected cells vary")
    for item in (CLAIM, dict(CLAIM, where={"depth": 2}), dict(HEAT, y="eta")):
        raw = _with("claims" if "below" in item else "panels", item)
        if item.get("y") == "eta":
            raw["model"].pop("eta")
            raw["grid"]["eta"] = [0.1, 0.2]
        parse_spec(raw, "x.toml")


# -- cases 10-11: the kinds' own checks of each cell

ARCH = {"study": {"name": "a", "kind": "architecture"},
        "model": {"n": 20, "width": 8}, "run": {"steps": 2, "diag_every": 1},
        "grid": {"depth": [2, 4], "residual": [True, False]}}
SGD = {"study": {"name": "g", "kind": "sgd_noise"},
       "model": {"n": 16, "width": 8, "depth": 2, "c_beta0": 0.3, "record_every": 1, "noise_every": 1},
       "run": {"steps": 2}, "grid": {"batch": [8, 16]}}


def test_a_residual_network_of_odd_depth_is_refused():
    parse_spec(copy.deepcopy(ARCH), "x.toml")
    raw = copy.deepcopy(ARCH)
    raw["grid"]["depth"] = [2, 3]
    _refused(raw, "grid, cell depth=3,residual=True (preset quick): depth", "an even depth >= 2 with residual = true")
    raw["grid"]["residual"] = [False]  # a plain network of depth 3 is fine
    parse_spec(raw, "x.toml")


def test_an_sgd_batch_larger_than_n_is_refused():
    parse_spec(copy.deepcopy(SGD), "x.toml")  # batch = n: full-batch GD
    raw = copy.deepcopy(SGD)
    raw["grid"]["batch"] = [8, 32]
    _refused(raw, "grid, cell batch=32 (preset quick): batch", "at most n = 16 samples")


# -- case 9: --seed with --study

def test_run_all_refuses_seed_with_a_study(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('[study]\nname = "s"\nkind = "gd"\n[model]\neta = 0.1\nn = 20\n[grid]\nwidth = [4]\n')
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "scripts/run_all.py"), "--study", str(spec), "--seed", "5",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith("run_all.py: --seed: expected no --seed with --study"), line
    assert not out.exists()
    h = subprocess.run([sys.executable, str(ROOT / "scripts/run_all.py"), "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert "refused with --study" in " ".join(h.stdout.split()), h.stdout
