"""Power tests of the verdicts of Fig. 3, 4, 5, 5b and the linear experiments (issue 20): each plants its flip.

Every judge below is fed synthetic saved results built so that the verdict
must come out one way, then the same results moved just across the line
(a curve that bends, a knob that matters, a run too short, a width trend
broken at one width, too few seeds) so that it must come out the other.
"""
import math

import numpy as np
import pytest

from minilplr.experiments import fig3_resnet_sgd as fig3
from minilplr.experiments import fig4_initialisation as fig4
from minilplr.experiments import fig5_width_ablation as fig5
from minilplr.experiments import linear_imbalance, linear_schedules
from minilplr.theory import verdicts as V

SPE = 20  # steps per epoch of the synthetic SGD runs


def _seed(loss, seed=0, g2=None, lr=None):
    T = len(loss)
    return dict(seed=seed, loss=np.asarray(loss, float), steps_per_epoch=SPE,
                grad_norm_sq=np.asarray(g2 if g2 is not None else loss, float),
                lr=np.asarray(lr if lr is not None else np.full(T, 0.05), float))


def _noisy(curve, sd, seed):
    return curve * np.exp(np.random.default_rng(seed).normal(0, sd, curve.size))


# --------------------------------------------------------------------------- Fig. 3


def test_fig3_linear_verdict_holds_on_geometric_and_fails_when_the_knob_matters():
    """A geometric loss with small noise holds at every EMA factor; the same curve with mini-batch noise large
    enough that EMA 0.9 leaves R² < 0.95 (while 0.98 smooths it above) fails, with the worst seed and factor named."""
    t = np.arange(300)
    clean = [_seed(_noisy(2 * 0.985 ** t, 0.05, s), s) for s in range(3)]
    v = fig3.linear_verdict(clean)
    assert v.status == "holds" and v.margin > 0 and v.threshold == V.R2_LINEAR
    noisy = [_seed(_noisy(2 * 0.985 ** t, 0.05, 0), 0), _seed(_noisy(2 * 0.99 ** t, 1.0, 1), 1)]
    r2 = [fig3.fit_linear_rate(fig3.ema(noisy[1]["loss"], b), 0.0)["r2"] for b in (0.9, 0.98)]
    assert r2[0] < V.R2_LINEAR <= r2[1]  # the plant: the verdict would pass at the old knob 0.98
    v = fig3.linear_verdict(noisy)
    assert v.status == "fails" and v.margin < 0 and "seed 1, EMA 0.9" in v.rests_on


def test_fig3_linear_verdict_is_untestable_under_a_decade():
    """A loss that fell ×5 over the run is untestable (the decade rule), however straight."""
    t = np.arange(200)
    v = fig3.linear_verdict([_seed(2 * (0.2 ** (1 / 199)) ** t)])
    assert v.status == "untestable" and "decade" in v.why


def test_fig3_cosine_verdict_flips_when_the_rate_falls():
    """Epoch means falling at one rate hold; a rate that falls with a cosine step over the second half fails."""
    t = np.arange(300)
    v = fig3.cosine_verdict([_seed(2 * 0.985 ** t)])
    assert v.status == "holds" and v.measured == pytest.approx(1.0, abs=1e-9)
    eta = 0.5 * (1 + np.cos(np.pi * t / 300))  # the cosine schedule's shape
    slowing = 2 * np.exp(-0.03 * np.cumsum(eta))  # rate ∝ η_t
    v = fig3.cosine_verdict([_seed(slowing, lr=0.05 * eta)])
    assert v.status == "fails" and v.measured < 1 / (1 + fig3.DELTA)
    # the rate halves in the first half and stays put in the second: the second half is one rate (holds)
    rate = np.where(t < 120, 0.04, 0.02)  # epochs 7–14, the judged half, start at step 140
    v = fig3.cosine_verdict([_seed(2 * np.exp(-np.cumsum(rate)))])
    assert v.status == "holds" and v.measured == pytest.approx(1.0, abs=1e-6)


