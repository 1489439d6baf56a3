"""Run experiments, plot them from saved results, and write ``report.md``.

Used by ``scripts/run_all.py``; importable so tests can drive it.

Where a run writes (:mod:`minilplr.experiments.output`): it holds ``out``
(a run in, around or inside it is refused in one line), removes only the
leftovers of killed runs of its own, and writes into the folder of its
configuration, ``out/<configuration>/`` (:func:`configuration`: the preset,
and ``--seed`` and ``--data`` where they change anything: ``quick``,
``quick-seed1``, ``paper-offline``).  So switching configuration on one
``--out`` keeps the other's results, and switching back reuses them.

``report.md`` (in the configuration folder) is rebuilt after every run from
every experiment saved there for that configuration, whatever ``--only``
asked, from the verified results (not from a file a reader could edit); a
``--plot-only`` run that plotted nothing leaves it as it was.

The claims contract (issue 20): what ``report(results)`` returns
-----------------------------------------------------------------
Every experiment's ``report(results)`` returns a dict::

    {"figures": [(file name relative to the experiment's folder, caption), ...],
     "claims": [Verdict, ...],        # the paper's claims, judged
     "checks": [Verdict, ...]}        # optional: identities, solver checks

Each entry of ``claims`` and ``checks`` is a
:class:`minilplr.theory.verdicts.Verdict`, built by one of that module's
judges (``compare``, ``within``, ``identity``, ``vacuous``, ``untestable``,
``too_short``, ``monotone``, ``rank_correlation``, ``power_law_exponent``)
or of :mod:`minilplr.theory.convergence` (``envelope_bound``,
``per_step_contraction``, ``linear_convergence``): a status among
``holds | fails | vacuous | untestable | identity``, the measured number,
the threshold, the signed margin and the marginal flag.  No experiment
writes a table row itself: :func:`write_report` renders every row with
:func:`~minilplr.theory.verdicts.render_row` under
:data:`~minilplr.theory.verdicts.TABLE_HEADER` (one format for every
experiment), in two tables:

* *Claims against measurements*: every ``claims`` entry of every
  experiment, in :data:`~minilplr.experiments.EXPERIMENTS` order, with a
  count of each status and of the marginal rows above it;
* *Solver checks (identities)*: every ``checks`` entry, kept apart because an
  identity (e.g. Theorem 5.1 (6)–(8), a Rayleigh quotient) is true for every
  network and tests the code, not the theory.  A failing identity says
  ``fails`` there.

``report()`` computes its verdicts from the saved results only (it never
trains), so ``--plot-only`` re-judges saved arrays with the current judges.
A claim that is not a :class:`Verdict` (e.g. the old ``{"claim", "measured",
"holds"}`` dict, without threshold or margin) is refused
(:func:`claim_verdict`); that section of the report says so in one line.
"""
from __future__ import annotations

import importlib
import logging
import re
import sys
import time
import traceback
from pathlib import Path

from .. import sweep
from ..store import Damaged, atomic_write_bytes, config_hash, load_unit, to_jsonable
from ..theory.verdicts import STATUSES, TABLE_HEADER, Verdict, render_row, untestable
from ..validate import check_int, one_line
from . import EXPERIMENTS
from .io import load_results, save_results
from .output import (claim_configuration, configuration_folder, lock_output, older_layout, read_configuration,
                     saved_configurations, sweep_temporaries)
from .timing import CellUsage, format_memory, format_phases, format_table, measure, peak_memory_mib, phase

__all__ = ["Interrupted", "OVERRIDES", "load_experiment", "experiment_config", "configuration", "run_experiments",
           "write_report", "claim_verdict", "status_counts"]

#: The overrides the command line may give: ``--seed`` and ``--data``.
OVERRIDES = ("seed", "data_source")
#: Statuses of an experiment that a run did not plot (``--plot-only`` found nothing usable).
UNPLOTTED = ("missing", "mismatch", "damaged")


