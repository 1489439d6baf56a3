"""The LPLR map experiment (the package minilplr.experiments.lplr_map): its verdict rules, its per-cell summary, a
tiny real grid, plotting from saved results, resuming."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from minilplr.experiments import lplr_map as M
from minilplr.experiments.io import load_results, save_results
from minilplr.store import load_unit
from minilplr.experiments.lplr_map import cells, figure
from minilplr.experiments.lplr_map.summary import CellSummary, summarise
from minilplr.experiments.lplr_map.verdicts import classify, cross_table
from minilplr.theory.verdicts import Verdict

TINY = dict(M.PRESETS["quick"], n=20, data_source="offline", widths=[8, 16], eta_fractions=[0.5, 1.9],
            fixed_lrs=[1e-3], steps=12, diag_every=4, hessian_iters=20, preset="test")


# --------------------------------------------------------------------------- the rules, on constructed cells


def _summary(**kw):
    """The summary of :func:`_result` (hypotheses hold, (14) holds, linear); ``kw`` overrides fields."""
    return dataclasses.replace(summarise(_result()), **kw)


def _risen(res, t=13, by=1.018):
    """``res`` with its loss raised at step ``t`` to ``by`` times the step before: (14) must fail at step t − 1."""
    loss = np.array(res["loss"], float)
    loss[t] = loss[t - 1] * by
    return dict(res, loss=loss)


@pytest.mark.parametrize("kw, path, held, concl, loss, verdict, path_verdict", [
    (dict(), True, True, "holds", "linear", "confirmed", "confirmed"),
    (dict(certified=False, cert_fraction=-3.0), True, False, "holds", "linear", "vacuous", "confirmed"),
    (dict(lam_ratio=0.4), False, False, "holds", "linear", "vacuous", "vacuous"),
    (dict(lam_resolved=False, lam_ratio=float("nan")), False, False, "holds", "linear", "vacuous", "vacuous"),
    (dict(diverged=True), True, True, "holds", "diverged", "confirmed", "confirmed"),
])
def test_classify_reaches_every_entry_of_the_cross_table(kw, path, held, concl, loss, verdict, path_verdict):
    v = classify(_summary(**kw))
    assert (v["path"], v["hypotheses"], v["conclusion"], v["loss"], v["verdict"], v["path_verdict"]) == (
        path, held, concl, loss, verdict, path_verdict), v


def test_a_loss_that_rises_once_contradicts_the_theorem_only_where_its_hypotheses_held():
    """Planted: the loss rises 1.8 % at t = 13 (the map's h128, c = 1.9 cell). (14) fails there; (10), which demands
    ×1.12 over the run, does not notice; the cell is contradicted only if its hypotheses held."""
    s = summarise(_risen(_result()))
    con, env = Verdict.from_dict(s.contraction_verdict), Verdict.from_dict(s.envelope_verdict)
    assert con.status == "fails" and con.details["worst_step"] == 12 and con.details["failed_steps"] == [12]
    assert env.status == "vacuous"  # the whole-run envelope could not have failed
    v = classify(s)
    assert v["conclusion"] == "fails" and v["path_verdict"] == v["verdict"] == "contradicted"
    assert "worst at t = 12" in v["conclusion_why"]
    out = classify(summarise(_risen(_result(lam=(5.0, 4.0, 2.0)))))  # λ_min fell below half its start
    assert not out["path"] and out["conclusion"] == "fails" and out["path_verdict"] == "vacuous"
    held = classify(summarise(_risen(_result(), by=0.99)))  # a smaller decrease than usual, still ≥ ημ_t: holds
    assert held["conclusion"] == "holds"


def test_the_step_size_hypothesis_is_checked_along_the_path():
    """Planted: the Gauss–Newton proxy peaks above 1 between the Lanczos points; Lanczos at the peak finds ηβ > 1;
    a solve that did not converge is not a pass."""
    proxy = classify(summarise(_result(lam_max=1100.0)))  # η·λ_max/n = 1.1
    assert not proxy["path"] and "η ≤ 1/β fails" in proxy["path_why"] and "Gauss–Newton" in proxy["path_why"]
    peak = _result()
    peak["beta_peak"] = dict(peak["beta0"], beta=150.0, step=10)  # η·β = 1.5 at the peak, 0.2 at 0 and T
    sp = summarise(peak)
    assert sp.eta_beta_peak == pytest.approx(1.5) and Verdict.from_dict(sp.step_verdict).status == "fails"
    assert not classify(sp)["path"]
    loose = _result()
    loose["beta0"] = dict(loose["beta0"], converged=False)
    v = classify(summarise(loose))
    assert not v["path"] and "η ≤ 1/β untestable" in v["path_why"]
    ok = Verdict.from_dict(summarise(_result()).step_verdict)
    assert ok.status == "holds" and ok.measured == pytest.approx(0.01 * 22.0 * (1 + 1e-9))
    assert "converged Lanczos, residual" in ok.rests_on and "certified" not in ok.rests_on


def test_linear_is_untestable_before_t_dom_and_a_sublinear_loss_is_not_linear():
    """Planted: a run shorter than the kernel-regime dominance time reads untestable, never "not linear"; a 1/t
    loss after t_dom reads "not linear" (the old R² rule called such curves linear)."""
    short = _result()
    short["kernel_lam"], short["kernel_c2"] = np.array([1e-3, 50.0]), np.array([1.0, 1.0])  # a very slow term
    s = summarise(short)
    assert s.t_dom > 40 and classify(s)["loss"] == "untestable" and "t_dom" in classify(s)["loss_why"]
    sub = _result(T=400)
    sub["loss"] = 0.5 / (1.0 + np.arange(400))
    sub["kernel_lam"], sub["kernel_c2"] = np.array([50.0, 60.0]), np.array([1.0, 1e-9])  # t_dom = 0
    s3 = summarise(sub)
    assert s3.t_dom == 0 and classify(s3)["loss"] == "not linear"
    two = _result()  # a sum of two geometric terms: linear (or untestable), never "not linear"
    two["loss"] = 0.5 * (0.5 ** np.arange(40) + 0.01 * 0.95 ** np.arange(40))
    assert classify(summarise(two))["loss"] in ("linear", "untestable")


def test_cross_table_counts_each_cell_once():
    ver = [classify(s) for s in (_summary(), summarise(_risen(_result())), _summary(lam_ratio=0.1),
                                 _summary(certified=False), summarise(_risen(_result(lam=(5.0, 4.0, 2.0)))))]
    path = cross_table(ver, "path")
    assert path["verdicts"] == dict(confirmed=2, contradicted=1, untestable=0, vacuous=2)
    assert path["table"]["held"] == {"holds": 2, "fails": 1, "untestable": 0}
    assert path["table"]["not held"] == {"holds": 1, "fails": 1, "untestable": 0}
    v3 = cross_table(ver, "hypotheses")
    assert v3["verdicts"] == dict(confirmed=1, contradicted=1, untestable=0, vacuous=3)
    assert v3["loss"]["held"]["linear"] == 2
    with pytest.raises(ValueError, match="which: expected"):
        cross_table(ver, "v4")


def _result(q=0.8, qk=0.9, T=40, lr=0.01, n=10, lam=(5.0, 4.0, 3.0), beta=20.0, status="finished", lam_max=90.0):
    """A constructed :func:`map_cell` result: loss q^t, kernel curve qk^t, λ_min(Θ_t) = lam; Lanczos β at 0 and T.

    ημ_t ≤ 0.005 per step against a loss that falls 20 % per step: (14) holds; (10) demands only ×1.12 over
    40 steps: vacuous; no kernel modes saved: the linear judge reads the second half."""
    t = np.arange(T)
    steps = np.linspace(0, T, len(lam))
    b = dict(beta=beta, rayleigh=beta, matvecs=12, converged=True, residual=1e-9, tol=1e-6)
    return dict(status=status, message="", data="constructed", n=n, lr=lr, width=8, loss=0.5 * q ** t,
                grad_norm_sq=np.ones(T), param_drift=np.linspace(0, 1, T), final_param_drift=1.0,
                diag=dict(step=steps, lam_min=np.array(lam), resolved=np.ones(len(lam)), lam_max=np.full(len(lam), lam_max),
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
    assert s.eta_gn_max == pytest.approx(0.01 * 90.0 / 10) and s.eta_gn_step == 0
    assert s.cert_fraction == pytest.approx(0.2 * 10 / 5.0)
    assert s.ntk_drift == pytest.approx(0.2)
    assert s.t_dom is None and s.eta_beta_peak is None
    slow = summarise(_result(q=0.9999))  # slower than the bound: the envelope fails
    assert slow.envelope_holds is False and slow.rate_vs_bound < 1
    assert Verdict.from_dict(slow.envelope_verdict).status == "fails"
    d = summarise(_result(status="diverged", beta=60.0))  # ηβ_0 = 0.6; a diverged run has no β_T
    assert d.beta_checkpoints == 1 and d.eta_beta_max == pytest.approx(0.6) and d.diverged
    assert not summarise(_result(beta=150.0)).eta_beta_certified  # η·β_0 = 1.5 > 1
    inf = _result(status="diverged")  # a diverged run's loss ends non-finite: judged on its finite part
    inf["loss"] = np.concatenate([inf["loss"][:20], [np.inf] * 20])
    assert Verdict.from_dict(summarise(inf).contraction_verdict).details["steps_judged"] == 19


#: The stored summary's keys, in the order results.json has held them since the map was written: a field moved
#: or renamed in CellSummary would change every saved results file (and their hashes).
STORED_KEYS = ["width", "lr", "diverged", "steps", "r2", "rate", "r2_late", "rate_late", "r2_late_power",
               "kernel_r2_late", "kernel_rate_late", "kernel_r2_late_power", "decrease", "rate_kernel", "rate_vs_kernel",
               "mu", "bound", "rate_vs_bound", "envelope_holds", "ntk_drift", "lam_resolved", "lam_ratio", "eta_beta0",
               "eta_beta_max", "beta_checkpoints", "eta_beta_certified", "eta_beta_conditions", "eta_gn_max", "mu_cert",
               "certified", "cert_fraction", "final_param_drift", "envelope_verdict", "contraction_verdict",
               "linear_verdict", "t_dom", "eta_gn_step", "eta_beta_peak", "step_verdict"]


def test_the_summary_is_stored_in_its_historical_key_order_and_read_back_unchanged():
    s = summarise(_result())
    d = s.to_dict()
    assert list(d) == STORED_KEYS
    assert all(type(v) in (int, float, bool, list, dict, type(None)) for k, v in d.items()), d
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
    out, res = tiny
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
            assert s.t_dom is not None and s.step_verdict["status"] in ("holds", "fails", "untestable")
            assert s.eta_gn_step in (0, 4, 8, 12)  # an NTK checkpoint
            raw = load_unit(out / "cells", cells.cell_name(w, col))["result"]  # what the cell saved
            assert raw["kernel_lam"].shape == raw["kernel_c2"].shape == (20,)
            assert np.sum(raw["kernel_c2"]) == pytest.approx(2 * 20 * raw["loss"][0], rel=1e-4)  # Σ c_i = ‖r_0‖²
            bp = raw["beta_peak"]  # Lanczos where λ_max(Θ_t) peaked among the checkpoints 0 < t < T
            inner = raw["diag"]["step"][1:-1]
            assert (bp is None) == (raw["status"] != "finished")
            if bp is not None:
                assert bp["step"] == inner[np.argmax(raw["diag"]["lam_max"][1:-1])]
                assert s.eta_beta_peak == pytest.approx(s.lr * bp["beta"]) and bp["converged"]
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
    assert all(isinstance(c, Verdict) for c in rep["claims"])
    claims = {c.claim.split(" (")[0]: c for c in rep["claims"]}
    assert claims["v3 width ablation: at width 1024 the fixed step η = 0.001 leaves the local regime"].status == \
        "untestable"
    old = dict(loaded, rules={k: v for k, v in loaded["rules"].items() if k != "conclusion"})  # saved by old rules
    (row,) = M.report(old)["claims"]
    assert row.status == "untestable" and "nothing is retrained" in row.decide


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
