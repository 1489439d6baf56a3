"""The noise-ball study (minilplr.experiments.sgd_noise): its SGD loop, its estimators on a network, its verdicts."""
import numpy as np
import pytest

from minilplr import backend as B
from minilplr.experiments import sgd_noise
from minilplr.experiments.sgd_noise import cells, claims
from minilplr.experiments.sgd_noise.summary import DRIFT_MAX, CellSummary, measures, summarise
from minilplr.nn import models
from minilplr.theory import ntk as _ntk
from minilplr.theory import sgd_noise as sn
from minilplr.theory.verdicts import STATUSES, Verdict
from minilplr.train.loops import train_gd
from minilplr.train.optim import GD

TASK = dict(digits=[0, 1], n=16, data_source=None, preprocess="unit", width=8, depth=3, init="he", init_factor=None,
            seed=0, dtype="float64", backend="numpy")


def _cell(**kw):
    return dict(TASK, batch=4, lr=0.02, sgd_seed=0, steps=12, record_every=3, noise_every=4, beta0=10.0, mu0=0.1) | kw


def test_batch_indices_are_uniform_distinct_subsets():
    rng = np.random.default_rng(0)
    n, b, draws = 10, 3, 6000
    counts = np.zeros(n)
    for _ in range(draws):
        idx = cells.batch_indices(rng, n, b)
        assert idx.size == b == np.unique(idx).size
        counts[idx] += 1
    p = b / n  # each index is in a batch with probability b/N; 4 standard deviations of a binomial
    assert np.all(np.abs(counts / draws - p) <= 4 * np.sqrt(p * (1 - p) / draws))
    np.testing.assert_array_equal(cells.batch_indices(rng, n, n), np.arange(n))


def test_the_full_batch_cell_is_train_gd_bit_for_bit():
    res = cells.sgd_cell(_cell(batch=16, record_every=1, noise_every=100))
    data = cells.load_task(TASK)
    m = models.mlp(784, 8, 3, 1, init="he", seed=0, dtype="float64", backend="numpy")
    h = train_gd(m, data.X, data.y.reshape(-1, 1), GD(0.02), steps=12, loss="mse")
    np.testing.assert_array_equal(res["loss"][:-1], np.asarray(h["loss"]))
    assert res["batch"] == 16 and np.all(res["sigma2_b"] == 0)


def test_one_sgd_step_is_theta_minus_eta_times_the_batch_mean_gradient():
    from minilplr.nn.losses import mse

    res = cells.sgd_cell(_cell(steps=1, record_every=1, noise_every=1, lr=0.05))
    data = cells.load_task(TASK)
    X, y = data.X, data.y.reshape(-1, 1)
    m = models.mlp(784, 8, 3, 1, init="he", seed=0, dtype="float64", backend="numpy")
    idx = cells.batch_indices(np.random.default_rng([0, 24]), 16, 4)
    grads = []
    for i in idx:  # the batch mean of the per-sample gradients, one sample at a time
        m.backward(m.forward(X[i:i + 1]) - y[i:i + 1], need_dx=False)
        grads.append({k: v.copy() for k, v in m.grads.items()})
    for k in m.params:
        m.params[k] -= 0.05 * np.mean([g[k] for g in grads], axis=0)
    assert res["loss"][1] == pytest.approx(float(mse(m.forward(X), y)[0]), rel=1e-12)


def test_noise_at_equals_the_moments_of_explicit_per_sample_gradients():
    data = cells.load_task(TASK)
    m = models.mlp(784, 8, 3, 1, init="he", seed=0, dtype="float64", backend="numpy")
    X, y = data.X, data.y.reshape(-1, 1)
    got = cells.noise_at(m, X, y)
    J = B.to_host(_ntk.jacobian(m, X))  # (N, P)
    r = m.forward(X) - y
    g = r * J  # ∇ℓ_i = r_i ∇f_i, (N, P)
    full = g.mean(0)
    assert got["mean_sq"] == pytest.approx(np.mean(np.sum(g ** 2, 1)), rel=1e-10)
    assert got["grad_sq"] == pytest.approx(np.sum(full ** 2), rel=1e-10)
    assert got["spread"] == pytest.approx(np.mean(np.sum((g - full) ** 2, 1)), rel=1e-10)
    assert got["rho"] == pytest.approx(np.mean(np.sum(g ** 2, 1)) / np.sum(full ** 2), rel=1e-10)
    # the mini-batch gradient of the loop is an average of these rows: ‖∇L‖² is the loss's own gradient
    from minilplr.nn.losses import mse
    m.forward(X)
    m.backward(mse(m.forward(X), y)[1], need_dx=False)
    flat = np.concatenate([v.ravel() for v in m.grads.values()])
    np.testing.assert_allclose(flat, full, rtol=1e-10, atol=1e-14)


