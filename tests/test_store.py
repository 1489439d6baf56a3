"""Stored units (JSON + .npz): exact round trips, and every kind of damage detected."""
import io
import json
import math
import os
import stat

import numpy as np
import pytest

from minilplr.store import (Damaged, atomic_write_bytes, content_hash, is_temporary, load_or_discard, load_unit,
                            save_unit)


def _tree():
    return {
        "status": "finished", "n": 3, "ok": True, "none": None,
        "floats": [0.1, 1 / 3, -0.0, float("nan"), float("inf"), 5e-324],
        "nested": {"a": np.arange(6, dtype=np.int64).reshape(2, 3), "b": [np.float32(1.5), np.linspace(0, 1, 7)]},
        "x32": np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32),
    }


def test_a_unit_round_trips_every_bit(tmp_path):
    save_unit(tmp_path, "r", _tree())
    back = load_unit(tmp_path, "r")
    assert back["floats"][:3] == [0.1, 1 / 3, -0.0] and math.copysign(1, back["floats"][2]) == -1
    assert math.isnan(back["floats"][3]) and back["floats"][4] == math.inf and back["floats"][5] == 5e-324
    assert back["nested"]["a"].dtype == np.int64 and np.array_equal(back["nested"]["a"], _tree()["nested"]["a"])
    assert back["x32"].dtype == np.float32 and np.array_equal(back["x32"], _tree()["x32"])
    assert (back["status"], back["n"], back["ok"], back["none"]) == ("finished", 3, True, None)
    assert load_unit(tmp_path, "absent") is None


def test_a_json_beside_another_runs_arrays_is_detected(tmp_path):
    """Killed between the two renames, or two runs writing one folder: the pair no longer matches."""
    save_unit(tmp_path / "a", "r", {"x": np.zeros(3)})
    save_unit(tmp_path / "b", "r", {"x": np.ones(3)})
    os.replace(tmp_path / "b" / "r.npz", tmp_path / "a" / "r.npz")  # a valid arrays file, the wrong one
    with pytest.raises(Damaged, match=r"r\.npz: damaged \(.*SHA-256 differs"):
        load_unit(tmp_path / "a", "r")


@pytest.mark.parametrize("damage", ["truncate json", "garble json", "truncate npz", "zero npz bytes", "drop npz",
                                    "foreign json"])
