"""The v3 certificate wired into the MNIST GD run and the NTK-stability figure.

* ``gd_run`` records ``‖Θ_t − Θ_0‖₂`` at every checkpoint and reads the
  drift at the same ``θ_t`` from the per-step history: both checked against
  a run that measures them inside its own diagnostics;
* results saved before the certificate existed get it, derived, with no KeyError;
* the figure and the claims table, with and without a certificate.
"""
import math

import numpy as np
import pytest

from minilplr.backend import get_backend, to_device
from minilplr.experiments import ntk_stability
from minilplr.experiments.io import load_results, save_results
from minilplr.experiments.mnist_gd import gd_run, load_task
from minilplr.nn.models import mlp
from minilplr.nn.params import flatten, param_drift
from minilplr.theory import ntk, spectrum
from minilplr.theory.certificate import run_certificate
from minilplr.train.loops import train_gd
from minilplr.train.optim import GD

from ..helpers import TINY_MNIST_GD as TINY


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return runs, gd_run(TINY, runs, progress=False)


def test_checkpoint_drift_and_kernel_difference_are_those_of_the_same_theta(tiny):
    """The history's ``param_drift[t]`` and the NTK checkpoint ``t`` see the same ``θ_t`` (and ``T``: the final drift)."""
    _, res = tiny
    be = get_backend()
    data = load_task(TINY)
    m = mlp(784, TINY["width"], TINY["depth"], 1, init="he", seed=TINY["seed"], dtype="float64", backend=be)
    X = to_device(data.X, be, m.dtype)
    y = to_device(data.y.reshape(-1, 1), be, m.dtype)
    p0, K0 = flatten(m.params), ntk.empirical_ntk(m, X, dtype="float64")

    def diagnostics(model, t):  # measured here, at θ_t itself
        return dict(drift=param_drift(model, p0),
                    diff=spectrum.symmetric_norm(ntk.empirical_ntk(model, X, dtype="float64") - K0))

    h = train_gd(m, X, y, GD(TINY["lr"]), steps=TINY["epochs"], diagnostics=diagnostics, diag_every=TINY["diag_every"])
    c = res["certificate"]
    assert list(c["checkpoint_step"]) == [d["step"] for d in h["diag"]] == [0, 2, 4, 6, 7]
    np.testing.assert_allclose(c["checkpoint_drift"], [d["drift"] for d in h["diag"]], rtol=1e-12, atol=0)
    np.testing.assert_allclose(c["ntk_diff_spec"], [d["diff"] for d in h["diag"]], rtol=1e-9, atol=0)
    assert c["diff_source"].startswith("measured")
    ratios = np.array([d["diff"] / d["drift"] for d in h["diag"][1:]])
    assert c["L_theta"] == pytest.approx(ratios.max(), rel=1e-9)
    assert c["r"] == pytest.approx(max(h["param_drift"] + [h["final_param_drift"]]), rel=1e-12)
    assert c["r"] <= c["path_length"] * (1 + 1e-12)
    assert c["mu_cert"] == pytest.approx((c["lam0"] - c["L_theta"] * c["r"]) / 16, rel=1e-12)
    assert c["R"] == pytest.approx(2 * math.sqrt(2 * res["hessian"]["beta0"] * res["history"]["loss"][0])
                                   / (c["lam0"] / 16), rel=1e-12)


def test_results_saved_before_the_certificate_get_it_derived(tiny, tmp_path):
    """No ``ntk_diff_spec``, no ``certificate``: ``‖Θ_t − Θ_0‖₂`` = relative drift × λ_max(Θ_0), and no KeyError."""
    runs, res = tiny
    (folder,) = runs.iterdir()
    old = load_results(folder)
    del old["certificate"], old["diag"]["ntk_diff_spec"]
    old_runs = tmp_path / "runs"
    save_results(old_runs / folder.name, old)
    again = gd_run(TINY, old_runs, progress=False)  # loaded, not retrained
    c, ref = again["certificate"], res["certificate"]
    assert c["diff_source"].startswith("derived") and "5 of 5" in c["diff_source"]
    np.testing.assert_allclose(c["ntk_diff_spec"], ref["ntk_diff_spec"], rtol=1e-9, atol=1e-9 * ref["ntk_diff_spec"].max())
    for k in ("L_theta", "mu_cert", "R", "r", "path_length", "radius_max"):
        assert c[k] == pytest.approx(ref[k], rel=1e-9), k
    # the figure and the report from an old experiment's results (the run inside lacks the certificate)
    del again["certificate"]
    results = dict(status="finished", data=again["data"], run=again)
    ntk_stability.plot(results, tmp_path)
    assert (tmp_path / "ntk_stability.png").stat().st_size > 0
    claims = {row.claim[:8]: row for row in ntk_stability.report(results)["claims"]}
    assert claims["v3's cer"].status == ("holds" if ref["certified"] else "fails")
    assert ref["drift_within_R"] is True  # and R ≥ ‖θ_0‖ makes it a check without power:
    assert claims["The drif"].status == ("vacuous" if ref["R"] >= again["theta0_norm"] else "holds")


def test_no_certificate_without_a_resolved_lambda0(tiny, tmp_path):
    _, res = tiny
    broken = dict(res, diag=dict(res["diag"], lam_min=np.where(np.arange(res["diag"]["lam_min"].size) == 0, np.nan,
                                                               res["diag"]["lam_min"])))
    c = run_certificate(broken)
    assert math.isnan(c["mu_cert"]) and not c["certified"] and "unresolved" in c["rests_on"]
    assert math.isnan(c["R"]) and c["drift_within_R"] is None
    results = dict(status="finished", data=res["data"], run=broken)
    ntk_stability.plot(results, tmp_path)
    rows = [row for row in ntk_stability.report(results)["claims"] if row.claim.startswith(("v3's", "The drift"))]
    assert [row.status for row in rows] == ["untestable", "untestable"]
    assert "no certificate" in rows[1].why
