"""The quick linear-network experiments alone and beside a busy process: the slowdown (issue 16).

Runs the experiments through ``run_all``'s runner into a fresh temporary
folder (nothing cached, no figures kept), first on their own, then while
``--load`` busy subprocesses run (pure-Python loops, one core each: "one
other job" on a 2-core machine), and prints both wall times and their ratio.
Target: under 2×.  With one BLAS thread (:func:`minilplr.theory.linear.threads.small_blas`,
around every linear-network run) a busy neighbour takes at most the second core.

``--compare-threads`` runs every case a second time with the limit switched
off (BLAS free to use its default threads), interleaved with the normal runs
in one process, so the two are measured under the same conditions::

    python benchmarks/bench_concurrent.py                          # the four quick linear experiments
    python benchmarks/bench_concurrent.py --only linear_schedules --compare-threads --repeat 2

Do not set ``OPENBLAS_NUM_THREADS`` when running it: the point is what the
code does with the BLAS's default thread count (printed first).  A shared
machine adds its own noise: run it on a quiet one, and read the ratio, not
the seconds.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from threadpoolctl import threadpool_info  # noqa: E402

from minilplr.experiments.runner import run_experiments  # noqa: E402
from minilplr.experiments import linear_runs, linear_width  # noqa: E402
from minilplr.theory.linear import trajectory  # noqa: E402
from minilplr.experiments import EXPERIMENTS  # noqa: E402
from bench_flags import Parser, positive_int  # noqa: E402

LINEAR = ["linear_width", "linear_schedules", "linear_init", "linear_imbalance"]
BUSY = "while True: pass"  # one core, no BLAS, no memory traffic: the plainest other job


@contextlib.contextmanager
def busy(n: int):
    """``n`` busy subprocesses for the duration of the block (ended by their PIDs after it)."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0.0)  # let them get going
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


@contextlib.contextmanager
def blas_limit(on: bool):
    """The linear code's one-thread limit as shipped (``on``), or switched off in every module that uses it."""
    users = (trajectory, linear_runs, linear_width)
    saved = [m.small_blas for m in users]
    if not on:
        for m in users:
            m.small_blas = contextlib.nullcontext
    try:
        yield
    finally:
        for m, f in zip(users, saved):
            m.small_blas = f


def timed_run(names, limit: bool, load: int) -> float:
    """Wall seconds of ``names`` (quick preset, NumPy) in a fresh folder."""
    with tempfile.TemporaryDirectory(prefix="bench_concurrent.") as out, blas_limit(limit), busy(load):
        t0 = time.perf_counter()
        status = run_experiments(names, preset="quick", out=out, backend="numpy", progress=False,
                                 log=lambda *a, **k: None)
        dt = time.perf_counter() - t0
    bad = [n for n, s in status.items() if s != "finished"]
    if bad:  # one line, exit 1: no slowdown is printed for a run that failed
        raise SystemExit(f"bench_concurrent.py: {', '.join(bad)} did not finish: {status}")
    return dt


def main(argv=None):
    ap = Parser(prog="bench_concurrent.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", default=LINEAR, metavar="NAME", choices=EXPERIMENTS,
                    help="experiments (default: the four linear ones)")
    ap.add_argument("--load", type=positive_int, default=1, help="busy processes beside the loaded run (default 1)")
    ap.add_argument("--repeat", type=positive_int, default=1,
                    help="runs of each case, interleaved; the median is shown")
    ap.add_argument("--compare-threads", action="store_true", help="also run with the one-thread limit switched off")
    args = ap.parse_args(argv)
    twice = sorted({n for n in args.only if args.only.count(n) > 1})
    if twice:
        ap.error(f"argument --only: expected each experiment once, got {', '.join(twice)} more than once")
    blas = [f"{i.get('internal_api')} {i.get('num_threads')} threads" for i in threadpool_info() if i.get("user_api") == "blas"]
    print(f"BLAS: {', '.join(blas) or 'none found'}; CPUs: {os.cpu_count()}; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; experiments: {', '.join(args.only)}")
    cases = [(True, 0), (True, args.load)]
    if args.compare_threads:
        cases += [(False, 0), (False, args.load)]
    times = {c: [] for c in cases}
    timed_run(args.only[:1], True, 0)  # warm-up: imports, first-call costs
    for _ in range(args.repeat):
        for c in cases:
            times[c].append(timed_run(args.only, *c))
    med = {c: sorted(v)[len(v) // 2] for c, v in times.items()}
    for limit in ([True, False] if args.compare_threads else [True]):
        alone, loaded = med[(limit, 0)], med[(limit, args.load)]
        label = "one BLAS thread (small_blas)" if limit else "default BLAS threads (limit off)"
        print(f"{label:34s} alone {alone:7.1f} s   beside {args.load} busy process(es) {loaded:7.1f} s   "
              f"slowdown {loaded / alone:5.2f}x (target < 2x)")
    if args.compare_threads:
        print(f"limit on / off: alone {med[(True, 0)] / med[(False, 0)]:.2f}, "
              f"loaded {med[(True, args.load)] / med[(False, args.load)]:.2f} (below 1: the limit is faster)")


if __name__ == "__main__":
    main()
