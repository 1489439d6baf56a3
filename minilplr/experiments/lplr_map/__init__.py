"""The LPLR map (not in the paper; issue 13): where does GD sit in a locally PL region, and does the theorem predict its rate?

The Fig. 1 setting over a grid of widths ``H`` × step sizes ``η`` (each
width's ``c/β_0`` and the paper's ``η = 0.001``), one full-batch GD run per
cell, every diagnostic of Theorem 5.4's hypotheses and of the loss, and a
verdict per cell.  The derivation of each diagnostic, the exact verdict
rules and why they read so, and what the data cost: ``docs/lplr-map.md``.

The package, one topic per module:

* :mod:`.cells` — the grid and its cells: the pilots (``β_0``, ``Θ_0``) and
  the GD runs, run through the sweep (:mod:`minilplr.sweep`);
* :mod:`.summary` — what one cell says (:class:`~.summary.CellSummary`);
* :mod:`.verdicts` — the rules: hypotheses, Theorem 5.4's conclusion, loss, cross-table;
* :mod:`.figure` — the heat maps; :mod:`.claims` — the caption and the claims.

This module is the experiment's interface (:mod:`minilplr.experiments`):
``NAME``, ``TITLE``, ``PRESETS``, :func:`run`, :func:`plot`, :func:`report`.
"""
from __future__ import annotations

from ...backend import get_backend
from ... import sweep
from . import cells
from .cells import BETA_KEYS, TASK_KEYS, cell_name, columns
from .claims import report
from .figure import plot
from .summary import summarise
from .verdicts import RULES, classify, cross_table

__all__ = ["NAME", "TITLE", "PRESETS", "run", "plot", "report"]

NAME = "lplr_map"
TITLE = ("not in the paper (issue 13): the LPLR map — widths × step sizes, where GD sits in a locally PL region "
         "and whether Theorem 5.4 predicts its rate")

_TASK = dict(digits=[0, 1], data_source=None, preprocess="unit", depth=5, init="he", init_factor=None, seed=0,
             dtype="float32", hessian_iters=20, eta_fractions=[0.1, 0.5, 0.95, 1.5, 1.9], fixed_lrs=[1e-3],
             rules=RULES)
PRESETS = {
    "paper": dict(_TASK, n=200, widths=[64, 128, 256, 512, 1024, 2048], steps=100, diag_every=10),
    "quick": dict(_TASK, n=100, widths=[32, 64, 128, 256], steps=60, diag_every=10),
}
"""``paper``: ``n = 200`` and 100 steps, not Fig. 1's ``n = 1000`` and 250 (``docs/lplr-map.md`` says why)."""


def run(config, out_dir, backend=None, progress=True):
    """The pilots, then every cell (each saved as it finishes; a second run loads them), then each cell's verdicts."""
    be = get_backend(backend).name
    task = {k: config[k] for k in TASK_KEYS}
    pilots = sweep.run_cells(cells.pilot_cell, {f"h{w}": dict(task, width=int(w), backend=be) for w in config["widths"]},
                             out_dir, folder="pilots", progress=progress)
    cols = columns(config)
    cell_configs = {}
    for w in config["widths"]:
        p = pilots[f"h{w}"]
        beta0 = {k: p[k] for k in BETA_KEYS}
        for col in cols:
            lr = col["lr"] if col["fraction"] is None else col["fraction"] / p["beta"]
            cell_configs[cell_name(w, col)] = dict(task, width=int(w), backend=be, lr=float(lr),
                                                   steps=int(config["steps"]), diag_every=int(config["diag_every"]),
                                                   beta0=beta0)
    done = sweep.run_cells(cells.map_cell, cell_configs, out_dir, folder="cells", progress=progress)
    rules = dict(RULES, **config.get("rules", {}))
    out = {}
    for name, res in done.items():
        s = summarise(res)
        out[name] = dict(summary=s.to_dict(), verdict=classify(s, rules), loss=res["loss"],
                         kernel_pred=res["kernel_pred"], status=res["status"], message=res["message"])
    first = next(iter(done.values()))
    return dict(status="partly diverged" if any(c["summary"]["diverged"] for c in out.values()) else "finished",
                data=first["data"], n=first["n"], widths=[int(w) for w in config["widths"]], columns=cols,
                pilots={k: dict(v) for k, v in pilots.items()}, cells=out, rules=rules,
                cross=cross_table([c["verdict"] for c in out.values()], "hypotheses"),
                cross_path=cross_table([c["verdict"] for c in out.values()], "path"),
                settings=dict(steps=int(config["steps"]), diag_every=int(config["diag_every"]), depth=config["depth"],
                              init=config["init"], dtype=config["dtype"], seed=config["seed"]))
