"""The spec parser: every bad key is one line naming the file and the key path, before anything runs."""
import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minilplr.experiments.study import SpecError, read_spec
from minilplr.experiments.study.spec import parse_spec

from ...helpers import one_line
from . import kinds_for_tests  # noqa: F401  (registers the kind "test_power")

ROOT = Path(__file__).resolve().parents[3]

GOOD = {
    "study": {"name": "s", "kind": "test_power"},
    "model": {"depth": 2, "c_beta0": 0.5},
    "grid": {"width": [8, 16, 32], "seed": [0, 1]},
    "run": {"steps": 2},
    "presets": {"quick": {"grid": {"width": [8, 16], "seed": [0]}}},
    "diagnostics": [{"name": "failure_factor"}, {"name": "own", "key": "certificate.r"}],
    "claims": [{"kind": "power_law", "x": "width", "y": "failure_factor", "below": 0.0}],
    "panels": [{"kind": "lines", "x": "width", "y": "failure_factor"}],
}


def test_the_good_spec_parses():
    spec = parse_spec(copy.deepcopy(GOOD), "x.toml")
    assert spec["grid"] == [{"width": [8, 16, 32], "seed": [0, 1]}]
    assert spec["presets"]["quick"]["grid"] == [{"width": [8, 16], "seed": [0]}]


def _set(d, path, value):
    *head, last = path
    for k in head:
        d = d[k]
    if value is _DEL:
        del d[last]
    else:
        d[last] = value


_DEL = object()
BAD = [  # (path, value, the key path the line names, a piece of what it expects)
    (("colour",), 1, "colour", "one of the keys"),
    (("study", "colour"), 1, "study.colour", "one of the keys"),
    (("study", "name"), _DEL, "study.name", "required"),
    (("study", "name"), "a/b", "study.name", "folder name"),
    (("study", "name"), 3, "study.name", "non-empty string"),
    (("study", "kind"), "nope", "study.kind", "cell kinds"),
    (("study", "data"), "d.npz", "study.data", "no data file"),
    (("model", "colour"), 1, "model.colour", "one of the keys"),
    (("model", "depth"), 0, "model.depth", "positive integer"),
    (("model", "depth"), 2.5, "model.depth", "positive integer"),
    (("model", "depth"), True, "model.depth", "positive integer"),
    (("model", "c_beta0"), -0.1, "model.c_beta0", "positive finite number"),
    (("model", "c_beta0"), 0.0, "model.c_beta0", "positive finite number"),
    (("model", "c_beta0"), "big", "model.c_beta0", "positive finite number"),
    (("model", "steps"), 3, "model.steps", "one of the keys"),
    (("run", "depth"), 3, "run.depth", "one of the keys"),
    (("run", "steps"), -1, "run.steps", "positive integer"),
    (("grid",), _DEL, "grid", "required"),
    (("grid", "width"), [], "grid.width", "non-empty list of positive integers"),
    (("grid", "width"), 8, "grid.width", "non-empty list of positive integers"),
    (("grid", "width"), [8, -16], "grid.width[1]", "positive integer"),
    (("grid", "width"), [8, 8], "grid.width", "distinct"),
    (("grid", "colour"), [1], "grid.colour", "an axis"),
    (("grid", "eta"), [0.1, 0.0], "grid.eta[1]", "positive finite number"),
    (("grid", "steps"), [2, -3], "grid.steps[1]", "positive integer"),
    (("model", "c_beta0"), _DEL, "grid", "exactly one step size"),
    (("grid", "eta"), [0.1], "grid", "exactly one step size"),
    (("presets", "huge"), {}, "presets.huge", "one of the keys"),
    (("presets", "quick", "colour"), {}, "presets.quick.colour", "one of the keys"),
    (("presets", "quick", "grid", "width"), [], "presets.quick.grid.width", "non-empty list"),
    (("presets", "quick", "model"), {"depth": -2}, "presets.quick.model.depth", "positive integer"),
    (("diagnostics",), {"name": "lam0"}, "diagnostics", "array of tables"),
    (("diagnostics", 0, "name"), "nope", "diagnostics[0].name", "registered diagnostic"),
    (("diagnostics", 0, "name"), "beta0", "diagnostics[0].name", "provides"),
    (("diagnostics", 0, "colour"), 1, "diagnostics[0].colour", "one of the keys"),
    (("diagnostics", 1, "name"), "lam0", "diagnostics[1].name", "not in the registry"),
    (("claims", 0, "kind"), "nope", "claims[0].kind", "one of power_law"),
    (("claims", 0, "y"), "lam0", "claims[0].y", "study's diagnostics"),
    (("claims", 0, "x"), "colour", "claims[0].x", "setting"),
    (("claims", 0, "colour"), 1, "claims[0].colour", "one of the keys"),
    (("claims", 0, "predicted"), -1.0, "claims[0]", "exactly one of below"),
    (("claims", 0, "below"), _DEL, "claims[0]", "exactly one of below"),
    (("claims", 0, "level"), 1.5, "claims[0].level", "(0, 1)"),
    (("claims", 0, "where"), {"colour": 1}, "claims[0].where.colour", "setting"),
    (("panels", 0, "kind"), "pie", "panels[0].kind", "one of lines"),
    (("panels", 0, "y"), "lam0", "panels[0].y", "study's diagnostics"),
    (("panels", 0, "x"), "colour", "panels[0].x", "setting"),
    (("panels", 0, "target"), -1, "panels[0].target", "positive finite"),
    (("panels", 0, "colour"), 1, "panels[0].colour", "one of the keys"),
]


