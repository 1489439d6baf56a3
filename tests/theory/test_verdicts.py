"""The verdict vocabulary and its generic judges (minilplr.theory.verdicts), each with a case that flips it.

* a :class:`Verdict` is JSON data and its margin's sign says which side of the threshold it is on;
* every judge flips where it must: a number just over / just under its threshold, a run too short,
  a trend with one step the wrong way, too few points to rank, an interval that excludes the truth;
* the power-law bootstrap covers the exponent it was planted with, and its prediction interval
  contains the planted curve.
"""
import json
import math

import numpy as np
import pytest

from minilplr.theory import verdicts as V

from ..helpers import assert_theory_subtable_is_true


# --------------------------------------------------------------------------- the verdict


def test_verdict_is_json_data_and_round_trips():
    v = V.compare("R² of the fit is at least 0.95", 0.96, 0.95, "≥", quantity="R²", rests_on="steps 50–99")
    back = V.Verdict.from_dict(json.loads(json.dumps(v.to_dict())))
    assert back == v and back.marginal == v.marginal
    iv = V.within("slope in the window", -0.5, -0.75, -0.3, quantity="slope")
    assert V.Verdict.from_dict(json.loads(json.dumps(iv.to_dict()))) == iv
    with pytest.raises(ValueError, match="status"):
        V.Verdict("a claim", "yes")
    with pytest.raises(ValueError, match="claim"):
        V.Verdict("", "holds")


def test_margin_sign_and_marginal_flag_flip_at_the_threshold():
    """A number just over a threshold holds (small positive margin, marginal); just under fails (negative)."""
    above = V.compare("R² ≥ 0.95", 0.951, 0.95, "≥", quantity="R²")
    below = V.compare("R² ≥ 0.95", 0.949, 0.95, "≥", quantity="R²")
    assert above.status == "holds" and above.margin == pytest.approx(0.001 / 0.95) and above.marginal
    assert below.status == "fails" and below.margin == pytest.approx(-0.001 / 0.95) and below.marginal
    far = V.compare("R² ≥ 0.5", 0.95, 0.5, "≥")
    assert far.status == "holds" and far.margin == pytest.approx(0.9) and not far.marginal
    le = V.compare("drift ≤ R", 0.174, 1880.0, "≤")
    assert le.status == "holds" and le.margin == pytest.approx((1880 - 0.174) / 1880)
    assert V.compare("drift ≤ R", 2000.0, 1880.0, "<=").status == "fails"
    # 10 % of the threshold is the line for "marginal"
    assert V.compare("x ≥ 1", 1.0999, 1.0, "≥").marginal and not V.compare("x ≥ 1", 1.1001, 1.0, "≥").marginal


def test_a_threshold_at_zero_needs_a_scale_and_a_missing_number_is_untestable():
    with pytest.raises(ValueError, match="scale"):
        V.compare("μ_cert > 0", 0.3, 0.0, "≥")
    v = V.compare("μ_cert > 0", 0.3, 0.0, "≥", scale=2.0)
    assert v.status == "holds" and v.margin == pytest.approx(0.15)
    nan = V.compare("μ_cert > 0", float("nan"), 0.0, "≥", scale=2.0, missing="λ₀ unresolved")
    assert nan.status == "untestable" and nan.why == "λ₀ unresolved" and nan.margin is None
    with pytest.raises(ValueError, match="relation"):
        V.compare("x", 1.0, 2.0, "==")


def test_interval_margin_is_in_half_widths_and_flips_at_the_ends():
    assert V.within("c", -0.525, -0.75, -0.3).margin == pytest.approx(1.0)  # the centre
    inside = V.within("c", -0.31, -0.75, -0.3)
    outside = V.within("c", -0.29, -0.75, -0.3)
    assert inside.status == "holds" and inside.margin == pytest.approx(0.01 / 0.225) and inside.marginal
    assert outside.status == "fails" and outside.margin == pytest.approx(-0.01 / 0.225)
    with pytest.raises(ValueError, match="lo, hi"):
        V.within("c", 0.0, 1.0, -1.0)


def test_identity_is_a_solver_check_and_fails_beyond_its_tolerance():
    ok = V.identity("(6)–(8): rᵀΘr ≥ λ_min‖r‖² (Rayleigh quotient)", 1e-13, 1e-10)
    bad = V.identity("(6)–(8): rᵀΘr ≥ λ_min‖r‖² (Rayleigh quotient)", 1e-8, 1e-10)
    assert ok.status == "identity" and ok.holds is True and "solver" in ok.why
    assert bad.status == "fails" and bad.holds is False and bad.margin < 0


