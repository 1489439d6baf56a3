"""A hostile user's specs and command lines (issue 23, found after the study landed): each refused up front, one line."""
import copy
import subprocess
import sys

import pytest

from minilplr.experiments.study import SpecError
from minilplr.experiments.study.spec import parse_spec

from ...helpers import one_line
from .test_spec import ROOT

MAP = {"study": {"name": "s", "kind": "lplr_map"}, "model": {"c_beta0": 0.5, "n": 100}, "grid": {"width": [8, 16]}}
BAD = [  # (model, grid, the key path the line names, a piece of what it expects)
    ({"n": 2000}, None, "model.n", "at most 1000 samples"),  # auto may fall back to the offline 500 per digit
    ({"n": 1200, "data_source": "offline"}, None, "model.n", "at most 1000 samples"),
    ({"n": 20000, "data_source": "download"}, None, "model.n", "at most 11846 samples"),  # digit 0: 5923
    ({"n": 12000, "data_source": "download", "digits": [5, 1]}, None, "model.n", "at most 10842"),  # digit 5: 5421
    ({"n": 101}, None, "model.n", "even number"),
    ({"digits": [1, 1]}, None, "model.digits", "two distinct digits 0-9"),
    ({"digits": [0, 12]}, None, "model.digits", "two distinct digits 0-9"),
    ({"digits": [3]}, None, "model.digits", "two distinct digits 0-9"),
    ({"digits": [0, 1, 2]}, None, "model.digits", "two distinct digits 0-9"),
    ({}, {"width": [8], "n": [100, 3000]}, "grid.n[1]", "at most 1000 samples"),
    ({}, {"width": [8], "digits": [[0, 1], [2, 2]]}, "grid.digits[1]", "two distinct digits"),
]


@pytest.mark.parametrize("model,grid,key,expected", BAD, ids=[b[2] + "=" + repr(b[0] or b[1]) for b in BAD])
def test_bad_n_and_digits_are_refused_before_any_cell(model, grid, key, expected):
    raw = copy.deepcopy(MAP)
    raw["model"].update(model)
    if grid is not None:
        raw["grid"] = grid
    with pytest.raises(SpecError) as e:
        parse_spec(raw, "x.toml")
    assert "\n" not in str(e.value) and str(e.value).startswith(f"x.toml: {key}: expected "), e.value
    assert expected in str(e.value), e.value


def test_good_n_and_digits_pass():
    for model in ({"n": 1000}, {"n": 3000, "data_source": "download", "digits": [3, 8]}, {"n": 1000, "digits": [9, 0]}):
        raw = copy.deepcopy(MAP)
        raw["model"].update(model)
        parse_spec(raw, "x.toml")


def test_a_presets_n_is_named_by_its_key():
    raw = copy.deepcopy(MAP)
    raw["presets"] = {"quick": {"model": {"n": 4000}}}
    with pytest.raises(SpecError, match=r"^x.toml: presets.quick.model.n: expected at most 1000 samples"):
        parse_spec(raw, "x.toml")


@pytest.mark.parametrize("name", ["runs", "Runs"])
def test_a_study_may_not_take_the_run_caches_folder(name):
    raw = copy.deepcopy(MAP)
    raw["study"]["name"] = name
    with pytest.raises(SpecError, match=r"^x.toml: study.name: expected a name other than runs .*run cache"):
        parse_spec(raw, "x.toml")


def test_run_all_runs_every_repeated_study_flag_in_order(tmp_path):
    """``--study a.toml --study b.toml``: both, in order (as ``--study a.toml b.toml``); a is checked first."""
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('[study]\nname = "a"\nkind = "gd"\n[model]\neta = 0.1\n[grid]\nwidth = []\n')
    b.write_text('[study]\nname = "b"\nkind = "lplr_map"\n[model]\nc_beta0 = 0.5\nn = 5000\n[grid]\nwidth = [8]\n')
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "scripts/run_all.py"), "--study", str(a), "--study", str(b),
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and one_line(r.stderr).startswith(f"run_all.py: {a}: grid.width: expected "), r.stderr
    a.write_text(a.read_text().replace("[]", "[4]"))
    r = subprocess.run([sys.executable, str(ROOT / "scripts/run_all.py"), "--study", str(a), "--study", str(b),
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and one_line(r.stderr).startswith(f"run_all.py: {b}: model.n: expected at most 1000 "), \
        r.stderr
    assert not out.exists()
    from importlib import util

    spec = util.spec_from_file_location("run_all_for_test", ROOT / "scripts/run_all.py")
    mod = util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.build_parser().parse_args(["--study", "x", "y", "--study", "z"]).study == ["x", "y", "z"]
