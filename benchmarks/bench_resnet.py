"""One SGD step of the Fig. 3 ResNet: minilplr against PyTorch eager (CPU or CUDA).

Times forward + backward + update (softmax cross-entropy, plain SGD) of
:func:`minilplr.nn.resnet.resnet` on a batch of ``N = 128`` images ``3×32×32``
with 5 classes, in float32, and of a PyTorch module with the same
architecture and the same weights, in the same process, and prints

* a check that both compute the same loss and gradients on the first step
  (the two networks really are the same);
* the median step time of each, ours on the default fast path and on the
  plain path (``minilplr.nn.fast.plain()``: the layers' textbook lines, no
  fast kernel), and the ratios minilplr / PyTorch (target ≤ 2.0, for the
  fast path) and plain / fast.

Both run in training mode (batch norm with batch statistics), as in training.
Timings on a shared machine are noisy: run it twice and compare.  On a GPU
(``--backend cupy``; PyTorch on CUDA by default when it has one) each timed
step ends with a synchronisation inside the timed region (CuPy's device,
``torch.cuda.synchronize()``), after two untimed warm-up steps; the target
≤ 2.0 is the CPU's (the issue sets none on a GPU: the ratio is reported).
``--json PATH`` writes the numbers for ``benchmarks/gpu_check.py``.

Usage::

    python benchmarks/bench_resnet.py                      # N = 128, widths 16-32-64, 1 block/stage
    python benchmarks/bench_resnet.py --blocks 2           # "ResNet-14"
    python benchmarks/bench_resnet.py --quick              # N = 16, 16×16 images: seconds
    python benchmarks/bench_resnet.py --profile            # cProfile of our step, top functions
    python benchmarks/bench_resnet.py --threads 1          # one BLAS / PyTorch thread
    python benchmarks/bench_resnet.py --backend cupy       # on the GPU, against PyTorch CUDA if it has one
    python benchmarks/bench_resnet.py --torch-device none --json resnet.json   # ours only, numbers to a file

PyTorch is a benchmark extra only: ``pip install -e ".[bench]"``.
"""
from __future__ import annotations

import os
import sys

from bench_flags import Parser, backend, output_file, positive_int


def _parse(argv):
    ap = Parser(prog="bench_resnet.py", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N = 16, 16x16 images, few repeats")
    ap.add_argument("--batch", type=positive_int, default=128)
    ap.add_argument("--blocks", type=positive_int, default=1, help="residual blocks per stage")
    ap.add_argument("--widths", type=positive_int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--repeats", type=positive_int, default=None)
    ap.add_argument("--threads", type=positive_int, default=None, help="threads for BLAS and PyTorch (default: all)")
    ap.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "strict"],
                    help="strict: the CPU stand-in for CuPy (a dry run of the GPU path)")
    ap.add_argument("--torch-device", default=None, choices=["cpu", "cuda", "none"],
                    help="PyTorch reference device (default: cuda with --backend cupy when PyTorch has a GPU, "
                         "else cpu); none: no reference")
    ap.add_argument("--json", type=output_file, default=None, metavar="PATH",
                    help="also write the numbers to PATH (JSON)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of our step and exit")
    args = ap.parse_args(argv)
    args.parser = ap  # for the backend check, once minilplr is imported
    return args


ARGS = _parse(sys.argv[1:] if __name__ == "__main__" else [])
if ARGS.threads:  # must happen before NumPy loads its BLAS
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from minilplr import backend as B  # noqa: E402
from minilplr.nn import fast, losses  # noqa: E402
from minilplr.train import optim  # noqa: E402
from minilplr.nn.resnet import resnet  # noqa: E402
from bench_gd_step import device_name, resolve_torch_device, torch_sync, write_json  # noqa: E402


def time_alternated(fns, repeats, warmup=2, syncs=None):
    """Step times of the functions ``fns``, alternated ``a, b, c, a, b, c, …`` so that all see the
    same machine load (this is a shared machine).  ``syncs[i]`` (after ``fns[i]``) waits for a
    GPU's queued work, inside the timed region.

    Returns one list of ``(wall seconds, CPU seconds)`` per function: the CPU time of the
    process sums all its threads; with ``--threads 1`` it is the time the step
    really computed, whatever else the machine was running.
    """
    syncs = syncs or [lambda: None] * len(fns)
    for _ in range(warmup):
        for fn, sync in zip(fns, syncs):
            fn()
            sync()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, sync, t in zip(fns, syncs, times):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            sync()
            t.append((time.perf_counter() - w0, time.process_time() - c0))
    return times


