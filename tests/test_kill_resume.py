"""Kill ``scripts/run_all.py`` with SIGKILL, run it again, and get the uninterrupted run's numbers bit for bit.

For an MLP experiment (Fig. 2, the MNIST GD run), the ResNet experiment
(Fig. 3, mini-batch SGD over three seeds) and a linear-network experiment,
each on the quick preset:

1. an uninterrupted run (the reference), counting its unit writes
   (checkpoints, cached runs, results);
2. the same command on a fresh ``--out``, killed with SIGKILL three times
   (twice for the slower ResNet), each time restarted on the same folder:
   a few milliseconds after a random one of the first half of its unit
   writes (mid-training); the instant a results unit is being
   written (a temporary file of it exists, or it was just renamed into
   place: a finished run's, a seed's or the experiment's final writes); and
   just after the resumed run's first unit write.  Kills are counted in
   writes, not seconds, so they land however loaded the machine is;
3. a last run to completion, whose every stored unit (the experiment's
   results and the runs it cached) must equal the reference's bit for bit,
   with no checkpoint and no temporary file left behind.

The kill points are drawn from ``MINILPLR_KILL_SEED`` (default 0; set it to
explore others).  Then two runs started together on one ``--out``: one
refuses in one line naming the other's PID, or they serialise; the results
are never corrupt.
"""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minilplr.experiments.output import LOCK_NAME
from minilplr.experiments.runner import configuration
from minilplr.store import is_temporary, load_unit

from .helpers import assert_same_tree

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "run_all.py"
#: The I/O is what is under test: NumPy (fast) unless the suite runs on a GPU.
BACKEND = "cupy" if os.environ.get("MINILPLR_BACKEND") == "cupy" else "numpy"
KILL_SEED = int(os.environ.get("MINILPLR_KILL_SEED", "0"))
#: One experiment of each kind: an MLP under full-batch GD, the ResNet under SGD, a linear network.
KILLED = ["fig2_pl_loglog", "fig3_resnet_sgd", "linear_init"]
#: The folder of the configuration the commands below name (quick preset, offline data).
CONF = configuration("quick", {"data_source": "offline"})["name"]


def _cmd(name, out):
    return [sys.executable, str(SCRIPT), "--backend", BACKEND, "--no-progress", "--data", "offline", "--only", name,
            "--out", str(out)]


def _env():
    # one BLAS thread: the same reduction order in every run, and the test shares its cores politely
    return dict(os.environ, PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                MKL_NUM_THREADS="1")


def _files(out):
    return [p for p in Path(out).rglob("*") if p.is_file() and p.name != LOCK_NAME]


def _start(name, out, log):
    return subprocess.Popen(_cmd(name, out), stdout=open(log, "w"), stderr=subprocess.STDOUT, env=_env(),
                            cwd=out.parent)


def _is_checkpoint(f):
    return f.name in ("checkpoint.json", "checkpoint.npz") or f.name.endswith((".checkpoint.json", ".checkpoint.npz"))


def _unit_writes(out):
    """``{unit head: mtime}`` (checkpoints, cached runs, results; JSON last, so a new value is a whole unit)."""
    return {f: f.stat().st_mtime_ns for f in _files(out) if f.suffix == ".json" and f.name != "configuration.json"}


def _wait_for_units(p, out, k):
    """Poll until ``k`` unit writes have happened since the call (or the process ends); returns how many."""
    seen, n = _unit_writes(out), 0
    while p.poll() is None and n < k:
        time.sleep(0.002)
        try:
            now = _unit_writes(out)
        except FileNotFoundError:  # a file renamed or removed while listed
            continue
        n += sum(now.get(f) != seen.get(f) for f in now)
        seen = now
    return n


