"""Run experiments, plot them from saved results, and write ``report.md``.

Used by ``scripts/run_all.py``; importable so tests can drive it.
"""
from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path

from . import EXPERIMENTS
from .io import atomic_write_bytes, config_hash, load_results, save_results, to_jsonable

__all__ = ["load_experiment", "run_experiments", "write_report"]


def load_experiment(name: str):
    """The experiment module called ``name`` (see :data:`minilplr.experiments.EXPERIMENTS`)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"only: unknown experiment {name!r}; expected some of {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"minilplr.experiments.{name}")


def _config(mod, preset, overrides):
    """The preset's configuration with the command line's overrides.

    ``seed`` replaces a single ``seed`` and shifts seed lists (``seeds``,
    ``init_seeds``) to start at it; ``data_source`` applies where the
    experiment reads a data set (the linear-network experiments make
    synthetic data).
    """
    if preset not in mod.PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(mod.PRESETS)}, got {preset!r}")
    cfg = dict(mod.PRESETS[preset])
    for k, v in overrides.items():
        if v is None:
            continue
        if k in cfg:
            cfg[k] = v
        if k == "seed":
            for lk in ("seeds", "init_seeds"):
                if lk in cfg:
                    cfg[lk] = [int(v) + i for i in range(len(cfg[lk]))]
    cfg["preset"] = preset
    return cfg


def run_experiments(names, *, preset="quick", out="results", backend=None, plot_only=False, overrides=None,
                    progress=True, log=print):
    """Run (or resume, or only re-plot) each experiment; returns ``{name: status}``.

    Each experiment's results live in ``out/<name>/``; a finished result with
    the same configuration is reused, not recomputed.  A failing experiment is
    reported and the others still run; nothing finished is lost.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    status = {}
    for name in names:
        mod = load_experiment(name)
        cfg = _config(mod, preset, overrides or {})
        folder = out / name
        t0 = time.perf_counter()
        try:
            res = load_results(folder)
            fresh = res is not None and res.get("config_hash") == config_hash(cfg) and res.get("status") != "running"
            if plot_only:
                if res is None:
                    log(f"[{name}] no saved results in {folder}: run without --plot-only first")
                    status[name] = "missing"
                    continue
            elif not fresh:
                log(f"[{name}] {mod.TITLE}")
                res = mod.run(cfg, folder, backend=backend, progress=progress)
                res.setdefault("status", "finished")
                res["config"] = cfg
                res["config_hash"] = config_hash(cfg)
                res["seconds"] = time.perf_counter() - t0
                save_results(folder, res)
            else:
                log(f"[{name}] reusing finished results in {folder} (delete the folder to recompute)")
            figs = mod.plot(res, folder)
            rep = mod.report(res)
            atomic_write_bytes(folder / "report.json", json.dumps(to_jsonable(rep), indent=1).encode())
            status[name] = res.get("status", "finished")
            log(f"[{name}] {status[name]} in {time.perf_counter() - t0:.1f} s; figures: "
                + ", ".join(str(folder / Path(f).name) for f in figs))
        except KeyboardInterrupt:
            log(f"[{name}] interrupted: finished results so far are saved; run again to resume")
            raise
        except Exception as exc:  # report and go on with the next experiment
            status[name] = "failed"
            log(f"[{name}] FAILED: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
    write_report(out, names)
    return status


def write_report(out: Path, names) -> Path:
    """``out/report.md``: every figure with its caption, and the claims table."""
    out = Path(out)
    lines = ["# minilplr: results report", ""]
    lines.append("Each section: the figure(s) an experiment produced, their captions (data, sizes, seeds), "
                 "and the paper's claims against what we measured.")
    lines.append("")
    claims_all = []
    for name in names:
        rep_path = out / name / "report.json"
        res = load_results(out / name)
        lines.append(f"## {name}")
        lines.append("")
        if not rep_path.exists() or res is None:
            lines.append("_No results (not run, or failed: see the log)._")
            lines.append("")
            continue
        rep = json.loads(rep_path.read_text())
        mod = load_experiment(name)
        lines.append(f"*{mod.TITLE}*  ")
        lines.append(f"Data: {res.get('data', 'n/a')}. Preset: {res.get('config', {}).get('preset', '?')}; "
                     f"status: **{res.get('status', '?')}**; wall time {res.get('seconds', float('nan')):.1f} s.")
        lines.append("")
        for fig, cap in rep.get("figures", []):
            lines.append(f"![{name}]({name}/{fig})")
            lines.append("")
            lines.append(f"{cap}")
            lines.append("")
        for c in rep.get("claims", []):
            claims_all.append((name, c))
    lines.append("## Claims against measurements")
    lines.append("")
    lines.append("| experiment | claim | measured | holds |")
    lines.append("|---|---|---|---|")
    for name, c in claims_all:
        mark = {True: "yes", False: "**no**", None: "n/a"}[c.get("holds")]
        lines.append(f"| {name} | {c['claim']} | {c['measured']} | {mark} |")
    lines.append("")
    path = out / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path
