"""One full-batch GD step of the paper's MLP: minilplr against PyTorch eager (CPU or CUDA).

Times forward + backward + update of ``784 -> 2048 x4 -> 1`` (ReLU, squared
loss) on ``N = 1000`` samples in float32, for minilplr and for PyTorch on the
same weights and data, in the same process, and prints

* the median step time of each, ours on the default fast path and on the
  plain path (``minilplr.nn.fast.plain()``, alternated with the fast one),
  and the ratio minilplr / PyTorch (target ≤ 1.15 on the CPU, ≤ 1.2 against
  PyTorch CUDA with ``--backend cupy``; for the fast path);
* the achieved GFLOP/s of each against this machine's float32 matmul peak,
  measured in the same run (best of a few large square products).

Each timed step ends with a synchronisation inside the timed region (CuPy:
the device; PyTorch CUDA: ``torch.cuda.synchronize()``), after two untimed
warm-up steps, so a GPU's queued work is counted.  Neither side uses TF32
(both libraries' defaults).  ``--json PATH`` writes the numbers for
``benchmarks/gpu_check.py``.

Usage::

    python benchmarks/bench_gd_step.py            # the paper's sizes
    python benchmarks/bench_gd_step.py --quick    # small sizes, seconds
    python benchmarks/bench_gd_step.py --backend cupy            # against PyTorch CUDA if it has a GPU
    python benchmarks/bench_gd_step.py --backend cupy --torch-device cpu
    python benchmarks/bench_gd_step.py --torch-device none --json gd.json   # ours only, numbers to a file

PyTorch is a benchmark extra only: ``pip install -e ".[bench]"``.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from minilplr import backend as B  # noqa: E402
from bench_flags import Parser, backend, output_file, positive_int  # noqa: E402
from minilplr.nn import fast, losses, models  # noqa: E402
from minilplr.train import optim  # noqa: E402


def step_flops(sizes, n):
    """Multiply-adds ×2 of one GD step: forward ``XW`` per layer, backward ``xᵀδ`` per
    layer and ``δWᵀ`` for every layer but the first."""
    s = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * n * (sum(s) + sum(s) + sum(s[1:]))


def timeit(fn, repeats, warmup=2, sync=lambda: None):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def timeit_alternated(fns, repeats, warmup=2, sync=lambda: None):
    """``[(median, best)]`` seconds of each of ``fns``, timed alternately ``a, b, a, b, …`` (the same load for all)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
            sync()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            sync()
            t.append(time.perf_counter() - t0)
    return [(statistics.median(t), min(t)) for t in times]


def torch_sync(torch, device: str):
    """``torch.cuda.synchronize`` for a CUDA device (queued kernels finish), else nothing."""
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def resolve_torch_device(requested, backend_name: str):
    """``(torch module or None, device or None, why)``: which PyTorch the reference runs on.

    ``requested`` ``None`` means CUDA when the backend is ``cupy`` and PyTorch
    sees a GPU, else the CPU; ``"none"`` skips the reference.  A requested
    ``"cuda"`` without a CUDA PyTorch is an error (one line).
    """
    if requested == "none":
        return None, None, "--torch-device none"
    try:
        import torch
    except ImportError:
        return None, None, "PyTorch not installed (pip install -e '.[bench]')"
    cuda = torch.cuda.is_available()
    device = requested or ("cuda" if backend_name == "cupy" and cuda else "cpu")
    if device == "cuda" and not cuda:  # a bad flag for this machine: one line, exit 2
        print(f"{os.path.basename(sys.argv[0])}: argument --torch-device cuda: this PyTorch sees no CUDA device "
              f"(torch {torch.__version__}); use --torch-device cpu or none", file=sys.stderr)
        raise SystemExit(2)
    return torch, device, ""


def device_name(be, torch=None, torch_device=None) -> str:
    """The GPU's name (CuPy's device 0, or PyTorch's), else the CPU's architecture."""
    if be.name == "cupy":
        name = be.xp.cuda.runtime.getDeviceProperties(be.xp.cuda.Device().id)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    if torch_device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"CPU {platform.machine()} ({os.cpu_count()} cores)"


def write_json(path, record: dict) -> None:
    """``record`` as JSON at ``path`` (written whole, then renamed: a reader never sees half a file)."""
    if path:
        tmp = f"{path}.part"
        with open(tmp, "w") as f:
            json.dump(record, f, indent=1)
        os.replace(tmp, path)


def matmul_peak(be, n, repeats=5):
    """Best GFLOP/s of an ``n × n`` float32 matmul on this backend (the machine's peak)."""
    a = B.to_device(np.random.default_rng(0).standard_normal((n, n)), be, np.float32)
    b = a.copy()
    _, best = timeit(lambda: a @ b, repeats, sync=be.synchronize)
    return 2 * n**3 / best / 1e9


