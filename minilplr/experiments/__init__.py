"""The experiments: one module per figure, ``run(config) -> results`` and ``plot(results)`` kept apart.

Every experiment module (or small package, as :mod:`.lplr_map`) in this package defines

``NAME`` : str
    Short id used by ``scripts/run_all.py --only`` and as the results folder name.
``TITLE`` : str
    The figure of which paper it reproduces (or "not in the paper: ...").
``PRESETS`` : dict
    ``{"quick": {...}, "paper": {...}}``: complete configurations (plain JSON
    types).  ``quick`` runs the same pipeline at small size (the README's
    "Time and memory" says how long each takes); ``paper`` uses the paper's settings.
``run(config, out_dir, backend=None, progress=True) -> dict``
    ``out_dir`` is the experiment's own folder, ``<out>/<configuration>/<NAME>``
    (:mod:`minilplr.experiments.output`); runs that several experiments share
    are cached beside it, in ``<out>/<configuration>/runs``.
    Trains/computes, saving results under ``out_dir`` *as it goes* (so an
    interrupted run resumes from its last checkpoint and never loses finished
    work), and returns the results: plain JSON types and NumPy arrays on the
    host.  The results name the data actually used (``results["data"]``).
``plot(results, out_dir) -> list[pathlib.Path]``
    Figures from saved results only (re-plotting never re-trains).
``report(results) -> dict``
    ``{"figures": [(file name relative to out_dir, caption)], "claims": [Verdict, ...],
    "checks": [Verdict, ...]}`` for ``report.md``: each claim a
    :class:`minilplr.theory.verdicts.Verdict` (status, measured, threshold,
    margin), ``checks`` (optional) the identities shown apart; the runner
    renders them (:mod:`minilplr.experiments.runner`, "The claims contract").

The modules are listed in :data:`EXPERIMENTS` in the order ``run_all`` runs them.
"""

EXPERIMENTS: list[str] = [
    "fig1_linear_convergence",
    "fig2_pl_loglog",
    "ntk_stability",
    "fig3_resnet_sgd",
    "fig4_initialisation",
    "fig5_width_ablation",
    "linear_width",
    "linear_schedules",
    "linear_init",
    "linear_imbalance",
    "lplr_map",
    "sgd_noise",
    "architecture",
]
"""Run order of ``scripts/run_all.py``: the LPLR paper's MNIST figures, then the linear-network paper's."""
