"""Issue 20 on the MNIST GD figures: fig1, fig2 and ntk_stability return Verdicts (the runner's claims contract),
and each new row flips where it must (a planted case per row)."""
import numpy as np
import pytest

from minilplr.experiments import fig1_linear_convergence as fig1
from minilplr.experiments import fig2_pl_loglog as fig2
from minilplr.experiments import ntk_stability
from minilplr.experiments.mnist_gd import convergence_verdicts, gd_run, mu_along_path
from minilplr.theory.convergence import mu_per_step
from minilplr.theory.verdicts import STATUSES, Verdict, render_row

from ..helpers import TINY_MNIST_GD as TINY


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return gd_run(TINY, tmp_path_factory.mktemp("runs"), progress=False)


def _fig1(res, loss=None):
    if loss is not None:
        res = dict(res, history=dict(res["history"], loss=np.asarray(loss, float)))
    return fig1.report(dict(run=res, fits={}, mu=mu_along_path(res)))["claims"]


def _row(claims, start):
    (row,) = [c for c in claims if c.claim.startswith(start)]
    return row


def test_gd_run_keeps_the_kernel_modes_and_the_norm_of_theta0(run, tmp_path):
    lam, c2 = run["kernel_lam"], run["kernel_c2"]
    assert lam.shape == c2.shape == (TINY["n"],) and np.all(np.diff(lam) >= 0)
    assert np.sum(c2) == pytest.approx(2 * TINY["n"] * run["history"]["loss"][0], rel=1e-5)  # Σ c_i = ‖r_0‖²
    assert run["theta0_norm"] > 0


def test_fig1_claims_are_verdicts_and_the_envelope_is_vacuous_where_it_demands_little(run):
    claims = _fig1(run)
    assert all(isinstance(c, Verdict) and c.status in STATUSES for c in claims)
    assert all(render_row(c).count("|") >= 6 for c in claims)
    env = _row(claims, "Theorem 5.4, eq. (10)")
    demand = env.details["demand"]
    assert env.status == ("vacuous" if demand < 10 else "holds"), (env.status, demand)
    assert _row(claims, "Theorem 5.4, eq. (14)").status in ("holds", "fails")
    lin = _row(claims, "GD converges linearly")
    assert lin.status in ("holds", "fails", "untestable") and lin.details.get("t_dom") is not None


def test_fig1_rows_flip_on_planted_curves(run):
    T = run["history"]["loss"].size
    loss = np.array(run["history"]["loss"], float)
    risen = loss.copy()
    risen[5] = risen[4] * 1.05  # the loss rises once: (14) fails at step 4
    con = _row(_fig1(run, risen), "Theorem 5.4, eq. (14)")
    assert con.status == "fails" and 4 in con.details["failed_steps"]
    mus = mu_per_step(run["diag"]["step"], run["diag"]["lam_min"], run["n"], T)
    lazy = loss[0] * np.concatenate([[1.0], np.cumprod(1 - 0.5 * run["lr"] * mus)])  # half the demanded decrease
    con = _row(_fig1(run, lazy), "Theorem 5.4, eq. (14)")
    assert con.status == "fails" and con.details["steps_held"] == 0 and con.measured == pytest.approx(-0.5, abs=1e-3)
    brisk = loss[0] * np.concatenate([[1.0], np.cumprod(1 - 1.5 * run["lr"] * mus)])  # 1.5 times the demand
    assert _row(_fig1(run, brisk), "Theorem 5.4, eq. (14)").status == "holds"
    above = loss[0] * np.ones(T)  # a loss that never falls: above any envelope with ημ > 0
    assert _row(_fig1(run, above), "Theorem 5.4, eq. (10)").status == "fails"
    slow = dict(run, kernel_lam=np.array([1e-6, 1.0]), kernel_c2=np.array([1.0, 1.0]))  # t_dom far beyond T
    lin = _row(_fig1(slow), "GD converges linearly")
    assert lin.status == "untestable" and "t_dom" in lin.why and "T ≥" in lin.decide
    geo = dict(run, kernel_lam=None, kernel_c2=None)  # no t_dom: the second half; a geometric loss 0.3^t
    claims = _fig1(geo, 0.5 * 0.3 ** np.arange(T))
    assert _row(claims, "GD converges linearly").status == "holds"
    proxy = _row(claims, "The same with the paper's proxy")  # the min-seen gap plunges at its end: no power
    assert proxy.status == "vacuous" and proxy.measured > 1 and "forced to 0" in proxy.why
    kp = _row(_fig1(dict(run, kernel_pred=run["kernel_pred"] * 1.2)), "(beyond the paper)")
    assert kp.status == "fails"  # 20 % off the linearised dynamics at every step


