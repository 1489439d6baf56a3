r"""One BLAS thread for the linear networks' small matrices: :func:`small_blas`.

Every product in these experiments is small: ``W₁ (n, h)`` times
``W₂ᵀ (h, m)`` with ``n = m = 20`` and ``h`` a few thousand, the Gram
matrices ``W₁W₁ᵀ (n, n)``, a QR of ``(h, 2(n+m))``.  Each is microseconds of
work.  A multithreaded BLAS (OpenBLAS by default starts one thread per
core) splits even these across its threads, and the threads busy-wait for
the next call between them.  On a quiet machine that costs a little; beside
another busy process the waiting threads fight it for the cores, and every
product waits for a thread the scheduler has put to sleep.  Measured on this
project's 2-core machine (issue 16): ``run_all.py --only linear_schedules``
(quick) took 14 s quiet with the default threads, 28 s beside one busy
process (654 s during another job); with one BLAS thread, 7 s beside that
busy process.  ``benchmarks/bench_concurrent.py --compare-threads`` (the four
quick linear experiments, one process, the machine shared with other work,
load ≈ 5): with this limit 14.2 s, and 24.0 s beside one busy process (1.7×);
without it 77.9 s and 332.5 s (4.3×).

So the linear-network GD loop (:func:`~minilplr.theory.linear.trajectory.run_gd`)
runs inside :func:`small_blas`.  The plain equivalent is starting Python with
``OPENBLAS_NUM_THREADS=1`` (``MKL_NUM_THREADS``, ``OMP_NUM_THREADS``
likewise), which would also slow down the large products of the MNIST
runs (``1000 × 2048`` matrices, where two threads do help): the limit is
set for the block only, with ``threadpoolctl``, and undone after it.  On
CuPy nothing changes (the limit concerns the host's BLAS).
"""
from __future__ import annotations

from threadpoolctl import threadpool_limits

__all__ = ["small_blas"]


def small_blas():
    """A context manager: the host's BLAS uses one thread inside the block (restored after it).

    Use it around loops of small products (any side below a few hundred),
    where threads only add synchronisation; see the module docstring for why
    and what it measured.
    """
    return threadpool_limits(limits=1, user_api="blas")
