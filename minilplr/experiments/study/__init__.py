"""Studies as spec files: a grid, its diagnostics, its claims and its panels, written as TOML, run without Python.

``python scripts/run_all.py --study studies/lplr_size.toml`` reads the spec
(:mod:`.spec`, every key checked first: one line, exit 2), runs its cells
through the sweep (:mod:`minilplr.sweep`: saved as they finish, resumed after
a kill), and writes its figures and a section of ``report.md``, like every
experiment.  The package, one topic a module:

* :mod:`.spec` — the format, parsing and checking;
* :mod:`.kinds` — the cell-kind registry (``gd``, ``lplr_map``; other packages' ``CELL_KIND``);
* :mod:`.data` — a user's own ``.npz``;
* :mod:`.diagnostics` — the numbers a cell's result gives;
* :mod:`.claims` — rules judged in the verdict vocabulary (power laws, extrapolation, held-out cell, thresholds);
* :mod:`.closing` — the closing width per depth, n, ...: ``H^*(v) = H_0 (t/f(H_0, v))^{1/a}`` and its assumption;
* :mod:`.panels` — the figures;
* :mod:`.run` — :class:`~.run.Study`, a spec as an experiment.

``docs/09-your-own-study.md`` walks through a spec.
"""
from .kinds import KINDS, CellKind, get_kind, register_kind
from .run import Study, load_study
from .spec import SpecError, read_spec

__all__ = ["Study", "load_study", "read_spec", "SpecError", "CellKind", "register_kind", "get_kind", "KINDS"]
