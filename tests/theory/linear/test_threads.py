"""One BLAS thread inside a linear-network run (:mod:`minilplr.theory.linear.threads`)."""
from __future__ import annotations

import pytest

from minilplr.theory.linear import run_gd

from ...helpers import linear_net, linear_schedule


def _blas_threads():
    """The thread counts of the BLAS libraries loaded, as threadpoolctl sees them."""
    from threadpoolctl import threadpool_info

    return {i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"}


def test_a_linear_run_uses_one_blas_thread_and_gives_it_back(be):
    """Every product of a linear-network run is (20, h) or smaller: one BLAS thread inside, the caller's after.

    The caller asks for two threads, so the test fails if the limit is missing even where the
    environment already sets one (``OPENBLAS_NUM_THREADS=1``).  (The experiments' cached runs build
    their schedule under the same limit: ``tests/experiments/test_linear_runs.py``.)
    """
    from threadpoolctl import threadpool_limits

    if not _blas_threads():
        pytest.skip("no BLAS library loaded that threadpoolctl can see")
    seen = []
    net = linear_net(be, {"N": 8, "n": 4, "m": 3, "seed": 0, "x_cond": 1.0}, h=20, init_seed=0)
    with threadpool_limits(limits=2, user_api="blas"):
        run_gd(net, linear_schedule("constant", net), 5, callback=lambda t: seen.append(_blas_threads()))
        assert _blas_threads() == {2}  # given back
    assert len(seen) == 6 and all(s == {1} for s in seen), seen