def test_fig3_pl_verdict_fits_only_above_the_noise_floor():
    """‖g‖² = gap² + noise: the full curve, floor included, has a slope near 1 and would pass; above 4× the
    floor the slope is 2 and the row fails.  A plain ‖g‖² ∝ gap with a small floor holds.  Everything below
    the floor is untestable."""
    t = np.arange(600)
    gap = 3 * 0.99 ** t
    loss = 0.01 + gap
    floor = np.full(t.size, 1e-2)
    quad = _seed(loss, g2=gap ** 2 + floor)
    assert fig3.fit_loglog_slope(fig3.ema(loss, 0.95) - fig3.ema(loss, 0.95).min(), fig3.ema(quad["grad_norm_sq"], 0.95))["slope"] < 1.1
    v = fig3.pl_verdict([quad])
    assert v.status == "fails" and v.measured == pytest.approx(2.0, abs=0.15)
    lin = _seed(loss, g2=gap + floor)
    v = fig3.pl_verdict([lin])
    assert v.status == "holds" and v.measured == pytest.approx(1.0, abs=0.1)
    flat = _seed(loss, g2=np.full(t.size, 1e-3))
    assert fig3.pl_verdict([flat]).status == "untestable"


def test_fig3_probe_verdict_is_vacuous_below_p_and_a_check_above():
    """N·K < P: vacuous, naming the probe that could fail; N·K ≥ P: holds with a resolved λ_min, fails with an
    unresolved one."""
    r = dict(seed=0, n_params=1000, diag=dict(lam_min=np.array([2.0, 1.0]), lam_max=np.array([50.0, 40.0])))
    v = fig3.probe_verdict([r], probe=25, classes=5)
    assert v.status == "vacuous" and "125" in v.why and "200" in v.decide
    assert fig3.probe_verdict([r], probe=200, classes=5).status == "holds"
    bad = dict(r, diag=dict(lam_min=np.array([2.0, np.nan]), lam_max=np.array([50.0, 40.0])))
    v = fig3.probe_verdict([bad], probe=200, classes=5)
    assert v.status == "fails" or v.margin == 0  # unresolved counts as λ_min = 0: never a clean "holds"
    assert not (v.status == "holds" and v.margin > 0)


# --------------------------------------------------------------------------- Fig. 4


def test_fig4_linear_verdict_uses_the_decade_rule_and_the_shared_threshold():
    """Enhanced He's ×1.067 loss is untestable (R² 1 notwithstanding); a decade-long geometric curve holds; a
    decade-long power law fails R² ≥ 0.95."""
    t = np.arange(250)
    short = 0.5 * (1 / 1.067) ** (t / 249)
    assert fig4.linear_verdict("enhanced_he", short, fig4.fit_linear_rate(short, 0.0)).status == "untestable"
    geo = 0.6 * 0.98 ** t
    v = fig4.linear_verdict("he", geo, fig4.fit_linear_rate(geo, 0.0))
    assert v.status == "holds" and v.threshold == V.R2_LINEAR
    power = 0.6 * (1 + t) ** -1.0
    v = fig4.linear_verdict("he", power, fig4.fit_linear_rate(power, 0.0))
    assert v.status == "fails" and v.measured < V.R2_LINEAR


def test_fig4_slower_verdict_flips_with_the_rates():
    t = np.arange(100)
    runs = {k: dict(history=dict(loss=0.5 * q ** t)) for k, q in (("he", 0.98), ("enhanced_he", 0.999))}
    fits = {k: fig4.fit_linear_rate(r["history"]["loss"], 0.0) for k, r in runs.items()}
    assert fig4.slower_verdict(runs, fits).status == "holds"
    fits = {"he": fits["enhanced_he"], "enhanced_he": fits["he"]}
    assert fig4.slower_verdict(runs, fits).status == "fails"


# --------------------------------------------------------------------------- Fig. 5 and 5b


def _rows(widths, finals, drifts, finals_eb=None):
    rows = []
    for i, (w, f, d) in enumerate(zip(widths, finals, drifts)):
        r = dict(width=w, final_loss=f, drift=d, lr=1e-3)
        if finals_eb is not None:
            r.update(final_loss_eta_beta=finals_eb[i], beta0=10.0 * w, lr_eta_beta=0.5 / (10.0 * w))
        rows.append(r)
    return rows


def test_fig5_width_verdicts_use_all_widths_and_flip():
    """Six widths, losses falling but for one swap: Spearman holds (ρ = −0.94) where 'monotone' fails; with
    two swaps it fails (no undisclosed fallback); the fixed-η·β_0 row is judged on its own numbers."""
    w = [64, 128, 256, 512, 1024, 2048]
    one_swap = [0.05, 0.04, 0.045, 0.03, 0.02, 0.01]
    v = fig5.width_verdicts(_rows(w, one_swap, one_swap[::-1], finals_eb=one_swap[::-1]))
    assert v[0].status == "holds" and v[0].details["n"] == 6 and "strictly monotone: fails" in v[0].rests_on
    assert v[1].status == "fails"  # at fixed η·β_0 the loss rises with width
    assert v[2].status == "fails"  # the drift rises
    mixed = [0.05, 0.03, 0.045, 0.02, 0.04, 0.01]
    assert fig5.width_verdicts(_rows(w, mixed, one_swap))[0].status == "fails"
    assert fig5.width_verdicts(_rows(w, one_swap, one_swap))[1].status == "untestable"  # no fixed-η·β_0 runs


