"""The experiment ``linear_schedules`` (:mod:`minilplr.experiments.linear_schedules`):
iterations and evaluations to a tolerance, per schedule.

A tiny run, its numbers recomputed from the config and the formulas alone.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from minilplr.theory.linear import steps_to_tolerance

from .linear_checks import NUM, assert_runs_plots_and_reports, check_eq19, fmt_means, start_network


def _check_linear_schedules(res, rep, be):
    cfg = res["config"]
    tol = float(cfg["report_tol"])
    for r in res["runs"]:
        T = r["steps"]
        if r["schedule"] == "adaptive":
            check_eq19(r, cfg["schedule_opts"]["adaptive"], start_network(cfg, cfg["h"], cfg["init"], r["seed"], be))
        if r["schedule"] == "armijo":  # every step is η_init·ρ^k, and each trial loss was counted
            o = cfg["schedule_opts"]["armijo"]
            k = np.log(r["lr"][:T] / o["lr_init"]) / np.log(o["shrink"])
            assert np.allclose(k, np.round(k), atol=1e-9) and np.all(np.round(k) >= 0)
            assert r["function_evals"] >= T
        else:
            assert r["function_evals"] == 0
        assert r["evals"][-1] == T + 1 + r["function_evals"]  # gradients + trial losses
        assert np.all(np.diff(r["evals"]) >= 1)
        assert np.array_equal([r["iters_to_tol"]], [steps_to_tolerance(r["gap"], tol)], equal_nan=True)
    for claim, key in zip(rep["claims"], ("iters_to_tol", "evals_to_tol")):
        want = {k: float(v) for k, v in fmt_means(res["runs"], key, "schedule", ".17g").items()}
        ad = want["adaptive"]
        others = {k: v for k, v in want.items() if k != "adaptive" and math.isfinite(v)}
        best = min(others, key=others.get)
        assert claim.quantity == f"adaptive/{best}" and claim.measured == pytest.approx(ad / others[best], rel=1e-12)
        assert claim.status == ("holds" if ad <= others[best] else "fails"), claim


def test_experiment_runs_plots_and_reports(tmp_path, be):
    """A tiny run of linear_schedules: its numbers are what the formulas give, its claims report them,
    its figures are PNGs of a readable size, and a second run resumes from the stored runs."""
    assert_runs_plots_and_reports("linear_schedules", _check_linear_schedules, tmp_path, be)
