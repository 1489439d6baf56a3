"""Architecture and the PL constant (not in the paper; issue 24, part 2): how depth, skip connections and batch norm move ``μ = λ_min(Θ)/N`` and GD's rate.

The Fig. 1 task (binary MNIST, squared loss, full-batch GD at ``η = c/β_0``)
over depths ``L`` at a fixed width ``H`` × {plain, residual} × {no BN, BN}
× {He, depth-aware enhanced He}; per cell the PL constant at initialisation
and along the path, ``κ(Θ_0)``, the fitted rate against Theorem 5.4's
``1 − ημ``, the kernel-regime prediction error, the NTK drift, and for the
plain MLP ``λ_min(Θ_∞)`` of the analytic kernel against the finite-width
value.  Which kernel a batch-norm network is measured with, and why:
:mod:`.cells`.

The package, one topic per module:

* :mod:`.cells` — one cell (a pure function of its JSON configuration; the
  keys :data:`~.cells.CELL_KEYS`), the batch Jacobian of a training-mode
  BN network, the frozen-statistics kernel;
* :mod:`.summary` — the numbers of one cell;
* :mod:`.claims` — the claims, as :class:`~minilplr.theory.verdicts.Verdict` rows, and the caption;
* :mod:`.figure` — lines against depth, one per architecture.

``CELL_KIND`` (:mod:`.cells`) makes it a study's cell kind too: ``studies/architecture.toml``.

This module is the experiment's interface (:mod:`minilplr.experiments`):
``NAME``, ``TITLE``, ``PRESETS``, :func:`run`, :func:`plot`, :func:`report`.
"""
from __future__ import annotations

from ...backend import get_backend
from ... import sweep
from .cells import CELL_KEYS, CELL_KIND, architecture_cell, arch_name
from .claims import report, verdicts
from .figure import plot
from .summary import summarise

__all__ = ["NAME", "TITLE", "PRESETS", "CELL_KIND", "ARCHITECTURES", "run", "plot", "report", "cell_configs", "cell_name"]

NAME = "architecture"
TITLE = ("not in the paper (issue 24): architecture and the PL constant — depth × {plain, residual} × {no BN, BN} "
         "× {He, enhanced He}: μ = λ_min(Θ)/N, κ(Θ_0) and GD's rate on the Fig. 1 task")

#: (residual, batchnorm, init) of every architecture, in the order of the figure's legend.
ARCHITECTURES = [(r, b, i) for i in ("he", "enhanced_he") for b in (False, True) for r in (False, True)]

_TASK = dict(digits=[0, 1], data_source=None, preprocess="unit", seed=0, dtype="float32", init_factor=None,
             eta_fraction=0.5)
PRESETS = {
    "paper": dict(_TASK, n=100, width=128, depths=[2, 4, 6, 8, 10], steps=200, diag_every=100, hessian_iters=20),
    "quick": dict(_TASK, n=50, width=32, depths=[2, 4, 6], steps=40, diag_every=20, hessian_iters=10),
}
"""``paper``: ``N = 100``, ``H = 128`` and the kernel at ``t = 0, 100, 200`` only (not Fig. 1's ``N = 1000``,
``H = 2048``): a batch-norm cell's kernel costs ``N`` backward passes of the whole batch (:mod:`.cells`), ``N²``
per-sample backward passes, so its cost grows as ``N²`` (README, "Time and memory", has the measured times).
``η = 0.5/β_0`` in every cell."""


def cell_name(depth: int, residual: bool, batchnorm: bool, init: str) -> str:
    """``d<L>-<plain|res>-<nobn|bn>-<he|ehe>``: the cell's folder under ``cells/``."""
    return (f"d{depth}-{'res' if residual else 'plain'}-{'bn' if batchnorm else 'nobn'}-"
            f"{'ehe' if init == 'enhanced_he' else 'he'}")


def cell_configs(config, backend: str) -> tuple[dict, dict]:
    """``(configs, aliases)``: the JSON configuration of every cell to run, by name; and the cells not run because
    they are another one (a residual MLP of depth 2 has no block: it is the plain one), ``name -> name``."""
    configs, aliases = {}, {}
    for depth in config["depths"]:
        for residual, bn, init in ARCHITECTURES:
            name = cell_name(depth, residual, bn, init)
            if residual and depth == 2:
                aliases[name] = cell_name(depth, False, bn, init)
                continue
            configs[name] = {k: config[k] for k in CELL_KEYS if k in config}
            configs[name].update(backend=backend, depth=int(depth), residual=residual, batchnorm=bn, init=init)
    return configs, aliases


def run(config, out_dir, backend=None, progress=True):
    """Every cell (each saved as it finishes; a second run loads them), each cell's summary, then the verdicts."""
    be = get_backend(backend).name
    configs, aliases = cell_configs(config, be)
    done = sweep.run_cells(architecture_cell, configs, out_dir, folder="cells", progress=progress)
    cells = {}
    for name, res in done.items():
        cells[name] = dict(summary=summarise(res), loss=res["loss"], kernel_pred=res["kernel_pred"],
                           diag=res["diag"], status=res["status"], message=res["message"], kernel=res["kernel"])
    first = next(iter(done.values()))
    results = dict(status="partly diverged" if any(c["status"] != "finished" for c in cells.values()) else "finished",
                   data=first["data"], n=first["n"], depths=[int(d) for d in config["depths"]],
                   architectures=[dict(residual=r, batchnorm=b, init=i, label=arch_name(r, b, i))
                                  for r, b, i in ARCHITECTURES],
                   cells=cells, aliases=aliases,
                   settings=dict(width=int(config["width"]), steps=int(config["steps"]),
                                 diag_every=int(config["diag_every"]), eta_fraction=float(config["eta_fraction"]),
                                 dtype=config["dtype"], seed=int(config["seed"])))
    results["verdicts"] = [v.to_dict() for v in verdicts(results)]
    return results
