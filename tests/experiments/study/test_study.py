"""A study end to end: cells through the sweep, resume after a kill, the claims on known power laws, the report."""
import math
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minilplr.experiments import runner
from minilplr.experiments.study import load_study
from minilplr.experiments.study.claims import closing_x, judge
from minilplr.store import load_unit
from minilplr.theory.verdicts import fit_power_law

from ...helpers import Killed
from . import kinds_for_tests as K

ROOT = Path(__file__).resolve().parents[3]

SPEC = """
[study]
name = "synthetic"
kind = "test_power"

[model]
c_beta0 = 0.5

[grid]
width = [8, 16, 32, 64, 128]
seed = [0, 1, 2, 3]

[presets.quick.grid]
width = [8, 16, 32, 64, 128]
seed = [0, 1, 2, 3]

[[diagnostics]]
name = "failure_factor"
[[diagnostics]]
name = "lam0"

[[claims]]
kind = "power_law"
x = "width"
y = "failure_factor"
predicted = {predicted}
exclude_largest = true

[[claims]]
kind = "extrapolate"
x = "width"
y = "failure_factor"
target = 1.0
exclude_largest = true

[[claims]]
kind = "held_out"
x = "width"
y = "failure_factor"

[[panels]]
kind = "lines"
x = "width"
y = "failure_factor"
target = 1.0

[[panels]]
kind = "heatmap"
x = "width"
y = "seed"
value = "lam0"
"""


def _study(tmp_path, predicted=-1.2):
    p = tmp_path / "synthetic.toml"
    p.write_text(SPEC.replace("{predicted}", str(predicted)))
    return load_study(p)


def _run(study, out):
    return runner.run_experiments([study.NAME], out=out, studies={study.NAME: study}, progress=False,
                                  log=lambda *a: None)


def test_end_to_end_claims_figures_and_report(tmp_path):
    st = _study(tmp_path)
    K.CALLS.clear()
    assert _run(st, tmp_path / "out") == {"synthetic": "finished"}
    assert len(K.CALLS) == 20
    lrs = {c["width"]: c["lr"] for c in K.CALLS}
    assert lrs[8] == 0.5 / (2.0 + 0.08)  # η = c/β_0 from the pilot
    folder = tmp_path / "out" / "quick" / "synthetic"
    assert len(list((folder / "cells").glob("*.json"))) == 20 and len(list((folder / "pilots").glob("*.json"))) == 20
    assert (folder / "synthetic_0_lines.png").stat().st_size > 0 and (folder / "synthetic_1_heatmap.png").exists()
    report = (tmp_path / "out" / "quick" / "report.md").read_text()
    assert "## synthetic" in report and "![synthetic](synthetic/synthetic_0_lines.png)" in report
    rows = [ln for ln in report.splitlines() if ln.startswith("| synthetic |")]
    assert len(rows) == 3
    verdict = [ln.rstrip(" |").rsplit(" | ", 1)[-1] for ln in rows]  # the last column: status word, why, decide
    assert verdict[0].startswith("holds")  # the planted exponent -1.2 is inside the interval
    assert verdict[1].startswith("untestable")  # an extrapolation, not decided
    assert verdict[2].startswith("holds")  # the held-out width 128 lies on the fitted law
    # a later run of another experiment keeps the study's section (the report never shrinks)
    runner.write_report(tmp_path / "out" / "quick", log=lambda *a: None)
    assert "## synthetic" in (tmp_path / "out" / "quick" / "report.md").read_text()


def test_a_planted_wrong_exponent_fails(tmp_path):
    st = _study(tmp_path, predicted=-0.8)
    _run(st, tmp_path / "out")
    rows = [ln for ln in (tmp_path / "out" / "quick" / "report.md").read_text().splitlines()
            if ln.startswith("| synthetic |")]
    assert rows[0].rstrip(" |").rsplit(" | ", 1)[-1].startswith("**fails**")
    cells = rows[0].split(" | ")  # experiment, claim, measured, threshold, margin, verdict (F finding 6)
    assert cells[3] == "= -0.8" and "excludes the predicted exponent -0.8 by" in cells[5], cells
    assert "bootstrap interval [" in cells[2] and "e+" not in cells[4], cells


def test_the_report_judges_the_saved_table_not_the_stored_verdicts(tmp_path):
    # a study saved by an older minilplr keeps its table; its verdicts are judged by the code that reads it
    st = _study(tmp_path, predicted=-0.8)
    _run(st, tmp_path / "out")
    results = load_unit(tmp_path / "out" / "quick" / "synthetic", "results")
    assert [v["status"] for v in results["verdicts"]] == ["fails", "untestable", "holds"]
    stale = dict(results, verdicts=[dict(v, status="holds") for v in results["verdicts"]])
    assert [v.status for v in st.report(stale)["claims"]] == ["fails", "untestable", "holds"]


