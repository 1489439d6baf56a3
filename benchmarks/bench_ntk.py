"""The empirical NTK: structured rule against the explicit Jacobian and PyTorch's torch.func.

Prints, in one run:

(a) the structured NTK plus ``λ_min`` of the LPLR paper's MLP
    (``784 -> 2048 x4 -> 1``, ``minilplr.nn.models.mlp(784, 2048, 5, 1)``) on
    ``N = 1000`` inputs: wall time and peak memory, each variant in a fresh
    subprocess (peak RSS from ``resource.getrusage``; NumPy's own allocations
    from ``tracemalloc``).  Targets: at most 2 s and 2 GB.  Variants: float32
    model with Θ accumulated in float32 (the default) or float64, and a
    float64 model.  The explicit Jacobian would be ``N·P`` = 57 GB in
    float32 here, which is why neither the ``jacobian`` method nor
    ``torch.func`` can run this case.
(b) at ``N = 200``, width 512 (``784 -> 512 x4 -> 1``), float32: the
    ``jacobian`` method, the ``structured`` method and PyTorch ``torch.func``
    (``vmap(jacrev)`` per-sample Jacobians contracted with ``einsum``, the
    method of PyTorch's NTK tutorial) on the same weights and data, the
    relative difference of each kernel from the float64 kernel of the same
    weights, and the time ratios.  Target: structured at least 20x faster
    than torch.func.  (A difference near ``1e-4`` rather than ``1e-7`` means
    a ReLU pre-activation lies within float32 rounding of 0 and that
    implementation's forward pass flipped its mask: a kink, not an error in
    the contraction.  With these weights and data one unit of the third
    layer sits at ``|z| ≈ 8·10⁻⁸`` for one sample at ``N ≥ 100``; whether a
    float32 forward flips it depends on its summation order: BLAS, threads.)

(c) ``--paper-n``: the binary MNIST task's real ``n``: ``N = 12,665``
    (digits 0 and 1 of MNIST's training set), the paper's MLP (He init),
    float32 model, Θ accumulated in float64 (tiled, ``minilplr.theory.ntk``
    "Θ in tiles") and ``λ_min`` by the shift-invert solver with its residual;
    synthetic inputs of MNIST's shape and pixel scaling (``[0, 1]``, 784
    features).  Wall time and peak memory, in a fresh process.  Targets on a
    2-core machine: under 3 minutes and 4 GB, ``λ_min`` resolved.  Only this
    part runs with ``--paper-n``.

Inputs are uniform on ``[0, 1]`` (MNIST-like pixel range), drawn on the host
from a fixed seed: timings do not depend on the pixel values.  Timings on a
shared machine are noisy: compare runs, and prefer the best-of times.  On a
loaded machine a two-thread BLAS can wait a scheduler time slice on every
small product (``--quick``'s structured NTK then takes ~70 ms instead of
~0.5 ms, at random per process); ``--threads 1`` avoids that.

Usage::

    python benchmarks/bench_ntk.py              # the full benchmark (about a minute)
    python benchmarks/bench_ntk.py --quick      # small sizes: seconds
    python benchmarks/bench_ntk.py --threads 1  # one BLAS / PyTorch thread
    python benchmarks/bench_ntk.py --paper-n    # N = 12,665 (about 2-3 minutes, < 4 GB)

PyTorch is a benchmark extra only (``pip install -e ".[bench]"``); without it
part (b) prints the two minilplr methods only.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from bench_flags import Parser, positive_int


def _parse(argv):
    ap = Parser(prog="bench_ntk.py", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--repeats", type=positive_int, default=None, help="timed repeats per variant")
    ap.add_argument("--threads", type=positive_int, default=None, help="threads for BLAS and PyTorch (default: all)")
    ap.add_argument("--paper-n", action="store_true", help="part (c) only: N = 12,665, the binary MNIST task")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one part-(a) variant
    return ap.parse_args(argv)


ARGS = _parse(sys.argv[1:] if __name__ == "__main__" else [])
if ARGS.threads:  # before NumPy loads its BLAS
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minilplr.nn import models  # noqa: E402
from minilplr.nn.state import float64_copy  # noqa: E402
from minilplr.theory import ntk, spectrum  # noqa: E402
from minilplr.backend import to_host  # noqa: E402

GiB = 2**30


def _rss_gb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB


def _times(fn, repeats):
    """Wall times of ``repeats`` calls of ``fn`` (the first one cold), and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def _inputs(n, d, seed=1):
    return np.random.default_rng(seed).random((n, d))


