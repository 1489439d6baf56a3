"""Notebooks as plain text: jupytext's "percent" format, read and written without Jupyter.

An assignment is a Python file whose cells start at ``# %%`` lines:

* ``# %% [markdown]`` a Markdown cell; every line of it starts with ``#``
  (``# text``, or ``#`` alone for a blank line);
* ``# %%`` a code cell;
* ``# %% TODO name`` a code cell the learner writes (the starter code, with
  ``# TODO`` where the derivation goes). The worked solution, in
  ``solutions/<the same file name>``, has a cell with the same header.

``jupytext --to notebook`` reads these files too; this module writes the
``.ipynb`` itself (``scripts/assignments.py notebooks``) so that neither the
tests nor CI need Jupyter. Pure standard library: the site builder and the
tests import it without importing minilplr.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

_HEADER = re.compile(r"^# %%(?P<rest>.*)$")
_TODO = re.compile(r"^TODO ([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class Cell:
    """One notebook cell: ``kind`` ``"code"`` or ``"markdown"``; ``todo`` the name of a learner's cell, else None."""

    kind: str
    source: str
    todo: str | None = None


def _header(rest: str, where: str) -> tuple[str, str | None]:
    """The text after ``# %%`` -> (kind, todo name)."""
    rest = rest.strip()
    if rest == "":
        return "code", None
    if rest == "[markdown]":
        return "markdown", None
    m = _TODO.match(rest)
    if m:
        return "code", m.group(1)
    raise ValueError(f"{where}: expected '# %%', '# %% [markdown]' or '# %% TODO name', got '# %% {rest}'")


def parse(text: str, where: str = "<text>") -> list[Cell]:
    """The cells of a percent-format script, in order (blank lines around a cell are dropped)."""
    cells: list[Cell] = []
    kind = todo = None
    lines: list[str] = []

    def close():
        if kind is None:
            return
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        cells.append(Cell(kind, "\n".join(lines), todo))

    for no, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line)
        if m:
            close()
            kind, todo = _header(m.group("rest"), f"{where}:{no}")
            lines = []
            continue
        if kind is None:
            if line.strip():
                raise ValueError(f"{where}:{no}: expected the first cell's '# %%' line before any text")
            continue
        if kind == "markdown":
            if line.strip() and not (line == "#" or line.startswith("# ")):
                raise ValueError(f"{where}:{no}: expected a Markdown line to start with '# ', got {line!r}")
            line = line[2:] if line.startswith("# ") else ""
        lines.append(line)
    close()
    return cells


def read(path) -> list[Cell]:
    """The cells of a percent script (``.py``) or of a notebook (``.ipynb``, e.g. a learner's saved work)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        return parse(text, str(path))
    if path.suffix != ".ipynb":
        raise ValueError(f"path: expected a .py or .ipynb file, got {path}")
    nb = json.loads(text)
    cells = []
    for c in nb["cells"]:
        src = c["source"] if isinstance(c["source"], str) else "".join(c["source"])
        if c["cell_type"] in ("code", "markdown"):
            cells.append(Cell(c["cell_type"], src, c.get("metadata", {}).get("todo")))
    return cells


def to_ipynb(cells: list[Cell]) -> str:
    """nbformat 4.5 JSON text (deterministic: ids from the cell's position, no outputs)."""
    out = []
    for i, c in enumerate(cells):
        lines = c.source.splitlines(keepends=True)
        cell = {"cell_type": c.kind, "id": f"cell-{i:02d}" + (f"-{c.todo}" if c.todo else ""),
                "metadata": {"todo": c.todo} if c.todo else {}, "source": lines}
        if c.kind == "code":
            cell["execution_count"] = None
            cell["outputs"] = []
        out.append(cell)
    nb = {"cells": out,
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                       "language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def todos(cells: list[Cell]) -> dict[str, Cell]:
    """The learner's cells by name (a name used twice is an error)."""
    found: dict[str, Cell] = {}
    for c in cells:
        if c.todo:
            if c.todo in found:
                raise ValueError(f"cells: TODO {c.todo!r} appears twice")
            found[c.todo] = c
    return found


def merge(starter: list[Cell], solutions: list[Cell], keep_starter=()) -> list[Cell]:
    """The starter with every TODO cell replaced by its worked solution, except those named in ``keep_starter``."""
    sol = todos(solutions)
    missing = sorted(set(todos(starter)) - set(sol))
    if missing:
        raise ValueError(f"solutions: no worked solution for TODO cells {missing}")
    unknown = sorted(set(keep_starter) - set(todos(starter)))
    if unknown:
        raise ValueError(f"keep_starter: no TODO cells named {unknown}")
    return [sol[c.todo] if c.todo and c.todo not in keep_starter else c for c in starter]
