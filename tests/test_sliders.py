"""The interactive figures (``docs/assignments/sliders.py``), at the level of the functions the sliders call.

What each slider is there to teach is checked as a fact about the numbers:
moving the width puts the measured GD loss onto the kernel regime of ``Θ_0``;
every ``η`` keeps it under Theorem 5.4's envelope; only the true ``L*`` gives
the PL plot its slope of 1. The widgets themselves are built when ipywidgets
is installed (the ``notebooks`` extra), else that one test skips.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "assignments"))

import sliders  # noqa: E402
from minilplr.theory.dynamics import pl_envelope  # noqa: E402


STEPS = 100  # the notebook draws 300; 100 show the same and cost a third


def _kernel_gap(c):
    """The largest |log(kernel / measured)| after step 0: how far the kernel regime is from the run."""
    return float(np.max(np.abs(np.log(c["kernel"][1:] / c["measured"][1:]))))


@pytest.fixture(scope="module")
def narrow_wide():
    return sliders.envelope_curves(16, 0.5, steps=STEPS), sliders.envelope_curves(1024, 0.5, steps=STEPS)


def test_the_three_curves_start_together(narrow_wide):
    for c in narrow_wide:
        assert c["t"].shape == c["measured"].shape == c["kernel"].shape == c["envelope"].shape == (STEPS,)
        np.testing.assert_allclose([c["kernel"][0], c["envelope"][0]], c["measured"][0], rtol=1e-12)
        np.testing.assert_allclose(c["envelope"], pl_envelope(c["t"], c["eta"], c["mu"], c["measured"][0]),
                                   rtol=1e-15)
        assert c["eta"] == pytest.approx(0.5 * 10 / c["lam_max"], rel=1e-15)


def test_width_puts_the_run_on_the_kernel_regime(narrow_wide):
    """Measured on this seed over 100 steps: at H = 16 they differ by up to a factor e^0.28, at H = 1024 e^0.0077."""
    narrow, wide = narrow_wide
    assert _kernel_gap(narrow) > 0.2
    assert _kernel_gap(wide) < 0.02


@pytest.mark.parametrize("eta_scale", [0.1, 1.0])
def test_the_envelope_stays_above_the_measured_loss(eta_scale, narrow_wide):
    for c in list(narrow_wide) + [sliders.envelope_curves(1024, eta_scale, steps=STEPS)]:
        assert np.all(c["measured"] <= c["envelope"] * (1 + 1e-12)), f"H = {c['width']}, η·β_GN = {eta_scale}"


def test_a_larger_step_converges_faster():
    slow, fast = sliders.envelope_curves(256, 0.1, steps=STEPS), sliders.envelope_curves(256, 1.0, steps=STEPS)
    assert fast["measured"][-1] < slow["measured"][-1]
    assert fast["envelope"][-1] < slow["envelope"][-1]


def test_eta_scale_outside_its_range_is_refused():
    with pytest.raises(ValueError, match=r"eta_scale: expected a fraction of 1/β_GN in \(0, 1\]"):
        sliders.envelope_curves(16, 1.5)


def test_only_the_true_l_star_gives_slope_one():
    """Chapter 8's numbers: slope 1 at the true L* = 0.01, 1.73 at L* = 0, 0.87 at the minimum seen."""
    loss, grad_sq = sliders.pl_example()
    true = sliders.pl_plot_data(loss, grad_sq, 0.01)
    assert true["slope"] == pytest.approx(1.0, abs=1e-9) and true["mask"].all()
    assert sliders.pl_plot_data(loss, grad_sq, 0.0)["slope"] > 1.5
    assert sliders.pl_plot_data(loss, grad_sq, float(loss.min()))["slope"] < 0.95
    above = sliders.pl_plot_data(loss, grad_sq, 0.0104)  # above the minimum seen: the last gaps are negative
    assert not above["mask"][-1] and np.all(above["gap"][above["mask"]] > 0)


def test_the_plots_draw_what_the_sliders_show(narrow_wide):
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2)
    sliders.plot_envelope(a, narrow_wide[1])
    assert len(a.lines) == 3 and "H = 1024" in a.get_title()
    loss, grad_sq = sliders.pl_example()
    sliders.plot_pl(b, sliders.pl_plot_data(loss, grad_sq, 0.0))
    assert len(b.lines) == 2 and "slope 1.73" in b.get_legend().get_texts()[0].get_text()
    plt.close(fig)


def test_the_widgets_build():
    pytest.importorskip("ipywidgets", reason="ipywidgets not installed (pip install -e '.[notebooks]')")
    env, pl = sliders.envelope_widget(), sliders.pl_widget()
    assert [c.description for c in env.children[:2]] == ["width H", "η · β_GN"]
    assert pl.children[0].description == "L*"
    assert 0.01 in np.round(np.arange(pl.children[0].min, pl.children[0].max + 1e-12, pl.children[0].step), 6)
