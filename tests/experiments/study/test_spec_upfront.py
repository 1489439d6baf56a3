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