def _summary(name, t):
    wall, cpu = [w for w, _ in t], [c for _, c in t]
    return (f"{name} step: {statistics.median(wall) * 1e3:8.1f} ms median, {min(wall) * 1e3:8.1f} ms best"
            f"  (CPU {statistics.median(cpu) * 1e3:7.1f} ms)")


def torch_mirror(model, torch):
    """A ``torch.nn.Module`` with the architecture and weights of our ResNet ``model``.

    Built by walking our layers, so it mirrors whatever widths and blocks the
    model has: our kernels ``(k, k, C_in, C_out)`` become PyTorch's
    ``(C_out, C_in, k, k)``, our dense ``W (D, K)`` becomes ``weight (K, D)``.
    """
    from minilplr.nn.batchnorm import BatchNorm2D
    from minilplr.nn.conv import Conv2D
    from minilplr.nn.residual import GlobalAvgPool, ResidualBlock
    from minilplr.nn.layers import Dense, ReLU, Sequential

    nn = torch.nn
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(model.dtype)]

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(B.to_host(a)))

    def conv(c):
        m = nn.Conv2d(c.c_in, c.c_out, c.k, stride=c.stride, padding=c.padding, bias="b" in c.params, dtype=dtype)
        with torch.no_grad():
            m.weight.copy_(t(c.params["W"]).permute(3, 2, 0, 1))
            if "b" in c.params:
                m.bias.copy_(t(c.params["b"]))
        return m

    def bn(b):
        m = nn.BatchNorm2d(b.channels, eps=b.eps, momentum=b.momentum, dtype=dtype)
        with torch.no_grad():
            m.weight.copy_(t(b.params["gamma"]))
            m.bias.copy_(t(b.params["beta"]))
        return m

    class Block(nn.Module):
        def __init__(self, blk):
            super().__init__()
            L = blk.layers
            self.main = nn.Sequential(conv(L["conv1"]), bn(L["bn1"]), nn.ReLU(), conv(L["conv2"]), bn(L["bn2"]))
            self.shortcut = (nn.Sequential(conv(L["shortcut.conv"]), bn(L["shortcut.bn"]))
                             if blk.projection else nn.Identity())

        def forward(self, x):
            return torch.relu(self.main(x) + self.shortcut(x))

    def build(layer):
        if isinstance(layer, ResidualBlock):
            return Block(layer)
        if isinstance(layer, Sequential):
            return nn.Sequential(*(build(sub) for sub in layer.layers.values()))
        if isinstance(layer, Conv2D):
            return conv(layer)
        if isinstance(layer, BatchNorm2D):
            return bn(layer)
        if isinstance(layer, ReLU):
            return nn.ReLU()
        if isinstance(layer, GlobalAvgPool):
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        if isinstance(layer, Dense):
            m = nn.Linear(layer.fan_in, layer.fan_out, dtype=dtype)
            with torch.no_grad():
                m.weight.copy_(t(layer.params["W"]).T)
                m.bias.copy_(t(layer.params["b"]))
            return m
        raise TypeError(f"no PyTorch mirror for {type(layer).__name__}")

    return build(model)


def profile_step(step, n=5):
    import cProfile
    import pstats

    step()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        step()
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(25)