def test_damage_is_detected_then_moved_aside_and_read_as_absent(tmp_path, damage):
    save_unit(tmp_path, "r", _tree())
    js, npz = tmp_path / "r.json", tmp_path / "r.npz"
    if damage == "truncate json":
        js.write_bytes(js.read_bytes()[:40])
    elif damage == "garble json":
        js.write_bytes(b"\xff\xfe" + js.read_bytes()[2:])
    elif damage == "truncate npz":
        npz.write_bytes(npz.read_bytes()[:-100])
    elif damage == "zero npz bytes":
        b = bytearray(npz.read_bytes())
        b[len(b) // 2:len(b) // 2 + 16] = bytes(16)
        npz.write_bytes(bytes(b))
    elif damage == "drop npz":
        npz.unlink()
    else:
        js.write_text(json.dumps({"status": "finished"}))  # an old-format or hand-made file
    with pytest.raises(Damaged, match="older minilplr" if damage == "foreign json" else "damaged"):
        load_unit(tmp_path, "r")
    lines = []
    assert load_or_discard(tmp_path, "r", log=lines.append) is None
    assert len(lines) == 1 and "damaged" in lines[0] and "moved aside" in lines[0]
    assert not js.exists() and not npz.exists()
    assert any(p.name.startswith("r.json.damaged-") for p in tmp_path.iterdir())


def test_arrays_are_never_unpickled(tmp_path):
    with pytest.raises(TypeError, match="object arrays"):
        save_unit(tmp_path, "r", {"x": np.array([{"a": 1}], dtype=object)})
    save_unit(tmp_path, "r", {"x": np.zeros(2)})
    buf = io.BytesIO()
    np.savez(buf, x=np.array([{"a": 1}], dtype=object))  # a pickled payload under a matching hash
    import hashlib

    head = json.loads((tmp_path / "r.json").read_text())
    head["arrays"].update(bytes=len(buf.getvalue()), sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    head["sha256"] = content_hash(head)  # a forger who knows the format: every hash matches
    (tmp_path / "r.json").write_text(json.dumps(head))
    (tmp_path / "r.npz").write_bytes(buf.getvalue())
    with pytest.raises(Damaged, match="unreadable arrays"):
        load_unit(tmp_path, "r")


def test_files_are_readable_by_others_and_leave_no_temporaries(tmp_path):
    save_unit(tmp_path, "r", _tree())
    for p in tmp_path.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.npz"]

    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "x.bin", object())  # fails mid-write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.npz"]


def test_saving_the_same_tree_twice_gives_the_same_bytes(tmp_path, monkeypatch):
    """A save is idempotent (no timestamps inside the zip), so two runs writing one result never mismatch."""
    import time as _time

    save_unit(tmp_path / "a", "r", _tree(), compress=True)
    later = _time.time() + 3600.0
    monkeypatch.setattr(_time, "time", lambda: later)  # an hour later: np.savez would stamp it into the zip
    save_unit(tmp_path / "b", "r", _tree(), compress=True)
    for f in ("r.npz", "r.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    with np.load(tmp_path / "a" / "r.npz", allow_pickle=False) as z:  # still a plain .npz for NumPy
        assert np.array_equal(z["x32"], _tree()["x32"])


def _edit(path, old: str, new: str):
    text = path.read_text()
    assert text.count(old) >= 1, old
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("edit", [
    ('"n": 3', '"n": 4'),                          # a number stored only in the JSON (issue 21: iters_to_tol)
    ('"status": "finished"', '"status": "running"'),
    ('0.1,', '0.10000000000000002,'),              # one ulp
    ('"ok": true', '"ok": false'),
    ('"none": null,', '"none": null, "added": 1,'),  # a key added
    ('"__array__": "x32"', '"__array__": "nested.a"'),  # another array under this name
])
def test_a_number_edited_in_the_json_is_damaged(tmp_path, edit):
    """The hash covers the JSON's own content: an edited value is damage like a zeroed byte in the arrays."""
    save_unit(tmp_path, "r", _tree())
    _edit(tmp_path / "r.json", *edit)
    with pytest.raises(Damaged, match=r"r\.json: damaged \(its content differs"):
        load_unit(tmp_path, "r")
    lines = []
    assert load_or_discard(tmp_path, "r", log=lines.append) is None and len(lines) == 1, lines


def test_layout_of_the_json_does_not_matter(tmp_path):
    """Indentation and key order are not content: a reformatted file still reads, every bit the same."""
    save_unit(tmp_path, "r", _tree())
    head = json.loads((tmp_path / "r.json").read_text())
    (tmp_path / "r.json").write_text(json.dumps(dict(reversed(list(head.items()))), indent=4, allow_nan=True))
    back = load_unit(tmp_path, "r")
    assert back["floats"][:3] == [0.1, 1 / 3, -0.0] and math.isnan(back["floats"][3])


def test_a_unit_of_the_first_format_is_refused_in_one_line(tmp_path):
    """``minilplr-unit/1`` hashed the arrays only: its numbers cannot be trusted, so it is recomputed, never read."""
    save_unit(tmp_path, "r", {"x": np.zeros(2), "n": 3})
    head = json.loads((tmp_path / "r.json").read_text())
    del head["sha256"]
    head["format"] = "minilplr-unit/1"
    (tmp_path / "r.json").write_text(json.dumps(head, indent=1))
    with pytest.raises(Damaged, match=r"older minilplr as minilplr-unit/1: its hash covered the arrays only"):
        load_unit(tmp_path, "r")
    lines = []
    assert load_or_discard(tmp_path, "r", log=lines.append) is None
    assert len(lines) == 1 and "moved aside" in lines[0] and not (tmp_path / "r.json").exists()


def test_temporary_files_have_a_name_of_our_own(tmp_path, monkeypatch):
    """A write killed before its rename leaves ``.<name>.<random>.minilplr-tmp``; nobody else's ``.tmp`` matches."""
    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    monkeypatch.setattr(os, "unlink", lambda p: None)  # killed before the clean-up too
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "results.json", b"{}")
    monkeypatch.undo()
    (left,) = tmp_path.iterdir()
    assert is_temporary(left.name) and left.name.startswith(".results.json."), left.name
    for foreign in (".draft.v2.tmp", ".env.local.tmp", ".session.1234.tmp", "results.json", ".x.minilplr-tmp.bak",
                    "a.b.minilplr-tmp"):
        assert not is_temporary(foreign), foreign
