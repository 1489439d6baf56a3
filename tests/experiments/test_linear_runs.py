"""The linear-network run cache (:mod:`minilplr.experiments.linear_runs`): runs named by the
config hash, damaged units moved aside, killed runs resumed, concurrent writers.
"""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from minilplr.theory.linear import run_gd
from minilplr.store import config_hash
from minilplr.experiments.linear_runs import cached_run, load_run, save_run

from ..helpers import Killed, TINY_LINEAR_DATA, assert_same_records


def _spec(schedule="armijo", steps=30):
    return {"data": TINY_LINEAR_DATA, "h": 20, "init": {"kind": "gaussian", "p": 0.375}, "init_seed": 0,
            "schedule": schedule, "schedule_opts": {}, "steps": steps, "tol": 0.0, "track_drift": True,
            "dtype": "float64"}


def test_cached_runs_are_named_by_the_config_hash():
    """Cached runs are named by :func:`minilplr.store.config_hash` of their spec, like every results folder.

    Pinned: a change of the hash would orphan every stored run (they would be
    recomputed, not misread).  The spec's key order does not matter.
    """
    assert config_hash(_spec()) == "eaecddbf8b"
    assert config_hash(json.loads(json.dumps(_spec()))) == config_hash(dict(reversed(list(_spec().items()))))


def test_a_damaged_cached_run_is_moved_aside_and_recomputed(be, tmp_path, capsys):
    first = cached_run(tmp_path, _spec(), backend=be)
    key = first["key"]
    assert capsys.readouterr().out == ""
    assert_same_records(first, cached_run(tmp_path, _spec(), backend=be))  # loaded as stored
    npz = tmp_path / f"{key}.npz"
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2:len(blob) // 2 + 64] = bytes(64)  # zeroed bytes inside the records
    npz.write_bytes(bytes(blob))
    again = cached_run(tmp_path, _spec(), backend=be)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"{key}.npz: damaged" in out and "moved aside" in out, out
    assert_same_records(first, again)
    assert any(p.name.startswith(f"{key}.npz.damaged-") for p in tmp_path.iterdir())
    assert_same_records(first, load_run(tmp_path, key))  # stored whole again


def test_a_killed_cached_run_resumes_from_its_checkpoint(be, tmp_path, monkeypatch):
    from minilplr.experiments import linear_runs

    ref = cached_run(tmp_path / "ref", _spec(steps=30), backend=be)
    seen = []

    def run_gd_killed_at(at):
        def wrapped(*args, **kw):
            def hook(t):
                seen.append(t)
                if t == at:
                    raise Killed(t)
            return run_gd(*args, **kw, callback=hook)
        return wrapped

    folder = tmp_path / "run"
    monkeypatch.setattr(linear_runs, "run_gd", run_gd_killed_at(17))
    with pytest.raises(Killed):
        cached_run(folder, _spec(steps=30), backend=be, checkpoint_every=5)
    key = ref["key"]
    assert (folder / f"{key}.checkpoint.json").exists() and not (folder / f"{key}.json").exists()
    seen.clear()
    monkeypatch.setattr(linear_runs, "run_gd", run_gd_killed_at(None))
    res = cached_run(folder, _spec(steps=30), backend=be, checkpoint_every=5)
    assert seen[0] == 15  # resumed from the step-15 checkpoint
    assert_same_records(ref, res)
    assert sorted(p.name for p in folder.iterdir()) == [f"{key}.json", f"{key}.npz"]  # checkpoint removed


def test_a_run_killed_between_its_result_and_its_checkpoint_removal_leaves_no_checkpoint(be, tmp_path,
                                                                                         monkeypatch):
    from minilplr.experiments import linear_runs

    def killed(path):
        raise Killed(path)

    monkeypatch.setattr(linear_runs, "remove_checkpoint", killed)
    with pytest.raises(Killed):
        cached_run(tmp_path, _spec(steps=12), backend=be, checkpoint_every=5)
    assert any(p.name.endswith(".checkpoint.json") for p in tmp_path.iterdir())
    monkeypatch.undo()
    res = cached_run(tmp_path, _spec(steps=12), backend=be)  # the stored result, and the leftover is removed
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{res['key']}.json", f"{res['key']}.npz"]


def test_concurrent_writers_of_one_cached_run_never_give_a_corrupt_read(tmp_path):
    """Two threads × 50 saves of one key, a third reading meanwhile: every read is the result or nothing.

    A read may come between a writer's two renames (the JSON of one save beside
    the arrays of another); the hash in the JSON detects it and the reader gets
    ``None`` (files moved aside, recomputed by a real run) — never other
    numbers, a half-written file, or an exception.
    """
    res = {"gap": np.linspace(1.0, 0.0, 200), "lr": np.full(200, 0.25), "steps": 199, "stopped": "tol",
           "kappa0": 1.25, "key": "k"}
    errors, reads = [], []
    done = threading.Event()

    def writer():
        try:
            for _ in range(50):
                save_run(tmp_path, "k", res)
        except Exception as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    def reader():
        try:
            while not done.is_set():
                got = load_run(tmp_path, "k", log=lambda line: None)
                if got is not None:
                    assert_same_records(res, got)
                reads.append(got is not None)
        except Exception as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    rd = threading.Thread(target=reader)
    rd.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    done.set()
    rd.join()
    assert not errors, errors
    assert sum(reads) > 0  # the reader did see whole units
    save_run(tmp_path, "k", res)  # (the last read may have moved a mixed pair aside) the folder still works
    assert_same_records(res, load_run(tmp_path, "k"))


def test_a_cached_run_builds_its_schedule_under_one_blas_thread(be, tmp_path, monkeypatch):
    """:func:`cached_run` builds the schedule (``η = 1/K₀`` from ``W(0)``) before the loop, under the loop's
    one-thread limit, and gives the caller's threads back (the loop's own limit:
    ``tests/theory/linear/test_threads.py``)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from minilplr.experiments import linear_runs

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"}

    if not blas_threads():
        pytest.skip("no BLAS library loaded that threadpoolctl can see")
    seen = []
    real = linear_runs.schedule_from_config  # called in cached_run before the loop, with W(0)
    monkeypatch.setattr(linear_runs, "schedule_from_config",
                        lambda *a, **k: (seen.append(blas_threads()), real(*a, **k))[1])
    spec = {"data": {"N": 8, "n": 4, "m": 3, "seed": 0, "x_cond": 1.0}, "h": 20,
            "init": {"kind": "gaussian", "p": 0.375}, "init_seed": 0, "schedule": "constant",
            "schedule_opts": {}, "steps": 5, "tol": 1e-12, "track_drift": False, "dtype": "float64"}
    with threadpool_limits(limits=2, user_api="blas"):
        cached_run(tmp_path, spec, backend=be)
        assert blas_threads() == {2}  # given back
    assert seen == [{1}], seen