def test_vacuous_and_untestable_must_say_why():
    with pytest.raises(ValueError, match="why"):
        V.vacuous("a claim", "")
    with pytest.raises(ValueError, match="decide"):
        V.untestable("a claim", "too short", "")
    v = V.vacuous("bound", "the envelope never drops below 0.99·L_0", "the per-step contraction")
    assert v.status == "vacuous" and v.holds is None


# --------------------------------------------------------------------------- too short


def test_too_short_flips_at_a_decade_and_says_how_many_steps_would_decide():
    t = np.arange(200)
    rate = math.log(9.9) / 199  # falls ×9.9 over the run
    short = V.too_short("linear", np.exp(-rate * t))
    assert short is not None and short.status == "untestable" and short.measured == pytest.approx(9.9)
    # a geometric curve needs log(10/9.9)/rate more steps, and the verdict says so
    assert f"about {math.ceil(math.log(10 / 9.9) / rate)} more steps" in short.decide
    assert V.too_short("linear", np.exp(-math.log(10.1) / 199 * t)) is None
    assert V.too_short("linear", np.exp(-rate * t), factor=9.8) is None
    stalled = V.too_short("linear", np.r_[np.linspace(1.0, 0.5, 50), np.full(50, 0.5)])
    assert stalled.status == "untestable" and "stopped falling" in stalled.decide


# --------------------------------------------------------------------------- monotone, rank correlation


