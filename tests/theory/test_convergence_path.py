"""The path-wide judges of theory/convergence/ (envelope.mu_per_step, step_size) for issue 20: μ_t between NTK checkpoints and η ≤ 1/β
along the path; each with the case that must flip it."""
import math

import numpy as np
import pytest

from minilplr.theory.convergence import mu_per_step, per_step_contraction, step_size_verdict
from minilplr.theory.smoothness import HessianTop


def _top(beta, converged=True, residual=1e-8):
    return HessianTop(beta=beta, rayleigh=beta, matvecs=8, converged=converged, residual=residual, tol=1e-6)


def test_mu_per_step_takes_the_smaller_of_the_two_checkpoints_around_each_step():
    mu = mu_per_step([0, 10, 20], [3.0, 1.0, 2.0], n=2, T=25)
    assert mu.shape == (24,)
    np.testing.assert_array_equal(mu[:9], 0.5)  # steps 0→1 … 8→9: between 0 (3.0) and 10 (1.0): min 1.0
    assert mu[9] == 0.5  # step 9 → 10 ends at the checkpoint 10
    assert mu[10] == 0.5 and mu[19] == 0.5  # between 10 (1.0) and 20 (2.0)
    np.testing.assert_array_equal(mu[20:], 1.0)  # after the last checkpoint: the last one
    # planted: a rising λ_min must not let the left checkpoint alone set μ_t (it would demand more than measured)
    up = mu_per_step([0, 10], [1.0, 5.0], n=1, T=11)
    np.testing.assert_array_equal(up, 1.0)
    assert math.isnan(mu_per_step([0, 10], [np.nan, 1.0], n=1, T=5)[0])  # unresolved spreads
    with pytest.raises(ValueError, match="steps, lam_min: expected"):
        mu_per_step([0, 0], [1.0, 1.0], n=1, T=5)


def test_per_step_contraction_with_mu_per_step_flips_on_one_rising_step():
    loss = 0.5 * 0.9 ** np.arange(30)
    mu = mu_per_step([0, 10, 20, 29], [2.0, 1.5, 1.0, 1.0], n=10, T=30)
    assert per_step_contraction(loss, 0.1, mu).status == "holds"
    bad = loss.copy()
    bad[13] = bad[12] * 1.001
    v = per_step_contraction(bad, 0.1, mu)
    assert v.status == "fails" and v.details["failed_steps"] == [12]


def test_step_size_verdict_holds_fails_and_cannot_decide():
    ok = step_size_verdict(0.01, [("t = 0", _top(50.0)), ("t = T", _top(60.0))], gn_max=0.4)
    assert ok.status == "holds" and ok.measured == pytest.approx(0.6 * (1 + 1e-8)) and ok.threshold == 1.0
    assert ok.margin == pytest.approx(0.4, rel=1e-6) and "converged Lanczos, residual" in ok.rests_on
    assert "certified" not in ok.rests_on + ok.why
    # planted: β at the proxy's peak above 1/η, though 0 and T pass
    peak = step_size_verdict(0.01, [("t = 0", _top(50.0)), ("t = 40", _top(101.0)), ("t = T", _top(60.0))])
    assert peak.status == "fails" and peak.measured == pytest.approx(1.01) and "t = 40" in peak.why
    assert peak.margin == pytest.approx(-0.01)
    # planted: the Gauss–Newton proxy above 1 between the Lanczos points
    gn = step_size_verdict(0.01, [("t = 0", _top(50.0))], gn_max=1.02, gn_step=30)
    assert gn.status == "fails" and gn.measured == pytest.approx(1.02) and "t = 30" in gn.rests_on
    # a solve that did not converge: its β is a lower bound; below 1/η it cannot decide
    loose = step_size_verdict(0.01, [("t = 0", _top(50.0, converged=False))])
    assert loose.status == "untestable" and "not converge" in loose.why and loose.decide
    # ... but above 1/η even a lower bound fails it
    assert step_size_verdict(0.01, [("t = 0", _top(120.0, converged=False))]).status == "fails"
    # the residual's bracket straddles 1/η: undecided
    edge = step_size_verdict(0.01, [("t = 0", _top(99.99, residual=1e-3))])
    assert edge.status == "untestable" and edge.margin is None
    assert step_size_verdict(0.01, []).status == "untestable"
