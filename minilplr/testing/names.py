"""What CuPy provides, name by name: the list the strict stand-in checks every name against.

``cupy_names.json`` beside this file is written from CuPy itself by
``scripts/cupy_names.py`` (regenerate it when CuPy changes; ``--check``
compares).  NumPy has names CuPy does not (``geomspace``, ``errstate``,
``insert``, ``linalg.svdvals``, ``ndarray.resize`` …): the stand-in refuses
each of them with :func:`missing`'s message, as CuPy would fail on a GPU.
"""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["CUPY_NAMES", "MODULE_NAMES", "NDARRAY_NAMES", "missing"]

CUPY_NAMES = json.loads(Path(__file__).with_name("cupy_names.json").read_text())
"""What CuPy provides: ``{"cupy_version", "modules": {"cupy": [...], "cupy.linalg": [...], ...}, "ndarray": [...]}``
(written by ``scripts/cupy_names.py`` from the CuPy it names)."""
#: ``{"cupy": frozenset(names), "cupy.linalg": …, "cupyx.scipy.sparse.linalg": …}``
MODULE_NAMES = {m: frozenset(v) for m, v in CUPY_NAMES["modules"].items()}
#: The attributes and methods of ``cupy.ndarray``.
NDARRAY_NAMES = frozenset(CUPY_NAMES["ndarray"])
_REGENERATE = "CuPy's names: minilplr/testing/cupy_names.json, written by scripts/cupy_names.py"


def missing(what: str) -> str:
    """The message for a name CuPy lacks: ``"<what>: CuPy 14.0.1 has no such name, so this fails on a GPU; …"``."""
    return (f"{what}: CuPy {CUPY_NAMES['cupy_version']} has no such name, so this fails on a GPU; "
            f"the strict stand-in refuses it too ({_REGENERATE})")
