r"""One BLAS thread for the linear networks' small matrices: :func:`small_blas`.

Every product in these experiments is small: ``W₁ (D, H)`` times
``W₂ᵀ (H, K)`` with ``D = K = 20`` and ``H`` a few thousand, the Gram
matrices ``W₁W₁ᵀ (D, D)``, a QR of ``(H, 2(D+K))``.  Each is microseconds of
work.  A multithreaded BLAS (OpenBLAS by default starts one thread per
core) splits even these across its threads, and the threads busy-wait for
the next call between them.  On a quiet machine that costs a little; beside
another busy process the waiting threads fight it for the cores, and every
product waits for a thread the scheduler has put to sleep (issue 16: several
times slower beside one busy process).
``benchmarks/bench_concurrent.py --compare-threads`` measures it: the four
quick linear experiments with and without this limit, alone and beside a
busy process (the README quotes what it printed for issue 16).

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