# --------------------------------------------------------------------------- (a): one variant per process


def child(spec: str) -> None:
    """Run one part-(a) variant and print a JSON line (run in a fresh process)."""
    cfg = json.loads(spec)
    model = models.mlp(784, cfg["width"], 5, 1, seed=0, dtype=cfg["model_dtype"], backend="numpy")
    X = _inputs(cfg["n"], 784).astype(model.dtype)
    rss_before = _rss_gb()

    def run():
        theta = ntk.empirical_ntk(model, X, method="structured", dtype=cfg["ntk_dtype"])
        return theta, spectrum.ntk_spectrum(theta)

    times, (theta, spec) = _times(run, cfg["repeats"])
    rss_peak = _rss_gb()
    tracemalloc.start()  # NumPy registers its buffers with tracemalloc (slower: after timing)
    run()
    traced_peak = tracemalloc.get_traced_memory()[1] / GiB
    tracemalloc.stop()
    t0 = time.perf_counter()
    ntk.empirical_ntk(model, X, method="structured", dtype=cfg["ntk_dtype"])
    t_ntk = time.perf_counter() - t0
    print(json.dumps(dict(
        times=times, t_ntk_only=t_ntk, rss_before=rss_before, rss_peak=rss_peak, traced_peak=traced_peak,
        spectrum=str(spec), resolved=spec.resolved, theta_dtype=str(theta.dtype),
        P=sum(int(p.size) for p in model.params.values()),
    )))


def part_a(quick: bool, repeats: int) -> None:
    n, width = (200, 256) if quick else (1000, 2048)
    print(f"(a) structured NTK + λ_min, MLP 784 -> {width} x4 -> 1, N = {n} (each variant in a fresh process)")
    variants = [("float32", None, "Θ float32 (the default)"), ("float32", "float64", "Θ accumulated in float64"),
                ("float64", None, "Θ float64 (the default)")]
    for model_dtype, ntk_dtype, label in variants:
        r = _child(json.dumps(dict(n=n, width=width, model_dtype=model_dtype, ntk_dtype=ntk_dtype, repeats=repeats)),
                   label)
        if r is None:
            continue
        ts = r["times"]
        warm = ts[1:] or ts
        print(f"    {model_dtype} model, {label}: NTK + λ_min wall {min(warm):.3f} s best / "
              f"{statistics.median(warm):.3f} s median of {len(warm)} (first call {ts[0]:.3f} s; NTK alone {r['t_ntk_only']:.3f} s)")
        print(f"        peak RSS {r['rss_peak']:.3f} GiB (whole process; {r['rss_before']:.3f} GiB before the call: "
              f"interpreter, weights, data); NumPy allocations peak {r['traced_peak']:.3f} GiB (tracemalloc)")
        print(f"        Θ {r['theta_dtype']} {n}×{n}: {r['spectrum']}")
    P = 784 * width + width + 3 * (width * width + width) + width + 1
    print(f"    (the explicit Jacobian here: N·P = {n} × {P:,} floats = {n * P * 4 / 1e9:.1f} GB in float32)")