def test_convergence_verdicts_untestable_without_a_resolved_lambda_min(run):
    d = dict(run["diag"], lam_min=np.where(np.arange(run["diag"]["lam_min"].size) == 1, np.nan,
                                           run["diag"]["lam_min"]))
    v = convergence_verdicts(run["history"]["loss"], run["lr"], run["n"], d)
    assert v["envelope"].status == v["contraction"].status == "untestable" and v["t_dom"] is None


def _fig2(run, margin, slope=0.9, r2=0.99):
    fit = dict(slope=slope, r2=r2, intercept=0.0)
    return fig2.report(dict(run=run, fits=dict(min_seen=fit, zero=fit), pl_margin=margin))


def test_fig2_shows_the_rayleigh_identity_apart_and_fails_it_when_the_solver_is_wrong(run):
    rep = _fig2(run, 44.1)
    (check,) = rep["checks"]
    assert check.status == "identity" and check.measured == 0.0 and "Rayleigh" in check.claim
    assert all("Theorem 5.1" not in c.claim for c in rep["claims"])  # not among the empirical claims
    assert _fig2(run, 1 - 1e-3)["checks"][0].status == "fails"  # ratio below the bound by more than rounding
    assert _fig2(run, 1 - 1e-5)["checks"][0].status == "identity"  # float32 rounding of L and ‖∇L‖²
    assert _fig2(run, 44.1, slope=1.2)["claims"][0].status == "fails"
    assert _fig2(run, 44.1, slope=1.0)["claims"][0].status == "holds"
    assert _fig2(run, 44.1, r2=0.5)["claims"][0].status == "untestable"


def _cert(r=0.174, R=1.88e3, rmax=5.0):
    return dict(r=r, R=R, R_cert=float("nan"), radius_max=rmax, path_length=0.2, mu_cert=1.0, lam0=10.0,
                L_theta=2.0, checkpoints_used=3, lam0_over_n=0.1, rests_on="")


def test_the_a_priori_radius_is_vacuous_beyond_the_norm_of_theta0_and_the_certifiable_radius_has_power():
    R_row, c_row = ntk_stability.radius_verdicts(_cert(), 45.0)
    assert R_row.status == "vacuous" and "‖θ_0‖ = 45" in R_row.why and "λ₀/L̂_Θ" in R_row.decide
    assert c_row.status == "holds" and c_row.threshold == 5.0
    small_R, _ = ntk_stability.radius_verdicts(_cert(R=30.0), 45.0)  # R inside the norm: a check with power
    assert small_R.status == "holds" and small_R.margin == pytest.approx((30 - 0.174) / 30)
    far, cut = ntk_stability.radius_verdicts(_cert(r=40.0, R=30.0, rmax=5.0), 45.0)
    assert far.status == "fails" and cut.status == "fails"
    unknown, _ = ntk_stability.radius_verdicts(_cert(), None)  # ‖θ_0‖ not saved: judged, and says so
    assert unknown.status == "holds" and "not saved" in unknown.rests_on
    none, nocert = ntk_stability.radius_verdicts(_cert(R=float("nan"), rmax=float("nan")), 45.0, beta_known=False)
    assert none.status == nocert.status == "untestable"


def test_ntk_stability_report_uses_the_path_step_size_wording(run):
    claims = ntk_stability.report(dict(status="finished", data=run["data"], run=run))["claims"]
    step = _row(claims, "Theorem 5.4's step condition")
    assert step.status in ("holds", "fails", "untestable") and "certified" not in step.rests_on
    assert all(isinstance(c, Verdict) for c in claims)
