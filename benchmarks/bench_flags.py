"""What the benchmarks' command lines share: flags checked before any work, one line per bad flag.

A benchmark exits 0 only when it ran and printed its numbers; 1 when
something failed while it ran; 2 on a bad flag, with one line naming the
flag and what was expected (``bench_gd_step.py: argument --repeats:
expected a positive integer, got '-3'``), before anything is timed.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``<prog>: argument --x: expected …`` (exit 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _int_at_least(minimum: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


#: ``type=`` of a flag that counts something (sizes, repeats): 1, 2, …
positive_int = _int_at_least(1, "a positive integer")
#: ``type=`` of a flag that may be zero (busy processes beside a run): 0, 1, …
non_negative_int = _int_at_least(0, "a non-negative integer")


def output_file(text: str) -> str:
    """``type=`` of ``--json PATH``: a file path in an existing folder, not a folder itself (checked before timing)."""
    path = Path(text)
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a file path, got {text!r}")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file path, got the folder {text!r}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file in an existing folder, got {text!r} "
                                         f"({str(parent)!r} is {'a file' if parent.exists() else 'missing'})")
    if not os.access(parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"expected a file in a folder you can write to, got {text!r}")
    return text


def backend(parser: argparse.ArgumentParser, name: str, flag: str = "--backend"):
    """The minilplr backend ``name``, or a one-line usage error naming ``flag`` (unknown, or not on this machine)."""
    from minilplr import backend as B

    try:
        return B.get_backend(name)
    except (B.BackendUnavailable, ValueError) as exc:
        parser.error(f"argument {flag}: {exc}")


def failed(prog: str, what: str) -> int:
    """Say in one line on stderr that ``what`` failed; returns 1, the exit status of a failed benchmark."""
    print(f"{prog}: {what}", file=sys.stderr)
    return 1