def _child(spec: str, label: str):
    """Run one measurement in a fresh process (``--child spec``): its JSON line as a dict, or ``None`` (printed)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", spec]
    if ARGS.threads:
        cmd += ["--threads", str(ARGS.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        FAILED.append(label)  # the benchmark goes on with the other variants, and exits 1 at the end
        print(f"    {label}: FAILED\n{res.stderr[-2000:]}")
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- (c): the paper's real n

PAPER_N = 12665  # MNIST training digits 0 and 1
#: The measurements that failed (their child process's error is printed where they fail).
FAILED: list = []


def child_paper_n() -> None:
    """Part (c) in this (fresh) process: Θ, then its spectrum, timed; a JSON line."""
    model = models.mlp(784, 2048, 5, 1, seed=0, dtype="float32", backend="numpy")  # He init
    X = _inputs(PAPER_N, 784).astype(np.float32)  # MNIST's shape and pixel range
    rss_before = _rss_gb()
    t0 = time.perf_counter()
    theta = ntk.empirical_ntk(model, X, method="structured", dtype="float64")
    t_ntk = time.perf_counter() - t0
    rss_ntk = _rss_gb()
    t0 = time.perf_counter()
    spec = spectrum.ntk_spectrum(theta)
    t_spec = time.perf_counter() - t0
    print(json.dumps(dict(
        t_ntk=t_ntk, t_spec=t_spec, rss_before=rss_before, rss_ntk=rss_ntk, rss_peak=_rss_gb(),
        spectrum=str(spec), resolved=spec.resolved, solver=spec.solver, lam_min=spec.lam_min_computed,
        lam_max=spec.lam_max, floor=spec.floor, residual=spec.residual,
    )))


def part_c() -> None:
    print(f"(c) N = {PAPER_N} (binary MNIST's n; synthetic inputs of MNIST's shape), MLP 784 -> 2048 x4 -> 1, "
          "float32 model, Θ accumulated in float64, in a fresh process")
    r = _child("paper-n", "N = 12665")
    if r is None:
        return
    total = r["t_ntk"] + r["t_spec"]
    print(f"    wall: NTK {r['t_ntk']:.1f} s + spectrum {r['t_spec']:.1f} s = {total:.1f} s (target < 180 s)")
    print(f"    peak RSS {r['rss_peak']:.2f} GiB (after the NTK {r['rss_ntk']:.2f} GiB; {r['rss_before']:.2f} GiB "
          f"before: interpreter, weights, data; target < 4 GB)")
    print(f"    Θ float64 {PAPER_N}×{PAPER_N}: {r['spectrum']}")
    eps32 = float(np.finfo(np.float32).eps)
    print(f"    resolved: {r['resolved']} (floor ε₆₄·N·λ_max = {r['floor']:.3g}, residual {r['residual']}); "
          f"float32 factors: √λ_min known to ≈ ε₃₂·√λ_max = {eps32 * r['lam_max'] ** 0.5:.3g} "
          f"(√λ_min = {max(r['lam_min'], 0) ** 0.5:.4g})")


# --------------------------------------------------------------------------- (b): three methods, same weights


def torch_mirror(model, torch):
    """A ``torch.nn.Sequential`` with our MLP's architecture and weights (float32)."""
    from minilplr.nn.layers import Dense, ReLU

    mods = []
    for layer in model.layers.values():
        if isinstance(layer, Dense):
            W, b = to_host(layer.params["W"]), to_host(layer.params["b"])
            lin = torch.nn.Linear(W.shape[0], W.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))  # torch stores (out, in)
                lin.bias.copy_(torch.from_numpy(b))
            mods.append(lin)
        elif isinstance(layer, ReLU):
            mods.append(torch.nn.ReLU())
        else:
            raise TypeError(f"torch_mirror: no mirror for {type(layer).__name__}")
    return torch.nn.Sequential(*mods)


