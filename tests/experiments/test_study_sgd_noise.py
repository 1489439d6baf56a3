"""studies/sgd_noise.toml: the noise-ball experiment as a spec (cell kind ``sgd_noise``, issue 24).

The spec loads and checks; a bad key is one line, exit 2; its cells are the experiment's cells (the same
pilot and, once the pilot is handed over, the same configuration: the same numbers); a tiny run end to end
gives the figures and Verdict rows; the kind's named measures are the numbers of the saved cell."""
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from minilplr.experiments import runner, sgd_noise
from minilplr.experiments.sgd_noise import cells as sgd_cells
from minilplr.experiments.sgd_noise.summary import DRIFT_MAX, MEASURES, measures, summarise
from minilplr.experiments.study import SpecError, Study, get_kind, load_study
from minilplr.experiments.study.spec import parse_spec
from minilplr.store import load_unit
from minilplr.theory.verdicts import STATUSES, Verdict

from ..helpers import one_line, run_tiny_study

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "studies" / "sgd_noise.toml"


def test_the_spec_loads_and_every_preset_checks():
    st = load_study(SPEC)
    kind = get_kind("sgd_noise")
    assert st.NAME == "sgd_noise_study" and kind.cell.endswith(":study_cell") and kind.pilot_always
    for p, n, steps in (("quick", 64, 400), ("paper", 256, 2000)):
        cfg = st.PRESETS[p]
        assert cfg["model"]["n"] == n and cfg["run"]["steps"] == steps
        assert {d["name"] for d in cfg["diagnostics"]} <= set(kind.measures)
        assert all(d.get("measure") == "sgd_noise" for d in cfg["diagnostics"])
    assert len(st.PRESETS["quick"]["claims"]) == 9 and len(st.PRESETS["quick"]["panels"]) == 3


