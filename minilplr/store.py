"""State as data: atomic files, and a JSON + ``.npz`` pair that is read as one unit.

Everything minilplr keeps between runs — results, run caches, checkpoints,
a cached kernel — is a *unit*: a tree of dicts, lists, numbers, strings and
NumPy arrays, stored as two files::

    <name>.npz    the arrays (NumPy's zip format, read with allow_pickle=False)
    <name>.json   the rest of the tree, arrays replaced by {"__array__": key},
                  the SHA-256 and size of <name>.npz, and the SHA-256 of the
                  JSON's own content (its canonical form: sorted keys, no spaces)

The JSON's hash covers the arrays file's hash too, so one number ties the
whole unit: an edited ``"iters_to_tol": 95.0`` in the JSON is as damaged as a
zeroed byte in the arrays.  Both files are written atomically (a uniquely
named temporary file in the same folder, flushed to disk, then
``os.replace``), the arrays first, the JSON last.  A reader trusts the pair
only if the JSON parses, its content has the recorded hash, and the arrays
file has the recorded size and hash, so a run killed between the two
renames, two runs writing one folder, a truncated file, zeroed bytes or a
number edited by hand are all detected: :func:`load_unit` raises
:class:`Damaged`, and :func:`load_or_discard` moves the damaged files aside
(never deletes them), says so in one line and returns ``None``, so the
caller recomputes.  Units of the first format (``minilplr-unit/1``, whose
hash covered the arrays only) are refused the same way, never read.

Temporary files are named ``.<name>.<random>.minilplr-tmp``
(:func:`is_temporary`): a program that cleans up after killed runs removes
those, never another program's ``.tmp`` files.

Nothing here unpickles: a planted pickle is never executed.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["FORMAT", "TEMPORARY_SUFFIX", "Damaged", "atomic_write_bytes", "is_temporary", "save_unit", "load_unit",
           "load_or_discard", "move_aside", "unit_exists", "discard_unit", "to_jsonable", "fingerprint", "config_hash",
           "content_hash"]

#: Written into every unit's JSON; a file without it is not ours.  ``/2``: the hash covers the JSON's numbers too.
FORMAT = "minilplr-unit/2"
#: The formats before :data:`FORMAT`, refused as damaged (recomputed), with why.
_OLD_FORMATS = {"minilplr-unit/1": "its hash covered the arrays only, not the JSON's own numbers"}
#: The ending of :func:`atomic_write_bytes`'s temporary files: ``.<name>.<random>.minilplr-tmp``.
TEMPORARY_SUFFIX = ".minilplr-tmp"
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]+" + re.escape(TEMPORARY_SUFFIX) + "$")
#: Files we write are readable by others (results folders get shared), like the figures.
FILE_MODE = 0o644


class Damaged(RuntimeError):
    """A stored file exists but cannot be trusted (truncated, garbled, or not the pair it claims)."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: damaged ({reason})")
        self.path, self.reason = Path(path), reason


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path``: a unique temporary file beside it, fsync, mode 0644, ``os.replace``.

    A reader sees the old file or the new one, never a part; two writers never
    share a temporary file; a failed write leaves no temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def is_temporary(name: str) -> bool:
    """Whether the file name ``name`` is one of :func:`atomic_write_bytes`'s temporary files."""
    return bool(_TEMPORARY.match(name))