def torch_func_ntk(net, x, torch):
    """Θ by torch.func: per-sample Jacobians with ``vmap(jacrev)``, contracted with ``einsum``.

    The method of PyTorch's NTK tutorial ("jacobian contraction"); the
    Jacobians of ``x`` are computed once and contracted with themselves.
    """
    from torch.func import functional_call, jacrev, vmap

    params = {k: v.detach() for k, v in net.named_parameters()}

    def f_single(p, xi):
        return functional_call(net, p, (xi.unsqueeze(0),)).squeeze(0)  # (K,)

    jac = vmap(jacrev(f_single), (None, 0))(params, x)  # name -> (N, K, *param.shape)
    blocks = [j.flatten(2) for j in jac.values()]  # (N, K, P_layer)
    theta = sum(torch.einsum("iap,jbp->iajb", j, j) for j in blocks)  # (N, K, N, K)
    n, k = x.shape[0], blocks[0].shape[1]
    return theta.reshape(n * k, n * k)


def part_b(quick: bool, repeats: int) -> None:
    n, width = (50, 128) if quick else (200, 512)
    model = models.mlp(784, width, 5, 1, seed=0, dtype="float32", backend="numpy")
    X = _inputs(n, 784, seed=2).astype(np.float32)
    P = sum(int(p.size) for p in model.params.values())
    print(f"(b) N = {n}, MLP 784 -> {width} x4 -> 1 (P = {P:,}), float32, best of {repeats} after two warm-ups")

    results = {}

    def bench(name, fn):
        fn()  # warm-up: the first calls pay for page faults and BLAS thread start-up
        fn()
        ts, out = _times(fn, repeats)
        results[name] = (min(ts), statistics.median(ts), out)

    bench("structured", lambda: to_host(ntk.empirical_ntk(model, X, method="structured")))
    bench("jacobian", lambda: to_host(ntk.empirical_ntk(model, X, method="jacobian")))
    try:
        import torch
    except ImportError:
        torch = None
        print("    torch.func: PyTorch not installed (pip install -e '.[bench]'); skipped")
    if torch is not None:
        if ARGS.threads:
            torch.set_num_threads(ARGS.threads)
        net = torch_mirror(model, torch)
        xt = torch.from_numpy(X)
        bench("torch.func", lambda: torch_func_ntk(net, xt, torch).numpy())

    # the reference: the same weights in float64 (exact casts), structured rule, float64 throughout
    ref = to_host(ntk.empirical_ntk(float64_copy(model), X.astype(np.float64)))
    for name, (best, med, out) in results.items():
        diff = np.linalg.norm(out.astype(np.float64) - ref) / np.linalg.norm(ref)
        print(f"    {name:11s}: {best:8.4f} s best, {med:8.4f} s median   ‖Θ − Θ_float64‖/‖Θ_float64‖ = {diff:.1e}")
    s = results["structured"][0]
    print(f"    ratio jacobian / structured   = {results['jacobian'][0] / s:7.1f}x")
    if "torch.func" in results:
        print(f"    ratio torch.func / structured = {results['torch.func'][0] / s:7.1f}x   (target ≥ 20x)")
        print(f"    ratio torch.func / jacobian   = {results['torch.func'][0] / results['jacobian'][0]:7.2f}x")
        print(f"    torch {torch.__version__}, {torch.get_num_threads()} threads")


def main() -> int:
    """Exit status: 0 every measurement ran; 1 one failed (named on stderr); 2 a bad flag (argparse)."""
    if ARGS.child == "paper-n":
        child_paper_n()
        return 0
    if ARGS.child:
        child(ARGS.child)
        return 0
    repeats = ARGS.repeats or (2 if ARGS.quick else 4)
    load = os.getloadavg()
    print(f"minilplr NTK benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"NumPy {np.__version__}, load average {load[0]:.2f} (shared machine: timings are noisy)")
    if ARGS.paper_n:
        part_c()
    else:
        part_a(ARGS.quick, repeats)
        part_b(ARGS.quick, max(2, repeats - 1))
    if FAILED:
        print(f"bench_ntk.py: failed: {', '.join(FAILED)} (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
