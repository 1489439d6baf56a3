"""Run experiments, plot them from saved results, and write ``report.md``.

Used by ``scripts/run_all.py``; importable so tests can drive it.

A run holds ``<out>/.lock`` (``fcntl.flock``) from start to end: a second
run on the same ``--out`` is refused (:class:`OutputLocked`, naming the
process that holds it) instead of interleaving its files with the first.
While holding it, a run removes the temporary files that killed runs left
behind (``.<name>.<random>.tmp``, :func:`minilplr.store.atomic_write_bytes`'s
naming).
"""
from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import sys
import time
import traceback
from pathlib import Path

from .. import sweep
from ..store import atomic_write_bytes, config_hash, to_jsonable
from ..validate import check_int, one_line
from . import EXPERIMENTS
from .io import load_results, save_results
from .timing import CellUsage, format_memory, format_phases, format_table, measure, peak_memory_mib, phase

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None

__all__ = ["OutputLocked", "Interrupted", "load_experiment", "run_experiments", "write_report", "lock_output",
           "sweep_temporaries"]

#: The lock file inside ``--out``.
LOCK_NAME = ".lock"
#: Temporary files as :func:`minilplr.store.atomic_write_bytes` names them: ``.<name>.<random>.tmp``.
_TEMPORARY = re.compile(r"^\..+\.[^.]+\.tmp$")


class OutputLocked(RuntimeError):
    """Another run holds the output folder (``scripts/run_all.py`` prints it as one line)."""


@contextlib.contextmanager
def lock_output(out: Path):
    """Hold ``out/.lock`` exclusively for the duration of the block (non-blocking).

    Raises
    ------
    OutputLocked
        Another process holds it; the message names the folder and that process's PID.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            for _ in range(100):  # the holder writes its PID just after taking the lock: give it a moment
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                if holder:
                    break
                time.sleep(0.01)
            raise OutputLocked(f"--out {out}: in use by another run (PID {holder or 'unknown'}); wait for it to "
                               "finish, or write to another folder") from None
        pid = f"{os.getpid():>12}\n".encode()  # one fixed-width write: a reader sees the old PID or ours, not a mix
        os.pwrite(fd, pid, 0)
        os.ftruncate(fd, len(pid))
        yield
    finally:
        os.close(fd)  # closing releases the lock; the file stays (removing it would race a newcomer)


def sweep_temporaries(out: Path, before: float) -> int:
    """Delete our temporary files under ``out`` last modified before ``before``; returns how many.

    Only call while holding :func:`lock_output`: then no run of ours is
    writing there, and every such file is a leftover of a killed run.
    """
    n = 0
    for root, _dirs, files in os.walk(out):
        for f in files:
            p = Path(root) / f
            if _TEMPORARY.match(f):
                with contextlib.suppress(FileNotFoundError):
                    if p.stat().st_mtime < before:
                        p.unlink()
                        n += 1
    return n


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
    synthetic data).  ``data_source="auto"`` is the presets' ``None``, so the
    default and an explicit ``--data auto`` share one configuration hash and
    reuse each other's results.
    """
    if preset not in mod.PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(mod.PRESETS)}, got {preset!r}")
    cfg = dict(mod.PRESETS[preset])
    for k, v in overrides.items():
        if k == "seed" and v is not None:
            v = check_int("seed", v, 0)
        if k == "data_source" and v is not None and v not in ("auto", "download", "offline"):
            raise ValueError(f"data_source: expected one of auto, download, offline, got {v!r}")
        if k == "data_source" and v == "auto":
            v = None  # the presets' None means auto
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


def _config_diff(saved, asked) -> str:
    """``"seed: saved 0, asked 5; …"``: the keys where two configurations differ (three at most)."""
    saved, asked = to_jsonable(saved or {}), to_jsonable(asked)
    keys = [k for k in sorted(set(saved) | set(asked), key=lambda k: (k != "preset", k))
            if saved.get(k) != asked.get(k)]

    def show(k, v):
        return "'auto'" if k == "data_source" and v is None else repr(v)  # None is how presets say auto

    text = "; ".join(f"{k}: saved {show(k, saved.get(k))}, asked {show(k, asked.get(k))}" for k in keys[:3])
    return text + (f"; and {len(keys) - 3} more" if len(keys) > 3 else "") if keys else "no key differs"


