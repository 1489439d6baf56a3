"""The per-step records of the training loops, before and after one transfer (issues 14 and 16).

Every step of :mod:`minilplr.train.loops` records ``L(θ_t)``, ``‖∇L(θ_t)‖²``
and ``‖θ_t − θ_0‖``.  Before: three device→host transfers (``to_scalar(L)``,
``sq_norm``, ``param_drift``), the drift squaring ``θ_t − θ_0`` into a second
temporary.  After: :func:`minilplr.train.loops.step_records`, one transfer,
the drift squared in place (:func:`minilplr.nn.params._sum_sq_diff`).

On the paper's MLP (``784 -> 2048 x4 -> 1``, ``P`` = 14.2M, float32, ``N`` =
1000) it times, interleaved in one process (before, after, before, …; each
after a fresh forward + backward pass, as in the loop):

* the drift alone, ``param_drift`` before and after;
* the three records, before and after;

and checks that both give the same bits.  On a GPU (``--backend cupy``) each
timing ends with a device synchronisation, so queued work is counted::

    python benchmarks/bench_step_records.py              # NumPy, the paper's sizes
    python benchmarks/bench_step_records.py --width 256  # seconds
    python benchmarks/bench_step_records.py --backend cupy
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minilplr import backend as B  # noqa: E402
from minilplr.nn import losses, models  # noqa: E402
from minilplr.nn.params import param_drift, sq_norm  # noqa: E402
from minilplr.train.loops import step_records  # noqa: E402
from bench_flags import Parser, backend, positive_int  # noqa: E402


def param_drift_before(params_t, params_0) -> float:
    """The drift as it was: ``d = θ_t − θ_0`` and ``d * d``, two temporaries per array, one sync."""
    total = None
    for k in params_t:
        d = params_t[k].reshape(-1) - params_0[k].reshape(-1)
        s = (d * d).sum(dtype=np.float64)
        total = s if total is None else total + s
    return math.sqrt(B.to_scalar(total))


def records_before(L, grads, params, theta0):
    """The three records as they were: three transfers."""
    return B.to_scalar(L), sq_norm(grads), param_drift_before(params, theta0)


def main(argv=None):
    ap = Parser(prog="bench_step_records.py", description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "strict"])
    ap.add_argument("--width", type=positive_int, default=2048)
    ap.add_argument("--n", type=positive_int, default=1000)
    ap.add_argument("--repeats", type=positive_int, default=9)
    args = ap.parse_args(argv)
    be = backend(ap, args.backend)
    rng = np.random.default_rng(0)
    model = models.mlp(784, args.width, 5, 1, seed=0, dtype="float32", backend=be)
    X = B.to_device(rng.random((args.n, 784)), be, "float32")
    y = B.to_device(np.sign(rng.standard_normal(args.n)), be, "float32")
    theta0 = {k: v.copy() for k, v in model.params.items()}
    P = sum(int(v.size) for v in theta0.values())

    def fresh_step():
        """A forward and backward pass and a small update: θ_t ≠ θ_0, caches as in the loop."""
        L, d = losses.mse(model.forward(X), y)
        model.backward(d, need_dx=False)
        for k, p in model.params.items():
            p -= 1e-3 * model.grads[k]
        L, d = losses.mse(model.forward(X), y)
        model.backward(d, need_dx=False)
        be.synchronize()
        return L

    cases = {
        "drift before": lambda L: param_drift_before(model.params, theta0),
        "drift after": lambda L: param_drift(model.params, theta0),
        "records before (3 syncs)": lambda L: records_before(L, model.grads, model.params, theta0),
        "records after (1 sync)": lambda L: step_records(L, model.grads, model.params, theta0),
    }
    times = {c: [] for c in cases}
    values = {}
    for rep in range(args.repeats + 1):
        for c, fn in cases.items():
            L = fresh_step()
            t0 = time.perf_counter()
            v = fn(L)
            be.synchronize()
            if rep:  # the first round warms up
                times[c].append(time.perf_counter() - t0)
            values[c] = v
    print(f"backend {be.name}, 784 -> {args.width} x4 -> 1, P = {P:,}, N = {args.n}, float32, "
          f"{args.repeats} interleaved repeats (median, min):")
    for c, ts in times.items():
        print(f"  {c:26s} {1e3 * statistics.median(ts):8.2f} ms  {1e3 * min(ts):8.2f} ms")
    # each case saw its own θ_t, so compare before and after on one state
    L = fresh_step()
    same_drift = param_drift_before(model.params, theta0) == param_drift(model.params, theta0)
    same_records = records_before(L, model.grads, model.params, theta0) == step_records(
        L, model.grads, model.params, theta0)
    print(f"  same bits: drift {same_drift}, records {same_records}")


if __name__ == "__main__":
    main()