def test_resume_after_a_kill_redoes_only_the_missing_cells(tmp_path, monkeypatch):
    st = _study(tmp_path)
    from minilplr.sweep import driver

    real, saved = driver.save_unit, []

    def dying(where, key, payload, **kw):
        if Path(where).name == "cells" and len(saved) == 7:
            raise Killed
        out = real(where, key, payload, **kw)
        if Path(where).name == "cells":
            saved.append(key)
        return out

    monkeypatch.setattr(driver, "save_unit", dying)
    K.CALLS.clear()
    assert _run(st, tmp_path / "out") == {"synthetic": "failed"}  # the runner reports the death, saves nothing more
    assert len(saved) == 7 and len(K.CALLS) == 8  # the eighth ran and died while being saved
    monkeypatch.setattr(driver, "save_unit", real)
    K.CALLS.clear()
    assert _run(st, tmp_path / "out") == {"synthetic": "finished"}
    assert len(K.CALLS) == 13  # only the 20 − 7 missing cells
    ran = {f"width={c['width']},seed={c['seed']}" for c in K.CALLS}
    assert ran.isdisjoint(saved)
    # the same results as a study never killed
    whole = tmp_path / "whole"
    _run(_study(tmp_path), whole)
    a = (tmp_path / "out" / "quick" / "report.md").read_text().split("## Claims")[1]
    b = (whole / "quick" / "report.md").read_text().split("## Claims")[1]
    assert a == b


@pytest.mark.parametrize("a_true", [-1.2, -0.5, 0.7])
def test_fit_and_closing_width_recover_known_power_laws(a_true):
    rng = np.random.default_rng(3)
    x = np.array([64, 128, 256, 512, 1024], float)
    C = 3000.0
    samples = np.array([C * x ** a_true * np.exp(0.03 * rng.standard_normal(x.size)) for _ in range(6)])
    fit = fit_power_law(x, samples)
    lo, hi = fit.interval
    assert lo <= a_true <= hi and hi - lo < 0.1  # within the noise of 3 % per sample, six seeds
    target = 1.0 if a_true < 0 else 1e7
    xs, xlo, xhi = closing_x(fit, target)
    x_true = (target / C) ** (1 / a_true)
    assert xlo <= x_true <= xhi and abs(math.log(xs / x_true)) < 0.2


def test_closing_width_of_a_rising_law_lies_below_the_range():
    x = np.array([10, 20, 40], float)
    fit = fit_power_law(x, np.array([[5.0, 6.0, 7.0], [5.1, 6.2, 6.9]]))  # rising: 1 is reached below x = 10
    xs, lo, hi = closing_x(fit, 1.0)
    assert 0 < lo <= xs <= hi < 10


def _table(widths, a, seeds=4, noise=0.02, other=None):
    rng = np.random.default_rng(0)
    return [dict(name="", status="finished", settings=dict(width=w, seed=s, **(other or {})),
                 diag=dict(ff=100.0 * w ** a * np.exp(noise * rng.standard_normal())))
            for w in widths for s in range(seeds)]


def test_judges_flip_when_the_law_is_planted_wrong():
    good = _table([8, 16, 32, 64], -1.0)
    base = dict(x="width", y="ff", where={}, text="", level=0.95, exclude_largest=False)
    assert judge(dict(base, kind="power_law", below=0.0), good).status == "holds"
    assert judge(dict(base, kind="power_law", above=0.0), good).status == "fails"
    assert judge(dict(base, kind="power_law", expect=[-1.1, -0.9]), good).status == "holds"
    assert judge(dict(base, kind="power_law", expect=[-0.8, -0.6]), good).status == "fails"
    v = judge(dict(base, kind="held_out"), good)
    assert v.status == "holds" and v.details["x"] == [8, 16, 32] and v.details["held_x"] == 64  # 64 not fitted
    assert judge(dict(base, kind="power_law", below=0.0, exclude_largest=True), good).details["x"] == [8, 16, 32]
    kinked = [dict(r, diag=dict(ff=r["diag"]["ff"] * (3.0 if r["settings"]["width"] == 64 else 1.0))) for r in good]
    assert judge(dict(base, kind="held_out"), kinked).status == "fails"  # the law breaks at the held-out width
    flat = [dict(settings=dict(width=w, seed=s), diag=dict(ff=v))  # slopes -1, 0.32 or 1 by which seeds are drawn
            for w, vals in ((8, (1.0, 1.0)), (16, (0.5, 2.0))) for s, v in enumerate(vals)]
    assert judge(dict(base, kind="power_law", below=0.0), flat).status == "untestable"
    mixed = good + _table([8, 16, 32, 64], -1.0, other={"depth": 3})
    v = judge(dict(base, kind="power_law", below=0.0), mixed)
    assert v.status == "untestable" and "depth" in v.why
    thr = dict(kind="threshold", y="ff", where={}, text="", relation="<=", value=5.0, over="every")  # ff in [1.5, 13]
    assert judge(thr, good).status == "fails" and judge(dict(thr, value=20.0), good).status == "holds"
    # F finding 9: one cell without the value does not make the claim untestable; it is judged on the others
    holed = [dict(r, diag=dict(ff=math.nan if r["diag"]["ff"] == max(q["diag"]["ff"] for q in good) else r["diag"]["ff"]))
             for r in good]
    v = judge(dict(thr, value=20.0), holed)
    assert v.status == "holds" and v.why.startswith(f"1 of {len(good)} cells have no finite ff") \
        and v.rests_on == f"{len(good) - 1} of {len(good)} cells", (v.why, v.rests_on)
    assert v.measured == sorted(r["diag"]["ff"] for r in good)[-2]  # the worst measured cell decides
    none = [dict(r, diag=dict(ff=math.nan)) for r in good]
    v = judge(thr, none)
    assert v.status == "untestable" and f"{len(good)} of {len(good)} cells have no finite ff" in v.why


