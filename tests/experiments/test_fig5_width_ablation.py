"""Fig. 5's kernel panel (minilplr.experiments.fig5_width_ablation) on a tiny configuration.

The recomputed θ_0 is the trained run's (its unscaled NTK equals the run's
saved ``ntk0`` unit), Θ_∞ is the task's, the figure and the claims come from
saved results only, and results from before the comparison still plot.
"""
import copy

import numpy as np
import pytest

from minilplr.backend import to_device
from minilplr.experiments import fig5_width_ablation as fig5
from minilplr.experiments.mnist_gd import load_task, run_config
from minilplr.theory import infinite_ntk as inf
from minilplr.theory.spectrum import ntk_spectrum

TINY = dict(fig5.PRESETS["quick"], n=12, data_source="offline", widths=[8, 32], depth=3, epochs=2, diag_every=1,
            hessian_iters=3, kernel_seeds=2)


@pytest.fixture(scope="module")
def results(tmp_path_factory, be):
    out = tmp_path_factory.mktemp("fig5") / "fig5_width_ablation"
    res = fig5.run(TINY, out, backend=be, progress=False)
    return res, out


def test_kernel_rows_come_from_the_runs_own_initialisation(results, be):
    res, _ = results
    for r in res["rows"]:
        assert len(r["kernel_err0"]) == len(r["lam_min0_scaled"]) == TINY["kernel_seeds"]
        assert r["ntk0_check"] < 1e-12, r  # the unscaled sum of the shares is the run's saved Θ_0 (seen 1e-16)
        assert all(e > 0 for e in r["kernel_err0"])
    X = to_device(load_task(run_config(TINY, width=8)).X, be, np.float64)
    lam = ntk_spectrum(inf.infinite_ntk(X, TINY["depth"])).lam_min
    assert res["kernel"]["lam_min_inf"] == pytest.approx(lam, rel=1e-12)


def test_fixed_eta_beta_runs_use_the_lanczos_beta_at_init(results, be):
    """Each width's second run has η = eta_beta0/β_0 (6 digits), β_0 the Hessian's top eigenvalue at the run's
    own θ_0 (recomputed here), and is a run of its own (not the fixed-η run's cache).

    Planted bug caught: β_0 read at another seed's θ_0 (``seed=rc["seed"] + 1`` in ``run``)."""
    res, out = results
    X = to_device(load_task(run_config(TINY, width=8)).X, be, np.float64)
    y = to_device(load_task(run_config(TINY, width=8)).y.reshape(-1, 1), be, np.float64)
    for r in res["rows"]:
        rc = fig5.width_config(TINY, r["width"])
        b0 = fig5.beta_at_init(rc, X, y, be)["beta0"]
        assert r["beta0"] == pytest.approx(b0, rel=1e-6)
        assert r["lr_eta_beta"] == pytest.approx(TINY["eta_beta0"] / b0, rel=1e-5)
        assert fig5.fixed_eta_beta_config(TINY, r["width"], b0)["lr"] != rc["lr"]
        assert r["status_eta_beta"] == "finished" and np.isfinite(r["final_loss_eta_beta"])


def test_plot_and_report_read_saved_results(results):
    res, out = results
    figs = fig5.plot(res, out)
    assert [f.name for f in figs] == ["fig5_width_ablation.png", "fig5_width_kernel.png"]
    rep = fig5.report(res)
    assert [f for f, _ in rep["figures"]] == ["fig5_width_ablation.png", "fig5_width_kernel.png"]
    claims = {c.claim: c for c in rep["claims"]}
    assert any("H^(−1)" in c for c in claims) and any("λ_min(Θ_∞)" in c for c in claims)
    assert any("fixed η·β_0" in c for c in claims)
    assert all(c.status in ("holds", "fails", "untestable") for c in rep["claims"])
    old = copy.deepcopy(res)  # results saved before the comparison existed
    del old["kernel"]
    for r in old["rows"]:
        del r["kernel_err0"], r["lam_min0_scaled"], r["ntk0_check"]
    assert [f.name for f in fig5.plot(old, out)] == ["fig5_width_ablation.png"]
    assert fig5.report(old)["claims"][-1].status == "untestable"


def test_loglog_slope():
    x = np.array([32.0, 64, 128, 256])
    assert fig5.loglog_slope(x, 3 * x ** -0.5) == pytest.approx(-0.5)
    assert fig5.loglog_slope(x, [1.0, np.nan, 0.5, 0.25]) == pytest.approx(np.polyfit(np.log([32, 128, 256]),
                                                                                      np.log([1, 0.5, 0.25]), 1)[0])
    assert np.isnan(fig5.loglog_slope(x, [1.0, np.nan, np.nan, np.nan]))
