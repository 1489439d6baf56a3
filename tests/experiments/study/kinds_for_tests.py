"""A cell kind for the study tests: a known power law, in microseconds, importable by name (sweep rule)."""
import numpy as np

from minilplr.experiments.study.kinds import CellKind, register_kind

CALLS = []  #: the cells run in this process, in order (the resume test counts them)
EXPONENT = -1.2  #: failure_factor = 3000 · width^EXPONENT · (1 + 0.05 · noise(seed))


def power_cell(cell: dict) -> dict:
    """``failure_factor = 3000 H^{-1.2} (1 + 0.05 z)``, ``z`` a seeded Gaussian; the fields the diagnostics read."""
    CALLS.append(dict(cell))
    z = np.random.default_rng(1000 * cell["seed"] + cell["width"]).standard_normal()
    ff = 3000.0 * cell["width"] ** EXPONENT * (1 + 0.05 * z)
    lam0 = 2.0 + cell["depth"]
    return dict(status="finished", data="synthetic power law", n=10, lr=cell["lr"], loss=np.array([1.0, 0.5]),
                diag=dict(lam_min=np.array([lam0, 0.9 * lam0])), beta0=dict(beta=1.0),
                certificate=dict(lam0=lam0, L_theta=ff, r=1.0, radius_max=lam0 / ff, mu_cert=(lam0 - ff) / 10))


def power_pilot(cell: dict) -> dict:
    return dict(beta=2.0 + 0.01 * cell["width"])


KIND = register_kind(CellKind(
    name="test_power", cell="tests.experiments.study.kinds_for_tests:power_cell",
    keys={"width": ("pos_int", None), "depth": ("pos_int", None), "seed": ("nonneg_int", None),
          "steps": ("pos_int", None), "diag_every": ("pos_int", None), "eta": ("pos_real", None),
          "c_beta0": ("pos_real", None)},
    defaults=dict(depth=2, seed=0, steps=2, diag_every=1), required=("width",),
    pilot="tests.experiments.study.kinds_for_tests:power_pilot", pilot_keys=("width", "depth", "seed"),
    provides=("lam0", "L_theta", "r", "rho_star", "failure_factor", "mu_cert", "lam_ratio_min", "final_loss")))


def measured(res: dict, cell: dict) -> dict:
    """The summary of ``test_measured``: ``slope`` from ``res["loss"]``, left out where the cell diverged (no
    number); ``res["planted"]`` chooses a planted bug: ``"raise"`` (1/0), ``"none"`` (no dict), ``"text"``."""
    planted = res.get("planted")
    if planted == "raise":
        return {"slope": 1 / 0}
    if planted == "none":
        return None
    out = {"first": float(res["loss"][0])}
    if res["status"] == "finished":
        out["slope"] = "steep" if planted == "text" else float(res["loss"][-1] - res["loss"][0])
    return out


MEASURED = register_kind(CellKind(
    name="test_measured", cell="tests.experiments.study.kinds_for_tests:power_cell",
    keys={"width": ("pos_int", None), "seed": ("nonneg_int", None)}, required=("width",), step_size=False,
    provides=("final_loss",), measures={"first": "L_0", "slope": "L_T − L_0 (finished cells only)"},
    summarise="tests.experiments.study.kinds_for_tests:measured"))
