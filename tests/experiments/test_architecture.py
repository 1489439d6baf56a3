"""The architecture study (minilplr.experiments.architecture): the batch Jacobian of a training-mode batch-norm
network, the cell on a tiny real task, and run -> plot -> report from saved results.

The batch Jacobian is the kernel every BN row of the study rests on: it is checked against central differences of
the training-mode outputs (the function full-batch GD trains), and against the per-sample Jacobian of
:mod:`minilplr.theory.ntk` where both exist (no BN, or BN in evaluation mode).  Planted bug watched failing: the
one-hot seed put on sample ``i + 1`` instead of ``i`` (the rows shifted by one sample: both checks fail with relative errors O(1)).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from minilplr import backend as B
from minilplr.experiments import architecture as A
from minilplr.experiments.architecture import cells
from minilplr.experiments.architecture import claims as arch_claims
from minilplr.experiments.architecture.summary import loss_rises, summarise
from minilplr.nn import gradcheck, models
from minilplr.nn.state import named_buffers
from minilplr.theory import ntk
from minilplr.theory.verdicts import STATUSES, Verdict

from ..strategies import gaussian

# J against central differences of the outputs: 1.5e-10 relative seen (the 2 configurations below); a bug is O(1).
TOL_J_FD = 1e-8
TOL_J_SAME = 1e-13  # the same products summed in another order (0 to 3e-16 seen)

TINY = dict(A.PRESETS["quick"], n=12, data_source="offline", width=8, depths=[2, 4], steps=6, diag_every=3,
            hessian_iters=5, preset="test")


def _mlp(be, residual, batchnorm, seed=0):
    m = models.mlp(3, 5, 4, 2, seed=seed, dtype="float64", backend=be, residual=residual, batchnorm=batchnorm)
    for i, (k, p) in enumerate(m.params.items()):
        if k.endswith(".b") or k.endswith(".beta"):
            p[...] = B.to_device(gaussian(seed + 3 + i, *p.shape, scale=0.1), be)
    return m, B.to_device(gaussian(seed + 1, 6, 3), be)


@pytest.mark.parametrize("residual", [False, True])
def test_batch_jacobian_of_training_mode_bn_is_the_derivative_of_the_batch_outputs(be, residual):
    m, X = _mlp(be, residual, True)
    J = cells.batch_jacobian(m, X)
    assert J.shape == (6 * 2, sum(int(p.size) for p in m.params.values()))
    cols = [gradcheck.numerical_jvp_columns(lambda: m.forward(X), p, freeze=m) for p in m.params.values()]
    assert gradcheck.rel_error(J, be.xp.concatenate(cols, axis=1)) < TOL_J_FD


@pytest.mark.parametrize("residual, batchnorm", [(False, False), (True, False), (True, True)])
def test_batch_jacobian_equals_the_per_sample_jacobian_where_both_exist(be, residual, batchnorm):
    m, X = _mlp(be, residual, batchnorm, seed=4)
    m.eval()  # BN: running statistics, samples independent
    for b in named_buffers(m).values():
        b[...] = B.to_device(gaussian(9, *b.shape, scale=0.2) ** 2 + 0.5, be)
    assert gradcheck.rel_error(cells.batch_jacobian(m, X), ntk.jacobian(m, X)) < TOL_J_SAME


def test_batch_jacobian_leaves_the_model_untouched(be):
    m, X = _mlp(be, True, True)
    before = {k: B.to_host(b).copy() for k, b in named_buffers(m).items()}
    cells.batch_jacobian(m, X)
    for k, b in named_buffers(m).items():
        assert np.array_equal(B.to_host(b), before[k]), k  # a training-mode forward pass would have moved them


def test_the_cell_configs_alias_the_residual_mlp_without_blocks():
    configs, aliases = A.cell_configs(TINY, "numpy")
    assert aliases == {"d2-res-nobn-he": "d2-plain-nobn-he", "d2-res-bn-he": "d2-plain-bn-he",
                       "d2-res-nobn-ehe": "d2-plain-nobn-ehe", "d2-res-bn-ehe": "d2-plain-bn-ehe"}
    assert len(configs) == 4 + 8
    for c in configs.values():
        assert set(c) == set(cells.CELL_KEYS)
    with pytest.raises(ValueError, match="cell: missing configuration keys"):
        cells.architecture_cell({"n": 3})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("arch") / "architecture"
    return A.run(TINY, out, backend="numpy", progress=False), out


def test_tiny_study_runs_every_cell_and_its_verdicts(tiny):
    res, _ = tiny
    assert set(res["cells"]) == set(A.cell_configs(TINY, "numpy")[0])
    for name, c in res["cells"].items():
        s = c["summary"]
        assert c["status"] == "finished", name
        assert s["mu0"] > 0 and s["kappa0"] >= 1
        lam = np.asarray(c["diag"]["lam_min"])
        if np.all(np.isfinite(lam)):  # NaN: λ_min(Θ_t) below its rounding floor at a checkpoint (unresolved)
            assert s["lam_ratio_min"] == np.min(lam) / lam[0] <= 1.0
        assert np.isfinite(s["frozen_ratio"]) == s["batchnorm"]
        assert np.isfinite(s["lam_min_inf"]) == (not s["batchnorm"] and not s["residual"])
        assert ("batch" in c["kernel"]) == s["batchnorm"]
    from minilplr.theory.verdicts import STATUSES
    assert res["verdicts"] and all(v["status"] in STATUSES for v in res["verdicts"])
    json.dumps(res["verdicts"])  # JSON data


def test_plot_and_report_from_saved_results_only(tiny, tmp_path, monkeypatch):
    from minilplr.experiments.io import load_results, save_results

    res, _ = tiny
    save_results(tmp_path, res)
    monkeypatch.setattr(cells, "architecture_cell", None)  # nothing may train
    loaded = load_results(tmp_path)
    paths = A.plot(loaded, tmp_path)
    assert [p.name for p in paths] == ["architecture.png"] and paths[0].stat().st_size > 10_000
    rep = A.report(loaded)
    assert rep["figures"][0][0] == "architecture.png"
    assert len(rep["claims"]) == len(res["verdicts"])
    assert all(isinstance(c, Verdict) and c.status in STATUSES for c in rep["claims"])  # the claims contract
    # judged again from the saved cells: the same rows as the run's, and not the stored ones when those are stale
    assert [c.to_dict() for c in rep["claims"]] == [Verdict.from_dict(d).to_dict() for d in res["verdicts"]]
    stale = dict(loaded, verdicts=[dict(d, status="vacuous") for d in loaded["verdicts"]])
    assert [c.status for c in A.report(stale)["claims"]] == [Verdict.from_dict(d).status for d in res["verdicts"]]


def test_summary_of_a_cell_reads_its_numbers(tiny):
    res, out = tiny
    from minilplr.sweep import run_cells

    configs, _ = A.cell_configs(TINY, "numpy")
    raw = run_cells(cells.architecture_cell, configs, out, folder="cells", progress=False)  # all saved: loads
    r = raw["d4-res-bn-he"]
    s = summarise(r)
    lam = np.asarray(r["diag"]["lam_min"])
    assert s["mu0"] == lam[0] / r["n"] and s["eta_mu0"] == pytest.approx(r["lr"] * lam[0] / r["n"], rel=1e-15)
    assert s["lr"] == pytest.approx(0.5 / r["beta0"]["beta"], rel=1e-15)
    assert list(r["diag"]["step"]) == [0, 3, 6]


def test_loss_rises_counts_rises_beyond_rounding_only():
    assert loss_rises([1.0, 0.5, 0.6, 0.3], "float64") == 1
    assert loss_rises([1.0, 0.5, 0.5 * (1 + 1e-15), 0.3], "float64") == 0  # within the losses' rounding
    assert loss_rises([1.0, 0.5, 0.3, float("nan")], "float64") == 1  # a non-finite loss counts


def _step_summary(depth, status, held, rises):
    return dict(depth=depth, residual=False, batchnorm=False, init="enhanced_he", contraction_status=status,
                contraction_held=held, loss_rises=rises)


def test_step_14_is_judged_only_where_its_hypothesis_held_and_the_excluded_cells_are_counted():
    """A cell whose loss rose (η > 2/β there) is outside Theorem 5.4: its failing step is the hypothesis row's
    failure, not the step row's; the step row says how many cells it left out and why."""
    sums = [_step_summary(2, "holds", 1.0, 0), _step_summary(4, "fails", 0.6, 15), _step_summary(6, "fails", 0.7, 9),
            _step_summary(8, "n/a", float("nan"), 0)]
    hyp, step = arch_claims._step_rows(sums)
    assert hyp.status == "fails" and hyp.measured == 2 and "L = 4: 15" in hyp.rests_on and "L = 6: 9" in hyp.rests_on
    assert step.status == "holds" and step.measured == 1.0
    assert step.rests_on.startswith("1 of 1 cells; 2 cells excluded, their loss rose") and "1 not judged" in step.rests_on
    # a cell that breaks (14) without its loss rising is the theorem's failure
    hyp, step = arch_claims._step_rows(sums + [_step_summary(10, "fails", 0.9, 0)])
    assert step.status == "fails" and step.measured == 0.5
    # every cell's loss rose: nothing to judge the step on
    hyp, step = arch_claims._step_rows(sums[1:3])
    assert step.status == "untestable" and "2 of 2 cells' loss rose" in step.why