def to_jsonable(obj):
    """NumPy scalars -> Python numbers, tuples -> lists, paths -> strings (floats keep every bit)."""
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
    """A short stable hash (10 hex digits) of a configuration: results and run folders are named by it."""
    blob = json.dumps(to_jsonable(config), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def _split(obj, arrays: dict, prefix: str):
    """The tree with every array replaced by ``{"__array__": key}``; the arrays go into ``arrays``."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"{prefix or 'root'}: object arrays cannot be stored without pickles")
        key = prefix or "root"
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, dict):
        return {str(k): _split(v, arrays, f"{prefix}.{k}" if prefix else str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split(v, arrays, f"{prefix}.{i}") for i, v in enumerate(obj)]
    return to_jsonable(obj)


def _join(obj, arrays: dict, where: Path):
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            key = obj["__array__"]
            if key not in arrays:
                raise Damaged(where, f"array {key!r} missing from the arrays file")
            return arrays[key]
        return {k: _join(v, arrays, where) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, arrays, where) for v in obj]
    return obj


def _paths(folder, name: str) -> tuple[Path, Path]:
    folder = Path(folder)
    return folder / f"{name}.json", folder / f"{name}.npz"


def save_unit(folder, name: str, tree: dict, *, compress: bool = False) -> Path:
    """Store ``tree`` as ``folder/<name>.npz`` + ``folder/<name>.json``; returns the JSON's path.

    ``compress=True`` deflates the arrays (smaller results files; slower for
    checkpoints of millions of parameters, which therefore default to off).
    """
    arrays: dict = {}
    meta = _split(tree, arrays, "")
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)  # no timestamps: same arrays, same bytes
    blob = buf.getvalue()
    js, npz = _paths(folder, name)
    atomic_write_bytes(npz, blob)
    body = {"format": FORMAT, "arrays": {"file": npz.name, "bytes": len(blob),
                                         "sha256": hashlib.sha256(blob).hexdigest()}, "data": meta}
    digest = content_hash(json.loads(json.dumps(body, allow_nan=True)))  # of the content as a reader parses it
    head = {"format": FORMAT, "sha256": digest, "arrays": body["arrays"], "data": meta}
    # the JSON goes last and names the arrays file's hash: a JSON beside other arrays is detected
    atomic_write_bytes(js, json.dumps(head, indent=1, allow_nan=True).encode())
    return js


def content_hash(head: dict) -> str:
    """SHA-256 of a unit's JSON content, every key but ``"sha256"``, in canonical form.

    Canonical: keys sorted, no spaces, non-ASCII escaped, floats as Python's
    shortest round-trip ``repr`` (so parsing and writing again gives the same
    text, bit for bit, NaN and ±0.0 included).  Indentation and key order in
    the file do not matter; any changed value, key or array reference does.
    """
    body = {k: v for k, v in head.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def unit_exists(folder, name: str) -> bool:
    """Whether ``folder/<name>.json`` exists (damaged or not)."""
    return _paths(folder, name)[0].exists()


def load_unit(folder, name: str):
    """The tree stored by :func:`save_unit`, or ``None`` if there is none; :class:`Damaged` if untrustworthy."""
    js, npz = _paths(folder, name)
    if not js.exists():
        return None
    try:
        head = json.loads(js.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise Damaged(js, f"not valid JSON: {exc}") from None
    if isinstance(head, dict) and "format" not in head:
        raise Damaged(js, "written by an older minilplr, before results were tied to their arrays by hash")
    if isinstance(head, dict) and head.get("format") in _OLD_FORMATS:
        raise Damaged(js, f"written by an older minilplr as {head['format']}: {_OLD_FORMATS[head['format']]}")
    if not isinstance(head, dict) or head.get("format") != FORMAT or "data" not in head:
        raise Damaged(js, f"not a {FORMAT} file")
    if head.get("sha256") != content_hash(head):
        raise Damaged(js, "its content differs from the content its SHA-256 was computed from (a number, key or "
                          "array reference changed since it was written: edited by hand, or altered)")
    want = head.get("arrays")
    if not isinstance(want, dict):
        raise Damaged(js, "no record of its arrays file")
    try:
        blob = npz.read_bytes()
    except FileNotFoundError:
        raise Damaged(npz, "the arrays file is missing") from None
    if len(blob) != want.get("bytes") or hashlib.sha256(blob).hexdigest() != want.get("sha256"):
        raise Damaged(npz, f"{len(blob)} bytes whose SHA-256 differs from the one {js.name} records "
                           "(truncated, altered, or written by another run)")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # the hash matched, so this is a file we wrote badly: still never trust it
        raise Damaged(npz, f"unreadable arrays: {exc}") from None
    return _join(head["data"], arrays, npz)


def move_aside(path) -> Path:
    """Rename ``path`` to ``<path>.damaged-<UTC time>`` (never overwriting) and return the new path."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    i = 1
    while target.exists():
        target = path.with_name(f"{path.name}.damaged-{stamp}-{i}")
        i += 1
    os.replace(path, target)
    return target


def discard_unit(folder, name: str) -> list:
    """Move both files of a unit aside (those that exist); returns their new paths.

    A file that another reader moved aside first is simply gone: not an error.
    """
    moved = []
    for p in _paths(folder, name):
        try:
            moved.append(move_aside(p))
        except FileNotFoundError:
            pass
    return moved


def load_or_discard(folder, name: str, log=print):
    """:func:`load_unit`, but a damaged unit is moved aside with one line to ``log`` and read as absent."""
    try:
        return load_unit(folder, name)
    except Damaged as exc:
        moved = discard_unit(folder, name)
        log(f"{exc}; moved aside to {', '.join(p.name for p in moved)} in {Path(folder)}; recomputing")
        return None


def fingerprint(*arrays) -> str:
    """SHA-256 (first 16 hex digits) of host arrays' shapes, dtypes and bytes: what data a run used."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]