@pytest.mark.parametrize("path,value,key,expected", BAD, ids=[".".join(map(str, b[0])) + f"={b[1]!r}" for b in BAD])
def test_every_bad_key_is_one_line_naming_it(path, value, key, expected):
    raw = copy.deepcopy(GOOD)
    _set(raw, path, value)
    with pytest.raises(SpecError) as e:
        parse_spec(raw, "studies/x.toml")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"studies/x.toml: {key}: expected "), msg
    assert expected in msg, msg


def test_claim_kinds_their_own_fields():
    for claim, key in [({"kind": "extrapolate", "x": "width", "y": "failure_factor"}, "claims[0].target"),
                       ({"kind": "extrapolate", "x": "width", "y": "failure_factor", "target": 0}, "claims[0].target"),
                       ({"kind": "threshold", "y": "failure_factor", "relation": "<", "value": 1}, "claims[0].relation"),
                       ({"kind": "threshold", "y": "failure_factor", "relation": "<="}, "claims[0].value"),
                       ({"kind": "power_law", "x": "width", "y": "failure_factor", "expect": [1, 0]},
                        "claims[0].expect"),
                       ({"kind": "power_law", "x": "width", "y": "failure_factor", "below": 0, "alternative": 1},
                        "claims[0].alternative"),
                       ({"kind": "held_out", "y": "failure_factor"}, "claims[0].x")]:
        raw = copy.deepcopy(GOOD)
        raw["claims"] = [claim]
        with pytest.raises(SpecError) as e:
            parse_spec(raw, "x.toml")
        assert str(e.value).startswith(f"x.toml: {key}: expected "), e.value
    raw = copy.deepcopy(GOOD)
    raw["panels"] = [{"kind": "heatmap", "x": "width", "y": "seed"}]
    with pytest.raises(SpecError, match=r"^x.toml: panels\[0\].value: expected "):
        parse_spec(raw, "x.toml")


def test_files_a_bad_toml_and_data(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[study\nname = 1\n")
    with pytest.raises(SpecError, match=r"bad.toml: expected a TOML file, got "):
        read_spec(p)
    with pytest.raises(SpecError, match="no such file"):
        read_spec(tmp_path / "absent.toml")
    spec = ('[study]\nname = "own"\nkind = "gd"\ndata = "d.npz"\n[model]\neta = 0.1\n[grid]\nwidth = [4]\n')
    (tmp_path / "own.toml").write_text(spec)
    for arrays, key, what in [(dict(X=np.ones((5, 2)), y=np.ones(4)), "study.data.y", "one row per row of X"),
                              (dict(X=np.ones(5), y=np.ones(5)), "study.data.X", "shape (N, D)"),
                              (dict(X=np.ones((1, 2)), y=np.ones(1)), "study.data.X", "N = 2"),
                              (dict(X=np.full((3, 2), np.nan), y=np.ones(3)), "study.data.X", "finite"),
                              (dict(X=np.array([["a", "b"], ["c", "d"]]), y=np.ones(2)), "study.data.X", "real"),
                              (dict(Z=np.ones((3, 2))), "study.data", "named X and y")]:
        np.savez(tmp_path / "d.npz", **arrays)
        with pytest.raises(SpecError) as e:
            read_spec(tmp_path / "own.toml")
        assert str(e.value).startswith(f"{tmp_path / 'own.toml'}: {key}: expected ") and what in str(e.value), e.value
    np.savez(tmp_path / "d.npz", X=np.ones((3, 2)), y=np.ones(3))
    assert read_spec(tmp_path / "own.toml")["study"]["data"] == str(tmp_path / "d.npz")


def test_run_all_exits_2_with_the_line_before_anything_runs(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text('[study]\nname = "x"\nkind = "gd"\n[model]\neta = 0.1\n[grid]\nwidth = []\n')
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "scripts/run_all.py"), "--study", str(p), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert one_line(r.stderr) == (f"run_all.py: {p}: grid.width: expected a non-empty list of positive integers, "
                                  "got []")
    assert not out.exists()  # nothing ran, nothing was written


def test_shipped_studies_parse():
    for p in sorted((ROOT / "studies").glob("*.toml")):
        read_spec(p)