def test_an_sgd_cell_records_what_its_docstring_says():
    res = cells.sgd_cell(_cell())
    np.testing.assert_array_equal(res["record_steps"], [0, 3, 6, 9, 12])
    np.testing.assert_array_equal(res["noise_steps"], [0, 4, 8, 12])
    np.testing.assert_allclose(res["sigma2_b"], sn.batch_factor(16, 4) * res["spread"], rtol=0)
    assert res["status"] == "finished" and res["loss"][-1] < res["loss"][0]
    again = cells.sgd_cell(_cell())
    np.testing.assert_array_equal(res["loss"], again["loss"])  # seeded: the same batches, the same bits
    other = cells.sgd_cell(_cell(sgd_seed=1))
    assert not np.array_equal(res["loss"], other["loss"])


# --------------------------------------------------------------------------- the verdicts have power


def _fake(world: str):
    """Results of a made-up study: ``"ball"`` (plateau = ησ_1²c_b/4 exactly, flat) or ``"interp"`` (falling)."""
    n, beta0, mu0 = 64, 10.0, 0.5
    cells_ = {}
    rng = np.random.default_rng(0)
    for b in (8, 32, 64):
        for f in (0.1, 0.3, 1.0):
            for s in range(8):
                lr, cb = f / beta0, sn.batch_factor(n, b)
                t = np.arange(0, 401, 4.0)
                if world == "ball":
                    level = lr * 2.0 * cb / 4 if b < n else 1e-12
                    loss = np.exp(-t / 5) + level * (1 + 0.02 * rng.standard_normal(t.size))
                else:
                    loss = (np.exp(-lr * 5 * t) + 1e-3 * np.exp(-lr * t)) * (1 + 0.02 * rng.standard_normal(t.size))
                ns = t[::10]
                res = dict(n=n, batch=b, lr=lr, beta0=beta0, mu0=mu0, status="finished", record_steps=t, loss=loss,
                           noise_steps=ns, sigma2_b=np.full(ns.size, 2.0 * cb), rho=np.full(ns.size, 5.0),
                           lam_min=np.full(ns.size, 1.0), diag_max=np.full(ns.size, 2.0))
                cells_[cells.cell_name(b, f, s, n)] = dict(summary=summarise(res).to_dict(), sgd_seed=s,
                                                           **{k: res[k] for k in ("record_steps", "loss",
                                                                                  "noise_steps", "rho")})
    return dict(n=n, beta0=beta0, mu0=mu0, cells=cells_)


def _by_claim(rows, start):
    return [v for v in rows if v.claim.startswith(start)]


def test_a_noise_ball_world_passes_the_exponents_and_fails_the_regime():
    rows = claims.verdicts(_fake("ball"))
    assert _by_claim(rows, "Interpolation regime")[0].status == "fails"
    exps = _by_claim(rows, "Plateau ∝")
    assert len(exps) == 5 and all(v.status == "holds" for v in exps), [(v.claim, v.measured) for v in exps]
    quad = _by_claim(rows, "The plateau is a local noise ball")[0]
    assert quad.status == "holds" and quad.measured == pytest.approx(1.0, rel=0.05)


