"""What the four linear-network experiments' tests share: a tiny config, the run → plot → report driver,
and the checks that recompute an experiment's numbers from its config alone.

``tests/experiments/test_linear_{width,schedules,init,imbalance}.py`` each add
the check of their own claims.
"""
from __future__ import annotations

import importlib
import math
import re
import struct

import numpy as np
import pytest

from minilplr.experiments.linear_runs import data_from_config, weights_from_config
from minilplr.theory.linear import local_smoothness_bound, make_network, sigma2_T
from minilplr.theory.verdicts import STATUSES, Verdict

from ..helpers import TINY_LINEAR_DATA

#: a number as the reports print it
NUM = r"(nan|inf|[-+]?\d+(?:\.\d*)?(?:e[-+]?\d+)?)"


def tiny_config(module):
    """The experiment's quick preset shrunk to 6 samples, 60 steps, two seeds and widths 20 (and 40, 80: three points, so a trend can be judged)."""
    cfg = dict(module.PRESETS["quick"])
    cfg["data"] = TINY_LINEAR_DATA
    cfg["steps"] = 60
    cfg["init_seeds"] = [0, 1]
    if "widths" in cfg:
        cfg["widths"], cfg["kappa_widths"] = [20, 40, 80], [10, 20, 40]
    else:
        cfg["h"] = 20
    return cfg


def png_pixels(path) -> tuple[int, int]:
    """``(width, height)`` from a PNG's IHDR chunk; fails if the file is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path.name}: not a PNG"
    return struct.unpack(">II", head[16:24])


def start_network(cfg, h, init, seed, be):
    """The network a run of the experiment starts from, rebuilt from its config alone."""
    X, Y = data_from_config(cfg["data"])
    W1, W2 = weights_from_config(X.shape[1], Y.shape[1], int(h), init, int(seed))
    return make_network(X, Y, W1, W2, backend=be, dtype=cfg["dtype"])


def check_eq19(r, opts, net):
    """The adaptive schedule's recorded steps are eq. 19: ``η_t = min((1 + η₀²)^t / (2η₀), 1/K̄_t)``.

    Recomputed from the record (``L(t) − L*``) and the start ``net`` (``α₂ = σ²_max(T₀)``) alone:
    below the cap, ``η_t K̄_t(η_t) = 1`` with :func:`local_smoothness_bound`
    (a fixed point found by Newton to ~1e-15: 1e-12); and always ``η_t`` at most the cap.
    """
    eta0 = float(opts["eta0"])
    assert opts.get("sigma_bound", "paper") == "paper" and opts.get("grad_bound", "loss") == "loss"
    K, alpha2 = net.loss_fn.K, sigma2_T(net.W1, net.W2)[1]
    T = r["steps"]
    lr = r["lr"][:T]
    assert np.all(np.isfinite(lr) & (lr > 0)) and np.isnan(r["lr"][T])
    cap = (1 + eta0 ** 2) ** np.arange(T) / (2 * eta0)
    assert np.all(lr <= cap * (1 + 1e-12))  # (the schedule computes the cap through exp/log1p)
    for t in np.nonzero(lr < cap * (1 - 1e-12))[0]:
        lrK = lr[t] * local_smoothness_bound(K, alpha2, r["gap"][t], eta0, lr[t],
                                             second_order=opts.get("second_order", True))
        assert lrK == pytest.approx(1.0, rel=1e-12), (t, lrK)


def fmt_means(rows, key, by, fmt):
    """``{group: format(mean of row[key])}`` over rows grouped by ``row[by]``."""
    groups = {}
    for r in rows:
        groups.setdefault(r[by], []).append(r[key])
    return {g: format(float(np.mean(v)), fmt) for g, v in groups.items()}


def assert_runs_plots_and_reports(name, check, tmp_path, be):
    """A tiny run of experiment ``name``: its numbers are what the formulas give (``check(res, rep, be)``),
    its claims report them, its figures are PNGs of a readable size, and a second run resumes from the
    stored runs."""
    mod = importlib.import_module(f"minilplr.experiments.{name}")
    assert mod.NAME == name and set(mod.PRESETS) == {"quick", "paper"}
    cfg = tiny_config(mod)
    res = mod.run(cfg, tmp_path, backend=be, progress=False)
    # one stored unit per run (JSON + arrays), no checkpoint left behind
    runs = tmp_path / "runs"
    units = sorted(p.stem for p in runs.glob("*.json"))
    assert len(units) == len(res["runs"]) and all((runs / f"{u}.npz").exists() for u in units)
    assert not list(runs.glob("*.checkpoint*"))
    again = mod.run(cfg, tmp_path, backend=be, progress=False)  # every run loaded from the cache
    assert len(again["runs"]) == len(res["runs"])
    for r1, r2 in zip(res["runs"], again["runs"]):
        assert r1.keys() == r2.keys()
        for k, v in r1.items():
            assert np.array_equal(np.asarray(v), np.asarray(r2[k]), equal_nan=np.asarray(v).dtype.kind == "f"), k
    rep = mod.report(res)
    check(res, rep, be)
    # every claim a Verdict of the vocabulary that says its number (and, when compared, its threshold and margin)
    assert rep["claims"] and all(isinstance(c, Verdict) and c.status in STATUSES for c in rep["claims"])
    judged = [c for c in rep["claims"] if c.status in ("holds", "fails")]
    assert all(c.measured is not None and math.isfinite(c.measured) and c.margin is not None for c in judged)
    assert all(c.why and c.decide for c in rep["claims"] if c.status in ("untestable", "vacuous"))
    paths = mod.plot(res, tmp_path)
    assert sorted(p.name for p in paths) == sorted(f for f, _ in rep["figures"])
    for p in paths:
        w, h = png_pixels(p)
        assert 600 <= w <= 4000 and 300 <= h <= 3000, (p.name, w, h)  # figures of 6–20 inches at 130 dpi
