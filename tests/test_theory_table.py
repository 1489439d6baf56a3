"""docs/THEORY.md's table "Equation → function → test" is true.

Each row names one equation, the one function that computes it (a dotted
``minilplr.…`` name) and the test that checks it numerically
(``tests/<folder>/test_x.py::test_name``).  This test reads the table and checks, row
by row, that

* the function resolves by import (module, then attributes);
* the test file exists and defines the test function at top level;
* the test exercises the function: its source names the function, or calls
  a helper of its own file, or a function of the function's module, whose
  source names it (one level: e.g. a test of ``pl_diagnostics`` checks the
  identity that ``pl_diagnostics`` evaluates with ``gradient_norm_identity``).

A renamed function or test fails here with the row that names it.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THEORY = ROOT / "docs" / "THEORY.md"
HEADING = "## Equation → function → test"
_ROW = re.compile(r"^\|(?P<eq>[^|]+)\|(?P<what>.*)\|\s*`(?P<func>minilplr(?:\.\w+)+)`\s*\|\s*"
                  r"`(?P<file>tests/(?:\w+/)*test_\w+\.py)::(?P<test>\w+)`\s*\|\s*$")


def table_rows(text: str) -> list[dict]:
    """The rows of the table under ``HEADING``: ``eq``, ``func``, ``file``, ``test`` (a row that does not parse raises)."""
    start = text.find(HEADING)
    if start < 0:
        raise ValueError(f"{THEORY.name}: no section {HEADING!r}")
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("## "):
            break
        if not line.startswith("|") or set(line.replace("|", "").strip()) <= {"-"} or line.startswith("| eq."):
            continue
        m = _ROW.match(line)
        if m is None:
            raise ValueError(f"{THEORY.name}: a table row does not read `| eq | what | `minilplr.f` | "
                             f"`tests/<folder>/test_x.py::test_y` |`: {line!r}")
        rows.append({k: v.strip() for k, v in m.groupdict().items()})
    return rows


def resolve(dotted: str):
    """Import the longest module prefix of ``dotted`` and getattr the rest; ``(module, obj)``."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        obj = module
        for name in parts[i:]:
            obj = getattr(obj, name)
        return module, obj
    raise ImportError(dotted)


def file_functions(path: Path) -> dict[str, str]:
    """Top-level functions of a test file (tests and helpers): name -> source."""
    src = path.read_text(encoding="utf-8")
    return {node.name: ast.get_source_segment(src, node) for node in ast.parse(src).body
            if isinstance(node, ast.FunctionDef)}


def exercises(test_src: str, module, name: str, helpers: dict[str, str]) -> bool:
    """The test's source names ``name``, or calls a helper of its own file or a function of ``module`` that does."""
    if re.search(rf"\b{re.escape(name)}\b", test_src):
        return True
    for called in set(re.findall(r"\b(\w+)\(", test_src)):
        if called in helpers and not called.startswith("test") and re.search(rf"\b{re.escape(name)}\b",
                                                                            helpers[called]):
            return True
        helper = getattr(module, called, None)
        if helper is not None and inspect.isfunction(helper):
            try:
                if re.search(rf"\b{re.escape(name)}\(", inspect.getsource(helper)):
                    return True
            except (OSError, TypeError):
                continue
    return False


ROWS = table_rows(THEORY.read_text(encoding="utf-8"))


def test_the_table_is_there_and_covers_the_papers_numbered_steps():
    eqs = " ".join(r["eq"] for r in ROWS)
    assert len(ROWS) >= 40, f"expected the full table, found {len(ROWS)} rows"
    for label in ("(6)", "(7)", "(8)", "(9)", "(10)", "(11)", "(12)–(14)", "(19)", "(R1)", "(R2)", "(R3)", "(R4)",
                  "(K1)", "(F1)", "(C1)", "(H1)"):
        assert label in eqs, f"{THEORY.name}: the table has no row for {label}"


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['eq']}:{r['func'].rsplit('.', 1)[-1]}" for r in ROWS])
def test_each_row_names_a_function_and_a_test_that_exercises_it(row):
    try:
        module, obj = resolve(row["func"])
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{THEORY.name}, row {row['eq']}: {row['func']} does not resolve ({type(exc).__name__}: {exc})")
    assert callable(obj), f"{THEORY.name}, row {row['eq']}: {row['func']} is not a function or class"
    path = ROOT / row["file"]
    assert path.is_file(), f"{THEORY.name}, row {row['eq']}: no test file {row['file']}"
    tests = file_functions(path)
    assert row["test"] in tests and row["test"].startswith("test"), (f"{THEORY.name}, row {row['eq']}: {row['file']} defines no {row['test']} "
                                  f"(it has {len(tests)} tests)")
    name = row["func"].rsplit(".", 1)[-1]
    assert exercises(tests[row["test"]], module, name, tests), (
        f"{THEORY.name}, row {row['eq']}: {row['file']}::{row['test']} never calls {name} (directly or through "
        f"a function of {module.__name__})")


def test_a_misspelt_row_is_caught():
    """The checker itself: a row naming a function or a test that does not exist is rejected."""
    bad = (f"{HEADING}\n\n| eq. | what | function | test |\n|---|---|---|---|\n"
           "| (10) | x | `minilplr.theory.dynamics.pl_envelop` | `tests/theory/test_dynamics.py::test_drift_values` |\n")
    (row,) = table_rows(bad)
    with pytest.raises(AttributeError):
        resolve(row["func"])
    assert "test_drift_valuez" not in file_functions(ROOT / "tests" / "theory" / "test_dynamics.py")
    with pytest.raises(ValueError, match="does not read"):
        table_rows(f"{HEADING}\n| (10) | x | minilplr.theory.dynamics.pl_envelope | tests/theory/test_dynamics.py |\n")