def test_an_interpolating_world_has_no_plateau_so_its_exponents_are_untestable():
    """Where the loss still falls there is no plateau: the exponent rows are untestable (naming the drifts, with
    the last window's loss's exponent as a description), not *fails*; the quadratic row too."""
    res = _fake("interp")
    rows = claims.verdicts(res)
    regime = _by_claim(rows, "Interpolation regime")[0]
    assert regime.status == "holds" and regime.measured <= DRIFT_MAX
    exps = _by_claim(rows, "Plateau ∝")
    assert len(exps) == 5
    for v in exps:
        assert v.status == "untestable" and v.why.startswith("no plateau (the loss still falls over the last window: "
                                                             "drift from "), v
        assert "descriptive only, the last window's loss against" in v.why and np.isfinite(v.measured), v
    assert _by_claim(rows, "The plateau is a local noise ball")[0].status == "untestable"
    # the description is the window loss's exponent: in η at b = 8 it is what a direct fit of the window gives
    S = claims.summaries(res)
    by_eta = {}
    for name, s in S.items():
        if s.batch == 8:
            by_eta.setdefault(s.lr, []).append((res["cells"][name]["sgd_seed"], s.window_loss))
    x = sorted(by_eta)
    fit = claims.fit_power_law(x, np.array([[w for _, w in sorted(by_eta[k])] for k in x]).T, paired=True,
                               n_boot=2000, seed=0)
    assert exps[0].measured == pytest.approx(fit.a, rel=1e-12) and fit.a < 0  # falls faster at larger η


def test_one_falling_cell_among_levelled_ones_makes_its_exponent_untestable():
    res = _fake("ball")
    name = cells.cell_name(8, 0.3, 0, 64)
    c = res["cells"][name]
    c["summary"] = dict(c["summary"], drift=0.5)  # this cell's loss still falls: it has no plateau
    rows = claims.verdicts(res)
    at8 = _by_claim(rows, "Plateau ∝ η at b = 8")[0]
    assert at8.status == "untestable" and "in 1 of 24 cells" in at8.why, at8.why
    assert _by_claim(rows, "Plateau ∝ η at b = 32")[0].status == "holds"


def _history(levelled: bool):
    t = np.arange(0, 401, 4.0)
    loss = np.exp(-t / 20) + (1e-3 if levelled else 1e-3 * np.exp(-t / 60))
    ns = t[::10]
    return dict(n=64, batch=8, lr=0.01, beta0=10.0, mu0=0.5, status="finished", record_steps=t, loss=loss,
                noise_steps=ns, sigma2_b=np.full(ns.size, 0.1), rho=np.full(ns.size, 5.0),
                lam_min=np.full(ns.size, 1.0), diag_max=np.full(ns.size, 2.0))


def test_a_levelled_history_has_a_plateau_and_a_falling_one_has_none():
    flat, falling = summarise(_history(True)), summarise(_history(False))
    assert flat.levelled and flat.drift > DRIFT_MAX
    assert flat.plateau == flat.window_loss == pytest.approx(1e-3, rel=1e-4)  # + the transient's e^{-15}
    assert not falling.levelled and falling.drift <= DRIFT_MAX and falling.window_loss > 0
    assert np.isnan(falling.plateau)
    assert CellSummary.from_dict(falling.to_dict()).plateau != CellSummary.from_dict(falling.to_dict()).plateau
    # the study's measures: the same definition
    assert measures(_history(True))["plateau"] == flat.window_loss
    m = measures(_history(False))
    assert np.isnan(m["plateau"]) and m["window_loss"] == falling.window_loss


def test_the_quick_pipeline_runs_plots_and_reports(tmp_path):
    cfg = dict(sgd_noise.PRESETS["quick"], n=16, width=8, depth=3, batches=[4, 16], eta_fractions=[0.5, 1.0],
               sgd_seeds=[0, 1], steps=20, record_every=2, noise_every=10, hessian_iters=5)
    res = sgd_noise.run(cfg, tmp_path, progress=False)
    assert len(res["cells"]) == 2 * 2 + 2  # the full batch once per step: it has no seed
    paths = sgd_noise.plot(res, tmp_path)
    assert all(p.exists() for p in paths)
    rep = sgd_noise.report(res)
    assert {f for f, _ in rep["figures"]} == {p.name for p in paths}
    assert all(isinstance(c, Verdict) and c.status in STATUSES and c.quantity for c in rep["claims"])  # the claims contract
    CellSummary.from_dict(next(iter(res["cells"].values()))["summary"])


def test_a_summary_saved_before_window_loss_is_refused_in_one_line():
    d = summarise(_history(True)).to_dict()
    d["plateau"] = d.pop("window_loss")  # the older layout: the window's mean stored as "plateau"
    with pytest.raises(ValueError, match=r"^summary: expected the fields window_loss of a CellSummary, .* delete the "
                       r"experiment's results.json and results.npz and run it again"):
        CellSummary.from_dict(d)