def load_experiment(name: str):
    """The experiment module called ``name`` (see :data:`minilplr.experiments.EXPERIMENTS`)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"only: unknown experiment {name!r}; expected some of {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"minilplr.experiments.{name}")


def _module(name: str, studies=None):
    """The study ``name`` of ``studies`` (``{name: Study}``, spec files given with ``run_all.py --study``), else
    the experiment module (:func:`load_experiment`): a study acts as one more experiment."""
    return studies[name] if studies and name in studies else load_experiment(name)


def experiment_config(mod, preset, overrides):
    """The preset's configuration with the command line's overrides.

    ``seed`` replaces a single ``seed`` and shifts seed lists (``seeds``,
    ``init_seeds``) to start at it; ``data_source`` applies where the
    experiment reads a data set (the linear-network experiments make
    synthetic data).  ``data_source="auto"`` is the presets' ``None``, so the
    default and an explicit ``--data auto`` share one configuration hash and
    reuse each other's results.  Any other key of ``overrides`` is refused.
    """
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ValueError(f"overrides: expected keys among {', '.join(OVERRIDES)}, got {', '.join(map(repr, unknown))}")
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


def configuration(preset: str, overrides: dict | None = None) -> dict:
    """The configuration a run's options name: ``{"name", "preset", "seed", "data"}``.

    ``name`` is the folder of its results: the preset, then ``seed<S>`` if
    ``--seed S`` changes any experiment's configuration (every preset starts
    at seed 0, so ``--seed 0`` is the default's folder), then the data source
    if ``--data`` changes any (``auto`` never does): ``quick``,
    ``quick-seed1``, ``paper-seed2-offline``.  The same for every ``--only``.
    """
    overrides = dict(overrides or {})
    mods = [load_experiment(n) for n in EXPERIMENTS]
    plain = [config_hash(experiment_config(m, preset, {})) for m in mods]

    def changes(key):
        v = overrides.get(key)
        if v is None:
            return None
        hashes = [config_hash(experiment_config(m, preset, {key: v})) for m in mods]
        return v if hashes != plain else None

    seed, data = changes("seed"), changes("data_source")
    seed = None if seed is None else int(seed)
    data = None if data in (None, "auto") else data
    name = "-".join([preset] + ([f"seed{seed}"] if seed is not None else []) + ([data] if data else []))
    return {"name": name, "preset": preset, "seed": seed, "data": data}


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


def run_experiments(names, *, out="results", preset="quick", overrides=None, log=print, workers=None, cluster=None,
                    studies=None, **options):
    """Run (or resume, or only re-plot) each experiment; returns ``{name: status}``.

    Results go to the configuration folder ``out/<configuration(preset, overrides)["name"]>``.
    ``options``: ``backend``, ``plot_only``, ``progress`` (see
    :func:`_run_experiments`).  ``workers``/``cluster``: where the
    experiments' grids run (:func:`minilplr.sweep.use`; default
    one cell after another in this process).  ``studies``: ``{name: Study}``,
    spec files run as experiments (their names among ``names``).  The whole run holds ``out``
    (:func:`minilplr.experiments.output.lock_output`: a run in, around or
    inside it raises :class:`~minilplr.experiments.output.OutputLocked` before
    anything is written).  Temporary files left by killed runs are removed
    first (one line says how many).

    Raises
    ------
    ValueError
        An unknown experiment or preset, an experiment named twice, a bad override.
    """
    names = list(names)
    studies = dict(studies or {})
    for name in names:
        _module(name, studies)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"names: expected each experiment once, got {', '.join(twice)} more than once")
    conf = configuration(preset, overrides)
    out = Path(out)
    folder = configuration_folder(out, conf["name"])
    plot_only = options.get("plot_only", False)
    with lock_output(out), sweep.use(workers=workers, cluster=cluster, usage=CellUsage()):
        swept = sweep_temporaries(out, before=time.time())
        if swept:
            log(f"removed {swept} temporary file(s) left in {out} by an interrupted run")
        old = older_layout(out, EXPERIMENTS)
        if old:
            log(f"{out}: {', '.join(old)} hold results of an older minilplr (one folder per experiment, before "
                f"configuration folders); not read: this run uses {folder} (delete them when you no longer need them)")
        if plot_only and read_configuration(folder) is None:
            others = saved_configurations(out)
            for name in names:
                log(f"[{name}] no saved results of the configuration {conf['name']} in {out}: run without --plot-only "
                    "first" + (f" (saved there: {', '.join(others)})" if others else ""))
            return {name: "missing" for name in names}
        if not plot_only:
            claim_configuration(folder, conf)
        status = _run_experiments(names, preset=preset, overrides=overrides, out=folder, log=log, studies=studies,
                                  **options)
        if plot_only and all(s in UNPLOTTED for s in status.values()):
            return status  # refused: the report stays as it was
        try:
            configs = {n: experiment_config(_module(n, studies), preset, overrides or {})
                       for n in list(EXPERIMENTS) + list(studies)}
            write_report(folder, configs=configs, studies=studies, log=log)
        except Exception as exc:  # e.g. a full disk: the experiments' own results are saved all the same
            log(f"report.md: not written: {type(exc).__name__}: {exc}")
        return status


def _run_experiments(names, *, preset="quick", out="results", backend=None, plot_only=False, overrides=None,
                     progress=True, log=print, studies=None):
    """Run (or resume, or only re-plot) each experiment in the configuration folder ``out``; ``{name: status}``.

    Each experiment's results live in ``out/<name>/``; a finished result with
    the same configuration is reused, not recomputed.  A failing experiment is
    reported and the others still run; nothing finished is lost.  With
    ``plot_only`` nothing is computed or moved: damaged results are reported
    (status ``"damaged"``) and left for the next full run to recompute.
    """
    out = Path(out)
    status, timings, workers = {}, {}, {}
    for name in names:
        mod = _module(name, studies)
        cfg = experiment_config(mod, preset, overrides or {})
        folder = out / name
        t0 = time.perf_counter()
        with measure() as timer:  # where the time goes, by phase (minilplr.experiments.timing)
            try:
                if plot_only:
                    try:
                        res = load_unit(folder, "results")  # read only: a damaged file stays where it is
                    except Damaged as exc:
                        log(f"[{name}] {exc}: not plotted; run without --plot-only to recompute it")
                        status[name] = "damaged"
                        continue
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
                else:
                    res = load_results(folder, log=log)  # damaged: moved aside with one line, recomputed
                    same = res is not None and res.get("config_hash") == config_hash(cfg)
                    if same and res.get("status") != "running":
                        log(f"[{name}] reusing finished results in {folder} (delete the folder to recompute)")
                    else:
                        if res is not None and not same:
                            log(f"[{name}] the results saved in {folder} are of another configuration "
                                f"({_config_diff(res.get('config'), cfg)}): computing these in their place")
                        log(f"[{name}] {mod.TITLE}")
                        res = mod.run(cfg, folder, backend=backend, progress=progress)
                        res.setdefault("status", "finished")
                        res["config"] = cfg
                        res["config_hash"] = config_hash(cfg)
                        res["seconds"] = time.perf_counter() - t0
                        res["timing"] = timer.stop()  # the computation's seconds by phase, saved with its results
                        save_results(folder, res)
                with phase("plot"):
                    figs = mod.plot(res, folder)
                status[name] = res.get("status", "finished")
                log(f"[{name}] {status[name]} in {time.perf_counter() - t0:.1f} s; figures: "
                    + ", ".join(str(folder / Path(f).name) for f in figs))
            except KeyboardInterrupt:
                raise Interrupted(name, [n for n, s in status.items() if s not in ("failed",) + UNPLOTTED],
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
    return status


def claim_verdict(claim) -> Verdict:
    """One entry of ``report()["claims"]`` as a :class:`~minilplr.theory.verdicts.Verdict` (the claims contract).

    A :class:`Verdict`, or its :meth:`~minilplr.theory.verdicts.Verdict.to_dict`
    form, is returned as it is.  Anything else (e.g. a ``{"claim", "measured",
    "holds"}`` dict of an older minilplr, with neither threshold nor margin)
    is refused in one line: no row says "yes" without them.
    """
    if isinstance(claim, Verdict):
        return claim
    if isinstance(claim, dict) and claim.get("status") in STATUSES and "claim" in claim:
        return Verdict.from_dict(claim)
    raise TypeError(f"claims: expected a minilplr.theory.verdicts.Verdict, got {type(claim).__name__} "
                    f"{str(claim)[:80]!r}")


def status_counts(verdicts) -> str:
    """``"3 holds, 1 fails, 2 vacuous; 1 marginal"``: how many rows say each status (those that occur)."""
    verdicts = list(verdicts)
    n = [f"{sum(v.status == s for v in verdicts)} {s}" for s in STATUSES if any(v.status == s for v in verdicts)]
    marg = sum(v.marginal for v in verdicts)
    return (", ".join(n) or "no rows") + (f"; {marg} marginal (|margin| < 10 %)" if marg else "")


def write_report(folder, names=None, *, configs=None, studies=None, log=print) -> Path:
    """``folder/report.md``: every experiment saved in the configuration folder ``folder``, figures and claims.

    ``names``: the experiments to look for (default all of
    :data:`~minilplr.experiments.EXPERIMENTS`, in their order), whatever a run
    asked: the report never shrinks to the last ``--only``.  ``configs``:
    ``{name: configuration}``; results saved for another configuration get a
    one-line note instead of a section.  Each section is built from the
    verified results (:func:`minilplr.store.load_unit`; the experiment's
    ``report(results)``), so an edited number never reaches the report, and
    nothing is moved: damaged results get a note (the next run of that
    experiment recomputes them).  Experiments not run for this configuration
    are listed in one line.  The claims and the solver checks are two tables
    of :func:`~minilplr.theory.verdicts.render_row` rows (the module
    docstring's claims contract).  Studies (``run_all.py --study``) saved in the
    folder follow, each in its own section: found by their saved results,
    so a study's section stays when a later run runs other experiments.
    """
    folder = Path(folder)
    names = list(EXPERIMENTS if names is None else names)
    names += [n for n in saved_studies(folder) if n not in names]
    sections, claims_all, checks_all, absent = [], [], [], []
    for name in names:
        try:
            body, claims, checks = _report_section(folder, name, (configs or {}).get(name), studies)
        except Exception as exc:  # this section only: the others are still written
            note = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            log(f"[{name}] report.md: section not written: {note}")
            body, claims, checks = [f"_Not reported: {note}. Run it again to recompute._", ""], [], []
        if body is None:
            absent.append(name)
            continue
        sections += [f"## {name}", ""] + body
        claims_all += [(name, v) for v in claims]
        checks_all += [(name, v) for v in checks]
    lines = ["# minilplr: results report", ""]
    lines.append("Each section: the figure(s) an experiment produced, their captions (data, sizes, seeds), "
                 "and the paper's claims against what we measured.")
    lines.append("")
    conf = read_configuration(folder)
    if conf:
        seed = "as in the preset" if conf.get("seed") is None else conf["seed"]
        lines += [f"Configuration `{conf.get('name')}`: preset {conf.get('preset')}, seed {seed}, data "
                  f"{conf.get('data') or 'auto'}.", ""]
    if absent:
        lines += [f"Not run for this configuration yet: {', '.join(absent)}.", ""]
    lines += sections
    lines += ["## Claims against measurements", "",
              "Each row: the measured number and what it rests on, the threshold, the margin (signed, relative: how "
              "far from flipping; marginal within 10 %) and one of five words: holds, fails, vacuous (could not have "
              "failed on this run: why, and the check with power), untestable (the run cannot decide: what would), "
              "identity (minilplr/theory/verdicts/ defines each).", "",
              f"Rows: {status_counts(v for _, v in claims_all)}.", "", TABLE_HEADER]
    lines += [render_row(v, experiment=name) for name, v in claims_all]
    lines.append("")
    if checks_all:
        lines += ["## Solver checks (identities)", "",
                  "Mathematical identities, true for every network: they check the code and the solver, not the "
                  "papers' claims, and are kept out of the table above.", "", TABLE_HEADER]
        lines += [render_row(v, experiment=name) for name, v in checks_all]
        lines.append("")
    path = folder / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path


def saved_studies(folder) -> list:
    """The studies saved in the configuration folder ``folder`` (their folders' names, sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.is_dir() and p.name not in EXPERIMENTS and (p / "results.json").is_file()
                  and (p / "study.json").is_file())


def _report_section(folder: Path, name: str, cfg, studies=None) -> tuple:
    """One experiment's (or study's) section of ``report.md``, its claims and its checks (Verdicts); ``(None, [], [])`` if not saved."""
    try:
        res = load_unit(folder / name, "results")
    except Damaged as exc:
        return [f"_Not reported: {exc}. Run it again to recompute._", ""], [], []
    if res is None:
        return None, [], []
    if cfg is not None and res.get("config_hash") != config_hash(cfg):
        return [f"_Not reported: the results saved in {name}/ are of another configuration "
                f"({_config_diff(res.get('config'), cfg)}). Run it again to recompute._", ""], [], []
    if name in EXPERIMENTS:
        mod = load_experiment(name)
    else:  # a study: its own Study when this run has it, else rebuilt from what it saved
        from .study import Study

        mod = (studies or {}).get(name) or Study.saved(res)
    rep = mod.report(res)
    claims = [claim_verdict(c) for c in rep.get("claims", [])]
    checks = [claim_verdict(c) for c in rep.get("checks", [])]
    lines = [f"*{mod.TITLE}*  ",
             f"Data: {res.get('data', 'n/a')}. Preset: {res.get('config', {}).get('preset', '?')}; "
             f"status: **{res.get('status', '?')}**; wall time {res.get('seconds', float('nan')):.1f} s.", ""]
    for fig, cap in rep.get("figures", []):
        if (folder / name / fig).exists():
            lines += [f"![{name}]({name}/{fig})", "", f"{cap}", ""]
        else:
            lines += [f"_Figure {name}/{fig} not drawn yet (run with --plot-only to draw it)._ {cap}", ""]
    return lines, claims, checks
