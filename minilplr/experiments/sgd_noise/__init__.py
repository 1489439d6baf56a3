"""Does constant-step SGD have a noise ball on the Fig. 1 task? (not in the paper; issue 24, part 1)

The LPLR paper's Section 7 lists "a formal analysis of SGD convergence to a
noise ball within an LPLR" as open; Fig. 3 trains with a cosine step that
hides any ball.  Here the question is asked directly, on the Fig. 1 MLP task
(binary MNIST, squared loss, float64), where ``β``, ``μ`` and the per-sample
gradients are all measurable: constant-step SGD over batch sizes ``b`` ×
step sizes ``η = c/β_0`` × seeds of the batch draws, each cell measuring the
plateau of the full-batch loss, the mini-batch noise ``σ_b²`` there, the
strong-growth ratio ``ρ_t`` along the path and the transient rate.  The
theory it tests (Karimi, Nutini & Schmidt 2016; Vaswani, Bach & Schmidt
2019) is derived in docs/THEORY.md, "SGD with a constant step: the noise ball".

The package: :mod:`.cells` (the pilot and the SGD cells, through
:mod:`minilplr.sweep`; the cell configuration keys are listed there),
:mod:`.summary` (one cell's numbers), :mod:`.claims` (the verdicts and the
report), :mod:`.figure` (the two figures).  ``CELL_KIND`` (:mod:`.cells`) makes it
a study's cell kind too: ``studies/sgd_noise.toml`` runs the same cells from a spec.
"""
from __future__ import annotations

from ... import sweep
from ...backend import get_backend
from ..lplr_map.cells import pilot_cell
from . import cells
from .cells import CELL_KIND, TASK_KEYS, cell_name, sgd_cell
from .claims import report, verdicts
from .figure import plot
from .summary import WINDOW, CellSummary, summarise

__all__ = ["NAME", "TITLE", "PRESETS", "CELL_KIND", "run", "plot", "report", "verdicts"]

NAME = "sgd_noise"
TITLE = ("not in the paper (issue 24): does constant-step SGD have a noise ball on the Fig. 1 task? Batch sizes × "
         "step sizes × seeds against Karimi–Nutini–Schmidt's PL ball and Vaswani–Bach–Schmidt's strong growth")

_TASK = dict(digits=[0, 1], data_source=None, preprocess="unit", depth=5, init="he", init_factor=None, seed=0,
             dtype="float64", hessian_iters=20, window=WINDOW)
PRESETS = {
    "paper": dict(_TASK, n=256, width=128, batches=[8, 32, 128, 256], eta_fractions=[0.1, 0.3, 1.0],
                  sgd_seeds=[0, 1, 2], steps=2000, record_every=10, noise_every=200),
    "quick": dict(_TASK, n=64, width=64, batches=[8, 32, 64], eta_fractions=[0.3, 1.0], sgd_seeds=[0, 1],
                  steps=400, record_every=5, noise_every=50),
}
"""``batches``: a batch ``≥ n`` is full-batch GD (run once per step: it has no seed).  ``paper``: ``n = 256``,
width 128, not Fig. 1's ``n = 1000``, width 2048: 30 cells of 2000 steps, each with ``Θ_t (N, N)`` at 11 noise
checkpoints, within the 20-minute budget on this machine (the README's "Time and memory")."""


def run(config, out_dir, backend=None, progress=True):
    """The pilot (``β_0``, ``λ_min(Θ_0)``), then every SGD cell (saved as it finishes), then their summaries."""
    be = get_backend(backend).name
    task = {k: config[k] for k in TASK_KEYS if k != "width"}
    task["width"] = int(config["width"])
    pilot = sweep.run_cells(pilot_cell, {"pilot": dict(task, hessian_iters=int(config["hessian_iters"]), backend=be)},
                            out_dir, folder="pilot", progress=progress)["pilot"]
    n = int(pilot["n"])
    beta0, mu0 = float(pilot["beta"]), float(pilot["lam_min0"]) / n
    cfgs = {}
    for b in config["batches"]:
        for c in config["eta_fractions"]:
            for s in (config["sgd_seeds"] if int(b) < n else config["sgd_seeds"][:1]):
                cfgs[cell_name(int(b), float(c), int(s), n)] = dict(
                    task, backend=be, batch=int(b), lr=float(c) / beta0, sgd_seed=int(s), steps=int(config["steps"]),
                    record_every=int(config["record_every"]), noise_every=int(config["noise_every"]), beta0=beta0,
                    mu0=mu0)
    done = sweep.run_cells(sgd_cell, cfgs, out_dir, folder="cells", progress=progress)
    out = {}
    for name, res in done.items():
        out[name] = dict(summary=summarise(res, float(config["window"])).to_dict(), fraction=cfgs[name]["lr"] * beta0,
                         sgd_seed=cfgs[name]["sgd_seed"],
                         **{k: res[k] for k in ("record_steps", "loss", "noise_steps", "rho", "sigma2_b", "lam_min",
                                                "diag_max", "status", "message")})
    first = next(iter(done.values()))
    return dict(status="partly diverged" if any(c["status"] != "finished" for c in out.values()) else "finished",
                data=first["data"], n=n, beta0=beta0, mu0=mu0, pilot=dict(pilot), cells=out,
                settings={k: config[k] for k in ("width", "depth", "init", "dtype", "seed", "steps", "batches",
                                                 "eta_fractions", "sgd_seeds", "window", "record_every",
                                                 "noise_every")})
