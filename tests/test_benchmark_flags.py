"""The benchmarks' and make_pictures' command lines: a bad flag is one line naming it (exit 2) before any work,
and a benchmark never exits 0 after a failure (issue 21, "Not clean").

Each case was a traceback (``StatisticsError`` for ``--repeats -3``, ``ZeroDivisionError`` for ``--n 0``,
``IndexError`` for ``--repeat 0``, ``FileExistsError`` for ``--keep /dev/null``) or a success it was not
(``bench_ntk.py --quick --repeats -1``: three tracebacks and exit 0; ``bench_concurrent.py --load -1``: a
slowdown "beside -1 busy process(es)").
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import one_line

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _cupy_missing():
    return importlib.util.find_spec("cupy") is None


CASES = [
    # (script, flags, the line's start after "<script>: ")
    ("bench_gd_step.py", ["--quick", "--repeats", "-3"], "argument --repeats: expected a positive integer, got '-3'"),
    ("bench_gd_step.py", ["--quick", "--repeats", "0"], "argument --repeats: expected a positive integer, got '0'"),
    ("bench_gd_step.py", ["--quick", "--json", "{file}/out.json"], "argument --json: expected a file in an existing "
                                                                    "folder, got '{file}/out.json'"),
    ("bench_gd_step.py", ["--quick", "--json", "{dir}"], "argument --json: expected a file path, got the folder"),
    ("bench_resnet.py", ["--quick", "--widths", "0"], "argument --widths: expected a positive integer, got '0'"),
    ("bench_resnet.py", ["--quick", "--blocks", "-1"], "argument --blocks: expected a positive integer, got '-1'"),
    ("bench_resnet.py", ["--quick", "--json", "{file}/r.json"], "argument --json: expected a file in an existing"),
    ("bench_step_records.py", ["--backend", "foo"], "argument --backend: invalid choice: 'foo'"),
    ("bench_step_records.py", ["--width", "-5"], "argument --width: expected a positive integer, got '-5'"),
    ("bench_step_records.py", ["--n", "0"], "argument --n: expected a positive integer, got '0'"),
    ("bench_concurrent.py", ["--only", "nope"], "argument --only: invalid choice: 'nope'"),
    ("bench_concurrent.py", ["--only", "linear_init", "linear_init"],
     "argument --only: expected each experiment once, got linear_init more than once"),
    ("bench_concurrent.py", ["--repeat", "0"], "argument --repeat: expected a positive integer, got '0'"),
    ("bench_concurrent.py", ["--load", "-1"], "argument --load: expected a positive integer, got '-1'"),
    ("bench_ntk.py", ["--quick", "--repeats", "-1"], "argument --repeats: expected a positive integer, got '-1'"),
    ("bench_ntk.py", ["--threads", "0"], "argument --threads: expected a positive integer, got '0'"),
    ("gpu_check.py", ["--backend", "strict", "--keep", "/dev/null"],
     "argument --keep: expected a folder, got '/dev/null', which is not a folder"),
    ("gpu_check.py", ["--backend", "strict", "--keep", "{file}/logs"],
     "argument --keep: expected a folder, got '{file}/logs', which lies under the file '{file}'"),
]


@pytest.mark.parametrize("script, flags, want", CASES, ids=[f"{c[0]} {' '.join(c[1])}" for c in CASES])
def test_a_bad_flag_is_one_line_and_exit_2_before_any_work(tmp_path, script, flags, want):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    fill = lambda s: s.format(file=f, dir=tmp_path)  # noqa: E731
    p = subprocess.run([sys.executable, str(BENCH / script), *map(fill, flags)], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    line = one_line(p.stderr)
    assert line.startswith(f"{script}: {fill(want)}"), line
    assert p.stdout == ""  # nothing measured, nothing printed
    assert sorted(x.name for x in tmp_path.iterdir()) == ["notes.txt"] and f.read_text() == "keep me"


@pytest.mark.skipif(not _cupy_missing(), reason="CuPy is installed here")
@pytest.mark.parametrize("script", ["bench_gd_step.py", "bench_resnet.py", "bench_step_records.py"])
def test_cupy_without_cupy_is_a_bad_flag(script):
    p = subprocess.run([sys.executable, str(BENCH / script), "--backend", "cupy", "--torch-device", "none"]
                       if script != "bench_step_records.py" else
                       [sys.executable, str(BENCH / script), "--backend", "cupy"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    assert one_line(p.stderr).startswith(f"{script}: argument --backend: backend 'cupy': CuPy is not installed")


def _load(name):
    sys.path.insert(0, str(BENCH))  # the benchmarks import their shared bench_flags as a script does
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def test_bench_ntk_exits_1_when_a_measurement_fails(monkeypatch, capsys):
    """A variant's process failing was printed as FAILED, and the benchmark still exited 0."""
    ntk_bench = _load("bench_ntk")
    failed = subprocess.CompletedProcess([], 1, stdout="", stderr="MemoryError: out of memory\n")
    monkeypatch.setattr(ntk_bench.subprocess, "run", lambda *a, **k: failed)
    monkeypatch.setattr(ntk_bench, "part_b", lambda quick, repeats: None)
    monkeypatch.setattr(ntk_bench.ARGS, "quick", True)
    assert ntk_bench.main() == 1
    cap = capsys.readouterr()
    assert cap.out.count(": FAILED") == 3 and "MemoryError" in cap.out
    assert one_line(cap.err) == ("bench_ntk.py: failed: Θ float32 (the default), Θ accumulated in float64, "
                                 "Θ float64 (the default) (see above)")
    ntk_bench.FAILED.clear()
    monkeypatch.setattr(ntk_bench, "part_a", lambda quick, repeats: None)
    assert ntk_bench.main() == 0  # nothing failed: 0


def test_make_pictures_into_a_folder_it_cannot_write_is_one_line(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("make_pictures", ROOT / "scripts" / "make_pictures.py")
    mp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mp)
    blocked = tmp_path / "img"
    blocked.write_text("a file where the folder should be")  # root writes into read-only folders: a file stops all
    monkeypatch.setattr(mp, "OUT", blocked)
    drawn = []
    monkeypatch.setitem(mp.PICTURES, "j_layout", lambda: drawn.append(1))
    assert mp.main(["j_layout"]) == 1
    assert one_line(capsys.readouterr().err) == (f"make_pictures.py: cannot write the pictures into {blocked} "
                                                 "(it is a file, not a folder)")
    assert drawn == []  # refused before drawing
    if os.geteuid() != 0:  # a read-only folder (root would write into it regardless)
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        monkeypatch.setattr(mp, "OUT", ro)
        assert mp.main(["j_layout"]) == 1
        assert "Permission denied" in one_line(capsys.readouterr().err)
