"""Write the names CuPy provides to ``minilplr/testing/cupy_names.json``, for the strict stand-in.

The strict backend (:mod:`minilplr.testing.strict`) runs the CuPy code path on the CPU
and refuses every name CuPy does not have (``xp.geomspace``,
``xp.linalg.svdvals``, ``x.resize`` …), so that code using one fails in CI
and not on the first GPU.  It reads the list from the JSON file this script
writes; run it again when CuPy changes (a test compares the committed file
with the installed CuPy wherever CuPy imports)::

    python3 -m venv /tmp/cupyvenv && /tmp/cupyvenv/bin/pip install cupy-cuda13x numpy
    /tmp/cupyvenv/bin/python scripts/cupy_names.py          # rewrites minilplr/testing/cupy_names.json
    /tmp/cupyvenv/bin/python scripts/cupy_names.py --check  # exit 1 if the file is out of date

CuPy imports without a GPU, so any machine will do.  Some of ``cupyx``
needs CUDA libraries at import time (``cupyx.scipy.sparse.linalg`` loads
cuBLAS); where they are missing, that module's names are read from its
``__init__.py`` instead (every name there is an explicit import).

Recorded: the public names of ``cupy`` and of the submodules the package
uses (:data:`MODULES`), and the attributes and methods of ``cupy.ndarray``.
"""
from __future__ import annotations

import __future__
import argparse
import ast
import importlib
import importlib.util
import json
import sys
import types
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "minilplr" / "testing" / "cupy_names.json"

#: CuPy's modules whose names the stand-in checks: its ``xp`` and the submodules the package calls
#: (``xp.linalg``, ``xp.random``, ``xp.fft``, ``xp.lib.stride_tricks``), and the SciPy counterparts
#: of :func:`minilplr.backend.sparse_linalg` and ``cupyx.scipy.linalg``.  Add one here when the code
#: starts using it, and run the script again.
MODULES = ("cupy", "cupy.linalg", "cupy.random", "cupy.fft", "cupy.lib", "cupy.lib.stride_tricks",
           "cupyx.scipy.sparse.linalg", "cupyx.scipy.linalg")


def _public(module: types.ModuleType) -> set[str]:
    """The module's public names: no ``_`` prefix, no other package's module, no ``from __future__`` flag."""
    names = set()
    for n in dir(module):
        if n.startswith("_"):
            continue
        try:
            v = getattr(module, n)
        except Exception:  # a lazy attribute whose import fails: CuPy has the name
            names.add(n)
            continue
        if isinstance(v, __future__._Feature):
            continue
        if isinstance(v, types.ModuleType) and not v.__name__.startswith(module.__name__ + "."):
            continue  # ``np`` imported inside a CuPy module is not a CuPy name
        names.add(n)
    return names


def _lazy(module: types.ModuleType, like: str) -> set[str]:
    """Names of NumPy's counterpart module that ``module`` provides only on access (module ``__getattr__``)."""
    try:
        counterpart = importlib.import_module(like)
    except ImportError:
        return set()
    found = set()
    for n in dir(counterpart):
        if n.startswith("_"):
            continue
        try:
            if hasattr(module, n):
                found.add(n)
        except Exception:
            found.add(n)
    return found


def _from_source(name: str) -> set[str]:
    """The names a package's ``__init__.py`` imports or defines, read without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImportError(f"{name}: not found")
    tree = ast.parse(Path(spec.origin).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if not n.startswith("_") and n != "*"}


def collect() -> dict:
    """``{"cupy_version", "modules": {module: [names]}, "ndarray": [names], "read_from_source": [...]}``."""
    import cupy

    modules, from_source = {}, []
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:  # CUDA libraries missing: read the package's __init__.py
            modules[name] = sorted(_from_source(name))
            from_source.append(name)
            continue
        like = name.replace("cupyx.", "", 1) if name.startswith("cupyx.") else name.replace("cupy", "numpy", 1)
        modules[name] = sorted(_public(mod) | _lazy(mod, like))
    ndarray = sorted(n for n in dir(cupy.ndarray) if not n.startswith("_"))
    return {"cupy_version": cupy.__version__, "generated_by": "scripts/cupy_names.py",
            "modules": modules, "ndarray": ndarray, "read_from_source": from_source}


def names_only(data: dict) -> dict:
    """What the check compares: the names, not the version or how they were read."""
    return {"modules": data["modules"], "ndarray": data["ndarray"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file; exit 1 if it differs")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    try:
        data = collect()
    except ImportError as exc:
        print(f"cupy_names.py: CuPy does not import here ({exc}); pip install cupy-cuda13x", file=sys.stderr)
        return 2
    if args.check:
        old = json.loads(args.out.read_text())
        same = names_only(old) == names_only(data)
        print(f"{args.out}: {'up to date' if same else 'OUT OF DATE'} (file: CuPy {old['cupy_version']}, "
              f"installed: CuPy {data['cupy_version']})")
        return 0 if same else 1
    args.out.write_text(json.dumps(data, indent=0, sort_keys=True) + "\n")
    print(f"wrote {args.out}: CuPy {data['cupy_version']}, "
          + ", ".join(f"{m} {len(v)}" for m, v in data["modules"].items()) + f", ndarray {len(data['ndarray'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