def main(argv=None):
    ap = Parser(prog="bench_gd_step.py", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (784 -> 256 x4 -> 1, N = 200)")
    ap.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "strict"],
                    help="strict: the CPU stand-in for CuPy (a dry run of the GPU path)")
    ap.add_argument("--torch-device", default=None, choices=["cpu", "cuda", "none"],
                    help="PyTorch reference device (default: cuda with --backend cupy when PyTorch has a GPU, "
                         "else cpu); none: no reference")
    ap.add_argument("--repeats", type=positive_int, default=None)
    ap.add_argument("--json", type=output_file, default=None, metavar="PATH",
                    help="also write the numbers to PATH (JSON)")
    args = ap.parse_args(argv)

    n, width, depth = (200, 256, 5) if args.quick else (1000, 2048, 5)
    repeats = args.repeats or (5 if args.quick else 7)
    be = backend(ap, args.backend)
    torch, tdev, why = resolve_torch_device(args.torch_device, be.name)  # before timing: a bad choice fails at once
    sizes = [784] + [width] * (depth - 1) + [1]
    flops = step_flops(sizes, n)

    rng = np.random.default_rng(0)
    Xh = rng.random((n, 784), dtype=np.float32)
    yh = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32).reshape(-1, 1)
    model = models.mlp(784, width, depth, 1, seed=0, dtype="float32", backend=be)
    X, y = B.to_device(Xh, be), B.to_device(yh, be)
    opt = optim.GD(1e-3)

    def ours():
        out = model.forward(X)
        _, d = losses.mse(out, y)
        model.backward(d, need_dx=False)
        opt.step(model.params, model.grads)

    def ours_plain():
        with fast.plain():  # every layer on its plain lines
            ours()

    (t_ours, t_ours_best), (t_plain, t_plain_best) = timeit_alternated([ours, ours_plain], repeats, sync=be.synchronize)
    peak = matmul_peak(be, 2048 if not args.quick else 1024)

    record = dict(benchmark="gd_step", backend=be.name, sizes=sizes, n=n, dtype="float32", gflop=flops / 1e9,
                  repeats=repeats, t_ours_median=t_ours, t_ours_best=t_ours_best, t_plain_median=t_plain,
                  t_plain_best=t_plain_best, peak_gflops=peak,
                  torch_device=None, torch_version=None, t_torch_median=None, t_torch_best=None, ratio=None,
                  target=None, device=device_name(be))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; numpy {np.__version__}; backend {be.name}"
          f" ({record['device']})")
    print(f"MLP {' -> '.join(map(str, sizes))}, N = {n}, float32, one GD step = {flops / 1e9:.1f} GFLOP")
    print(f"float32 matmul peak ({'2048' if not args.quick else '1024'}^3): {peak:.1f} GFLOP/s")
    print(f"minilplr  step: {t_ours * 1e3:8.1f} ms  {flops / t_ours / 1e9:7.1f} GFLOP/s  ({flops / t_ours / 1e9 / peak:.0%} of peak)"
          "  [fast path]")
    print(f"minilplr  step: {t_plain * 1e3:8.1f} ms  {flops / t_plain / 1e9:7.1f} GFLOP/s  "
          f"({flops / t_plain / 1e9 / peak:.0%} of peak)  [plain path; plain / fast {t_plain / t_ours:.2f}]")

    if torch is None:
        print(f"no PyTorch reference: {why}")
        write_json(args.json, record)
        return
    if tdev == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    layers = []
    for i, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(fi, fo)
        with torch.no_grad():  # the same weights (torch stores W transposed)
            lin.weight.copy_(torch.from_numpy(B.to_host(model.params[f"fc{i + 1}.W"]).T.copy()))
            lin.bias.copy_(torch.from_numpy(B.to_host(model.params[f"fc{i + 1}.b"])))
        layers.append(lin)
        if i < depth - 1:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers).to(tdev)
    Xt, yt = torch.from_numpy(Xh).to(tdev), torch.from_numpy(yh).to(tdev)
    topt = torch.optim.SGD(net.parameters(), lr=1e-3)

    def theirs():
        topt.zero_grad(set_to_none=True)
        loss = 0.5 * ((net(Xt) - yt) ** 2).mean()
        loss.backward()
        topt.step()

    t_torch, t_torch_best = timeit(theirs, repeats, sync=torch_sync(torch, tdev))
    where = (f"CUDA, {torch.cuda.get_device_name(0)}" if tdev == "cuda"
             else f"CPU, {torch.get_num_threads()} threads")
    target = 1.2 if tdev == "cuda" else 1.15
    print(f"PyTorch   step: {t_torch * 1e3:8.1f} ms  {flops / t_torch / 1e9:7.1f} GFLOP/s  "
          f"({flops / t_torch / 1e9 / peak:.0%} of our backend's peak)  [torch {torch.__version__}, {where}, eager]")
    print(f"ratio minilplr / PyTorch: {t_ours / t_torch:.3f}  (target <= {target}); plain path {t_plain / t_torch:.3f}")
    record.update(torch_device=tdev, torch_version=torch.__version__, t_torch_median=t_torch,
                  t_torch_best=t_torch_best, ratio=t_ours / t_torch, target=target)
    write_json(args.json, record)


if __name__ == "__main__":
    main()
