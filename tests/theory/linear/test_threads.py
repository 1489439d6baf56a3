"""One BLAS thread inside a linear-network run (:mod:`minilplr.theory.linear.threads`)."""
from __future__ import annotations

import pytest

from minilplr.theory.linear import make_network, run_gd
from minilplr.experiments.linear_runs import cached_run, data_from_config, schedule_from_config, weights_from_config


def _blas_threads():
    from threadpoolctl import threadpool_info

    return {i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"}


def test_the_linear_runs_use_one_blas_thread_and_give_it_back(be, tmp_path, monkeypatch):
    """Every product of a linear-network run is (20, h) or smaller: one BLAS thread inside, the caller's after.

    The caller asks for two threads, so the test fails if the limit is missing even where the
    environment already sets one (``OPENBLAS_NUM_THREADS=1``).
    """
    from threadpoolctl import threadpool_limits

    from minilplr.experiments import linear_runs

    if not _blas_threads():
        pytest.skip("no BLAS library loaded that threadpoolctl can see")
    seen = []
    X, Y = data_from_config({"N": 8, "n": 4, "m": 3, "seed": 0, "x_cond": 1.0})
    W1, W2 = weights_from_config(4, 3, 20, {"kind": "gaussian", "p": 0.375}, 0)
    net = make_network(X, Y, W1, W2, backend=be)
    with threadpool_limits(limits=2, user_api="blas"):
        run_gd(net, schedule_from_config("constant", net), 5, callback=lambda t: seen.append(_blas_threads()))
        assert _blas_threads() == {2}  # given back
        real = linear_runs.schedule_from_config  # called in cached_run before the loop, with W(0)
        monkeypatch.setattr(linear_runs, "schedule_from_config",
                            lambda *a, **k: (seen.append(_blas_threads()), real(*a, **k))[1])
        spec = {"data": {"N": 8, "n": 4, "m": 3, "seed": 0, "x_cond": 1.0}, "h": 20,
                "init": {"kind": "gaussian", "p": 0.375}, "init_seed": 0, "schedule": "constant",
                "schedule_opts": {}, "steps": 5, "tol": 1e-12, "track_drift": False, "dtype": "float64"}
        cached_run(tmp_path, spec, backend=be)
        assert _blas_threads() == {2}
    assert len(seen) == 7 and all(s == {1} for s in seen), seen
