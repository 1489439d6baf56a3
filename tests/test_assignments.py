"""The assignments (``docs/assignments/``): the notebooks are in sync, and the autograder has power.

Every assignment runs three ways, as plain Python in a subprocess
(``scripts/assignments.py audit``; no Jupyter kernel): with the worked
solutions every check passes; as the learner receives it every check fails
(a check that passes on the starter's zeros grades nothing); and with each
TODO cell alone left as the starter, at least one check fails (no TODO goes
unchecked). None of the runs may stop on an exception: a learner who has
written nothing yet sees FAIL lines, not a traceback.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "docs" / "assignments"
SCRIPT = ROOT / "scripts" / "assignments.py"
sys.path.insert(0, str(HERE))

import percent  # noqa: E402  (docs/assignments/percent.py: standard library only)

NAMES = sorted(p.stem for p in HERE.glob("[0-9][0-9]_*.py"))
SOURCES = sorted(HERE.glob("[0-9][0-9]_*.py")) + [HERE / "interactive_figures.py"]
#: the chapters that must have an assignment (issue 25): dense backward, gradient check, structured NTK,
#: the PL steps and the rate, batch-norm backward, the linear network's σ(T)
REQUIRED = ("01_", "02_", "03_", "04_", "05_", "06_", "07_")


def _env():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    return env


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env=_env(), timeout=timeout, cwd=ROOT)


def test_every_chapter_that_derives_has_an_assignment():
    for prefix in REQUIRED:
        assert any(n.startswith(prefix) for n in NAMES), f"no assignment {prefix}*.py in {HERE}"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_notebook_in_sync(src):
    """The checked-in .ipynb is exactly what ``scripts/assignments.py notebooks`` writes from the .py."""
    nb = src.with_suffix(".ipynb")
    assert nb.exists(), f"{nb.name} missing: run python scripts/assignments.py notebooks"
    assert nb.read_text(encoding="utf-8") == percent.to_ipynb(percent.read(src)), \
        f"{nb.name} is out of date: run python scripts/assignments.py notebooks"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_notebook_reads_back(src):
    """The .ipynb gives back the same cells (kinds, sources, TODO names) as the percent script."""
    assert percent.read(src.with_suffix(".ipynb")) == percent.read(src)


def test_notebooks_are_valid_nbformat():
    nbformat = pytest.importorskip("nbformat", reason="nbformat not installed (pip install -e '.[notebooks]')")
    for src in SOURCES:
        nbformat.validate(nbformat.reads(src.with_suffix(".ipynb").read_text(encoding="utf-8"), as_version=4))


@pytest.mark.parametrize("name", NAMES)
def test_todo_cells_and_solutions_match(name):
    """Each TODO cell says TODO in its code, and has exactly one worked solution, which does not."""
    starter = percent.todos(percent.read(HERE / f"{name}.py"))
    solutions = percent.todos(percent.read(HERE / "solutions" / f"{name}.py"))
    assert starter, f"{name}: no TODO cells"
    assert set(starter) == set(solutions), f"{name}: TODO cells {sorted(starter)} but solutions {sorted(solutions)}"
    for todo, cell in starter.items():
        assert "# TODO" in cell.source, f"{name}: TODO cell {todo!r} has no '# TODO' line for the learner"
        assert "# TODO" not in solutions[todo].source, f"{name}: the solution of {todo!r} still says TODO"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_solutions_pass_and_starters_fail(name, tmp_path):
    out = tmp_path / "audit.json"
    proc = _cli("audit", name, "--json", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    audit = json.loads(out.read_text())

    sol = audit["solutions"]
    assert sol["error"] is None, f"{name} with the solutions stopped:\n{sol['error']}"
    assert len(sol["results"]) >= 3, f"{name}: only {len(sol['results'])} checks"
    failed = [(r["what"], r["err"], r["threshold"]) for r in sol["results"] if not r["passed"]]
    assert not failed, f"{name}: checks fail with the worked solutions: {failed}"

    start = audit["starter"]
    assert start["error"] is None, f"{name} as the starter stopped on an exception:\n{start['error']}"
    assert len(start["results"]) == len(sol["results"]), f"{name}: the starter ran fewer checks"
    passed = [r["what"] for r in start["results"] if r["passed"]]
    assert not passed, f"{name}: checks pass on the starter's placeholders (they grade nothing): {passed}"

    for todo, run in audit["each"].items():
        assert run["error"] is None, f"{name} with only TODO {todo!r} as the starter stopped:\n{run['error']}"
        assert any(not r["passed"] for r in run["results"]), \
            f"{name}: no check fails when TODO {todo!r} is left as the starter: nothing grades it"


@pytest.mark.slow
def test_grade_a_saved_notebook(tmp_path):
    """``grade``: exit 0 for a notebook whose TODO cells are answered, 1 for the starter, with the count."""
    name = "01_dense_backward"
    done = tmp_path / f"{name}.ipynb"
    done.write_text(percent.to_ipynb(percent.merge(percent.read(HERE / f"{name}.py"),
                                                   percent.read(HERE / "solutions" / f"{name}.py"))))
    ok = _cli("grade", done)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert "17 of 17 checks passed" in ok.stdout
    bad = _cli("grade", HERE / f"{name}.ipynb")
    assert bad.returncode == 1 and "0 of 17 checks passed" in bad.stdout


def test_bad_arguments_get_one_line():
    proc = _cli("run", "no_such_assignment")
    assert proc.returncode == 2 and "name: expected one of the assignments" in proc.stderr
    assert _cli("grade", "notes.txt").returncode == 2


def test_percent_format_errors_name_the_line():
    with pytest.raises(ValueError, match=r"x.py:2: expected '# %%'"):
        percent.parse("# %%\n# %% [raw]\n", "x.py")
    with pytest.raises(ValueError, match=r"x.py:2: expected a Markdown line to start with '# '"):
        percent.parse("# %% [markdown]\nplain text\n", "x.py")
    with pytest.raises(ValueError, match=r"x.py:1: expected the first cell"):
        percent.parse("import numpy\n# %%\n", "x.py")
    cells = percent.parse("# %% [markdown]\n# # Title\n#\n# text\n\n# %% TODO f\ndef f():\n    pass\n\n\n")
    assert cells == [percent.Cell("markdown", "# Title\n\ntext"), percent.Cell("code", "def f():\n    pass", "f")]
    with pytest.raises(ValueError, match="no worked solution for TODO cells"):
        percent.merge(cells, [])