def main(args=ARGS):
    n, size = (16, 16) if args.quick else (args.batch, 32)
    repeats = args.repeats or (3 if args.quick else 10)
    k, lr = 5, 0.05
    be = backend(args.parser, args.backend)
    torch, tdev, why = resolve_torch_device("none" if args.profile else args.torch_device, be.name)
    model = resnet(3, k, tuple(args.widths), args.blocks, size, seed=0, dtype="float32", backend=be)
    rng = np.random.default_rng(0)
    Xh = rng.standard_normal((n, 3, size, size)).astype(np.float32)
    yh = rng.integers(0, k, n)
    X, y = B.to_device(Xh, be), B.to_device(yh, be)
    opt = optim.SGD(lr)

    def ours():
        loss, d = losses.softmax_cross_entropy(model.forward(X), y)
        model.backward(d, need_dx=False)
        opt.step(model.params, model.grads)
        return loss

    def ours_plain():
        with fast.plain():  # every layer on its plain lines
            return ours()

    if args.profile:
        profile_step(ours)
        return

    record = dict(benchmark="resnet", backend=be.name, n=n, image=[3, size, size], widths=list(args.widths),
                  blocks=args.blocks, dtype="float32", repeats=repeats, device=device_name(be),
                  torch_device=tdev, torch_version=None if torch is None else torch.__version__,
                  t_ours_median=None, t_ours_best=None, t_plain_median=None, t_plain_best=None,
                  t_torch_median=None, t_torch_best=None, ratio=None, ratio_plain=None,
                  target=2.0 if tdev == "cpu" else None, grad_rel_diff=None)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; numpy {np.__version__}; "
          f"backend {be.name} ({record['device']}); threads {args.threads or 'default'}")
    print(f"{model!r}\nN = {n}, images 3x{size}x{size}, float32, P = "
          f"{sum(int(p.size) for p in model.params.values())}")

    if torch is None:
        print(f"no PyTorch reference: {why}")
    else:
        if args.threads and tdev == "cpu":
            torch.set_num_threads(args.threads)
        net = torch_mirror(model, torch).train().to(tdev)
        Xt, yt = torch.from_numpy(Xh).to(tdev), torch.from_numpy(yh).to(tdev)
        # first step on identical weights: same loss and gradients?
        logits = model.forward(X)
        loss, d = losses.softmax_cross_entropy(logits, y)
        model.backward(d)
        tl = torch.nn.functional.cross_entropy(net(Xt), yt)
        tl.backward()
        g_ours = np.concatenate([B.to_host(g).reshape(-1) for g in model.grads.values()])
        g_torch = np.concatenate([
            (p.grad.permute(2, 3, 1, 0) if p.grad.ndim == 4 else p.grad.T if p.grad.ndim == 2 else p.grad)
            .reshape(-1).cpu().numpy() for p in net.parameters()])
        rel = np.linalg.norm(g_ours - g_torch) / np.linalg.norm(g_torch)
        record["grad_rel_diff"] = float(rel)
        print(f"same network: loss {float(loss):.6f} (ours) vs {tl.item():.6f} (PyTorch); "
              f"gradient relative difference {rel:.1e}")

    if torch is None:
        ta, tp = time_alternated([ours, ours_plain], repeats, syncs=[be.synchronize] * 2)
        print(_summary("minilplr", ta) + "  [fast path]")
        print(_summary("minilplr", tp) + "  [plain path]")
        _plain_ratio(ta, tp, repeats)
        wa, wp = [w for w, _ in ta], [w for w, _ in tp]
        record.update(t_ours_median=statistics.median(wa), t_ours_best=min(wa), t_plain_median=statistics.median(wp),
                      t_plain_best=min(wp))
        write_json(args.json, record)
        return
    topt = torch.optim.SGD(net.parameters(), lr=lr)

    def theirs():
        topt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(Xt), yt)
        loss.backward()
        topt.step()

    ta, tp, tb = time_alternated([ours, ours_plain, theirs], repeats,
                                 syncs=[be.synchronize, be.synchronize, torch_sync(torch, tdev)])
    ratios = [a[0] / b[0] for a, b in zip(ta, tb)]
    cpu_ratios = [a[1] / b[1] for a, b in zip(ta, tb)]
    plain_ratios = [a[0] / b[0] for a, b in zip(tp, tb)]
    print(_summary("minilplr", ta) + "  [fast path]")
    print(_summary("minilplr", tp) + "  [plain path]")
    where = f"CUDA, {torch.cuda.get_device_name(0)}" if tdev == "cuda" else f"{torch.get_num_threads()} threads"
    print(_summary("PyTorch ", tb) + f"  [torch {torch.__version__}, {where}, eager]")
    print(f"ratio minilplr / PyTorch: {statistics.median(ratios):.2f} wall (median of {repeats} alternated "
          f"steps), {statistics.median(cpu_ratios):.2f} CPU time  "
          f"({'target <= 2.0' if tdev == 'cpu' else 'no target on a GPU'}); plain path "
          f"{statistics.median(plain_ratios):.2f} wall")
    _plain_ratio(ta, tp, repeats)
    wa, wp, wb = [w for w, _ in ta], [w for w, _ in tp], [w for w, _ in tb]
    record.update(t_ours_median=statistics.median(wa), t_ours_best=min(wa), t_plain_median=statistics.median(wp),
                  t_plain_best=min(wp), t_torch_median=statistics.median(wb), t_torch_best=min(wb),
                  ratio=statistics.median(ratios), ratio_plain=statistics.median(plain_ratios))
    write_json(args.json, record)


def _plain_ratio(ta, tp, repeats):
    """Print plain / fast of the alternated steps: the median and the range over the repeats, wall and CPU."""
    wall = sorted(p[0] / a[0] for a, p in zip(ta, tp))
    cpu = sorted(p[1] / a[1] for a, p in zip(ta, tp))
    print(f"plain path / fast path: {statistics.median(wall):.2f} wall ({wall[0]:.2f}-{wall[-1]:.2f} over {repeats} "
          f"alternated steps), {statistics.median(cpu):.2f} CPU time ({cpu[0]:.2f}-{cpu[-1]:.2f})")


if __name__ == "__main__":
    main()
