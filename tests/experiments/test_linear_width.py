"""The experiment ``linear_width`` (:mod:`minilplr.experiments.linear_width`):
κ(T₀) and the rate against the width.

A tiny run, its numbers recomputed from the config and the formulas alone.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from minilplr.theory.linear import kappa_T, observed_rate

from .linear_checks import NUM, assert_runs_plots_and_reports, check_eq19, fmt_means, start_network


def _check_linear_width(res, rep, be):
    cfg = res["config"]
    init = {"kind": "gaussian", "p": float(cfg["p"])}
    for g in res["kappa_grid"]:  # κ(T₀) without training, against the weights rebuilt from the config
        assert g["kappa"] == [kappa_T(start_network(cfg, g["h"], init, s, be).W1,
                                      start_network(cfg, g["h"], init, s, be).W2) for s in cfg["init_seeds"]]
    for r in res["runs"]:
        net = start_network(cfg, r["h"], init, r["seed"], be)
        assert r["kappa0"] == kappa_T(net.W1, net.W2)  # the same computation on the same backend: exact
        assert np.array_equal([r["rate"]], [observed_rate(r["gap"], *cfg["rate_window"])], equal_nan=True)
        if r["schedule"] == "adaptive":
            check_eq19(r, cfg["schedule_opts"]["adaptive"], net)
    first = res["runs"][0]["schedule"]
    kap = fmt_means([r for r in res["runs"] if r["schedule"] == first], "kappa0", "h", ".17g")
    rate = fmt_means([r for r in res["runs"] if r["schedule"] == "adaptive"], "rate", "h", ".17g")
    for claim, want in zip(rep["claims"], (kap, rate)):
        vals = [float(want[h]) for h in sorted(want)]
        if not all(np.isfinite(vals)):
            assert claim.status == "untestable", claim
            continue
        assert claim.details["y"] == pytest.approx(vals, rel=1e-12), claim  # the seed means, ordered by width
        assert claim.status == ("holds" if all(a > b for a, b in zip(vals, vals[1:])) else "fails"), claim


def test_experiment_runs_plots_and_reports(tmp_path, be):
    """A tiny run of linear_width: its numbers are what the formulas give, its claims report them,
    its figures are PNGs of a readable size, and a second run resumes from the stored runs."""
    assert_runs_plots_and_reports("linear_width", _check_linear_width, tmp_path, be)
