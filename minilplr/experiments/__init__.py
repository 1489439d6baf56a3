"""The experiments: one module per figure, ``run(config) -> results`` and ``plot(results)`` kept apart.

Every experiment module in this package defines

``NAME`` : str
    Short id used by ``scripts/run_all.py --only`` and as the results folder name.
``TITLE`` : str
    The figure of which paper it reproduces (or "not in the paper: ...").
``PRESETS`` : dict
    ``{"quick": {...}, "paper": {...}}``: complete configurations (plain JSON
    types).  ``quick`` runs the same pipeline at small size in a few minutes
    on a 2-core CPU; ``paper`` uses the paper's settings.
``run(config, out_dir, backend=None, progress=True) -> dict``
    Trains/computes, saving results under ``out_dir`` *as it goes* (so an
    interrupted run resumes from its last checkpoint and never loses finished
    work), and returns the results: plain JSON types and NumPy arrays on the
    host.  The results name the data actually used (``results["data"]``).
``plot(results, out_dir) -> list[pathlib.Path]``
    Figures from saved results only (re-plotting never re-trains).
``report(results) -> dict``
    ``{"figures": [(path_relative_to_out_dir, caption)], "claims": [
    {"claim": str, "measured": str, "holds": True | False | None}]}`` for
    ``report.md``.

The modules are listed in :data:`EXPERIMENTS` in the order ``run_all`` runs them.
"""

EXPERIMENTS: list[str] = []