#: Per-run lines and full tracebacks of expected failures: ``run_all.py --verbose`` sets it to INFO.
_LOG = logging.getLogger("minilplr.experiments")
#: A bad-argument message of the package's form, ``"<name>: expected …"``.
_NAMED = re.compile(r"^[A-Za-z_][\w.\[\]-]*: expected ")


def _expected(exc) -> bool:
    """Is ``exc`` a failure its message explains (no traceback needed)?

    Expected: every error minilplr raises on purpose (its own classes:
    :class:`~minilplr.data.download.DownloadError` when the data is
    unavailable, :class:`~minilplr.train.loops.Diverged`, the data formats' errors,
    …), the system's ``OSError`` (a full disk, a permission), and a
    ``ValueError``/``TypeError`` whose message names the argument
    (``"seed: expected …"``).  Anything else is a bug: its traceback is printed.
    """
    if type(exc).__module__.startswith("minilplr.") or isinstance(exc, OSError):
        return True
    return isinstance(exc, (ValueError, TypeError)) and bool(_NAMED.match(str(exc)))


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_experiments`; the message says what is saved and how to resume.

    ``.name`` was running, ``.finished`` lists the experiments finished before it.
    """

    def __init__(self, name, finished, out):
        self.name, self.finished, self.out = name, list(finished), Path(out)
        done = f"the results of {', '.join(self.finished)} and " if self.finished else ""
        super().__init__(f"interrupted during {name}: {done}the runs and checkpoints {name} finished are saved in "
                         f"{self.out}; run the same command again to resume")


def run_experiments(names, *, out="results", log=print, workers=None, cluster=None, **options):
    """Run (or resume, or only re-plot) each experiment; returns ``{name: status}``.

    ``options``: ``preset``, ``backend``, ``plot_only``, ``overrides``,
    ``progress`` (see :func:`_run_experiments`).  ``workers``/``cluster``:
    where the experiments' grids run (:func:`minilplr.sweep.use`;
    default one cell after another in this process).  The whole run holds
    ``out/.lock``; a run on a folder another run holds raises
    :class:`OutputLocked` before touching anything.  Temporary files left
    by killed runs are removed first (one line says how many).
    """
    out = Path(out)
    with lock_output(out), sweep.use(workers=workers, cluster=cluster, usage=CellUsage()):
        swept = sweep_temporaries(out, before=time.time())
        if swept:
            log(f"removed {swept} temporary file(s) left in {out} by an interrupted run")
        return _run_experiments(names, out=out, log=log, **options)


def _run_experiments(names, *, preset="quick", out="results", backend=None, plot_only=False, overrides=None,
                     progress=True, log=print):
    """Run (or resume, or only re-plot) each experiment; returns ``{name: status}``.

    Each experiment's results live in ``out/<name>/``; a finished result with
    the same configuration is reused, not recomputed.  A failing experiment is
    reported and the others still run; nothing finished is lost.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    status, timings, workers = {}, {}, {}
    for name in names:
        mod = load_experiment(name)
        cfg = _config(mod, preset, overrides or {})
        folder = out / name
        t0 = time.perf_counter()
        with measure() as timer:  # where the time goes, by phase (minilplr.experiments.timing)
            try:
                res = load_results(folder, log=log)  # damaged: moved aside with one line, recomputed
                fresh = res is not None and res.get("config_hash") == config_hash(cfg) and res.get("status") != "running"
                if plot_only:
                    if res is None:
                        log(f"[{name}] no saved results in {folder}: run without --plot-only first")
                        status[name] = "missing"
                        continue
                    if res.get("config_hash") != config_hash(cfg):
                        log(f"[{name}] the results saved in {folder} belong to another configuration "
                            f"({_config_diff(res.get('config'), cfg)}): pass the options they were run with, "
                            "or run without --plot-only to compute these")
                        status[name] = "mismatch"
                        continue
                elif not fresh:
                    log(f"[{name}] {mod.TITLE}")
                    res = mod.run(cfg, folder, backend=backend, progress=progress)
                    res.setdefault("status", "finished")
                    res["config"] = cfg
                    res["config_hash"] = config_hash(cfg)
                    res["seconds"] = time.perf_counter() - t0
                    res["timing"] = timer.stop()  # the computation's seconds by phase, saved with its results
                    save_results(folder, res)
                else:
                    log(f"[{name}] reusing finished results in {folder} (delete the folder to recompute)")
                with phase("plot"):
                    figs = mod.plot(res, folder)
                    rep = mod.report(res)
                    atomic_write_bytes(folder / "report.json", json.dumps(to_jsonable(rep), indent=1).encode())
                status[name] = res.get("status", "finished")
                log(f"[{name}] {status[name]} in {time.perf_counter() - t0:.1f} s; figures: "
                    + ", ".join(str(folder / Path(f).name) for f in figs))
            except KeyboardInterrupt:
                raise Interrupted(name, [n for n, s in status.items() if s not in ("failed", "missing", "mismatch")],
                                  out) from None
            except Exception as exc:  # report and go on with the next experiment
                status[name] = "failed"
                log(f"[{name}] FAILED: {one_line(exc)}")
                if not _expected(exc) or _LOG.isEnabledFor(logging.INFO):  # a bug, or --verbose
                    traceback.print_exc(file=sys.stderr)
        timings[name] = dict(timer.seconds)
        workers.update({w: max(m, workers.get(w, 0.0)) for w, m in timer.workers.items()})  # the grids' workers
        log(f"[{name}] time {format_phases(timings[name], timer.total)}")
    if timings:
        log("where the time went, seconds by phase (minilplr/experiments/timing.py says what each counts):\n"
            + format_table(timings) + ("\n" + format_memory(workers) if peak_memory_mib() else ""))
    try:
        write_report(out, names, log=log)
    except Exception as exc:  # e.g. a full disk: the experiments' own results are saved all the same
        log(f"report.md: not written: {type(exc).__name__}: {exc}")
    return status


def write_report(out: Path, names, log=print) -> Path:
    """``out/report.md``: every figure with its caption, and the claims table.

    Each experiment's section stands alone: missing, damaged (moved aside,
    one line to ``log``) or unreadable results give that section a one-line
    note, and the other sections are written all the same.
    """
    out = Path(out)
    lines = ["# minilplr: results report", ""]
    lines.append("Each section: the figure(s) an experiment produced, their captions (data, sizes, seeds), "
                 "and the paper's claims against what we measured.")
    lines.append("")
    claims_all = []
    for name in names:
        lines.append(f"## {name}")
        lines.append("")
        try:
            body, rows = _report_section(out, name, log)
        except Exception as exc:  # this section only: the others are still written
            note = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            log(f"[{name}] report.md: section not written: {note}")
            body, rows = [f"_Not reported: {note}. Run it again to recompute._", ""], []
        lines += body
        claims_all += rows
    lines.append("## Claims against measurements")
    lines.append("")
    lines.append("| experiment | claim | measured | holds |")
    lines.append("|---|---|---|---|")
    lines += claims_all
    lines.append("")
    path = out / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path


def _report_section(out: Path, name: str, log) -> tuple[list, list]:
    """One experiment's section of ``report.md`` and its rows of the claims table; raises if unreadable."""
    res = load_results(out / name, log=log)
    rep_path = out / name / "report.json"
    if res is None or not rep_path.exists():
        return ["_No results (not run, failed, or damaged and moved aside: see the log)._", ""], []
    try:
        rep = json.loads(rep_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{rep_path} is damaged ({exc})") from None
    mod = load_experiment(name)
    lines = [f"*{mod.TITLE}*  ",
             f"Data: {res.get('data', 'n/a')}. Preset: {res.get('config', {}).get('preset', '?')}; "
             f"status: **{res.get('status', '?')}**; wall time {res.get('seconds', float('nan')):.1f} s.", ""]
    for fig, cap in rep.get("figures", []):
        lines += [f"![{name}]({name}/{fig})", "", f"{cap}", ""]
    rows = []
    for c in rep.get("claims", []):
        mark = {True: "yes", False: "**no**", None: "n/a"}[c.get("holds")]
        rows.append(f"| {name} | {c['claim']} | {c['measured']} | {mark} |")
    return lines, rows
