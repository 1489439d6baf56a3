"""Cell functions for the sweep tests, at the top level of an importable module (workers import them by name).

:func:`gd_and_spectrum` is the grid's cell: a float32 GD run, a float64
NTK spectrum and a SciPy eigensolve, each big enough that OpenBLAS splits
its sums over threads (float32 ``sgemm`` of ``128 × 64 × 256``, a dot
product of ``256·64`` terms, LAPACK's symmetric eigensolver through NumPy's
BLAS and, on a ``300 × 300`` matrix, through SciPy's own): with 1, 2 or 3
BLAS threads every one of its arrays differs in the last bits, so a test
comparing executors bit for bit fails if the thread count is left to the
executor (``tests/sweep/test_bits.py`` checks that it does differ here).
"""
import os

import numpy as np

from minilplr import backend as B
from minilplr.nn.models import mlp
from minilplr.theory.ntk import empirical_ntk
from minilplr.theory.spectrum import ntk_spectrum
from minilplr.train.loops import train_gd
from minilplr.train.optim import GD

#: 4 cells: widths × step sizes.
CELLS = [{"width": w, "lr": lr, "seed": 0, "steps": 4, "backend": "numpy"} for w in (128, 256) for lr in (0.02, 0.05)]

CALLS = []  # names of the cells run in this process (the in-process executor runs them here)


def gd_and_spectrum(cell):
    """GD on ``N = 128`` points in ``R^64`` (float32), then the NTK ``Θ (N, N)`` in float64 and its eigenvalues."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((128, 64)), rng.standard_normal((128, 1))
    model = mlp(64, cell["width"], 3, 1, seed=cell["seed"], dtype="float32", backend=cell["backend"])
    be = model.backend
    Xd, yd = B.to_device(X, be, np.float32), B.to_device(y, be, np.float32)
    hist = train_gd(model, Xd, yd, GD(cell["lr"]), cell["steps"])
    K = empirical_ntk(model, B.to_device(X, be, np.float64), method="structured", dtype="float64")
    import scipy.linalg  # SciPy's own OpenBLAS: its eigensolver

    S = rng.standard_normal((300, 300))
    w = B.to_host(model.params["fc1.W"]).astype(np.float64).ravel()
    return {"loss": hist.arrays()["loss"], "W1": B.to_host(model.params["fc1.W"]),
            "lam": np.asarray(ntk_spectrum(K).eigenvalues),
            "scipy_eig": scipy.linalg.eigvalsh(S + S.T),  # SciPy's BLAS alone: the same matrix in every cell
            "dot": float(w @ w), "shape": (cell["width"], 64)}


def counting(cell):
    """:func:`gd_and_spectrum`, counted in :data:`CALLS`."""
    from minilplr.store import config_hash

    CALLS.append(config_hash(cell))
    return gd_and_spectrum(cell)


def blas_threads(cell):
    """The thread counts of the BLAS/OpenMP pools of the process running this cell, and its PID."""
    from threadpoolctl import threadpool_info

    return {"threads": [p["num_threads"] for p in threadpool_info()], "pid": os.getpid()}


def changes_threads(cell):
    """A cell that leaves BLAS on 3 threads: the pin must refuse its result."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(3)
    return {"x": 1.0}


def sleepy(cell):
    """A long cell: writes its PID to ``cell["marker"]/<pid>`` and sleeps ``cell["seconds"]`` (Ctrl-C tests)."""
    import time
    from pathlib import Path

    Path(cell["marker"], str(os.getpid())).write_text("started")
    time.sleep(cell["seconds"])
    return {"slept": cell["seconds"]}


def killed_at_third(cell):
    """Ctrl-C while the third cell runs (in this process: it reaches the driver as it would from a terminal)."""
    if len(CALLS) == 2:
        raise KeyboardInterrupt
    return counting(cell)
