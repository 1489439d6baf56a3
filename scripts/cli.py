"""What the command-line scripts share (``run_all.py``, ``upgrade_results.py``): one-line usage errors, ``--seed``.

Imported as ``scripts.cli`` (each script puts the repository root on ``sys.path``).
"""
from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``run_all.py: argument --seed: expected …`` (exit 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def seed_argument(text: str) -> int:
    """``--seed``: a non-negative integer (NumPy's generators refuse negative seeds, late)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value
