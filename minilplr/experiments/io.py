"""Results on disk: atomic writes, a folder per experiment, resumable.

Results are a dict of plain JSON values and NumPy arrays.  They are stored as
``results.json`` (the JSON part, arrays replaced by references) beside
``arrays.npz`` (the arrays), both written to a temporary file and renamed into
place, so a crash mid-write never leaves a results file that looks complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["atomic_write_bytes", "save_results", "load_results", "config_hash", "to_jsonable"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def to_jsonable(obj):
    """NumPy scalars -> Python numbers, tuples -> lists, non-finite floats -> None-safe strings."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def config_hash(config: dict) -> str:
    """A short stable hash of a configuration (results paths are built from it)."""
    blob = json.dumps(to_jsonable(config), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def _split(obj, arrays, prefix):
    if isinstance(obj, np.ndarray):
        key = prefix or "root"
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, dict):
        return {str(k): _split(v, arrays, f"{prefix}.{k}" if prefix else str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split(v, arrays, f"{prefix}.{i}") for i, v in enumerate(obj)]
    return to_jsonable(obj)


def _join(obj, arrays):
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        return {k: _join(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, arrays) for v in obj]
    return obj


def save_results(folder: Path, results: dict, name: str = "results") -> Path:
    """Save ``results`` as ``<name>.json`` + ``<name>.npz`` in ``folder`` (atomically)."""
    folder = Path(folder)
    arrays: dict = {}
    meta = _split(results, arrays, "")
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(folder / f"{name}.npz", buf.getvalue())
    # the JSON goes last: its presence means both files are complete
    atomic_write_bytes(folder / f"{name}.json", json.dumps(meta, indent=1, allow_nan=True).encode())
    return folder / f"{name}.json"


def load_results(folder: Path, name: str = "results"):
    """The results saved by :func:`save_results`, or ``None`` if there are none."""
    folder = Path(folder)
    js = folder / f"{name}.json"
    if not js.exists():
        return None
    meta = json.loads(js.read_text())
    npz = folder / f"{name}.npz"
    arrays = dict(np.load(npz, allow_pickle=False)) if npz.exists() else {}
    return _join(meta, arrays)
