r"""A study as an experiment: its cells from the spec, run through the sweep, its table, claims, figures, report.

:class:`Study` has the experiment interface of :mod:`minilplr.experiments`
(``NAME``, ``TITLE``, ``PRESETS``, ``run``, ``plot``, ``report``), so the
runner treats a spec like any experiment: results in
``<out>/<configuration>/<study name>/``, each cell saved as it finishes
(``pilots/`` and ``cells/``, :func:`minilplr.sweep.run_cells`), a killed
study resumes with its missing cells, and ``report.md`` gets its section.
The configuration (``PRESETS[preset]``) is the resolved spec, so its hash
covers every setting, claim and panel; the results carry it, so
:func:`report` and :func:`plot` need nothing but the saved results.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

from ... import sweep
from ...backend import get_backend
from ...store import atomic_write_bytes, config_hash, to_jsonable
from . import claims as _claims
from . import diagnostics as _diag
from . import panels as _panels
from .data import file_sha256
from .kinds import get_kind
from .spec import STEP_KEYS, read_spec, resolve_preset

__all__ = ["Study", "load_study", "expand", "table"]


def _name(settings: dict, axes: list) -> str:
    parts = []
    for a in axes:
        if a not in settings:  # a step-size axis of another product (eta there, c_beta0 here)
            continue
        v = settings[a]
        parts.append(f"{a}={v:g}" if isinstance(v, float) else f"{a}={v}")
    return ",".join(parts).replace(" ", "") or "base"


def expand(config: dict, backend: str) -> list:
    """The study's cells before their pilots: ``[(name, settings, grids)]``, in grid order, each distinct once.

    ``settings`` is the kind's defaults, then [model] and [run], then the
    cell's axis values (an axis overrides a fixed setting in its product),
    plus ``backend``; the step is still ``eta`` or ``c_beta0``
    (:func:`cell_config` turns it into ``lr``).  ``grids``: the indices of the
    products that hold the cell (claims and panels may pick one, ``grid = i``).
    """
    kind = get_kind(config["kind"])
    axes = list(dict.fromkeys(a for g in config["grid"] for a in g))
    out, seen = [], {}
    for i, g in enumerate(config["grid"]):
        for values in itertools.product(*g.values()):
            s = {**kind.defaults, **config["model"], **config["run"], **dict(zip(g, values)), "backend": backend}
            if s.get("data_source") == "auto":
                s["data_source"] = None  # the presets' None means auto
            if config.get("data"):
                s["data"] = config["data"]
                s["data_sha256"] = config["data_sha256"]  # the file's content, not only its name
            h = config_hash(s)
            if h in seen:
                if i not in seen[h][2]:
                    seen[h][2].append(i)
                continue
            seen[h] = (_name(s, axes), s, [i])
            out.append(seen[h])
    return out


def _pilot_config(kind, s: dict) -> dict:
    return {k: s[k] for k in kind.pilot_keys if k in s}


def _pilot_name(p: dict) -> str:
    return "p" + config_hash(p)[:16]


def cell_config(kind, s: dict, pilot: dict | None) -> dict:
    """What the cell function receives: the settings without ``eta``/``c_beta0``, with ``lr`` (and ``beta0``)."""
    cell = {k: v for k, v in s.items() if k not in STEP_KEYS}
    if "c_beta0" in s:
        cell["lr"] = float(s["c_beta0"]) / float(pilot["beta"])
    elif "eta" in s:
        cell["lr"] = float(s["eta"])
    if pilot is not None:
        cell["beta0"] = {k: pilot[k] for k in (kind.beta_keys or pilot) if k in pilot}
    return cell


def table(config: dict, cells: dict, settings: dict, grids: dict) -> list:
    """One row per cell: ``{"name", "settings", "grids", "status", "diag"}`` (the settings as the spec names them)."""
    rows = []
    for name, res in cells.items():
        s = {k: v for k, v in settings[name].items() if k not in ("backend", "beta0")}
        rows.append(dict(name=name, settings=s, grids=list(grids[name]), status=res.get("status", "finished"),
                         diag=_diag.measure(config["diagnostics"], res, settings[name])))
    return rows


class Study:
    """One spec file as an experiment (:mod:`minilplr.experiments`'s interface)."""

    def __init__(self, spec: dict, path: str = "<spec>"):
        self.spec, self.path = spec, str(path)
        self.NAME = spec["study"]["name"]
        self.TITLE = spec["study"]["title"] or f"a study from {self.path} (cell kind {spec['study']['kind']})"
        self.PRESETS = {}
        data = spec["study"].get("data")
        data_sha256 = file_sha256(data) if data else None  # read once: a file changed later is another study
        for p in ("quick", "paper"):
            r = resolve_preset(spec, p, self.path)
            self.PRESETS[p] = dict(study=self.NAME, kind=spec["study"]["kind"], title=self.TITLE,
                                   data=data, data_sha256=data_sha256, model=r["model"], run=r["run"], grid=r["grid"],
                                   diagnostics=spec["diagnostics"], claims=spec["claims"], panels=spec["panels"])

    @classmethod
    def saved(cls, results: dict) -> "Study":
        """The study of saved results (their ``config``), for re-plotting and reporting without its spec file."""
        cfg = results["config"]
        self = cls.__new__(cls)
        self.spec, self.path = None, "<saved results>"
        self.NAME, self.TITLE, self.PRESETS = cfg["study"], cfg["title"], {cfg["preset"]: cfg}
        return self

    def run(self, config, out_dir, backend=None, progress=True) -> dict:
        """The pilots (where the step is ``c/β_0``), then every cell, each saved as it finishes; the table, the verdicts."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        # the marker by which the runner's report finds a saved study (minilplr.experiments.runner.saved_studies)
        atomic_write_bytes(out_dir / "study.json", json.dumps(to_jsonable(config), sort_keys=True, indent=1).encode())
        kind = get_kind(config["kind"])
        be = get_backend(backend).name
        todo = expand(config, be)
        needs = kind.pilot is not None and (kind.pilot_always or any("c_beta0" in s for _, s, _ in todo))
        pilots = {}
        if needs:
            pcs = {}
            for _, s, _ in todo:
                p = _pilot_config(kind, s)
                pcs.setdefault(_pilot_name(p), p)
            pilots = sweep.run_cells(kind.function("pilot"), pcs, out_dir, folder="pilots", progress=progress)
        cells, settings, grids = {}, {}, {}
        for name, s, gs in todo:
            grids[name] = gs
            pilot = pilots[_pilot_name(_pilot_config(kind, s))] if needs else None
            cells[name] = cell_config(kind, s, pilot)
            settings[name] = dict(s, lr=cells[name].get("lr"))
        done = sweep.run_cells(kind.function("cell"), cells, out_dir, folder="cells", progress=progress)
        rows = table(config, done, settings, grids)
        verdicts = [v.to_dict() for c in config["claims"] for v in _claims.judge_all(c, rows)]
        first = next(iter(done.values()))
        return dict(study=self.NAME, status="partly diverged" if any(r["status"] != "finished" for r in rows)
                    else "finished", data=str(first.get("data", "n/a")), table=rows, verdicts=verdicts,
                    cells=len(rows), pilots=len(pilots))

    def plot(self, results, out_dir):
        """Every panel of the spec, from the saved table."""
        cfg = results["config"]
        reps = get_kind(cfg["kind"]).replicates
        return [_panels.draw(self.NAME, i, p, results["table"], out_dir, results.get("data", ""), reps)
                for i, p in enumerate(cfg["panels"])]

    def report(self, results) -> dict:
        """The panels with captions, and the claims as :class:`~minilplr.theory.verdicts.Verdict` rows.

        The claims are judged again from the saved table (as every experiment's
        ``report`` judges its saved results), so a saved study read by a newer
        minilplr shows the verdicts of the code that reads it, never stale ones;
        the verdicts stored by :meth:`run` stay in ``results`` as its record.
        """
        cfg = results["config"]
        figs = [(_panels.file_name(self.NAME, i, p), f"{p['title'] or p['kind']}: " + (
                 f"the predicted {p['x']} where {p['y']} = {p['target']:g}, per {p['per']} (a prediction)"
                 if p["kind"] == "closing_width" else
                 f"{', '.join(p['y']) if p['kind'] == 'lines' else p['value']} over "
                 f"{p['x']}{' and ' + p['y'] if p['kind'] == 'heatmap' else ''}") + f"; {results.get('cells')} cells.")
                for i, p in enumerate(cfg["panels"])]
        return dict(figures=figs, claims=[v for c in cfg["claims"] for v in _claims.judge_all(c, results["table"])])


def load_study(path) -> Study:
    """The :class:`Study` of the spec file ``path`` (:class:`~.spec.SpecError`: one line, before anything runs)."""
    return Study(read_spec(path), path)
