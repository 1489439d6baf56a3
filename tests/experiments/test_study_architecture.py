"""studies/architecture.toml: the architecture experiment as a spec (cell kind ``architecture``, issue 24).

The spec loads and checks; a bad key is one line, exit 2; its seed-0 cells are exactly the experiment's
cells (the same configurations: the same numbers); a tiny run end to end gives the figures and Verdict rows;
the kind's named measures are the numbers of the saved cell."""
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from minilplr.experiments import architecture, runner
from minilplr.experiments.architecture.summary import MEASURES, measures, summarise
from minilplr.experiments.study import SpecError, Study, get_kind, load_study
from minilplr.experiments.study.spec import parse_spec
from minilplr.store import load_unit
from minilplr.theory.verdicts import STATUSES, Verdict

from ..helpers import one_line, run_tiny_study

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "studies" / "architecture.toml"


def test_the_spec_loads_and_every_preset_checks():
    st = load_study(SPEC)
    kind = get_kind("architecture")
    assert st.NAME == "architecture_study" and not kind.step_size and kind.pilot is None
    for p, n, width in (("quick", 50, 32), ("paper", 100, 128)):
        cfg = st.PRESETS[p]
        assert cfg["model"]["n"] == n and cfg["model"]["width"] == width
        assert all(d.get("measure") == "architecture" for d in cfg["diagnostics"])
    assert len(st.PRESETS["quick"]["claims"]) == 16 and len(st.PRESETS["quick"]["panels"]) == 6


def test_a_bad_key_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(SPEC.read_text().replace('init = ["he", "enhanced_he"]', 'init = ["he", "xavier"]', 1))
    r = subprocess.run([sys.executable, str(ROOT / "scripts/run_all.py"), "--study", str(bad), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert one_line(r.stderr).endswith("grid[0].init[1]: expected one of he, enhanced_he, got 'xavier'")
    assert not (tmp_path / "out").exists()


def test_a_step_size_is_refused():
    """The cell measures β_0 and steps at eta_fraction/β_0: the kind takes no eta or c_beta0."""
    raw = tomllib.loads(SPEC.read_text())
    raw["model"]["c_beta0"] = 0.5
    with pytest.raises(SpecError, match=r"model\.c_beta0: expected one of the keys .*, got 'an unknown key'"):
        parse_spec(raw, "x.toml")


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_the_specs_seed_0_cells_are_exactly_the_experiments(tmp_path, monkeypatch, preset):
    """The cells are pure functions of their configurations, so equal configurations give equal bits."""
    from minilplr import sweep

    class Stop(Exception):
        pass

    asked = {}

    def fake(fn, cfgs, out_dir, folder="cells", **kw):
        asked[str(out_dir)] = (fn.__name__, folder, list(cfgs.values()))
        raise Stop

    monkeypatch.setattr(sweep, "run_cells", fake)
    st = load_study(SPEC)
    with pytest.raises(Stop):
        architecture.run(runner.experiment_config(architecture, preset, {}), tmp_path / "exp")
    with pytest.raises(Stop):
        st.run(runner.experiment_config(st, preset, {}), tmp_path / "spec")
    e, s = asked[str(tmp_path / "exp")], asked[str(tmp_path / "spec")]
    assert e[:2] == s[:2] == ("architecture_cell", "cells")
    key = runner.config_hash
    exp = sorted(key(c) for c in e[2])
    spec0 = sorted(key(c) for c in s[2] if c["seed"] == 0)
    assert spec0 == exp and len(exp) == (20 if preset == "quick" else 36)
    assert len(s[2]) == 2 * len(exp)  # and a second seed of each


# --------------------------------------------------------------------------- a tiny run end to end

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return run_tiny_study(SPEC, tmp_path_factory.mktemp("arch_study"),
                          model=dict(n=12, width=8, hessian_iters=5, data_source="offline"),
                          run=dict(steps=6, diag_every=3),
                          grid=[dict(depth=[2, 4], residual=[False], batchnorm=[False, True], init=["he"], seed=[0, 1]),
                          dict(depth=[4, 6], residual=[True], batchnorm=[False, True], init=["he"], seed=[0, 1])])


def test_a_tiny_spec_runs_end_to_end_with_figures_and_verdicts(tiny_run):
    st, status, out = tiny_run
    assert status == {"architecture_study": "finished"}
    folder = out / "architecture_study"
    assert len(list((folder / "cells").glob("*.json"))) == 16 and not (folder / "pilots").exists()
    for i in range(6):
        assert (folder / f"architecture_study_{i}_lines.png").stat().st_size > 0
    rows = [ln for ln in (out / "report.md").read_text().splitlines() if ln.startswith("| architecture_study |")]
    assert len(rows) == 16
    verdicts = [Verdict.from_dict(v) for v in load_unit(folder, "results")["verdicts"]]
    assert len(verdicts) == 16 and all(v.status in STATUSES for v in verdicts)
    he = [v for v in verdicts[:8] if "eHe" not in v.claim]  # the He architectures: 2 depths × 2 seeds each
    assert len(he) == 4
    for v in he:
        assert v.quantity == "a" and math.isfinite(v.measured) and "also vary" not in (v.why or ""), v
    assert all(v.status == "untestable" and "no cell matches" in v.why for v in verdicts[:8] if "eHe" in v.claim)


def test_the_kinds_measures_are_the_saved_cells_numbers(tiny_run):
    """Every measure from the raw cell: the summary's field of the same name, the derived ones by formula."""
    _, _, out = tiny_run
    folder = out / "architecture_study"
    checked = 0
    for row in load_unit(folder, "results")["table"]:
        res = load_unit(folder / "cells", row["name"])["result"]
        s, m = summarise(res), measures(res)
        assert set(m) == set(MEASURES)
        for k in MEASURES:
            if k in s:
                assert m[k] == pytest.approx(s[k], nan_ok=True), k
        lam = np.asarray(res["diag"]["lam_min"], float)
        assert m["mu0"] == pytest.approx(lam[0] / res["n"], rel=1e-15)
        assert m["kappa0"] == pytest.approx(res["diag"]["lam_max"][0] / lam[0], rel=1e-15)
        inf = res["infinite"]
        if inf is None:
            assert math.isnan(m["inf_ratio"]) and math.isnan(m["lam_min_inf"])
        else:
            assert m["inf_ratio"] == pytest.approx(inf["lam_min_scaled0"] / inf["lam_min_inf"], rel=1e-15)
        assert math.isnan(m["frozen_ratio"]) != bool(row["settings"]["batchnorm"])
        assert m["hypothesis_broken"] == float(m["loss_rises"] > 0)
        if m["loss_rises"] == 0:
            assert m["contraction_held_hyp"] == pytest.approx(m["contraction_held"], nan_ok=True)
        else:
            assert math.isnan(m["contraction_held_hyp"])
        for k in row["diag"]:
            assert row["diag"][k] == pytest.approx(m[k], nan_ok=True), k
        checked += 1
    assert checked == 16