def test_monotone_flips_with_one_step_the_wrong_way():
    x = [64, 128, 256, 512, 1024, 2048]
    down = V.monotone("wider is lower", x, [6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    assert down.status == "holds" and down.margin == pytest.approx(1.0)
    up = V.monotone("wider is lower", x, [6.0, 5.0, 4.0, 4.5, 2.0, 1.0])
    assert up.status == "fails" and up.margin < 0 and "4 → 4.5" in up.rests_on
    assert V.monotone("wider is higher", x, [1, 2, 3, 4, 5, 6], direction="increasing").status == "holds"
    assert V.monotone("too few", [1, 2], [2, 1]).status == "untestable"


def test_spearman_critical_values_match_the_exact_tables():
    """One-sided α = 0.05 critical ρ_s (exact permutation distribution; Zar's table: 0.900, 0.829, 0.714, 0.643)."""
    assert [round(V.critical_spearman(n), 3) for n in (5, 6, 7, 8)] == [0.9, 0.829, 0.714, 0.643]
    assert V.critical_spearman(4) == pytest.approx(1.0) and V.critical_spearman(3) == math.inf
    assert V.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_rank_correlation_flips_at_its_critical_value_and_refuses_three_points():
    x = [64, 128, 256, 512, 1024, 2048]
    perfect = V.rank_correlation("wider is lower", x, [6, 5, 4, 3, 2, 1])
    assert perfect.status == "holds" and perfect.details["p"] == pytest.approx(1 / 720)
    # n = 6: ρ_s = 1 − Σd²/35 and the critical value 0.829 is Σd² = 6.  Two adjacent swaps (Σd² = 4, 0.886)
    # hold; one swap two apart (Σd² = 8, 0.771) fails, with p just over 0.05
    two = V.rank_correlation("wider is lower", x, [5, 6, 3, 4, 2, 1])
    far = V.rank_correlation("wider is lower", x, [4, 5, 6, 3, 2, 1])
    assert two.status == "holds" and two.measured == pytest.approx(1 - 4 / 35)
    assert far.status == "fails" and far.measured == pytest.approx(1 - 8 / 35) and far.margin < 0
    assert far.details["p"] > 0.05 >= two.details["p"]
    three = V.rank_correlation("wider is lower", [1, 2, 3], [3, 2, 1])
    assert three.status == "untestable" and "4 points" in three.decide
    fixed = V.rank_correlation("wider is lower", x, [4, 5, 6, 3, 2, 1], threshold=0.75)
    assert fixed.status == "holds" and "caller" in fixed.rests_on


# --------------------------------------------------------------------------- power laws over seeds


def _lognormal_samples(a, xs, seeds, sigma, rng):
    """``y = x^a · exp(σ z − σ²/2)``: E[y] = x^a exactly."""
    return [np.asarray(x, float) ** a * np.exp(sigma * rng.standard_normal(seeds) - sigma ** 2 / 2) for x in xs]


def test_power_law_fit_recovers_the_planted_exponent_and_predicts_it():
    xs = [64, 128, 256, 512, 1024, 2048]
    noiseless = V.fit_power_law(xs, [[3.0 * x ** -1.0] * 4 for x in xs])
    assert noiseless.a == pytest.approx(-1.0) and math.exp(noiseless.log_c) == pytest.approx(3.0)
    assert noiseless.interval == pytest.approx((-1.0, -1.0))
    skewed = V.fit_power_law(xs, [np.array([1.0, 1.0, 1.0, 10.0]) * x ** -0.5 for x in xs])  # heavy-tailed seeds
    assert skewed.a == pytest.approx(-0.5) and math.exp(skewed.log_c) == pytest.approx(3.25)  # E[y], not the median
    y, lo, hi = noiseless.predict([4096, 8192])
    np.testing.assert_allclose(y, 3.0 / np.array([4096, 8192]))
    np.testing.assert_allclose([lo, hi], [y, y])
    rng = np.random.default_rng(0)
    fit = V.fit_power_law(xs, _lognormal_samples(-1.0, xs, 16, 0.5, rng))
    lo, hi = fit.interval
    assert lo < -1.0 < hi and hi - lo < 0.3
    y, ylo, yhi = fit.predict(4096)
    assert ylo < 4096.0 ** -1 < yhi  # the extrapolation's interval contains the planted curve
    with pytest.raises(ValueError, match="x"):
        V.fit_power_law([1, 1, 2], [[1], [1], [1]])


def test_power_law_interval_covers_the_planted_exponent_at_its_level():
    """Over 40 planted data sets the 90 % interval contains a = −1 in 30 to 40 of them (binomial: 36 expected)."""
    rng = np.random.default_rng(1)
    xs = [64, 256, 1024]
    hits = sum(lo <= -1.0 <= hi for lo, hi in
               (V.fit_power_law(xs, _lognormal_samples(-1.0, xs, 16, 0.4, rng), level=0.9, n_boot=400).interval
                for _ in range(40)))
    assert 30 <= hits <= 40


def test_power_law_interval_covers_at_its_level_with_few_seeds():
    """F's finding 1: with 2, 3, 4, 8 seeds the nominal 95 % interval must cover a = −1 in ≥ 0.95 − 3 SE of fits.

    60 planted data sets per seed count (lognormal noise, σ cycling 0.1, 0.3, 1.0), fixed generator: the
    binomial SE of a 95 % coverage over 60 fits is 0.028, so the bar is 0.866.  The raw percentile bootstrap
    (small_sample_factor ≡ 1) covered 0.66 / 0.81 / 0.85 at 2 / 3 / 4 seeds (200 fits each) and fails here.
    """
    rng = np.random.default_rng(7)
    xs = [16, 32, 64]
    n = 60
    bar = 0.95 - 3 * math.sqrt(0.95 * 0.05 / n)
    for m in (2, 3, 4, 8):
        hits = 0
        for r in range(n):
            lo, hi = V.fit_power_law(xs, _lognormal_samples(-1.0, xs, m, (0.1, 0.3, 1.0)[r % 3], rng),
                                     n_boot=200, seed=r).interval
            hits += lo <= -1.0 <= hi
        assert hits / n >= bar, (m, hits / n, bar)
    assert V.small_sample_factor(2, 0.95) == pytest.approx(math.sqrt(2) * 12.7062 / 1.95996, rel=1e-4)
    assert V.small_sample_factor(1, 0.95) == 1.0


def test_power_law_exponent_flips_holds_fails_untestable():
    xs = [64, 128, 256, 512, 1024, 2048]
    rng = np.random.default_rng(2)
    minus1 = V.fit_power_law(xs, _lognormal_samples(-1.0, xs, 16, 0.5, rng))
    held = V.power_law_exponent("E[err²] ∝ H^−1", minus1, -1.0, -2 / 3)
    assert held.status == "holds" and 0 < held.margin <= 1
    # an interval that excludes the truth: the data follow −2/3, the claim says −1
    two_thirds = V.fit_power_law(xs, _lognormal_samples(-2 / 3, xs, 16, 0.5, rng))
    failed = V.power_law_exponent("E[err²] ∝ H^−1", two_thirds, -1.0, -2 / 3)
    assert failed.status == "fails" and failed.margin < 0
    # F finding 6: the threshold column shows what a is compared with, the margin is a distance over |p − alt|
    lo, hi = two_thirds.interval
    assert failed.threshold == -1.0 and failed.relation == "=" and f"[{V.fmt(lo)}, {V.fmt(hi)}]" in failed.rests_on
    assert failed.margin == pytest.approx((lo - -1.0) / -(1 / 3)) and "excludes the predicted exponent" in failed.why
    cells = V.render_row(failed).split(" | ")
    assert cells[2] == f"= {V.fmt(-1.0)} (alt. {V.fmt(-2 / 3)})", cells
    assert "by " + V.fmt(lo + 1.0) in failed.why
    # three seeds of heavy noise: the interval holds both −1 and −2/3: untestable, and says how many seeds would do
    few = V.fit_power_law(xs[:3], _lognormal_samples(-1.0, xs[:3], 3, 1.5, rng))
    undecided = V.power_law_exponent("E[err²] ∝ H^−1", few, -1.0, -2 / 3)
    assert undecided.status == "untestable" and "seeds" in undecided.decide
    assert V.power_law_exponent("E[err²] ∝ H^−1", minus1, -1.0).status == "holds"


def test_power_law_exponent_without_spread_is_untestable():
    """Review item 2: one seed per x gives a zero-width interval; it used to fail (margin −inf) or hold (margin 1)."""
    xs = [64, 128, 256, 512]
    one = V.fit_power_law(xs, [[1 / 64], [1 / 128], [1 / 256], [1.1 / 512]])  # a = −0.959 from one seed each
    assert one.interval[0] == one.interval[1] == pytest.approx(one.a)
    v = V.power_law_exponent("a = −1", one, -1.0, -2 / 3)
    assert v.status == "untestable" and "at least 2" in v.decide and "1/1/1/1 seeds" in v.why
    exact = V.fit_power_law(xs, [[x ** -1.0] for x in xs])  # the old "holds, margin 1" case
    assert V.power_law_exponent("a = −1", exact, -1.0).status == "untestable"
    mixed = V.fit_power_law(xs, [[1 / 64, 1.2 / 64], [1 / 128], [1 / 256, 0.9 / 256], [1 / 512, 1.1 / 512]])
    assert V.power_law_exponent("a = −1", mixed, -1.0).status == "untestable"  # one x with one seed
    same = V.fit_power_law(xs, [[x ** -1.0] * 3 for x in xs])  # seeds that agree exactly: no spread either
    u = V.power_law_exponent("a = −1", same, -1.0)
    assert u.status == "untestable" and "zero width" in u.why
    rng = np.random.default_rng(3)  # two seeds with spread: judged
    two = V.fit_power_law(xs, _lognormal_samples(-1.0, xs, 2, 0.05, rng))
    assert V.power_law_exponent("a = −1", two, -1.0).status in ("holds", "fails")


# --------------------------------------------------------------------------- the table


def test_render_row_has_every_column_and_flags_the_marginal():
    v = V.compare("R² ≥ 0.95", 0.951, 0.95, "≥", quantity="R²", rests_on="a | b")
    row = V.render_row(v, experiment="fig1")
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert cells[0] == "fig1" and cells[1] == "R² ≥ 0.95" and "R² = 0.951" in cells[2] and "a \\| b" in cells[2]
    assert cells[3] == "≥ 0.95" and "(marginal)" in cells[4] and cells[5] == "holds"
    assert V.TABLE_HEADER.splitlines()[0].count("|") == row.replace("\\|", "").count("|") == 7
    f = V.render_row(V.compare("R² ≥ 0.95", 0.5, 0.95, "≥"))
    assert "**fails**" in f and "(marginal)" not in f
    u = V.render_row(V.untestable("linear", "the gap fell ×3", "a run of 300 steps"))
    assert "untestable: the gap fell ×3; decide: a run of 300 steps" in u


# --------------------------------------------------------------------------- THEORY.md's rows for this section


def test_this_sections_table_is_true():
    """docs/THEORY.md, "Verdicts with power": every row's function resolves and its test exists and calls it.

    The same checks as tests/test_theory_table.py, on the table that closes the section (that file reads only
    the table under "## Equation → function → test").
    """
    assert_theory_subtable_is_true("### Equation → function → test: verdicts with power", min_rows=15)


# --------------------------------------------------------------------------- worst case over settings (V2)


def test_worst_case_is_the_part_nearest_to_flipping_and_flips_with_one_part():
    """Three seeds holding with margins 0.3, 0.02, 0.5: the row holds with margin 0.02, names that seed and is
    marginal; one part failing makes the row fail (with that part's margin); an untestable part outranks holds."""
    parts = [V.compare("R² ≥ 0.95", x, V.R2_LINEAR, "≥", quantity="R²") for x in (0.95 * 1.3, 0.95 * 1.02, 0.95 * 1.5)]
    v = V.worst_case("linear for every seed", parts, labels=["seed 0", "seed 1", "seed 2"])
    assert v.status == "holds" and v.margin == pytest.approx(0.02) and v.marginal and "seed 1" in v.rests_on
    assert v.details["statuses"] == ["holds"] * 3
    bad = parts + [V.compare("R² ≥ 0.95", 0.9, V.R2_LINEAR, "≥")]
    v = V.worst_case("linear for every seed", bad, labels=["a", "b", "c", "d"])
    assert v.status == "fails" and v.margin == pytest.approx((0.9 - 0.95) / 0.95) and "d" in v.rests_on
    short = V.too_short("linear", [1.0, 0.5])
    assert V.worst_case("linear", parts + [short]).status == "untestable"
    with pytest.raises(ValueError, match="labels"):
        V.worst_case("x", parts, labels=["one"])
    with pytest.raises(ValueError, match="verdicts"):
        V.worst_case("x", [])
