"""The experiment ``linear_init`` (:mod:`minilplr.experiments.linear_init`):
iterations to a tolerance against the exponent p of the initialisation.

A tiny run, its numbers recomputed from the config and the formulas alone.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from minilplr.theory.linear import kappa_T, sigma2_T, steps_to_tolerance

from .linear_checks import NUM, assert_runs_plots_and_reports, check_eq19, fmt_means, start_network


def _check_linear_init(res, rep, be):
    cfg = res["config"]
    for r in res["runs"]:
        net = start_network(cfg, cfg["h"], {"kind": "gaussian", "p": r["p"]}, r["seed"], be)
        s2min, s2max = sigma2_T(net.W1, net.W2)
        assert (r["kappa0"], r["sigma2_max0"], r["sigma2_min"][0]) == (kappa_T(net.W1, net.W2), s2max, s2min)
        assert np.array_equal([r["iters_to_tol"]], [steps_to_tolerance(r["gap"], cfg["report_tol"])],
                              equal_nan=True)
        if r["schedule"] == "adaptive":
            check_eq19(r, cfg["schedule_opts"]["adaptive"], net)
    for claim, sched in zip(rep["claims"], cfg["schedules"]):
        want = fmt_means([r for r in res["runs"] if r["schedule"] == sched], "iters_to_tol", "p", ".17g")
        its = [float(want[p]) for p in sorted(want)]
        if not all(np.isfinite(its)):
            assert claim.status == "untestable", claim
            continue
        assert claim.details["y"] == pytest.approx(its, rel=1e-12), claim  # the seed means, ordered by p
        assert claim.status == ("holds" if all(a < b for a, b in zip(its, its[1:])) else "fails"), claim


def test_experiment_runs_plots_and_reports(tmp_path, be):
    """A tiny run of linear_init: its numbers are what the formulas give, its claims report them,
    its figures are PNGs of a readable size, and a second run resumes from the stored runs."""
    assert_runs_plots_and_reports("linear_init", _check_linear_init, tmp_path, be)
