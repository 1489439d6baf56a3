"""The LPLR map experiment (the package minilplr.experiments.lplr_map): its verdict rules, its per-cell summary, a
tiny real grid, plotting from saved results, resuming."""
from __future__ import annotations

import math

import numpy as np
import pytest

from minilplr.experiments import lplr_map as M
from minilplr.experiments.io import load_results, save_results
from minilplr.experiments.lplr_map import cells, figure
from minilplr.experiments.lplr_map.summary import CellSummary, summarise
from minilplr.experiments.lplr_map.verdicts import classify, cross_table

TINY = dict(M.PRESETS["quick"], n=20, data_source="offline", widths=[8, 16], eta_fractions=[0.5, 1.9],
            fixed_lrs=[1e-3], steps=12, diag_every=4, hessian_iters=20, preset="test")


# --------------------------------------------------------------------------- the rules, on constructed cells


def _summary(**kw):
    """A summary of a cell whose hypotheses hold on the path and whose loss is linear; ``kw`` overrides."""
    s = dict(width=8, lr=0.01, diverged=False, steps=40, r2=0.99, rate=0.9, r2_late=0.999, rate_late=0.9,
             r2_late_power=0.98, decrease=100.0, rate_kernel=0.9, rate_vs_kernel=1.0, mu=0.3, bound=0.997,
             rate_vs_bound=35.0, envelope_holds=True, ntk_drift=0.1, lam_resolved=True, lam_ratio=0.9,
             eta_beta0=0.4, eta_beta_max=0.5, beta_checkpoints=2, eta_beta_certified=True,
             eta_beta_conditions=[True, True], eta_gn_max=0.3, mu_cert=0.1, certified=True, cert_fraction=0.3,
             final_param_drift=1.0)
    s.update(kw)
    return CellSummary(**s)


@pytest.mark.parametrize("kw, path, held, loss, verdict, path_verdict", [
    (dict(), True, True, "linear", "confirmed", "confirmed"),
    (dict(r2_late=0.8), True, True, "not linear", "contradicted", "contradicted"),
    (dict(rate_late=1.01), True, True, "not linear", "contradicted", "contradicted"),
    (dict(r2_late_power=0.9995), True, True, "not linear", "contradicted", "contradicted"),  # 1/t-like
    (dict(r2=0.7), True, True, "linear", "confirmed", "confirmed"),  # bent over the run, straight late
    (dict(diverged=True), True, True, "diverged", "contradicted", "contradicted"),
    (dict(decrease=5.0), True, True, "too short", "untested", "untested"),
    (dict(certified=False, cert_fraction=-3.0), True, False, "linear", "vacuous", "confirmed"),
    (dict(lam_ratio=0.4), False, False, "linear", "vacuous", "vacuous"),
    (dict(lam_resolved=False, lam_ratio=float("nan")), False, False, "linear", "vacuous", "vacuous"),
    (dict(eta_beta_certified=False, eta_beta_max=1.5), False, False, "linear", "vacuous",
     "vacuous"),
    (dict(eta_beta_certified=False, r2_late=0.5), False, False, "not linear", "vacuous", "vacuous"),
])
def test_classify_reaches_every_entry_of_the_cross_table(kw, path, held, loss, verdict, path_verdict):
    v = classify(_summary(**kw))
    assert (v["path"], v["hypotheses"], v["loss"], v["verdict"], v["path_verdict"]) == (
        path, held, loss, verdict, path_verdict), v


def test_classify_says_which_condition_failed_first():
    assert classify(_summary(lam_ratio=0.4))["path_why"].startswith("min λ_min(Θ_t)/λ_min(Θ_0) = 0.4 < 0.5")
    assert "not certified" in classify(_summary(eta_beta_certified=False))["path_why"]
    assert classify(_summary(certified=False))["hypotheses_why"].startswith("μ_cert ≤ 0")
    assert classify(_summary(lam_ratio=0.5))["path"]  # the threshold itself passes (≥)


def test_cross_table_counts_each_cell_once():
    ver = [classify(_summary(**kw)) for kw in (dict(), dict(r2_late=0.5), dict(decrease=2.0), dict(lam_ratio=0.1),
                                                 dict(certified=False))]
    path = cross_table(ver, "path")
    assert path["verdicts"] == dict(confirmed=2, contradicted=1, untested=1, vacuous=1)
    assert path["table"]["held"] == {"linear": 2, "not linear": 1, "too short": 1, "diverged": 0}
    v3 = cross_table(ver, "hypotheses")
    assert v3["verdicts"] == dict(confirmed=1, contradicted=1, untested=1, vacuous=2)
    assert v3["table"]["held"] == {"linear": 1, "not linear": 1, "too short": 1, "diverged": 0}
    assert v3["table"]["not held"]["linear"] == 2
    with pytest.raises(ValueError, match="which: expected"):
        cross_table(ver, "v4")