def _units(out):
    """Every stored unit under ``out``: ``{relative path: tree}`` (wall times left out: ``seconds``, ``timing``)."""
    units = {}
    for npz in sorted(Path(out).rglob("*.npz")):
        tree = load_unit(npz.parent, npz.stem)
        assert tree is not None, npz
        if isinstance(tree, dict):
            tree.pop("seconds", None)
            tree.pop("timing", None)  # seconds by phase (run_all's time budget): differs run to run
        units[str(npz.relative_to(out).with_suffix(""))] = tree
    return units


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """``name -> (out, unit writes seen, seconds)`` of an uninterrupted run, made once."""
    made = {}

    def get(name):
        if name not in made:
            out = tmp_path_factory.mktemp(f"ref-{name}") / "results"
            out.mkdir()
            t0 = time.perf_counter()
            p = _start(name, out, out.parent / "log.txt")
            writes = _wait_for_units(p, out, 10**9)
            assert p.wait(timeout=600) == 0, (out.parent / "log.txt").read_text()[-3000:]
            made[name] = (out, writes, time.perf_counter() - t0)
        return made[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", KILLED)
def test_killed_then_rerun_gives_the_uninterrupted_numbers_bit_for_bit(tmp_path, reference, name):
    ref_out, ref_writes, ref_total = reference(name)
    assert ref_writes >= 4, ref_writes  # units to kill between
    rng = random.Random(f"{KILL_SEED}-{name}")
    out = tmp_path / "results"
    out.mkdir()
    # (what, after how many unit writes of this run, then how long a random pause): kills counted in
    # checkpoints and cached runs, not seconds, land in the training however loaded the machine is
    kills = [("training", rng.randint(1, ref_writes // 2), rng.uniform(0, 0.05)), ("results write", None, None),
             ("resumed run", 1, rng.uniform(0, 0.05))]
    if name == "fig3_resnet_sgd":  # the slowest by far: two kills keep the test short
        del kills[2]
    story = []
    for i, (what, k, pause) in enumerate(kills):
        t0 = time.perf_counter()
        wall = time.time()
        p = _start(name, out, tmp_path / f"log{i}.txt")
        if k is not None:  # a random moment of the training, k checkpoints or cached runs into this run
            if _wait_for_units(p, out, k) == k:
                time.sleep(pause)
        else:  # the instant a results unit is being written (a run's, a seed's or the experiment's): between
            # writing a temporary file and renaming it, between the two renames, or just after them
            while p.poll() is None and not any(
                    (f.name.startswith(".results.") and is_temporary(f.name))
                    or (f.name in ("results.npz", "results.json") and f.exists() and f.stat().st_mtime >= wall)
                    for f in _files(out)):
                time.sleep(0.0005)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        rc = p.wait(timeout=60)
        left = sum(is_temporary(f.name) for f in _files(out))
        saved = "results saved" if (out / CONF / name / "results.json").exists() else "no results yet"
        story.append(f"{what}: {'SIGKILL' if rc == -signal.SIGKILL else f'exit {rc}'} at "
                     f"{time.perf_counter() - t0:.2f} s ({saved}{f', {left} temporary file(s) left' if left else ''})")
        assert rc in (0, -signal.SIGKILL), (story, (tmp_path / f"log{i}.txt").read_text()[-3000:])
    p = subprocess.run(_cmd(name, out), env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (story, p.stdout[-3000:], p.stderr[-3000:])
    print(f"\n{name} (seed {KILL_SEED}; uninterrupted {ref_total:.1f} s): " + "; ".join(story))
    assert story[0].startswith("training: SIGKILL") and "no results yet" in story[0], story
    assert story[1].startswith("results write: SIGKILL"), story
    got, want = _units(out), _units(ref_out)
    assert sorted(got) == sorted(want), (story, sorted(got), sorted(want))
    for key in want:
        assert_same_tree(got[key], want[key], key)
    left = [f.name for f in _files(out) if is_temporary(f.name) or _is_checkpoint(f)]
    assert not left, (story, left)
    report = (out / CONF / "report.md").read_text()
    assert f"## {name}" in report and "_No results" not in report and "_Not reported" not in report


@pytest.mark.slow
def test_two_runs_on_one_out_serialise_or_refuse_and_never_corrupt(tmp_path, reference):
    name = "linear_init"
    ref_out = reference(name)[0]
    out = tmp_path / "results"
    out.mkdir()
    procs = [_start(name, out, tmp_path / f"log{i}.txt") for i in range(2)]
    rcs = [p.wait(timeout=600) for p in procs]
    logs = [(tmp_path / f"log{i}.txt").read_text() for i in range(2)]
    assert sorted(rcs) in ([0, 0], [0, 2]), (rcs, logs)
    for i, rc in enumerate(rcs):
        if rc == 2:  # refused: one line naming the folder and the other run's PID, before touching anything
            other = procs[1 - i].pid
            assert logs[i].strip().splitlines()[-1] == (
                f"run_all.py: --out {out}: in use by another run (PID {other}); wait for it to finish, "
                "or write to another folder"), logs[i]
            assert "Traceback" not in logs[i]
    got, want = _units(out), _units(ref_out)
    assert sorted(got) == sorted(want)
    for key in want:
        assert_same_tree(got[key], want[key], key)