def test_a_bad_key_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(SPEC.read_text().replace("batch = [8, 32, 128]", "batch = [8, \"32\", 128]"))
    r = subprocess.run([sys.executable, str(ROOT / "scripts/run_all.py"), "--study", str(bad), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert one_line(r.stderr).endswith("grid[0].batch[1]: expected a positive integer, got '32'")
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_a_name_the_kind_does_not_measure_is_refused():
    raw = tomllib.loads(SPEC.read_text())
    raw["diagnostics"].append({"name": "failure_factor"})  # the certificate's: not an SGD cell's number
    with pytest.raises(SpecError, match=r"diagnostics\[10\]\.name: expected one of the kind 'sgd_noise'"):
        parse_spec(raw, "x.toml")


def _capture(monkeypatch):
    """Replace the sweep: record every (folder, function, configurations), answer pilots, stop at the cells."""
    from minilplr import sweep

    class Stop(Exception):
        pass

    asked = {}

    def fake(fn, cfgs, out_dir, folder="cells", **kw):
        asked.setdefault(str(out_dir), {})[folder] = (fn.__name__, list(cfgs.values()))
        if folder.startswith("pilot"):
            return {k: dict(beta=1.0 + c["width"] / 100, lam_min0=0.37 * c["n"] / 3, n=c["n"], rayleigh=1.0)
                    for k, c in cfgs.items()}
        raise Stop

    monkeypatch.setattr(sweep, "run_cells", fake)
    return asked, Stop


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_the_spec_asks_for_exactly_the_experiments_pilot_and_cells(tmp_path, monkeypatch, preset):
    """The cells are pure functions of their configurations, so equal configurations give equal bits."""
    asked, Stop = _capture(monkeypatch)
    st = load_study(SPEC)
    with pytest.raises(Stop):
        sgd_noise.run(runner.experiment_config(sgd_noise, preset, {}), tmp_path / "exp")
    with pytest.raises(Stop):
        st.run(runner.experiment_config(st, preset, {}), tmp_path / "spec")
    e, s = asked[str(tmp_path / "exp")], asked[str(tmp_path / "spec")]
    assert e["pilot"][1] == s["pilots"][1]  # one pilot, the same configuration
    assert e["cells"][0] == "sgd_cell" and s["cells"][0] == "study_cell"
    key = runner.config_hash
    exp = sorted(key(c) for c in e["cells"][1])
    spec = sorted(key(sgd_cells.experiment_config(c)) for c in s["cells"][1])
    assert spec == exp and len(exp) == (10 if preset == "quick" else 30)


# --------------------------------------------------------------------------- a tiny run end to end

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return run_tiny_study(SPEC, tmp_path_factory.mktemp("sgd_study"),
                          model=dict(n=40, width=8, record_every=2, noise_every=3, data_source="offline"),
                          run=dict(steps=8),
                          grid=[dict(batch=[8, 32], c_beta0=[0.3, 1.0], sgd_seed=[0, 1]),
                          dict(batch=[40], c_beta0=[0.3, 1.0], sgd_seed=[0])])


def test_a_tiny_spec_runs_end_to_end_with_figures_and_verdicts(tiny_run):
    st, status, out = tiny_run
    assert status == {"sgd_noise_study": "finished"}
    folder = out / "sgd_noise_study"
    assert len(list((folder / "cells").glob("*.json"))) == 10 and len(list((folder / "pilots").glob("*.json"))) == 1
    for i in range(3):
        assert (folder / f"sgd_noise_study_{i}_lines.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    rows = [ln for ln in report.splitlines() if ln.startswith("| sgd_noise_study |")]
    assert len(rows) == 9
    saved = load_unit(folder, "results")
    verdicts = [Verdict.from_dict(v) for v in saved["verdicts"]]
    assert len(verdicts) == 9 and all(v.status in STATUSES for v in verdicts)
    # the power laws pool the batch-draw seeds (the kind's replicates): none is untestable for "also varying";
    # each is a fit, or untestable because a selected cell's loss still falls (it has no plateau)
    table = saved["table"]
    for v, c in zip(verdicts[1:5], st.PRESETS["quick"]["claims"][1:5]):
        assert "also vary" not in (v.why or ""), v
        sel = [r for r in table if r["grids"] and 0 in r["grids"]
               and all(r["settings"][k] == w for k, w in c["where"].items())]
        falling = [r for r in sel if r["diag"]["drift"] <= DRIFT_MAX]
        assert sel and all(math.isnan(r["diag"]["plateau"]) for r in falling)
        if falling:
            assert v.status == "untestable" and v.why.startswith(f"{len(falling)} of {len(sel)} cells have no "
                                                                 "positive finite plateau"), v
        else:
            assert v.quantity == "a" and math.isfinite(v.measured), v
    assert any(r["diag"]["drift"] <= DRIFT_MAX for r in table)  # the tiny run still falls: the untestable path ran


def test_the_interpolation_row_and_the_plateau_measure_use_one_drift_threshold():
    """The spec's interpolation threshold is the summary's DRIFT_MAX, the line between a plateau and none."""
    claims = load_study(SPEC).PRESETS["paper"]["claims"]
    regime = next(c for c in claims if c["y"] == "drift")
    assert regime["relation"] == "<=" and regime["value"] == DRIFT_MAX
    assert all(c["y"] == "plateau" for c in claims if c["kind"] == "power_law")


def test_the_kinds_measures_are_the_saved_cells_numbers(tiny_run):
    """Every measure from the raw cell: the summary's field of the same name, the derived ones by formula."""
    st, _, out = tiny_run
    folder = out / "sgd_noise_study"
    saved = load_unit(folder, "results")

    checked = 0
    for row in saved["table"]:
        res = load_unit(folder / "cells", row["name"])["result"]
        s = summarise(res, 0.25)
        m = measures(res)
        assert set(m) == set(MEASURES)
        for k in MEASURES:
            if hasattr(s, k):
                assert m[k] == pytest.approx(getattr(s, k), nan_ok=True), k
        rho = np.asarray(res["rho"], float)
        bound0 = res["n"] * res["diag_max"][0] / res["lam_min"][0]
        assert m["rho_over_bound0"] == pytest.approx(np.max(rho) / bound0, rel=1e-12)
        assert m["eta_c_b"] == pytest.approx(res["lr"] * (res["n"] - res["batch"]) / (res["batch"] * (res["n"] - 1)))
        assert m["mu0"] == res["mu0"] and m["beta0"] == res["beta0"]
        q = s.rate
        expect = math.log(q) / math.log(1 - res["lr"] * res["mu0"]) if 0 < q < 1 else float("nan")
        assert m["rate_ratio"] == pytest.approx(expect, nan_ok=True)
        for k in row["diag"]:  # the table's numbers are these
            assert row["diag"][k] == pytest.approx(m[k], nan_ok=True), k
        checked += 1
    assert checked == 10
    # a transient that falls geometrically (q = 0.5 per step): the rate ratio is finite and is the formula's
    res = dict(res, loss=0.5 * 0.5 ** np.asarray(res["record_steps"], float))
    q = summarise(res, 0.25).rate
    assert 0.45 < q < 0.55
    assert measures(res)["rate_ratio"] == pytest.approx(math.log(q) / math.log(1 - res["lr"] * res["mu0"]), rel=1e-12)


def test_a_kind_declaring_measures_needs_its_summary_function_and_known_replicates():
    from minilplr.experiments.study import CellKind

    keys = {"width": ("pos_int", None)}
    with pytest.raises(ValueError, match="^summarise: expected"):
        CellKind(name="x", cell="m:f", keys=keys, measures={"a": "A"})
    with pytest.raises(ValueError, match="^replicates: expected settings of the kind 'x'"):
        CellKind(name="x", cell="m:f", keys=keys, replicates=("draw",))
    with pytest.raises(ValueError, match="^measures: expected names apart"):
        CellKind(name="x", cell="m:f", keys=keys, measures={"lam0": "A"}, summarise="m:g", provides=("lam0",))