def _result(q=0.8, qk=0.9, T=40, lr=0.01, n=10, lam=(5.0, 4.0, 3.0), beta=20.0, status="finished"):
    """A constructed :func:`map_cell` result: loss q^t, kernel curve qk^t, λ_min(Θ_t) = lam."""
    t = np.arange(T)
    steps = np.linspace(0, T, len(lam))
    b = dict(beta=beta, rayleigh=beta, matvecs=12, converged=True, residual=1e-9, tol=1e-6)
    return dict(status=status, message="", data="constructed", n=n, lr=lr, width=8, loss=0.5 * q ** t,
                grad_norm_sq=np.ones(T), param_drift=np.linspace(0, 1, T), final_param_drift=1.0,
                diag=dict(step=steps, lam_min=np.array(lam), resolved=np.ones(len(lam)), lam_max=np.full(len(lam), 90.0),
                          ntk_drift_fro=np.linspace(0, 0.2, len(lam)), ntk_drift_spec=np.zeros(len(lam)),
                          ntk_diff_spec=np.zeros(len(lam))),
                kernel_pred=0.5 * qk ** t, beta0=b, betaT=dict(b, beta=beta * 1.1) if status == "finished" else None,
                certificate=dict(mu_cert=0.2, certified=True, lam0=lam[0]))


def test_summarise_reads_the_rates_the_bound_and_eta_beta():
    s = summarise(_result())
    assert s.rate == pytest.approx(0.8, rel=1e-12) and s.r2 == pytest.approx(1.0, abs=1e-12)
    assert s.rate_vs_kernel == pytest.approx(math.log(0.8) / math.log(0.9), rel=1e-10)
    mu = 3.0 / 10  # min_t λ_min(Θ_t)/n
    assert s.mu == pytest.approx(mu) and s.bound == pytest.approx(1 - 0.01 * mu)
    assert s.rate_vs_bound == pytest.approx(math.log(0.8) / math.log(1 - 0.01 * mu), rel=1e-10)
    assert s.envelope_holds is True  # 0.8^t ≤ (1 − 0.003)^t
    assert s.lam_ratio == pytest.approx(3.0 / 5.0)
    assert s.eta_beta_max == pytest.approx(0.01 * 22.0) and s.beta_checkpoints == 2
    assert s.eta_gn_max == pytest.approx(0.01 * 90.0 / 10)
    assert s.cert_fraction == pytest.approx(0.2 * 10 / 5.0)
    assert s.ntk_drift == pytest.approx(0.2)
    two = _result()  # a fast and a slow geometric term: bent over the run, straight once the fast one is gone
    two["loss"] = 0.5 * (0.5 ** np.arange(40) + 0.01 * 0.95 ** np.arange(40))
    s2 = summarise(two)
    assert s2.r2 < 0.95 and s2.r2_late > 1 - 1e-6 and s2.rate_late == pytest.approx(0.95, rel=1e-4)  # the fast term leaves ~1e-5
    assert classify(s2)["loss"] == "linear"  # linear convergence at the slow term's rate
    sub = _result()  # a sublinear loss 1/(1 + t): nearly straight on a log axis over the second half, yet not linear
    sub["loss"] = 0.5 / (1.0 + np.arange(400)) ** 1.0
    sub["kernel_pred"] = sub["loss"]
    s3 = summarise(sub)
    assert s3.decrease > 10 and s3.r2_late_power > s3.r2_late
    assert classify(s3)["loss"] == "not linear" and "power law" in classify(s3)["loss_why"]
    slow = summarise(_result(q=0.9999))  # slower than the bound: the envelope fails
    assert slow.envelope_holds is False and slow.rate_vs_bound < 1
    d = summarise(_result(status="diverged", beta=60.0))  # ηβ_0 = 0.6; a diverged run has no β_T
    assert d.beta_checkpoints == 1 and d.eta_beta_max == pytest.approx(0.6) and d.diverged
    assert not summarise(_result(beta=150.0)).eta_beta_certified  # η·β_0 = 1.5 > 1


