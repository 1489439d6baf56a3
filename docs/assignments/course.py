"""What every assignment imports: the checks, and your answers to the earlier assignments.

Each check prints one line, in the style of cs231n's notebooks::

    dense_backward dW: rel_error 2.1e-17 < 1e-10  PASS

``rel_error`` is the engine's own measure,
``minilplr.nn.gradcheck.rel_error``: ``‖a − b‖ / max(‖a‖ + ‖b‖, 1e-8)``
(Frobenius norms), 0 for equal arrays and 1 for an answer of zeros; the
threshold is stated in the line and in the notebook beside it.

The assignments run on NumPy (host arrays only), whatever ``MINILPLR_BACKEND``
says: importing this module sets minilplr's backend to ``numpy``.
"""
from __future__ import annotations

import io
import math
import sys
import traceback
from contextlib import redirect_stdout
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from minilplr import backend as _backend

_backend.set_backend("numpy")

from minilplr.nn.gradcheck import rel_error as _engine_rel_error  # noqa: E402

import percent  # noqa: E402  (docs/assignments/percent.py)

HERE = Path(__file__).resolve().parent
SOLUTIONS = HERE / "solutions"


@dataclass
class Result:
    """One check: what it compared, the error reached, the threshold, and whether it passed."""

    what: str
    err: float
    threshold: float
    passed: bool


#: every check run since the last ``reset()``
RESULTS: list[Result] = []

#: where ``load`` finds your answers to an earlier assignment: ``"notebook"`` (your saved ``.ipynb``,
#: or the ``.py`` beside it when there is no ``.ipynb``), ``"solutions"`` or ``"starter"`` (the tests set these)
SOURCE = "notebook"


def reset() -> None:
    RESULTS.clear()


def rel_error(a, b) -> float:
    """``‖a − b‖ / max(‖a‖ + ‖b‖, 1e-8)``: the engine's ``minilplr.nn.gradcheck.rel_error``."""
    return float(_engine_rel_error(np.asarray(a, dtype=float), np.asarray(b, dtype=float)))


def check(what: str, err: float, threshold: float, measure: str = "error") -> bool:
    """Print ``what: MEASURE ERR < THRESHOLD  PASS`` (or ``>= ... FAIL``), record it, return whether it passed."""
    err = float(err)
    passed = bool(err < threshold)  # NaN fails
    RESULTS.append(Result(what, err, float(threshold), passed))
    print(f"{what}: {measure} {err:.1e} {'<' if passed else '>='} {threshold:.0e}  {'PASS' if passed else 'FAIL'}")
    return passed


def check_close(what: str, mine, reference, threshold: float) -> bool:
    """``check(what, rel_error(mine, reference), threshold)``, failing (error ``inf``) on a wrong shape or ``None``."""
    ref = np.asarray(reference, dtype=float)
    if mine is None:
        print(f"{what}: got None, expected an array of shape {ref.shape}")
        return check(what, math.inf, threshold, "rel_error")
    got = np.asarray(mine, dtype=float)
    if got.shape != ref.shape:
        print(f"{what}: got shape {got.shape}, expected {ref.shape}")
        return check(what, math.inf, threshold, "rel_error")
    return check(what, rel_error(got, ref), threshold, "rel_error")


# --------------------------------------------------------------------------- your earlier answers


def _cells_of(assignment: str, source: str) -> list[percent.Cell]:
    starter = percent.read(HERE / f"{assignment}.py")
    if source == "starter":
        return starter
    if source == "solutions":
        return percent.merge(starter, percent.read(SOLUTIONS / f"{assignment}.py"))
    if source == "notebook":
        nb = HERE / f"{assignment}.ipynb"
        return percent.read(nb if nb.exists() else HERE / f"{assignment}.py")
    raise ValueError(f"source: expected 'notebook', 'solutions' or 'starter', got {source!r}")


def load(assignment: str, *names: str):
    """Your functions ``names`` from an earlier assignment (its TODO cells, run in a fresh namespace).

    ``load("01_dense_backward", "dense_forward", "dense_backward")`` returns the
    two functions as you wrote them in ``01_dense_backward.ipynb`` (save the
    notebook first). What runs: the assignment's first code cell (its
    imports, and the pieces it loads in turn), then its TODO cells; none of
    its checks.
    """
    cells = _cells_of(assignment, SOURCE)
    code = [c for c in cells if c.kind == "code"]
    ns: dict = {"__name__": f"assignment_{assignment}"}
    for i, c in enumerate(code):
        if i == 0 or c.todo:
            exec(compile(c.source, f"{assignment}[{'TODO ' + c.todo if c.todo else 'setup'}]", "exec"), ns)
    missing = [n for n in names if n not in ns]
    if missing:
        raise NameError(f"names: {assignment} defines no {missing} in its TODO cells")
    print(f"(using your {', '.join(names)} from {assignment}, {SOURCE})")
    return ns[names[0]] if len(names) == 1 else tuple(ns[n] for n in names)


# --------------------------------------------------------------------------- running a whole assignment


def assignments() -> list[str]:
    """The assignments' names, in order (``01_dense_backward``, ...)."""
    return sorted(p.stem for p in HERE.glob("[0-9][0-9]_*.py"))


def run_cells(cells: list[percent.Cell], name: str, quiet: bool = False) -> dict:
    """Run the code cells in order in a fresh namespace; -> {"results": [...], "error": traceback or None}."""
    reset()
    ns: dict = {"__name__": "__main__"}
    error = None
    sink = io.StringIO()
    with redirect_stdout(sink if quiet else sys.stdout):
        for i, c in enumerate(cells):
            if c.kind != "code":
                continue
            try:
                exec(compile(c.source, f"{name}[cell {i}{' TODO ' + c.todo if c.todo else ''}]", "exec"), ns)
            except Exception:  # noqa: BLE001 - reported, with the cell, to the caller
                error = traceback.format_exc()
                break
    return {"results": [asdict(r) for r in RESULTS], "error": error}


def run(assignment: str, keep_starter=None, quiet: bool = False) -> dict:
    """Run an assignment with the worked solutions, except the TODO cells named in ``keep_starter``.

    ``keep_starter=None`` runs the solutions; ``"all"`` the starter as a
    learner receives it. Earlier assignments' answers come from the worked
    solutions, so a failing check here is this assignment's own.
    """
    global SOURCE
    starter = percent.read(HERE / f"{assignment}.py")
    names = list(percent.todos(starter))
    keep = names if keep_starter == "all" else list(keep_starter or ())
    cells = percent.merge(starter, percent.read(SOLUTIONS / f"{assignment}.py"), keep_starter=keep)
    saved, SOURCE = SOURCE, "solutions"
    try:
        return run_cells(cells, assignment, quiet=quiet)
    finally:
        SOURCE = saved