def _kernel_rows(widths, a, seeds, seed=0):
    rng = np.random.default_rng(seed)
    # err² = c·H^a times a heavy-tailed factor of mean 1 (a χ²₁ over 1)
    return [dict(width=w, kernel_err0=list(np.sqrt(4.0 * w ** a * rng.chisquare(1, seeds)))) for w in widths]


def test_fig5b_power_law_holds_at_minus_one_and_flips():
    """E[err²] ∝ H^−1 with 64 seeds: the interval contains −1 and excludes −2/3; planted at −2/3 it fails;
    with 3 seeds the interval is too wide to tell (untestable, saying how many seeds would)."""
    w = [64, 128, 256, 512, 1024, 2048]
    # a 95 % interval: seeded draws (at seed 0 of this generator the interval [-1.26, -1.005] just misses −1,
    # as one draw in twenty may)
    v = fig5.kernel_verdict(_kernel_rows(w, -1.0, 64, seed=2))
    assert v.status == "holds", v
    assert fig5.kernel_verdict(_kernel_rows(w, -2 / 3, 64)).status == "fails"
    few = fig5.kernel_verdict(_kernel_rows(w[:3], -1.0, 3, seed=3))
    assert few.status in ("untestable", "fails") and few.status != "holds"


# --------------------------------------------------------------------------- linear experiments


def test_linear_schedules_fastest_verdict_flips():
    v = linear_schedules.fastest_verdict("adaptive is fastest", {"adaptive": 14.0, "constant": 28.0, "armijo": 26.0},
                                         "iterations")
    assert v.status == "holds" and v.quantity == "adaptive/armijo" and v.margin == pytest.approx(1 - 14 / 26)
    v = linear_schedules.fastest_verdict("adaptive is fastest", {"adaptive": 27.0, "constant": 28.0, "armijo": 26.0},
                                         "iterations")
    assert v.status == "fails"
    assert linear_schedules.fastest_verdict("x", {"adaptive": 14.0, "constant": math.nan}, "it").status == "untestable"


def _imbalance_run(schedule="adaptive", **over):
    T = 5
    r = dict(label=f"Gaussian, {schedule}", schedule=schedule, seed=0, steps=T, max_rel_drift=0.01,
             drift_step=np.full(T + 1, 0.5), drift_step_bound=np.ones(T + 1), drift=np.linspace(0, 1, T + 1),
             drift_bound=np.linspace(0, 2, T + 1), min_mu_ratio=0.9, min_pl_margin=1.05,
             gap=0.5 ** np.arange(T + 1), rate_bound=np.full(T + 1, 0.6), max_sigma2_max_ratio=1.0,
             paper_sigma_bound=1.105, max_lr_K=0.9, decrease_when_lrK_below_2=True)
    r.update(over)
    return r


def test_linear_imbalance_verdicts_flip_on_the_worst_run():
    """Every row holds on a run inside every bound; one run over the per-step bound, one contraction over its
    bound, one σ²_max over α₂e^√η₀ each flip their row to fails, with that run named."""
    good = linear_imbalance.imbalance_verdicts([_imbalance_run()], 0.05, 0.5)
    assert [v.status for v in good] == ["holds"] * 7 + ["vacuous"]
    bad = _imbalance_run(seed=3, drift_step=np.full(6, 1.2), gap=0.7 ** np.arange(6), max_sigma2_max_ratio=1.3)
    vs = linear_imbalance.imbalance_verdicts([_imbalance_run(), bad], 0.05, 0.5)
    assert vs[1].status == "fails" and vs[1].measured == pytest.approx(1.2) and "seed 3" in vs[1].rests_on
    assert vs[5].status == "fails" and vs[5].measured == pytest.approx(0.7 / 0.6)
    assert vs[6].status == "fails" and vs[6].measured == pytest.approx(1.3 / 1.105)
    assert vs[0].status == vs[3].status == vs[4].status == "holds"