def test_gd_kind_on_a_users_npz_through_run_all(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    np.savez(tmp_path / "mine.npz", X=X, y=np.sign(X[:, 0]))
    (tmp_path / "mine.toml").write_text(
        '[study]\nname = "mine"\nkind = "gd"\ndata = "mine.npz"\n[model]\ndepth = 2\ndtype = "float64"\n'
        'c_beta0 = 0.5\n[grid]\nwidth = [8, 16]\n[run]\nsteps = 6\ndiag_every = 3\n'
        '[[diagnostics]]\nname = "failure_factor"\n[[diagnostics]]\nname = "loss_decrease"\n'
        '[[claims]]\nkind = "threshold"\ny = "loss_decrease"\nrelation = ">="\nvalue = 1.0\n')
    r = subprocess.run([sys.executable, str(ROOT / "scripts/run_all.py"), "--study", str(tmp_path / "mine.toml"),
                        "--out", str(tmp_path / "out"), "--no-progress"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rep = (tmp_path / "out" / "quick" / "report.md").read_text()
    row = [ln for ln in rep.splitlines() if ln.startswith("| mine |")]
    assert len(row) == 1 and row[0].endswith("| holds |"), rep  # GD on 12 points lowers the loss
    assert "mine.npz (N = 12, D = 3, K = 1)" in rep
    # the file's content is part of every cell's and pilot's configuration: other data under the same name is
    # another study (recomputed), never mixed with the saved cells (a hostile user's kill, edit, resume)
    before = json.loads((tmp_path / "out" / "quick" / "mine" / "results.json").read_text())
    np.savez(tmp_path / "mine.npz", X=2 * X, y=np.sign(X[:, 0]))
    r = subprocess.run([sys.executable, str(ROOT / "scripts/run_all.py"), "--study", str(tmp_path / "mine.toml"),
                        "--out", str(tmp_path / "out"), "--no-progress"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "reusing finished results" not in r.stdout, r.stdout
    after = json.loads((tmp_path / "out" / "quick" / "mine" / "results.json").read_text())
    assert before["data"]["config"]["data_sha256"] != after["data"]["config"]["data_sha256"]


def test_the_map_spec_asks_for_exactly_the_maps_cells(tmp_path, monkeypatch):
    """studies/lplr_map.toml builds the same pilot and cell configurations as the lplr_map experiment (so the same
    bits: cells are pure functions of their configuration); the cells are captured, not run."""
    from minilplr import sweep
    from minilplr.experiments import lplr_map

    class Stop(Exception):
        pass

    asked = {}

    def fake(fn, cells, out_dir, folder="cells", **kw):
        asked.setdefault(str(out_dir), {})[folder] = (fn.__name__, {runner.config_hash(c) for c in cells.values()})
        if folder == "pilots":
            return {k: dict(beta=1.0 + c["width"] / 100, rayleigh=1.0, matvecs=6, converged=True, residual=0.0,
                            tol=1e-6) for k, c in cells.items()}
        raise Stop

    monkeypatch.setattr(sweep, "run_cells", fake)
    st = load_study(ROOT / "studies" / "lplr_map.toml")
    for preset in ("quick", "paper"):
        asked.clear()
        with pytest.raises(Stop):
            lplr_map.run(runner.experiment_config(lplr_map, preset, {}), tmp_path / "map")
        with pytest.raises(Stop):
            st.run(runner.experiment_config(st, preset, {}), tmp_path / "spec")
        a, b = asked[str(tmp_path / "map")], asked[str(tmp_path / "spec")]
        assert a == b and len(a["cells"][1]) == (24 if preset == "quick" else 36)
