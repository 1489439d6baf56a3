"""The experiment ``linear_imbalance`` (:mod:`minilplr.experiments.linear_imbalance`):
the imbalance's drift against its bounds.

A tiny run, its numbers recomputed from the config and the formulas alone.
"""
from __future__ import annotations

import numpy as np
import pytest

from minilplr import backend as B
from minilplr.theory.linear import imbalance

from .linear_checks import assert_runs_plots_and_reports, check_eq19, start_network


def _S(x):
    return B.to_scalar(x)


def _check_linear_imbalance(res, rep, be):
    cfg = res["config"]
    within = 0
    for r in res["runs"]:
        net = start_network(cfg, cfg["h"], r["init"], r["seed"], be)
        explicit = _S(be.xp.linalg.norm(imbalance(net.W1, net.W2)))  # the h×h matrix, summed directly
        # both sides sum O(h) products of size ‖W‖²: ~1e-15 relative to ‖D(0)‖ (not small at these starts)
        assert r["imbalance0"] == pytest.approx(explicit, rel=1e-10)
        T = r["steps"]
        ok = bool(np.all(r["drift_step"][:T] <= r["drift_step_bound"][:T] * (1 + 1e-9) + 1e-15)
                  and np.all(r["drift"] <= r["drift_bound"] * (1 + 1e-9) + 1e-12 * r["imbalance0"]))
        assert ok == (r["step_within_bound"] and r["drift_within_bound"])
        within += ok
        assert r["max_rel_drift"] == float(np.nanmax(r["drift"]) / r["imbalance0"])
        assert r["min_pl_margin"] == float(np.nanmin(r["pl_ratio"] / r["mu_t"]))
        if r["schedule"] == "adaptive":
            check_eq19(r, cfg["schedule_opts"]["adaptive"], net)
    claims = rep["claims"]
    ad = [r for r in res["runs"] if r["schedule"] == "adaptive"]
    assert claims[0].measured == max(r["max_rel_drift"] for r in ad)  # the worst adaptive run is the row
    assert claims[0].status == ("holds" if claims[0].measured <= cfg["imbalance_tol"] else "fails")
    assert (claims[1].status == "holds" and claims[2].status == "holds") == (within == len(res["runs"]))
    assert claims[1].measured <= 1 or claims[1].status == "fails"
    assert claims[4].measured == min(r["min_pl_margin"] for r in res["runs"])
    assert claims[4].status == ("holds" if claims[4].measured >= 1.0 else "fails")


def test_experiment_runs_plots_and_reports(tmp_path, be):
    """A tiny run of linear_imbalance: its numbers are what the formulas give, its claims report them,
    its figures are PNGs of a readable size, and a second run resumes from the stored runs."""
    assert_runs_plots_and_reports("linear_imbalance", _check_linear_imbalance, tmp_path, be)
