"""The course's assignments (``docs/assignments/``): write the notebooks, grade yours, run the worked solutions.

    python scripts/assignments.py notebooks              # write every .ipynb from its percent script
    python scripts/assignments.py notebooks --check      # exit 1 if an .ipynb is out of date
    python scripts/assignments.py grade docs/assignments/01_dense_backward.ipynb   # your saved notebook
    python scripts/assignments.py run 01_dense_backward  # with the worked solutions filled in
    python scripts/assignments.py run 01_dense_backward --starter        # as a learner receives it
    python scripts/assignments.py audit 01_dense_backward --json out.json  # what the tests check

``grade`` runs the code cells of your notebook in order (your earlier
assignments come from your own saved notebooks) and prints every check; exit
status 0 when all pass, 1 otherwise. ``audit`` runs one assignment with the
worked solutions (every check must pass), with the whole starter (every check
must fail) and with each TODO cell alone left as the starter (some check must
fail): ``tests/test_assignments.py`` reads its JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "docs" / "assignments"
sys.path.insert(0, str(HERE))

import percent  # noqa: E402  (docs/assignments/percent.py: no minilplr import)

#: the notebooks that are not assignments (no TODO cells, no checks)
EXTRA_NOTEBOOKS = ("interactive_figures",)


def notebook_sources() -> list[Path]:
    """Every percent script that has an .ipynb: the assignments, then the extra notebooks."""
    return sorted(HERE.glob("[0-9][0-9]_*.py")) + [HERE / f"{n}.py" for n in EXTRA_NOTEBOOKS]


def notebooks(check: bool) -> int:
    stale = []
    for src in notebook_sources():
        nb = src.with_suffix(".ipynb")
        text = percent.to_ipynb(percent.read(src))
        if check:
            if not nb.exists() or nb.read_text(encoding="utf-8") != text:
                stale.append(nb.name)
        else:
            nb.write_text(text, encoding="utf-8")
            print(f"wrote {nb.relative_to(ROOT)}")
    if stale:
        print(f"notebooks: {', '.join(stale)} out of date; run: python scripts/assignments.py notebooks")
        return 1
    return 0


def _summary(out: dict) -> int:
    res = out["results"]
    passed = sum(r["passed"] for r in res)
    if out["error"]:
        print(out["error"], file=sys.stderr)
    print(f"{passed} of {len(res)} checks passed" + (" (stopped by an error, above)" if out["error"] else ""))
    return 0 if res and passed == len(res) and not out["error"] else 1


def grade(path: Path) -> int:
    import course

    course.SOURCE = "notebook"
    return _summary(course.run_cells(percent.read(path), path.stem))


def audit(name: str) -> dict:
    """Solutions, whole starter, and each TODO alone: the results of every run (quietly)."""
    import course

    names = list(percent.todos(percent.read(HERE / f"{name}.py")))
    return {"todos": names,
            "solutions": course.run(name, quiet=True),
            "starter": course.run(name, keep_starter="all", quiet=True),
            "each": {t: course.run(name, keep_starter=[t], quiet=True) for t in names}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("notebooks", help="write docs/assignments/*.ipynb from the percent scripts")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if one is out of date")
    p = sub.add_parser("grade", help="run the checks of your saved notebook")
    p.add_argument("notebook", type=Path)
    p = sub.add_parser("run", help="run an assignment with the worked solutions (or the starter)")
    p.add_argument("name")
    p.add_argument("--starter", action="store_true", help="the starter cells, as a learner receives them")
    p = sub.add_parser("audit", help="solutions, starter and each TODO alone, as JSON")
    p.add_argument("name")
    p.add_argument("--json", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd in ("run", "audit") and not (HERE / f"{args.name}.py").exists():
        ap.error(f"name: expected one of the assignments in docs/assignments/, got {args.name!r}")
    if args.cmd == "grade" and args.notebook.suffix not in (".ipynb", ".py"):
        ap.error(f"notebook: expected an .ipynb (or a percent .py), got {args.notebook}")
    if args.cmd == "notebooks":
        return notebooks(args.check)
    if args.cmd == "grade":
        return grade(args.notebook)
    if args.cmd == "run":
        import course

        return _summary(course.run(args.name, keep_starter="all" if args.starter else None))
    args.json.write_text(json.dumps(audit(args.name), indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