#: The stored summary's keys, in the order results.json has held them since the map was written: a field moved
#: or renamed in CellSummary would change every saved results file (and their hashes).
STORED_KEYS = ["width", "lr", "diverged", "steps", "r2", "rate", "r2_late", "rate_late", "r2_late_power",
               "kernel_r2_late", "kernel_rate_late", "kernel_r2_late_power", "decrease", "rate_kernel", "rate_vs_kernel",
               "mu", "bound", "rate_vs_bound", "envelope_holds", "ntk_drift", "lam_resolved", "lam_ratio", "eta_beta0",
               "eta_beta_max", "beta_checkpoints", "eta_beta_certified", "eta_beta_conditions", "eta_gn_max", "mu_cert",
               "certified", "cert_fraction", "final_param_drift"]


def test_the_summary_is_stored_in_its_historical_key_order_and_read_back_unchanged():
    s = summarise(_result())
    d = s.to_dict()
    assert list(d) == STORED_KEYS
    assert all(type(v) in (int, float, bool, list) for k, v in d.items() if k != "envelope_holds"), d
    assert CellSummary.from_dict(d) == s
    old = {k: v for k, v in d.items() if not k.startswith("kernel_")}  # results saved before the kernel fields
    assert CellSummary.from_dict(old).kernel_r2_late is None
    with pytest.raises(ValueError, match=r"summary: expected the fields of CellSummary, got unknown \['r3'\], "
                                         r"missing \['rate'\]"):
        CellSummary.from_dict(dict({k: v for k, v in d.items() if k != "rate"}, r3=1.0))


# --------------------------------------------------------------------------- a tiny real grid


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("lplr_map")
    return out, M.run(TINY, out, progress=False)


def test_tiny_grid_runs_every_cell_with_its_diagnostics(tiny):
    _, res = tiny
    assert "offline" in res["data"] and res["n"] == 20
    assert len(res["cells"]) == 2 * 3
    for w in (8, 16):
        p = res["pilots"][f"h{w}"]
        assert p["converged"] and p["beta"] > 0
        for col in res["columns"]:
            c = res["cells"][cells.cell_name(w, col)]
            s = CellSummary.from_dict(c["summary"])
            lr = col["lr"] if col["fraction"] is None else col["fraction"] / p["beta"]
            assert s.lr == pytest.approx(lr, rel=1e-12)
            assert s.eta_beta0 == pytest.approx(lr * p["beta"], rel=1e-12)
            # the kernel-regime curve starts at the measured L_0 = ‖r_0‖²/(2n) (float32 forward)
            assert c["kernel_pred"][0] == pytest.approx(c["loss"][0], rel=1e-5)
            assert np.isfinite(s.ntk_drift) and s.steps >= 1
    total = sum(sum(row.values()) for row in res["cross_path"]["table"].values())
    assert total == len(res["cells"]) == sum(res["cross"]["verdicts"].values())


def test_plot_and_report_from_saved_results_only(tiny, tmp_path, monkeypatch):
    out, res = tiny
    save_results(tmp_path, res)
    loaded = load_results(tmp_path)

    def no_training(cell):
        raise AssertionError("plot() trained a cell")

    monkeypatch.setattr(cells, "map_cell", no_training)
    monkeypatch.setattr(cells, "pilot_cell", no_training)
    figs = M.plot(loaded, tmp_path)
    assert [f.name for f in figs] == ["lplr_map.png"] and figs[0].stat().st_size > 10_000
    first = next(iter(loaded["cells"].values()))  # a diverged cell is marked, not coloured
    first["summary"]["diverged"], first["verdict"]["loss"] = True, "diverged"
    values, diverged = figure.grid(loaded, "r2")
    assert diverged.sum() == 1 and np.isfinite(values[diverged]).all()
    assert M.plot(loaded, tmp_path / "diverged")[0].stat().st_size > 10_000
    rep = M.report(loaded)
    assert rep["figures"][0][0] == "lplr_map.png" and "offline" in rep["figures"][0][1]
    claims = {c["claim"].split(" (")[0]: c for c in rep["claims"]}
    assert claims["v3 width ablation: at width 1024 the fixed step η = 0.001 leaves the local regime"]["holds"] is None


def raise_if_run(cell):
    """Stands in for the cell functions: a resumed sweep must not call it."""
    raise RuntimeError(f"cell run again: {cell['width']}")


def test_a_second_run_loads_every_cell_and_runs_none(tiny, monkeypatch):
    out, res = tiny
    monkeypatch.setattr(cells, "map_cell", raise_if_run)
    monkeypatch.setattr(cells, "pilot_cell", raise_if_run)
    again = M.run(TINY, out, progress=False)
    assert again["cross"] == res["cross"] and again["cross_path"] == res["cross_path"]
    for k, c in res["cells"].items():
        assert again["cells"][k]["summary"]["rate"] == c["summary"]["rate"]
